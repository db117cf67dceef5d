//! `mimml-lab`: the ML workbench. Thin over the `corpus` and `train` crates, whose rules it
//! follows (`train::workbench`); the clinic tool `mimml` links none of this.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use corpus::Split;
use corpus::cache::FeatureCache;
use features::text::{TextEmbedding, TextSetup, TranscriptSource};
use indicatif::{ProgressBar, ProgressStyle};
use train::metrics::{self, Metrics};
use train::mimml::config::{MimmlConfig, variants};
use train::mimml::train::{Trained, train};
use train::workbench::{self, AblationRow};

/// The MIMML workbench: corpora, feature caches, training, evaluation, ablations and device
/// bundles.
///
/// Every command reads a corpus in the DAIC-WOZ layout (the real, licensed distribution or the
/// synthetic twin `corpus synth` writes) through the device's own front-ends, so a model never
/// sees a feature the device would not compute. Bundles written by `export` are what
/// `mimml-device run --model` verifies and runs.
#[derive(Parser, Debug)]
#[command(name = "mimml-lab", version, about, long_about)]
struct Cli {
    /// More log output (-v info, -vv debug).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    #[command(subcommand)]
    cmd: Cmd,
}

/// Where a corpus and its feature cache are.
#[derive(Args, Debug, Clone)]
struct CorpusArgs {
    /// Corpus folder (DAIC-WOZ layout: NNN_P/ or NNN_P.zip plus the split files).
    #[arg(long)]
    corpus: PathBuf,
    /// Feature cache folder (default: beside the corpus, `<corpus>-features`); built when missing
    /// or stale.
    #[arg(long)]
    cache: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Corpora: check a DAIC-WOZ copy, synthesise a DAIC-shaped corpus, build the feature cache.
    Corpus {
        #[command(subcommand)]
        cmd: CorpusCmd,
    },
    /// Train MIMML on a corpus (real DAIC-WOZ or synthetic): builds or reuses the feature cache,
    /// trains with early stopping on the dev split, writes weights.safetensors + config.json.
    Train {
        #[command(flatten)]
        data: CorpusArgs,
        /// Output folder for the checkpoint.
        #[arg(long)]
        out: PathBuf,
        /// Hyper-parameters (JSON, fields of train::mimml::config::MimmlConfig; missing = default).
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long)]
        seed: Option<u64>,
    },
    /// Evaluate a checkpoint on a split: accuracy, depressed-class F1, macro-F1, precision,
    /// recall, sensitivity, specificity, ROC-AUC (bootstrap 95 % CIs), PHQ-8 RMSE/MAE, ECE,
    /// confusion matrix; JSON plus ROC and reliability PNGs.
    Eval {
        /// Checkpoint folder written by `train`.
        #[arg(long)]
        model: PathBuf,
        #[command(flatten)]
        data: CorpusArgs,
        #[arg(long, default_value = "test")]
        split: Split,
        /// Where to write metrics.json, roc.png and reliability.png (default: the model folder).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Ablations: full vs −MI vs −MTL vs concatenation vs each single modality, over seeds;
    /// writes ablation.md and ablation.json.
    Ablate {
        #[command(flatten)]
        data: CorpusArgs,
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = 3)]
        seeds: u64,
    },
    /// Export a checkpoint as a device bundle: ONNX, manifest with hashes, and a golden
    /// input/output (the first test session of the corpus) for the device's self-test.
    Export {
        /// Checkpoint folder written by `train`.
        #[arg(long)]
        model: PathBuf,
        #[command(flatten)]
        data: CorpusArgs,
        /// Bundle folder to write.
        #[arg(long)]
        out: PathBuf,
        /// Weight storage: f32, f16 (cast up at load) or int8 (symmetric per tensor, DequantizeLinear).
        #[arg(long, default_value = "f32")]
        quantize: String,
    },
    /// Re-export a checkpoint in place of a bundle's model, keeping the bundle's golden inputs and
    /// decision threshold (no corpus needed; e.g. after an exporter change). The old bundle stays
    /// until the new one verifies.
    Reexport {
        /// Checkpoint folder written by `train`.
        #[arg(long)]
        model: PathBuf,
        /// Bundle folder to update; it must verify.
        #[arg(long)]
        bundle: PathBuf,
        /// Weight storage: f32, f16 or int8.
        #[arg(long, default_value = "f32")]
        quantize: String,
    },
}

#[derive(Subcommand, Debug)]
enum CorpusCmd {
    /// Read every session of a corpus (NNN_P/ folders or NNN_P.zip files plus the AVEC 2017
    /// split files) and print sessions per split, depressed counts, missing files and problems.
    Check {
        /// Corpus folder.
        dir: PathBuf,
    },
    /// Write a synthetic corpus in the DAIC-WOZ layout with depression planted in every
    /// modality (see `corpus::synth`).
    Synth {
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = 189)]
        participants: usize,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Approximate interview length, seconds.
        #[arg(long, default_value_t = 60.0)]
        seconds: f32,
        /// Signal strength in audio, video and text (0 = none).
        #[arg(long, default_value_t = 1.0)]
        audio_strength: f32,
        #[arg(long, default_value_t = 1.0)]
        video_strength: f32,
        #[arg(long, default_value_t = 1.0)]
        text_strength: f32,
        /// Fraction of participants with one contradicting modality.
        #[arg(long, default_value_t = 0.15)]
        disagree: f32,
        /// Write NNN_P.zip archives instead of folders.
        #[arg(long)]
        zip: bool,
    },
    /// Run the device's front-ends over a corpus once and store per-session feature sequences
    /// (safetensors), keyed by the feature-schema hash; a stale cache is rebuilt.
    Cache {
        #[arg(long)]
        corpus: PathBuf,
        #[arg(long)]
        out: PathBuf,
        /// Include the interviewer's words in the text features (leaks the label).
        #[arg(long)]
        interviewer_text: bool,
        /// Sentence embedding of the text features: hashed (built in) or minilm
        /// (all-MiniLM-L6-v2, installed by scripts/install_minilm.sh).
        #[arg(long, default_value = "hashed", value_parser = parse_text_embedding)]
        text_embedding: TextEmbedding,
        /// Where the text's words come from: pushed (the corpus's transcripts) or asr (Whisper
        /// tiny.en over the participant's turns, as a device running --asr hears them;
        /// installed by scripts/install_whisper.sh). Train with the same "transcripts" in the
        /// config.
        #[arg(long, default_value = "pushed", value_parser = parse_transcripts)]
        transcripts: TranscriptSource,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let level = match cli.verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| level.into()))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match cli.cmd {
        Cmd::Corpus { cmd } => corpus_cmd(cmd),
        Cmd::Train { data, out, config, seed } => train_cmd(&data, &out, config, seed),
        Cmd::Eval { model, data, split, out } => eval_cmd(&model, &data, split, out),
        Cmd::Ablate { data, out, seeds } => ablate_cmd(&data, &out, seeds),
        Cmd::Export { model, data, out, quantize } => export_cmd(&model, &data, &out, &quantize),
        Cmd::Reexport { model, bundle, quantize } => reexport_cmd(&model, &bundle, &quantize),
    }
}

fn count_bar(len: usize, what: &str) -> ProgressBar {
    ProgressBar::new(len as u64).with_style(
        ProgressStyle::with_template(&format!("  {{bar:30}} {{pos}}/{{len}} {what} ({{elapsed}}, eta {{eta}})"))
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    )
}

fn corpus_cmd(cmd: CorpusCmd) -> anyhow::Result<()> {
    use corpus::{cache, daic::Corpus, synth};
    match cmd {
        CorpusCmd::Check { dir } => {
            let c = Corpus::open(&dir)?;
            let bar = count_bar(c.available().count(), "sessions read");
            let report = c.check(|| bar.inc(1));
            bar.finish_and_clear();
            print!("{report}");
            Ok(())
        }
        CorpusCmd::Synth {
            out,
            participants,
            seed,
            seconds,
            audio_strength,
            video_strength,
            text_strength,
            disagree,
            zip,
        } => {
            let cfg = synth::SynthConfig {
                participants,
                seed,
                seconds,
                strength: [audio_strength, video_strength, text_strength],
                disagree,
                zip,
            };
            let bar = count_bar(participants, "sessions written");
            let truth = synth::write_corpus(&cfg, &out, || bar.inc(1))?;
            bar.finish_and_clear();
            let depressed = truth.iter().filter(|t| t.depressed()).count();
            println!("wrote {} synthetic sessions ({depressed} depressed) to {}", truth.len(), out.display());
            Ok(())
        }
        CorpusCmd::Cache { corpus, out, interviewer_text, text_embedding, transcripts } => {
            let c = Corpus::open(&corpus)?;
            let encoder = workbench::text_encoder(text_embedding)?;
            let transcriber = workbench::transcriber(transcripts)?;
            let bar = count_bar(c.available().count(), "sessions");
            let opts = cache::CacheOptions { include_interviewer_text: interviewer_text, text_embedding, transcripts };
            let front_ends = cache::TextFrontEnds { encoder: encoder.as_deref(), transcriber: transcriber.as_deref() };
            let r = cache::build(&c, &out, opts, front_ends, || bar.inc(1))?;
            bar.finish_and_clear();
            if r.was_stale {
                println!("the existing cache was stale (other feature schema or options): rebuilt");
            }
            println!(
                "feature cache {}: {} session(s) built, {} reused, {:.2} h of audio in {:.1} s (schema {})",
                out.display(),
                r.built,
                r.reused,
                r.audio_hours,
                r.seconds,
                opts.text().schema_hash()
            );
            Ok(())
        }
    }
}

/// The feature cache of `data` for `text`, built with a progress bar when missing or stale.
fn cache_for(data: &CorpusArgs, text: TextSetup) -> anyhow::Result<FeatureCache> {
    let bar = count_bar(0, "sessions → feature cache");
    let (cache, _) = workbench::ensure_cache(
        &data.corpus,
        data.cache.as_deref(),
        text,
        |n| bar.set_length(n as u64),
        || bar.inc(1),
    )?;
    bar.finish_and_clear();
    Ok(cache)
}

fn fit(cache: &FeatureCache, cfg: &MimmlConfig) -> anyhow::Result<Trained> {
    let bar = ProgressBar::new(cfg.max_epochs as u64).with_style(
        ProgressStyle::with_template("  epoch {pos:>3}/{len} [{bar:25}] {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
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

fn train_cmd(data: &CorpusArgs, out: &Path, config: Option<PathBuf>, seed: Option<u64>) -> anyhow::Result<()> {
    let mut cfg: MimmlConfig = match config {
        Some(p) => serde_json::from_slice(&std::fs::read(&p).with_context(|| format!("reading {}", p.display()))?)
            .with_context(|| format!("{} is not a valid MIMML config", p.display()))?,
        None => MimmlConfig::default(),
    };
    if let Some(s) = seed {
        cfg.seed = s;
    }
    let cache = cache_for(data, cfg.text())?;
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
        match workbench::scored(&t, &cache, split) {
            Ok(s) => print_metrics(split, &metrics::evaluate(&s, t.threshold, 1000, 1)),
            Err(e) => println!("  {split}: {e}"),
        }
    }
    println!("  checkpoint: {}", out.display());
    Ok(())
}

fn eval_cmd(model: &Path, data: &CorpusArgs, split: Split, out: Option<PathBuf>) -> anyhow::Result<()> {
    let (t, meta) = Trained::load(model)?;
    let cache = cache_for(data, t.model.cfg.text())?;
    let s = workbench::scored(&t, &cache, split)?;
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
) -> anyhow::Result<(Trained, train::mimml::export::Quantization, Vec<u8>, runtime::onnx::OnnxModel)> {
    let q = train::mimml::export::Quantization::parse(quantize)
        .with_context(|| format!("unknown quantisation {quantize:?} (f32, f16, int8)"))?;
    let (t, meta) = Trained::load(model)?;
    // A quantised export computes slightly different numbers: results name it apart.
    let version = match q {
        train::mimml::export::Quantization::F32 => meta.version.clone(),
        _ => format!("{}-{}", meta.version, q.name()),
    };
    let onnx = train::mimml::export::to_onnx_quantized(&t, &version, q)?;
    let m = runtime::onnx::OnnxModel::from_bytes(&onnx, &version, t.schema(), t.model.cfg.max_segments)?;
    Ok((t, q, onnx, m))
}

fn export_cmd(model: &Path, data: &CorpusArgs, out: &Path, quantize: &str) -> anyhow::Result<()> {
    use runtime::bundle::{Bundle, BundleSpec, Golden};
    let (t, q, onnx, m) = exported(model, quantize)?;
    let cache = cache_for(data, t.model.cfg.text())?;
    let golden = Golden::of(&m, &workbench::golden_session(&cache)?)?;
    let trained_on = if data.corpus.join(corpus::synth::MARKER).exists() {
        "synthetic interviews (no real patients)".to_owned()
    } else {
        let name =
            data.corpus.file_name().map_or_else(|| data.corpus.display().to_string(), |n| n.to_string_lossy().into());
        format!("the DAIC-WOZ-format corpus \"{name}\"")
    };
    let manifest = Bundle::install(
        out,
        &BundleSpec {
            onnx: &onnx,
            model: &m,
            golden: &golden,
            decision_threshold: t.threshold,
            quantization: q.name(),
            trained_on: Some(&trained_on),
        },
    )?;
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

/// The checkpoint at `model` exported in place of the bundle's model, keeping the bundle's
/// golden inputs and decision threshold (no corpus needed).
fn reexport_cmd(model: &Path, bundle: &Path, quantize: &str) -> anyhow::Result<()> {
    let (_, q, onnx, m) = exported(model, quantize)?;
    let manifest = runtime::bundle::Bundle::replace_model(bundle, &onnx, &m, q.name())?;
    println!(
        "bundle {} ({}) re-exported in place at {} ({} bytes of ONNX, golden inputs kept, self-test passed)",
        manifest.model_version,
        manifest.quantization,
        bundle.display(),
        onnx.len()
    );
    Ok(())
}

fn ablate_cmd(data: &CorpusArgs, out: &Path, seeds: u64) -> anyhow::Result<()> {
    let cache = cache_for(data, TextSetup::default())?;
    std::fs::create_dir_all(out)?;
    let mut rows = Vec::new();
    for (name, base) in &variants() {
        let mut runs = Vec::new();
        for seed in 1..=seeds {
            let cfg = MimmlConfig { seed, ..base.clone() };
            eprintln!("{name}, seed {seed}");
            let t = fit(&cache, &cfg)?;
            let s = workbench::scored(&t, &cache, Split::Test)?;
            let m = metrics::evaluate(&s, t.threshold, 0, seed);
            let at_half = metrics::evaluate(&s, 0.5, 0, seed);
            runs.push(serde_json::json!({
                "seed": seed, "threshold": t.threshold, "f1": m.f1.value, "macro_f1": m.macro_f1.value,
                "accuracy": m.accuracy.value, "auc": m.roc_auc.value, "phq8_rmse": m.phq8_rmse,
                "f1_at_0.5": at_half.f1.value, "best_epoch": t.best_epoch, "epochs": t.history.len()
            }));
        }
        let row = AblationRow { variant: name.to_string(), runs };
        let s = row.summary();
        println!("{name:<11} F1 {:.3} ± {:.3}  AUC {:.3} ± {:.3}", s[0].0, s[0].1, s[3].0, s[3].1);
        rows.push(row);
    }
    let md = workbench::ablation_markdown(&data.corpus, seeds, &rows);
    std::fs::write(out.join("ablation.md"), &md)?;
    let json: Vec<_> = rows.iter().map(AblationRow::to_json).collect();
    std::fs::write(out.join("ablation.json"), serde_json::to_vec_pretty(&json)?)?;
    print!("{md}");
    Ok(())
}

fn parse_text_embedding(s: &str) -> Result<TextEmbedding, String> {
    TextEmbedding::parse(s).ok_or_else(|| format!("unknown text embedding {s:?} (hashed, minilm)"))
}

fn parse_transcripts(s: &str) -> Result<TranscriptSource, String> {
    TranscriptSource::parse(s).ok_or_else(|| format!("unknown transcript source {s:?} (pushed, asr)"))
}

/// PNG plots without text: no font is available offline, so axes are a frame and the numbers
/// are in the JSON beside them.
mod plots {
    use std::path::Path;

    use plotters::prelude::*;

    type Chart<'a, 'b> = ChartContext<
        'a,
        BitMapBackend<'b>,
        Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
    >;

    fn frame(path: &Path, draw: impl FnOnce(&mut Chart<'_, '_>) -> anyhow::Result<()>) -> anyhow::Result<()> {
        let e = |e: DrawingAreaErrorKind<_>| anyhow::anyhow!("{}: {e}", path.display());
        let root = BitMapBackend::new(path, (480, 480)).into_drawing_area();
        root.fill(&WHITE).map_err(e)?;
        let mut chart = ChartBuilder::on(&root).margin(20).build_cartesian_2d(0f64..1f64, 0f64..1f64).map_err(e)?;
        chart
            .draw_series(std::iter::once(Rectangle::new([(0.0, 0.0), (1.0, 1.0)], BLACK.stroke_width(1))))
            .map_err(e)?;
        for k in 1..10 {
            let v = f64::from(k) / 10.0;
            let grey = RGBColor(225, 225, 225);
            chart.draw_series(LineSeries::new([(v, 0.0), (v, 1.0)], grey)).map_err(e)?;
            chart.draw_series(LineSeries::new([(0.0, v), (1.0, v)], grey)).map_err(e)?;
        }
        chart.draw_series(LineSeries::new([(0.0, 0.0), (1.0, 1.0)], RGBColor(150, 150, 150))).map_err(e)?;
        draw(&mut chart)?;
        root.present().map_err(e)?;
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
