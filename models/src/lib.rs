//! # models — what turns features into a screening result
//!
//! [`Model`] is the one interface the device runs. Implementations:
//!
//! * [`PlaceholderModel`] — **a placeholder, not a trained model.** Fixed, hand-set weights over
//!   the foundation front-ends' features, so that the whole data path (capture → features →
//!   model → durable log → host database) is real from day one. Every result it produces is
//!   flagged `FLAG_PLACEHOLDER_MODEL` and its version string says `placeholder`. The MIMML
//!   issue replaces it with a trained model (candle, behind a `train` feature), and the export
//!   issue with tract inference on an ONNX bundle.
//!
//! Invariant: `models` never touches hardware or the link; it sees features, never raw media.

use features::{SessionFeatures, schema};
use protocol::{PerModality, SchemaHash};

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("model expects feature schema {expected}, front-ends produce {actual}")]
    SchemaMismatch { expected: SchemaHash, actual: SchemaHash },
    #[error("{modality} features have {got} values, model expects {want}")]
    Shape { modality: &'static str, got: usize, want: usize },
    #[error("no modality present: nothing to score")]
    NoInput,
}

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
    /// Whether the results of this model must be flagged as placeholder results.
    fn is_placeholder(&self) -> bool;
    fn predict(&self, features: &SessionFeatures) -> Result<Prediction, ModelError>;
}

/// Per-modality linear scorer: standardise with (mean, sd), dot with weights, add bias.
#[derive(Debug, Clone)]
struct Linear {
    name: &'static str,
    mean: &'static [f32],
    sd: &'static [f32],
    w: &'static [f32],
    bias: f32,
}

impl Linear {
    fn score(&self, x: &[f32]) -> Result<f32, ModelError> {
        if x.len() != self.w.len() {
            return Err(ModelError::Shape { modality: self.name, got: x.len(), want: self.w.len() });
        }
        let z =
            x.iter().zip(self.mean).zip(self.sd).zip(self.w).map(|(((x, m), s), w)| w * ((x - m) / s).clamp(-4.0, 4.0));
        Ok(self.bias + z.sum::<f32>())
    }
}

/// See the crate docs: hand-set weights, direction taken from the depression literature
/// (more pauses, flatter energy, less head motion, more first-person and negative words → higher
/// score), magnitudes arbitrary. Not validated; never to be used for screening.
#[derive(Debug, Clone)]
pub struct PlaceholderModel {
    audio: Linear,
    video: Linear,
    text: Linear,
}

impl Default for PlaceholderModel {
    fn default() -> Self {
        PlaceholderModel {
            // energy_db_mean, energy_db_sd, speech_energy_db_sd, zcr_mean, pause_ratio, mean_pause_s, segments/min
            audio: Linear {
                name: "audio",
                mean: &[-40.0, 15.0, 6.0, 0.1, 0.4, 0.8, 40.0],
                sd: &[10.0, 5.0, 2.0, 0.05, 0.15, 0.4, 15.0],
                w: &[-0.1, -0.2, -0.4, 0.0, 0.6, 0.5, -0.3],
                bias: 0.0,
            },
            // motion_mean, motion_sd, still_ratio, brightness_mean, brightness_sd
            video: Linear {
                name: "video",
                mean: &[20.0, 15.0, 0.3, 120.0, 5.0],
                sd: &[10.0, 8.0, 0.2, 40.0, 5.0],
                w: &[-0.5, -0.3, 0.5, 0.0, 0.0],
                bias: 0.0,
            },
            // words, words/min, words/utterance, first person, negative, positive, absolutist
            text: Linear {
                name: "text",
                mean: &[300.0, 140.0, 12.0, 0.08, 0.04, 0.03, 0.01],
                sd: &[200.0, 30.0, 6.0, 0.04, 0.03, 0.02, 0.01],
                w: &[-0.1, -0.3, -0.3, 0.5, 0.7, -0.5, 0.3],
                bias: 0.0,
            },
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
            f.audio.as_deref().map(|x| self.audio.score(x)).transpose()?,
            f.video.as_deref().map(|x| self.video.score(x)).transpose()?,
            f.text.as_deref().map(|x| self.text.score(x)).transpose()?,
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

    fn feats(audio: bool, video: bool, text: bool) -> SessionFeatures {
        SessionFeatures {
            audio: audio.then(|| vec![-40.0, 15.0, 6.0, 0.1, 0.7, 1.6, 40.0]),
            video: video.then(|| vec![20.0, 15.0, 0.3, 120.0, 5.0]),
            text: text.then(|| vec![300.0, 140.0, 12.0, 0.08, 0.04, 0.03, 0.01]),
            flags: 0,
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
        f.video = Some(vec![1.0]);
        assert!(matches!(m.predict(&f), Err(ModelError::Shape { modality: "video", .. })));
    }
}
