//! `mimml train`, `mimml eval`, `mimml ablate`.

use std::path::{Path, PathBuf};

use anyhow::Context;
use features::text::{SentenceEncoder, TextEmbedding};
use indicatif::{ProgressBar, ProgressStyle};
use models::corpus::Split;
use models::corpus::cache::{self, CacheOptions, FeatureCache};
use models::corpus::daic::Corpus;
use models::metrics::{self, Metrics, Scored};
use models::mimml::config::{MimmlConfig, variants};
use models::mimml::train::{Trained, examples, predict, train};

/// The sentence encoder of `text` (none for the built-in hashed embedding).
pub fn text_encoder(text: TextEmbedding) -> anyhow::Result<Option<Box<dyn SentenceEncoder>>> {
    Ok(match text {
        TextEmbedding::Hashed => None,
        TextEmbedding::MiniLm => {
            let dir = models::minilm::default_dir();
            let m = models::minilm::MiniLm::load(&dir).context("install it with scripts/install_minilm.sh")?;
            Some(Box::new(m))
        }
    })
}

/// Opens the feature cache for `corpus` with the `text` embedding, building it (with a progress
/// bar) when missing or stale. The default folder is beside the corpus, one per embedding.
fn ensure_cache(corpus: &Path, cache_dir: Option<PathBuf>, text: TextEmbedding) -> anyhow::Result<FeatureCache> {
    let dir = cache_dir.unwrap_or_else(|| {
        let name = corpus.file_name().map_or_else(|| "corpus".into(), |n| n.to_string_lossy().into_owned());
        let suffix = match text {
            TextEmbedding::Hashed => String::new(),
            other => format!("-{other}"),
        };
        corpus.with_file_name(format!("{name}-features{suffix}"))
    });
    let options = CacheOptions { text_embedding: text, ..CacheOptions::default() };
    if let Ok(c) = FeatureCache::open(&dir) {
        if c.index.options == options {
            return Ok(c);
        }
    }
    let c = Corpus::open(corpus)?;
    let encoder = text_encoder(text)?;
    let bar = crate::count_bar(c.available().count(), "sessions → feature cache");
    cache::build(&c, &dir, options, encoder.as_deref(), || bar.inc(1))?;
    bar.finish_and_clear();
    Ok(FeatureCache::open(&dir)?)
}

fn epoch_bar(max: usize) -> ProgressBar {
    ProgressBar::new(max as u64).with_style(
        ProgressStyle::with_template("  epoch {pos:>3}/{len} [{bar:25}] {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    )
}

fn fit(cache: &FeatureCache, cfg: &MimmlConfig) -> anyhow::Result<Trained> {
    let bar = epoch_bar(cfg.max_epochs);
    let t = train(cache, cfg, |e| {
        bar.set_position(e.epoch as u64);
        bar.set_message(format!(
            "loss {:.3} (task {:.3}, nce {:.3}, lld {:.2})  dev F1 {:.3} AUC {:.3}",
            e.loss, e.task, e.nce, e.lld, e.dev_f1, e.dev_auc
        ));
    })?;
    bar.finish_and_clear();
    Ok(t)
}

fn split_of(name: &str) -> anyhow::Result<Split> {
    match name {
        "train" => Ok(Split::Train),
        "dev" => Ok(Split::Dev),
        "test" => Ok(Split::Test),
        other => anyhow::bail!("unknown split {other:?} (train, dev, test)"),
    }
}

fn scored(t: &Trained, cache: &FeatureCache, split: Split) -> anyhow::Result<Vec<Scored>> {
    let ex = examples(cache, split, &t.spec, &t.model.cfg)?;
    anyhow::ensure!(!ex.is_empty(), "the {split} split has no labelled sessions in the cache");
    Ok(predict(&t.model, &t.spec, &ex)?.into_iter().map(|(s, _)| s).collect())
}

fn print_metrics(split: Split, m: &Metrics) {
    let ci = |c: &metrics::Ci| format!("{:.3} [{:.3}, {:.3}]", c.value, c.lo, c.hi);
    println!("  {split} (n = {}, threshold {})", m.n, m.threshold);
    println!("    depressed-class F1  {}", ci(&m.f1));
    println!("    macro-F1            {}", ci(&m.macro_f1));
    println!("    accuracy            {}", ci(&m.accuracy));
    println!("    ROC-AUC             {}", ci(&m.roc_auc));
    println!("    precision {:.3}  sensitivity {:.3}  specificity {:.3}", m.precision, m.sensitivity, m.specificity);
    println!("    PHQ-8 RMSE {:.2}  MAE {:.2}   ECE {:.3}", m.phq8_rmse, m.phq8_mae, m.ece);
    let c = m.confusion;
    println!("    confusion: TP {} FP {} TN {} FN {}", c.tp, c.fp, c.tn, c.fn_);
}

pub fn train_cmd(
    corpus: &Path,
    out: &Path,
    config: Option<PathBuf>,
    cache: Option<PathBuf>,
    seed: Option<u64>,
) -> anyhow::Result<()> {
    let mut cfg: MimmlConfig = match config {
        Some(p) => serde_json::from_slice(&std::fs::read(&p).with_context(|| format!("reading {}", p.display()))?)
            .with_context(|| format!("{} is not a valid MIMML config", p.display()))?,
        None => MimmlConfig::default(),
    };
    if let Some(s) = seed {
        cfg.seed = s;
    }
    let cache = ensure_cache(corpus, cache, cfg.text_embedding)?;
    let started = std::time::Instant::now();
    let t = fit(&cache, &cfg)?;
    let version = format!("mimml-{}-s{}", t.schema(), cfg.seed);
    t.save(out, &version)?;
    println!(
        "trained {version} in {:.1} s (best epoch {} of {})",
        started.elapsed().as_secs_f32(),
        t.best_epoch,
        t.history.len()
    );
    println!("  decision threshold {:.3} (tuned for F1 on dev)", t.threshold);
    for split in [Split::Dev, Split::Test] {
        if let Ok(s) = scored(&t, &cache, split) {
            print_metrics(split, &metrics::evaluate(&s, t.threshold, 1000, 1));
        }
    }
    println!("  checkpoint: {}", out.display());
    Ok(())
}

pub fn eval_cmd(
    model: &Path,
    corpus: &Path,
    cache: Option<PathBuf>,
    split: &str,
    out: Option<PathBuf>,
) -> anyhow::Result<()> {
    let split = split_of(split)?;
    let (t, meta) = Trained::load(model)?;
    let cache = ensure_cache(corpus, cache, t.model.cfg.text_embedding)?;
    let s = scored(&t, &cache, split)?;
    let m = metrics::evaluate(&s, t.threshold, 1000, 1);
    println!("model {}", meta.version);
    print_metrics(split, &m);
    let out = out.unwrap_or_else(|| model.to_owned());
    std::fs::create_dir_all(&out)?;
    let json = serde_json::json!({ "model": meta.version, "split": split, "metrics": m, "roc": metrics::roc_curve(&s), "reliability": metrics::reliability(&s) });
    std::fs::write(out.join(format!("metrics-{split}.json")), serde_json::to_vec_pretty(&json)?)?;
    plots::roc(&out.join(format!("roc-{split}.png")), &metrics::roc_curve(&s))?;
    plots::reliability(&out.join(format!("reliability-{split}.png")), &metrics::reliability(&s))?;
    println!("  wrote metrics-{split}.json, roc-{split}.png, reliability-{split}.png to {}", out.display());
    Ok(())
}

/// The checkpoint at `model`, its ONNX export with weights stored as `quantize` says, and that
/// export loaded as the device would.
fn exported(
    model: &Path,
    quantize: &str,
) -> anyhow::Result<(Trained, models::mimml::export::Quantization, Vec<u8>, models::onnx::OnnxModel)> {
    let q = models::mimml::export::Quantization::parse(quantize)
        .with_context(|| format!("unknown quantisation {quantize:?} (f32, f16, int8)"))?;
    let (t, meta) = Trained::load(model)?;
    let onnx = models::mimml::export::to_onnx_quantized(&t, &meta.version, q)?;
    let m = models::onnx::OnnxModel::from_bytes(&onnx, &meta.version, t.schema(), t.model.cfg.max_segments)?;
    Ok((t, q, onnx, m))
}

pub fn export_cmd(
    model: &Path,
    corpus: &Path,
    cache: Option<PathBuf>,
    out: &Path,
    quantize: &str,
) -> anyhow::Result<()> {
    use models::onnx::{Bundle, Golden};
    let (t, q, onnx, m) = exported(model, quantize)?;
    let cache = ensure_cache(corpus, cache, t.model.cfg.text_embedding)?;
    // The golden example: the first test session with every modality.
    let f = cache
        .sessions(Split::Test)
        .chain(cache.sessions(Split::Dev))
        .find(|s| s.lengths.iter().all(|&n| n > 0))
        .map(|s| cache.load(s.id))
        .transpose()?
        .context("no test or dev session with all three modalities for the golden example")?;
    let golden = Golden::of(&m, &f)?;
    let manifest = Bundle::install(out, &onnx, &m, &golden, t.threshold, q.name())?;
    println!(
        "bundle {} ({}) written to {} ({} bytes of ONNX, feature schema {}, self-test passed)",
        manifest.model_version,
        manifest.quantization,
        out.display(),
        onnx.len(),
        manifest.feature_schema
    );
    Ok(())
}

/// `mimml reexport`: the checkpoint at `model` exported in place of the bundle's model, keeping
/// the bundle's golden inputs and decision threshold (no corpus needed).
pub fn reexport_cmd(model: &Path, bundle: &Path, quantize: &str) -> anyhow::Result<()> {
    let (_, q, onnx, m) = exported(model, quantize)?;
    let manifest = models::onnx::Bundle::replace_model(bundle, &onnx, &m, q.name())?;
    println!(
        "bundle {} ({}) re-exported in place at {} ({} bytes of ONNX, golden inputs kept, self-test passed)",
        manifest.model_version,
        manifest.quantization,
        bundle.display(),
        onnx.len()
    );
    Ok(())
}

fn mean_sd(v: &[f64]) -> (f64, f64) {
    let n = v.len().max(1) as f64;
    let m = v.iter().sum::<f64>() / n;
    (m, (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0).max(1.0)).sqrt())
}

pub fn ablate_cmd(corpus: &Path, out: &Path, cache: Option<PathBuf>, seeds: u64) -> anyhow::Result<()> {
    let cache = ensure_cache(corpus, cache, TextEmbedding::Hashed)?;
    std::fs::create_dir_all(out)?;
    let vars = variants();
    let mut rows = Vec::new();
    for (name, base) in &vars {
        let mut per_seed = Vec::new();
        for seed in 1..=seeds {
            let cfg = MimmlConfig { seed, ..base.clone() };
            eprintln!("{name}, seed {seed}");
            let t = fit(&cache, &cfg)?;
            let s = scored(&t, &cache, Split::Test)?;
            let m = metrics::evaluate(&s, t.threshold, 0, seed);
            let at_half = metrics::evaluate(&s, 0.5, 0, seed);
            per_seed.push(serde_json::json!({
                "seed": seed, "threshold": t.threshold, "f1": m.f1.value, "macro_f1": m.macro_f1.value,
                "accuracy": m.accuracy.value, "auc": m.roc_auc.value, "phq8_rmse": m.phq8_rmse,
                "f1_at_0.5": at_half.f1.value, "best_epoch": t.best_epoch, "epochs": t.history.len()
            }));
        }
        let col = |k: &str| per_seed.iter().filter_map(|r| r[k].as_f64()).collect::<Vec<_>>();
        let summary: Vec<(f64, f64)> =
            ["f1", "macro_f1", "accuracy", "auc", "phq8_rmse", "f1_at_0.5"].iter().map(|k| mean_sd(&col(k))).collect();
        println!(
            "{name:<11} F1 {:.3} ± {:.3}  AUC {:.3} ± {:.3}",
            summary[0].0, summary[0].1, summary[3].0, summary[3].1
        );
        rows.push((name.to_string(), summary, per_seed));
    }
    let synthetic = std::fs::read(corpus.join(models::corpus::synth::MARKER))
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .map(|v| format!("\n\nSynthetic corpus settings: `{}`.", v["config"]))
        .unwrap_or_default();
    let mut md = format!(
        "# MIMML ablations\n\nTest split of `{}`{synthetic}\n\n{} seeds (mean ± sd). Decision threshold tuned for F1 on the dev split \
         (the last column: F1 at a fixed 0.5).\n\n| variant | depressed F1 | macro-F1 | accuracy | ROC-AUC | PHQ-8 RMSE | F1 at 0.5 |\n|---|---|---|---|---|---|---|\n",
        corpus.display(),
        seeds
    );
    for (name, s, _) in &rows {
        md.push_str(&format!("| {name} |"));
        for (m, sd) in s {
            md.push_str(&format!(" {m:.3} ± {sd:.3} |"));
        }
        md.push('\n');
    }
    std::fs::write(out.join("ablation.md"), &md)?;
    let json: Vec<_> = rows
        .iter()
        .map(|(name, s, per)| serde_json::json!({ "variant": name, "f1": s[0], "macro_f1": s[1], "accuracy": s[2], "auc": s[3], "phq8_rmse": s[4], "f1_at_0.5": s[5], "runs": per }))
        .collect();
    std::fs::write(out.join("ablation.json"), serde_json::to_vec_pretty(&json)?)?;
    print!("{md}");
    Ok(())
}

/// PNG plots without text: no font is available offline, so axes are a frame and the numbers
/// are in the JSON beside them.
mod plots {
    use std::path::Path;

    use plotters::prelude::*;

    fn frame(
        path: &Path,
        draw: impl FnOnce(
            &mut ChartContext<
                '_,
                BitMapBackend<'_>,
                Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
            >,
        ) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        let root = BitMapBackend::new(path, (480, 480)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| anyhow::anyhow!("{e}"))?;
        let mut chart = ChartBuilder::on(&root)
            .margin(20)
            .build_cartesian_2d(0f64..1f64, 0f64..1f64)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        chart
            .draw_series(std::iter::once(Rectangle::new([(0.0, 0.0), (1.0, 1.0)], BLACK.stroke_width(1))))
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        for k in 1..10 {
            let v = f64::from(k) / 10.0;
            let grey = RGBColor(225, 225, 225);
            chart.draw_series(LineSeries::new([(v, 0.0), (v, 1.0)], grey)).map_err(|e| anyhow::anyhow!("{e}"))?;
            chart.draw_series(LineSeries::new([(0.0, v), (1.0, v)], grey)).map_err(|e| anyhow::anyhow!("{e}"))?;
        }
        chart
            .draw_series(LineSeries::new([(0.0, 0.0), (1.0, 1.0)], RGBColor(150, 150, 150)))
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        draw(&mut chart)?;
        root.present().map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(())
    }

    /// ROC curve: false-positive rate (x) against true-positive rate (y).
    pub fn roc(path: &Path, points: &[(f64, f64)]) -> anyhow::Result<()> {
        frame(path, |c| {
            c.draw_series(LineSeries::new(points.iter().copied(), BLUE.stroke_width(3)))
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            Ok(())
        })
    }

    /// Reliability diagram: mean predicted probability (x) against observed rate (y) per bin,
    /// dot area by bin size.
    pub fn reliability(path: &Path, bins: &[(f64, f64, usize)]) -> anyhow::Result<()> {
        frame(path, |c| {
            c.draw_series(LineSeries::new(bins.iter().map(|b| (b.0, b.1)), RED.stroke_width(2)))
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            c.draw_series(bins.iter().map(|b| Circle::new((b.0, b.1), 3 + (b.2 as f64).sqrt() as i32, RED.filled())))
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            Ok(())
        })
    }
}
