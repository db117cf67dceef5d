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

/// Reference speaker turns of pyannote's sample (RTTM: start and duration in seconds).
fn reference_turns() -> Vec<(f32, f32, String)> {
    let text = std::fs::read_to_string(path_of("../external/speech/pyannote/sample.rttm")).expect("rttm");
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let (start, dur) = (f.get(3)?.parse::<f32>().ok()?, f.get(4)?.parse::<f32>().ok()?);
            Some((start, start + dur, f.get(7)?.to_string()))
        })
        .collect()
}

/// How utterances found without a transcript line up with a conversation's speaker turns:
/// `(turn changes with one of our boundaries within 0.5 s, share of speech time in segments
/// whose majority speaker spoke it)`.
fn turn_agreement(segments: &[features::segment::Segment], turns: &[(f32, f32, String)]) -> (f32, f32) {
    let changes: Vec<f32> = turns.windows(2).filter(|w| w[0].2 != w[1].2).map(|w| w[1].0).collect();
    let bounds: Vec<f32> =
        segments.iter().flat_map(|s| [s.start_ms as f32 / 1000.0, s.end_ms as f32 / 1000.0]).collect();
    let found = changes.iter().filter(|&&c| bounds.iter().any(|&b| (b - c).abs() <= 0.5)).count();
    let (mut pure, mut total) = (0.0f32, 0.0f32);
    for s in segments {
        let (a, b) = (s.start_ms as f32 / 1000.0, s.end_ms as f32 / 1000.0);
        let mut by_speaker = std::collections::BTreeMap::<&str, f32>::new();
        for (ts, te, who) in turns {
            *by_speaker.entry(who).or_default() += (te.min(b) - ts.max(a)).max(0.0);
        }
        pure += by_speaker.values().copied().fold(0.0, f32::max);
        total += by_speaker.values().sum::<f32>();
    }
    (found as f32 / changes.len().max(1) as f32, pure / total.max(1e-6))
}

/// With no transcript, a two-speaker conversation is cut at its pauses into utterances of at
/// most `max_utterance_ms` (10 s), whichever voice-activity detector runs, so that one segment
/// does not swallow a whole exchange; how well the cuts meet the speaker changes is reported.
#[test]
fn a_conversation_without_transcript_is_cut_at_its_pauses() {
    use features::vad::{EnergyVad, SegmenterConfig, VoiceActivity, utterances};
    let clip = features::audio::read_audio(&path_of("../external/speech/pyannote/sample.wav")).expect("reads");
    let turns = reference_turns();
    assert_eq!(turns.len(), 10, "pyannote's sample has ten turns");
    let silero = runtime::vad::SileroVad::load(&runtime::vad::default_path()).expect("scripts/install_models.sh");
    let cfg = SegmenterConfig::default();
    for vad in [&EnergyVad as &dyn VoiceActivity, &silero] {
        let segs = utterances(&vad.speech_probabilities(&clip).expect("probabilities"), &cfg);
        let (found, purity) = turn_agreement(&segs, &turns);
        let longest = segs.iter().map(|s| s.end_ms - s.start_ms).max().unwrap_or(0);
        println!(
            "{}: {} utterances, longest {:.1} s; speaker changes met within 0.5 s {:.0} %; speech in its segment's majority speaker {:.0} %",
            vad.name(),
            segs.len(),
            longest as f32 / 1000.0,
            100.0 * found,
            100.0 * purity
        );
        assert!(longest <= cfg.max_utterance_ms, "{}: {longest} ms", vad.name());
        assert!(segs.len() >= 4, "{}: {segs:?}", vad.name());
        // Floors under what was measured (38 %, 74-76 %): turns that follow without a pause
        // cannot be found from voice activity alone, which is why such results are flagged.
        assert!(found >= 0.3 && purity >= 0.7, "{}: {found} {purity}", vad.name());
    }
}

/// The same conversation's features: without a transcript the result says that its speakers were
/// not separated; with the participant's turns (here: one speaker of the reference) it does not.
#[test]
fn audio_segmented_without_turns_is_flagged_speakers_not_separated() {
    use features::text::{Speaker, Utterance};
    use protocol::ResultFlags;
    let clip = features::audio::read_audio(&path_of("../external/speech/pyannote/sample.wav")).expect("reads");
    let alone = features::extract_session(&features::SessionInputs { audio: Some(&clip), ..Default::default() });
    assert!(alone.audio.is_some());
    assert!(alone.flags.contains(ResultFlags::SPEAKERS_NOT_SEPARATED), "{}", alone.flags);
    let turns = reference_turns();
    let transcript: Vec<Utterance> = turns
        .iter()
        .map(|(a, b, who)| Utterance {
            start_ms: (a * 1000.0) as u32,
            end_ms: (b * 1000.0) as u32,
            speaker: if *who == turns[0].2 { Speaker::Participant } else { Speaker::Interviewer },
            text: "well I suppose so".into(),
        })
        .collect();
    let with_turns = features::extract_session(&features::SessionInputs {
        audio: Some(&clip),
        transcript: Some(&transcript),
        ..Default::default()
    });
    assert!(with_turns.audio.is_some());
    assert!(!with_turns.flags.contains(ResultFlags::SPEAKERS_NOT_SEPARATED), "{}", with_turns.flags);
}

/// Swapping only the voice-activity detector does not change the screening of a conversation
/// without transcript: both cut it at its pauses into similar utterances, so the committed
/// model's probability stays on the same side of its threshold and close.
#[test]
fn the_screening_of_a_conversation_does_not_hinge_on_the_voice_activity_detector() {
    use features::vad::{EnergyVad, VoiceActivity};
    let clip = features::audio::read_audio(&path_of("../external/speech/pyannote/sample.wav")).expect("reads");
    let silero = runtime::vad::SileroVad::load(&runtime::vad::default_path()).expect("scripts/install_models.sh");
    let model = device::load_model(Some(&device::bundled_model_dir())).expect("committed model");
    let p: Vec<f32> = [&EnergyVad as &dyn VoiceActivity, &silero]
        .iter()
        .map(|vad| {
            let feats = features::extract_session(&features::SessionInputs {
                audio: Some(&clip),
                vad: Some(*vad),
                ..Default::default()
            });
            model.predict(&feats).expect("predicts").p_depressed
        })
        .collect();
    let threshold = model.decision_threshold();
    println!("P(depressed): energy VAD {:.3}, silero {:.3} (threshold {threshold})", p[0], p[1]);
    assert_eq!(p[0] >= threshold, p[1] >= threshold, "{p:?}");
    assert!((p[0] - p[1]).abs() <= 0.1, "{p:?}");
}
