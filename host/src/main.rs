//! `mimml`: the host side of the MIMML screening system.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use host::client::DeviceClient;
use host::db::ResultsDb;
use host::{report, session, sync};
use indicatif::{ProgressBar, ProgressStyle};
use link::SerialPort;
use protocol::{DeviceInfo, Modalities};

/// Host tool for MIMML depression-screening devices.
///
/// A device (Raspberry Pi, Jetson, or a simulated one) captures an interview, computes features
/// and the screening result on the device, and keeps results in a durable log. This tool finds
/// devices, pushes interview transcripts, runs sessions and syncs results — exactly once — into
/// a local SQLite database. Raw audio and video never leave the device.
#[derive(Parser, Debug)]
#[command(name = "mimml", version, about, long_about)]
struct Cli {
    /// More log output (-v info, -vv debug).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    /// Machine-readable output: one JSON document on stdout (info, session run, sync, results).
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Args, Debug, Clone)]
struct PortArgs {
    /// Serial device of the MIMML device, e.g. /dev/ttyACM0.
    #[arg(long, env = "MIMML_PORT")]
    port: String,
    /// Baud rate of a UART link (USB CDC-ACM and pseudo-terminals ignore it).
    #[arg(long, default_value_t = 115_200)]
    baud: u32,
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
        /// List the records kept aside as conflicts instead.
        #[arg(long)]
        conflicts: bool,
    },
    /// A whole screening session on a simulated device with the bundled sample: starts the
    /// device on a pseudo-terminal pair, pushes the transcript, runs the session, syncs the
    /// result into a database and prints a summary.
    Demo {
        /// Sample session folder (audio.wav, frames/, transcript.tsv). Default:
        /// `sample/session-001` of the assets folder ($MIMML_ASSETS, `assets/` beside the
        /// binary, `../share/mimml/assets`, or the source tree).
        #[arg(long)]
        session: Option<PathBuf>,
        /// Keep the device's data here (default: a temporary folder).
        #[arg(long)]
        device_data: Option<PathBuf>,
        /// Results database (default: in a temporary folder).
        #[arg(long)]
        db: Option<PathBuf>,
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
        /// Label stored with the result (no personal data; at most 32 bytes).
        #[arg(long, default_value = "", value_parser = parse_label)]
        label: String,
        /// Do not capture audio.
        #[arg(long)]
        no_audio: bool,
        /// Do not capture video.
        #[arg(long)]
        no_video: bool,
    },
    /// Show the session the device is running, whoever started it.
    List {
        #[command(flatten)]
        port: PortArgs,
    },
    /// Stop a running session (whoever started it) and show its result.
    Stop {
        #[command(flatten)]
        port: PortArgs,
        /// The session.
        session: u32,
    },
    /// End a running session without a result (one whose host has gone away).
    Abort {
        #[command(flatten)]
        port: PortArgs,
        /// The session.
        session: u32,
    },
}

/// Labels are stored in 32 bytes: a longer one is refused rather than cut.
fn parse_label(s: &str) -> Result<String, String> {
    if s.len() > 32 {
        return Err(format!("{} bytes; a label holds at most 32 bytes (UTF-8)", s.len()));
    }
    if s.chars().any(char::is_control) {
        return Err("control characters are not allowed in a label".into());
    }
    Ok(s.to_owned())
}

/// Prints `value` as one JSON document.
fn print_json(value: &serde_json::Value) {
    println!("{}", serde_json::to_string_pretty(value).unwrap_or_default());
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
    let json = cli.json;
    match cli.cmd {
        Cmd::Devices => devices(),
        Cmd::Info { port } => {
            let (_, info) = connect(&port)?;
            if json {
                print_json(&report::info_json(&info));
            } else {
                print_info(&info);
            }
            Ok(())
        }
        Cmd::Session { cmd: SessionCmd::List { port } } => {
            let (_, info) = connect(&port)?;
            if json {
                print_json(&report::info_json(&info)["active_session"]);
                return Ok(());
            }
            match info.active_session {
                None => println!("no session running on {}", info.device_id),
                Some(s) => println!(
                    "session {} on {}: {:?}, {:.1} s captured",
                    s.session,
                    info.device_id,
                    s.state,
                    f64::from(s.captured_ms) / 1000.0
                ),
            }
            Ok(())
        }
        Cmd::Session { cmd: SessionCmd::Abort { port, session } } => {
            let (mut client, _) = connect(&port)?;
            let status = client.abort_session(session)?;
            println!("session {session}: {:?}", status.state);
            Ok(())
        }
        Cmd::Session { cmd: SessionCmd::Stop { port, session } } => {
            let (mut client, info) = connect(&port)?;
            let record = session::stop_session(&mut client, session)?;
            if json {
                print_json(&report::record_json(info.device_id.as_str(), &record));
            } else {
                println!("{}", report::describe(info.device_id.as_str(), &record));
            }
            Ok(())
        }
        Cmd::Session { cmd: SessionCmd::Run { port, transcript, label, no_audio, no_video } } => {
            let utterances = features::text::read_transcript(&transcript)?;
            let (mut client, info) = connect(&port)?;
            let mut m = Modalities::ALL;
            m.set(Modalities::AUDIO, !no_audio);
            m.set(Modalities::VIDEO, !no_video);
            let outcome = run_with_progress(&mut client, &utterances, &label, m)?;
            if json {
                print_json(&report::record_json(info.device_id.as_str(), &outcome.record));
            } else {
                println!("{}", report::describe(info.device_id.as_str(), &outcome.record));
                println!("  (not yet in a database: run `mimml sync --port {}`)", port.port);
            }
            Ok(())
        }
        Cmd::Sync { port, db } => {
            let (mut client, info) = connect(&port)?;
            let mut db = ResultsDb::open(&db)?;
            let r = sync_with_progress(&mut client, &mut db, info.device_id.as_str())?;
            if json {
                print_json(&serde_json::json!({
                    "device_id": info.device_id.as_str(),
                    "fetched": r.fetched,
                    "inserted": r.inserted,
                    "cursor": r.cursor,
                    "conflicts": r.conflicts.iter().map(|c| report::record_json(&c.device_id, &c.record)).collect::<Vec<_>>(),
                }));
            } else {
                println!(
                    "synced {} result(s) from {} ({} new); database holds up to #{}",
                    r.fetched, info.device_id, r.inserted, r.cursor
                );
            }
            for c in &r.conflicts {
                eprintln!("CONFLICT {}", report::one_line(&c.device_id, &c.record));
            }
            anyhow::ensure!(
                r.conflicts.is_empty(),
                "{} result(s) arrived under numbers this database holds with other content: kept aside, not \
                 stored as results (two devices may share the id {}; see `mimml results --conflicts`)",
                r.conflicts.len(),
                info.device_id
            );
            Ok(())
        }
        Cmd::Results { db, device, conflicts: true } => {
            let db = ResultsDb::open_read_only(&db)?;
            let kept = db.conflicts()?;
            if kept.is_empty() {
                println!("no conflicts");
            }
            for c in kept.iter().filter(|c| device.as_deref().is_none_or(|d| d == c.device_id)) {
                println!("{} (stored record's hash {})", report::one_line(&c.device_id, &c.record), c.stored_hash);
            }
            Ok(())
        }
        Cmd::Results { db, device, conflicts: false } => {
            let db = ResultsDb::open_read_only(&db)?;
            let rows = db.results(device.as_deref())?;
            if json {
                print_json(&rows.iter().map(|r| report::record_json(&r.device_id, &r.record)).collect());
                return Ok(());
            }
            if rows.is_empty() {
                println!("no results");
            }
            for r in rows {
                println!("{}", report::describe(&r.device_id, &r.record));
            }
            Ok(())
        }
        Cmd::Demo { session, device_data, db } => {
            let session = session.unwrap_or_else(|| features::assets::dir().join("sample/session-001"));
            demo(&session, device_data, db)
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
    println!("device          {}", i.device_id);
    println!("board           {}", i.board);
    println!("firmware        {} (protocol v{})", i.firmware_version, i.protocol_version);
    println!("model           {} (feature schema {})", i.active_model_version, i.feature_schema);
    for s in &i.slots {
        println!("  slot {}        {:?} {}", s.slot, s.state, s.model_version);
    }
    println!("capabilities    {}", i.capabilities);
    println!("results logged  {}", i.last_result_seq);
    match i.active_session {
        Some(s) => println!(
            "session running {} ({:?}, {:.1} s captured; `mimml session abort {}` ends it)",
            s.session,
            s.state,
            f64::from(s.captured_ms) / 1000.0,
            s.session
        ),
        None => println!("session running none"),
    }
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

    let device = device::DeviceThread::simulated(&device_data, session_dir, device_end)?;

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

    let served = device.stop();
    drop(client);
    result?;
    served?;
    Ok(())
}
