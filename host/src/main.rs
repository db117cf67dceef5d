//! `mimml`: the host side of the MIMML screening system.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use host::client::DeviceClient;
use host::db::{Filter, ResultsDb, Target};
use host::models::Catalogue;
use host::terminal::{run_with_progress, sync_with_progress};
use host::{forward, out, out_raw, report, session};
use indicatif::{ProgressBar, ProgressStyle};
use protocol::{DeviceInfo, Modalities};

/// Host tool for MIMML depression-screening devices.
///
/// A device (Raspberry Pi, Jetson, or a simulated one) captures an interview, computes features
/// and the screening result on the device, and keeps results in a durable log. This tool finds
/// devices, pushes interview transcripts, runs sessions and syncs results — exactly once — into
/// a local SQLite database or a fleet's PostgreSQL. Raw audio and video never leave the device.
#[derive(Parser, Debug)]
#[command(name = "mimml", version, about, long_about)]
struct Cli {
    /// More log output (-v info, -vv debug).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    /// Machine-readable output: one JSON document on stdout (info, session run, sync, results).
    #[arg(long, global = true)]
    json: bool,
    /// This host's key, proven to paired devices on every connection (created by `mimml pair`
    /// or `mimml keys host`). Default: $XDG_CONFIG_HOME/mimml/host.key (~/.config/...).
    #[arg(long, global = true, env = "MIMML_HOST_KEY", value_name = "FILE")]
    host_key: Option<PathBuf>,
    /// Model bundles (a bundle folder, or a folder of bundles) whose manifests say what each
    /// model was trained on, which every result shown names; the bundles shipped with this
    /// tool are always known.
    #[arg(long = "models", global = true, value_name = "DIR")]
    models: Vec<PathBuf>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Args, Debug, Clone)]
struct PortArgs {
    /// Serial device of the MIMML device, e.g. /dev/ttyACM0; or tcp:HOST:PORT for a device
    /// served over TCP (`mimml-device run --listen`, a ser2net rig).
    #[arg(long, env = "MIMML_PORT")]
    port: String,
    /// Baud rate of a UART link (USB CDC-ACM and pseudo-terminals ignore it).
    #[arg(long, default_value_t = 115_200)]
    baud: u32,
}

#[derive(Args, Debug, Clone)]
struct DbArgs {
    /// Results database: an SQLite file, or postgres://USER@HOST/DB (a fleet's central database;
    /// `?sslmode=require` for TLS, the password from the URL, PGPASSWORD is not read).
    #[arg(long, env = "MIMML_DB", default_value = "mimml.db")]
    db: Target,
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
    /// Interview transcripts.
    Transcript {
        #[command(subcommand)]
        cmd: TranscriptCmd,
    },
    /// Copy every result the device has and the database lacks; each result is stored once.
    Sync {
        #[command(flatten)]
        port: PortArgs,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Copy every result one database has and another lacks, exactly once: a field laptop's
    /// SQLite into the fleet's PostgreSQL.
    Forward {
        /// The database to read (never changed).
        #[arg(long)]
        from: Target,
        /// The database to store into (created or migrated if needed).
        #[arg(long)]
        to: Target,
    },
    /// Pair this host with a device: someone at the device reads out the code it shows (or
    /// holds the kiosk button). Creates this host's key if there is none.
    Pair {
        #[command(flatten)]
        port: PortArgs,
        /// The code the device shows (asked for on the terminal when not given).
        #[arg(long)]
        code: Option<u32>,
        /// This host's name, shown at the device.
        #[arg(long, default_value = "mimml host")]
        name: String,
    },
    /// Make a device forget this host.
    Unpair {
        #[command(flatten)]
        port: PortArgs,
    },
    /// Signing keys and this host's key.
    Keys {
        #[command(subcommand)]
        cmd: KeysCmd,
    },
    /// Model bundles: sign and verify.
    Bundle {
        #[command(subcommand)]
        cmd: BundleCmd,
    },
    /// Send a signed model bundle to a device. It serves on trial from the next session until
    /// confirmed (`mimml model confirm`) or rolled back. An interrupted flash resumes where it
    /// stopped when run again.
    Flash {
        #[command(flatten)]
        port: PortArgs,
        /// The signed bundle folder.
        bundle: PathBuf,
        /// Allow a version at or below the device's confirmed one (the device must allow it
        /// too: `mimml-device run --allow-downgrade`).
        #[arg(long)]
        allow_downgrade: bool,
        /// Confirm the new model at once instead of leaving it on trial.
        #[arg(long)]
        confirm: bool,
    },
    /// The model on trial: keep it or go back.
    Model {
        #[command(subcommand)]
        cmd: ModelCmd,
    },
    /// Show results stored in the database (urgent ones first).
    Results {
        #[command(flatten)]
        db: DbArgs,
        /// Only this device.
        #[arg(long)]
        device: Option<String>,
        /// List the records kept aside as conflicts instead.
        #[arg(long)]
        conflicts: bool,
    },
    /// Reports of stored results for clinicians, spreadsheets and health records (urgent
    /// results first; every format says "screening aid, not a diagnosis" and what the model was
    /// trained on).
    Report {
        #[command(flatten)]
        db: DbArgs,
        /// Only this device.
        #[arg(long)]
        device: Option<String>,
        /// Only sessions started on or after this day (YYYY-MM-DD, the host's zone) or instant
        /// (RFC 3339, e.g. 2026-12-01T09:00:00Z).
        #[arg(long, value_parser = parse_since)]
        since: Option<u64>,
        /// table (terminal), csv (spreadsheet), json, fhir (FHIR R4 Bundle for an EHR), html
        /// (a printable page per screening).
        #[arg(long, value_enum, default_value_t = report::Format::Table)]
        format: report::Format,
        /// Write here instead of stdout.
        #[arg(long, short)]
        out: Option<PathBuf>,
    },
}

#[derive(Args, Debug, Clone)]
struct TranscriptArgs {
    /// The transcript's format: daic (DAIC-WOZ TSV), vtt (WebVTT), srt, whisper (whisper /
    /// faster-whisper JSON), plain (one utterance a line, no times). Default: by the file's
    /// extension, else its content.
    #[arg(long = "transcript-format", value_parser = parse_transcript_format)]
    format: Option<features::transcript::Format>,
    /// The participant's name as the transcript writes it (a WebVTT voice, a caption label, a
    /// diarised speaker); the other speakers' lines are the interviewer's and stay out of the
    /// text features. Needed when the file names several speakers.
    #[arg(long)]
    participant: Option<String>,
}

impl TranscriptArgs {
    fn read(&self, path: &Path) -> anyhow::Result<Vec<features::text::Utterance>> {
        let speakers = features::transcript::Speakers { participant: self.participant.clone() };
        Ok(features::transcript::read(path, self.format, &speakers)?)
    }
}

fn parse_transcript_format(s: &str) -> Result<features::transcript::Format, String> {
    s.parse()
}

#[derive(Subcommand, Debug)]
enum TranscriptCmd {
    /// Push a transcript into the session the device is capturing (a kiosk's, or one started
    /// elsewhere); its text features are computed when the session stops.
    Push {
        #[command(flatten)]
        port: PortArgs,
        /// The transcript file.
        file: PathBuf,
        #[command(flatten)]
        transcript: TranscriptArgs,
        /// The session (default: the one the device is capturing).
        #[arg(long)]
        session: Option<u32>,
    },
    /// Read a transcript and show what the device would get: utterances, speakers, words.
    Check {
        /// The transcript file.
        file: PathBuf,
        #[command(flatten)]
        transcript: TranscriptArgs,
    },
}

#[derive(Subcommand, Debug)]
enum SessionCmd {
    /// Run one session: start capture, push the transcript, stop, and show the result.
    Run {
        #[command(flatten)]
        port: PortArgs,
        /// Interview transcript: DAIC-WOZ TSV, WebVTT, SRT, whisper JSON or plain text.
        #[arg(long)]
        transcript: PathBuf,
        #[command(flatten)]
        transcript_args: TranscriptArgs,
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

#[derive(Subcommand, Debug)]
enum KeysCmd {
    /// Make an ed25519 signing key pair: NAME.key (secret, mode 0600, never printed) and
    /// NAME.pub (give it to devices: `mimml-device run --trusted-keys`).
    Generate {
        /// Folder for the key files.
        #[arg(long)]
        out: PathBuf,
        /// File name stem.
        #[arg(long, default_value = "mimml-signing")]
        name: String,
    },
    /// Print this host's public key line (for `mimml-device pairings add`), creating the key if
    /// there is none.
    Host,
}

#[derive(Subcommand, Debug)]
enum BundleCmd {
    /// Sign a bundle: sets the manifest's key id (and version), writes manifest.sig.
    Sign {
        /// The secret key (`mimml keys generate`).
        #[arg(long)]
        key: PathBuf,
        /// The bundle's version; devices refuse one at or below the version they confirmed.
        #[arg(long)]
        version: Option<u64>,
        /// The bundle folder.
        bundle: PathBuf,
    },
    /// Check a bundle as a device would: signature by a trusted key, every file's hash, the
    /// feature schema and the golden self-test.
    Verify {
        /// Public keys trusted to sign bundles.
        #[arg(long)]
        trusted_keys: PathBuf,
        /// The bundle folder.
        bundle: PathBuf,
    },
}

#[derive(Subcommand, Debug)]
enum ModelCmd {
    /// Keep the model on trial: it becomes the confirmed model.
    Confirm {
        #[command(flatten)]
        port: PortArgs,
    },
    /// Go back to the confirmed model.
    Rollback {
        #[command(flatten)]
        port: PortArgs,
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
    out!("{}", serde_json::to_string_pretty(value).unwrap_or_default());
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
    let models = Catalogue::load(&cli.models);
    let model = |r: &protocol::ResultRecord| models.provenance(&r.model_version);
    let key_path = cli.host_key.clone().unwrap_or_else(default_host_key);
    let connect = |p: &PortArgs| connect(p, &key_path);
    match cli.cmd {
        Cmd::Devices => devices(),
        Cmd::Pair { port, code, name } => {
            // Made here when this host has none yet; `connect` then proves it.
            host_key(&key_path, true)?;
            let (mut client, info) = connect(&port)?;
            if info.authorized {
                out!("this host is already paired with {}", info.device_id);
                return Ok(());
            }
            let hosts = client.pair(&name, |challenge| {
                if challenge.method == protocol::PairMethod::Button {
                    eprintln!("hold the device's button, or enter the code it shows");
                }
                match code {
                    Some(c) => Ok(c),
                    None => Ok(ask_code(challenge.expires_s)),
                }
            })?;
            out!("paired with {} ({hosts} host(s) paired)", info.device_id);
            Ok(())
        }
        Cmd::Unpair { port } => {
            let (mut client, info) = connect(&port)?;
            let left = client.unpair()?;
            out!("{} forgot this host ({left} host(s) still paired)", info.device_id);
            Ok(())
        }
        Cmd::Keys { cmd: KeysCmd::Generate { out, name } } => {
            std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
            let key = runtime::signing::generate()?;
            let (secret, public) = (out.join(format!("{name}.key")), out.join(format!("{name}.pub")));
            runtime::signing::write_key_pair(&key, &secret, &public, &name)?;
            out!("secret key  {} (mode 0600: keep it off devices and out of version control)", secret.display());
            out!("public key  {} (key id {})", public.display(), runtime::signing::key_id(&key.verifying_key()));
            Ok(())
        }
        Cmd::Keys { cmd: KeysCmd::Host } => {
            let key = host_key(&key_path, true)?.context("no host key")?;
            out_raw!("{}", runtime::signing::public_line(&key.verifying_key(), "mimml host"));
            Ok(())
        }
        Cmd::Bundle { cmd: BundleCmd::Sign { key, version, bundle } } => {
            let key = runtime::signing::read_secret(&key)?;
            let m = runtime::bundle::sign_bundle(&bundle, &key, version)?;
            out!(
                "signed {} version {} with key {} ({})",
                m.model_version,
                m.version,
                m.key_id.unwrap_or_default(),
                bundle.display()
            );
            Ok(())
        }
        Cmd::Bundle { cmd: BundleCmd::Verify { trusted_keys, bundle } } => {
            let trusted = runtime::signing::TrustedKeys::read(&trusted_keys)?;
            let m = runtime::bundle::verify_bundle_signature(&bundle, &trusted)?;
            let b = runtime::bundle::Bundle::open(&bundle)?;
            out!(
                "{}: signed by key {}, version {}, {} files match their hashes, feature schema {} matches this                  build, self-test passed",
                b.manifest.model_version,
                m.key_id.unwrap_or_default(),
                m.version,
                m.files.len(),
                m.feature_schema
            );
            Ok(())
        }
        Cmd::Flash { port, bundle, allow_downgrade, confirm } => {
            let t = host::flash::Transfer::of(&bundle)?;
            let (mut client, info) = connect(&port)?;
            let bar = ProgressBar::new(t.archive.len() as u64).with_style(
                ProgressStyle::with_template("  flashing [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            let flashed = host::flash::flash(&mut client, &t, allow_downgrade, |done, _| bar.set_position(done));
            bar.finish_and_clear();
            let flashed = flashed?;
            if flashed.already {
                out!("{} already holds {} version {}", info.device_id, t.model_version, t.version);
            } else if flashed.resumed_at > 0 {
                out!("resumed at byte {} of {}", flashed.resumed_at, t.archive.len());
            }
            out!(
                "{} version {} is on trial in slot {} of {}: it serves from the next session",
                t.model_version,
                t.version,
                flashed.status.slot.slot,
                info.device_id
            );
            if confirm {
                client.call::<protocol::endpoints::UploadConfirm>(())?;
                out!("confirmed");
            } else {
                out!("confirm it with `mimml model confirm --port {}` once it works", port.port);
            }
            Ok(())
        }
        Cmd::Model { cmd: ModelCmd::Confirm { port } } => {
            let (mut client, info) = connect(&port)?;
            let s = client.call::<protocol::endpoints::UploadConfirm>(())?;
            out!("{} version {} confirmed on {}", s.slot.model_version, s.slot.version, info.device_id);
            Ok(())
        }
        Cmd::Model { cmd: ModelCmd::Rollback { port } } => {
            let (mut client, info) = connect(&port)?;
            client.call::<protocol::endpoints::UploadRollback>(())?;
            let info2 = client.hello()?;
            out!("{} rolled back: {} serves", info.device_id, info2.active_model_version);
            Ok(())
        }
        Cmd::Info { port } => {
            let (_, info) = connect(&port)?;
            if json {
                print_json(&report::info_json(&info));
            } else {
                print_info(&info);
            }
            Ok(())
        }
        Cmd::Transcript { cmd: TranscriptCmd::Check { file, transcript } } => {
            let u = transcript.read(&file)?;
            let participant = u.iter().filter(|u| u.speaker == features::text::Speaker::Participant).count();
            let words = |s: features::text::Speaker| -> usize {
                u.iter().filter(|u| u.speaker == s).map(|u| u.text.split_whitespace().count()).sum()
            };
            let timed = u.iter().filter(|u| u.end_ms > u.start_ms).count();
            host::session::check_limits(&u)?;
            if json {
                print_json(&serde_json::json!({
                    "file": file.display().to_string(),
                    "utterances": u.len(),
                    "participant_utterances": participant,
                    "participant_words": words(features::text::Speaker::Participant),
                    "interviewer_words": words(features::text::Speaker::Interviewer),
                    "timed": timed,
                }));
            } else {
                out!(
                    "{}: {} utterances ({} the participant's, {} words; {} the interviewer's, {} words, left out of the \
                     text features); {}",
                    file.display(),
                    u.len(),
                    participant,
                    words(features::text::Speaker::Participant),
                    u.len() - participant,
                    words(features::text::Speaker::Interviewer),
                    if timed == u.len() {
                        "all timed".to_owned()
                    } else {
                        format!("{} without times (the device finds utterances by voice activity)", u.len() - timed)
                    }
                );
            }
            Ok(())
        }
        Cmd::Transcript { cmd: TranscriptCmd::Push { port, file, transcript, session } } => {
            let utterances = transcript.read(&file)?;
            let (mut client, info) = connect(&port)?;
            let session = match (session, info.active_session) {
                (Some(s), _) => s,
                (None, Some(a)) if a.state == protocol::SessionState::Capturing => a.session,
                (None, _) => {
                    anyhow::bail!("{} is not capturing a session: nothing to push the transcript into", info.device_id)
                }
            };
            let bar = ProgressBar::new(utterances.len() as u64).with_style(
                ProgressStyle::with_template("  pushing transcript [{bar:30}] {pos}/{len}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            let pushed =
                session::push_transcript(&mut client, session, &utterances, |done, _| bar.set_position(done as u64));
            bar.finish_and_clear();
            pushed?;
            out!("{} utterance(s) pushed into session {session} on {}", utterances.len(), info.device_id);
            Ok(())
        }
        Cmd::Session { cmd: SessionCmd::List { port } } => {
            let (_, info) = connect(&port)?;
            if json {
                print_json(&report::info_json(&info)["active_session"]);
                return Ok(());
            }
            match info.active_session {
                None => out!("no session running on {}", info.device_id),
                Some(s) => out!(
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
            out!("session {session}: {:?}", status.state);
            Ok(())
        }
        Cmd::Session { cmd: SessionCmd::Stop { port, session } } => {
            let (mut client, info) = connect(&port)?;
            let record = session::stop_session(&mut client, session)?;
            if json {
                print_json(&report::record_json(info.device_id.as_str(), &record, &model(&record)));
            } else {
                out!("{}", report::describe(info.device_id.as_str(), &record, &model(&record)));
            }
            Ok(())
        }
        Cmd::Session { cmd: SessionCmd::Run { port, transcript, transcript_args, label, no_audio, no_video } } => {
            let utterances = transcript_args.read(&transcript)?;
            let (mut client, info) = connect(&port)?;
            let mut m = Modalities::ALL;
            m.set(Modalities::AUDIO, !no_audio);
            m.set(Modalities::VIDEO, !no_video);
            let outcome = run_with_progress(&mut client, &utterances, &label, m)?;
            if json {
                print_json(&report::record_json(info.device_id.as_str(), &outcome.record, &model(&outcome.record)));
            } else {
                out!("{}", report::describe(info.device_id.as_str(), &outcome.record, &model(&outcome.record)));
                out!("  (not yet in a database: run `mimml sync --port {}`)", port.port);
            }
            Ok(())
        }
        Cmd::Sync { port, db } => {
            let (mut client, info) = connect(&port)?;
            let mut db = ResultsDb::open(&db.db)?;
            let r = sync_with_progress(&mut client, &mut db, info.device_id.as_str())?;
            if json {
                print_json(&serde_json::json!({
                    "device_id": info.device_id.as_str(),
                    "fetched": r.fetched,
                    "inserted": r.inserted,
                    "cursor": r.cursor,
                    "conflicts": r.conflicts.iter().map(|c| report::record_json(&c.device_id, &c.record, &model(&c.record))).collect::<Vec<_>>(),
                }));
            } else {
                out!(
                    "synced {} result(s) from {} ({} new); database holds up to #{}",
                    r.fetched,
                    info.device_id,
                    r.inserted,
                    r.cursor
                );
            }
            for c in &r.conflicts {
                eprintln!("CONFLICT {}", c.summary());
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
        Cmd::Forward { from, to } => {
            anyhow::ensure!(from != to, "--from and --to name the same database");
            let mut source = ResultsDb::open_read_only(&from)?;
            let mut dest = ResultsDb::open(&to)?;
            let bar = ProgressBar::new(0).with_style(
                ProgressStyle::with_template("  forwarding {msg} [{bar:30}] {pos}/{len}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            let done = forward::forward(&mut source, &mut dest, |device, sent, total| {
                bar.set_message(device.to_owned());
                bar.set_length(total as u64);
                bar.set_position(sent as u64);
            });
            bar.finish_and_clear();
            let done = done?;
            if json {
                print_json(&serde_json::json!({
                    "from": from.to_string(),
                    "to": to.to_string(),
                    "devices": done.devices.iter().map(|(d, had, new)| serde_json::json!({
                        "device_id": d, "records": had, "inserted": new,
                    })).collect::<Vec<_>>(),
                    "inserted": done.inserted(),
                    "conflicts": done.conflicts.iter().map(|c| report::record_json(&c.device_id, &c.record, &model(&c.record))).collect::<Vec<_>>(),
                    "source_conflicts_not_forwarded": done.source_conflicts,
                }));
            } else {
                for (device, had, new) in &done.devices {
                    out!("  {device}: {had} result(s) in {from}, {new} new in {to}");
                }
                out!("forwarded {} new result(s) from {from} to {to}", done.inserted());
            }
            for c in &done.conflicts {
                eprintln!("CONFLICT {}", c.summary());
            }
            if done.source_conflicts > 0 {
                eprintln!(
                    "note: {} record(s) kept aside as conflicts in {from} are not forwarded \
                     (`mimml results --db {from} --conflicts`)",
                    done.source_conflicts
                );
            }
            anyhow::ensure!(
                done.conflicts.is_empty(),
                "{} result(s) arrived under numbers {to} holds with other content: kept aside there, not stored as \
                 results (`mimml results --db {to} --conflicts`)",
                done.conflicts.len()
            );
            Ok(())
        }
        Cmd::Results { db, device, conflicts: true } => {
            let mut db = ResultsDb::open_read_only(&db.db)?;
            let kept = db.conflicts()?;
            if kept.is_empty() {
                out!("no conflicts");
            }
            for c in kept.iter().filter(|c| device.as_deref().is_none_or(|d| d == c.device_id)) {
                out!("{} (stored record's hash {})", c.summary(), c.stored_hash);
            }
            Ok(())
        }
        Cmd::Results { db, device, conflicts: false } => {
            let mut db = ResultsDb::open_read_only(&db.db)?;
            let rows = db.results(&Filter { device, ..Filter::default() })?;
            if json {
                print_json(
                    &rows.iter().map(|r| report::record_json(&r.device_id, &r.record, &model(&r.record))).collect(),
                );
                return Ok(());
            }
            if rows.is_empty() {
                out!("no results");
            }
            for r in rows {
                out!("{}", report::describe(&r.device_id, &r.record, &model(&r.record)));
            }
            Ok(())
        }
        Cmd::Report { db, device, since, format, out } => {
            let mut db = ResultsDb::open_read_only(&db.db)?;
            let rows = db.results(&Filter { device, since_ms: since })?;
            let now =
                std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
            let text = match format {
                report::Format::Table => report::listing::table(&rows, &models),
                report::Format::Csv => report::listing::csv(&rows, &models)?,
                report::Format::Json => serde_json::to_string_pretty(&report::listing::json(&rows, &models))? + "\n",
                report::Format::Fhir => {
                    serde_json::to_string_pretty(&report::fhir::bundle(&rows, &models, now))? + "\n"
                }
                report::Format::Html => report::html::document(&rows, &models, now),
            };
            match out {
                Some(path) => {
                    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
                    eprintln!("{} result(s) written to {} ({format:?})", rows.len(), path.display());
                }
                None => out_raw!("{text}"),
            }
            Ok(())
        }
    }
}

fn devices() -> anyhow::Result<()> {
    let ports = link::list_ports()?;
    if ports.is_empty() {
        out!("no serial ports found (a device appears as /dev/ttyACM* over USB)");
    }
    for p in ports {
        out!("{:<24} {}", p.path, p.kind);
    }
    Ok(())
}

/// Where this host's key lives by default.
fn default_host_key() -> PathBuf {
    let config = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
        .unwrap_or_else(|| PathBuf::from("."));
    config.join("mimml/host.key")
}

/// This host's key at `path`; created (0600) when `create` and there is none.
fn host_key(path: &Path, create: bool) -> anyhow::Result<Option<ed25519_dalek::SigningKey>> {
    if path.exists() {
        return Ok(Some(runtime::signing::read_secret(path)?));
    }
    if !create {
        return Ok(None);
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let key = runtime::signing::generate()?;
    runtime::signing::write_key_pair(&key, path, &path.with_extension("pub"), "mimml host")?;
    eprintln!("created this host's key {}", path.display());
    Ok(Some(key))
}

/// Asks for the pairing code on the terminal.
fn ask_code(expires_s: u16) -> u32 {
    loop {
        eprint!("code shown on the device (valid {expires_s} s): ");
        let mut line = String::new();
        if std::io::stdin().read_line(&mut line).map_or(true, |n| n == 0) {
            return u32::MAX;
        }
        match line.trim().parse::<u32>() {
            Ok(c) if c < 1_000_000 => return c,
            _ => eprintln!("six digits, please"),
        }
    }
}

fn connect(p: &PortArgs, key: &Path) -> anyhow::Result<(DeviceClient<link::Port>, DeviceInfo)> {
    let port = link::open(&p.port, p.baud)?;
    let mut client = DeviceClient::new(port);
    if let Some(key) = host_key(key, false)? {
        client = client.with_key(key);
    }
    let info = client.hello().with_context(|| format!("no MIMML device answered on {}", p.port))?;
    if !info.authorized {
        tracing::info!("this host is not paired with {}: only what the device is can be read", info.device_id);
    }
    Ok((client, info))
}

fn print_info(i: &DeviceInfo) {
    out!("device          {}", i.device_id);
    out!("board           {}", i.board);
    out!("firmware        {} (protocol v{})", i.firmware_version, i.protocol_version);
    out!("model           {} (feature schema {})", i.active_model_version, i.feature_schema);
    for s in &i.slots {
        if s.state == protocol::SlotState::Empty {
            out!("  slot {}        empty", s.slot);
        } else {
            out!("  slot {}        {:?} {} version {}", s.slot, s.state, s.model_version, s.version);
        }
    }
    if !i.authorized {
        out!("paired          no (results and sessions need `mimml pair --port ...`)");
        return;
    }
    out!("capabilities    {}", i.capabilities);
    out!("results logged  {}", i.last_result_seq);
    match i.active_session {
        Some(s) => out!(
            "session running {} ({:?}, {:.1} s captured; `mimml session abort {}` ends it)",
            s.session,
            s.state,
            f64::from(s.captured_ms) / 1000.0,
            s.session
        ),
        None => out!("session running none"),
    }
}

/// `--since`: a day in the host's zone, or an RFC 3339 instant; Unix ms.
fn parse_since(s: &str) -> Result<u64, String> {
    let ts = if let Ok(t) = s.parse::<jiff::Timestamp>() {
        t
    } else {
        let day: jiff::civil::Date =
            s.parse().map_err(|e| format!("{s:?} is neither YYYY-MM-DD nor an RFC 3339 instant: {e}"))?;
        day.to_zoned(jiff::tz::TimeZone::system()).map_err(|e| e.to_string())?.timestamp()
    };
    u64::try_from(ts.as_millisecond()).map_err(|_| format!("{s:?} is before 1970"))
}
