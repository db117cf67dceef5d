//! MIMML hyper-parameters and variants. Every choice the paper leaves open is here, with its
//! default and where it comes from; a config is saved with every checkpoint.

use serde::{Deserialize, Serialize};

/// How the unimodal representations are fused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fusion {
    /// Sigmoid gates per modality conditioned on all three representations, then a BiGRU + CNN
    /// block over the gated modality vectors (the paper's "gated structure").
    Gated,
    /// Ablation: concatenate the three vectors and project (no gates, no fusion block).
    Concat,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MimmlConfig {
    /// Width of every modality representation and of the fused vector.
    pub hidden: usize,
    /// 1-D convolution kernel over segments (odd, at most `data::MIN_STEPS`).
    pub kernel: usize,
    /// Segments per session kept (evenly spaced when a session has more).
    pub max_segments: usize,
    pub fusion: Fusion,
    /// Modalities the model may use (audio, video, text); the others are always masked.
    pub use_modalities: [bool; 3],
    /// Weight of the PHQ-8 regression loss.
    pub phq_weight: f32,
    /// Weight of the unimodal heads' losses (multi-task learning; 0 = off). Self-MM uses unimodal
    /// heads next to the fused one; we train them on the true labels.
    pub mtl_weight: f32,
    /// α: weight of the fusion-level InfoNCE (CPC) loss between fused and unimodal vectors
    /// (MMIM; 0.1 in its configs).
    pub nce_weight: f32,
    /// β: weight of the input-level Barber–Agakov bound text→audio and text→video (MMIM's
    /// MMILB; 0.1 in its configs).
    pub ba_weight: f32,
    /// Probability of dropping each present modality of a training example (at least one stays).
    pub modality_dropout: f32,
    pub dropout: f32,
    pub lr: f64,
    pub weight_decay: f64,
    pub batch_size: usize,
    pub max_epochs: usize,
    /// Early stopping: epochs without a better dev score.
    pub patience: usize,
    pub seed: u64,
    /// The text features' sentence embedding: `"hashed"` (built in) or `"minilm"`
    /// (all-MiniLM-L6-v2, installed by `scripts/install_minilm.sh`). Part of the feature schema.
    pub text_embedding: features::text::TextEmbedding,
    /// Where the text's words come from: `"pushed"` (the corpus's transcripts) or `"asr"` (the
    /// device's Whisper tiny.en over the participant's turns). Part of the feature schema.
    pub transcripts: features::text::TranscriptSource,
}

impl MimmlConfig {
    /// The text front-end the model is trained with.
    pub fn text(&self) -> features::text::TextSetup {
        features::text::TextSetup { embedding: self.text_embedding, transcripts: self.transcripts }
    }
}

impl Default for MimmlConfig {
    fn default() -> Self {
        MimmlConfig {
            hidden: 32,
            kernel: 3,
            max_segments: 32,
            fusion: Fusion::Gated,
            use_modalities: [true; 3],
            phq_weight: 0.5,
            mtl_weight: 0.3,
            nce_weight: 0.1,
            ba_weight: 0.1,
            modality_dropout: 0.15,
            dropout: 0.2,
            lr: 3e-3,
            weight_decay: 1e-4,
            batch_size: 16,
            max_epochs: 60,
            patience: 12,
            seed: 1,
            text_embedding: features::text::TextEmbedding::Hashed,
            transcripts: features::text::TranscriptSource::Pushed,
        }
    }
}

/// The named variants of `mimml-lab ablate`.
pub fn variants() -> Vec<(&'static str, MimmlConfig)> {
    let full = MimmlConfig::default();
    let only = |m: usize| MimmlConfig { use_modalities: [m == 0, m == 1, m == 2], ..full.clone() };
    vec![
        ("full", full.clone()),
        ("-MI", MimmlConfig { nce_weight: 0.0, ba_weight: 0.0, ..full.clone() }),
        ("-MTL", MimmlConfig { mtl_weight: 0.0, ..full.clone() }),
        ("concat", MimmlConfig { fusion: Fusion::Concat, ..full.clone() }),
        ("audio only", only(0)),
        ("video only", only(1)),
        ("text only", only(2)),
    ]
}
