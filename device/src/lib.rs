//! # device — the MIMML screening device
//!
//! Data flow inside the device:
//!
//! ```text
//!  Capture (mic + camera, or --simulate files) ─┐
//!  TranscriptChunks from the host ──────────────┤
//!                                               ▼
//!                        features (audio, video, text front-ends)
//!                                               ▼
//!                        models::Model::predict (placeholder until MIMML lands)
//!                                               ▼
//!                        ResultLog (append + fsync) ──► Sync/Ack to the host
//! ```
//!
//! * [`server::Device`]: the protocol state machine and serve loop.
//! * [`capture`]: the seam to capture hardware, with the simulated file backend.
//! * [`log::ResultLog`]: the durable result log.
//! * [`state::DeviceState`]: device id, session counter, host's sync acknowledgement.
//!
//! Invariants: a result is answered to the host only after it is in the log and synced to disk;
//! raw audio and video never leave the device (no message carries them); every result carries
//! the model version and feature-schema hash.

pub mod capture;
pub mod log;
pub mod server;
pub mod state;

pub use server::{Device, DeviceConfig, DeviceError};

use std::path::Path;
use std::sync::atomic::AtomicBool;

use boards::{Board, LogKiosk};

/// A simulated device: file sources from `session_dir`, the placeholder model, LEDs to the log.
pub fn simulated(data_dir: &Path, session_dir: &Path) -> anyhow::Result<Device> {
    let board = Board::by_name("sim")?;
    let capture = capture::SimulatedCapture::new(session_dir)?;
    Ok(Device::open(
        DeviceConfig { data_dir: data_dir.to_owned(), board, simulated: true },
        Box::new(models::PlaceholderModel::default()),
        Box::new(capture),
        Box::new(LogKiosk::default()),
    )?)
}

/// Serves on an already open port until `stop` is set or the link fails.
pub fn serve_port<P: std::io::Read + std::io::Write>(
    device: &mut Device,
    port: P,
    stop: &AtomicBool,
) -> Result<(), DeviceError> {
    let mut link = link::FramedLink::new(port);
    device.serve(&mut link, stop)
}
