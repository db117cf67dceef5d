//! # features — one set of front-ends for training and for the device
//!
//! The same functions turn raw inputs into model inputs on the device (live capture or
//! `--simulate` files) and in the corpus feature cache used for training, so there is no
//! train/serve skew. This crate never depends on a training library.
//!
//! A session becomes, per modality, a [`Sequence`]: one feature vector per **segment**. Segments
//! are the participant's utterances when a timed transcript exists, otherwise fixed windows
//! ([`segment`]). [`extract_session`] is the one entry point both the device and the corpus
//! cache call.
//!
//! * [`audio`]: PCM (any rate, resampled to 16 kHz) → streaming low-level descriptors (mel/MFCC,
//!   F0, HNR, jitter, shimmer; checked against librosa and Praat) → per-segment functionals.
//! * [`landmarks`]: 68-point face landmarks (DAIC-WOZ CLNF files, or the device's `vision`
//!   front-end) → per-segment head pose, gaze proxy, eye, smile, brow and motion measures.
//! * [`text`]: utterances → lexical rates and a hashed n-gram embedding or a
//!   [`text::SentenceEncoder`]'s; the DAIC-WOZ transcript format.
//! * [`vad`]: voice activity → utterances, for audio whose transcript has no timing.
//! * [`schema`]: the names of every feature, in order, and their [`SchemaHash`].
//!
//! Any change of what is computed changes [`schema::FEATURE_SCHEMA`] and therefore the hash, so
//! a model trained on other features is refused, never silently fed the wrong inputs.
//!
//! Architecture invariant: `features` never depends on a training library, a model runtime or
//! hardware; models plug in through traits ([`vad::VoiceActivity`], [`text::SentenceEncoder`]).

pub mod assets;
pub mod audio;
pub mod landmarks;
pub mod schema;
pub mod segment;
pub mod text;
pub mod transcript;
pub mod vad;

pub use protocol::SchemaHash;

use audio::AudioClip;
use landmarks::LandmarkTrack;
use protocol::ResultFlags;
use segment::Segment;
use text::{Speaker, Utterance};

/// Errors of the front-ends. Each names the input it concerns; a cause from below (the file
/// system, the WAV decoder, a sentence encoder) is the error's source.
#[derive(Debug, thiserror::Error)]
pub enum FeatureError {
    /// An input file could not be opened or read.
    #[error("cannot read {path}")]
    Io {
        /// The file.
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// A WAV file could not be decoded.
    #[error("cannot read WAV {path}")]
    Wav {
        /// The file (or archive member).
        path: String,
        #[source]
        source: hound::Error,
    },
    /// A WAV file's data ends before its header says.
    #[error("WAV {path}: data truncated after {frames} of {expected} frames")]
    TruncatedWav {
        /// The file.
        path: String,
        /// Frames read.
        frames: usize,
        /// Frames the header announces.
        expected: u32,
        #[source]
        source: hound::Error,
    },
    /// A compressed or non-PCM recording (FLAC, Ogg Vorbis, MP3, µ-law WAV, …) could not be
    /// decoded.
    #[error("cannot decode {path}{}", at_seconds(*.at_s))]
    Decode {
        /// The file.
        path: String,
        /// Seconds of audio decoded before the failure (None: before any audio).
        at_s: Option<f32>,
        #[source]
        source: symphonia::core::errors::Error,
    },
    /// A recording ends before its header says.
    #[error("{path}: audio truncated after {frames} of {expected} frames")]
    TruncatedAudio {
        /// The file.
        path: String,
        /// Frames decoded.
        frames: u64,
        /// Frames the header announces.
        expected: u64,
    },
    /// Audio in an encoding or layout the front-end does not read.
    #[error("unsupported audio in {path}: {detail}")]
    UnsupportedAudio {
        /// The file or stream.
        path: String,
        /// What is unsupported.
        detail: String,
    },
    /// A transcript line that does not parse.
    #[error("transcript {path}{}: {detail}", at_line(*.line))]
    Transcript {
        /// The file.
        path: String,
        /// 1-based line (0: the file as a whole).
        line: usize,
        /// What is wrong.
        detail: String,
    },
    /// The sentence encoder failed.
    #[error("voice-activity model {path} failed")]
    Vad {
        /// The model file.
        path: std::path::PathBuf,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("sentence encoder {name}")]
    Encoder {
        /// The encoder.
        name: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The sentence encoder gave an embedding of the wrong width.
    #[error("sentence encoder {name} gave {got} values, expected {want}")]
    EncoderWidth {
        /// The encoder.
        name: String,
        /// Values given.
        got: usize,
        /// Values expected.
        want: usize,
    },
    /// A landmark (CLNF) line that does not parse.
    #[error("landmark file {path}{}: {detail}", at_line(*.line))]
    Landmarks {
        /// The file.
        path: String,
        /// 1-based line (0: the file as a whole).
        line: usize,
        /// What is wrong.
        detail: String,
    },
}

/// A sequence of feature vectors, row-major `[len, dim]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Sequence {
    pub dim: usize,
    pub data: Vec<f32>,
}

impl Sequence {
    pub fn new(dim: usize) -> Self {
        Sequence { dim, data: Vec::new() }
    }

    pub fn push(&mut self, row: &[f32]) {
        debug_assert_eq!(row.len(), self.dim);
        self.data.extend_from_slice(row);
    }

    pub fn len(&self) -> usize {
        self.data.len().checked_div(self.dim).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.dim..(i + 1) * self.dim]
    }

    /// At most `max` rows, evenly spaced (all rows when there are no more than `max`). Training
    /// and the device cut long sessions with this same rule.
    pub fn select_evenly(&self, max: usize) -> Vec<&[f32]> {
        let n = self.len();
        if n <= max { (0..n).map(|i| self.row(i)).collect() } else { (0..max).map(|k| self.row(k * n / max)).collect() }
    }

    /// Column means (zeros for an empty sequence).
    pub fn mean(&self) -> Vec<f32> {
        let mut m = vec![0.0f32; self.dim];
        for i in 0..self.len() {
            for (a, b) in m.iter_mut().zip(self.row(i)) {
                *a += b;
            }
        }
        let n = self.len().max(1) as f32;
        m.iter_mut().for_each(|v| *v /= n);
        m
    }
}

/// ", line N" for a 1-based line; nothing for 0 (the file as a whole).
fn at_line(line: usize) -> String {
    if line == 0 { String::new() } else { format!(", line {line}") }
}

fn at_seconds(at: Option<f32>) -> String {
    at.map(|s| format!(" at {s:.2} s")).unwrap_or_default()
}

/// Features of one session, per modality. `None` = modality absent or unusable.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SessionFeatures {
    pub audio: Option<Sequence>,
    pub video: Option<Sequence>,
    pub text: Option<Sequence>,
    /// Quality flags.
    pub flags: ResultFlags,
    /// How much usable signal each modality had (the device's presence rule reads it).
    pub usable: Usable,
}

/// How much usable signal a session's inputs held, per modality.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Usable {
    /// Seconds of audio above the session's speech floor (energy, 10 ms frames).
    pub speech_s: f32,
    /// Seconds of video with a tracked face (valid landmark frames over the frame rate).
    pub face_s: f32,
    /// Words the text features were computed from (the participant's, by default).
    pub words: u32,
}

/// Everything a session may provide. Any input may be missing.
#[derive(Debug, Clone, Copy, Default)]
pub struct SessionInputs<'a> {
    pub audio: Option<&'a AudioClip>,
    /// The recording analysed as it was captured (a live microphone keeps no samples), used
    /// when `audio` is `None`. Without participant turns it is segmented by the energy rule.
    pub analysed_audio: Option<&'a audio::Analysis>,
    /// The answer windows' samples, kept for the transcriber where `audio` is `None`.
    pub answer_audio: Option<&'a audio::AnswerAudio>,
    pub landmarks: Option<&'a LandmarkTrack>,
    pub transcript: Option<&'a [Utterance]>,
    /// Also use the interviewer's words in the text features. Off by default: the
    /// interviewer's follow-up prompts leak the label.
    pub include_interviewer_text: bool,
    /// Segments the audio into utterances when the transcript has no timing;
    /// [`vad::EnergyVad`] when `None`.
    pub vad: Option<&'a dyn vad::VoiceActivity>,
    /// The sentence encoder of the text features; the hashed embedding when `None`.
    pub text_encoder: Option<&'a dyn text::SentenceEncoder>,
    /// Transcribes the participant's speech when the transcript has no participant words (none
    /// pushed, or answer windows without text): each segment of `audio` is transcribed on its
    /// own and the result is flagged [`ResultFlags::MACHINE_TRANSCRIPT`]. Text is absent when
    /// `None`.
    pub transcriber: Option<&'a dyn text::Transcriber>,
    /// Where the words come from. [`Pushed`](text::TranscriptSource::Pushed): the transcript's
    /// participant words, the transcriber only where it has none. [`Asr`](text::TranscriptSource::Asr):
    /// always the transcriber's, over the participant turns (the transcript gives their timing
    /// only), since the model learnt machine words; no transcriber, no text.
    pub transcripts: text::TranscriptSource,
}

/// Participant words below which the transcript is flagged as short.
pub const SHORT_TRANSCRIPT_WORDS: usize = 20;

/// Runs every front-end over a session. The one function the device and the corpus cache share.
pub fn extract_session(inp: &SessionInputs<'_>) -> SessionFeatures {
    let analysed = inp.audio.is_none().then_some(inp.analysed_audio).flatten();
    let duration_ms = [
        inp.audio.map(|a| (a.duration_s() * 1000.0) as u32),
        analysed.map(|a| a.duration_ms),
        inp.landmarks.map(LandmarkTrack::duration_ms),
        inp.transcript.and_then(|t| t.iter().map(|u| u.end_ms).max()),
    ]
    .into_iter()
    .flatten()
    .max()
    .unwrap_or(0);
    let by_voice = |p: Result<vad::SpeechProbabilities, FeatureError>, name: &str| match p {
        Ok(p) => {
            let u = vad::utterances(&p, &vad::SegmenterConfig::default());
            tracing::debug!(vad = name, utterances = u.len(), "audio segmented by voice activity");
            if u.is_empty() { segment::fixed_windows(duration_ms) } else { u }
        }
        Err(e) => {
            tracing::warn!(vad = name, "voice activity failed ({e}); using fixed windows");
            segment::fixed_windows(duration_ms)
        }
    };
    let by_turns =
        inp.transcript.is_some_and(|t| t.iter().any(|u| u.speaker == Speaker::Participant && u.end_ms > u.start_ms));
    let segments: Vec<Segment> = match (inp.transcript, inp.audio, analysed) {
        (Some(t), _, _) if by_turns => segment::participant_turns(t),
        (_, Some(clip), _) => {
            let detector = inp.vad.unwrap_or(&vad::EnergyVad);
            by_voice(detector.speech_probabilities(clip), detector.name())
        }
        (_, None, Some(a)) => by_voice(Ok(vad::energy_probabilities(a)), "energy"),
        _ => segment::fixed_windows(duration_ms),
    };

    let mut flags = ResultFlags::empty();
    let mut usable = Usable::default();
    let analysis = match (inp.audio, analysed) {
        (Some(clip), _) => audio::analyse(clip).map(std::borrow::Cow::Owned).map(Some),
        (None, Some(a)) => Ok(Some(std::borrow::Cow::Borrowed(a))),
        (None, None) => Ok(None),
    };
    let audio = match analysis {
        Ok(Some(a)) => {
            if a.low_quality {
                flags |= ResultFlags::LOW_QUALITY_AUDIO;
            }
            if !by_turns {
                // Utterances found by voice activity may hold the interviewer's voice too.
                flags |= ResultFlags::SPEAKERS_NOT_SEPARATED;
            }
            let speech_frames = a.frames.iter().filter(|f| f[audio::lld::idx::ENERGY_DB] > a.speech_floor_db).count();
            usable.speech_s = speech_frames as f32 * audio::lld::HOP as f32 / audio::SAMPLE_RATE as f32;
            Some(audio::functionals(&a, &segments))
        }
        Ok(None) => None,
        Err(e) => {
            tracing::warn!("audio not analysed: {e}");
            flags |= ResultFlags::LOW_QUALITY_AUDIO;
            None
        }
    };
    let video = inp.landmarks.and_then(|track| landmarks::segment_features(track, &segments));
    if let Some(track) = inp.landmarks {
        let fps = if track.fps > 0.0 { track.fps } else { 30.0 };
        usable.face_s = track.frames.iter().filter(|f| f.valid).count() as f32 / fps;
    }
    if video.is_none() {
        flags |= ResultFlags::NO_FACE;
    }
    let only_machine_words = inp.transcripts == text::TranscriptSource::Asr;
    let has_words = !only_machine_words
        && inp
            .transcript
            .is_some_and(|t| t.iter().any(|u| u.speaker == Speaker::Participant && !u.text.trim().is_empty()));
    let speech = || match (inp.audio, inp.answer_audio) {
        (Some(clip), _) => Speech::of_clip(clip),
        (None, Some(kept)) => Some(Speech::Answers(kept)),
        (None, None) => None,
    };
    let machine = match inp.transcriber {
        Some(asr) if !has_words => speech().and_then(|speech| machine_transcript(asr, &speech, &segments)),
        _ => None,
    };
    let machine = machine.map(|(turns, doubtful)| {
        flags |= ResultFlags::MACHINE_TRANSCRIPT;
        flags.set(ResultFlags::UNRELIABLE_TRANSCRIPT, doubtful);
        turns
    });
    let words_from = if only_machine_words { machine.as_deref() } else { machine.as_deref().or(inp.transcript) };
    let text = words_from.and_then(|t| {
        let use_turn = |u: &&Utterance| u.speaker == Speaker::Participant || inp.include_interviewer_text;
        let turns: Vec<&Utterance> = t.iter().filter(use_turn).collect();
        text::utterance_features(&turns, inp.text_encoder)
            .inspect_err(|e| tracing::warn!("text features not computed: {e}"))
            .ok()
            .flatten()
    });
    let words = text.as_ref().map_or(0.0, |t| (0..t.len()).map(|i| t.row(i)[0]).sum::<f32>());
    if (words as usize) < SHORT_TRANSCRIPT_WORDS {
        flags |= ResultFlags::SHORT_TRANSCRIPT;
    }
    usable.words = words.round() as u32;
    SessionFeatures { audio, video, text, flags, usable }
}

/// Where the transcriber's samples come from.
enum Speech<'a> {
    /// The whole recording, at the front-end rate.
    Clip(std::borrow::Cow<'a, AudioClip>),
    /// The answer windows only (live capture).
    Answers(&'a audio::AnswerAudio),
}

impl<'a> Speech<'a> {
    /// `clip` at the front-end rate; `None` (logged) when it cannot be brought there.
    fn of_clip(clip: &'a AudioClip) -> Option<Speech<'a>> {
        if clip.rate == audio::SAMPLE_RATE {
            return Some(Speech::Clip(std::borrow::Cow::Borrowed(clip)));
        }
        clip.to_frontend_rate()
            .inspect_err(|e| tracing::warn!("no machine transcript: {e}"))
            .ok()
            .map(|c| Speech::Clip(std::borrow::Cow::Owned(c)))
    }

    /// The samples of `segment`; `None` where they were not kept.
    fn span(&self, segment: &Segment) -> Option<&[f32]> {
        match self {
            Speech::Clip(c) => Some(c.span(segment.start_ms, segment.end_ms)),
            Speech::Answers(kept) => kept.span(segment.start_ms, segment.end_ms),
        }
    }
}

/// The participant's words in each segment of `speech`, transcribed on the device: one
/// utterance per segment that has words, and whether the recogniser doubted any. `None` when
/// every segment fails (logged); a segment that fails alone, or has no kept samples, is left
/// out.
fn machine_transcript(
    asr: &dyn text::Transcriber,
    speech: &Speech<'_>,
    segments: &[Segment],
) -> Option<(Vec<Utterance>, bool)> {
    let started = std::time::Instant::now();
    let (mut out, mut failed, mut doubtful) = (Vec::new(), 0, 0);
    for s in segments {
        let Some(samples) = speech.span(s) else {
            tracing::warn!(start_ms = s.start_ms, "segment not transcribed: its samples were not kept");
            failed += 1;
            continue;
        };
        match asr.transcribe(samples) {
            Ok(words) => {
                doubtful += usize::from(words.unreliable);
                if !words.text.trim().is_empty() {
                    let (start_ms, end_ms) = (s.start_ms, s.end_ms);
                    out.push(Utterance { start_ms, end_ms, speaker: Speaker::Participant, text: words.text });
                }
            }
            Err(e) => {
                failed += 1;
                tracing::warn!(start_ms = s.start_ms, "segment not transcribed: {e}");
            }
        }
    }
    tracing::info!(
        transcriber = asr.name(),
        segments = segments.len(),
        with_words = out.len(),
        doubtful,
        failed,
        seconds = started.elapsed().as_secs_f32(),
        "speech transcribed on the device"
    );
    (failed < segments.len() || segments.is_empty()).then_some((out, doubtful > 0))
}

/// Mean and (population) standard deviation; `(0, 0)` for an empty slice.
pub(crate) fn mean_sd(xs: &[f32]) -> (f32, f32) {
    if xs.is_empty() {
        return (0.0, 0.0);
    }
    let n = xs.len() as f64;
    let mean = xs.iter().map(|&x| f64::from(x)).sum::<f64>() / n;
    let var = xs.iter().map(|&x| (f64::from(x) - mean).powi(2)).sum::<f64>() / n;
    (mean as f32, var.sqrt() as f32)
}

/// The `q`-quantile (0–1) by nearest rank; 0 for an empty slice.
pub(crate) fn quantile(xs: &[f32], q: f32) -> f32 {
    if xs.is_empty() {
        return 0.0;
    }
    let mut v = xs.to_vec();
    v.sort_by(f32::total_cmp);
    v[((v.len() - 1) as f32 * q).round() as usize]
}

/// An error and its causes on one line, `a: b: c` (for logs, reports and the protocol's error
/// detail).
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cause = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_rows_and_means() {
        let mut s = Sequence::new(2);
        assert!(s.is_empty());
        s.push(&[1.0, 2.0]);
        s.push(&[3.0, 6.0]);
        assert_eq!((s.len(), s.row(1)), (2, &[3.0, 6.0][..]));
        assert_eq!(s.mean(), vec![2.0, 4.0]);
        assert_eq!(quantile(&[3.0, 1.0, 2.0], 0.5), 2.0);
    }

    #[test]
    fn a_session_with_nothing_is_flagged_not_a_panic() {
        let f = extract_session(&SessionInputs::default());
        assert!(f.audio.is_none() && f.video.is_none() && f.text.is_none());
        assert!(f.flags.contains(ResultFlags::NO_FACE | ResultFlags::SHORT_TRANSCRIPT));
    }

    /// Says "word" once per 100 ms it is given, and records what it was asked; fails on request.
    #[derive(Debug, Default)]
    struct CountingAsr {
        calls: std::sync::Mutex<Vec<usize>>,
        fail: bool,
    }

    impl text::Transcriber for CountingAsr {
        fn name(&self) -> &str {
            "counting"
        }
        fn transcribe(&self, samples: &[f32]) -> Result<text::MachineWords, FeatureError> {
            self.calls.lock().unwrap().push(samples.len());
            if self.fail {
                return Err(FeatureError::Encoder { name: "counting".into(), source: "broken".into() });
            }
            // Doubts anything over 4.5 s.
            let text = vec!["word"; samples.len() / 1_600].join(" ");
            Ok(text::MachineWords { text, unreliable: samples.len() > 72_000 })
        }
    }

    #[test]
    fn answer_windows_without_words_are_transcribed_and_a_pushed_transcript_wins() {
        // 12 s of a voiced buzz at 16 kHz.
        let samples: Vec<f32> =
            (0..192_000).map(|i| 0.3 * (2.0 * std::f32::consts::PI * 150.0 * i as f32 / 16_000.0).sin()).collect();
        let clip = AudioClip { rate: 16_000, samples };
        let turn =
            |a, b, text: &str| Utterance { start_ms: a, end_ms: b, speaker: Speaker::Participant, text: text.into() };
        let windows = [turn(1_000, 5_000, ""), turn(6_000, 11_000, "")];
        let asr = CountingAsr::default();
        let inputs = SessionInputs {
            audio: Some(&clip),
            transcript: Some(&windows),
            transcriber: Some(&asr),
            ..Default::default()
        };
        let f = extract_session(&inputs);
        assert_eq!(*asr.calls.lock().unwrap(), [64_000, 80_000], "one call per answer window, its own samples");
        assert!(f.flags.contains(ResultFlags::MACHINE_TRANSCRIPT));
        assert!(f.flags.contains(ResultFlags::UNRELIABLE_TRANSCRIPT), "the 5-s window was doubted");
        assert_eq!(f.usable.words, 40 + 50);
        let sure = extract_session(&SessionInputs { transcript: Some(&windows[..1]), ..inputs });
        assert!(sure.flags.contains(ResultFlags::MACHINE_TRANSCRIPT));
        assert!(!sure.flags.contains(ResultFlags::UNRELIABLE_TRANSCRIPT), "{}", sure.flags);
        // A pushed transcript with the participant's words is used as it is.
        let pushed = [turn(1_000, 5_000, "I slept well"), turn(6_000, 11_000, "")];
        let asr = CountingAsr::default();
        let f = extract_session(&SessionInputs { transcript: Some(&pushed), transcriber: Some(&asr), ..inputs });
        assert!(asr.calls.lock().unwrap().is_empty());
        assert!(!f.flags.intersects(ResultFlags::MACHINE_TRANSCRIPT | ResultFlags::UNRELIABLE_TRANSCRIPT));
        assert_eq!(f.usable.words, 3);
        // A transcriber that fails everywhere leaves text absent, nothing else.
        let broken = CountingAsr { fail: true, ..Default::default() };
        let f = extract_session(&SessionInputs { transcriber: Some(&broken), ..inputs });
        assert!(f.text.is_none() && f.audio.is_some());
        assert!(!f.flags.contains(ResultFlags::MACHINE_TRANSCRIPT));
        // A model trained on machine words gets machine words, over the pushed turns' timing.
        let asr = CountingAsr::default();
        let machine_only = SessionInputs {
            transcript: Some(&pushed),
            transcriber: Some(&asr),
            transcripts: text::TranscriptSource::Asr,
            ..inputs
        };
        let f = extract_session(&machine_only);
        assert_eq!(*asr.calls.lock().unwrap(), [64_000, 80_000]);
        assert!(f.flags.contains(ResultFlags::MACHINE_TRANSCRIPT));
        assert_eq!(f.usable.words, 40 + 50);
        // ... and never the pushed words in their place.
        let f = extract_session(&SessionInputs { transcriber: Some(&broken), ..machine_only });
        assert!(f.text.is_none() && f.usable.words == 0);
        let f = extract_session(&SessionInputs { transcriber: None, ..machine_only });
        assert!(f.text.is_none());
    }

    #[test]
    fn answer_windows_kept_by_live_capture_are_transcribed_where_no_samples_were_kept() {
        // 12 s analysed as it arrived; only the two answer windows' samples kept, each starting
        // 40 ms after the kiosk's clock says (a microphone buffer's latency).
        let buzz = |n: usize| (0..n).map(|i| 0.3 * (i as f32 * 0.06).sin()).collect::<Vec<f32>>();
        let clip = AudioClip { rate: 16_000, samples: buzz(192_000) };
        let analysis = audio::analyse(&clip).expect("analyses");
        let kept = audio::AnswerAudio { windows: vec![(1_040, buzz(64_000)), (6_040, buzz(80_000))] };
        let turn = |a, b| Utterance { start_ms: a, end_ms: b, speaker: Speaker::Participant, text: String::new() };
        let windows = [turn(1_000, 5_000), turn(6_000, 11_000)];
        let asr = CountingAsr::default();
        let inputs = SessionInputs {
            analysed_audio: Some(&analysis),
            answer_audio: Some(&kept),
            transcript: Some(&windows),
            transcriber: Some(&asr),
            ..Default::default()
        };
        let f = extract_session(&inputs);
        // Each window's overlap with its kept samples: 3.96 s and 4.96 s.
        assert_eq!(*asr.calls.lock().unwrap(), [63_360, 79_360]);
        assert!(f.flags.contains(ResultFlags::MACHINE_TRANSCRIPT) && f.audio.is_some());
        assert_eq!(f.usable.words, 39 + 49);
        // A window whose samples were not kept is left out; none kept, no text.
        let one = audio::AnswerAudio { windows: vec![(6_040, buzz(80_000))] };
        let asr = CountingAsr::default();
        let f = extract_session(&SessionInputs { answer_audio: Some(&one), transcriber: Some(&asr), ..inputs });
        assert_eq!((asr.calls.lock().unwrap().len(), f.usable.words), (1, 49));
        let none = audio::AnswerAudio::default();
        let f = extract_session(&SessionInputs { answer_audio: Some(&none), ..inputs });
        assert!(f.text.is_none() && !f.flags.contains(ResultFlags::MACHINE_TRANSCRIPT));
    }
}
