//! # features — one set of front-ends for training and for the device
//!
//! The same functions turn raw inputs into model inputs on the device (live capture or
//! `--simulate` files) and in the corpus feature cache used for training, so there is no
//! train/serve skew. This crate never depends on a training library.
//!
//! * [`audio`]: 16 kHz mono PCM → frame energy / zero-crossing statistics and pause structure.
//! * [`video`]: frames → head-motion and brightness statistics.
//! * [`text`]: participant utterances → lexical statistics.
//! * [`schema`]: the names of every feature, in order, and their [`SchemaHash`].
//!
//! **Foundation stage.** These are deliberately simple, documented first versions behind the
//! interfaces the front-end issues will fill (MFCC/F0/jitter/shimmer against librosa and Praat;
//! face detection, 68 landmarks, pose and gaze against OpenCV; embeddings for text). Each change
//! of what is computed changes [`schema::FEATURE_SCHEMA`] and therefore the hash, so a model
//! trained on older features is refused, never silently fed the wrong inputs.

pub mod audio;
pub mod schema;
pub mod text;
pub mod video;

pub use protocol::SchemaHash;

/// Errors of the front-ends. Each names the input it concerns.
#[derive(Debug, thiserror::Error)]
pub enum FeatureError {
    #[error("cannot read WAV {path}: {detail}")]
    Wav { path: String, detail: String },
    #[error("unsupported audio in {path}: {detail}")]
    UnsupportedAudio { path: String, detail: String },
    #[error("cannot read video frames {path}: {detail}")]
    Video { path: String, detail: String },
    #[error("transcript {path}, line {line}: {detail}")]
    Transcript { path: String, line: usize, detail: String },
}

/// Features of one session, per modality. `None` = modality absent or unusable.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SessionFeatures {
    pub audio: Option<Vec<f32>>,
    pub video: Option<Vec<f32>>,
    pub text: Option<Vec<f32>>,
    /// Quality flags, `protocol::ResultRecord::FLAG_*`.
    pub flags: u16,
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
