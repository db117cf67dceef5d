//! The audio front-end against librosa (MFCC) and Praat (F0) on real speech: espeak-ng in four
//! voices, clean and with noise at 15 dB SNR. The WAVs and the tools' outputs are committed
//! fixtures made by `scripts/audio_reference.py` (see its docstring); `bench/run audio` repeats
//! the comparison live against the tools in the same run.

use std::path::PathBuf;

use features::audio::reference::{f0_agreement, mfcc_relative_error};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/speech")
}

fn reference() -> serde_json::Value {
    let text = std::fs::read_to_string(fixtures().join("reference.json")).expect("reference.json");
    serde_json::from_str(&text).expect("valid JSON")
}

fn floats(v: &serde_json::Value) -> Vec<f32> {
    v.as_array().expect("array").iter().map(|x| x.as_f64().expect("number") as f32).collect()
}

#[test]
fn mfcc_matches_librosa_within_1e_3() {
    let r = reference();
    let files = r["files"].as_object().expect("files");
    assert_eq!(files.len(), 8, "four voices, clean and noisy");
    for (name, f) in files {
        let clip = features::audio::read_wav(&fixtures().join(name)).expect("fixture reads");
        let mfcc: Vec<Vec<f32>> = f["mfcc"].as_array().expect("rows").iter().map(floats).collect();
        let err = mfcc_relative_error(&clip.samples, 16_000, &mfcc).expect("same shape as librosa");
        println!("{name}: MFCC max relative error {err:.2e}");
        assert!(err <= 1e-3, "{name}: {err}");
    }
}

#[test]
fn f0_matches_praat_within_2_hz() {
    let r = reference();
    for (name, f) in r["files"].as_object().expect("files") {
        let clip = features::audio::read_wav(&fixtures().join(name)).expect("fixture reads");
        let a = f0_agreement(&clip.samples, &floats(&f["pitch_times"]), &floats(&f["pitch_hz"]));
        println!("{name}: {a:?}");
        assert!(a.both_voiced >= 50, "{name}: {a:?}");
        assert!(a.median_abs_hz <= 2.0, "{name}: {a:?}");
        assert!(a.voicing_agreement >= 0.9, "{name}: {a:?}");
    }
}
