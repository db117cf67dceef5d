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
//!                        runtime::Model::predict (tract, verified MIMML bundle)
//!                                               ▼
//!                        ResultLog (append + fsync) ──► Sync/Ack to the host
//! ```
//!
//! * [`daemon::Device`]: the device's loop — one [`daemon::Event`] enum (host request, screen
//!   tap, button press, finished session, clock tick) matched in one place.
//! * [`server::Server`]: the wire — hello gating, the host's key, the reply cache, dispatch.
//! * [`session::Sessions`]: the session lifecycle (start, words, stop, status, sync), for a
//!   session started by the host or on the device; stopped sessions are computed on a worker.
//! * [`pipeline::SessionPipeline`]: captured media + utterances → `ResultRecord` (front-ends,
//!   face tracking, flags, model).
//! * [`capture`]: the seam to capture hardware, with the simulated file backend.
//! * [`log::ResultLog`]: the durable result log.
//! * [`state::DeviceState`]: device id, session counter, host's sync acknowledgement.
//! * [`models::ModelStore`]: the factory model, two slots for flashed bundles, the resumable
//!   upload and the trial, over [`storage::Storage`] (the file operations, faults injectable).
//! * [`pairing::Pairings`]: the paired hosts and the pairing codes.
//! * [`DeviceThread`]: a device served on a thread (the demo and the tests).
//!
//! Architecture invariants: only a host that proved a paired key on its connection reaches
//! sessions, results or models; a model serves only if it is signed by a trusted key, whole and
//! passed its self-test; a result is reported `Done` only after it is in the log and synced
//! to disk; raw audio and video never leave the device (no message carries them); every result
//! carries the model version and feature-schema hash; the device links the inference runtime
//! only, never a training library or corpus format (`.ci/run` checks with `cargo tree`).

pub mod capture;
pub mod daemon;
pub mod kiosk;
pub mod log;
pub mod models;
pub mod pairing;
pub mod pipeline;
pub mod retention;
pub mod server;
pub mod session;
pub mod state;
pub mod storage;
pub mod watchdog;

pub use daemon::{Device, Event};
pub use pipeline::{Pipeline, SessionPipeline};
pub use server::{Server, ServerConfig};
pub use session::Sessions;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use boards::{Board, LogPanel, Panel};

/// Why the device could not start.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    /// The data directory could not be created.
    #[error("cannot create data directory {path}")]
    DataDir {
        /// The directory.
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The persistent state could not be read or written.
    #[error(transparent)]
    State(#[from] state::StateError),
    /// The result log could not be opened.
    #[error(transparent)]
    Log(#[from] log::LogError),
    /// The session worker thread could not be started.
    #[error("cannot start the session worker")]
    Worker(#[source] std::io::Error),
    /// The model store could not be opened.
    #[error(transparent)]
    Models(#[from] models::StoreError),
    /// No model loads: not the confirmed one, not the factory one.
    #[error("no model loads")]
    Model(#[source] runtime::ModelError),
    /// The paired hosts could not be read.
    #[error(transparent)]
    Pairing(#[from] pairing::PairingError),
    /// The pipeline could not be assembled around the model.
    #[error("cannot assemble the session pipeline")]
    Pipeline(#[source] BoxError),
    /// The board definition could not be read.
    #[error(transparent)]
    Board(#[from] boards::BoardError),
    /// The capture could not be set up.
    #[error(transparent)]
    Capture(#[from] capture::CaptureError),
    /// A front-end model named explicitly does not load.
    #[error("a front-end model does not load")]
    FrontEnd(#[source] BoxError),
}

/// Why a device thread could not start, or stopped on an error.
#[derive(Debug, thiserror::Error)]
pub enum ThreadError {
    /// The in-process host has no key.
    #[error("no key for the in-process host")]
    Key(#[source] runtime::signing::SignatureError),
    /// The in-process host's key could not be paired.
    #[error(transparent)]
    Pairing(#[from] pairing::PairingError),
    /// The thread could not be started.
    #[error("cannot start the device thread")]
    Spawn(#[source] std::io::Error),
    /// The thread panicked (a defect).
    #[error("the device thread panicked")]
    Panicked,
    /// The device stopped on a link error.
    #[error("the device's link failed")]
    Link(#[from] link::LinkError),
    /// The simulated device could not be opened.
    #[error("cannot open the simulated device")]
    Device(#[source] Box<DeviceError>),
}

/// A device error a host is told of. Each error type a request can end in —
/// [`session::SessionError`], [`models::StoreError`], [`pairing::PairingError`] — maps its own
/// variants to the protocol's codes beside their definitions (a match the compiler holds to
/// every variant), and `server` turns any of them into the one refusal reply: the code, and the
/// error with its causes as the detail.
pub trait Refusal: std::error::Error {
    /// The protocol's code for this error.
    fn code(&self) -> protocol::ErrorCode;
}

/// Any error, boxed.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A model ready to compute sessions, with the sentence encoder its text features need.
pub struct LoadedModel {
    /// The model.
    pub model: Box<dyn runtime::Model>,
    /// all-MiniLM-L6-v2 for a model trained on it; none for the hashed embedding.
    pub text_encoder: Option<Box<dyn features::text::SentenceEncoder>>,
}

impl std::fmt::Debug for LoadedModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedModel").field("model", &self.model.version()).finish_non_exhaustive()
    }
}

/// Loads a bundle folder, or the factory model for `None`, verified and with its encoder.
pub type ModelLoader = Box<dyn Fn(Option<&Path>) -> Result<LoadedModel, runtime::ModelError> + Send>;

/// The loader of a device installed with the bundle `factory` (the placeholder without one),
/// taking all-MiniLM-L6-v2 from `text_encoder` (or its default install) for models that need it.
pub fn model_loader(factory: Option<PathBuf>, text_encoder: Option<PathBuf>) -> ModelLoader {
    Box::new(move |dir| {
        let model = load_model(dir.or(factory.as_deref()))?;
        let text_encoder = load_text_encoder(model.as_ref(), text_encoder.as_deref())
            .map_err(|e| runtime::ModelError::TextEncoderMissing(e.into()))?;
        Ok(LoadedModel { model, text_encoder })
    })
}

/// How the device takes models: what it trusts and allows, and how it loads one.
pub struct ModelSetup {
    /// Keys, downgrade, self-confirmation.
    pub policy: models::StorePolicy,
    /// Loads a bundle (or the factory model).
    pub loader: ModelLoader,
}

impl std::fmt::Debug for ModelSetup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModelSetup").field("policy", &self.policy).finish_non_exhaustive()
    }
}

impl ModelSetup {
    /// The committed-bundle setup of the simulated device and the tests: `factory` as the
    /// installed model, bundles signed by `trusted` taken, MiniLM from its default install.
    pub fn new(factory: Option<PathBuf>, trusted: runtime::signing::TrustedKeys) -> ModelSetup {
        ModelSetup {
            policy: models::StorePolicy {
                trusted,
                minilm_available: runtime::minilm::default_dir().join("tokenizer.json").exists(),
                ..models::StorePolicy::default()
            },
            loader: model_loader(factory, None),
        }
    }
}

/// Opens the model store and loads the model that serves: the one on trial (reverted to the
/// confirmed one when it does not load: its self-test failed), the confirmed one, or the
/// factory one.
fn open_models(dir: &Path, setup: ModelSetup) -> Result<(models::ModelStore, ModelLoader, LoadedModel), DeviceError> {
    let mut store = models::ModelStore::open(dir, setup.policy, Box::new(storage::FsStorage))?;
    let loader = setup.loader;
    let loaded = loop {
        let serving = store.serving();
        match loader(serving.dir()) {
            Ok(loaded) => {
                tracing::info!(model = loaded.model.version(), serving = ?serving, "model loaded");
                break loaded;
            }
            Err(e) => match &serving {
                models::Serving::Trial(_) => {
                    store.rollback(&format!("it does not load: {}", runtime::chain(&e)))?;
                }
                models::Serving::Confirmed(dir) => {
                    tracing::error!(
                        dir = %dir.display(),
                        "the confirmed model does not load ({}): the factory model serves",
                        runtime::chain(&e)
                    );
                    break loader(None).map_err(DeviceError::Model)?;
                }
                models::Serving::Factory => return Err(DeviceError::Model(e)),
            },
        }
    };
    Ok((store, loader, loaded))
}

/// Where the device keeps its data and what it runs on.
#[derive(Debug, Clone)]
pub struct DeviceConfig {
    /// State and result log.
    pub data_dir: PathBuf,
    /// The board.
    pub board: Board,
    /// Inputs come from files (`--simulate`): results are flagged as simulated.
    pub simulated: bool,
}

/// Opens the data directory (state, result log, model store, paired hosts) and assembles a
/// device: sessions over `capture`, computed by the pipeline `pipeline` makes around the model
/// that serves, driven by the returned [`Device`]'s loop.
pub fn open(
    cfg: DeviceConfig,
    capture: Box<dyn capture::Capture>,
    panel: Box<dyn Panel>,
    models: ModelSetup,
    pipeline: impl FnOnce(LoadedModel) -> Result<Box<dyn Pipeline>, BoxError>,
) -> Result<Device, DeviceError> {
    std::fs::create_dir_all(&cfg.data_dir)
        .map_err(|source| DeviceError::DataDir { path: cfg.data_dir.clone(), source })?;
    let data = state::DataDir::lock(&cfg.data_dir)?;
    let serial = cfg.board.serial.as_deref().map(state::read_serial).transpose()?;
    let log_path = cfg.data_dir.join("results.log");
    let (state, identity) = state::DeviceState::establish(&cfg.data_dir, &log_path, serial.as_deref())?;
    match &identity {
        state::Identity::Cloned { previous_id, kept_aside } => tracing::error!(
            device_id = %state.device_id,
            previous_id = %previous_id,
            kept_aside = ?kept_aside,
            "this data directory was made on another board (an imaged card): this board takes its own id and \
             starts its own log; the copied results stay with the id they were made under and are not served"
        ),
        state::Identity::Recovered => tracing::warn!(
            device_id = %state.device_id,
            "state.toml was missing: the id was derived again from the hardware serial and the log's numbering \
             continues"
        ),
        state::Identity::Fresh | state::Identity::Stored => {}
    }
    let log = log::ResultLog::open(&log_path, state.last_seq.max(state.acked), state.acked)?;
    let (store, loader, loaded) = open_models(&cfg.data_dir.join("models"), models)?;
    let pairings = pairing::Pairings::open(&cfg.data_dir)?;
    let pipeline = pipeline(loaded).map_err(DeviceError::Pipeline)?;
    let sessions = Sessions::new(data, state, log, capture, panel, pipeline).map_err(DeviceError::Worker)?;
    let models = server::Models { store, loader };
    let cfg = ServerConfig { board: cfg.board, simulated: cfg.simulated };
    Ok(Device::new(server::Parts { cfg, sessions, models, pairings }))
}

/// The MIMML bundle shipped with the software (trained on the synthetic corpus): `model/` of
/// the assets folder ([`features::assets`]).
pub fn bundled_model_dir() -> std::path::PathBuf {
    features::assets::dir().join("model/mimml-synth")
}

/// Loads and verifies a model bundle (hashes, feature schema, inputs, golden self-test); with
/// no bundle, the placeholder model, loudly.
pub fn load_model(bundle: Option<&Path>) -> Result<Box<dyn runtime::Model>, runtime::ModelError> {
    match bundle {
        Some(dir) => {
            let b = runtime::bundle::Bundle::open(dir)?;
            tracing::info!(model = %b.manifest.model_version, dir = %dir.display(), "model bundle verified (self-test passed)");
            Ok(Box::new(b.model))
        }
        None => {
            tracing::warn!("no model bundle: results come from the placeholder model and are flagged as such");
            Ok(Box::new(runtime::PlaceholderModel::default()))
        }
    }
}

/// The voice-activity detector: silero-vad from `path`, or from where
/// `scripts/install_silero_vad.sh` puts it when `path` is `None`, loaded the first time a
/// session needs it ([`LazyVad`]). An explicit path that does not exist is an error; a missing
/// default install falls back to the energy detector (`None`), logged.
pub fn load_vad(path: Option<&Path>) -> Result<Option<Box<dyn features::vad::VoiceActivity>>, runtime::ModelError> {
    let (path, explicit) = match path {
        Some(p) => (p.to_owned(), true),
        None => (runtime::vad::default_path(), false),
    };
    if !path.exists() {
        if explicit {
            let source = std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
            return Err(runtime::ModelError::Vad { path, source: source.into() });
        }
        tracing::info!(
            "silero-vad not installed at {} (scripts/install_silero_vad.sh): energy-based voice activity",
            path.display()
        );
        return Ok(None);
    }
    Ok(Some(Box::new(LazyVad { path, loaded: std::sync::OnceLock::new() })))
}

/// silero-vad, loaded when a session first needs it: only a session without participant turns
/// (no transcript, no answer windows) is segmented by voice activity, and the model takes 16 MiB
/// of a device's memory. One that does not load is logged once, and the energy detector serves.
#[derive(Debug)]
pub struct LazyVad {
    path: PathBuf,
    loaded: std::sync::OnceLock<Option<runtime::vad::SileroVad>>,
}

impl LazyVad {
    fn get(&self) -> Option<&runtime::vad::SileroVad> {
        self.loaded
            .get_or_init(|| {
                runtime::vad::SileroVad::load(&self.path)
                    .inspect(|_| tracing::info!(path = %self.path.display(), "silero-vad loaded"))
                    .inspect_err(|e| tracing::error!("{}; energy-based voice activity instead", runtime::chain(e)))
                    .ok()
            })
            .as_ref()
    }
}

impl features::vad::VoiceActivity for LazyVad {
    fn name(&self) -> &str {
        "silero-vad"
    }

    fn speech_probabilities(
        &self,
        clip: &features::audio::AudioClip,
    ) -> Result<features::vad::SpeechProbabilities, features::FeatureError> {
        match self.get() {
            Some(vad) => vad.speech_probabilities(clip),
            None => features::vad::EnergyVad.speech_probabilities(clip),
        }
    }
}

/// The sentence encoder `model` was trained with: none for the built-in hashed embedding,
/// all-MiniLM-L6-v2 from `dir` (default: where `scripts/install_minilm.sh` puts it) for a model
/// trained on MiniLM text features. A model that needs an encoder which does not load is an
/// error here, before any session.
pub fn load_text_encoder(
    model: &dyn runtime::Model,
    dir: Option<&Path>,
) -> Result<Option<Box<dyn features::text::SentenceEncoder>>, MissingTextEncoder> {
    use features::text::TextEmbedding;
    match model.text_embedding() {
        TextEmbedding::Hashed => Ok(None),
        TextEmbedding::MiniLm => {
            let dir = dir.map_or_else(runtime::minilm::default_dir, Path::to_owned);
            let started = std::time::Instant::now();
            let m = runtime::minilm::MiniLm::load(&dir).map_err(MissingTextEncoder)?;
            tracing::info!(seconds = started.elapsed().as_secs_f32(), dir = %dir.display(), "all-MiniLM-L6-v2 loaded");
            Ok(Some(Box::new(m)))
        }
    }
}

/// Whisper tiny.en from `dir` (default: where `scripts/install_whisper.sh` puts it), for the
/// text of sessions without a pushed transcript. A model that is missing or does not load is
/// logged and the device runs without transcription (text absent), never with a broken model.
pub fn load_transcriber(dir: Option<&Path>) -> Option<Box<dyn features::text::Transcriber>> {
    let dir = dir.map_or_else(runtime::whisper::default_dir, Path::to_owned);
    let started = std::time::Instant::now();
    match runtime::whisper::Whisper::load(&dir) {
        Ok(w) => {
            tracing::info!(
                seconds = started.elapsed().as_secs_f32(),
                dir = %dir.display(),
                encoder = w.backend(),
                "Whisper tiny.en loaded"
            );
            Some(Box::new(w))
        }
        Err(e) => {
            tracing::error!(
                "{}; running without transcription (text absent unless a transcript is pushed; \
                 install the model with scripts/install_whisper.sh)",
                runtime::chain(&e)
            );
            None
        }
    }
}

/// The model needs all-MiniLM-L6-v2 and it does not load.
#[derive(Debug, thiserror::Error)]
#[error(
    "the model was trained on all-MiniLM-L6-v2 text features, which could not be loaded \
     (install the encoder with scripts/install_minilm.sh)"
)]
pub struct MissingTextEncoder(#[source] pub runtime::ModelError);

/// The face front-end: dlib's HOG face detector committed in `vision` (or `detector`: another
/// dlib detector file, or an OpenCV cascade `.xml`) and dlib's
/// 68-point model from `predictor`, or from where `scripts/install_landmark_model.sh` puts it.
/// An explicit path that does not load is an error; a missing default install means no
/// landmarker (`None`, logged), and results then report video as absent.
pub fn load_face(
    detector: Option<&Path>,
    predictor: Option<&Path>,
) -> Result<Option<vision::face::FaceFrontEnd>, vision::VisionError> {
    let detector = detector.map_or_else(vision::default_detector, Path::to_owned);
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
    let face = vision::face::FaceFrontEnd::load(&detector, &predictor, vision::face::FaceConfig::default())?;
    tracing::info!(seconds = started.elapsed().as_secs_f32(), "face detector and landmark model loaded");
    Ok(Some(face))
}

/// The front-ends a session's pipeline runs around the model. Each is optional: without a
/// voice-activity model the energy detector segments, without a landmark model video is absent,
/// without a transcriber text comes from pushed transcripts only.
#[derive(Default)]
pub struct FrontEnds {
    /// silero-vad ([`load_vad`]).
    pub vad: Option<Box<dyn features::vad::VoiceActivity>>,
    /// Face detector and landmarks for frames the pipeline analyses ([`load_face`]); live
    /// capture takes its own along instead.
    pub face: Option<vision::face::FaceFrontEnd>,
    /// Whisper tiny.en ([`load_transcriber`]).
    pub transcriber: Option<Box<dyn features::text::Transcriber>>,
    /// How much of each modality a session needs.
    pub presence: pipeline::Presence,
}

impl std::fmt::Debug for FrontEnds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrontEnds")
            .field("vad", &self.vad.as_ref().map(|v| v.name().to_owned()))
            .field("face", &self.face.is_some())
            .field("transcriber", &self.transcriber.as_ref().map(|t| t.name().to_owned()))
            .field("presence", &self.presence)
            .finish()
    }
}

impl FrontEnds {
    /// The session pipeline around `loaded`.
    pub fn pipeline(self, loaded: LoadedModel, simulated: bool) -> Result<Box<dyn Pipeline>, BoxError> {
        tracing::info!(
            vad = self.vad.as_ref().map_or("energy", |v| v.name()),
            text_embedding = %loaded.model.text_embedding(),
            transcriber = self.transcriber.as_ref().map_or("none", |t| t.name()),
            "front-ends"
        );
        let pipeline = SessionPipeline::new(loaded.model, simulated)
            .with_transcriber(self.transcriber)
            .with_text_encoder(loaded.text_encoder)?
            .with_vad(self.vad)
            .with_face(self.face)
            .with_presence(self.presence);
        Ok(Box::new(pipeline))
    }
}

/// What the device does with sessions beyond computing them.
pub struct SessionRules {
    /// A host-started session with no request about it for this long is abandoned.
    pub abandon_after: std::time::Duration,
    /// How long acknowledged results stay and the free space a session needs, and where free
    /// space is read from; `None`: every result is kept, free space not checked.
    pub retention: Option<(retention::Retention, Box<dyn retention::FreeSpace>)>,
    /// Raw media of consenting kiosk patients are kept: (spool, kept media folder).
    pub media: Option<(PathBuf, PathBuf)>,
}

impl Default for SessionRules {
    fn default() -> Self {
        SessionRules { abandon_after: session::ABANDON_AFTER, retention: None, media: None }
    }
}

impl std::fmt::Debug for SessionRules {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionRules")
            .field("abandon_after", &self.abandon_after)
            .field("retention", &self.retention.as_ref().map(|(r, _)| r))
            .field("media", &self.media)
            .finish()
    }
}

/// Everything a device is made of. The daemon (`mimml-device run`) fills it in from its
/// command line, the simulated device ([`simulated_with`]) with defaults, and
/// [`open`](Setup::open) composes it: the one place a device is put together. Tests and
/// benches with a pipeline of their own use the lower [`open`](crate::open).
pub struct Setup {
    /// Data folder, board, simulated inputs.
    pub config: DeviceConfig,
    /// Microphone and camera, or the files standing in for them.
    pub capture: Box<dyn capture::Capture>,
    /// The board's button and LEDs.
    pub panel: Box<dyn Panel>,
    /// The model store's policy and the loader.
    pub models: ModelSetup,
    /// The pipeline's front-ends.
    pub front_ends: FrontEnds,
    /// Abandoning, retention, research media.
    pub rules: SessionRules,
    /// The kiosk, on a unit that runs sessions of its own.
    pub kiosk: Option<kiosk::Kiosk>,
}

impl std::fmt::Debug for Setup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Setup")
            .field("config", &self.config)
            .field("models", &self.models)
            .field("front_ends", &self.front_ends)
            .field("rules", &self.rules)
            .field("kiosk", &self.kiosk)
            .finish_non_exhaustive()
    }
}

impl Setup {
    /// Opens the data folder and assembles the device.
    pub fn open(self) -> Result<Device, DeviceError> {
        let Setup { config, mut capture, panel, models, front_ends, rules, kiosk } = self;
        let simulated = config.simulated;
        // A live microphone is analysed as it records; the answers' samples are kept for the
        // transcriber.
        capture.keep_answers(front_ends.transcriber.is_some());
        let mut device = open(config, capture, panel, models, |loaded| front_ends.pipeline(loaded, simulated))?;
        let sessions = device.sessions();
        sessions.set_abandon_after(rules.abandon_after);
        if let Some((retention, space)) = rules.retention {
            sessions.set_retention(retention, space);
        }
        if let Some((spool, media)) = rules.media {
            tracing::warn!(
                spool = %spool.display(),
                media = %media.display(),
                "raw media of sessions whose patient consented to research are kept"
            );
            sessions.keep_media(spool, media);
        }
        if let Some(k) = kiosk {
            device.set_kiosk(k);
        }
        Ok(device)
    }
}

/// A simulated device: file sources from `session_dir`, the committed MIMML bundle, LEDs to
/// the log.
pub fn simulated(data_dir: &Path, session_dir: &Path) -> Result<Device, DeviceError> {
    simulated_with_model(data_dir, session_dir, &bundled_model_dir())
}

/// [`simulated`] with the model bundle in `bundle_dir` installed as its factory model.
pub fn simulated_with_model(data_dir: &Path, session_dir: &Path, bundle_dir: &Path) -> Result<Device, DeviceError> {
    simulated_with(
        data_dir,
        session_dir,
        ModelSetup::new(Some(bundle_dir.to_owned()), runtime::signing::TrustedKeys::default()),
    )
}

/// [`simulated`] with a model setup of the caller's (trusted keys, factory model).
pub fn simulated_with(data_dir: &Path, session_dir: &Path, models: ModelSetup) -> Result<Device, DeviceError> {
    Setup {
        config: DeviceConfig { data_dir: data_dir.to_owned(), board: Board::by_name("sim")?, simulated: true },
        capture: Box::new(capture::SimulatedCapture::new(session_dir)?),
        panel: Box::new(LogPanel::default()),
        models,
        front_ends: FrontEnds {
            vad: load_vad(None).map_err(|e| DeviceError::FrontEnd(e.into()))?,
            face: load_face(None, None).map_err(|e| DeviceError::FrontEnd(e.into()))?,
            ..FrontEnds::default()
        },
        rules: SessionRules::default(),
        kiosk: None,
    }
    .open()
}

/// Serves on an already open port until `stop` is set or the link fails.
pub fn serve_port<P: std::io::Read + std::io::Write>(
    server: &mut Device,
    port: P,
    stop: &AtomicBool,
) -> Result<(), link::LinkError> {
    let mut link = link::FramedLink::new(port);
    server.serve(&mut link, stop)
}

/// A device served on a thread of its own, on one end of a port (a pty pair in the demo and the
/// tests). Its host lives in the same process: the device pairs a fresh key for it
/// ([`host_key`](Self::host_key)) and forgets it again when it stops. Dropping it stops the
/// device.
#[derive(Debug)]
pub struct DeviceThread {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Result<Device, link::LinkError>>>,
    host_key: ed25519_dalek::SigningKey,
}

impl DeviceThread {
    /// A [`simulated`] device with data in `data_dir`, inputs from `session_dir`, serving `port`.
    pub fn simulated<P: std::io::Read + std::io::Write + Send + 'static>(
        data_dir: &Path,
        session_dir: &Path,
        port: P,
    ) -> Result<DeviceThread, ThreadError> {
        let device = simulated(data_dir, session_dir).map_err(|e| ThreadError::Device(Box::new(e)))?;
        Self::serve(device, port)
    }

    /// Serves `port` with a device of the caller's making.
    pub fn serve<P: std::io::Read + std::io::Write + Send + 'static>(
        server: Device,
        port: P,
    ) -> Result<DeviceThread, ThreadError> {
        Self::serve_with_key(server, port, runtime::signing::generate().map_err(ThreadError::Key)?)
    }

    /// [`serve`](Self::serve) for the host holding `host_key` (a device restarted under the
    /// same host).
    pub fn serve_with_key<P: std::io::Read + std::io::Write + Send + 'static>(
        mut server: Device,
        port: P,
        host_key: ed25519_dalek::SigningKey,
    ) -> Result<DeviceThread, ThreadError> {
        let public = host_key.verifying_key().to_bytes();
        server.pairings().add(public, "host in the device's process")?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new().name("device".into()).spawn(move || {
            let served = serve_port(&mut server, port, &flag);
            if let Err(e) = server.pairings().remove(&public) {
                tracing::warn!("the in-process host's key stays paired: {e}");
            }
            served.map(|()| server)
        });
        let thread = thread.map_err(ThreadError::Spawn)?;
        Ok(DeviceThread { stop, thread: Some(thread), host_key })
    }

    /// The key of the host in this process, paired with the device while it runs.
    pub fn host_key(&self) -> ed25519_dalek::SigningKey {
        self.host_key.clone()
    }

    /// Stops the device and hands it back for inspection; a link error it stopped on is
    /// returned instead.
    pub fn stop(mut self) -> Result<Device, ThreadError> {
        self.stop.store(true, Ordering::Relaxed);
        // Taken only here and in `drop`: a thread that is not there panicked while being joined.
        let t = self.thread.take().ok_or(ThreadError::Panicked)?;
        Ok(t.join().map_err(|_| ThreadError::Panicked)??)
    }
}

impl Drop for DeviceThread {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
