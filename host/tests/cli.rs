//! The `mimml` binary against a simulated device on a pty: the commands a clinic runs.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use link::SerialPort;

fn sample() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../assets/sample/session-001")
}

fn mimml(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_mimml")).args(args).env_remove("MIMML_DB").output().expect("runs");
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
    let mut device = device::simulated(&dir.path().join("device"), &sample()).expect("device");
    let stop = Arc::new(AtomicBool::new(false));
    let s = Arc::clone(&stop);
    let t = std::thread::spawn(move || device::serve_port(&mut device, device_end, &s));

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

    // A transcript that is not UTF-8 is refused before anything reaches the device.
    let bad = dir.path().join("bad.tsv");
    std::fs::write(&bad, b"start_time\tstop_time\tspeaker\tvalue\n1\t2\tParticipant\t\xC3\x28\n").expect("write");
    let (ok, _, err) = mimml(&["session", "run", "--port", &port, "--transcript", bad.to_str().expect("utf8")]);
    assert!(!ok && err.contains("not UTF-8"), "{err}");

    stop.store(true, Ordering::Relaxed);
    t.join().expect("device thread").expect("device served without error");
    drop(keep_open);
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
fn the_demo_runs_a_whole_session() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("demo.db");
    let (ok, out, err) = mimml(&["demo", "--db", db.to_str().expect("utf8")]);
    assert!(ok, "{err}");
    for needle in [
        "P(depressed)",
        "PHQ-8 estimate",
        "audio ",
        "video ",
        "text ",
        "transcript push",
        "sync → database",
        "0 bad frames",
    ] {
        assert!(out.contains(needle), "missing {needle:?} in\n{out}");
    }
    let (ok, out, _) = mimml(&["results", "--db", db.to_str().expect("utf8")]);
    assert!(ok && out.contains("result #1"), "{out}");
}

#[test]
fn corpus_train_and_eval_from_the_command_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = |name: &str| dir.path().join(name).to_str().expect("utf8").to_owned();
    let (ok, out, err) =
        mimml(&["corpus", "synth", "--out", &p("corpus"), "--participants", "30", "--seconds", "10", "--seed", "2"]);
    assert!(ok && out.contains("wrote 30 synthetic sessions"), "{out}{err}");
    let (ok, out, err) = mimml(&["corpus", "check", &p("corpus")]);
    assert!(ok && out.contains("no problems") && out.contains("train"), "{out}{err}");
    std::fs::write(dir.path().join("quick.json"), r#"{ "max_epochs": 4, "hidden": 16 }"#).expect("write");
    let (ok, out, err) =
        mimml(&["train", "--corpus", &p("corpus"), "--out", &p("model"), "--config", &p("quick.json")]);
    assert!(ok, "{err}");
    assert!(out.contains("trained mimml-") && out.contains("depressed-class F1"), "{out}");
    let (ok, out, err) = mimml(&["eval", "--model", &p("model"), "--corpus", &p("corpus"), "--split", "test"]);
    assert!(ok, "{err}");
    assert!(out.contains("ROC-AUC") && out.contains("confusion"), "{out}");
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("model/metrics-test.json")).expect("metrics"))
            .expect("json");
    assert!(json["metrics"]["f1"]["value"].is_number() && json["metrics"]["ece"].is_number(), "{json}");
    for png in ["roc-test.png", "reliability-test.png"] {
        let bytes = std::fs::read(dir.path().join("model").join(png)).expect("png");
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "{png}");
    }
    // A config with a misspelt field is refused with the file named.
    std::fs::write(dir.path().join("bad.json"), r#"{ "hiden": 16 }"#).expect("write");
    let (ok, _, err) = mimml(&["train", "--corpus", &p("corpus"), "--out", &p("m2"), "--config", &p("bad.json")]);
    assert!(!ok && err.contains("bad.json"), "{err}");
}

#[test]
fn reexport_updates_a_bundle_in_place_and_refuses_a_missing_one() {
    let assets = Path::new(env!("CARGO_MANIFEST_DIR")).join("../assets/model");
    let dir = tempfile::tempdir().expect("tempdir");
    let b = dir.path().join("bundle");
    std::fs::create_dir(&b).expect("mkdir");
    for f in ["manifest.toml", "model.onnx", "golden.json"] {
        std::fs::copy(assets.join("mimml-synth").join(f), b.join(f)).expect("copy");
    }
    let checkpoint = assets.join("mimml-synth-checkpoint");
    let (ok, out, err) = mimml(&[
        "reexport",
        "--model",
        checkpoint.to_str().expect("utf8"),
        "--bundle",
        b.to_str().expect("utf8"),
        "--quantize",
        "f16",
    ]);
    assert!(ok, "{err}");
    assert!(out.contains("(f16) re-exported in place") && out.contains("self-test passed"), "{out}");
    let manifest = std::fs::read_to_string(b.join("manifest.toml")).expect("manifest");
    assert!(manifest.contains("quantization = \"f16\""), "{manifest}");

    let missing = dir.path().join("nothing-here");
    let (ok, _, err) = mimml(&[
        "reexport",
        "--model",
        checkpoint.to_str().expect("utf8"),
        "--bundle",
        missing.to_str().expect("utf8"),
    ]);
    assert!(!ok && err.contains("nothing-here"), "{err}");
    assert!(!missing.exists());
}
