//! `mimml`: the host side of the MIMML screening system.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use host::client::DeviceClient;
use host::db::ResultsDb;
use host::{report, session, sync};
use indicatif::{ProgressBar, ProgressStyle};
use link::SerialPort;
use protocol::{Capabilities, DeviceInfo, Modalities};

/// Host tool for MIMML depression-screening devices.
///
/// A device (Raspberry Pi, Jetson, or a simulated one) captures an interview, computes features
/// and the screening result on the device, and keeps results in a durable log. This tool finds
/// devices, pushes interview transcripts, runs sessions and syncs results — exactly once — into
/// a local SQLite database. Raw audio and video never leave the device.
#[derive(Parser, Debug)]
#[command(version, about, long_about)]
struct Cli {
    /// More log output (-v info, -vv debug).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Args, Debug, Clone)]
struct PortArgs {
    /// Serial device of the MIMML device, e.g. /dev/ttyACM0.
    #[arg(long, env = "MIMML_PORT")]
    port: String,
    #[arg(long, default_value_t = 115_200)]
    baud: u32,
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
    /// List serial ports that may be MIMML devices (USB CDC-ACM and gadget ports first).
    Devices,
    /// Connect to a device and show what it is: id, board, firmware, model, feature schema.
    Info {
        #[command(flatten)]
        port: PortArgs,
    },
    /// Screening sessions.
    Session {
        #[command(subcommand)]
        cmd: SessionCmd,
    },
    /// Copy every result the device has and the database lacks; each result is stored once.
    Sync {
        #[command(flatten)]
        port: PortArgs,
        /// SQLite database of results.
        #[arg(long, env = "MIMML_DB", default_value = "mimml.db")]
        db: PathBuf,
    },
    /// Show results stored in the database.
    Results {
        #[arg(long, env = "MIMML_DB", default_value = "mimml.db")]
        db: PathBuf,
        /// Only this device.
        #[arg(long)]
        device: Option<String>,
    },
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
        /// Hyper-parameters (JSON, fields of models::mimml::config::MimmlConfig; missing = default).
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long)]
        seed: Option<u64>,
    },
    /// Evaluate a checkpoint on a split: accuracy, depressed-class F1, macro-F1, precision,
    /// recall, sensitivity, specificity, ROC-AUC (bootstrap 95 % CIs), PHQ-8 RMSE/MAE, ECE,
    /// confusion matrix; JSON plus ROC and reliability PNGs.
    Eval {
        #[arg(long)]
        model: PathBuf,
        #[command(flatten)]
        data: CorpusArgs,
        #[arg(long, default_value = "test")]
        split: String,
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
        #[arg(long)]
        model: PathBuf,
        /// Bundle folder to update; it must verify.
        #[arg(long)]
        bundle: PathBuf,
        /// Weight storage: f32, f16 or int8.
        #[arg(long, default_value = "f32")]
        quantize: String,
    },
    /// A whole screening session on a simulated device with the bundled sample: starts the
    /// device on a pseudo-terminal pair, pushes the transcript, runs the session, syncs the
    /// result into a database and prints a summary.
    Demo {
        /// Sample session folder (audio.wav, frames/, transcript.tsv).
        #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../assets/sample/session-001"))]
        session: PathBuf,
        /// Keep the device's data here (default: a temporary folder).
        #[arg(long)]
        device_data: Option<PathBuf>,
        /// Results database (default: in a temporary folder).
        #[arg(long)]
        db: Option<PathBuf>,
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
    /// modality (see `models::corpus::synth`).
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
        text_embedding: features::text::TextEmbedding,
    },
}

#[derive(Subcommand, Debug)]
enum SessionCmd {
    /// Run one session: start capture, push the transcript, stop, and show the result.
    Run {
        #[command(flatten)]
        port: PortArgs,
        /// Interview transcript in DAIC-WOZ format (TAB-separated start_time, stop_time,
        /// speaker, value).
        #[arg(long)]
        transcript: PathBuf,
        /// Label stored with the result (no personal data).
        #[arg(long, default_value = "")]
        label: String,
        /// Do not capture audio.
        #[arg(long)]
        no_audio: bool,
        /// Do not capture video.
        #[arg(long)]
        no_video: bool,
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
        .init();
    match cli.cmd {
        Cmd::Devices => devices(),
        Cmd::Info { port } => {
            let (_, info) = connect(&port)?;
            print_info(&info);
            Ok(())
        }
        Cmd::Session { cmd: SessionCmd::Run { port, transcript, label, no_audio, no_video } } => {
            let utterances = features::text::read_transcript(&transcript)?;
            let (mut client, info) = connect(&port)?;
            let mut m = Modalities::TEXT;
            if !no_audio {
                m |= Modalities::AUDIO;
            }
            if !no_video {
                m |= Modalities::VIDEO;
            }
            let outcome = run_with_progress(&mut client, &utterances, &label, Modalities(m))?;
            println!("{}", report::describe(info.device_id.as_str(), &outcome.record));
            println!("  (not yet in a database: run `mimml sync --port {}`)", port.port);
            Ok(())
        }
        Cmd::Sync { port, db } => {
            let (mut client, info) = connect(&port)?;
            let mut db = ResultsDb::open(&db)?;
            let r = sync_with_progress(&mut client, &mut db, info.device_id.as_str())?;
            println!(
                "synced {} result(s) from {} ({} new); database holds up to #{}",
                r.fetched, info.device_id, r.inserted, r.cursor
            );
            Ok(())
        }
        Cmd::Results { db, device } => {
            let db = ResultsDb::open(&db)?;
            let rows = db.results(device.as_deref())?;
            if rows.is_empty() {
                println!("no results");
            }
            for r in rows {
                println!("{}", report::describe(&r.device_id, &r.record));
            }
            Ok(())
        }
        Cmd::Corpus { cmd } => corpus(cmd),
        Cmd::Train { data, out, config, seed } => train::train_cmd(&data.corpus, &out, config, data.cache, seed),
        Cmd::Eval { model, data, split, out } => train::eval_cmd(&model, &data.corpus, data.cache, &split, out),
        Cmd::Ablate { data, out, seeds } => train::ablate_cmd(&data.corpus, &out, data.cache, seeds),
        Cmd::Export { model, data, out, quantize } => {
            train::export_cmd(&model, &data.corpus, data.cache, &out, &quantize)
        }
        Cmd::Reexport { model, bundle, quantize } => train::reexport_cmd(&model, &bundle, &quantize),
        Cmd::Demo { session, device_data, db } => demo(&session, device_data, db),
    }
}

mod train;

fn count_bar(len: usize, what: &str) -> ProgressBar {
    ProgressBar::new(len as u64).with_style(
        ProgressStyle::with_template(&format!("  {{bar:30}} {{pos}}/{{len}} {what} ({{elapsed}}, eta {{eta}})"))
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    )
}

fn corpus(cmd: CorpusCmd) -> anyhow::Result<()> {
    use models::corpus::{cache, daic::Corpus, synth};
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
        CorpusCmd::Cache { corpus, out, interviewer_text, text_embedding } => {
            let c = Corpus::open(&corpus)?;
            let encoder = train::text_encoder(text_embedding)?;
            let bar = count_bar(c.available().count(), "sessions");
            let opts = cache::CacheOptions { include_interviewer_text: interviewer_text, text_embedding };
            let r = cache::build(&c, &out, opts, encoder.as_deref(), || bar.inc(1))?;
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
                features::schema::schema_hash_for(text_embedding)
            );
            Ok(())
        }
    }
}

fn devices() -> anyhow::Result<()> {
    let ports = link::list_ports()?;
    if ports.is_empty() {
        println!("no serial ports found (a device appears as /dev/ttyACM* over USB)");
    }
    for p in ports {
        println!("{:<24} {}", p.path, p.kind);
    }
    Ok(())
}

fn connect(p: &PortArgs) -> anyhow::Result<(DeviceClient<link::TTYPort>, DeviceInfo)> {
    let port = link::open_port(&p.port, p.baud)?;
    let mut client = DeviceClient::new(port);
    let info = client.hello().with_context(|| format!("no MIMML device answered on {}", p.port))?;
    Ok((client, info))
}

fn print_info(i: &DeviceInfo) {
    let caps = [
        (Capabilities::AUDIO, "audio"),
        (Capabilities::VIDEO, "video"),
        (Capabilities::TEXT, "text"),
        (Capabilities::SIMULATED, "simulated"),
        (Capabilities::GPU, "gpu"),
        (Capabilities::MODEL_UPLOAD, "model-upload"),
        (Capabilities::KIOSK, "kiosk"),
    ]
    .into_iter()
    .filter(|(bit, _)| i.capabilities.has(*bit))
    .map(|(_, n)| n)
    .collect::<Vec<_>>()
    .join(", ");
    println!("device          {}", i.device_id);
    println!("board           {}", i.board);
    println!("firmware        {} (protocol v{})", i.firmware_version, i.protocol_version);
    println!("model           {} (feature schema {})", i.active_model_version, i.feature_schema);
    for s in &i.slots {
        println!("  slot {}        {:?} {}", s.slot, s.state, s.model_version);
    }
    println!("capabilities    {caps}");
    println!("results logged  {}", i.last_result_seq);
}

fn run_with_progress<P: std::io::Read + std::io::Write>(
    client: &mut DeviceClient<P>,
    utterances: &[features::text::Utterance],
    label: &str,
    modalities: Modalities,
) -> anyhow::Result<session::SessionOutcome> {
    let bar = ProgressBar::new(utterances.len() as u64).with_style(
        ProgressStyle::with_template("  {msg:<22} [{bar:30}] {pos}/{len} utterances")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_message("pushing transcript");
    let mut spinner = None;
    let outcome = session::run_session(client, utterances, label, modalities, |done, total| {
        bar.set_position(done as u64);
        if done == total {
            bar.finish_and_clear();
            let s = ProgressBar::new_spinner().with_message("device computing features and result…");
            s.enable_steady_tick(Duration::from_millis(100));
            spinner = Some(s);
        }
    });
    if let Some(s) = spinner {
        s.finish_and_clear();
    }
    bar.finish_and_clear();
    Ok(outcome?)
}

fn sync_with_progress<P: std::io::Read + std::io::Write>(
    client: &mut DeviceClient<P>,
    db: &mut ResultsDb,
    device_id: &str,
) -> anyhow::Result<sync::SyncReport> {
    let bar = ProgressBar::new(0).with_style(
        ProgressStyle::with_template("  syncing results [{bar:30}] #{pos}/{len}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let r = sync::sync(client, db, device_id, |cursor, last| {
        bar.set_length(last);
        bar.set_position(cursor);
    });
    bar.finish_and_clear();
    Ok(r?)
}

fn demo(session_dir: &Path, device_data: Option<PathBuf>, db: Option<PathBuf>) -> anyhow::Result<()> {
    let total = Instant::now();
    let transcript_path = session_dir.join("transcript.tsv");
    let utterances = features::text::read_transcript(&transcript_path)?;
    let tmp = tempfile::tempdir()?;
    let device_data = device_data.unwrap_or_else(|| tmp.path().join("device"));
    let keep_db = db.is_some();
    let db_path = db.unwrap_or_else(|| tmp.path().join("results.db"));

    println!("MIMML demo: one screening session on a simulated device");
    println!("  sample          {}", session_dir.display());
    let (host_end, device_end) = link::pty_pair()?;
    println!("  link            pseudo-terminal pair (device on {})", device_end.name().unwrap_or_default());

    let mut device = device::simulated(&device_data, session_dir)?;
    let stop = Arc::new(AtomicBool::new(false));
    let device_thread = {
        let stop = Arc::clone(&stop);
        std::thread::Builder::new()
            .name("simulated-device".into())
            .spawn(move || device::serve_port(&mut device, device_end, &stop))?
    };

    // The client (the pty's host end) lives until the device thread has stopped: closing it
    // first would look like a hang-up to the device.
    let mut client = DeviceClient::new(host_end);
    let result = (|| -> anyhow::Result<()> {
        let t = Instant::now();
        let info = client.hello()?;
        let hello_ms = t.elapsed().as_secs_f64() * 1000.0;
        println!("  device          {} on board {}, model {}", info.device_id, info.board, info.active_model_version);
        println!();
        let outcome = run_with_progress(&mut client, &utterances, "demo", Modalities::ALL)?;
        let t = Instant::now();
        let mut db = ResultsDb::open(&db_path)?;
        let r = sync_with_progress(&mut client, &mut db, info.device_id.as_str())?;
        let sync_ms = t.elapsed().as_secs_f64() * 1000.0;
        let stored = db
            .results(Some(info.device_id.as_str()))?
            .into_iter()
            .find(|s| s.record.seq == outcome.record.seq)
            .context("the result did not reach the database")?;
        anyhow::ensure!(stored.record == outcome.record, "database copy differs from the device's result");

        println!("{}", report::describe(info.device_id.as_str(), &stored.record));
        println!("  timings");
        println!("    hello             {hello_ms:>8.1} ms");
        println!(
            "    transcript push   {:>8.1} ms ({} utterances)",
            outcome.push.as_secs_f64() * 1000.0,
            outcome.utterances
        );
        println!(
            "    stop → result     {:>8.1} ms (features + model + durable log)",
            outcome.stop.as_secs_f64() * 1000.0
        );
        println!("    sync → database   {sync_ms:>8.1} ms ({} new result(s), cursor #{})", r.inserted, r.cursor);
        println!("    total             {:>8.1} ms", total.elapsed().as_secs_f64() * 1000.0);
        let s = client.stats();
        println!(
            "  link              {} frames / {} bytes sent, {} frames / {} bytes received, {} bad frames",
            s.frames_sent, s.bytes_sent, s.frames_received, s.bytes_received, s.bad_frames
        );
        if keep_db {
            println!("  stored in         {} (see `mimml results --db {}`)", db_path.display(), db_path.display());
        } else {
            println!("  stored in         a temporary database, removed on exit (keep it with --db FILE)");
        }
        Ok(())
    })();

    stop.store(true, Ordering::Relaxed);
    let served = device_thread.join().map_err(|_| anyhow::anyhow!("simulated device thread panicked"))?;
    drop(client);
    result?;
    served?;
    Ok(())
}

fn parse_text_embedding(s: &str) -> Result<features::text::TextEmbedding, String> {
    features::text::TextEmbedding::parse(s).ok_or_else(|| format!("unknown text embedding {s:?} (hashed, minilm)"))
}
