//! The `mimml-lab` binary: corpus, train, eval and re-export as a researcher runs them.

use std::path::Path;
use std::process::Command;

fn lab(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_mimml-lab")).args(args).output().expect("runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn corpus_train_and_eval_from_the_command_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = |name: &str| dir.path().join(name).to_str().expect("utf8").to_owned();
    let (ok, out, err) =
        lab(&["corpus", "synth", "--out", &p("corpus"), "--participants", "30", "--seconds", "10", "--seed", "2"]);
    assert!(ok && out.contains("wrote 30 synthetic sessions"), "{out}{err}");
    let (ok, out, err) = lab(&["corpus", "check", &p("corpus")]);
    assert!(ok && out.contains("no problems") && out.contains("train"), "{out}{err}");
    std::fs::write(dir.path().join("quick.json"), r#"{ "max_epochs": 4, "hidden": 16 }"#).expect("write");
    let (ok, out, err) = lab(&["train", "--corpus", &p("corpus"), "--out", &p("model"), "--config", &p("quick.json")]);
    assert!(ok, "{err}");
    assert!(out.contains("trained mimml-") && out.contains("depressed-class F1"), "{out}");
    let (ok, out, err) = lab(&["eval", "--model", &p("model"), "--corpus", &p("corpus"), "--split", "test"]);
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
    let (ok, _, err) = lab(&["train", "--corpus", &p("corpus"), "--out", &p("m2"), "--config", &p("bad.json")]);
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
    let (ok, out, err) = lab(&[
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
    let (ok, _, err) =
        lab(&["reexport", "--model", checkpoint.to_str().expect("utf8"), "--bundle", missing.to_str().expect("utf8")]);
    assert!(!ok && err.contains("nothing-here"), "{err}");
    assert!(!missing.exists());
}
