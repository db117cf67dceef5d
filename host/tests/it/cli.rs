//! The `mimml` binary against a simulated device on a pty: the commands a clinic runs.

use std::path::{Path, PathBuf};
use std::process::Command;

use link::SerialPort;

fn sample() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../assets/sample/session-001")
}

/// The host key of the test that runs a device (each `mimml` run proves it).
static HOST_KEY: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();

fn mimml(args: &[&str]) -> (bool, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mimml"));
    cmd.args(args).env_remove("MIMML_DB");
    // Never the user's own key: a missing file means no key.
    cmd.env("MIMML_HOST_KEY", HOST_KEY.get().cloned().unwrap_or_else(|| PathBuf::from("/nonexistent/host.key")));
    let out = cmd.output().expect("runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn info_session_sync_and_results_from_the_command_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    // The device serves the pty's controller end in this process; `mimml` opens the other
    // end by path, as it would open /dev/ttyACM0. The test keeps that end open too, so each
    // `mimml` exit is not a hang-up for the device.
    let (device_end, keep_open) = link::pty_pair().expect("pty");
    let port = keep_open.name().expect("pty path");
    let device = device::DeviceThread::simulated(&dir.path().join("device"), &sample(), device_end).expect("device");

    // Before this host's key is known, the device says what it is and nothing more.
    let (ok, out, err) = mimml(&["info", "--port", &port]);
    assert!(ok && out.contains("paired          no") && !out.contains("results logged"), "{out}{err}");
    let (ok, _, err) = mimml(&["sync", "--port", &port, "--db", dir.path().join("x.db").to_str().expect("utf8")]);
    assert!(!ok && err.contains("Unauthorized") && err.contains("mimml pair"), "{err}");
    let key_file = dir.path().join("host.key");
    runtime::signing::write_key_pair(&device.host_key(), &key_file, &dir.path().join("host.pub"), "test")
        .expect("key file");
    HOST_KEY.set(key_file).expect("set once");

    let (ok, out, err) = mimml(&["info", "--port", &port]);
    assert!(ok, "{err}");
    assert!(out.contains("board           sim") && out.contains("model           mimml-"), "{out}");

    let transcript = sample().join("transcript.tsv");
    let (ok, out, err) = mimml(&[
        "session",
        "run",
        "--port",
        &port,
        "--transcript",
        transcript.to_str().expect("utf8"),
        "--label",
        "cli",
    ]);
    assert!(ok, "{err}");
    assert!(out.contains("result #1") && out.contains("P(depressed)") && out.contains("\"cli\""), "{out}");

    let db = dir.path().join("r.db");
    let db = db.to_str().expect("utf8");
    let (ok, out, err) = mimml(&["sync", "--port", &port, "--db", db]);
    assert!(ok, "{err}");
    assert!(out.contains("synced 1 result(s)") && out.contains("(1 new)"), "{out}");
    let (ok, out, _) = mimml(&["sync", "--port", &port, "--db", db]);
    assert!(ok && out.contains("synced 0 result(s)"), "{out}");
    let (ok, out, _) = mimml(&["results", "--db", db]);
    assert!(ok && out.matches("result #").count() == 1, "{out}");
    // Every report format of the stored result says what it is and what the model learnt from.
    for format in ["table", "csv", "json", "fhir", "html"] {
        let (ok, out, err) = mimml(&["report", "--db", db, "--format", format]);
        assert!(ok, "{format}: {err}");
        assert!(out.contains("screening aid, not a diagnosis"), "{format}:\n{out}");
        assert!(out.contains("synthetic interviews (no real patients)"), "{format}:\n{out}");
    }
    let (ok, out, _) = mimml(&["report", "--db", db, "--since", "2999-01-01", "--format", "csv"]);
    assert!(ok && out.lines().count() == 1, "nothing since then: the header only\n{out}");
    let (ok, _, err) = mimml(&["report", "--db", db, "--since", "yesterday"]);
    assert!(!ok && err.contains("neither YYYY-MM-DD nor an RFC 3339 instant"), "{err}");

    // Machine-readable output.
    let json = |args: &[&str]| -> serde_json::Value {
        let (ok, out, err) = mimml(args);
        assert!(ok, "{err}");
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
    };
    let rows = json(&["results", "--db", db, "--json"]);
    assert_eq!(rows[0]["seq"], 1);
    assert_eq!(rows[0]["label"], "cli");
    assert_eq!(rows[0]["notice"], "screening aid, not a diagnosis");
    assert_eq!(json(&["info", "--port", &port, "--json"])["last_result_seq"], 1);
    assert_eq!(json(&["sync", "--port", &port, "--db", db, "--json"])["inserted"], 0);

    // A host that went away leaves a session running: another lists it and aborts it.
    let mut other =
        host::client::DeviceClient::new(link::open_port(&port, 115_200).expect("port")).with_key(device.host_key());
    other.hello().expect("hello");
    let orphan = other.start_session(protocol::Modalities::TEXT, "orphan").expect("start").session;
    drop(other);
    let (ok, out, _) = mimml(&["info", "--port", &port]);
    assert!(ok && out.contains(&format!("session running {orphan}")), "{out}");
    let (ok, out, _) = mimml(&["session", "list", "--port", &port]);
    assert!(ok && out.contains(&format!("session {orphan}")) && out.contains("Capturing"), "{out}");
    let (ok, out, err) = mimml(&["session", "abort", "--port", &port, &orphan.to_string()]);
    assert!(ok && out.contains("SessionAborted"), "{out}{err}");
    let (ok, out, _) = mimml(&["session", "list", "--port", &port]);
    assert!(ok && out.contains("no session running"), "{out}");

    // A transcript in another format, pushed into a session started elsewhere (as a kiosk's is),
    // its speakers mapped; then the session stopped from the command line.
    let vtt = dir.path().join("visit.vtt");
    std::fs::write(
        &vtt,
        "WEBVTT\n\n00:00:01.000 --> 00:00:04.000\n<v Dr. Ellis>How have you been sleeping lately?\n\n\
         00:00:04.500 --> 00:00:12.000\n<v Sam>Badly. I wake at four and lie there thinking about work.\n\n\
         00:00:12.500 --> 00:00:15.000\n<v Dr. Ellis>And your mood?\n\n\
         00:00:15.500 --> 00:00:25.000\n<v Sam>Flat, most days. I have stopped seeing friends.\n",
    )
    .expect("write");
    let vtt = vtt.to_str().expect("utf8");
    let (ok, _, err) = mimml(&["transcript", "check", vtt]);
    assert!(!ok && err.contains("Dr. Ellis, Sam") && err.contains("--participant"), "{err}");
    let (ok, out, err) = mimml(&["transcript", "check", vtt, "--participant", "Sam"]);
    assert!(ok && out.contains("4 utterances (2 the participant's, 19 words; 2 the interviewer's"), "{out}{err}");
    let (ok, _, err) = mimml(&["transcript", "push", "--port", &port, vtt, "--participant", "Sam"]);
    assert!(!ok && err.contains("not capturing a session"), "{err}");
    let mut other =
        host::client::DeviceClient::new(link::open_port(&port, 115_200).expect("port")).with_key(device.host_key());
    other.hello().expect("hello");
    let visit = other.start_session(protocol::Modalities::TEXT, "visit").expect("start").session;
    drop(other);
    let (ok, out, err) = mimml(&["transcript", "push", "--port", &port, vtt, "--participant", "Sam"]);
    assert!(ok && out.contains(&format!("4 utterance(s) pushed into session {visit}")), "{out}{err}");
    let (ok, out, err) = mimml(&["session", "stop", "--port", &port, &visit.to_string()]);
    assert!(ok && out.contains("result #2") && out.contains("\"visit\""), "{out}{err}");
    let malformed = dir.path().join("bad.srt");
    std::fs::write(&malformed, "1\n00:00:01,000 --> 00:00:02,000\nfine\n\n2\n00:00:03,000 -> 00:00:04,000\nbroken\n")
        .expect("write");
    let (ok, _, err) = mimml(&["transcript", "check", malformed.to_str().expect("utf8")]);
    assert!(!ok && err.contains("bad.srt, line 6") && err.contains("expected a cue timing"), "{err}");

    // A label that would be cut is refused; reading a database that is not there creates none.
    let (ok, _, err) = mimml(&["session", "run", "--port", &port, "--transcript", "x", "--label", &"é".repeat(17)]);
    assert!(!ok && err.contains("at most 32 bytes"), "{err}");
    let typo = dir.path().join("typo.db");
    let (ok, _, err) = mimml(&["results", "--db", typo.to_str().expect("utf8")]);
    assert!(!ok && err.contains("no results database"), "{err}");
    assert!(!typo.exists());

    // A transcript that is not UTF-8 is refused before anything reaches the device.
    let bad = dir.path().join("bad.tsv");
    std::fs::write(&bad, b"start_time\tstop_time\tspeaker\tvalue\n1\t2\tParticipant\t\xC3\x28\n").expect("write");
    let (ok, _, err) = mimml(&["session", "run", "--port", &port, "--transcript", bad.to_str().expect("utf8")]);
    assert!(!ok && err.contains("not UTF-8"), "{err}");

    let server = device.stop().expect("device served without error");
    assert_eq!(server.log().len(), 2);
    drop(keep_open);
}

#[test]
fn version_names_the_program() {
    let (ok, out, _) = mimml(&["--version"]);
    assert!(ok && out.starts_with("mimml "), "{out}");
    let out = Command::new(env!("CARGO_BIN_EXE_mimml")).args(["sync", "--help"]).output().expect("runs");
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("Baud rate"), "{help}");
}

#[test]
fn a_port_without_a_device_is_a_clear_error() {
    let (ok, _, err) = mimml(&["info", "--port", "/dev/ttyNOPE0"]);
    assert!(!ok && err.contains("/dev/ttyNOPE0"), "{err}");
    // A pty whose other end nobody serves: hello times out with a message, not a hang.
    let (_quiet, keep) = link::pty_pair().expect("pty");
    let port = keep.name().expect("path");
    let (ok, _, err) = mimml(&["info", "--port", &port]);
    assert!(!ok && err.contains("no MIMML device answered"), "{err}");
}

#[test]
fn a_closed_pipe_ends_the_output_quietly() {
    // `mimml results --json | grep -q …`: grep exits at its first match, closing the pipe.
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("results.sqlite");
    drop(host::db::ResultsDb::open(&host::db::Target::from(db.as_path())).expect("db"));
    let mut child = Command::new(env!("CARGO_BIN_EXE_mimml"))
        .args(["results", "--db", db.to_str().expect("utf8"), "--json"])
        .env_remove("MIMML_DB")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("runs");
    // The reader goes away before the program has started writing.
    drop(child.stdout.take());
    let out = child.wait_with_output().expect("waits");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && !err.contains("panicked"), "{:?} {err}", out.status);
}
