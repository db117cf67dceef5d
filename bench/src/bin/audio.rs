//! `bench/run audio`: the audio front-end's speed (× realtime on one core) and its speed
//! against librosa computing comparable features of the same audio in the same run; the live
//! reference check (MFCC vs librosa, F0 vs Praat) on the speech fixtures; text features per
//! utterance.
//!
//! Usage (through bench/run, which makes the reference venv): `audio PYTHON`.

use anyhow::Context;
use features::audio::reference::{f0_agreement, mfcc_relative_error};

fn python(python: &str, args: &[&str]) -> anyhow::Result<String> {
    bench::reference_script(python, "audio_reference.py", args)
}

fn floats(v: &serde_json::Value) -> Vec<f32> {
    v.as_array().map(|a| a.iter().filter_map(|x| x.as_f64()).map(|x| x as f32).collect()).unwrap_or_default()
}

fn main() -> anyhow::Result<()> {
    let py = std::env::args().nth(1).unwrap_or_else(|| "python3".into());
    let tmp = tempfile::tempdir()?;

    // 1. Speed: ten minutes of real (espeak-ng) speech, the sample session's audio ten times.
    let sample = features::audio::read_wav(&bench::repo().join("assets/sample/session-001/audio.wav"))?;
    let samples: Vec<f32> = sample.samples.repeat(10);
    let seconds = samples.len() as f64 / 16_000.0;
    let wav = tmp.path().join("ten_minutes.wav");
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 16_000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(&wav, spec)?;
    for &s in &samples {
        w.write_sample((s * 32768.0).round().clamp(-32768.0, 32767.0) as i16)?;
    }
    w.finalize()?;
    let clip = features::audio::read_wav(&wav)?;
    let llds_s = bench::best_of(3, || {
        std::hint::black_box(features::audio::llds(&clip.samples));
    });
    let segments = features::segment::fixed_windows((seconds * 1000.0) as u32);
    let all_s = bench::best_of(3, || {
        std::hint::black_box(features::audio::segment_features(&clip, &segments));
    });
    let rt = seconds / all_s;
    println!(
        "ours: {seconds:.0} s of speech → LLDs in {llds_s:.3} s, LLDs + functionals in {all_s:.3} s: {rt:.0}× realtime (one thread)"
    );
    let lib: serde_json::Value = serde_json::from_str(&python(&py, &["time", &wav.display().to_string(), "3"])?)?;
    let librosa_s = lib["seconds"].as_f64().context("librosa timing")?;
    let ratio = librosa_s / all_s;
    println!(
        "librosa {} (STFT, mel, MFCC, RMS, ZCR, flux, YIN; same framing): {librosa_s:.3} s → ours is {ratio:.1}× faster",
        lib["librosa"]
    );

    // 2. Live reference check on the speech fixtures.
    let fixtures = bench::repo().join("features/tests/fixtures/speech");
    let live = tmp.path().join("speech");
    std::fs::create_dir(&live)?;
    for e in std::fs::read_dir(&fixtures)? {
        let p = e?.path();
        if p.extension().is_some_and(|x| x == "wav") {
            std::fs::copy(&p, live.join(p.file_name().context("file name")?))?;
        }
    }
    python(&py, &["reference", &live.display().to_string()])?;
    let r: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(live.join("reference.json"))?)?;
    let (mut worst_mfcc, mut worst_f0, mut min_agree) = (0.0f32, 0.0f32, 1.0f32);
    for (name, f) in r["files"].as_object().context("files")? {
        let clip = features::audio::read_wav(&live.join(name))?;
        let mfcc: Vec<Vec<f32>> = f["mfcc"].as_array().context("mfcc")?.iter().map(floats).collect();
        let err = mfcc_relative_error(&clip.samples, 16_000, &mfcc).context("MFCC shapes differ from librosa's")?;
        let a = f0_agreement(&clip.samples, &floats(&f["pitch_times"]), &floats(&f["pitch_hz"]));
        println!(
            "{name:22} MFCC rel. error {err:.1e}   F0 median |Δ| {:.3} Hz over {} frames both voiced ({:.0} % voicing agreement)",
            a.median_abs_hz,
            a.both_voiced,
            100.0 * a.voicing_agreement
        );
        worst_mfcc = worst_mfcc.max(err);
        worst_f0 = worst_f0.max(a.median_abs_hz);
        min_agree = min_agree.min(a.voicing_agreement);
    }
    println!("(librosa {}, parselmouth {})", r["librosa"], r["parselmouth"]);

    // 3. Real human speech (tests/data/speech and the recordings scripts/install_test_data.sh
    //    installs) at 8–48 kHz in every format read, against librosa's whole pipeline
    //    (load(sr=16000): libsndfile + soxr HQ) and Praat, live.
    let data = bench::repo().join("tests/data");
    let mut real = Vec::new();
    for dir in ["speech", "external/speech/pocketsphinx", "external/speech/pyannote"] {
        for e in
            std::fs::read_dir(data.join(dir)).with_context(|| format!("{dir}: run scripts/install_test_data.sh"))?
        {
            let p = e?.path();
            if p.extension().is_some_and(|x| ["wav", "flac", "ogg", "mp3"].iter().any(|k| x == *k)) {
                real.push(p.display().to_string());
            }
        }
    }
    real.sort();
    let out = tmp.path().join("real.json");
    let mut args = vec!["real-reference".to_owned(), out.display().to_string()];
    args.extend(real.iter().cloned());
    python(&py, &args.iter().map(String::as_str).collect::<Vec<_>>())?;
    let r: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&out)?)?;
    let (mut resampled_mfcc, mut native_mfcc, mut gross, mut agree) = (0.0f32, 0.0f32, 0.0f32, Vec::new());
    for (name, f) in r["files"].as_object().context("files")? {
        let path = tmp.path().join(name);
        let clip = features::audio::read_audio(&path)?;
        let mfcc: Vec<Vec<f32>> = f["mfcc"].as_array().context("mfcc")?.iter().map(floats).collect();
        let err = mfcc_relative_error(&clip.samples, 16_000, &mfcc).context("MFCC shapes differ from librosa's")?;
        let native = f["native_sr"].as_u64().unwrap_or(0);
        let a = f0_agreement(&clip.samples, &floats(&f["pitch_times"]), &floats(&f["pitch_hz"]));
        let short = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        println!(
            "{short:44} {native:>5} Hz  MFCC rel. error {err:.1e}  voicing agreement {:.0} %  gross errors {:.1} %  F0 median |Δ| {:.2} Hz",
            100.0 * a.voicing_agreement,
            100.0 * a.gross_errors,
            a.median_abs_hz
        );
        if native == 16_000 {
            native_mfcc = native_mfcc.max(err);
        } else {
            resampled_mfcc = resampled_mfcc.max(err);
        }
        gross = gross.max(a.gross_errors);
        agree.push(a.voicing_agreement);
    }
    agree.sort_by(f32::total_cmp);
    let (agree_median, agree_min) = (agree[agree.len() / 2], agree[0]);
    println!(
        "real speech, {} recordings: MFCC within {resampled_mfcc:.1e} of librosa's pipeline when resampled, \
         {native_mfcc:.1e} at 16 kHz; voicing agreement with Praat median {:.1} %, lowest {:.1} %; gross errors ≤ {:.1} %",
        agree.len(),
        100.0 * agree_median,
        100.0 * agree_min,
        100.0 * gross
    );

    // 4. Text features per utterance.
    let transcript = features::text::read_transcript(&bench::repo().join("assets/sample/session-001/transcript.tsv"))?;
    let refs: Vec<&features::text::Utterance> = transcript.iter().collect();
    let per_call = bench::best_of(5, || {
        for _ in 0..1000 {
            let _ = std::hint::black_box(features::text::utterance_features(&refs, None));
        }
    }) / 1000.0;
    let text_us = per_call * 1e6 / refs.len() as f64;
    println!("text features (hashed embedding): {text_us:.2} µs per utterance ({} utterances)", refs.len());
    // The optional sentence encoder, when installed (scripts/install_minilm.sh).
    let minilm_ms = match runtime::minilm::MiniLm::load(&runtime::minilm::default_dir()) {
        Ok(m) => {
            features::text::utterance_features(&refs, Some(&m))?; // fails here, not unseen in the loop
            let per_call = bench::best_of(3, || {
                let _ = std::hint::black_box(features::text::utterance_features(&refs, Some(&m)));
            });
            let ms = per_call * 1e3 / refs.len() as f64;
            println!("text features (all-MiniLM-L6-v2): {ms:.2} ms per utterance");
            format!("{ms:.2}")
        }
        Err(e) => {
            println!("all-MiniLM-L6-v2 not measured: {e}");
            "na".into()
        }
    };

    println!(
        "RESULT audio realtime_x={rt:.0} librosa_s={librosa_s:.3} ours_s={all_s:.3} speedup_vs_librosa={ratio:.1} \
         mfcc_max_rel_err={worst_mfcc:.1e} f0_median_err_hz={worst_f0:.3} f0_voicing_agreement={min_agree:.2} \
         real_mfcc_resampled_max_rel_err={resampled_mfcc:.1e} real_mfcc_16k_max_rel_err={native_mfcc:.1e} \
         real_voicing_agreement_median={agree_median:.3} real_voicing_agreement_min={agree_min:.3} \
         real_gross_errors_max={gross:.3} text_us_per_utterance={text_us:.2} minilm_ms_per_utterance={minilm_ms}"
    );
    Ok(())
}
