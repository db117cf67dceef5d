//! `bench/run train`: training time of the default MIMML config on the 189-participant
//! synthetic corpus (goal ≤ 5 minutes on the 2-core machine).
//!
//! Writes the corpus (60 s interviews, seed 1), builds the feature cache, then trains with the
//! default config and evaluates on the test split. Corpus and cache times are reported apart
//! from training. No reference tool: the issue names none for this figure.

use std::time::Instant;

use corpus::Split;
use corpus::cache::{CacheOptions, FeatureCache, build};
use corpus::daic::Corpus;
use corpus::synth::{SynthConfig, write_corpus};
use train::metrics;
use train::mimml::config::MimmlConfig;
use train::mimml::train::{examples, predict, train};

fn main() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (corpus_dir, cache_dir) = (dir.path().join("corpus"), dir.path().join("cache"));
    let t = Instant::now();
    write_corpus(&SynthConfig::default(), &corpus_dir, || {})?;
    let synth_s = t.elapsed().as_secs_f32();
    let t = Instant::now();
    let r = build(&Corpus::open(&corpus_dir)?, &cache_dir, CacheOptions::default(), Default::default(), || {})?;
    let cache_s = t.elapsed().as_secs_f32();
    println!(
        "corpus: 189 participants, {:.2} h of audio written in {synth_s:.1} s, feature cache in {cache_s:.1} s",
        r.audio_hours
    );

    let cache = FeatureCache::open(&cache_dir)?;
    let cfg = MimmlConfig::default();
    let t = Instant::now();
    let trained = train(&cache, &cfg, |_| {})?;
    let train_s = t.elapsed().as_secs_f32();
    let ex = examples(&cache, Split::Test, &trained.spec, &cfg)?;
    let scored: Vec<_> = predict(&trained.model, &trained.spec, &ex)?.into_iter().map(|(s, _)| s).collect();
    let m = metrics::evaluate(&scored, trained.threshold, 0, 1);
    println!(
        "training: {} epochs (best {}) in {train_s:.1} s → {:.2} s per epoch; test F1 {:.3}, AUC {:.3}",
        trained.history.len(),
        trained.best_epoch,
        train_s / trained.history.len() as f32,
        m.f1.value,
        m.roc_auc.value
    );
    println!(
        "RESULT train train_s={train_s:.1} goal_s=300 ratio_to_goal={:.3} epochs={} cache_s={cache_s:.1} test_f1={:.3} test_auc={:.3}",
        train_s / 300.0,
        trained.history.len(),
        m.f1.value,
        m.roc_auc.value
    );
    Ok(())
}
