//! The feature schema: every feature's name, in the order the model sees it.

use sha2::{Digest, Sha256};

use crate::SchemaHash;
use crate::text::{TextEmbedding, TextSetup, TranscriptSource};

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
        self.hash_with(TranscriptSource::Pushed)
    }

    /// [`hash`](Self::hash) with the words taken from `transcripts`; pushed transcripts add
    /// nothing, so every schema made before the choice existed keeps its hash.
    pub fn hash_with(&self, transcripts: TranscriptSource) -> SchemaHash {
        let mut h = Sha256::new();
        if transcripts != TranscriptSource::Pushed {
            h.update(b"transcripts=");
            h.update(transcripts.name().as_bytes());
            h.update([0xFE]);
        }
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

/// The hash of the schema with `text`'s embedding over words from `transcripts`.
pub fn schema_hash_with(text: TextEmbedding, transcripts: TranscriptSource) -> SchemaHash {
    FeatureSchema::with_text(text).hash_with(transcripts)
}

impl TextSetup {
    /// The hash of the schema this text front-end computes.
    pub fn schema_hash(self) -> SchemaHash {
        schema_hash_with(self.embedding, self.transcripts)
    }
}

/// Which text front-end a schema hash of this build stands for; `None` for a hash this build's
/// front-ends do not produce.
pub fn schema_of(hash: SchemaHash) -> Option<TextSetup> {
    TextEmbedding::ALL
        .into_iter()
        .flat_map(|embedding| TranscriptSource::ALL.map(|transcripts| TextSetup { embedding, transcripts }))
        .find(|t| t.schema_hash() == hash)
}

/// Which text embedding a schema hash of this build stands for; `None` for a hash this build's
/// front-ends do not produce.
pub fn text_embedding_of(hash: SchemaHash) -> Option<TextEmbedding> {
    schema_of(hash).map(|t| t.embedding)
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
        // The transcript source is part of it too; pushed transcripts leave the hash as it was.
        let asr = schema_hash_with(TextEmbedding::MiniLm, TranscriptSource::Asr);
        assert_ne!(asr, minilm);
        assert_eq!(schema_hash_with(TextEmbedding::MiniLm, TranscriptSource::Pushed), minilm);
        let minilm_asr = TextSetup { embedding: TextEmbedding::MiniLm, transcripts: TranscriptSource::Asr };
        assert_eq!(schema_of(asr), Some(minilm_asr));
        assert_eq!(schema_of(hashed), Some(TextSetup::default()), "hashed over pushed transcripts");
        let all: std::collections::HashSet<_> = TextEmbedding::ALL
            .into_iter()
            .flat_map(|e| TranscriptSource::ALL.map(|t| schema_hash_with(e, t)))
            .collect();
        assert_eq!(all.len(), 4, "every text front-end has its own schema");
        let w = FeatureSchema::with_text(TextEmbedding::MiniLm).widths();
        assert_eq!(w[2] - FEATURE_SCHEMA.widths()[2], 384 - 32);
    }
}
