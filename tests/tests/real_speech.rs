//! The audio front-end on real human recordings: LibriVox readers, spoken card names, a
//! telephone-band 8 kHz recording, an 11.025 kHz recording (mono and stereo) from pocketsphinx's
//! test data, pyannote's two-speaker conversation (`scripts/install_test_data.sh`), and
//! alsa-utils' voice prompts at 48, 44.1 and 22.05 kHz, as µ-law WAV, FLAC, Ogg Vorbis and MP3
//! (committed in `tests/data/speech`, see its README). The reference is librosa's whole
//! pipeline — `librosa.load(sr=16000)` (libsndfile decoding, soxr HQ resampling), then MFCC — and
//! Praat's pitch, recorded by `scripts/audio_reference.py real-reference` in
//! `tests/data/speech/reference.json`.

use std::path::PathBuf;

use features::audio::reference::{f0_agreement, mfcc_relative_error};

fn data() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("data")
}

fn reference() -> serde_json::Value {
    let text = std::fs::read_to_string(data().join("speech/reference.json")).expect("reference.json");
    serde_json::from_str(&text).expect("valid JSON")
}

fn floats(v: &serde_json::Value) -> Vec<f32> {
    v.as_array().expect("array").iter().map(|x| x.as_f64().expect("number") as f32).collect()
}

fn path_of(name: &str) -> PathBuf {
    let p = data().join("speech").join(name);
    assert!(p.is_file(), "{}: run scripts/install_test_data.sh (the README's test command does)", p.display());
    p
}

#[test]
fn mfcc_of_real_speech_at_every_rate_and_format_matches_librosas_pipeline() {
    let r = reference();
    let files = r["files"].as_object().expect("files");
    assert!(files.len() >= 25, "{} files", files.len());
    let mut rates = std::collections::BTreeSet::new();
    for (name, f) in files {
        let native = f["native_sr"].as_u64().expect("rate") as u32;
        rates.insert(native);
        let clip = features::audio::read_audio(&path_of(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(clip.rate, 16_000);
        assert_eq!(clip.samples.len() as u64, f["samples_16k"].as_u64().expect("length"), "{name}: length");
        let mfcc: Vec<Vec<f32>> = f["mfcc"].as_array().expect("rows").iter().map(floats).collect();
        let err = mfcc_relative_error(&clip.samples, 16_000, &mfcc).expect("same shape as librosa");
        // Lossy formats: our decoder (symphonia) and libsndfile's (libvorbis, mpg123) may round
        // differently; the bound is the same.
        let bound = if native == 16_000 { 1e-3 } else { 1e-2 };
        println!("{name}: {native} Hz, MFCC max relative error {err:.2e} (bound {bound:.0e})");
        assert!(err <= bound, "{name}: {err}");
    }
    for rate in [8_000, 11_025, 16_000, 22_050, 44_100, 48_000] {
        assert!(rates.contains(&rate), "no {rate} Hz recording");
    }
}

/// Voicing and F0 against Praat's `to_pitch()` on every recording: frames both call voiced
/// among those either does (median over files ≥ 90 %, every file ≥ 80 %), gross pitch errors
/// (> 20 % apart) ≤ 3 % of the frames both call voiced, median F0 difference ≤ 2 Hz.
#[test]
fn voicing_and_f0_of_real_speech_agree_with_praat() {
    let r = reference();
    let mut agreement = Vec::new();
    for (name, f) in r["files"].as_object().expect("files") {
        let clip = features::audio::read_audio(&path_of(name)).expect("reads");
        let a = f0_agreement(&clip.samples, &floats(&f["pitch_times"]), &floats(&f["pitch_hz"]));
        println!("{name}: {a:?}");
        assert!(a.both_voiced >= 30, "{name}: {a:?}");
        assert!(a.voicing_agreement >= 0.8, "{name}: {a:?}");
        assert!(a.gross_errors <= 0.03, "{name}: {a:?}");
        assert!(a.median_abs_hz <= 2.0, "{name}: {a:?}");
        agreement.push(a.voicing_agreement);
    }
    agreement.sort_by(f32::total_cmp);
    let median = agreement[agreement.len() / 2];
    println!("median voicing agreement {median:.3}, lowest {:.3}", agreement[0]);
    assert!(median >= 0.9, "median voicing agreement {median}");
}

#[test]
fn broken_wavs_are_clear_errors() {
    // pocketsphinx's own broken files: a header claiming a billion samples, garbage, an empty
    // data chunk.
    let dir = data().join("external/speech/pocketsphinx/broken");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).expect("installed by scripts/install_test_data.sh") {
        let path = entry.expect("entry").path();
        n += 1;
        match features::audio::read_audio(&path) {
            Ok(clip) => assert!(clip.samples.len() < 16_000, "{}: {} samples", path.display(), clip.samples.len()),
            Err(e) => {
                let text = format!("{e}");
                assert!(text.contains(&path.display().to_string()), "{text}");
                println!("{}: {text}", path.display());
            }
        }
    }
    assert_eq!(n, 4);
}
