//! Whisper tiny.en through tract against faster-whisper on real recordings: the log-mel input,
//! the tokens and the word error rate, recorded by `scripts/asr_reference.sh`
//! (runtime/tests/whisper-reference.json: CTranslate2 in float32, greedy, without timestamps).
//! The model is installed by `scripts/install_whisper.sh`, part of `scripts/install_models.sh`;
//! the recordings (pocketsphinx's and pyannote's, with their transcripts) by
//! `scripts/install_test_data.sh`.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use runtime::whisper::{self, Whisper, mel};

fn model() -> &'static Whisper {
    static M: OnceLock<Whisper> = OnceLock::new();
    M.get_or_init(|| {
        Whisper::load(&whisper::default_dir())
            .unwrap_or_else(|e| panic!("{e:#?}: install the model with scripts/install_whisper.sh"))
    })
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[derive(serde::Deserialize)]
struct Reference {
    recordings: Vec<Recording>,
}

#[derive(serde::Deserialize)]
struct Recording {
    file: String,
    /// The transcript that ships with the recording, if any.
    truth: Option<String>,
    samples: usize,
    frames: usize,
    stride: usize,
    mel: Vec<Vec<f32>>,
    windows: Vec<RefWindow>,
}

#[derive(serde::Deserialize)]
struct RefWindow {
    tokens: Vec<u32>,
    text: String,
    no_speech_prob: f32,
}

fn reference() -> Reference {
    serde_json::from_str(include_str!("../whisper-reference.json")).expect("the recorded reference parses")
}

fn samples(file: &str) -> Vec<f32> {
    let clip = features::audio::read_audio(&root().join(file))
        .unwrap_or_else(|e| panic!("{file}: {e}: run scripts/install_test_data.sh"));
    assert_eq!(clip.rate, 16_000);
    clip.samples
}

#[test]
fn the_log_mel_input_matches_faster_whisper() {
    let mut worst = 0f32;
    for r in reference().recordings {
        let s = samples(&r.file);
        assert_eq!(s.len(), r.samples, "{}", r.file);
        let (m, frames) = model().log_mel(&s);
        assert_eq!(frames, r.frames, "{}", r.file);
        let w = mel::window(&m, frames, 0);
        for (i, column) in r.mel.iter().enumerate() {
            let t = i * r.stride;
            for (b, want) in column.iter().enumerate() {
                let d = (w[b * mel::WINDOW_FRAMES + t] - want).abs();
                worst = worst.max(d);
                assert!(d <= 1e-4, "{} frame {t} band {b}: {} vs {want}", r.file, w[b * mel::WINDOW_FRAMES + t]);
            }
        }
    }
    eprintln!("log-mel: max |Δ| {worst:.2e} against faster-whisper");
}

#[test]
fn tokens_and_word_error_rate_match_faster_whisper() {
    let reference = reference();
    let (mut identical, mut errors, mut errors_ref, mut words) = (0, 0, 0, 0);
    for r in &reference.recordings {
        let ours = model().transcribe(&samples(&r.file)).expect("transcribes");
        assert_eq!(ours.windows.len(), r.windows.len().max(1), "{}", r.file);
        let same = ours
            .windows
            .iter()
            .zip(&r.windows)
            .all(|(a, b)| a.tokens.iter().copied().filter(|&t| t < 50257).eq(b.tokens.iter().copied()));
        identical += usize::from(same);
        for (a, b) in ours.windows.iter().zip(&r.windows) {
            assert!(
                (a.no_speech_prob - b.no_speech_prob).abs() < 0.02,
                "{}: no-speech {} vs {}",
                r.file,
                a.no_speech_prob,
                b.no_speech_prob
            );
        }
        assert!(!ours.unreliable(), "{}: real speech doubted: {:?}", r.file, ours.windows);
        let text_ref: String = r.windows.iter().map(|w| w.text.trim()).collect::<Vec<_>>().join(" ");
        if !same {
            eprintln!("{}: ours {:?}, faster-whisper {:?}", r.file, ours.text, text_ref);
        }
        if let Some(truth) = &r.truth {
            let truth = whisper::words_for_scoring(truth);
            words += truth.len();
            errors += whisper::word_errors(&truth, &whisper::words_for_scoring(&ours.text));
            errors_ref += whisper::word_errors(&truth, &whisper::words_for_scoring(&text_ref));
        }
    }
    let n = reference.recordings.len();
    let (wer, wer_ref) = (errors as f64 / words as f64, errors_ref as f64 / words as f64);
    eprintln!(
        "identical tokens on {identical} of {n} recordings; WER {:.2} % (faster-whisper {:.2} %) over {words} words",
        wer * 100.0,
        wer_ref * 100.0
    );
    assert!(words > 80, "the transcripts were found ({words} words)");
    assert!(identical + 1 >= n, "identical tokens on only {identical} of {n} recordings");
    assert!((wer - wer_ref).abs() <= 0.01, "WER {wer:.4} vs faster-whisper's {wer_ref:.4}");
}

/// xorshift noise in [−0.5, 0.5).
fn noise(n: usize) -> Vec<f32> {
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        })
        .collect()
}

#[test]
fn silence_noise_and_music_give_no_text_and_damaged_speech_still_transcribes() {
    let m = model();
    let tone = |t: f32, f: f32| (2.0 * std::f32::consts::PI * f * t).sin();
    let chord: Vec<f32> = (0..128_000)
        .map(|i| i as f32 / 16_000.0)
        .map(|t| 0.2 * (tone(t, 440.0) + tone(t, 554.4) + tone(t, 659.3)))
        .collect();
    let hum: Vec<f32> = noise(160_000).iter().map(|n| 0.002 * n).collect();
    for (name, s) in
        [("digital silence", vec![0.0; 160_000]), ("room hum", hum), ("white noise", noise(80_000)), ("a chord", chord)]
    {
        let t = m.transcribe(&s).expect("transcribes");
        assert_eq!(t.text, "", "{name}: {:?}", t.windows);
        assert_eq!(t.windows.len(), 1);
        assert!(!t.unreliable(), "{name}: silence is dropped, not doubted");
    }
    assert!(m.transcribe(&[]).expect("transcribes").windows.is_empty());
    let file = "tests/data/external/speech/pocketsphinx/sense_and_sensibility_01_austen_64kb-0870.wav";
    let speech = samples(file);
    let truth = reference().recordings.into_iter().find(|r| r.file == file).and_then(|r| r.truth).expect("transcript");
    let truth = whisper::words_for_scoring(&truth);
    let wer = |s: &[f32]| {
        let t = m.transcribe(s).expect("transcribes");
        whisper::word_errors(&truth, &whisper::words_for_scoring(&t.text)) as f32 / truth.len() as f32
    };
    // Clipped 30× over full scale, and 50 dB down: still the sentence.
    assert!(wer(&speech.iter().map(|s| (s * 30.0).clamp(-1.0, 1.0)).collect::<Vec<_>>()) <= 0.15);
    assert!(wer(&speech.iter().map(|s| s * 0.003).collect::<Vec<_>>()) <= 0.15);
    // Speech played backwards under hiss at 0 dB SNR (speech-like, no language Whisper knows):
    // what it makes of it comes with low confidence and is doubted; the same hiss over the
    // speech itself still gives a confident sentence.
    let rms = (speech.iter().map(|v| v * v).sum::<f32>() / speech.len() as f32).sqrt();
    let hiss: Vec<f32> = noise(speech.len()).iter().map(|n| n * rms * 12f32.sqrt()).collect();
    let babble: Vec<f32> = speech.iter().rev().zip(&hiss).map(|(s, n)| s + n).collect();
    let t = m.transcribe(&babble).expect("transcribes");
    assert!(t.unreliable() && !t.text.is_empty(), "{:?}", t.windows);
    let noisy: Vec<f32> = speech.iter().zip(&hiss).map(|(s, n)| s + n).collect();
    let t = m.transcribe(&noisy).expect("transcribes");
    assert!(!t.unreliable() && t.text.split_whitespace().count() >= 10, "{:?}", t.windows);
    // A 0.2-s scrap: no panic, nothing made up.
    assert!(m.transcribe(&speech[16_000..19_200]).expect("transcribes").text.split_whitespace().count() <= 1);
    // 65 s: three windows, each starting where the last ended.
    let long: Vec<f32> = speech.iter().copied().cycle().take(65 * 16_000).collect();
    let t = m.transcribe(&long).expect("transcribes");
    assert_eq!(t.windows.iter().map(|w| w.start_s).collect::<Vec<_>>(), [0.0, 30.0, 60.0]);
    assert!(t.text.split_whitespace().count() >= 25, "{}", t.text);
}

#[test]
fn a_missing_or_damaged_model_is_an_error_at_load() {
    let good = whisper::default_dir();
    let dir = tempfile::tempdir().expect("temp dir");
    assert!(Whisper::load(dir.path()).is_err(), "an empty folder");
    for f in ["config.json", "tokenizer.json", "vocabulary.txt"] {
        std::fs::copy(good.join(f), dir.path().join(f)).expect("copies");
    }
    let bin = std::fs::read(good.join("model.bin")).expect("model installed");
    // Cut short, and with its first weight's size field damaged.
    std::fs::write(dir.path().join("model.bin"), &bin[..bin.len() / 2]).expect("writes");
    let e = Whisper::load(dir.path()).expect_err("a truncated model.bin");
    let chain = std::iter::successors(Some(&e as &dyn std::error::Error), |e| e.source())
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join(": ");
    assert!(chain.contains("model.bin ends at byte"), "{chain}");
    let mut damaged = bin.clone();
    damaged[0] = 2;
    std::fs::write(dir.path().join("model.bin"), &damaged).expect("writes");
    assert!(Whisper::load(dir.path()).is_err(), "another binary version");
    std::fs::write(dir.path().join("model.bin"), &bin).expect("writes");
    std::fs::write(dir.path().join("config.json"), "{\"suppress_ids\": [99999999], \"suppress_ids_begin\": []}")
        .expect("writes");
    assert!(Whisper::load(dir.path()).is_err(), "a suppressed token outside the vocabulary");
}
