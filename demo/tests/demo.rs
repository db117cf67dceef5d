//! `mimml-demo` as README's first command runs it: a whole session, all three modalities.

use std::process::Command;

use host::db::{Filter, ResultsDb, Target};

#[test]
fn the_demo_runs_a_whole_session() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("demo.db");
    let out = Command::new(env!("CARGO_BIN_EXE_mimml-demo")).arg("--db").arg(&db).output().expect("runs");
    let (text, err) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{err}");
    for needle in [
        "P(depressed)",
        "PHQ-8 estimate",
        "audio ",
        "video ",
        "text ",
        "transcript push",
        "sync → database",
        "0 bad frames",
        "(screening aid, not a diagnosis)",
        "trained on        synthetic interviews (no real patients)",
        "this screen has no",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in\n{text}");
    }
    // All three modalities (the landmark model is installed before the tests, as the README's
    // first command installs it before the demo).
    assert!(!text.contains("absent"), "a modality is absent:\n{text}");
    // The result printed is the one stored, once.
    let rows = ResultsDb::open_read_only(&Target::Sqlite(db)).expect("db").results(&Filter::default()).expect("rows");
    assert_eq!(rows.len(), 1);
    assert!(text.contains(&format!("result #{}", rows[0].record.seq)), "{text}");
}

#[test]
fn the_sample_comes_from_the_assets_folder_the_environment_names() {
    let out = Command::new(env!("CARGO_BIN_EXE_mimml-demo"))
        .env("MIMML_ASSETS", "/nonexistent/mimml-assets")
        .output()
        .expect("runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("/nonexistent/mimml-assets/sample/session-001"), "{err}");
}
