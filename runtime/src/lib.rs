//! # runtime — what turns features into a screening result, on the device
//!
//! [`Model`] is the one interface the device runs. Implementations:
//!
//! * [`onnx::OnnxModel`] — a trained MIMML model, run by tract; ONNX `GRU` nodes become our
//!   [`onnx::gru::Gru`] op. It arrives in a verified bundle ([`bundle::Bundle`]: a versioned
//!   manifest with the SHA-256 of every file, feature-schema hash, golden self-test, signature;
//!   the transfer archive), whose format [`bundle`] owns; keys are [`signing`]'s.
//! * [`PlaceholderModel`] — **a placeholder, not a trained model**: fixed, hand-set weights over
//!   a few named features, for a device with no bundle installed. Every result it produces is
//!   flagged `PLACEHOLDER_MODEL` and its version string says `placeholder`.
//!
//! Beside the model, the other networks the device runs through tract: [`vad::SileroVad`]
//! (voice activity), [`minilm::MiniLm`] (the optional sentence encoder) and
//! [`whisper::Whisper`] (on-device transcription, from CTranslate2's `model.bin` read by
//! [`ct2`]), and the ONNX graph writer all of them and the training crate's export use
//! ([`onnx_graph`]).
//!
//! Architecture invariant: `runtime` never touches hardware or the link and never depends on a
//! training library (candle) or a corpus format (zip, csv); it sees features and audio samples
//! handed to it (voice activity, transcription), never media files or capture devices.

pub mod bundle;
pub mod ct2;
pub mod minilm;
pub mod onnx;
pub mod onnx_graph;
pub mod signing;
pub mod vad;
pub mod whisper;

use features::{Sequence, SessionFeatures, schema};
use protocol::{PerModality, SchemaHash};

/// A cause from tract, tokenizers, serde or the file system, carried as the source of a
/// [`ModelError`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why a model could not be loaded, verified or run. One variant per failure a caller can act
/// on; the cause, where there is one, is the error's source.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The model was trained on other features than this build computes.
    #[error("model expects feature schema {expected}, front-ends produce {actual}")]
    SchemaMismatch {
        /// The model's schema.
        expected: SchemaHash,
        /// This build's.
        actual: SchemaHash,
    },
    /// A modality's feature vectors have the wrong width.
    #[error("{modality} features have {got} values, model expects {want}")]
    Shape {
        /// The modality.
        modality: &'static str,
        /// Width given.
        got: usize,
        /// Width expected.
        want: usize,
    },
    /// No modality has any features.
    #[error("no modality present: nothing to score")]
    NoInput,
    /// A bundle file could not be read or written.
    #[error("model bundle file {path}")]
    Io {
        /// The file or folder.
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A bundle file is not what its format says (manifest TOML, golden JSON).
    #[error("model bundle file {file} is not valid")]
    Parse {
        /// The file.
        file: &'static str,
        #[source]
        source: BoxError,
    },
    /// A file does not match its SHA-256 in the manifest (damaged or tampered with).
    #[error("{file}: SHA-256 {got} does not match the manifest ({want})")]
    HashMismatch {
        /// The file.
        file: String,
        /// Its hash.
        got: String,
        /// The manifest's.
        want: String,
    },
    /// The manifest's feature schema is not a schema hash.
    #[error("feature schema {0:?} is not 16 hex digits")]
    BadSchema(String),
    /// The manifest names a weight storage this build does not read.
    #[error("quantisation {0:?} is not supported by this build")]
    Quantization(String),
    /// The manifest's decision threshold is not strictly between 0 and 1.
    #[error("decision threshold {0} is not strictly between 0 and 1")]
    Threshold(f32),
    /// The model's text features need a sentence encoder that does not load here.
    #[error("the model needs a text encoder this device does not load")]
    TextEncoderMissing(#[source] BoxError),
    /// A manifest field is outside what a bundle may say (a file name that leaves the bundle,
    /// a segment count no model has, a required file not listed, ...).
    #[error("manifest.toml: {field}: {detail}")]
    Manifest {
        /// The field.
        field: &'static str,
        /// What is wrong with it.
        detail: String,
    },
    /// The manifest's model version, decision threshold, segment count or schema differ from
    /// those the golden example was made with: the manifest was edited.
    #[error("manifest.toml says {field} = {manifest}, but the bundle was made with {golden} (golden.json)")]
    Pinned {
        /// The field.
        field: &'static str,
        /// The manifest's value.
        manifest: String,
        /// The golden example's.
        golden: String,
    },
    /// The ONNX graph's inputs are not MIMML's.
    #[error("ONNX inputs are {0:?}; expected [audio, video, text, present]")]
    Inputs(Vec<String>),
    /// An ONNX input's width differs from what the front-ends compute.
    #[error("ONNX input {input} has {got:?} features per segment, the front-ends compute {want}")]
    InputWidth {
        /// The input.
        input: String,
        /// Its width, if fixed.
        got: Option<usize>,
        /// The front-ends' width.
        want: usize,
    },
    /// tract could not read, prepare or run the graph.
    #[error("{stage}")]
    Tract {
        /// What was being done ("reading the ONNX model", "inference", ...).
        stage: &'static str,
        #[source]
        source: BoxError,
    },
    /// The graph's outputs are not MIMML's.
    #[error("unexpected output shapes")]
    Outputs,
    /// The bundle's signature, or its transfer archive, was refused.
    #[error(transparent)]
    Signature(#[from] signing::SignatureError),
    /// The bundle's golden input does not give its recorded output.
    #[error("self-test failed: output differs from golden.json by {worst} (tolerance {tolerance})")]
    SelfTest {
        /// Largest difference.
        worst: f32,
        /// Allowed difference.
        tolerance: f32,
    },
    /// The voice-activity model could not be loaded or run.
    #[error("voice-activity model {path}")]
    Vad {
        /// The model file.
        path: std::path::PathBuf,
        #[source]
        source: BoxError,
    },
    /// The transcriber (Whisper) could not be loaded or run.
    #[error("transcriber {path}")]
    Transcriber {
        /// The model folder or file.
        path: std::path::PathBuf,
        #[source]
        source: BoxError,
    },
    /// The sentence encoder could not be loaded or run.
    #[error("sentence encoder {path}")]
    TextEncoder {
        /// The model folder or file.
        path: std::path::PathBuf,
        #[source]
        source: BoxError,
    },
}

impl ModelError {
    /// A tract failure while doing `stage`.
    pub fn tract(stage: &'static str) -> impl FnOnce(tract_onnx::prelude::TractError) -> ModelError {
        move |e| ModelError::Tract { stage, source: e.into() }
    }
}

pub use features::chain;

/// One session's prediction.
#[derive(Debug, Clone, PartialEq)]
pub struct Prediction {
    pub p_depressed: f32,
    /// PHQ-8 estimate, 0–24.
    pub phq8: f32,
    /// Fusion weight per modality (audio, video, text), summing to 1 over present modalities.
    pub gates: PerModality,
}

pub trait Model: Send {
    fn version(&self) -> &str;
    fn feature_schema(&self) -> SchemaHash;
    /// The text embedding the model's features carry, which follows from its schema (the
    /// hashed one for a schema this build does not know, which no model loads with).
    fn text_embedding(&self) -> features::text::TextEmbedding {
        schema::text_embedding_of(self.feature_schema()).unwrap_or_default()
    }
    /// Where the model's training text came from, which follows from its schema: a model
    /// trained on machine transcripts needs a device that transcribes.
    fn transcript_source(&self) -> features::text::TranscriptSource {
        schema::schema_of(self.feature_schema()).map(|t| t.transcripts).unwrap_or_default()
    }
    /// Whether the results of this model must be flagged as placeholder results.
    fn is_placeholder(&self) -> bool;
    fn predict(&self, features: &SessionFeatures) -> Result<Prediction, ModelError>;
    /// `p_depressed` at or above this is a positive screen.
    fn decision_threshold(&self) -> f32 {
        0.5
    }
}

/// Per-modality linear scorer over named features of the session mean: standardise with
/// (mean, sd), weight, sum. Names not in the schema are an error at construction.
#[derive(Debug, Clone)]
struct Linear {
    name: &'static str,
    dim: usize,
    /// (column, mean, sd, weight)
    terms: Vec<(usize, f32, f32, f32)>,
}

impl Linear {
    fn new(name: &'static str, schema: &[&str], terms: &[(&str, f32, f32, f32)]) -> Self {
        let terms = terms
            .iter()
            .map(|(n, m, s, w)| {
                let col = schema
                    .iter()
                    .position(|c| c == n)
                    .unwrap_or_else(|| panic!("placeholder weight for unknown feature {n}"));
                (col, *m, *s, *w)
            })
            .collect();
        Linear { name, dim: schema.len(), terms }
    }

    fn score(&self, x: &Sequence) -> Result<f32, ModelError> {
        if x.dim != self.dim {
            return Err(ModelError::Shape { modality: self.name, got: x.dim, want: self.dim });
        }
        let mean = x.mean();
        Ok(self.terms.iter().map(|&(c, m, s, w)| w * ((mean[c] - m) / s).clamp(-4.0, 4.0)).sum())
    }
}

/// See the crate docs: hand-set weights on a few named features, directions taken from the
/// depression literature (flatter pitch, longer pauses, less head motion, fewer smiles, more
/// first-person and negative words → higher score), magnitudes arbitrary. Not validated; never
/// to be used for screening.
#[derive(Debug, Clone)]
pub struct PlaceholderModel {
    audio: Linear,
    video: Linear,
    text: Linear,
}

impl Default for PlaceholderModel {
    fn default() -> Self {
        PlaceholderModel {
            audio: Linear::new(
                "audio",
                features::audio::FEATURE_NAMES,
                &[
                    ("f0_sd_st", 2.5, 1.0, -0.6),
                    ("pause_ratio", 0.3, 0.15, 0.5),
                    ("voiced_onsets_per_s", 3.0, 1.0, -0.3),
                ],
            ),
            video: Linear::new(
                "video",
                features::landmarks::FEATURE_NAMES,
                &[
                    ("motion_mean", 0.3, 0.15, -0.5),
                    ("smile_ratio", 0.2, 0.15, -0.5),
                    ("head_pitch_deg", 6.0, 4.0, 0.4),
                ],
            ),
            text: Linear::new(
                "text",
                features::text::FEATURE_NAMES,
                &[
                    ("lex_first_person", 0.08, 0.04, 0.5),
                    ("lex_negative", 0.04, 0.03, 0.7),
                    ("lex_positive", 0.03, 0.02, -0.5),
                ],
            ),
        }
    }
}

impl Model for PlaceholderModel {
    fn version(&self) -> &str {
        "placeholder-0.1"
    }

    fn feature_schema(&self) -> SchemaHash {
        schema::schema_hash()
    }

    fn is_placeholder(&self) -> bool {
        true
    }

    fn predict(&self, f: &SessionFeatures) -> Result<Prediction, ModelError> {
        let scores = [
            f.audio.as_ref().filter(|s| !s.is_empty()).map(|x| self.audio.score(x)).transpose()?,
            f.video.as_ref().filter(|s| !s.is_empty()).map(|x| self.video.score(x)).transpose()?,
            f.text.as_ref().filter(|s| !s.is_empty()).map(|x| self.text.score(x)).transpose()?,
        ];
        // Gates: softmax over present modalities of |score| (a confident modality weighs more).
        let present: Vec<(usize, f32)> = scores.iter().enumerate().filter_map(|(i, s)| s.map(|s| (i, s))).collect();
        if present.is_empty() {
            return Err(ModelError::NoInput);
        }
        let max = present.iter().map(|(_, s)| s.abs()).fold(f32::MIN, f32::max);
        let exps: Vec<f32> = present.iter().map(|(_, s)| (s.abs() - max).exp()).collect();
        let total: f32 = exps.iter().sum();
        let mut gates = [0.0f32; 3];
        let mut fused = 0.0;
        for ((i, s), e) in present.iter().zip(&exps) {
            gates[*i] = e / total;
            fused += gates[*i] * s;
        }
        let p = 1.0 / (1.0 + (-fused).exp());
        Ok(Prediction { p_depressed: p, phq8: (24.0 * p).clamp(0.0, 24.0), gates })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seq(names: &[&str], set: &[(&str, f32)]) -> Sequence {
        let mut row = vec![0.0; names.len()];
        for (n, v) in set {
            row[names.iter().position(|c| c == n).expect("known")] = *v;
        }
        let mut s = Sequence::new(names.len());
        s.push(&row);
        s
    }

    fn feats(audio: bool, video: bool, text: bool) -> SessionFeatures {
        SessionFeatures {
            // Monotone speech with long pauses.
            audio: audio.then(|| {
                seq(
                    features::audio::FEATURE_NAMES,
                    &[("f0_sd_st", 0.5), ("pause_ratio", 0.6), ("voiced_onsets_per_s", 3.0)],
                )
            }),
            video: video.then(|| {
                seq(
                    features::landmarks::FEATURE_NAMES,
                    &[("motion_mean", 0.3), ("smile_ratio", 0.2), ("head_pitch_deg", 6.0)],
                )
            }),
            text: text.then(|| {
                seq(
                    features::text::FEATURE_NAMES,
                    &[("lex_first_person", 0.08), ("lex_negative", 0.04), ("lex_positive", 0.03)],
                )
            }),
            flags: protocol::ResultFlags::empty(),
            usable: features::Usable::default(),
        }
    }

    #[test]
    fn gates_cover_present_modalities_only() {
        let m = PlaceholderModel::default();
        let p = m.predict(&feats(true, false, true)).expect("predicts");
        assert_eq!(p.gates[1], 0.0);
        assert!((p.gates.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        // Long pauses push the audio score up, and audio is the confident modality here.
        assert!(p.p_depressed > 0.5 && p.gates[0] > p.gates[2], "{p:?}");
        assert!((0.0..=24.0).contains(&p.phq8));
    }

    #[test]
    fn no_input_and_wrong_shapes_are_errors() {
        let m = PlaceholderModel::default();
        assert!(matches!(m.predict(&feats(false, false, false)), Err(ModelError::NoInput)));
        let mut f = feats(true, true, true);
        f.video = Some(Sequence { dim: 1, data: vec![1.0] });
        assert!(matches!(m.predict(&f), Err(ModelError::Shape { modality: "video", .. })));
    }
}
