//! `mimml-demo`: one whole screening session on a simulated device, start to stored result.
//!
//! The device (the `device` crate's simulated board, fed the bundled sample's recording, frames
//! and transcript) serves one end of a pseudo-terminal pair on a thread of this process; the
//! clinic tool's client drives the other end exactly as `mimml` drives a device on
//! /dev/ttyACM0: hello and the host key's proof, transcript push, session, result, sync into a
//! database, and the report a clinician reads. The clinic tool itself (`mimml`) links no device
//! code; this program is the one place where both sides live in one process.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use clap::Parser;
use host::client::DeviceClient;
use host::db::{Filter, ResultsDb, Target};
use host::models::Catalogue;
use host::out;
use host::report;
use host::terminal::{run_with_progress, sync_with_progress};
use link::SerialPort;
use protocol::Modalities;

/// A whole screening session on a simulated device with the bundled sample: starts the device
/// on a pseudo-terminal pair, pushes the transcript, runs the session, syncs the result into a
/// database and prints what a clinician would read.
#[derive(Parser, Debug)]
#[command(name = "mimml-demo", version, about, long_about)]
struct Cli {
    /// Sample session folder (audio.wav, frames/, transcript.tsv). Default:
    /// `sample/session-001` of the assets folder ($MIMML_ASSETS, `assets/` beside the binary,
    /// `../share/mimml/assets`, or the source tree).
    #[arg(long)]
    session: Option<PathBuf>,
    /// Keep the device's data here (default: a temporary folder).
    #[arg(long)]
    device_data: Option<PathBuf>,
    /// Results database, an SQLite file or postgres://… (default: in a temporary folder).
    #[arg(long)]
    db: Option<Target>,
    /// Model bundles (a bundle folder, or a folder of bundles) whose manifests say what each
    /// model was trained on; the bundles shipped with the tools are always known.
    #[arg(long = "models", value_name = "DIR")]
    models: Vec<PathBuf>,
    /// More log output (-v info, -vv debug).
    #[arg(short, long, action = clap::ArgAction::Count)]
    verbose: u8,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    host::terminal::init_logging(cli.verbose);
    let models = Catalogue::load(&cli.models);
    let session_dir = cli.session.unwrap_or_else(|| features::assets::dir().join("sample/session-001"));

    let total = Instant::now();
    let transcript_path = session_dir.join("transcript.tsv");
    let utterances = features::text::read_transcript(&transcript_path)?;
    let tmp = tempfile::tempdir()?;
    let device_data = cli.device_data.unwrap_or_else(|| tmp.path().join("device"));
    let keep_db = cli.db.is_some();
    let db_target = cli.db.unwrap_or_else(|| Target::Sqlite(tmp.path().join("results.db")));

    out!("MIMML demo: one screening session on a simulated device");
    out!("  sample          {}", session_dir.display());
    let (host_end, device_end) = link::pty_pair()?;
    out!("  link            pseudo-terminal pair (device on {})", device_end.name().unwrap_or_default());

    let device = device::DeviceThread::simulated(&device_data, &session_dir, device_end)?;

    // The client (the pty's host end) lives until the device thread has stopped: closing it
    // first would look like a hang-up to the device.
    let mut client = DeviceClient::new(host_end).with_key(device.host_key());
    let result = (|| -> anyhow::Result<()> {
        let t = Instant::now();
        let info = client.hello()?;
        let hello_ms = t.elapsed().as_secs_f64() * 1000.0;
        out!("  device          {} on board {}, model {}", info.device_id, info.board, info.active_model_version);
        out!();
        let outcome = run_with_progress(&mut client, &utterances, "demo", Modalities::ALL)?;
        let t = Instant::now();
        let mut db = ResultsDb::open(&db_target)?;
        let r = sync_with_progress(&mut client, &mut db, info.device_id.as_str())?;
        let sync_ms = t.elapsed().as_secs_f64() * 1000.0;
        let stored = db
            .results(&Filter::device(info.device_id.as_str()))?
            .into_iter()
            .find(|s| s.record.seq == outcome.record.seq)
            .context("the result did not reach the database")?;
        anyhow::ensure!(stored.record == outcome.record, "database copy differs from the device's result");

        let model = models.provenance(&stored.record.model_version);
        out!("{}", report::describe(info.device_id.as_str(), &stored.record, &model));
        out!("  timings");
        out!("    hello             {hello_ms:>8.1} ms");
        out!(
            "    transcript push   {:>8.1} ms ({} utterances)",
            outcome.push.as_secs_f64() * 1000.0,
            outcome.utterances
        );
        out!("    stop → result     {:>8.1} ms (features + model + durable log)", outcome.stop.as_secs_f64() * 1000.0);
        out!("    sync → database   {sync_ms:>8.1} ms ({} new result(s), cursor #{})", r.inserted, r.cursor);
        out!("    total             {:>8.1} ms", total.elapsed().as_secs_f64() * 1000.0);
        let s = client.stats();
        out!(
            "  link              {} frames / {} bytes sent, {} frames / {} bytes received, {} bad frames",
            s.frames_sent,
            s.bytes_sent,
            s.frames_received,
            s.bytes_received,
            s.bad_frames
        );
        if keep_db {
            out!("  stored in         {db_target} (see `mimml results --db {db_target}`)");
        } else {
            out!("  stored in         a temporary database, removed on exit (keep it with --db FILE)");
        }
        Ok(())
    })();

    let served = device.stop();
    drop(client);
    result?;
    served?;
    Ok(())
}
