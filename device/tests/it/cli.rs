//! The `mimml-device` binary on a pty: it serves, keeps results across restarts, and refuses
//! to start without inputs.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use link::{FramedLink, SerialPort};
use protocol::*;

struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn sample() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../assets/sample/session-001")
}

fn spawn(port: &str, data: &Path) -> Daemon {
    let mut cmd = daemon(port, data);
    cmd.arg("--simulate").arg(sample());
    Daemon(cmd.spawn().expect("spawns"))
}

/// The test host's key.
fn host_key() -> ed25519_dalek::SigningKey {
    ed25519_dalek::SigningKey::from_bytes(&[42; 32])
}

/// Pairs the test host at the device, as someone with its data folder would
/// (`mimml-device pairings add`), then returns the daemon's command.
fn daemon(port: &str, data: &Path) -> Command {
    std::fs::create_dir_all(data).expect("data dir");
    let public = data.with_extension("host.pub");
    std::fs::write(&public, runtime::signing::public_line(&host_key().verifying_key(), "test")).expect("key");
    let out = Command::new(env!("CARGO_BIN_EXE_mimml-device"))
        .args(["pairings", "--data-dir"])
        .arg(data)
        .args(["add", "--key"])
        .arg(&public)
        .output()
        .expect("runs");
    assert!(
        out.status.success() || String::from_utf8_lossy(&out.stderr).contains("in use"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mimml-device"));
    cmd.arg("run");
    if !port.is_empty() {
        cmd.args(["--port", port]);
    }
    // The board is the default one, `sim`, unless the caller names a board file.
    cmd.arg("--data-dir").arg(data).stdout(Stdio::null()).stderr(Stdio::null());
    cmd
}

/// One session of `seconds` with one participant utterance over its first three seconds;
/// returns the stored result.
fn one_session<P: std::io::Read + std::io::Write>(link: &mut FramedLink<P>, seconds: f32) -> ResultRecord {
    hello(link, 1);
    let s = match call(
        link,
        2,
        Request::SessionStart(SessionStart { modalities: Modalities::ALL, label: truncated("live"), host_time_ms: 0 }),
    ) {
        Response::Session(s) => s.session,
        other => panic!("{other:?}"),
    };
    call(
        link,
        3,
        Request::TranscriptChunk(TranscriptChunk {
            session: s,
            utterance: 0,
            part: 0,
            last_part: true,
            start_ms: 0,
            end_ms: 3_000,
            speaker: Speaker::Participant,
            text: truncated("I haven't been sleeping well and I feel tired all the time."),
        }),
    );
    std::thread::sleep(Duration::from_secs_f32(seconds));
    assert_eq!(stop(link, 4, s), 1);
    match call(link, 5, Request::Sync(SyncCursor { after: 0, max: 8 })) {
        Response::Records(b) => b.records.into_iter().next().expect("one record"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_file_played_as_a_camera_is_tracked_live_and_flagged_simulated() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (controller, device_end) = link::pty_pair().expect("pty");
    let port = device_end.name().expect("path");
    let mut link = FramedLink::new(controller);
    let mut cmd = daemon(&port, dir.path());
    cmd.arg("--camera").arg(sample().join("frames"));
    let _daemon = Daemon(cmd.spawn().expect("spawns"));
    // Long enough for the camera thread's first frames on a loaded machine (the tests run two
    // at a time beside the pipeline's): video is present only if a frame was analysed.
    let r = one_session(&mut link, 2.0);
    assert_eq!(r.modalities, Modalities::VIDEO | Modalities::TEXT, "no microphone: no audio");
    assert!(r.flags.contains(ResultFlags::SIMULATED) && !r.flags.contains(ResultFlags::NO_FACE), "{}", r.flags);
}

/// The whole live path, on the rig's hardware where the environment names it (the `hil`
/// nextest profile: `.config/nextest.toml`) and on stand-ins otherwise:
///
/// | variable | hardware | stand-in |
/// |---|---|---|
/// | `MIMML_HIL_PORT`, `MIMML_HIL_HOST_PORT` | the device's serial port and the host's end of the cable to it | a pty pair |
/// | `MIMML_HIL_CAMERA` | a V4L2 camera (`/dev/video0`; build with `v4l`) | the sample interview's frames as a camera |
/// | `MIMML_HIL_ALSA` | an ALSA capture PCM (`plughw:1,0`) | ALSA's `file` plugin playing five seconds of the sample interview |
/// | `MIMML_HIL_GPIOCHIP` | a GPIO chip with a button and LEDs on the Raspberry Pi 5's lines (build with `gpio`) | LEDs to the log |
#[cfg(feature = "alsa")]
#[test]
fn hil_a_live_session_records_the_microphone_and_tracks_the_camera() {
    let hw = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cmd = daemon("", &dir.path().join("data"));
    let mic = hw("MIMML_HIL_ALSA").unwrap_or_else(|| {
        let speech = features::audio::read_wav(&sample().join("audio.wav")).expect("sample audio");
        let raw = dir.path().join("mic.raw");
        let pcm: Vec<u8> = speech.samples[5 * 16_000..10 * 16_000]
            .iter()
            .flat_map(|&v| ((v * 32768.0).round() as i16).to_le_bytes())
            .collect();
        std::fs::write(&raw, pcm).expect("raw");
        let conf = dir.path().join("asound.conf");
        std::fs::write(
            &conf,
            format!(
                "pcm.fromfile {{\n type file\n slave.pcm {{ type null }}\n file \"/dev/null\"\n infile \"{}\"\n format \"raw\"\n}}\n",
                raw.display()
            ),
        )
        .expect("conf");
        cmd.env("ALSA_CONFIG_PATH", &conf);
        "fromfile".into()
    });
    let camera = hw("MIMML_HIL_CAMERA").map_or_else(|| sample().join("frames"), Into::into);
    // A few seconds of speech: the presence rule's default (5 s) is lowered for this short take.
    cmd.args(["--mic", &mic, "--min-speech", "1", "--camera"]).arg(&camera);
    if let Some(chip) = hw("MIMML_HIL_GPIOCHIP") {
        let rpi5 = boards::Board::by_name("rpi5").expect("rpi5").gpio.expect("rpi5 has GPIO");
        let board = dir.path().join("rig.toml");
        std::fs::write(
            &board,
            format!(
                "name = \"hil\"\ndescription = \"HIL rig\"\narch = \"any\"\n[link]\nbaud = 115200\n\
                 [gpio]\nchip = \"{chip}\"\nlines = {}\nbutton = {}\nled_ready = {}\nled_busy = {}\nled_error = {}\n\
                 [inference]\naccelerator = \"cpu\"\nthreads = 1\n",
                rpi5.lines, rpi5.button, rpi5.led_ready, rpi5.led_busy, rpi5.led_error
            ),
        )
        .expect("board");
        cmd.arg("--board-file").arg(&board);
    }
    let r = match (hw("MIMML_HIL_PORT"), hw("MIMML_HIL_HOST_PORT")) {
        (Some(device_port), Some(host_port)) => {
            cmd.args(["--port", &device_port]);
            let _daemon = Daemon(cmd.spawn().expect("spawns"));
            std::thread::sleep(Duration::from_secs(2));
            let port = link::open(&host_port, 115_200).expect("the host's end of the cable");
            one_session(&mut FramedLink::new(port), 3.5)
        }
        _ => {
            let (controller, device_end) = link::pty_pair().expect("pty");
            cmd.args(["--port", &device_end.name().expect("path")]);
            let _daemon = Daemon(cmd.spawn().expect("spawns"));
            one_session(&mut FramedLink::new(controller), 3.5)
        }
    };
    assert_eq!(r.modalities, Modalities::ALL, "flags {}", r.flags);
    assert!(!r.flags.contains(ResultFlags::LOW_QUALITY_AUDIO), "flags {}", r.flags);
    assert!(r.gates[0] > 0.0 && r.gates[1] > 0.0, "gates {:?}", r.gates);
}

fn call<P: std::io::Read + std::io::Write>(link: &mut FramedLink<P>, id: u32, req: Request) -> Response {
    // The daemon may still be starting: resend until it answers.
    let give_up = Instant::now() + Duration::from_secs(20);
    while Instant::now() < give_up {
        link.send(&HostFrame { id, req: req.clone() }).expect("send");
        let deadline = Instant::now() + Duration::from_millis(500);
        while let Some(f) = link.recv::<DeviceFrame>(deadline).expect("recv") {
            if f.id == id {
                return f.resp;
            }
        }
    }
    panic!("daemon never answered {req:?}");
}

/// Stops session `s` (request `id`) and polls its status (ids from `id * 1000`) until the
/// device has logged the result; returns its sequence number.
fn stop<P: std::io::Read + std::io::Write>(link: &mut FramedLink<P>, id: u32, s: SessionId) -> u64 {
    let mut state = match call(link, id, Request::SessionStop(s)) {
        Response::Session(st) => st.state,
        other => panic!("{other:?}"),
    };
    let mut poll = id * 1000;
    let give_up = Instant::now() + Duration::from_secs(60);
    while state == SessionState::Processing && Instant::now() < give_up {
        std::thread::sleep(Duration::from_millis(20));
        poll += 1;
        state = match call(link, poll, Request::SessionStatus(s)) {
            Response::Session(st) => st.state,
            other => panic!("{other:?}"),
        };
    }
    match state {
        SessionState::Done { seq } => seq,
        other => panic!("session {s}: {other:?}"),
    }
}

/// Hello, then the proof of the paired test key; the full device info.
fn hello<P: std::io::Read + std::io::Write>(link: &mut FramedLink<P>, id: u32) -> DeviceInfo {
    let info = match call(link, id, Request::Hello(Hello { protocol_version: PROTOCOL_VERSION, host: truncated("t") }))
    {
        Response::DeviceInfo(i) => i,
        other => panic!("{other:?}"),
    };
    let host_key = host_key().verifying_key().to_bytes();
    let msg = protocol::signed::auth_message(&info.device_id, &info.challenge, &host_key);
    let signature = heapless::Vec::from_slice(&host_key_sign(&msg)).expect("64");
    match call(link, id + 1000, Request::Auth(Auth { host_key, signature })) {
        Response::DeviceInfo(i) => i,
        other => panic!("{other:?}"),
    }
}

fn host_key_sign(msg: &[u8]) -> [u8; 64] {
    use ed25519_dalek::Signer;
    host_key().sign(msg).to_bytes()
}

#[test]
fn the_daemon_serves_a_session_and_keeps_results_across_restarts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (controller, device_end) = link::pty_pair().expect("pty");
    let port = device_end.name().expect("path");
    let mut link = FramedLink::new(controller);

    let first = spawn(&port, dir.path());
    let info = hello(&mut link, 1);
    assert_eq!(info.last_result_seq, 0);
    let s = match call(
        &mut link,
        2,
        Request::SessionStart(SessionStart { modalities: Modalities::ALL, label: truncated("d"), host_time_ms: 0 }),
    ) {
        Response::Session(s) => s.session,
        other => panic!("{other:?}"),
    };
    call(
        &mut link,
        3,
        Request::TranscriptChunk(TranscriptChunk {
            session: s,
            utterance: 0,
            part: 0,
            last_part: true,
            start_ms: 5_580,
            end_ms: 8_580,
            speaker: Speaker::Participant,
            text: truncated("I'm okay I guess. A bit tired."),
        }),
    );
    assert_eq!(stop(&mut link, 4, s), 1);
    drop(first); // killed: no clean shutdown

    let _daemon = spawn(&port, dir.path());
    let again = hello(&mut link, 10);
    // A second daemon on the same data directory refuses to start, and says why (no colour
    // codes: its stderr is not a terminal).
    let (_other_controller, other_end) = link::pty_pair().expect("pty");
    let mut second = daemon(&other_end.name().expect("path"), dir.path());
    second.arg("--simulate").arg(sample()).stderr(Stdio::piped());
    let out = second.output().expect("runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("in use by another mimml-device"), "{err}");
    assert!(!err.contains('\u{1b}'), "{err}");
    assert_eq!(again.device_id, info.device_id);
    assert_eq!(again.last_result_seq, 1);
    match call(&mut link, 11, Request::Sync(SyncCursor { after: 0, max: 8 })) {
        Response::Records(b) => assert_eq!(b.records.iter().map(|r| r.session).collect::<Vec<_>>(), vec![s]),
        other => panic!("{other:?}"),
    }
    drop(device_end);
}

#[test]
fn without_simulate_the_daemon_explains_what_is_missing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = Command::new(env!("CARGO_BIN_EXE_mimml-device"))
        .args(["run", "--port", "/dev/null", "--data-dir"])
        .arg(dir.path())
        .output()
        .expect("runs");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--simulate") && err.contains("capture backend"), "{err}");
}

/// The daemon is killed (SIGKILL) halfway through an upload and started again: the upload
/// resumes from what the device had synced, the bundle commits and serves.
#[test]
fn a_flash_resumes_after_the_daemon_is_killed_mid_upload() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let models = Path::new(env!("CARGO_MANIFEST_DIR")).join("../assets/model");
    let clinic = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
    let trusted = dir.path().join("trusted.pub");
    std::fs::write(&trusted, runtime::signing::public_line(&clinic.verifying_key(), "clinic")).expect("write");
    let bundle = dir.path().join("int8");
    std::fs::create_dir_all(&bundle).expect("mkdir");
    for f in ["manifest.toml", "model.onnx", "golden.json"] {
        std::fs::copy(models.join("mimml-synth-int8").join(f), bundle.join(f)).expect("copy");
    }
    runtime::bundle::sign_bundle(&bundle, &clinic, Some(2)).expect("signs");
    let (archive, manifest) = runtime::bundle::pack(&bundle).expect("packs");
    let sig = std::fs::read_to_string(bundle.join("manifest.sig")).expect("sig");
    let begin = Request::UploadBegin(UploadBegin {
        manifest: heapless::Vec::from_slice(&manifest).expect("fits"),
        signature: heapless::Vec::from_slice(&runtime::signing::parse_signature(&sig).expect("sig").to_bytes())
            .expect("64"),
        total_size: archive.len() as u32,
        sha256: sha2::Digest::finalize(sha2::Digest::chain_update(sha2::Sha256::default(), &archive)).into(),
        allow_downgrade: false,
    });
    let start = |port: &str| {
        let mut cmd = daemon(port, &data);
        cmd.arg("--simulate").arg(sample()).arg("--trusted-keys").arg(&trusted);
        cmd.arg("--model").arg(models.join("mimml-synth"));
        Daemon(cmd.spawn().expect("spawns"))
    };
    let (controller, device_end) = link::pty_pair().expect("pty");
    let port = device_end.name().expect("path");
    let mut link = FramedLink::new(controller);
    let send = |link: &mut FramedLink<link::TTYPort>, id: u32, offset: usize| {
        let end = (offset + MAX_CHUNK).min(archive.len());
        let data = heapless::Vec::from_slice(&archive[offset..end]).expect("chunk");
        match call(link, id, Request::UploadChunk(UploadChunk { offset: offset as u32, data })) {
            Response::Upload(s) => s.next_offset as usize,
            other => panic!("{other:?}"),
        }
    };

    let first = start(&port);
    assert_eq!(hello(&mut link, 1).active_model_version.as_str(), "mimml-494712533331d5b9-s1");
    assert!(matches!(call(&mut link, 2, begin.clone()), Response::Upload(s) if s.next_offset == 0));
    let mut acked = 0;
    for id in 3..3 + (archive.len() / MAX_CHUNK / 2) as u32 {
        acked = send(&mut link, id, acked);
    }
    drop(first); // SIGKILL
    let _again = start(&port);
    hello(&mut link, 100);
    let resumed = match call(&mut link, 101, begin) {
        Response::Upload(s) => s.next_offset as usize,
        other => panic!("{other:?}"),
    };
    assert_eq!(resumed, acked, "every acknowledged chunk survived the kill; nothing else was kept");
    let mut offset = resumed;
    let mut id = 102;
    while offset < archive.len() {
        offset = send(&mut link, id, offset);
        id += 1;
    }
    match call(&mut link, id, Request::UploadCommit) {
        Response::Upload(s) => assert_eq!(s.slot.state, SlotState::Trial),
        other => panic!("{other:?}"),
    }
    assert_eq!(hello(&mut link, id + 1).active_model_version.as_str(), "mimml-494712533331d5b9-s1-int8");
    drop(device_end);
}

#[test]
fn under_systemd_the_daemon_says_ready_and_pings_the_watchdog_from_its_serve_loop() {
    use std::os::unix::net::UnixDatagram;
    let dir = tempfile::tempdir().expect("tempdir");
    let (_controller, device_end) = link::pty_pair().expect("pty");
    let port = device_end.name().expect("path");
    let socket_path = dir.path().join("notify");
    let socket = UnixDatagram::bind(&socket_path).expect("notify socket");
    socket.set_read_timeout(Some(Duration::from_millis(200))).expect("timeout");
    let mut cmd = daemon(&port, &dir.path().join("data"));
    cmd.arg("--simulate").arg(sample()).env("NOTIFY_SOCKET", &socket_path).env("WATCHDOG_USEC", "300000");
    let _daemon = Daemon(cmd.spawn().expect("spawns"));
    let mut messages = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut buf = [0u8; 512];
    while messages.iter().filter(|m: &&String| m.contains("WATCHDOG=1")).count() < 4 {
        assert!(Instant::now() < deadline, "not enough notifications: {messages:?}");
        if let Ok(n) = socket.recv(&mut buf) {
            messages.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    }
    let ready = messages.iter().position(|m| m.contains("READY=1")).expect("READY=1 sent");
    assert!(messages[ready].contains("STATUS=device "), "{messages:?}");
    assert!(messages[..ready].iter().all(|m| !m.contains("WATCHDOG")), "no ping before ready: {messages:?}");
}

#[test]
fn the_systemd_unit_runs_the_daemon_with_flags_it_has_under_a_watchdog_and_hardened() {
    let unit =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/systemd/mimml-device.service"))
            .expect("unit");
    let exec = unit.replace("\\\n", " ");
    let exec = exec.lines().find_map(|l| l.strip_prefix("ExecStart=")).expect("ExecStart");
    let args: Vec<&str> = exec.split_whitespace().collect();
    assert_eq!((args[0], args[1]), ("/usr/local/bin/mimml-device", "run"));
    let help = Command::new(env!("CARGO_BIN_EXE_mimml-device")).args(["run", "--help"]).output().expect("runs");
    let help = String::from_utf8_lossy(&help.stdout);
    for flag in args.iter().filter(|a| a.starts_with("--")) {
        assert!(
            help.contains(&format!("{flag} ")) || help.contains(&format!("{flag}\n")),
            "{flag} is not a flag of run"
        );
    }
    let board = args.iter().position(|a| *a == "--board").map(|i| args[i + 1]).expect("--board");
    boards::Board::by_name(board).expect("a built-in board");
    for line in [
        "Type=notify",
        "WatchdogSec=",
        "Restart=on-failure",
        "User=mimml",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ReadWritePaths=/var/lib/mimml /run/mimml",
        "IPAddressDeny=any",
        "RuntimeDirectory=mimml",
    ] {
        assert!(unit.lines().any(|l| l.starts_with(line)), "{line} missing from the unit");
    }
}

#[test]
fn over_tcp_the_daemon_serves_a_session_and_takes_the_next_host_after_one_leaves() {
    let dir = tempfile::tempdir().expect("tempdir");
    let addr = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port");
    let cmd = daemon("unused", dir.path());
    // --listen instead of --port: drop the pty path the helper put there.
    let args: Vec<_> = cmd.get_args().map(|a| a.to_owned()).collect();
    let mut cmd = Command::new(cmd.get_program());
    let mut skip = false;
    for a in args {
        if std::mem::take(&mut skip) {
            continue;
        }
        if a == "--port" {
            skip = true;
            continue;
        }
        cmd.arg(a);
    }
    cmd.arg("--listen")
        .arg(addr.to_string())
        .arg("--simulate")
        .arg(sample())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let _daemon = Daemon(cmd.spawn().expect("spawns"));
    let deadline = Instant::now() + Duration::from_secs(120);
    let connect = || loop {
        match link::open(&format!("tcp:{addr}"), 0) {
            Ok(p) => return FramedLink::new(p),
            Err(e) => assert!(Instant::now() < deadline, "the daemon never listened: {e}"),
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut first = connect();
    let r = one_session(&mut first, 1.0);
    assert_eq!(r.seq, 1);
    drop(first);
    // The next host is taken once the first has gone, as a new connection: it must say hello
    // and prove its key again, and its request ids (the same as the first's) are its own.
    let mut second = connect();
    assert!(
        matches!(call(&mut second, 2, Request::Sync(SyncCursor { after: 0, max: 8 })), Response::Error(e) if e.code == ErrorCode::HelloFirst)
    );
    let info = hello(&mut second, 1);
    assert_eq!(info.last_result_seq, 1, "{info:?}");
}
