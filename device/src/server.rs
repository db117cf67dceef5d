//! The device's side of the protocol: one request in, one response out.
//!
//! [`Device::handle`] is a pure state machine over [`HostFrame`]s (tests drive it directly);
//! [`Device::serve`] runs it over a [`FramedLink`] until told to stop.
//!
//! A request re-sent after a lost reply carries the same id; the device answers it from a small
//! reply cache instead of executing it again, so a retried `SessionStop` never computes or logs
//! a second result.

use std::collections::{BTreeMap, VecDeque};
use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use boards::{Board, Kiosk, Led};
use features::SessionInputs;
use features::text::{Speaker, Utterance};
use link::{FramedLink, LinkError};
use models::Model;
use protocol::*;

use crate::capture::{Capture, Video};
use crate::log::{LogError, ResultLog};
use crate::state::{DeviceState, StateError};

/// Replies remembered for duplicate requests.
const REPLY_CACHE: usize = 32;
/// Finished sessions whose status is remembered (for a retried stop or a late status query).
const FINISHED_KEPT: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error(transparent)]
    Log(#[from] LogError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Link(#[from] LinkError),
    #[error("the model needs the {needs} text embedding, the device has {has}")]
    TextEncoder { needs: features::text::TextEmbedding, has: features::text::TextEmbedding },
    #[error("cannot create data directory {path}: {source}")]
    DataDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

#[derive(Debug, Clone)]
pub struct DeviceConfig {
    pub data_dir: PathBuf,
    pub board: Board,
    /// Inputs come from files (`--simulate`): results are flagged as simulated.
    pub simulated: bool,
}

#[derive(Debug, Default)]
struct PendingUtterance {
    start_ms: u32,
    end_ms: u32,
    speaker: Option<Speaker>,
    text: String,
    next_part: u16,
    complete: bool,
}

#[derive(Debug)]
struct ActiveSession {
    id: SessionId,
    label: ShortStr,
    started_ms: u64,
    /// Device clock offset to the host's wall clock at session start.
    clock: Instant,
    utterances: BTreeMap<u32, PendingUtterance>,
}

pub struct Device {
    cfg: DeviceConfig,
    state: DeviceState,
    log: ResultLog,
    model: Box<dyn Model>,
    capture: Box<dyn Capture>,
    kiosk: Box<dyn Kiosk>,
    session: Option<ActiveSession>,
    finished: VecDeque<SessionStatus>,
    replies: VecDeque<(RequestId, Response)>,
    hello: bool,
    /// Segments audio into utterances when the transcript has no timing (energy when `None`).
    vad: Option<Box<dyn features::vad::VoiceActivity>>,
    /// The text features' sentence encoder when the model was trained with one.
    text_encoder: Option<Box<dyn features::text::SentenceEncoder>>,
    /// Frames → landmarks; without it video is reported absent.
    face: Option<vision::face::FaceFrontEnd>,
}

impl std::fmt::Debug for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Device")
            .field("device_id", &self.state.device_id)
            .field("board", &self.cfg.board.name)
            .field("model", &self.model.version())
            .field("results", &self.log.len())
            .finish_non_exhaustive()
    }
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

fn err(code: ErrorCode, detail: &str) -> Response {
    Response::Error(Error::new(code, detail))
}

impl Device {
    /// Opens the data directory (state and result log) and assembles a device.
    pub fn open(
        cfg: DeviceConfig,
        model: Box<dyn Model>,
        capture: Box<dyn Capture>,
        mut kiosk: Box<dyn Kiosk>,
    ) -> Result<Device, DeviceError> {
        std::fs::create_dir_all(&cfg.data_dir)
            .map_err(|source| DeviceError::DataDir { path: cfg.data_dir.clone(), source })?;
        let state = DeviceState::load_or_create(&cfg.data_dir)?;
        let log = ResultLog::open(&cfg.data_dir.join("results.log"))?;
        if let Err(e) = kiosk.show(Led::Ready) {
            tracing::warn!("kiosk LEDs unavailable: {e}");
        }
        tracing::info!(
            device_id = %state.device_id,
            board = %cfg.board.name,
            model = model.version(),
            results = log.len(),
            "device ready"
        );
        Ok(Device {
            cfg,
            state,
            log,
            model,
            capture,
            kiosk,
            session: None,
            finished: VecDeque::new(),
            replies: VecDeque::new(),
            hello: false,
            vad: None,
            text_encoder: None,
            face: None,
        })
    }

    /// Uses `face` to turn captured frames into landmarks (video is absent without one).
    pub fn with_face(mut self, face: Option<vision::face::FaceFrontEnd>) -> Self {
        if face.is_none() {
            tracing::warn!("no face landmarker: video will be reported absent");
        }
        self.face = face;
        self
    }

    /// Uses `encoder` for the text features. It must be the embedding the model was trained
    /// with (none = the built-in hashed one); anything else is refused before any session runs.
    pub fn with_text_encoder(
        mut self,
        encoder: Option<Box<dyn features::text::SentenceEncoder>>,
    ) -> Result<Self, DeviceError> {
        use features::text::TextEmbedding;
        let has = encoder.as_ref().map_or(TextEmbedding::Hashed, |e| e.embedding());
        let needs = self.model.text_embedding();
        if has != needs {
            return Err(DeviceError::TextEncoder { needs, has });
        }
        tracing::info!(text_embedding = %has, "text features");
        self.text_encoder = encoder;
        Ok(self)
    }

    /// Uses `vad` to segment audio whose transcript has no timing.
    pub fn with_vad(mut self, vad: Option<Box<dyn features::vad::VoiceActivity>>) -> Self {
        tracing::info!(vad = vad.as_ref().map_or("energy", |v| v.name()), "voice activity detector");
        self.vad = vad;
        self
    }

    pub fn device_id(&self) -> &str {
        &self.state.device_id
    }

    pub fn log(&self) -> &ResultLog {
        &self.log
    }

    /// Serves requests from `link` until `stop` is set. Returns on a link I/O error.
    pub fn serve<P: Read + Write>(&mut self, link: &mut FramedLink<P>, stop: &AtomicBool) -> Result<(), DeviceError> {
        while !stop.load(Ordering::Relaxed) {
            if let Some(frame) = link.recv::<HostFrame>(Instant::now() + Duration::from_millis(100))? {
                let reply = self.handle(frame);
                link.send(&reply)?;
            }
        }
        Ok(())
    }

    /// Handles one request.
    pub fn handle(&mut self, frame: HostFrame) -> DeviceFrame {
        let HostFrame { id, req } = frame;
        if let Some((_, cached)) = self.replies.iter().find(|(rid, _)| *rid == id) {
            tracing::debug!(id, "duplicate request, answering from the reply cache");
            return DeviceFrame { id, resp: cached.clone() };
        }
        let is_hello = matches!(req, Request::Hello(_));
        let resp = self.dispatch(req);
        if is_hello {
            // A new host connection: ids from an earlier connection mean nothing now.
            self.replies.clear();
        }
        if self.replies.len() == REPLY_CACHE {
            self.replies.pop_front();
        }
        self.replies.push_back((id, resp.clone()));
        DeviceFrame { id, resp }
    }

    fn dispatch(&mut self, req: Request) -> Response {
        match req {
            Request::Hello(h) => self.hello(h),
            _ if !self.hello => err(ErrorCode::HelloFirst, "send Hello first"),
            Request::Ping(n) => Response::Pong(n),
            Request::SessionStart(s) => self.session_start(s),
            Request::TranscriptChunk(c) => self.transcript_chunk(c),
            Request::SessionStop(id) => self.session_stop(id),
            Request::SessionStatus(id) => self.session_status(id),
            Request::Sync(c) => self.sync(c),
            Request::SyncAck(a) => self.sync_ack(a),
            Request::UploadBegin(_)
            | Request::UploadChunk(_)
            | Request::UploadStatus
            | Request::UploadCommit
            | Request::UploadConfirm
            | Request::UploadRollback => {
                err(ErrorCode::NotImplemented, "model upload is not in this firmware yet (model-flashing issue)")
            }
        }
    }

    pub fn info(&self) -> DeviceInfo {
        let mut slots = protocol::heapless::Vec::new();
        let version: ShortStr = truncated(self.model.version());
        let _ = slots.push(ModelSlot { slot: 0, state: SlotState::Active, model_version: version.clone() });
        let _ = slots.push(ModelSlot { slot: 1, state: SlotState::Empty, model_version: ShortStr::new() });
        let mut caps = self.capture.available().0 as u32; // AUDIO/VIDEO/TEXT share bit positions
        if self.cfg.simulated {
            caps |= Capabilities::SIMULATED;
        }
        if self.cfg.board.gpio.is_some() {
            caps |= Capabilities::KIOSK;
        }
        DeviceInfo {
            protocol_version: PROTOCOL_VERSION,
            device_id: truncated(&self.state.device_id),
            board: truncated(&self.cfg.board.name),
            firmware_version: truncated(env!("CARGO_PKG_VERSION")),
            slots,
            active_model_version: version,
            feature_schema: self.model.feature_schema(),
            capabilities: Capabilities(caps),
            last_result_seq: self.log.last_seq(),
        }
    }

    fn hello(&mut self, h: Hello) -> Response {
        if h.protocol_version != PROTOCOL_VERSION {
            tracing::warn!(host = %h.host, version = h.protocol_version, "host speaks another protocol version");
            return err(
                ErrorCode::UnsupportedVersion { supported: PROTOCOL_VERSION },
                "protocol version not supported",
            );
        }
        tracing::info!(host = %h.host, "host connected");
        self.hello = true;
        Response::DeviceInfo(self.info())
    }

    fn status_of(&self, s: &ActiveSession) -> SessionStatus {
        SessionStatus {
            session: s.id,
            state: SessionState::Capturing,
            captured_ms: s.clock.elapsed().as_millis() as u32,
        }
    }

    fn session_start(&mut self, s: SessionStart) -> Response {
        if let Some(active) = &self.session {
            return err(ErrorCode::SessionActive, &format!("session {} is running", active.id));
        }
        if let Err(e) = self.capture.start(s.modalities) {
            tracing::error!("cannot start capture: {e}");
            return err(ErrorCode::BadInput, &e.to_string());
        }
        let id = self.state.next_session;
        self.state.next_session += 1;
        if let Err(e) = self.state.save(&self.cfg.data_dir) {
            tracing::error!("{e}");
            return err(ErrorCode::Storage, &e.to_string());
        }
        self.set_led(Led::Busy);
        let started_ms = if s.host_time_ms > 0 { s.host_time_ms } else { now_ms() };
        let session =
            ActiveSession { id, label: s.label, started_ms, clock: Instant::now(), utterances: BTreeMap::new() };
        tracing::info!(session = id, "session started");
        let status = self.status_of(&session);
        self.session = Some(session);
        Response::Session(status)
    }

    fn transcript_chunk(&mut self, c: TranscriptChunk) -> Response {
        let Some(session) = self.session.as_mut().filter(|s| s.id == c.session) else {
            return if self.finished.iter().any(|f| f.session == c.session) {
                err(ErrorCode::SessionNotCapturing, "session already stopped")
            } else {
                err(ErrorCode::UnknownSession, "no such running session")
            };
        };
        let u = session.utterances.entry(c.utterance).or_default();
        match c.part.cmp(&u.next_part) {
            std::cmp::Ordering::Less => {} // a repeat of a part we have: harmless
            std::cmp::Ordering::Greater => {
                return err(ErrorCode::TranscriptOutOfOrder, &format!("expected part {}", u.next_part));
            }
            std::cmp::Ordering::Equal if u.complete => {}
            std::cmp::Ordering::Equal => {
                if c.part == 0 {
                    u.start_ms = c.start_ms;
                    u.end_ms = c.end_ms.max(c.start_ms);
                    u.speaker = Some(c.speaker.into());
                }
                u.text.push_str(&c.text);
                u.next_part += 1;
                u.complete = c.last_part;
            }
        }
        let utterances = session.utterances.values().filter(|u| u.complete).count() as u32;
        Response::TranscriptAccepted(TranscriptAccepted { session: c.session, utterances })
    }

    fn session_status(&self, id: SessionId) -> Response {
        match &self.session {
            Some(s) if s.id == id => Response::Session(self.status_of(s)),
            _ => match self.finished.iter().find(|f| f.session == id) {
                Some(f) => Response::Session(*f),
                None => err(ErrorCode::UnknownSession, "no such session"),
            },
        }
    }

    fn session_stop(&mut self, id: SessionId) -> Response {
        match self.session.take_if(|s| s.id == id) {
            Some(session) => {
                let status = self.finish(session);
                if self.finished.len() == FINISHED_KEPT {
                    self.finished.pop_front();
                }
                self.finished.push_back(status);
                Response::Session(status)
            }
            None => self.session_status(id),
        }
    }

    fn set_led(&mut self, led: Led) {
        if let Err(e) = self.kiosk.show(led) {
            tracing::warn!("kiosk LEDs: {e}");
        }
    }

    /// Stops capture, computes features and the prediction, and logs the result durably.
    fn finish(&mut self, s: ActiveSession) -> SessionStatus {
        let captured_ms = s.clock.elapsed().as_millis() as u32;
        let compute = Instant::now();
        let outcome = self.compute(&s).and_then(|(prediction, present, flags, media_ms)| {
            let mut flags = flags;
            if prediction.p_depressed >= self.model.decision_threshold() {
                flags |= ResultRecord::FLAG_SCREEN_POSITIVE;
            }
            let record = ResultRecord {
                seq: 0,
                session: s.id,
                label: s.label.clone(),
                started_ms: s.started_ms,
                finished_ms: s.started_ms + u64::from(media_ms.max(captured_ms)),
                compute_ms: compute.elapsed().as_millis() as u32,
                p_depressed: prediction.p_depressed,
                phq8: prediction.phq8,
                gates: prediction.gates,
                modalities: present,
                model_version: truncated(self.model.version()),
                feature_schema: self.model.feature_schema(),
                flags,
            };
            let seq = self.log.append(record).map_err(|e| {
                tracing::error!("{e}");
                (ErrorCode::Storage, e.to_string())
            })?;
            Ok((seq, media_ms))
        });
        match outcome {
            Ok((seq, media_ms)) => {
                tracing::info!(session = s.id, seq, "result logged");
                self.set_led(Led::Ready);
                SessionStatus {
                    session: s.id,
                    state: SessionState::Done { seq },
                    captured_ms: media_ms.max(captured_ms),
                }
            }
            Err((code, detail)) => {
                tracing::error!(session = s.id, "session failed: {detail}");
                self.set_led(Led::Error);
                SessionStatus { session: s.id, state: SessionState::Failed(code), captured_ms }
            }
        }
    }

    /// Features + model. Returns the prediction, the modalities present, quality flags and the
    /// captured media duration.
    #[allow(clippy::type_complexity)]
    fn compute(
        &mut self,
        s: &ActiveSession,
    ) -> Result<(models::Prediction, Modalities, u16, u32), (ErrorCode, String)> {
        let captured = self.capture.stop().map_err(|e| (ErrorCode::BadInput, e.to_string()))?;
        let utterances: Vec<Utterance> = s
            .utterances
            .values()
            .filter(|u| u.complete)
            .filter_map(|u| {
                Some(Utterance { start_ms: u.start_ms, end_ms: u.end_ms, speaker: u.speaker?, text: u.text.clone() })
            })
            .collect();
        let tracked = match captured.video {
            Some(Video::Frames(mut frames)) => match self.face.as_mut() {
                Some(face) => {
                    let started = std::time::Instant::now();
                    let (track, stats) = face.track(frames.as_mut());
                    tracing::debug!(seconds = started.elapsed().as_secs_f32(), "frames tracked");
                    Some((track, stats))
                }
                None => {
                    tracing::info!("video captured, but no face landmarker is loaded: video absent from the result");
                    None
                }
            },
            Some(Video::Tracked { track, stats }) => Some((track, stats)),
            None => None,
        };
        let mut video_flags = 0;
        let landmarks = tracked.map(|(track, stats)| {
            tracing::info!(
                frames = stats.frames,
                with_face = stats.with_face,
                detections = stats.detections,
                several_faces = stats.several_faces,
                decode_errors = stats.decode_errors,
                "video front-end"
            );
            if stats.several_faces_in_view() {
                video_flags |= ResultRecord::FLAG_SEVERAL_FACES;
            }
            if stats.damaged() {
                video_flags |= ResultRecord::FLAG_DAMAGED_VIDEO;
            }
            track
        });
        let feats = features::extract_session(&SessionInputs {
            audio: captured.audio.as_ref(),
            landmarks: landmarks.as_ref(),
            transcript: Some(&utterances),
            include_interviewer_text: false,
            vad: self.vad.as_deref(),
            text_encoder: self.text_encoder.as_deref(),
        });
        let mut flags = feats.flags | video_flags;
        if self.cfg.simulated {
            flags |= ResultRecord::FLAG_SIMULATED;
        }
        if self.model.is_placeholder() {
            flags |= ResultRecord::FLAG_PLACEHOLDER_MODEL;
        }
        let mut present = 0u8;
        for (has, bit) in [
            (feats.audio.as_ref().is_some_and(|s| !s.is_empty()), Modalities::AUDIO),
            (feats.video.as_ref().is_some_and(|s| !s.is_empty()), Modalities::VIDEO),
            (feats.text.as_ref().is_some_and(|s| !s.is_empty()), Modalities::TEXT),
        ] {
            if has {
                present |= bit;
            }
        }
        let prediction = self.model.predict(&feats).map_err(|e| (ErrorCode::ModelFailure, e.to_string()))?;
        Ok((prediction, Modalities(present), flags, captured.duration_ms))
    }

    fn sync(&self, c: SyncCursor) -> Response {
        let max = usize::from(c.max).clamp(1, MAX_RECORDS_PER_BATCH);
        let mut records = protocol::heapless::Vec::new();
        for r in self.log.after(c.after, max) {
            // Cannot fail: at most MAX_RECORDS_PER_BATCH.
            let _ = records.push(r.clone());
        }
        Response::Records(RecordBatch { records, last_seq: self.log.last_seq() })
    }

    fn sync_ack(&mut self, a: Ack) -> Response {
        let upto = a.upto.min(self.log.last_seq());
        if upto > self.state.acked {
            self.state.acked = upto;
            if let Err(e) = self.state.save(&self.cfg.data_dir) {
                tracing::error!("{e}");
                return err(ErrorCode::Storage, &e.to_string());
            }
        }
        Response::Acked(Ack { upto: self.state.acked })
    }
}
