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

fn spawn(port: &str, data: &Path) -> Daemon {
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("../assets/sample/session-001");
    Daemon(
        Command::new(env!("CARGO_BIN_EXE_mimml-device"))
            .args(["run", "--port", port, "--board", "sim", "--data-dir"])
            .arg(data)
            .arg("--simulate")
            .arg(sample)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawns"),
    )
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

fn hello(link: &mut FramedLink<link::TTYPort>, id: u32) -> DeviceInfo {
    match call(link, id, Request::Hello(Hello { protocol_version: PROTOCOL_VERSION, host: truncated("t") })) {
        Response::DeviceInfo(i) => i,
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_daemon_serves_a_session_and_keeps_results_across_restarts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (controller, device_end) = link::pty_pair().expect("pty");
    let port = device_end.name().expect("path");
    let mut link = FramedLink::new(controller);

    let daemon = spawn(&port, dir.path());
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
    match call(&mut link, 4, Request::SessionStop(s)) {
        Response::Session(SessionStatus { state: SessionState::Done { seq: 1 }, .. }) => {}
        other => panic!("{other:?}"),
    }
    drop(daemon); // killed: no clean shutdown

    let _daemon = spawn(&port, dir.path());
    let again = hello(&mut link, 10);
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
