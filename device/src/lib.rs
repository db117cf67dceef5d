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
//!                        (frames → vision: face, 68 landmarks)
//!                        models::Model::predict (tract, verified MIMML bundle)
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

/// The MIMML bundle committed in the repository (trained on the synthetic corpus).
pub fn bundled_model_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../assets/model/mimml-synth")
}

/// Loads and verifies a model bundle (hashes, feature schema, inputs, golden self-test); with
/// no bundle, the placeholder model, loudly.
pub fn load_model(bundle: Option<&Path>) -> Result<Box<dyn models::Model>, models::ModelError> {
    match bundle {
        Some(dir) => {
            let b = models::onnx::Bundle::open(dir)?;
            tracing::info!(model = %b.manifest.model_version, dir = %dir.display(), "model bundle verified (self-test passed)");
            Ok(Box::new(b.model))
        }
        None => {
            tracing::warn!("no model bundle: results come from the placeholder model and are flagged as such");
            Ok(Box::new(models::PlaceholderModel::default()))
        }
    }
}

/// The voice-activity detector: silero-vad from `path`, or from where
/// `scripts/install_silero_vad.sh` puts it when `path` is `None`. An explicit path that does not
/// load is an error; a missing default install falls back to the energy detector (`None`),
/// logged.
pub fn load_vad(path: Option<&Path>) -> Result<Option<Box<dyn features::vad::VoiceActivity>>, models::ModelError> {
    let (path, explicit) = match path {
        Some(p) => (p.to_owned(), true),
        None => (models::vad::default_path(), false),
    };
    if !explicit && !path.exists() {
        tracing::info!(
            "silero-vad not installed at {} (scripts/install_silero_vad.sh): energy-based voice activity",
            path.display()
        );
        return Ok(None);
    }
    match models::vad::SileroVad::load(&path) {
        Ok(v) => Ok(Some(Box::new(v))),
        Err(e) if !explicit => {
            tracing::warn!("{e}; energy-based voice activity instead");
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// The sentence encoder `model` was trained with: none for the built-in hashed embedding,
/// all-MiniLM-L6-v2 from `dir` (default: where `scripts/install_minilm.sh` puts it) for a model
/// trained on MiniLM text features. A model that needs an encoder which does not load is an
/// error here, before any session.
pub fn load_text_encoder(
    model: &dyn models::Model,
    dir: Option<&Path>,
) -> Result<Option<Box<dyn features::text::SentenceEncoder>>, models::ModelError> {
    use features::text::TextEmbedding;
    match model.text_embedding() {
        TextEmbedding::Hashed => Ok(None),
        TextEmbedding::MiniLm => {
            let dir = dir.map_or_else(models::minilm::default_dir, Path::to_owned);
            let started = std::time::Instant::now();
            let m = models::minilm::MiniLm::load(&dir).map_err(|e| {
                models::ModelError::TextEncoder(format!(
                    "the model was trained on all-MiniLM-L6-v2 text features: {e} (install it with scripts/install_minilm.sh)"
                ))
            })?;
            tracing::info!(seconds = started.elapsed().as_secs_f32(), dir = %dir.display(), "all-MiniLM-L6-v2 loaded");
            Ok(Some(Box::new(m)))
        }
    }
}

/// The face front-end: OpenCV's Haar cascade committed in `vision` (or `cascade`) and dlib's
/// 68-point model from `predictor`, or from where `scripts/install_landmark_model.sh` puts it.
/// An explicit path that does not load is an error; a missing default install means no
/// landmarker (`None`, logged), and results then report video as absent.
pub fn load_face(
    cascade: Option<&Path>,
    predictor: Option<&Path>,
) -> Result<Option<vision::face::FaceFrontEnd>, vision::VisionError> {
    let cascade = cascade.map_or_else(vision::default_cascade, Path::to_owned);
    let (predictor, explicit) = match predictor {
        Some(p) => (p.to_owned(), true),
        None => (vision::default_predictor(), false),
    };
    if !explicit && !predictor.exists() {
        tracing::info!(
            "landmark model not installed at {} (scripts/install_landmark_model.sh): video will be absent",
            predictor.display()
        );
        return Ok(None);
    }
    let started = std::time::Instant::now();
    let face = vision::face::FaceFrontEnd::load(&cascade, &predictor, vision::face::FaceConfig::default())?;
    tracing::info!(seconds = started.elapsed().as_secs_f32(), "face detector and landmark model loaded");
    Ok(Some(face))
}

/// A simulated device: file sources from `session_dir`, the committed MIMML bundle, LEDs to
/// the log.
pub fn simulated(data_dir: &Path, session_dir: &Path) -> anyhow::Result<Device> {
    simulated_with_model(data_dir, session_dir, &bundled_model_dir())
}

/// [`simulated`] with the model bundle in `bundle_dir`.
pub fn simulated_with_model(data_dir: &Path, session_dir: &Path, bundle_dir: &Path) -> anyhow::Result<Device> {
    let board = Board::by_name("sim")?;
    let capture = capture::SimulatedCapture::new(session_dir)?;
    let model = load_model(Some(bundle_dir))?;
    let text_encoder = load_text_encoder(model.as_ref(), None)?;
    Ok(Device::open(
        DeviceConfig { data_dir: data_dir.to_owned(), board, simulated: true },
        model,
        Box::new(capture),
        Box::new(LogKiosk::default()),
    )?
    .with_text_encoder(text_encoder)?
    .with_vad(load_vad(None)?)
    .with_face(load_face(None, None)?))
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
