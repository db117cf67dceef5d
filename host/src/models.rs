//! What the host knows about the models that computed its results: the bundles it ships
//! (`assets/model/*`) and any the clinic points it at (`--models DIR`), by model version. A
//! result names only its model version; every report says what that model was trained on,
//! which comes from the bundle's manifest (`trained_on`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// What a report says about a model's training data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provenance {
    /// "synthetic interviews (no real patients)", "the DAIC-WOZ-format corpus …", or why it is
    /// not known.
    pub trained_on: String,
    /// Trained on synthetic data only (`mimml-lab` writes "synthetic" for such corpora): the
    /// output means nothing clinically, and reports say so beside the screen.
    pub synthetic: bool,
    /// The manifest stated it.
    pub known: bool,
}

impl Provenance {
    /// What the model's validation figures are and are not, in one paragraph.
    pub fn validation(&self) -> &'static str {
        if self.synthetic {
            "This model was trained and validated on synthetic interviews only. Its figures on held-out \
             synthetic sessions say nothing about how it performs on real people: it has no clinical validation, \
             and a positive or negative screen from it carries no clinical meaning."
        } else if self.known {
            "Validation figures of a model trained on a research corpus describe that corpus's population, \
             language and interview setting (DAIC-WOZ: English-speaking US adults, 35 development and 47 test \
             interviews; the reference standard is a self-reported PHQ-8 score of 10 or more, not a clinical \
             diagnosis). They do not transfer to other populations or settings without a local evaluation."
        } else {
            "The training data of this model are not stated in any bundle this host knows: treat its output as \
             unvalidated."
        }
    }
}

/// Model version → what it was trained on.
#[derive(Debug, Clone, Default)]
pub struct Catalogue {
    models: BTreeMap<String, Option<String>>,
}

impl Catalogue {
    /// The bundles shipped with this tool, and those under `dirs` (each a bundle folder or a
    /// folder of bundles). A manifest that does not read is skipped with a warning: reports then
    /// say its model is unknown, never guess.
    pub fn load(dirs: &[PathBuf]) -> Catalogue {
        let mut c = Catalogue::default();
        let shipped = features::assets::dir().join("model");
        for dir in std::iter::once(&shipped).chain(dirs) {
            c.add_dir(dir);
        }
        c
    }

    fn add_dir(&mut self, dir: &Path) {
        if dir.join("manifest.toml").is_file() {
            self.add_bundle(dir);
            return;
        }
        let Ok(entries) = std::fs::read_dir(dir) else {
            tracing::warn!(dir = %dir.display(), "model folder not readable");
            return;
        };
        for e in entries.flatten() {
            if e.path().join("manifest.toml").is_file() {
                self.add_bundle(&e.path());
            }
        }
    }

    fn add_bundle(&mut self, dir: &Path) {
        let manifest = std::fs::read(dir.join("manifest.toml"))
            .map_err(runtime::BoxError::from)
            .and_then(|bytes| runtime::bundle::parse_manifest(&bytes).map_err(runtime::BoxError::from));
        match manifest {
            Ok(m) => {
                self.models.insert(m.model_version, m.trained_on);
            }
            Err(e) => tracing::warn!(bundle = %dir.display(), "manifest not read: {}", runtime::chain(&*e)),
        }
    }

    /// Adds one model (tests, and tools that know a model from elsewhere).
    pub fn insert(&mut self, model_version: &str, trained_on: Option<&str>) {
        self.models.insert(model_version.to_owned(), trained_on.map(str::to_owned));
    }

    /// What `model_version` was trained on.
    pub fn provenance(&self, model_version: &str) -> Provenance {
        match self.models.get(model_version) {
            Some(Some(t)) => Provenance { trained_on: t.clone(), synthetic: t.contains("synthetic"), known: true },
            Some(None) => Provenance {
                trained_on: format!("not stated in the bundle of model {model_version}"),
                synthetic: false,
                known: false,
            },
            None => Provenance {
                trained_on: format!(
                    "unknown: model {model_version} is not among this host's bundles (point `--models` at its bundle)"
                ),
                synthetic: false,
                known: false,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_model_is_known_to_be_synthetic_and_an_unknown_one_is_not_guessed() {
        let c = Catalogue::load(&[]);
        let version = runtime::bundle::parse_manifest(
            &std::fs::read(features::assets::dir().join("model/mimml-synth/manifest.toml")).expect("manifest"),
        )
        .expect("parses")
        .model_version;
        let p = c.provenance(&version);
        assert!(p.synthetic && p.known, "{p:?}");
        assert!(p.validation().contains("no clinical validation"));
        let u = c.provenance("someone-elses-model");
        assert!(!u.known && !u.synthetic && u.trained_on.starts_with("unknown"), "{u:?}");
        assert!(u.validation().contains("unvalidated"));
    }
}
