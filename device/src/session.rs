//! The session lifecycle, apart from the wire: start → words → stop → result, for a session
//! started by the host or by something on the device itself (a kiosk button).
//!
//! [`Sessions`] owns the capture, the device's persistent state, the result log and the kiosk
//! LEDs. A stopped session's media go to a [`Worker`] thread running the [`Pipeline`]; the
//! caller keeps answering while it computes (`Processing`); each session the worker is done with
//! comes back as a [`Finished`] ([`Sessions::take_finished`]), which [`Sessions::finish`] appends
//! to the log (fsync) before its status says `Done`.

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use boards::{Indicator, Panel};
use features::text::{Speaker, Utterance};
use protocol::{
    ErrorCode, Modalities, RecordBatch, ResultRecord, SchemaHash, SessionId, SessionState, SessionStatus, ShortStr,
    TranscriptChunk,
};

use crate::capture::{Capture, CaptureError};
use crate::log::{LogError, ResultLog};
use crate::pipeline::{Extra, Job, KeepMedia, Pipeline, PipelineError};
use crate::retention::{FreeSpace, Retention, Statvfs};
use crate::state::{DataDir, DeviceState, StateError};
use crate::{LoadedModel, Refusal};

/// Finished sessions whose status is remembered (for a retried stop or a late status query).
const FINISHED_KEPT: usize = 64;

/// Why a session request was refused, or a session failed (its protocol code: [`Refusal`]).
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// A session is capturing; stop it first.
    #[error("session {0} is running; stop it first")]
    Active(SessionId),
    /// No session with this id is running or remembered.
    #[error("no session {0}")]
    Unknown(SessionId),
    /// The session stopped; it takes no more words.
    #[error("session {0} is not capturing any more")]
    NotCapturing(SessionId),
    /// A transcript part came before the part it follows.
    #[error("utterance {utterance}: expected part {expected}, got part {got}")]
    OutOfOrder {
        /// The utterance.
        utterance: u32,
        /// The part the device expects.
        expected: u16,
        /// The part that came.
        got: u16,
    },
    /// Capture could not start or stop.
    #[error("capture")]
    Capture(#[source] CaptureError),
    /// The pipeline could not compute the result.
    #[error("computing the result")]
    Pipeline(#[source] PipelineError),
    /// The persistent state could not be written.
    #[error(transparent)]
    State(#[from] StateError),
    /// The result could not be logged.
    #[error(transparent)]
    Log(#[from] LogError),
    /// The worker thread is gone (it ended; only a defect outside the pipeline ends it).
    #[error("the session worker is not running")]
    WorkerGone,
    /// A transcript limit was reached.
    #[error("transcript too large: {what} is limited to {limit}")]
    TooLarge {
        /// What is limited.
        what: &'static str,
        /// The limit.
        limit: u32,
    },
    /// A request field is out of its range.
    #[error("bad request: {0}")]
    BadRequest(&'static str),
    /// The device has no room to store a session's result.
    #[error("{0}")]
    Storage(String),
    /// The free space of the data folder's file system could not be read.
    #[error("cannot read the free space of {path}")]
    FreeSpace {
        /// The data folder.
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl crate::Refusal for SessionError {
    fn code(&self) -> ErrorCode {
        match self {
            SessionError::Active(_) => ErrorCode::SessionActive,
            SessionError::Unknown(_) => ErrorCode::UnknownSession,
            SessionError::NotCapturing(_) => ErrorCode::SessionNotCapturing,
            SessionError::OutOfOrder { .. } => ErrorCode::TranscriptOutOfOrder,
            SessionError::Capture(_) => ErrorCode::BadInput,
            SessionError::Pipeline(PipelineError::Model { .. }) => ErrorCode::ModelFailure,
            SessionError::Pipeline(PipelineError::Panicked { .. }) | SessionError::WorkerGone => ErrorCode::Internal,
            SessionError::State(_)
            | SessionError::Log(_)
            | SessionError::Storage(_)
            | SessionError::FreeSpace { .. } => ErrorCode::Storage,
            SessionError::TooLarge { limit, .. } => ErrorCode::TranscriptTooLarge { limit: *limit },
            SessionError::BadRequest(_) => ErrorCode::BadRequest,
        }
    }
}

/// Where a session came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// A host over the link.
    Host,
    /// The device itself (the kiosk's button).
    Local,
}

/// What starts a session.
#[derive(Debug, Clone)]
pub struct StartRequest {
    /// Modalities to capture.
    pub modalities: Modalities,
    /// Stored with the result (no personal data).
    pub label: ShortStr,
    /// Unix ms of the session start; 0 = the device's clock.
    pub host_time_ms: u64,
    /// Who started it.
    pub origin: Origin,
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
    origin: Origin,
    started_ms: u64,
    clock: Instant,
    /// Last request about this session (a host-started session is abandoned when it is old).
    last_heard: Instant,
    utterances: BTreeMap<u32, PendingUtterance>,
    /// Complete utterances (kept as a count: ingestion stays linear).
    complete: u32,
    /// Transcript bytes taken, all utterances.
    text_bytes: usize,
    /// Where its research media go, when they are kept.
    keep: Option<KeepMedia>,
}

/// How long a host-started session may go without a request about it before it is abandoned
/// (its host crashed or was unplugged): recorded as aborted, and the device is free again.
pub const ABANDON_AFTER: Duration = Duration::from_secs(300);

impl ActiveSession {
    fn status(&self) -> SessionStatus {
        SessionStatus { session: self.id, state: SessionState::Capturing, captured_ms: elapsed_ms(self.clock) }
    }
}

fn elapsed_ms(since: Instant) -> u32 {
    u32::try_from(since.elapsed().as_millis()).unwrap_or(u32::MAX)
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

type Outcome = (SessionId, Result<ResultRecord, PipelineError>);

/// A stopped session the worker is done with: the result it computed, or why there is none.
/// The device's loop takes it as an event and hands it to [`Sessions::finish`].
#[derive(Debug)]
pub struct Finished {
    /// The session.
    pub session: SessionId,
    outcome: Result<ResultRecord, SessionError>,
}

/// What the worker does next, in the order sent.
enum Work {
    /// Compute a stopped session.
    Session(Box<Job>),
    /// Compute every later session with this model.
    Model(LoadedModel),
}

/// A thread that runs the pipeline over stopped sessions, one at a time, in order.
pub struct Worker {
    jobs: Option<Sender<Work>>,
    done: Receiver<Outcome>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker").field("running", &self.thread.is_some()).finish()
    }
}

impl Worker {
    /// Starts the worker thread with `pipeline`.
    pub fn spawn(mut pipeline: Box<dyn Pipeline>) -> std::io::Result<Worker> {
        let (jobs, job_rx) = mpsc::channel::<Work>();
        let (done_tx, done) = mpsc::channel::<Outcome>();
        let thread = std::thread::Builder::new().name("session-worker".into()).spawn(move || {
            for work in job_rx {
                let job = match work {
                    Work::Session(job) => *job,
                    Work::Model(loaded) => {
                        let version = loaded.model.version().to_owned();
                        match pipeline.replace_model(loaded) {
                            Ok(()) => tracing::info!(model = %version, "sessions from here on use this model"),
                            Err(e) => tracing::error!("model {version} not taken: {e}"),
                        }
                        continue;
                    }
                };
                let session = job.session;
                // A defect in a front-end must cost that session, not every later one.
                let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| pipeline.process(job)))
                    .unwrap_or_else(|panic| {
                        let message = panic
                            .downcast_ref::<&str>()
                            .map(|s| (*s).to_owned())
                            .or_else(|| panic.downcast_ref::<String>().cloned())
                            .unwrap_or_default();
                        Err(PipelineError::Panicked { session, message })
                    });
                if done_tx.send((session, outcome)).is_err() {
                    break;
                }
            }
        })?;
        Ok(Worker { jobs: Some(jobs), done, thread: Some(thread) })
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        // Closing the job channel ends the thread after the job in hand.
        self.jobs.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The session state machine.
pub struct Sessions {
    data: DataDir,
    state: DeviceState,
    log: ResultLog,
    capture: Box<dyn Capture>,
    panel: Box<dyn Panel>,
    worker: Worker,
    model_version: String,
    feature_schema: SchemaHash,
    active: Option<ActiveSession>,
    abandon_after: Duration,
    /// Stopped sessions the worker has not finished: (id, how long capture ran in ms).
    processing: VecDeque<(SessionId, u32)>,
    finished: VecDeque<SessionStatus>,
    /// A model to switch to once no session is capturing.
    next_model: Option<LoadedModel>,
    /// Where consented research media go (`--keep-media`): (spool, kept media); `None`: raw
    /// media are never kept.
    media: Option<(PathBuf, PathBuf)>,
    /// How long acknowledged results stay, and the free space sessions need.
    retention: Retention,
    space: Box<dyn FreeSpace>,
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sessions")
            .field("device_id", &self.state.device_id)
            .field("model", &self.model_version)
            .field("results", &self.log.len())
            .field("active", &self.active.as_ref().map(|s| s.id))
            .field("processing", &self.processing)
            .finish_non_exhaustive()
    }
}

impl Sessions {
    /// Sessions over `capture`, computed by `pipeline` on a worker thread, results in `log`.
    pub fn new(
        data: DataDir,
        state: DeviceState,
        log: ResultLog,
        capture: Box<dyn Capture>,
        mut panel: Box<dyn Panel>,
        pipeline: Box<dyn Pipeline>,
    ) -> std::io::Result<Sessions> {
        if let Err(e) = panel.show(Indicator::Idle) {
            tracing::warn!("kiosk LEDs unavailable: {e}");
        }
        let model_version = pipeline.model_version().to_owned();
        let feature_schema = pipeline.feature_schema();
        let mut sessions = Sessions {
            data,
            state,
            log,
            capture,
            panel,
            worker: Worker::spawn(pipeline)?,
            model_version,
            feature_schema,
            active: None,
            abandon_after: ABANDON_AFTER,
            processing: VecDeque::new(),
            finished: VecDeque::new(),
            next_model: None,
            media: None,
            retention: Retention::KEEP,
            space: Box::new(Statvfs),
        };
        sessions.abort_interrupted();
        Ok(sessions)
    }

    /// Sets the retention rules and where free space is read from (until then every result is
    /// kept and free space is not checked; `mimml-device run` sets [`Retention::default`]);
    /// applies them at once.
    pub fn set_retention(&mut self, retention: Retention, space: Box<dyn FreeSpace>) {
        self.retention = retention;
        self.space = space;
        self.forget_old();
    }

    /// Deletes acknowledged results older than the retention age. A failure is logged: the
    /// records stay, which loses nothing.
    fn forget_old(&mut self) {
        let Some(age) = self.retention.acked_max_age else { return };
        let cutoff = now_ms().saturating_sub(age.as_millis() as u64);
        match self.log.forget_acked(self.state.acked, |r| r.finished_ms < cutoff) {
            Ok(0) => {}
            Ok(n) => {
                tracing::info!(deleted = n, acked = self.state.acked, "acknowledged results past retention deleted")
            }
            Err(e) => tracing::warn!("deleting acknowledged results: {}", runtime::chain(&e)),
        }
    }

    /// Whether a new session can be stored: with less than the minimum free, acknowledged
    /// results are deleted first (never unacknowledged ones); if still short, the session is
    /// refused.
    fn ensure_room(&mut self) -> Result<(), SessionError> {
        let dir = self.data.path().to_owned();
        let free =
            |s: &Self| s.space.free_bytes(&dir).map_err(|e| SessionError::FreeSpace { path: dir.clone(), source: e });
        let need = self.retention.min_free_bytes;
        if free(self)? >= need {
            return Ok(());
        }
        match self.log.forget_acked(self.state.acked, |_| true) {
            Ok(n) if n > 0 => tracing::warn!(deleted = n, "storage low: acknowledged results deleted to make room"),
            Ok(_) => {}
            Err(e) => tracing::warn!("deleting acknowledged results: {}", runtime::chain(&e)),
        }
        let left = free(self)?;
        if left >= need {
            return Ok(());
        }
        Err(SessionError::Storage(format!(
            "storage low: {} MiB free, a session needs {} MiB; {} result(s) wait to be synced and are kept \
             (sync them with a host, or free space on the card)",
            left >> 20,
            need >> 20,
            self.log.after(self.state.acked, usize::MAX).count()
        )))
    }

    /// A session that was capturing when the device stopped (power loss, crash) is recorded as
    /// aborted: its status says so, and it never becomes a result.
    fn abort_interrupted(&mut self) {
        let Some(id) = self.state.capturing.take() else { return };
        tracing::warn!(session = id, "the device stopped while this session was capturing: recorded as aborted");
        self.remember(SessionStatus {
            session: id,
            state: SessionState::Failed(ErrorCode::SessionAborted),
            captured_ms: 0,
        });
        if let Err(e) = self.state.save(self.data.path()) {
            tracing::error!(session = id, "cannot record the interrupted session: {}", runtime::chain(&e));
        }
    }

    /// Clears the capturing mark of the persistent state (the session stopped or was aborted).
    fn clear_capturing(&mut self) {
        if self.state.capturing.take().is_some()
            && let Err(e) = self.state.save(self.data.path())
        {
            tracing::error!("cannot clear the capturing mark: {}", runtime::chain(&e));
        }
    }

    /// Whether the kiosk button is held now (false when it cannot be read).
    pub fn button_held(&mut self) -> bool {
        self.panel.button_held().unwrap_or_else(|e| {
            tracing::warn!("kiosk button: {e}");
            false
        })
    }

    /// The kiosk's panel (its own state shown on the LEDs, the staff alert, blinking).
    pub fn panel(&mut self) -> &mut dyn Panel {
        self.panel.as_mut()
    }

    /// Abandons a host-started session after `limit` without a request about it.
    pub fn set_abandon_after(&mut self, limit: Duration) {
        self.abandon_after = limit;
    }

    /// The session capturing now, if any.
    pub fn active(&self) -> Option<SessionStatus> {
        self.active.as_ref().map(ActiveSession::status)
    }

    /// The device's persistent state.
    pub fn state(&self) -> &DeviceState {
        &self.state
    }

    /// The result log.
    pub fn log(&self) -> &ResultLog {
        &self.log
    }

    /// Version of the model behind the results.
    pub fn model_version(&self) -> &str {
        &self.model_version
    }

    /// Feature schema of the results.
    pub fn feature_schema(&self) -> SchemaHash {
        self.feature_schema
    }

    /// The microphone's level while a session captures (0–1), if the capture can tell.
    pub fn level(&self) -> Option<f32> {
        self.active.as_ref().and(self.capture.level())
    }

    /// What the capture can deliver.
    pub fn available(&self) -> Modalities {
        self.capture.available()
    }

    /// An answer window of the running session opens (`true`) or closes now: a live capture
    /// keeping answers for transcription keeps the samples in between.
    pub fn mark_answer(&self, open: bool) {
        if self.active.is_some() {
            self.capture.mark_answer(open);
        }
    }

    fn set_led(&mut self, led: Indicator) {
        if let Err(e) = self.panel.show(led) {
            tracing::warn!("kiosk LEDs: {e}");
        }
    }

    /// Keeps the raw media of sessions whose patient consented ([`start_with`](Self::start_with)):
    /// written into `spool` (a tmpfs) during the session, moved into `media` once its features
    /// exist. Without this, raw media are never kept, whatever the patient ticked.
    pub fn keep_media(&mut self, spool: PathBuf, media: PathBuf) {
        self.media = Some((spool, media));
    }

    /// Starts capturing a new session.
    pub fn start(&mut self, req: StartRequest) -> Result<SessionStatus, SessionError> {
        self.start_with(req, false)
    }

    /// [`start`](Self::start); `research`: the patient agreed to their raw media being kept,
    /// which happens if the device keeps media ([`keep_media`](Self::keep_media)).
    pub fn start_with(&mut self, req: StartRequest, research: bool) -> Result<SessionStatus, SessionError> {
        self.abandon_silent();
        if let Some(active) = &self.active {
            return Err(SessionError::Active(active.id));
        }
        if req.host_time_ms > protocol::MAX_HOST_TIME_MS {
            return Err(SessionError::BadRequest("the host's clock is past 2200-01-01"));
        }
        if let Err(e) = self.ensure_room() {
            self.set_led(Indicator::Error);
            return Err(e);
        }
        let id = self.state.next_session;
        let keep = self.media.as_ref().filter(|_| research).map(|(spool, media)| KeepMedia {
            spool: spool.join(format!("session-{id}")),
            media: media.join(format!("session-{id}")),
        });
        self.capture.keep_media(keep.as_ref().map(|k| k.spool.clone()));
        self.capture.start(req.modalities).map_err(SessionError::Capture)?;
        self.state.next_session += 1;
        self.state.capturing = Some(id);
        if let Err(e) = self.state.save(self.data.path()) {
            self.state.capturing = None;
            if let Err(stop) = self.capture.stop() {
                tracing::warn!("capture did not stop cleanly: {}", runtime::chain(&stop));
            }
            // A session that never started keeps nothing, research media included.
            if let Some(k) = &keep {
                k.discard();
            }
            return Err(e.into());
        }
        self.set_led(Indicator::Recording);
        let started_ms = if req.host_time_ms > 0 { req.host_time_ms } else { now_ms() };
        let session = ActiveSession {
            id,
            label: req.label,
            origin: req.origin,
            started_ms,
            clock: Instant::now(),
            last_heard: Instant::now(),
            utterances: BTreeMap::new(),
            complete: 0,
            text_bytes: 0,
            keep,
        };
        tracing::info!(session = id, origin = ?req.origin, "session started");
        let status = session.status();
        self.active = Some(session);
        Ok(status)
    }

    /// Adds one part of one utterance to the running session; returns the count of complete
    /// utterances. A part already taken is accepted again without effect. Each call costs the
    /// same whatever came before; the transcript limits of [`protocol`] are enforced here.
    pub fn add_words(&mut self, c: &TranscriptChunk) -> Result<u32, SessionError> {
        let Some(session) = self.active.as_mut().filter(|s| s.id == c.session) else {
            return Err(self.not_capturing(c.session));
        };
        session.last_heard = Instant::now();
        if c.part >= protocol::MAX_PARTS {
            return Err(SessionError::TooLarge { what: "parts per utterance", limit: u32::from(protocol::MAX_PARTS) });
        }
        if !session.utterances.contains_key(&c.utterance)
            && session.utterances.len() >= protocol::MAX_UTTERANCES as usize
        {
            return Err(SessionError::TooLarge { what: "utterances per session", limit: protocol::MAX_UTTERANCES });
        }
        let u = session.utterances.entry(c.utterance).or_default();
        match c.part.cmp(&u.next_part) {
            std::cmp::Ordering::Less => {} // a repeat of a part we have: harmless
            std::cmp::Ordering::Greater => {
                return Err(SessionError::OutOfOrder { utterance: c.utterance, expected: u.next_part, got: c.part });
            }
            std::cmp::Ordering::Equal if u.complete => {}
            std::cmp::Ordering::Equal => {
                if u.text.len() + c.text.len() > protocol::MAX_UTTERANCE_BYTES {
                    return Err(SessionError::TooLarge {
                        what: "bytes per utterance",
                        limit: protocol::MAX_UTTERANCE_BYTES as u32,
                    });
                }
                if session.text_bytes + c.text.len() > protocol::MAX_SESSION_TEXT_BYTES {
                    return Err(SessionError::TooLarge {
                        what: "transcript bytes per session",
                        limit: protocol::MAX_SESSION_TEXT_BYTES as u32,
                    });
                }
                if c.part == 0 {
                    u.start_ms = c.start_ms;
                    u.end_ms = c.end_ms.max(c.start_ms);
                    u.speaker = Some(c.speaker.into());
                }
                u.text.push_str(&c.text);
                session.text_bytes += c.text.len();
                u.next_part += 1;
                u.complete = c.last_part;
                if u.complete {
                    session.complete += 1;
                }
            }
        }
        Ok(session.complete)
    }

    /// Adds one participant turn of known times and no words (a kiosk answer window) to the
    /// running session `id`: its audio and video are segmented by these windows, and no
    /// interviewer prompt is ever part of them. Returns the count of complete utterances.
    pub fn add_turn(&mut self, id: SessionId, start_ms: u32, end_ms: u32) -> Result<u32, SessionError> {
        let Some(session) = self.active.as_mut().filter(|s| s.id == id) else {
            return Err(self.not_capturing(id));
        };
        if session.utterances.len() >= protocol::MAX_UTTERANCES as usize {
            return Err(SessionError::TooLarge { what: "utterances per session", limit: protocol::MAX_UTTERANCES });
        }
        let key = session.utterances.last_key_value().map_or(0, |(k, _)| k + 1);
        session.utterances.insert(
            key,
            PendingUtterance {
                start_ms,
                end_ms: end_ms.max(start_ms),
                speaker: Some(Speaker::Participant),
                text: String::new(),
                next_part: 1,
                complete: true,
            },
        );
        session.complete += 1;
        Ok(session.complete)
    }

    /// Why session `id`, which is not capturing, takes no words or turns.
    fn not_capturing(&self, id: SessionId) -> SessionError {
        if self.knows(id) { SessionError::NotCapturing(id) } else { SessionError::Unknown(id) }
    }

    fn knows(&self, id: SessionId) -> bool {
        self.processing.iter().any(|(p, _)| *p == id) || self.finished.iter().any(|f| f.session == id)
    }

    /// Ends capture of session `id` and hands it to the worker: `Processing` until its result
    /// is [`finish`](Self::finish)ed. Stopping a session that already stopped reports
    /// where it stands; nothing is computed twice.
    pub fn stop(&mut self, id: SessionId) -> Result<SessionStatus, SessionError> {
        self.stop_with(id, Extra::default())
    }

    /// [`stop`](Self::stop), with what the session's starter adds to its result (the kiosk's
    /// questionnaire and flags).
    pub fn stop_with(&mut self, id: SessionId, extra: Extra) -> Result<SessionStatus, SessionError> {
        let Some(session) = self.active.take_if(|s| s.id == id) else {
            return self.status(id);
        };
        let captured_ms = elapsed_ms(session.clock);
        self.clear_capturing();
        let captured = match self.capture.stop() {
            Ok(c) => c,
            Err(e) => return Ok(self.fail(id, captured_ms, &SessionError::Capture(e))),
        };
        let utterances: Vec<Utterance> = session
            .utterances
            .into_values()
            .filter(|u| u.complete)
            .filter_map(|u| {
                Some(Utterance { start_ms: u.start_ms, end_ms: u.end_ms, speaker: u.speaker?, text: u.text })
            })
            .collect();
        let job = Job {
            session: id,
            label: session.label,
            started_ms: session.started_ms,
            captured_ms,
            captured,
            utterances,
            extra,
            keep: session.keep,
        };
        let sent = self.worker.jobs.as_ref().is_some_and(|jobs| jobs.send(Work::Session(Box::new(job))).is_ok());
        if !sent {
            return Ok(self.fail(id, captured_ms, &SessionError::WorkerGone));
        }
        self.processing.push_back((id, captured_ms));
        self.set_led(Indicator::Processing);
        tracing::info!(session = id, "session stopped; computing");
        Ok(SessionStatus { session: id, state: SessionState::Processing, captured_ms })
    }

    /// Where session `id` stands. A session finished before the device restarted is found by
    /// its result in the log.
    pub fn status(&mut self, id: SessionId) -> Result<SessionStatus, SessionError> {
        if let Some(s) = self.active.as_mut().filter(|s| s.id == id) {
            s.last_heard = Instant::now();
            return Ok(s.status());
        }
        if let Some(&(_, captured_ms)) = self.processing.iter().find(|(p, _)| *p == id) {
            return Ok(SessionStatus { session: id, state: SessionState::Processing, captured_ms });
        }
        if let Some(f) = self.finished.iter().find(|f| f.session == id) {
            return Ok(*f);
        }
        self.log
            .find_session(id)
            .map(|r| SessionStatus {
                session: id,
                state: SessionState::Done { seq: r.seq },
                captured_ms: u32::try_from(r.finished_ms.saturating_sub(r.started_ms)).unwrap_or(u32::MAX),
            })
            .ok_or(SessionError::Unknown(id))
    }

    /// Ends session `id` without a result: capture stops, nothing is computed, the session is
    /// recorded as aborted. Any host may abort any capturing session; aborting one that has
    /// already stopped reports where it stands.
    pub fn abort(&mut self, id: SessionId) -> Result<SessionStatus, SessionError> {
        let Some(session) = self.active.take_if(|s| s.id == id) else {
            return self.status(id);
        };
        let captured_ms = elapsed_ms(session.clock);
        self.clear_capturing();
        if let Err(e) = self.capture.stop() {
            tracing::warn!(session = id, error = %runtime::chain(&e), "capture did not stop cleanly on abort");
        }
        // An aborted session keeps nothing, research media included.
        if let Some(k) = &session.keep {
            k.discard();
        }
        tracing::warn!(session = id, label = %protocol::Escaped(&session.label), "session aborted; no result");
        self.set_led(Indicator::Idle);
        let status = SessionStatus { session: id, state: SessionState::Failed(ErrorCode::SessionAborted), captured_ms };
        self.remember(status);
        Ok(status)
    }

    /// Aborts a host-started session nobody has asked about for longer than the limit.
    fn abandon_silent(&mut self) {
        let silent = self
            .active
            .as_ref()
            .filter(|s| s.origin == Origin::Host && s.last_heard.elapsed() > self.abandon_after)
            .map(|s| s.id);
        if let Some(id) = silent {
            tracing::warn!(
                session = id,
                after_s = self.abandon_after.as_secs(),
                "no request about the session from its host: abandoning it"
            );
            // Cannot fail: the session is active.
            let _ = self.abort(id);
        }
    }

    /// Whether a stopped session is still being computed.
    pub fn is_processing(&self) -> bool {
        !self.processing.is_empty()
    }

    /// Switches to `loaded` between sessions: a session capturing now finishes on the model it
    /// started with, and so do sessions stopped before the switch (the worker takes the new model
    /// in order with their jobs).
    pub fn replace_model(&mut self, loaded: LoadedModel) {
        self.next_model = Some(loaded);
        self.switch_model();
    }

    fn switch_model(&mut self) {
        if self.active.is_some() {
            return;
        }
        let Some(loaded) = self.next_model.take() else { return };
        self.model_version = loaded.model.version().to_owned();
        self.feature_schema = loaded.model.feature_schema();
        if let Some(jobs) = &self.worker.jobs
            && jobs.send(Work::Model(loaded)).is_err()
        {
            tracing::error!("the session worker is gone: the new model cannot be taken");
        }
    }

    /// What keeps time apart from requests: abandons a host-started session whose host went
    /// silent, and switches to a replacement model once no session is capturing.
    pub fn tick(&mut self) {
        self.abandon_silent();
        self.switch_model();
    }

    /// One stopped session the worker has finished, if any: its result, or its failure. When
    /// the worker thread itself has died, each session it held is finished as failed.
    pub fn take_finished(&mut self) -> Option<Finished> {
        match self.worker.done.try_recv() {
            Ok((session, outcome)) => Some(Finished { session, outcome: outcome.map_err(SessionError::Pipeline) }),
            Err(TryRecvError::Empty) => None,
            Err(TryRecvError::Disconnected) => self
                .processing
                .front()
                .map(|&(session, _)| Finished { session, outcome: Err(SessionError::WorkerGone) }),
        }
    }

    /// [`tick`](Self::tick), then every finished session [`finish`](Self::finish)ed: for a
    /// caller that drives the sessions alone (the device's loop takes each as an event).
    /// Returns how many sessions finished.
    pub fn poll(&mut self) -> usize {
        self.tick();
        let mut n = 0;
        while let Some(f) = self.take_finished() {
            self.finish(f);
            n += 1;
        }
        n
    }

    /// Waits (polling) until no session is being computed, or `timeout` passes.
    pub fn wait_idle(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            self.poll();
            if !self.is_processing() {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Takes a finished session: its result is appended to the log (fsync) and only then is
    /// the session `Done`. Returns where it stands now.
    pub fn finish(&mut self, finished: Finished) -> SessionStatus {
        let Finished { session: id, outcome } = finished;
        let captured_ms = match self.processing.iter().position(|(p, _)| *p == id) {
            Some(i) => self.processing.remove(i).map_or(0, |(_, ms)| ms),
            None => 0,
        };
        let logged = outcome.and_then(|record| {
            let media_ms = u32::try_from(record.finished_ms.saturating_sub(record.started_ms)).unwrap_or(u32::MAX);
            // The high-water mark goes to disk before the record: whatever later happens to the
            // log, this number is never handed out again.
            self.state.last_seq = self.log.next_seq();
            self.state.save(self.data.path())?;
            Ok((self.log.append(record)?, media_ms))
        });
        match logged {
            Ok((seq, media_ms)) => {
                tracing::info!(session = id, seq, "result logged");
                self.set_led(Indicator::Idle);
                let status = SessionStatus {
                    session: id,
                    state: SessionState::Done { seq },
                    captured_ms: media_ms.max(captured_ms),
                };
                self.remember(status);
                status
            }
            Err(e) => self.fail(id, captured_ms, &e),
        }
    }

    /// Records session `id` as failed with `e` (logged here, once) and returns its status.
    fn fail(&mut self, id: SessionId, captured_ms: u32, e: &SessionError) -> SessionStatus {
        tracing::error!(session = id, error = %runtime::chain(e), "session failed");
        self.set_led(Indicator::Error);
        let status = SessionStatus { session: id, state: SessionState::Failed(e.code()), captured_ms };
        self.remember(status);
        status
    }

    fn remember(&mut self, status: SessionStatus) {
        if self.finished.len() == FINISHED_KEPT {
            self.finished.pop_front();
        }
        self.finished.push_back(status);
    }

    /// Up to `max` records after `after`, and the log's last sequence number.
    pub fn records_after(&self, after: u64, max: usize) -> RecordBatch {
        let mut records = protocol::heapless::Vec::new();
        for r in self.log.after(after, max.clamp(1, protocol::MAX_RECORDS_PER_BATCH)) {
            // Cannot fail: at most MAX_RECORDS_PER_BATCH.
            let _ = records.push(r.clone());
        }
        RecordBatch { records, last_seq: self.log.last_seq() }
    }

    /// The host stored every record up to `upto`: remember it (durably). Returns the
    /// acknowledgement now held.
    pub fn ack(&mut self, upto: u64) -> Result<u64, SessionError> {
        let upto = upto.min(self.log.last_seq());
        if upto > self.state.acked {
            self.state.acked = upto;
            self.state.save(self.data.path())?;
            self.forget_old();
        }
        Ok(self.state.acked)
    }
}
