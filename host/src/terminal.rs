//! What the clinic's command-line programs (`mimml`, `mimml-demo`) print on a terminal: lines to
//! stdout that end quietly on a closed pipe, logging to stderr, and progress bars over a session
//! and a sync.

use std::io::{Read, Write};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use protocol::Modalities;

use crate::client::DeviceClient;
use crate::db::ResultsDb;
use crate::session::{self, SessionError, SessionOutcome};
use crate::sync::{self, SyncError, SyncReport};

/// A line to stdout. A closed pipe (`mimml results --json | grep -q …`, `| head`) ends the
/// program quietly with success, as Unix filters do, instead of panicking in `println!`.
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let written = writeln!(std::io::stdout().lock(), $($arg)*);
        $crate::terminal::stdout_written(written);
    }};
}

/// [`out!`] without the newline.
#[macro_export]
macro_rules! out_raw {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let written = write!(std::io::stdout().lock(), $($arg)*);
        $crate::terminal::stdout_written(written);
    }};
}

/// Ends the program on a failed write to stdout: quietly with success on a closed pipe, else
/// with the reason. Called by [`out!`].
pub fn stdout_written(written: std::io::Result<()>) {
    match written {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        Err(e) => {
            eprintln!("cannot write to stdout: {e}");
            std::process::exit(1)
        }
    }
}

/// Logs to stderr: warnings by default, `-v` info, `-vv` debug; `RUST_LOG` overrides.
pub fn init_logging(verbose: u8) {
    let level = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| level.into()))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

/// [`session::run_session`] with a bar over the transcript push, then a spinner while the
/// device computes the result.
pub fn run_with_progress<P: Read + Write>(
    client: &mut DeviceClient<P>,
    utterances: &[features::text::Utterance],
    label: &str,
    modalities: Modalities,
) -> Result<SessionOutcome, SessionError> {
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
    outcome
}

/// [`sync::sync`] with a bar over the device's results.
pub fn sync_with_progress<P: Read + Write>(
    client: &mut DeviceClient<P>,
    db: &mut ResultsDb,
    device_id: &str,
) -> Result<SyncReport, SyncError> {
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
    r
}
