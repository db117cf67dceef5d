//! The device's protocol state machine, driven directly.

use boards::{FakeKiosk, Led};
use device::capture::SimulatedCapture;
use device::{Device, DeviceConfig};
use protocol::*;

fn sample() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../assets/sample/session-001")
}

/// A simulated device with the placeholder model, its data in `data`, its inputs from `sim`.
fn sim_device(data: &std::path::Path, sim: &std::path::Path, kiosk: FakeKiosk) -> Device {
    Device::open(
        DeviceConfig { data_dir: data.to_owned(), board: boards::Board::by_name("sim").expect("sim"), simulated: true },
        Box::new(models::PlaceholderModel::default()),
        Box::new(SimulatedCapture::new(sim).expect("simulation folder exists")),
        Box::new(kiosk),
    )
    .expect("device opens")
}

fn device(data: &std::path::Path, kiosk: FakeKiosk) -> Device {
    sim_device(data, &sample(), kiosk)
}

struct Driver {
    dev: Device,
    id: u32,
}

impl Driver {
    fn call(&mut self, req: Request) -> Response {
        self.id += 1;
        let reply = self.dev.handle(HostFrame { id: self.id, req });
        assert_eq!(reply.id, self.id);
        reply.resp
    }

    fn hello(&mut self) -> Response {
        self.call(Request::Hello(Hello { protocol_version: PROTOCOL_VERSION, host: truncated("test") }))
    }
}

fn code(r: &Response) -> Option<ErrorCode> {
    match r {
        Response::Error(e) => Some(e.code),
        _ => None,
    }
}

fn start(d: &mut Driver) -> SessionId {
    match d.call(Request::SessionStart(SessionStart {
        modalities: Modalities::ALL,
        label: truncated("t"),
        host_time_ms: 1_000,
    })) {
        Response::Session(s) => s.session,
        other => panic!("{other:?}"),
    }
}

fn chunk(session: SessionId, utterance: u32, part: u16, last: bool, text: &str) -> Request {
    Request::TranscriptChunk(TranscriptChunk {
        session,
        utterance,
        part,
        last_part: last,
        start_ms: 1_000,
        end_ms: 4_000,
        speaker: Speaker::Participant,
        text: truncated(text),
    })
}

#[test]
fn hello_first_and_version_is_negotiated() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut d = Driver { dev: device(dir.path(), FakeKiosk::default()), id: 0 };
    assert_eq!(code(&d.call(Request::Ping(1))), Some(ErrorCode::HelloFirst));
    let wrong = d.call(Request::Hello(Hello { protocol_version: PROTOCOL_VERSION + 1, host: truncated("future") }));
    assert_eq!(code(&wrong), Some(ErrorCode::UnsupportedVersion { supported: PROTOCOL_VERSION }));
    match d.hello() {
        Response::DeviceInfo(i) => {
            assert_eq!(i.active_model_version.as_str(), "placeholder-0.1");
            assert_eq!(i.feature_schema, features::schema::schema_hash());
            assert!(i.capabilities.has(Capabilities::AUDIO | Capabilities::VIDEO | Capabilities::TEXT));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(d.call(Request::Ping(7)), Response::Pong(7));
    assert_eq!(code(&d.call(Request::UploadCommit)), Some(ErrorCode::NotImplemented));
}

#[test]
fn session_rules_and_multi_part_utterances() {
    let dir = tempfile::tempdir().expect("tempdir");
    let kiosk = FakeKiosk::default();
    let mut d = Driver { dev: device(dir.path(), kiosk.clone()), id: 0 };
    d.hello();
    assert_eq!(kiosk.lit(), vec![Led::Ready]);
    let s = start(&mut d);
    assert_eq!(kiosk.lit(), vec![Led::Busy]);
    let again = d.call(Request::SessionStart(SessionStart {
        modalities: Modalities::ALL,
        label: truncated("x"),
        host_time_ms: 0,
    }));
    assert_eq!(code(&again), Some(ErrorCode::SessionActive));
    assert_eq!(code(&d.call(chunk(s + 1, 0, 0, true, "hi"))), Some(ErrorCode::UnknownSession));
    // Part 1 before part 0 is out of order; parts 0, 0 (repeat), 1 are fine.
    assert_eq!(code(&d.call(chunk(s, 0, 1, true, "x"))), Some(ErrorCode::TranscriptOutOfOrder));
    let accepted = |r: Response| match r {
        Response::TranscriptAccepted(a) => a.utterances,
        other => panic!("{other:?}"),
    };
    assert_eq!(accepted(d.call(chunk(s, 0, 0, false, "I feel tired and "))), 0);
    assert_eq!(accepted(d.call(chunk(s, 0, 0, false, "I feel tired and "))), 0);
    assert_eq!(accepted(d.call(chunk(s, 0, 1, true, "sad all the time"))), 1);
    let seq = match d.call(Request::SessionStop(s)) {
        Response::Session(SessionStatus { state: SessionState::Done { seq }, .. }) => seq,
        other => panic!("{other:?}"),
    };
    assert_eq!(kiosk.lit(), vec![Led::Ready]);
    // A second stop of the same session answers with the same result and logs nothing new.
    match d.call(Request::SessionStop(s)) {
        Response::Session(SessionStatus { state: SessionState::Done { seq: again }, .. }) => assert_eq!(again, seq),
        other => panic!("{other:?}"),
    }
    assert_eq!(d.dev.log().len(), 1);
    assert_eq!(code(&d.call(chunk(s, 1, 0, true, "late"))), Some(ErrorCode::SessionNotCapturing));
    let rec = d.dev.log().get(seq).expect("logged").clone();
    // The split utterance arrived whole: 7 participant words, 1 of them first-person.
    assert!(rec.modalities.has(Modalities::TEXT));
    assert!(rec.flags & ResultRecord::FLAG_SHORT_TRANSCRIPT != 0);
}

#[test]
fn sync_cursor_and_ack_persist_across_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut d = Driver { dev: device(dir.path(), FakeKiosk::default()), id: 0 };
    d.hello();
    for _ in 0..3 {
        let s = start(&mut d);
        d.call(chunk(s, 0, 0, true, "hello there"));
        d.call(Request::SessionStop(s));
    }
    let batch = |d: &mut Driver, after, max| match d.call(Request::Sync(SyncCursor { after, max })) {
        Response::Records(b) => b,
        other => panic!("{other:?}"),
    };
    let b = batch(&mut d, 0, 2);
    assert_eq!((b.records.iter().map(|r| r.seq).collect::<Vec<_>>(), b.last_seq), (vec![1, 2], 3));
    assert_eq!(batch(&mut d, 2, 0).records.len(), 1, "max 0 still returns one");
    // Acks beyond the log are clamped.
    assert_eq!(d.call(Request::SyncAck(Ack { upto: 99 })), Response::Acked(Ack { upto: 3 }));
    let id = d.dev.device_id().to_owned();
    drop(d);
    let mut d = Driver { dev: device(dir.path(), FakeKiosk::default()), id: 100 };
    d.hello();
    assert_eq!(d.dev.device_id(), id, "identity survives a restart");
    assert_eq!(d.call(Request::SyncAck(Ack { upto: 1 })), Response::Acked(Ack { upto: 3 }), "acks never go back");
    // Session ids are not reused after a restart.
    assert_eq!(start(&mut d), 4);
}

#[test]
fn a_bad_simulation_input_fails_the_start_not_the_device() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sim = dir.path().join("sim");
    std::fs::create_dir_all(&sim).expect("mkdir");
    std::fs::write(sim.join("audio.wav"), b"RIFF....WAVEjunk").expect("write");
    let mut d = Driver { dev: sim_device(&dir.path().join("data"), &sim, FakeKiosk::default()), id: 0 };
    d.hello();
    let r = d.call(Request::SessionStart(SessionStart {
        modalities: Modalities::ALL,
        label: truncated("t"),
        host_time_ms: 0,
    }));
    match r {
        Response::Error(e) => {
            assert_eq!(e.code, ErrorCode::BadInput);
            assert!(e.detail.contains("audio.wav"), "{}", e.detail);
        }
        other => panic!("{other:?}"),
    }
    // Text-only sessions still work on this device.
    let s = match d.call(Request::SessionStart(SessionStart {
        modalities: Modalities(Modalities::TEXT),
        label: truncated("t"),
        host_time_ms: 0,
    })) {
        Response::Session(s) => s.session,
        other => panic!("{other:?}"),
    };
    d.call(chunk(s, 0, 0, true, "I am fine thanks, I slept well and I enjoy my work a lot these days"));
    match d.call(Request::SessionStop(s)) {
        Response::Session(SessionStatus { state: SessionState::Done { seq }, .. }) => {
            let rec = d.dev.log().get(seq).expect("logged");
            assert_eq!(rec.modalities, Modalities(Modalities::TEXT));
            assert_eq!(rec.gates, [0.0, 0.0, 1.0]);
        }
        other => panic!("{other:?}"),
    }
}

/// One session on a simulated device with the face front-end, over the frames in `frames`.
fn session_flags(frames: &std::path::Path) -> (u16, Modalities) {
    let dir = tempfile::tempdir().expect("tempdir");
    let sim = dir.path().join("sim");
    std::fs::create_dir_all(&sim).expect("mkdir");
    let out = sim.join("frames");
    std::fs::create_dir(&out).expect("mkdir");
    for e in std::fs::read_dir(frames).expect("frames") {
        let p = e.expect("entry").path();
        std::fs::copy(&p, out.join(p.file_name().expect("name"))).expect("copy");
    }
    if frames.with_file_name("video.toml").exists() {
        std::fs::copy(frames.with_file_name("video.toml"), sim.join("video.toml")).expect("copy");
    }
    let face = device::load_face(None, None).expect("loads").expect("run scripts/install_landmark_model.sh (CI does)");
    let dev = sim_device(&dir.path().join("data"), &sim, FakeKiosk::default()).with_face(Some(face));
    let mut d = Driver { dev, id: 0 };
    d.hello();
    let s = start(&mut d);
    d.call(chunk(s, 0, 0, true, "I have been feeling fine lately"));
    let seq = match d.call(Request::SessionStop(s)) {
        Response::Session(SessionStatus { state: SessionState::Done { seq }, .. }) => seq,
        other => panic!("{other:?}"),
    };
    let rec = d.dev.log().get(seq).expect("logged");
    (rec.flags, rec.modalities)
}

#[test]
fn several_faces_and_damaged_frames_are_flagged_and_the_rest_measured() {
    let dir = tempfile::tempdir().expect("tempdir");
    let frames = dir.path().join("frames");
    std::fs::create_dir(&frames).expect("mkdir");
    std::fs::write(frames.join("video.toml"), "fps = 5\n").expect("write");
    // Twelve faces of scikit-image's `lfw_subset` in every frame, and one frame that is not a JPEG.
    let grid = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../vision/tests/fixtures/faces/lfw_grid.png");
    for i in 0..25 {
        std::fs::copy(&grid, frames.join(format!("{i:03}.png"))).expect("copy");
    }
    std::fs::write(frames.join("012.jpg"), b"\xFF\xD8\xFF\xE0 not a JPEG after all").expect("write");
    let (flags, modalities) = session_flags(&frames);
    assert!(modalities.has(Modalities::VIDEO), "the good frames are measured: {modalities:?}");
    assert_eq!(flags & ResultRecord::FLAG_NO_FACE, 0, "{flags:#x}");
    assert_ne!(flags & ResultRecord::FLAG_SEVERAL_FACES, 0, "{flags:#x}");
    assert_ne!(flags & ResultRecord::FLAG_DAMAGED_VIDEO, 0, "{flags:#x}");

    // The sample interview: one face, every frame good.
    let (flags, modalities) = session_flags(&sample().join("frames"));
    assert!(modalities.has(Modalities::VIDEO));
    assert_eq!(flags & (ResultRecord::FLAG_SEVERAL_FACES | ResultRecord::FLAG_DAMAGED_VIDEO), 0, "{flags:#x}");
}
