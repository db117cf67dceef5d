//! `bench/run asr`: on-device transcription, Whisper tiny.en through tract against
//! faster-whisper (CTranslate2, float32) on the same audio, greedy, one thread each: the
//! recordings of runtime's reference test (runtime/tests/whisper-reference.json: 13 real
//! recordings, 10 with transcripts), each transcribed on its own as the device transcribes an
//! answer. Real-time factor (seconds of audio per second of work), time against faster-whisper,
//! word error rate of both against the transcripts, peak RSS of this process (the transcriber).
//!
//! Usage (through bench/run, which makes the faster-whisper venv and pins one core):
//! `asr PYTHON`.

use runtime::whisper::{self, Whisper};

#[derive(serde::Deserialize)]
struct Reference {
    recordings: Vec<Recording>,
}

#[derive(serde::Deserialize)]
struct Recording {
    file: String,
    truth: Option<String>,
}

#[derive(serde::Deserialize)]
struct Timed {
    seconds: f64,
    texts: Vec<String>,
}

/// Word error rate of `texts` against the transcripts, over the recordings that have one.
fn wer(recordings: &[Recording], texts: &[String]) -> f64 {
    let (mut errors, mut words) = (0, 0);
    for (r, text) in recordings.iter().zip(texts) {
        if let Some(truth) = &r.truth {
            let truth = whisper::words_for_scoring(truth);
            words += truth.len();
            errors += whisper::word_errors(&truth, &whisper::words_for_scoring(text));
        }
    }
    errors as f64 / words.max(1) as f64
}

fn main() -> anyhow::Result<()> {
    let py = std::env::args().nth(1).unwrap_or_else(|| "python3".into());
    let root = bench::repo();
    let reference: Reference =
        serde_json::from_str(&std::fs::read_to_string(root.join("runtime/tests/whisper-reference.json"))?)?;
    let clips = reference
        .recordings
        .iter()
        .map(|r| features::audio::read_audio(&root.join(&r.file)).map(|c| c.samples))
        .collect::<Result<Vec<_>, _>>()?;
    let audio_s: f64 = clips.iter().map(|c| c.len() as f64 / 16_000.0).sum();
    let t = std::time::Instant::now();
    let model = Whisper::load(&whisper::default_dir())?;
    let load_s = t.elapsed().as_secs_f64();
    model.transcribe(&clips[0])?; // warm-up, as the reference does
    let mut texts = Vec::new();
    let ours_s = bench::best_of(3, || {
        texts = clips.iter().map(|c| model.transcribe(c).map(|t| t.text).unwrap_or_default()).collect();
    });
    let rss_mb = bench::proc_status_kb("VmHWM:") as f64 / 1024.0;
    let files: Vec<String> = reference.recordings.iter().map(|r| root.join(&r.file).display().to_string()).collect();
    let mut args = vec!["time", "3"];
    args.extend(files.iter().map(String::as_str));
    let timed: Timed = serde_json::from_str(&bench::reference_script(&py, "asr_reference.py", &args)?)?;
    let identical = texts.iter().zip(&timed.texts).filter(|(a, b)| a == b).count();
    let (wer, wer_ref) = (wer(&reference.recordings, &texts), wer(&reference.recordings, &timed.texts));
    println!(
        "{} recordings, {audio_s:.1} s of audio; model loaded in {load_s:.2} s; same text as faster-whisper on {identical}",
        clips.len()
    );
    println!("ours {ours_s:.2} s, faster-whisper {:.2} s (best of 3, one thread each)", timed.seconds);
    println!(
        "RESULT asr rtf={:.1} vs_faster_whisper={:.2} wer={:.4} wer_ref={:.4} rss_mb={rss_mb:.0} ref_rtf={:.1} load_s={load_s:.2} same_text={identical}/{}",
        audio_s / ours_s,
        ours_s / timed.seconds,
        wer,
        wer_ref,
        audio_s / timed.seconds,
        clips.len()
    );
    Ok(())
}
