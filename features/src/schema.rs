//! The feature schema: every feature's name, in the order the model sees it.

use sha2::{Digest, Sha256};

use crate::SchemaHash;
use crate::text::TextEmbedding;

/// Version tag of the front-ends' code; part of the hash.
pub const FRONTEND_VERSION: &str = "frontends-5";

#[derive(Debug, Clone, Copy)]
pub struct FeatureSchema {
    pub audio: &'static [&'static str],
    pub video: &'static [&'static str],
    pub text: &'static [&'static str],
}

/// What the front-ends of this build compute.
pub const FEATURE_SCHEMA: FeatureSchema = FeatureSchema {
    audio: crate::audio::FEATURE_NAMES,
    video: crate::landmarks::FEATURE_NAMES,
    text: crate::text::FEATURE_NAMES,
};

impl FeatureSchema {
    /// This build's schema with `text`'s embedding in the text features.
    pub fn with_text(text: TextEmbedding) -> FeatureSchema {
        FeatureSchema { text: text.feature_names(), ..FEATURE_SCHEMA }
    }

    /// Feature widths per modality (audio, video, text).
    pub fn widths(&self) -> [usize; 3] {
        [self.audio.len(), self.video.len(), self.text.len()]
    }

    /// SHA-256 over the version tag and every modality's feature names, truncated to 8 bytes.
    pub fn hash(&self) -> SchemaHash {
        let mut h = Sha256::new();
        h.update(FRONTEND_VERSION.as_bytes());
        for (modality, names) in [("audio", self.audio), ("video", self.video), ("text", self.text)] {
            h.update([0xFF]);
            h.update(modality.as_bytes());
            for n in names {
                h.update([0]);
                h.update(n.as_bytes());
            }
        }
        let d = h.finalize();
        let mut out = [0u8; 8];
        out.copy_from_slice(&d[..8]);
        SchemaHash(out)
    }
}

/// The hash of [`FEATURE_SCHEMA`] (the default, hashed text embedding).
pub fn schema_hash() -> SchemaHash {
    FEATURE_SCHEMA.hash()
}

/// The hash of the schema with `text`'s embedding.
pub fn schema_hash_for(text: TextEmbedding) -> SchemaHash {
    FeatureSchema::with_text(text).hash()
}

/// Which text embedding a schema hash of this build stands for; `None` for a hash this build's
/// front-ends do not produce.
pub fn text_embedding_of(hash: SchemaHash) -> Option<TextEmbedding> {
    TextEmbedding::ALL.into_iter().find(|&e| schema_hash_for(e) == hash)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_changes_with_any_name_or_order() {
        let base = FEATURE_SCHEMA.hash();
        let renamed = FeatureSchema { audio: &["x"], ..FEATURE_SCHEMA };
        assert_ne!(renamed.hash(), base);
        // Moving a name from one modality to the next changes the hash too.
        let moved = FeatureSchema { audio: &[], video: &["a"], text: &[] };
        let moved2 = FeatureSchema { audio: &["a"], video: &[], text: &[] };
        assert_ne!(moved.hash(), moved2.hash());
        assert_eq!(schema_hash(), base);
    }

    #[test]
    fn the_text_embedding_is_part_of_the_schema() {
        let (hashed, minilm) = (schema_hash_for(TextEmbedding::Hashed), schema_hash_for(TextEmbedding::MiniLm));
        assert_eq!(hashed, schema_hash());
        assert_ne!(hashed, minilm);
        assert_eq!(text_embedding_of(minilm), Some(TextEmbedding::MiniLm));
        assert_eq!(text_embedding_of(hashed), Some(TextEmbedding::Hashed));
        assert_eq!(text_embedding_of(SchemaHash([0; 8])), None);
        let w = FeatureSchema::with_text(TextEmbedding::MiniLm).widths();
        assert_eq!(w[2] - FEATURE_SCHEMA.widths()[2], 384 - 32);
    }
}
