//! The feature schema: every feature's name, in the order the model sees it.

use sha2::{Digest, Sha256};

use crate::SchemaHash;

/// Version tag of the front-ends' code; part of the hash.
pub const FRONTEND_VERSION: &str = "frontends-4";

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

/// The hash of [`FEATURE_SCHEMA`].
pub fn schema_hash() -> SchemaHash {
    FEATURE_SCHEMA.hash()
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
}
