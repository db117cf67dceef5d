//! The protocol server and session state machine, driven directly, with a fake capture and a
//! fake pipeline: no media, no model, milliseconds per test. The real pipeline is tested
//! without the wire in `pipeline.rs`.

use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use boards::{FakePanel, Indicator};
use device::capture::{Capture, CaptureError, Captured};
use device::pipeline::{Job, Pipeline, PipelineError};
use device::{Device, DeviceConfig, Event};
use protocol::*;

/// Capture that records nothing: it fails to start when told to, else hands over 1.5 s of
/// nothing.
struct FakeCapture {
    fail_start: bool,
}

impl Capture for FakeCapture {
    fn available(&self) -> Modalities {
        Modalities::ALL
    }
    fn start(&mut self, _: Modalities) -> Result<(), CaptureError> {
        if self.fail_start {
            return Err(CaptureError::Microphone { device: "fake".into(), source: "unplugged".into() });
        }
        Ok(())
    }
    fn stop(&mut self) -> Result<Captured, CaptureError> {
        Ok(Captured { audio: None, video: None, duration_ms: 1_500, failed: Modalities::empty(), answers: None })
    }
}

type Turns = Arc<Mutex<Vec<Vec<(u32, u32)>>>>;

/// A pipeline that scores the number of participant words, remembers the text it was given,
/// waits for a go-ahead when gated, and panics on the word "PANIC".
struct FakePipeline {
    texts: Arc<Mutex<Vec<String>>>,
    /// Each session's participant turns (start, end ms).
    turns: Turns,
    gate: Option<Receiver<()>>,
}

impl Pipeline for FakePipeline {
    fn model_version(&self) -> &str {
        "fake-1"
    }
    fn replace_model(&mut self, loaded: device::LoadedModel) -> Result<(), device::pipeline::TextEncoderMismatch> {
        self.texts.lock().expect("lock").push(format!("model {}", loaded.model.version()));
        Ok(())
    }
    fn feature_schema(&self) -> SchemaHash {
        SchemaHash([7; 8])
    }
    fn process(&mut self, job: Job) -> Result<ResultRecord, PipelineError> {
        if let Some(gate) = &self.gate {
            let _ = gate.recv_timeout(Duration::from_secs(10));
        }
        let text = job.utterances.iter().map(|u| u.text.as_str()).collect::<Vec<_>>().join(" ");
        assert!(!text.contains("PANIC"), "a defect in the pipeline");
        let words = text.split_whitespace().count();
        self.texts.lock().expect("lock").push(text);
        self.turns.lock().expect("lock").push(job.utterances.iter().map(|u| (u.start_ms, u.end_ms)).collect());
        Ok(ResultRecord {
            seq: 0,
            session: job.session,
            label: job.label,
            started_ms: job.started_ms,
            finished_ms: job.started_ms.saturating_add(u64::from(job.captured.duration_ms)),
            compute_ms: 0,
            p_depressed: words as f32 / 100.0,
            phq8: 0.0,
            gates: [0.0, 0.0, 1.0],
            modalities: Modalities::TEXT,
            model_version: truncated("fake-1"),
            feature_schema: SchemaHash([7; 8]),
            flags: ResultFlags::SIMULATED | job.extra.flags,
            questionnaire: job.extra.questionnaire,
        })
    }
}

struct Driver {
    dev: Device,
    /// The test's host key, paired at the device.
    key: ed25519_dalek::SigningKey,
    id: u32,
    texts: Arc<Mutex<Vec<String>>>,
    turns: Turns,
    /// Releases one gated computation.
    go: Option<Sender<()>>,
}

fn driver(data: &std::path::Path, kiosk: FakePanel, fail_start: bool, gated: bool) -> Driver {
    driver_with(data, kiosk, fail_start, gated, "sim")
}

fn driver_on(data: &std::path::Path, kiosk: FakePanel, board: &str) -> Driver {
    driver_with(data, kiosk, false, false, board)
}

fn driver_with(data: &std::path::Path, kiosk: FakePanel, fail_start: bool, gated: bool, board: &str) -> Driver {
    let texts = Arc::new(Mutex::new(Vec::new()));
    let turns = Turns::default();
    let (go, gate) = if gated {
        let (tx, rx) = channel();
        (Some(tx), Some(rx))
    } else {
        (None, None)
    };
    let dev = device::open(
        DeviceConfig {
            data_dir: data.to_owned(),
            // The kiosk boards read a serial number this machine does not have.
            board: boards::Board { serial: None, ..boards::Board::by_name(board).expect("board") },
            simulated: true,
        },
        Box::new(FakeCapture { fail_start }),
        Box::new(kiosk),
        device::ModelSetup {
            policy: device::models::StorePolicy::default(),
            loader: Box::new(|_| {
                Ok(device::LoadedModel { model: Box::new(runtime::PlaceholderModel::default()), text_encoder: None })
            }),
        },
        |_| Ok(Box::new(FakePipeline { texts: Arc::clone(&texts), turns: Arc::clone(&turns), gate })),
    )
    .expect("device opens");
    let key = ed25519_dalek::SigningKey::from_bytes(&[9; 32]);
    let mut dev = dev;
    dev.pairings().add(key.verifying_key().to_bytes(), "test host").expect("pairs");
    Driver { dev, key, id: 0, texts, turns, go }
}

impl Driver {
    fn call(&mut self, req: Request) -> Response {
        self.id += 1;
        self.call_as(self.id, req)
    }

    fn call_as(&mut self, id: RequestId, req: Request) -> Response {
        let reply = self.dev.request(HostFrame { id, req });
        assert_eq!(reply.id, id);
        reply.resp
    }

    /// Hello without proving a key.
    fn hello_only(&mut self) -> Response {
        self.call(Request::Hello(Hello { protocol_version: PROTOCOL_VERSION, host: truncated("test") }))
    }

    /// Hello without proving a key; the device info it gets.
    fn stranger_hello(&mut self) -> DeviceInfo {
        match self.hello_only() {
            Response::DeviceInfo(i) => i,
            other => panic!("{other:?}"),
        }
    }

    /// Hello, then the test host's proof of its paired key; the device info the proof gets.
    fn hello(&mut self) -> Response {
        let info = match self.hello_only() {
            Response::DeviceInfo(i) => i,
            other => return other,
        };
        let auth = self.auth_for(&self.key.clone(), &info);
        self.call(Request::Auth(auth))
    }

    fn auth_for(&self, key: &ed25519_dalek::SigningKey, info: &DeviceInfo) -> Auth {
        use ed25519_dalek::Signer;
        let host_key = key.verifying_key().to_bytes();
        let msg = protocol::signed::auth_message(&info.device_id, &info.challenge, &host_key);
        Auth { host_key, signature: protocol::heapless::Vec::from_slice(&key.sign(&msg).to_bytes()).expect("64") }
    }

    /// Polls the session's status until it is no longer capturing or processing.
    fn outcome(&mut self, s: SessionId) -> SessionState {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match self.call(Request::SessionStatus(s)) {
                Response::Session(SessionStatus { state: SessionState::Processing, .. }) => {}
                Response::Session(st) => return st.state,
                other => panic!("{other:?}"),
            }
            assert!(Instant::now() < deadline, "session {s} never finished");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Stops the session and waits for its result.
    fn finish(&mut self, s: SessionId) -> u64 {
        match self.call(Request::SessionStop(s)) {
            Response::Session(SessionStatus { state: SessionState::Processing, .. }) => {}
            other => panic!("{other:?}"),
        }
        match self.outcome(s) {
            SessionState::Done { seq } => seq,
            other => panic!("{other:?}"),
        }
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
    let mut d = driver(dir.path(), FakePanel::default(), false, false);
    assert_eq!(code(&d.call(Request::Ping(1))), Some(ErrorCode::HelloFirst));
    let wrong = d.call(Request::Hello(Hello { protocol_version: PROTOCOL_VERSION + 1, host: truncated("future") }));
    assert_eq!(code(&wrong), Some(ErrorCode::UnsupportedVersion { supported: PROTOCOL_VERSION }));
    match d.hello() {
        Response::DeviceInfo(i) => {
            assert_eq!(i.active_model_version.as_str(), "fake-1");
            assert_eq!(i.feature_schema, SchemaHash([7; 8]));
            assert_eq!(
                i.capabilities,
                Capabilities::AUDIO | Capabilities::VIDEO | Capabilities::TEXT | Capabilities::SIMULATED
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(d.call(Request::Ping(7)), Response::Pong(7));
    assert_eq!(code(&d.call(Request::UploadCommit)), Some(ErrorCode::NoUpload));
}

#[test]
fn session_rules_and_multi_part_utterances() {
    let dir = tempfile::tempdir().expect("tempdir");
    let kiosk = FakePanel::default();
    let mut d = driver(dir.path(), kiosk.clone(), false, false);
    d.hello();
    assert_eq!(kiosk.shown(), Some(Indicator::Idle));
    let s = start(&mut d);
    assert_eq!(kiosk.shown(), Some(Indicator::Recording));
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
    // An utterance whose last part never came is left out.
    assert_eq!(accepted(d.call(chunk(s, 1, 0, false, "and then"))), 1);
    let seq = d.finish(s);
    assert_eq!(kiosk.shown(), Some(Indicator::Idle));
    // The split utterance reached the pipeline whole, once, and nothing else did.
    assert_eq!(*d.texts.lock().expect("lock"), vec!["I feel tired and sad all the time".to_owned()]);
    // A second stop of the same session answers with the same result and logs nothing new.
    match d.call(Request::SessionStop(s)) {
        Response::Session(SessionStatus { state: SessionState::Done { seq: again }, .. }) => assert_eq!(again, seq),
        other => panic!("{other:?}"),
    }
    assert_eq!(d.dev.log().len(), 1);
    assert_eq!(code(&d.call(chunk(s, 2, 0, true, "late"))), Some(ErrorCode::SessionNotCapturing));
    // The fake scores the words it was given: the eight of the split utterance.
    let rec = d.dev.log().get(seq).expect("logged");
    assert_eq!((rec.session, rec.p_depressed, rec.model_version.as_str()), (s, 0.08, "fake-1"));
}

#[test]
fn the_server_answers_while_a_stop_computes_and_a_retried_stop_computes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut d = driver(dir.path(), FakePanel::default(), false, true);
    d.hello();
    let s = start(&mut d);
    d.call(chunk(s, 0, 0, true, "one two three"));
    let stop_id = 1_000;
    let processing =
        |r: &Response| matches!(r, Response::Session(SessionStatus { state: SessionState::Processing, .. }));
    assert!(processing(&d.call_as(stop_id, Request::SessionStop(s))));
    // The pipeline is held: the device still answers, and says what it is doing.
    assert_eq!(d.call(Request::Ping(3)), Response::Pong(3));
    assert!(processing(&d.call(Request::SessionStatus(s))));
    // The stop's reply was lost and the host sends it again (same id): the cached answer.
    assert!(processing(&d.call_as(stop_id, Request::SessionStop(s))));
    // A fresh stop request (new id) reports where the session stands; it stops nothing twice.
    assert!(processing(&d.call(Request::SessionStop(s))));
    // A new session may start while the last one computes.
    let next = start(&mut d);
    assert_eq!(next, s + 1);
    d.go.as_ref().expect("gated").send(()).expect("release");
    assert_eq!(d.outcome(s), SessionState::Done { seq: 1 });
    assert_eq!(d.dev.log().len(), 1);
    assert_eq!(d.texts.lock().expect("lock").len(), 1, "computed once");
    d.go.as_ref().expect("gated").send(()).expect("release");
    assert_eq!(d.finish(next), 2);
}

#[test]
fn a_pipeline_defect_fails_that_session_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    let kiosk = FakePanel::default();
    let mut d = driver(dir.path(), kiosk.clone(), false, false);
    d.hello();
    let s = start(&mut d);
    d.call(chunk(s, 0, 0, true, "PANIC"));
    d.call(Request::SessionStop(s));
    assert_eq!(d.outcome(s), SessionState::Failed(ErrorCode::Internal));
    assert_eq!(kiosk.shown(), Some(Indicator::Error));
    assert!(d.dev.log().is_empty());
    let s = start(&mut d);
    d.call(chunk(s, 0, 0, true, "fine"));
    assert_eq!(d.finish(s), 1, "the worker survived");
}

#[test]
fn sync_cursor_and_ack_persist_across_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut d = driver(dir.path(), FakePanel::default(), false, false);
    d.hello();
    for _ in 0..3 {
        let s = start(&mut d);
        d.call(chunk(s, 0, 0, true, "hello there"));
        d.finish(s);
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
    let mut d = driver(dir.path(), FakePanel::default(), false, false);
    d.id = 100;
    d.hello();
    assert_eq!(d.dev.device_id(), id, "identity survives a restart");
    assert_eq!(d.call(Request::SyncAck(Ack { upto: 1 })), Response::Acked(Ack { upto: 3 }), "acks never go back");
    // Session ids are not reused after a restart.
    assert_eq!(start(&mut d), 4);
}

#[test]
fn a_capture_that_does_not_start_fails_the_start_not_the_device() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut d = driver(dir.path(), FakePanel::default(), true, false);
    d.hello();
    match d.call(Request::SessionStart(SessionStart {
        modalities: Modalities::ALL,
        label: truncated("t"),
        host_time_ms: 0,
    })) {
        Response::Error(e) => assert_eq!(e.code, ErrorCode::BadInput, "{}", e.detail),
        other => panic!("{other:?}"),
    }
    assert_eq!(d.call(Request::Ping(9)), Response::Pong(9));
    assert_eq!(code(&d.call(Request::SessionStatus(1))), Some(ErrorCode::UnknownSession), "no session was made");
}

fn status_of(r: Response) -> SessionState {
    match r {
        Response::Session(s) => s.state,
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_session_whose_host_went_silent_is_abandoned_and_any_host_can_abort_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let kiosk = FakePanel::default();
    let mut d = driver(dir.path(), kiosk.clone(), false, false);
    d.hello();
    let s = start(&mut d);
    // Another host connects: it sees the session it did not start.
    d.id = 500;
    match d.hello() {
        Response::DeviceInfo(i) => {
            let active = i.active_session.expect("the running session is shown");
            assert_eq!((active.session, active.state), (s, SessionState::Capturing));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        code(&d.call(Request::SessionStart(SessionStart {
            modalities: Modalities::ALL,
            label: truncated("x"),
            host_time_ms: 0,
        }))),
        Some(ErrorCode::SessionActive)
    );
    // The first host is gone: after the limit without a word about it, the session is dropped.
    d.dev.sessions().set_abandon_after(Duration::from_millis(30));
    std::thread::sleep(Duration::from_millis(60));
    let next = start(&mut d);
    assert_eq!(status_of(d.call(Request::SessionStatus(s))), SessionState::Failed(ErrorCode::SessionAborted));
    // And any host may abort the running session outright.
    assert_eq!(status_of(d.call(Request::SessionAbort(next))), SessionState::Failed(ErrorCode::SessionAborted));
    assert_eq!(kiosk.shown(), Some(Indicator::Idle));
    assert!(d.dev.log().is_empty(), "an aborted session has no result");
    match d.hello() {
        Response::DeviceInfo(i) => assert_eq!(i.active_session, None),
        other => panic!("{other:?}"),
    }
    assert_eq!(code(&d.call(chunk(next, 0, 0, true, "late"))), Some(ErrorCode::SessionNotCapturing));
}

#[test]
fn transcript_limits_are_enforced_with_a_typed_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut d = driver(dir.path(), FakePanel::default(), false, false);
    d.hello();
    let s = start(&mut d);
    let too_large = |r: &Response| matches!(code(r), Some(ErrorCode::TranscriptTooLarge { .. }));
    // 65,536 parts of one utterance used to overflow the part counter.
    assert!(too_large(&d.call(chunk(s, 0, u16::MAX, false, ""))));
    assert!(too_large(&d.call(chunk(s, 0, MAX_PARTS, false, ""))));
    // Bytes per utterance.
    let block = "x".repeat(MAX_TEXT);
    let parts = (MAX_UTTERANCE_BYTES / MAX_TEXT) as u16;
    for p in 0..parts {
        assert!(matches!(d.call(chunk(s, 0, p, false, &block)), Response::TranscriptAccepted(_)));
    }
    assert!(too_large(&d.call(chunk(s, 0, parts, true, &block))));
    // Bytes per session: utterances of `parts` blocks each until the session is full.
    let per_utterance = usize::from(parts) * MAX_TEXT;
    let fit = MAX_SESSION_TEXT_BYTES / per_utterance;
    for u in 1..fit as u32 {
        for p in 0..parts {
            assert!(matches!(d.call(chunk(s, u, p, p + 1 == parts, &block)), Response::TranscriptAccepted(_)), "{u}");
        }
    }
    let mut refused = false;
    for p in 0..parts {
        refused |= too_large(&d.call(chunk(s, fit as u32, p, false, &block)));
    }
    assert!(refused, "the session's text is bounded");
    // Utterances per session, in a new session of short ones; the count stays exact.
    d.call(Request::SessionAbort(s));
    let s = start(&mut d);
    for u in 0..MAX_UTTERANCES {
        match d.call(chunk(s, u, 0, true, "ok")) {
            Response::TranscriptAccepted(a) => assert_eq!(a.utterances, u + 1),
            other => panic!("{other:?}"),
        }
    }
    assert!(too_large(&d.call(chunk(s, MAX_UTTERANCES, 0, true, "one more"))));
    assert_eq!(d.finish(s), 1);
}

#[test]
fn out_of_range_fields_are_refused_not_wrapped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut d = driver(dir.path(), FakePanel::default(), false, false);
    d.hello();
    let start_at = |d: &mut Driver, host_time_ms| {
        d.call(Request::SessionStart(SessionStart { modalities: Modalities::ALL, label: truncated("t"), host_time_ms }))
    };
    assert_eq!(code(&start_at(&mut d, u64::MAX)), Some(ErrorCode::BadRequest));
    assert_eq!(code(&start_at(&mut d, MAX_HOST_TIME_MS + 1)), Some(ErrorCode::BadRequest));
    let s = match start_at(&mut d, MAX_HOST_TIME_MS) {
        Response::Session(s) => s.session,
        other => panic!("{other:?}"),
    };
    let seq = d.finish(s);
    let r = d.dev.log().get(seq).expect("logged");
    assert!(r.finished_ms >= r.started_ms);
}

#[test]
fn a_result_stored_before_a_restart_is_found_by_its_session() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut d = driver(dir.path(), FakePanel::default(), false, false);
    d.hello();
    let s = start(&mut d);
    d.call(chunk(s, 0, 0, true, "words"));
    let seq = d.finish(s);
    drop(d);
    let mut d = driver(dir.path(), FakePanel::default(), false, false);
    d.id = 50;
    d.hello();
    assert_eq!(status_of(d.call(Request::SessionStatus(s))), SessionState::Done { seq });
    assert_eq!(code(&d.call(Request::SessionStatus(s + 1))), Some(ErrorCode::UnknownSession));
}

mod wire_fields {
    use super::*;
    use proptest::prelude::*;

    fn text(max: usize) -> impl Strategy<Value = String> {
        proptest::collection::vec(any::<char>(), 0..max).prop_map(|c| c.into_iter().collect())
    }

    fn request() -> impl Strategy<Value = Request> {
        let session = prop_oneof![0u32..4, any::<u32>()];
        prop_oneof![
            (any::<u8>(), text(40), prop_oneof![0u64..10_000, any::<u64>()]).prop_map(|(m, label, t)| {
                Request::SessionStart(SessionStart {
                    modalities: Modalities::from_bits_retain(m),
                    label: truncated(&label),
                    host_time_ms: t,
                })
            }),
            (
                session.clone(),
                prop_oneof![0u32..4, any::<u32>()],
                prop_oneof![0u16..3, any::<u16>()],
                any::<bool>(),
                any::<u32>(),
                any::<u32>(),
                any::<bool>(),
                text(200)
            )
                .prop_map(|(session, utterance, part, last_part, start_ms, end_ms, p, text)| {
                    Request::TranscriptChunk(TranscriptChunk {
                        session,
                        utterance,
                        part,
                        last_part,
                        start_ms,
                        end_ms,
                        speaker: if p { Speaker::Participant } else { Speaker::Interviewer },
                        text: truncated(&text),
                    })
                }),
            session.clone().prop_map(Request::SessionStop),
            session.clone().prop_map(Request::SessionStatus),
            session.prop_map(Request::SessionAbort),
            (any::<u64>(), any::<u8>()).prop_map(|(after, max)| Request::Sync(SyncCursor { after, max })),
            any::<u64>().prop_map(|upto| Request::SyncAck(Ack { upto })),
            any::<u32>().prop_map(Request::Ping),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

        /// Any field values, in any order: the device answers every request (no panic, in
        /// debug where arithmetic overflow panics), and what it logs stays consistent.
        #[test]
        fn any_request_fields_get_an_answer_and_keep_the_log_consistent(
            reqs in proptest::collection::vec(request(), 1..40)
        ) {
            let dir = tempfile::tempdir().expect("tempdir");
            let mut d = driver(dir.path(), FakePanel::default(), false, false);
            d.hello();
            for req in reqs {
                let _ = d.call(req);
            }
            d.dev.sessions().wait_idle(Duration::from_secs(10));
            let mut last = 0;
            for r in d.dev.log().after(0, usize::MAX) {
                prop_assert!(r.seq > last);
                prop_assert!(r.finished_ms >= r.started_ms);
                prop_assert!(r.started_ms <= MAX_HOST_TIME_MS);
                last = r.seq;
            }
        }
    }
}

#[test]
fn an_unpaired_host_learns_only_what_the_device_is() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut d = driver(dir.path(), FakePanel::default(), false, false);
    // Results exist (run by the paired host).
    d.hello();
    let s = start(&mut d);
    d.call(chunk(s, 0, 0, true, "one two three"));
    d.call(Request::SessionStop(s));
    assert!(matches!(d.outcome(s), SessionState::Done { .. }));
    // A stranger connects.
    let info = d.stranger_hello();
    assert!(!info.authorized);
    assert_eq!((info.last_result_seq, info.active_session), (0, None), "no counts before authorisation");
    assert_eq!(info.active_model_version.as_str(), "fake-1");
    for req in [
        Request::SessionStart(SessionStart { modalities: Modalities::TEXT, label: truncated("x"), host_time_ms: 0 }),
        Request::SessionStatus(s),
        Request::SessionStop(s),
        Request::SessionAbort(s),
        Request::Sync(SyncCursor { after: 0, max: 8 }),
        Request::SyncAck(Ack { upto: 1 }),
        chunk(s, 1, 0, true, "x"),
        Request::UploadStatus,
        Request::Unpair,
    ] {
        assert_eq!(code(&d.call(req)), Some(ErrorCode::Unauthorized));
    }
    // A key that is not paired, however well it signs, is refused.
    let stranger = ed25519_dalek::SigningKey::from_bytes(&[3; 32]);
    let auth = d.auth_for(&stranger, &info);
    assert_eq!(code(&d.call(Request::Auth(auth))), Some(ErrorCode::Unauthorized));
    assert_eq!(code(&d.call(Request::Sync(SyncCursor { after: 0, max: 8 }))), Some(ErrorCode::Unauthorized));
}

#[test]
fn a_recorded_authorisation_does_not_authorise_a_later_connection() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut d = driver(dir.path(), FakePanel::default(), false, false);
    let info = d.stranger_hello();
    let recorded = d.auth_for(&d.key.clone(), &info);
    assert!(matches!(d.call(Request::Auth(recorded.clone())), Response::DeviceInfo(i) if i.authorized));
    // Replayed on a new connection (a new challenge): refused.
    let next = d.stranger_hello();
    assert_ne!(next.challenge, info.challenge);
    assert_eq!(code(&d.call(Request::Auth(recorded))), Some(ErrorCode::Unauthorized));
    assert_eq!(code(&d.call(Request::Sync(SyncCursor { after: 0, max: 8 }))), Some(ErrorCode::Unauthorized));
}

fn pair_confirm(d: &Driver, key: &ed25519_dalek::SigningKey, info: &DeviceInfo, code: u32) -> Request {
    use ed25519_dalek::Signer;
    let host_key = key.verifying_key().to_bytes();
    let msg = protocol::signed::pair_message(&info.device_id, &info.challenge, code, &host_key);
    let _ = d;
    Request::PairConfirm(PairConfirm {
        code,
        signature: protocol::heapless::Vec::from_slice(&key.sign(&msg).to_bytes()).expect("64"),
    })
}

#[test]
fn pairing_takes_the_code_shown_at_the_device_and_unpairing_forgets_the_host() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut d = driver(dir.path(), FakePanel::default(), false, false);
    let laptop = ed25519_dalek::SigningKey::from_bytes(&[4; 32]);
    let info = d.stranger_hello();
    // Confirming with nothing begun fails.
    assert_eq!(code(&d.call(pair_confirm(&d, &laptop, &info, 1))), Some(ErrorCode::PairingFailed));
    let begun = d.call(Request::PairBegin(PairBegin {
        host_key: laptop.verifying_key().to_bytes(),
        name: truncated("clinic laptop\n"),
    }));
    assert!(
        matches!(begun, Response::Pairing(PairChallenge { method: PairMethod::Code, attempts: 3, .. })),
        "{begun:?}"
    );
    let shown = std::fs::read_to_string(dir.path().join("pairing.code")).expect("the code is shown");
    assert!(shown.ends_with("clinic laptop\\u{a}\n"), "control characters escaped: {shown:?}");
    let the_code: u32 = shown[..6].parse().expect("six digits");
    // A wrong code, and the right code signed by another key than the one asking: refused.
    assert_eq!(
        code(&d.call(pair_confirm(&d, &laptop, &info, (the_code + 1) % 1_000_000))),
        Some(ErrorCode::PairingFailed)
    );
    let other = ed25519_dalek::SigningKey::from_bytes(&[5; 32]);
    assert_eq!(code(&d.call(pair_confirm(&d, &other, &info, the_code))), Some(ErrorCode::PairingFailed));
    assert_eq!(d.call(pair_confirm(&d, &laptop, &info, the_code)), Response::Paired(Pairings { hosts: 2 }));
    assert!(!dir.path().join("pairing.code").exists(), "the code is gone once used");
    // The pairing connection is authorised; a later one proves the key.
    assert!(matches!(d.call(Request::Sync(SyncCursor { after: 0, max: 8 })), Response::Records(_)));
    let next = d.stranger_hello();
    let auth = d.auth_for(&laptop, &next);
    assert!(matches!(d.call(Request::Auth(auth)), Response::DeviceInfo(i) if i.authorized));
    // Paired hosts survive a restart of the device.
    assert_eq!(device::pairing::Pairings::open(dir.path()).expect("opens").count(), 2);
    // Unpairing forgets this host only.
    assert_eq!(d.call(Request::Unpair), Response::Paired(Pairings { hosts: 1 }));
    assert_eq!(code(&d.call(Request::Sync(SyncCursor { after: 0, max: 8 }))), Some(ErrorCode::Unauthorized));
    let again = d.stranger_hello();
    let auth = d.auth_for(&laptop, &again);
    assert_eq!(code(&d.call(Request::Auth(auth))), Some(ErrorCode::Unauthorized));
    // The device-side reset forgets everyone.
    assert_eq!(d.dev.pairings().reset().expect("resets"), 1);
    assert!(matches!(d.hello(), Response::Error(Error { code: ErrorCode::Unauthorized, .. })));
}

#[test]
fn a_code_takes_three_tries_and_many_wrong_codes_lock_pairing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut d = driver(dir.path(), FakePanel::default(), false, false);
    let laptop = ed25519_dalek::SigningKey::from_bytes(&[4; 32]);
    let info = d.stranger_hello();
    let begin = |d: &mut Driver| {
        d.call(Request::PairBegin(PairBegin { host_key: laptop.verifying_key().to_bytes(), name: truncated("l") }))
    };
    let mut wrong = 0;
    for _round in 0..4 {
        assert!(matches!(begin(&mut d), Response::Pairing(_)));
        let the_code: u32 =
            std::fs::read_to_string(dir.path().join("pairing.code")).expect("shown")[..6].parse().expect("digits");
        for _ in 0..3 {
            let guess = (the_code + 1 + wrong) % 1_000_000;
            assert_eq!(code(&d.call(pair_confirm(&d, &laptop, &info, guess))), Some(ErrorCode::PairingFailed));
            wrong += 1;
            if wrong == device::pairing::MAX_FAILURES {
                break;
            }
        }
        // After three wrong tries the code is spent: even the right one fails.
        assert_eq!(code(&d.call(pair_confirm(&d, &laptop, &info, the_code))), Some(ErrorCode::PairingFailed));
        if wrong == device::pairing::MAX_FAILURES {
            break;
        }
    }
    assert_eq!(code(&begin(&mut d)), Some(ErrorCode::PairingFailed), "locked after {wrong} wrong codes");
}

#[test]
fn the_kiosk_button_held_pairs_without_the_code() {
    let dir = tempfile::tempdir().expect("tempdir");
    let kiosk = FakePanel::default();
    let mut d = driver_on(dir.path(), kiosk.clone(), "rpi4");
    let laptop = ed25519_dalek::SigningKey::from_bytes(&[4; 32]);
    let info = d.stranger_hello();
    let begun =
        d.call(Request::PairBegin(PairBegin { host_key: laptop.verifying_key().to_bytes(), name: truncated("l") }));
    assert!(matches!(begun, Response::Pairing(PairChallenge { method: PairMethod::Button, .. })), "{begun:?}");
    assert_eq!(code(&d.call(pair_confirm(&d, &laptop, &info, 0))), Some(ErrorCode::PairingFailed), "not held");
    kiosk.press(true);
    assert_eq!(d.call(pair_confirm(&d, &laptop, &info, 0)), Response::Paired(Pairings { hosts: 2 }));
}

// ---- the kiosk: sessions run on the device alone ----

/// The default script with no lead before answers and a short closing screen (the tests press
/// through it in milliseconds).
fn quick_script(instrument: &str) -> device::kiosk::Script {
    let text = device::kiosk::script::DEFAULT
        .replace("lead_s = 2", "lead_s = 0")
        .replace("done_s = 20", "done_s = 1")
        .replace("instrument = \"phq8\"", &format!("instrument = \"{instrument}\""));
    device::kiosk::Script::from_toml(&text, "test").expect("valid")
}

/// Lets the serve loop run ~60 ms (the button's level settles in 30).
fn settle(d: &mut Driver) {
    for _ in 0..4 {
        d.dev.step();
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn press(d: &mut Driver, panel: &FakePanel) {
    panel.press(true);
    settle(d);
    panel.press(false);
    settle(d);
}

/// A kiosk with a screen on `d`, taken by taps through consent and every interview prompt to
/// its questionnaire (`instrument`).
fn kiosk_through_the_interview(d: &mut Driver, instrument: &str) {
    use device::kiosk::Input;
    let script = quick_script(instrument);
    let prompts = script.prompts.len();
    d.dev.set_kiosk(device::kiosk::Kiosk::new(script, true, Box::new(device::kiosk::Silent)));
    d.dev.handle(Event::Tap(Input::Start));
    d.dev.handle(Event::Tap(Input::Agree { research: false }));
    for _ in 0..prompts {
        settle(d);
        d.dev.handle(Event::Tap(Input::AnswerDone));
    }
}

fn kiosk_state(d: &Driver) -> device::kiosk::State {
    d.dev.kiosk().expect("a kiosk").machine().state().clone()
}

fn kiosk_done(d: &mut Driver) -> device::kiosk::Outcome {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        d.dev.step();
        if let device::kiosk::State::Done { outcome, .. } = kiosk_state(d) {
            return outcome;
        }
        assert!(Instant::now() < deadline, "the kiosk session never ended: {:?}", kiosk_state(d));
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn a_field_unit_runs_a_whole_interview_by_button_and_a_host_coming_and_going_changes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let panel = FakePanel::default();
    let mut d = driver_on(dir.path(), panel.clone(), "rpi5");
    let script = quick_script("phq8");
    let prompts = script.prompts.len();
    d.dev.set_kiosk(device::kiosk::Kiosk::new(script, false, Box::new(device::kiosk::Silent)));
    press(&mut d, &panel);
    let session = d.dev.sessions().active().expect("the button started a session").session;
    assert_eq!(panel.shown(), Some(Indicator::Recording));
    for answer in 0..prompts {
        // The answer window is open; a host comes and goes half-way.
        std::thread::sleep(Duration::from_millis(30));
        if answer == prompts / 2 {
            let Response::DeviceInfo(info) = d.hello() else { panic!("a paired host is let in") };
            assert_eq!(info.active_session.map(|s| s.session), Some(session), "a host can watch");
            assert!(matches!(d.hello(), Response::DeviceInfo(_)));
            assert_eq!(
                code(&d.call(Request::SessionStart(SessionStart {
                    modalities: Modalities::ALL,
                    label: truncated("host"),
                    host_time_ms: 0,
                }))),
                Some(ErrorCode::SessionActive),
                "the kiosk's session is not the host's to replace"
            );
        }
        press(&mut d, &panel);
    }
    let seq = match kiosk_done(&mut d) {
        device::kiosk::Outcome::Stored(seq) => seq,
        other => panic!("{other:?}"),
    };
    assert_eq!(panel.shown(), Some(Indicator::Done));
    let turns = d.turns.lock().expect("lock")[0].clone();
    assert_eq!(turns.len(), prompts, "one participant turn per answer window");
    assert!(turns.windows(2).all(|w| w[0].1 <= w[1].0), "turns in order, never overlapping: {turns:?}");
    assert!(turns.iter().all(|(s, e)| e >= s && e - s >= 20), "each window is as long as it was open: {turns:?}");
    // The result waits in the log for a host.
    assert!(matches!(d.hello(), Response::DeviceInfo(_)));
    let Response::Records(batch) = d.call(Request::Sync(SyncCursor { after: 0, max: 8 })) else { panic!() };
    let r = &batch.records[0];
    assert_eq!((r.seq, r.session), (seq, session));
    assert!(r.flags.contains(ResultFlags::KIOSK) && r.questionnaire.is_none(), "{:?}", r.flags);
    // The closing screen gives way to idle.
    std::thread::sleep(Duration::from_millis(1_050));
    settle(&mut d);
    assert_eq!(kiosk_state(&d), device::kiosk::State::Idle);
}

#[test]
fn phq9_item_9_at_the_kiosk_shows_help_raises_the_alert_and_the_result_is_urgent() {
    use device::kiosk::Input;
    let dir = tempfile::tempdir().expect("tempdir");
    let panel = FakePanel::default();
    let mut d = driver_on(dir.path(), panel.clone(), "rpi5");
    kiosk_through_the_interview(&mut d, "phq9");
    assert!(matches!(kiosk_state(&d), device::kiosk::State::Questionnaire { item: 0, .. }));
    for a in [1, 1, 2, 1, 0, 1, 1, 0] {
        d.dev.handle(Event::Tap(Input::Answer(a)));
    }
    assert!(!panel.alerting());
    d.dev.handle(Event::Tap(Input::Answer(2)));
    assert!(panel.alerting(), "item 9 above 0 raises the staff alert at once");
    assert!(matches!(kiosk_done(&mut d), device::kiosk::Outcome::Stored(_)));
    assert_eq!(panel.shown(), Some(Indicator::Attention));
    assert!(matches!(d.hello(), Response::DeviceInfo(_)));
    let Response::Records(batch) = d.call(Request::Sync(SyncCursor { after: 0, max: 8 })) else { panic!() };
    let r = &batch.records[0];
    assert!(r.flags.contains(ResultFlags::URGENT | ResultFlags::KIOSK), "{:?}", r.flags);
    let q = r.questionnaire.as_ref().expect("the questionnaire is stored with the result");
    assert_eq!((q.instrument, q.score(), q.needs_safety_assessment()), (Instrument::Phq9, 9, true));
    // The closing screen stays for staff; a long press resets it.
    std::thread::sleep(Duration::from_millis(1_100));
    settle(&mut d);
    assert!(matches!(kiosk_state(&d), device::kiosk::State::Done { .. }));
    panel.press(true);
    let held = Instant::now();
    while held.elapsed() < Duration::from_millis(2_200) {
        settle(&mut d);
    }
    panel.press(false);
    settle(&mut d);
    assert_eq!(kiosk_state(&d), device::kiosk::State::Idle);
    assert!(!panel.alerting());
}

#[test]
fn a_host_aborting_or_stopping_the_kiosk_session_is_followed_by_the_kiosk() {
    use device::kiosk::Input;
    let dir = tempfile::tempdir().expect("tempdir");
    let panel = FakePanel::default();
    let mut d = driver_on(dir.path(), panel.clone(), "rpi5");
    d.dev.set_kiosk(device::kiosk::Kiosk::new(quick_script("phq8"), true, Box::new(device::kiosk::Silent)));
    d.dev.handle(Event::Tap(Input::Start));
    d.dev.handle(Event::Tap(Input::Agree { research: false }));
    settle(&mut d);
    let session = d.dev.sessions().active().expect("capturing").session;
    assert!(matches!(d.hello(), Response::DeviceInfo(_)));
    assert!(matches!(d.call(Request::SessionAbort(session)), Response::Session(_)));
    assert!(matches!(kiosk_done(&mut d), device::kiosk::Outcome::Aborted(_)));
    assert_eq!(d.dev.log().len(), 0);
    // A host stopping it: the result is computed and the kiosk says so.
    std::thread::sleep(Duration::from_millis(1_050));
    settle(&mut d);
    d.dev.handle(Event::Tap(Input::Start));
    d.dev.handle(Event::Tap(Input::Agree { research: false }));
    settle(&mut d);
    let session = d.dev.sessions().active().expect("capturing").session;
    assert!(matches!(d.call(Request::SessionStop(session)), Response::Session(_)));
    assert!(matches!(kiosk_done(&mut d), device::kiosk::Outcome::Stored(1)));
    // The patient stopping one: nothing is kept.
    std::thread::sleep(Duration::from_millis(1_050));
    settle(&mut d);
    d.dev.handle(Event::Tap(Input::Start));
    d.dev.handle(Event::Tap(Input::Agree { research: false }));
    settle(&mut d);
    d.dev.handle(Event::Tap(Input::Stop));
    assert!(matches!(kiosk_done(&mut d), device::kiosk::Outcome::Aborted(_)));
    assert!(d.dev.sessions().active().is_none());
    assert_eq!(d.dev.log().len(), 1);
}

#[test]
fn the_kiosk_hears_of_its_result_from_the_finished_event_and_from_nothing_else() {
    use device::kiosk::{Input, Outcome, State};
    let dir = tempfile::tempdir().expect("tempdir");
    let mut d = driver(dir.path(), FakePanel::default(), false, true);
    kiosk_through_the_interview(&mut d, "phq8");
    for a in [0, 1, 0, 1, 0, 1, 0, 1] {
        d.dev.handle(Event::Tap(Input::Answer(a)));
    }
    assert!(matches!(kiosk_state(&d), State::Processing { .. }), "{:?}", kiosk_state(&d));
    // The worker computes; the loop does not run, so no event reaches the device.
    d.go.as_ref().expect("gated").send(()).expect("release");
    let deadline = Instant::now() + Duration::from_secs(10);
    let finished = loop {
        if let Some(f) = d.dev.sessions().take_finished() {
            break f;
        }
        assert!(Instant::now() < deadline, "the worker never finished");
        std::thread::sleep(Duration::from_millis(5));
    };
    // Ticks, taps and host requests do not tell the kiosk: only the event does.
    settle(&mut d);
    d.dev.handle(Event::Tap(Input::Start));
    assert!(matches!(d.hello(), Response::DeviceInfo(_)));
    assert!(matches!(kiosk_state(&d), State::Processing { .. }), "{:?}", kiosk_state(&d));
    assert_eq!(d.dev.log().len(), 0, "not logged before the event is handled");
    assert!(d.dev.handle(Event::Finished(finished)).is_none(), "only a request is answered");
    match kiosk_state(&d) {
        State::Done { outcome: Outcome::Stored(seq), .. } => assert_eq!(seq, d.dev.log().last_seq()),
        other => panic!("{other:?}"),
    }
    assert_eq!(d.dev.log().len(), 1);
}

#[test]
fn power_lost_mid_session_leaves_the_device_idle_and_the_session_aborted() {
    use device::kiosk::Input;
    let dir = tempfile::tempdir().expect("tempdir");
    let session = {
        let mut d = driver_on(dir.path(), FakePanel::default(), "rpi5");
        d.dev.set_kiosk(device::kiosk::Kiosk::new(quick_script("phq8"), true, Box::new(device::kiosk::Silent)));
        d.dev.handle(Event::Tap(Input::Start));
        d.dev.handle(Event::Tap(Input::Agree { research: false }));
        settle(&mut d);
        d.dev.handle(Event::Tap(Input::AnswerDone));
        d.dev.sessions().active().expect("capturing").session
        // The device goes away here, mid-interview.
    };
    let mut d = driver_on(dir.path(), FakePanel::default(), "rpi5");
    assert!(d.dev.sessions().active().is_none(), "idle after the restart");
    assert!(matches!(d.hello(), Response::DeviceInfo(_)));
    match d.call(Request::SessionStatus(session)) {
        Response::Session(s) => assert_eq!(s.state, SessionState::Failed(ErrorCode::SessionAborted)),
        other => panic!("{other:?}"),
    }
    assert_eq!(d.dev.log().len(), 0, "never a result");
    // The numbering goes on past it.
    assert!(start(&mut d) > session);
}
