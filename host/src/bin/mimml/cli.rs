//! The command line: every subcommand and its arguments, with their parsers. `--help` is the
//! manual, so each doc comment here is what a user reads.

use std::path::{Path, PathBuf};

use clap::{Args, Parser, Subcommand};
use host::db::Target;
use host::report;

/// Host tool for MIMML depression-screening devices.
///
/// A device (Raspberry Pi, Jetson, or a simulated one) captures an interview, computes features
/// and the screening result on the device, and keeps results in a durable log. This tool finds
/// devices, pushes interview transcripts, runs sessions and syncs results — exactly once — into
/// a local SQLite database or a fleet's PostgreSQL. Raw audio and video never leave the device.
#[derive(Parser, Debug)]
#[command(name = "mimml", version, about, long_about)]
pub(crate) struct Cli {
    /// More log output (-v info, -vv debug).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub(crate) verbose: u8,
    /// Machine-readable output: one JSON document on stdout (info, session run, sync, results).
    #[arg(long, global = true)]
    pub(crate) json: bool,
    /// This host's key, proven to paired devices on every connection (created by `mimml pair`
    /// or `mimml keys host`). Default: $XDG_CONFIG_HOME/mimml/host.key (~/.config/...).
    #[arg(long, global = true, env = "MIMML_HOST_KEY", value_name = "FILE")]
    pub(crate) host_key: Option<PathBuf>,
    /// Model bundles (a bundle folder, or a folder of bundles) whose manifests say what each
    /// model was trained on, which every result shown names; the bundles shipped with this
    /// tool are always known.
    #[arg(long = "models", global = true, value_name = "DIR")]
    pub(crate) models: Vec<PathBuf>,
    #[command(subcommand)]
    pub(crate) cmd: Cmd,
}

#[derive(Args, Debug, Clone)]
pub(crate) struct PortArgs {
    /// Serial device of the MIMML device, e.g. /dev/ttyACM0; or tcp:HOST:PORT for a device
    /// served over TCP (`mimml-device run --listen`, a ser2net rig).
    #[arg(long, env = "MIMML_PORT")]
    pub(crate) port: String,
    /// Baud rate of a UART link (USB CDC-ACM and pseudo-terminals ignore it).
    #[arg(long, default_value_t = 115_200)]
    pub(crate) baud: u32,
}

#[derive(Args, Debug, Clone)]
pub(crate) struct DbArgs {
    /// Results database: an SQLite file, or postgres://USER@HOST/DB (a fleet's central database;
    /// `?sslmode=require` for TLS, the password from the URL, PGPASSWORD is not read).
    #[arg(long, env = "MIMML_DB", default_value = "mimml.db")]
    pub(crate) db: Target,
}

#[derive(Subcommand, Debug)]
pub(crate) enum Cmd {
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
pub(crate) struct TranscriptArgs {
    /// The transcript's format: daic (DAIC-WOZ TSV), vtt (WebVTT), srt, whisper (whisper /
    /// faster-whisper JSON), plain (one utterance a line, no times). Default: by the file's
    /// extension, else its content.
    #[arg(long = "transcript-format", value_parser = parse_transcript_format)]
    pub(crate) format: Option<features::transcript::Format>,
    /// The participant's name as the transcript writes it (a WebVTT voice, a caption label, a
    /// diarised speaker); the other speakers' lines are the interviewer's and stay out of the
    /// text features. Needed when the file names several speakers.
    #[arg(long)]
    pub(crate) participant: Option<String>,
}

impl TranscriptArgs {
    pub(crate) fn read(&self, path: &Path) -> anyhow::Result<Vec<features::text::Utterance>> {
        let speakers = features::transcript::Speakers { participant: self.participant.clone() };
        Ok(features::transcript::read(path, self.format, &speakers)?)
    }
}

fn parse_transcript_format(s: &str) -> Result<features::transcript::Format, String> {
    s.parse()
}

#[derive(Subcommand, Debug)]
pub(crate) enum TranscriptCmd {
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
pub(crate) enum SessionCmd {
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
pub(crate) enum KeysCmd {
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
pub(crate) enum BundleCmd {
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
pub(crate) enum ModelCmd {
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
