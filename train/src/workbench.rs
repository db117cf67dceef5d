//! The rules the workbench commands (`mimml-lab`) follow, kept here so they are tested without
//! the CLI: where a corpus's feature cache lives and when an existing one is reused, which
//! session a bundle's golden example is, scoring a split, and the ablation report.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use corpus::cache::{self, CacheOptions, FeatureCache, TextFrontEnds};
use corpus::daic::Corpus;
use corpus::{CorpusError, Split};
use features::SessionFeatures;
use features::text::{SentenceEncoder, TextEmbedding, TextSetup, Transcriber, TranscriptSource};

use crate::metrics::Scored;
use crate::mimml::train::{TrainError, Trained, examples, predict};

/// What stops a workbench rule.
#[derive(Debug, thiserror::Error)]
pub enum WorkbenchError {
    #[error(transparent)]
    Corpus(#[from] CorpusError),
    #[error(transparent)]
    Train(#[from] TrainError),
    #[error("all-MiniLM-L6-v2 could not be loaded from {dir} (install it with scripts/install_minilm.sh)")]
    TextEncoder {
        dir: PathBuf,
        #[source]
        source: runtime::ModelError,
    },
    #[error("Whisper tiny.en could not be loaded from {dir} (install it with scripts/install_whisper.sh)")]
    Transcriber {
        dir: PathBuf,
        #[source]
        source: runtime::ModelError,
    },
    #[error("the {split} split has no labelled sessions in the cache")]
    EmptySplit { split: Split },
    #[error("no test or dev session in the cache has all three modalities, so there is no golden example")]
    NoGoldenSession,
}

/// The sentence encoder of `text` (none for the built-in hashed embedding), loaded from where
/// `scripts/install_minilm.sh` puts it.
pub fn text_encoder(text: TextEmbedding) -> Result<Option<Box<dyn SentenceEncoder>>, WorkbenchError> {
    Ok(match text {
        TextEmbedding::Hashed => None,
        TextEmbedding::MiniLm => {
            let dir = runtime::minilm::default_dir();
            let m =
                runtime::minilm::MiniLm::load(&dir).map_err(|source| WorkbenchError::TextEncoder { dir, source })?;
            Some(Box::new(m))
        }
    })
}

/// The speech recogniser machine transcripts need (none for pushed transcripts), loaded from
/// where `scripts/install_whisper.sh` puts it.
pub fn transcriber(transcripts: TranscriptSource) -> Result<Option<Box<dyn Transcriber>>, WorkbenchError> {
    Ok(match transcripts {
        TranscriptSource::Pushed => None,
        TranscriptSource::Asr => {
            let dir = runtime::whisper::default_dir();
            let w =
                runtime::whisper::Whisper::load(&dir).map_err(|source| WorkbenchError::Transcriber { dir, source })?;
            Some(Box::new(w))
        }
    })
}

/// Where the feature cache of `corpus` lives when none is named: beside the corpus, one folder
/// per text front-end (`<corpus>-features`, `<corpus>-features-minilm`,
/// `<corpus>-features-asr`, `<corpus>-features-minilm-asr`), so that switching never
/// overwrites another's cache.
pub fn default_cache_dir(corpus: &Path, text: TextSetup) -> PathBuf {
    let name = corpus.file_name().map_or_else(|| "corpus".into(), |n| n.to_string_lossy().into_owned());
    let mut suffix = String::new();
    if text.embedding != TextEmbedding::Hashed {
        suffix = format!("{suffix}-{}", text.embedding);
    }
    if text.transcripts != TranscriptSource::Pushed {
        suffix = format!("{suffix}-{}", text.transcripts);
    }
    corpus.with_file_name(format!("{name}-features{suffix}"))
}

/// Opens the feature cache of `corpus` with the `text` front-end (in `dir`, else
/// [`default_cache_dir`]). An existing cache is reused only when it opens — same feature
/// schema — and was built with the same options; otherwise it is built, calling `start` once
/// with the number of sessions and `tick` after each. Returns the cache and whether it was
/// built.
pub fn ensure_cache(
    corpus: &Path,
    dir: Option<&Path>,
    text: TextSetup,
    start: impl FnOnce(usize),
    tick: impl Fn() + Sync,
) -> Result<(FeatureCache, bool), WorkbenchError> {
    let dir = dir.map_or_else(|| default_cache_dir(corpus, text), Path::to_owned);
    let options =
        CacheOptions { text_embedding: text.embedding, transcripts: text.transcripts, ..CacheOptions::default() };
    if let Ok(c) = FeatureCache::open(&dir)
        && c.index.options == options
    {
        return Ok((c, false));
    }
    let c = Corpus::open(corpus)?;
    let encoder = text_encoder(text.embedding)?;
    let transcriber = transcriber(text.transcripts)?;
    start(c.available().count());
    let front_ends = TextFrontEnds { encoder: encoder.as_deref(), transcriber: transcriber.as_deref() };
    cache::build(&c, &dir, options, front_ends, tick)?;
    Ok((FeatureCache::open(&dir)?, true))
}

/// A bundle's golden example: the first test session with every modality present, else the
/// first such dev session. The device runs it at start and compares with the recorded output.
pub fn golden_session(cache: &FeatureCache) -> Result<SessionFeatures, WorkbenchError> {
    let session = cache
        .sessions(Split::Test)
        .chain(cache.sessions(Split::Dev))
        .find(|s| s.lengths.iter().all(|&n| n > 0))
        .ok_or(WorkbenchError::NoGoldenSession)?;
    Ok(cache.load(session.id)?)
}

/// The trained model's scores on the labelled sessions of `split`; an empty split is an error
/// (no metric means anything on it).
pub fn scored(t: &Trained, cache: &FeatureCache, split: Split) -> Result<Vec<Scored>, WorkbenchError> {
    let ex = examples(cache, split, &t.spec, &t.model.cfg)?;
    if ex.is_empty() {
        return Err(WorkbenchError::EmptySplit { split });
    }
    Ok(predict(&t.model, &t.spec, &ex)?.into_iter().map(|(s, _)| s).collect())
}

/// Mean and sample standard deviation (0 for fewer than two values).
pub fn mean_sd(v: &[f64]) -> (f64, f64) {
    let n = v.len().max(1) as f64;
    let m = v.iter().sum::<f64>() / n;
    (m, (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0).max(1.0)).sqrt())
}

/// The metrics an ablation reports per variant, in its table's column order.
pub const ABLATION_COLUMNS: [&str; 6] = ["f1", "macro_f1", "accuracy", "auc", "phq8_rmse", "f1_at_0.5"];

/// One variant's runs (one JSON object per seed with the [`ABLATION_COLUMNS`] keys).
#[derive(Debug, Clone)]
pub struct AblationRow {
    pub variant: String,
    pub runs: Vec<serde_json::Value>,
}

impl AblationRow {
    /// (mean, sd) over seeds of each of [`ABLATION_COLUMNS`].
    pub fn summary(&self) -> Vec<(f64, f64)> {
        ABLATION_COLUMNS
            .iter()
            .map(|k| mean_sd(&self.runs.iter().filter_map(|r| r[*k].as_f64()).collect::<Vec<_>>()))
            .collect()
    }

    /// The row of `ablation.json`.
    pub fn to_json(&self) -> serde_json::Value {
        let mut row = serde_json::json!({ "variant": self.variant, "runs": self.runs });
        for (k, (m, sd)) in ABLATION_COLUMNS.iter().zip(self.summary()) {
            row[*k] = serde_json::json!([m, sd]);
        }
        row
    }
}

/// The settings a synthetic corpus was written with (its marker file), for the report.
pub fn synthetic_settings(corpus: &Path) -> Option<serde_json::Value> {
    let bytes = std::fs::read(corpus.join(corpus::synth::MARKER)).ok()?;
    serde_json::from_slice::<serde_json::Value>(&bytes).ok().map(|v| v["config"].clone())
}

/// `ablation.md`: one row per variant, mean ± sd over `seeds` of each column.
pub fn ablation_markdown(corpus: &Path, seeds: u64, rows: &[AblationRow]) -> String {
    let synthetic =
        synthetic_settings(corpus).map(|c| format!("\n\nSynthetic corpus settings: `{c}`.")).unwrap_or_default();
    let mut md = format!(
        "# MIMML ablations\n\nTest split of `{}`{synthetic}\n\n{seeds} seeds (mean ± sd). Decision threshold tuned for F1 on the dev split \
         (the last column: F1 at a fixed 0.5).\n\n| variant | depressed F1 | macro-F1 | accuracy | ROC-AUC | PHQ-8 RMSE | F1 at 0.5 |\n|---|---|---|---|---|---|---|\n",
        corpus.display(),
    );
    for row in rows {
        let _ = write!(md, "| {} |", row.variant);
        for (m, sd) in row.summary() {
            let _ = write!(md, " {m:.3} ± {sd:.3} |");
        }
        md.push('\n');
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_folder_sits_beside_the_corpus_one_per_text_front_end() {
        let c = Path::new("/data/daic-woz");
        let at = |embedding, transcripts| default_cache_dir(c, TextSetup { embedding, transcripts });
        assert_eq!(at(TextEmbedding::Hashed, TranscriptSource::Pushed), Path::new("/data/daic-woz-features"));
        assert_eq!(at(TextEmbedding::MiniLm, TranscriptSource::Pushed), Path::new("/data/daic-woz-features-minilm"));
        assert_eq!(at(TextEmbedding::Hashed, TranscriptSource::Asr), Path::new("/data/daic-woz-features-asr"));
        assert_eq!(at(TextEmbedding::MiniLm, TranscriptSource::Asr), Path::new("/data/daic-woz-features-minilm-asr"));
    }

    #[test]
    fn mean_and_sample_sd() {
        let (m, sd) = mean_sd(&[1.0, 2.0, 3.0]);
        assert!((m - 2.0).abs() < 1e-12 && (sd - 1.0).abs() < 1e-12);
        assert_eq!(mean_sd(&[4.0]), (4.0, 0.0));
    }

    #[test]
    fn ablation_report_has_one_row_per_variant_with_mean_and_sd() {
        let run = |f1: f64| {
            let mut r = serde_json::json!({});
            for k in ABLATION_COLUMNS {
                r[k] = serde_json::json!(f1);
            }
            r
        };
        let rows = [
            AblationRow { variant: "full".into(), runs: vec![run(0.6), run(0.8)] },
            AblationRow { variant: "audio".into(), runs: vec![run(0.5), run(0.5)] },
        ];
        let md = ablation_markdown(Path::new("/nonexistent/corpus"), 2, &rows);
        assert!(md.contains("2 seeds"), "{md}");
        assert!(md.contains("| full | 0.700 ± 0.141 |"), "{md}");
        assert!(md.contains("| audio | 0.500 ± 0.000 |"), "{md}");
        assert!(!md.contains("Synthetic corpus settings"), "not a synthetic corpus: {md}");
        let json = rows[0].to_json();
        assert!((json["f1"][0].as_f64().unwrap_or_default() - 0.7).abs() < 1e-9, "{json}");
    }
}
