//! The device's side of the protocol: hello gating, the reply cache and dispatch to
//! [`Sessions`].
//!
//! [`Server::handle`] answers one [`HostFrame`] (tests drive it directly); [`Server::serve`]
//! runs it over a [`FramedLink`] until told to stop, taking finished results from the session
//! worker between frames. A stop is answered at once (`Processing`), so the link stays live
//! while the device computes.
//!
//! A request re-sent after a lost reply carries the same id; the server answers it from a small
//! reply cache instead of executing it again, so a retried `SessionStop` never stops twice.
//!
//! Only a paired host that proved its key on this connection (`Auth` over the challenge of this
//! connection's `Hello`) may run sessions, read results or flash models; before that the device
//! answers `Hello`, `Ping` and the pairing requests, and everything else with `Unauthorized`.

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use boards::Board;
use link::{FramedLink, LinkError};
use protocol::*;

use crate::ModelLoader;
use crate::kiosk::{Input as KioskInput, Kiosk};
use crate::models::{ModelStore, Serving, StoreError};
use crate::pairing::{PairingError, Pairings};
use crate::session::{Origin, SessionError, Sessions, StartRequest};
use crate::watchdog::Watchdog;

/// Replies remembered for duplicate requests.
const REPLY_CACHE: usize = 32;

/// How long the serve loop waits for a frame before looking for finished results.
const POLL: Duration = Duration::from_millis(20);

/// What the server says about itself beyond the sessions.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The board the device runs on.
    pub board: Board,
    /// Inputs come from files (`--simulate`).
    pub simulated: bool,
}

/// The model store and how a model in it is loaded.
pub struct Models {
    /// Slots, upload, trial.
    pub store: ModelStore,
    /// Loads a bundle folder (or the factory model) verified, with its encoder.
    pub loader: ModelLoader,
}

impl std::fmt::Debug for Models {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Models").field("store", &self.store).finish_non_exhaustive()
    }
}

/// The protocol server.
#[derive(Debug)]
pub struct Server {
    cfg: ServerConfig,
    sessions: Sessions,
    models: Models,
    pairings: Pairings,
    replies: VecDeque<(RequestId, Response)>,
    hello: bool,
    /// This connection's challenge (fresh for every Hello).
    challenge: [u8; 32],
    /// The paired key this connection's host proved (none: not authorised).
    current_key: Option<PublicKey>,
    /// The last result counted towards confirming a model on trial.
    counted_seq: u64,
    /// The kiosk, on a device that runs sessions of its own.
    kiosk: Option<Kiosk>,
    /// systemd's watchdog, pinged from [`poll`](Self::poll).
    watchdog: Watchdog,
}

/// A refusal: the error's code, and the error with its causes as the detail.
fn refused(e: &SessionError) -> Response {
    Response::Error(Error::new(e.code(), &runtime::chain(e)))
}

/// A refused model upload, also kept in the device's log (a forged bundle is worth knowing of).
fn store_refused(e: &StoreError) -> Response {
    tracing::warn!("model upload: {}", runtime::chain(e));
    Response::Error(Error::new(e.code(), &runtime::chain(e)))
}

fn pairing_refused(e: &PairingError) -> Response {
    Response::Error(Error::new(e.code(), &runtime::chain(e)))
}

impl Server {
    /// A server in front of `sessions`, taking models into `models`, for the hosts `pairings`
    /// holds.
    pub fn new(cfg: ServerConfig, sessions: Sessions, models: Models, pairings: Pairings) -> Server {
        tracing::info!(
            device_id = %sessions.state().device_id,
            board = %cfg.board.name,
            model = sessions.model_version(),
            results = sessions.log().len(),
            paired_hosts = pairings.count(),
            "device ready"
        );
        let counted_seq = sessions.log().last_seq();
        Server {
            cfg,
            sessions,
            models,
            pairings,
            replies: VecDeque::new(),
            hello: false,
            challenge: [0; 32],
            current_key: None,
            counted_seq,
            kiosk: None,
            watchdog: Watchdog::from_env(),
        }
    }

    /// Tells systemd the daemon is up (a no-op outside systemd).
    pub fn ready(&mut self) {
        let status = format!("device {} serving, model {}", self.device_id(), self.sessions.model_version());
        self.watchdog.ready(&status);
    }

    /// What the server runs on.
    pub fn config(&self) -> &ServerConfig {
        &self.cfg
    }

    /// Runs `kiosk` on this device: from here on the serve loop drives it.
    pub fn set_kiosk(&mut self, kiosk: Kiosk) {
        self.kiosk = Some(kiosk);
    }

    /// The kiosk, if this device runs one.
    pub fn kiosk(&self) -> Option<&Kiosk> {
        self.kiosk.as_ref()
    }

    /// A tap on the kiosk's screen.
    pub fn kiosk_input(&mut self, input: KioskInput) {
        if let Some(k) = self.kiosk.as_mut() {
            k.input(&mut self.sessions, input, Instant::now());
        }
    }

    /// Keeps the device's own work going (finished results, the kiosk) for `time` without a
    /// link: while no host port can be opened, a kiosk still runs its sessions.
    pub fn idle(&mut self, time: Duration, stop: &AtomicBool) {
        let until = Instant::now() + time;
        while Instant::now() < until && !stop.load(Ordering::Relaxed) {
            self.poll();
            std::thread::sleep(POLL);
        }
    }

    /// The paired hosts (at the device: pair a key, reset the list).
    pub fn pairings(&mut self) -> &mut Pairings {
        &mut self.pairings
    }

    /// The model store.
    pub fn model_store(&self) -> &ModelStore {
        &self.models.store
    }

    /// The sessions behind the server (a kiosk starts its own through them).
    pub fn sessions(&mut self) -> &mut Sessions {
        &mut self.sessions
    }

    /// The device id.
    pub fn device_id(&self) -> &str {
        &self.sessions.state().device_id
    }

    /// The result log.
    pub fn log(&self) -> &crate::log::ResultLog {
        self.sessions.log()
    }

    /// Serves requests from `link` until `stop` is set. Returns on a link I/O error.
    ///
    /// The link is a new connection: nothing of an earlier one carries over — not its hello,
    /// not the key its host proved, not its replies (a new host may reuse request ids).
    pub fn serve<P: Read + Write>(&mut self, link: &mut FramedLink<P>, stop: &AtomicBool) -> Result<(), LinkError> {
        self.hello = false;
        self.current_key = None;
        self.replies.clear();
        while !stop.load(Ordering::Relaxed) {
            self.poll();
            if let Some(frame) = link.recv::<HostFrame>(Instant::now() + POLL)? {
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
        // Finished results first, so a status query sees them.
        self.poll();
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

    /// Takes finished results; counts those of a model on trial towards its confirmation;
    /// drives the kiosk.
    pub fn poll(&mut self) {
        self.watchdog.ping(Instant::now());
        let finished = self.sessions.poll();
        if let Some(k) = self.kiosk.as_mut() {
            k.tick(&mut self.sessions, Instant::now());
        }
        if finished == 0 || !matches!(self.models.store.serving(), Serving::Trial(_)) {
            self.counted_seq = self.sessions.log().last_seq();
            return;
        }
        let trial = self.sessions.model_version().to_owned();
        let batch = self.sessions.records_after(self.counted_seq, protocol::MAX_RECORDS_PER_BATCH);
        for r in &batch.records {
            self.counted_seq = r.seq;
            if r.model_version.as_str() == trial && !r.flags.contains(ResultFlags::INSUFFICIENT_DATA) {
                match self.models.store.session_ok() {
                    Ok(true) => tracing::info!(model = %trial, "model on trial confirmed after its sessions"),
                    Ok(false) => {}
                    Err(e) => tracing::error!("cannot record a session on the model on trial: {}", runtime::chain(&e)),
                }
            }
        }
    }

    fn dispatch(&mut self, req: Request) -> Response {
        match req {
            Request::Hello(h) => self.hello(h),
            _ if !self.hello => Response::Error(Error::new(ErrorCode::HelloFirst, "send Hello first")),
            Request::Ping(n) => Response::Pong(n),
            Request::Auth(a) => {
                match self.pairings.authorize(&self.sessions.state().device_id.clone(), &self.challenge, &a) {
                    Ok(()) => {
                        self.current_key = Some(a.host_key);
                        tracing::info!(host_key = %hex::encode(&a.host_key[..8]), "host authorised");
                        Response::DeviceInfo(self.info())
                    }
                    Err(e) => {
                        tracing::warn!("a host failed to authorise: {e}");
                        pairing_refused(&e)
                    }
                }
            }
            Request::PairBegin(p) => {
                let button = self.cfg.board.gpio.is_some();
                self.pairings.begin(p.host_key, &p.name, button).map_or_else(|e| pairing_refused(&e), Response::Pairing)
            }
            Request::PairConfirm(c) => {
                let held = self.cfg.board.gpio.is_some() && self.sessions.button_held();
                let id = self.sessions.state().device_id.clone();
                match self.pairings.confirm(&id, &self.challenge, &c, held) {
                    Ok((hosts, key)) => {
                        // The host holds the key it paired: this connection is authorised.
                        self.current_key = Some(key);
                        Response::Paired(protocol::Pairings { hosts })
                    }
                    Err(e) => pairing_refused(&e),
                }
            }
            _ if self.current_key.is_none() => Response::Error(Error::new(
                ErrorCode::Unauthorized,
                "this host has not proven a paired key on this connection: pair it (mimml pair) first",
            )),
            Request::Unpair => match self.current_key.take() {
                Some(key) => self
                    .pairings
                    .remove(&key)
                    .map_or_else(|e| pairing_refused(&e), |hosts| Response::Paired(protocol::Pairings { hosts })),
                None => Response::Error(Error::new(ErrorCode::Unauthorized, "no host key on this connection")),
            },
            Request::SessionStart(r) => self
                .sessions
                .start(StartRequest {
                    modalities: r.modalities,
                    label: r.label,
                    host_time_ms: r.host_time_ms,
                    origin: Origin::Host,
                })
                .map_or_else(|e| refused(&e), Response::Session),
            Request::TranscriptChunk(c) => self.sessions.add_words(&c).map_or_else(
                |e| refused(&e),
                |utterances| Response::TranscriptAccepted(TranscriptAccepted { session: c.session, utterances }),
            ),
            Request::SessionStop(id) => self.sessions.stop(id).map_or_else(|e| refused(&e), Response::Session),
            Request::SessionStatus(id) => self.sessions.status(id).map_or_else(|e| refused(&e), Response::Session),
            Request::SessionAbort(id) => self.sessions.abort(id).map_or_else(|e| refused(&e), Response::Session),
            Request::Sync(c) => Response::Records(self.sessions.records_after(c.after, usize::from(c.max))),
            Request::SyncAck(a) => {
                self.sessions.ack(a.upto).map_or_else(|e| refused(&e), |upto| Response::Acked(Ack { upto }))
            }
            Request::UploadBegin(b) => self.models.store.begin(&b).map_or_else(|e| store_refused(&e), Response::Upload),
            Request::UploadChunk(c) => self.models.store.chunk(&c).map_or_else(|e| store_refused(&e), Response::Upload),
            Request::UploadStatus => self.models.store.status().map_or_else(|e| store_refused(&e), Response::Upload),
            Request::UploadCommit => self.commit(),
            Request::UploadConfirm => self.models.store.confirm().map_or_else(|e| store_refused(&e), Response::Upload),
            Request::UploadRollback => match self.models.store.rollback("the host asked for it") {
                Ok(status) => {
                    self.serve_confirmed();
                    Response::Upload(status)
                }
                Err(e) => store_refused(&e),
            },
        }
    }

    /// Installs the upload and switches to it between sessions.
    fn commit(&mut self) -> Response {
        let loader = &self.models.loader;
        match self.models.store.commit(|dir| loader(Some(dir))) {
            Ok((status, loaded)) => {
                tracing::info!(model = loaded.model.version(), "new model on trial: it serves from the next session");
                self.sessions.replace_model(loaded);
                Response::Upload(status)
            }
            Err(e) => store_refused(&e),
        }
    }

    /// After a rollback: the confirmed (or factory) model serves from the next session.
    fn serve_confirmed(&mut self) {
        let confirmed = self.models.store.confirmed();
        match (self.models.loader)(confirmed.dir()) {
            Ok(loaded) => self.sessions.replace_model(loaded),
            Err(e) => tracing::error!("the confirmed model does not load: {}", runtime::chain(&e)),
        }
    }

    /// What the device is. Before the host authorised, no result count or session.
    pub fn info(&self) -> DeviceInfo {
        let authorized = self.current_key.is_some();
        let version: ShortStr = truncated(self.sessions.model_version());
        let mut caps = Capabilities::from(self.sessions.available());
        caps.set(Capabilities::SIMULATED, self.cfg.simulated);
        caps.set(Capabilities::KIOSK, self.cfg.board.gpio.is_some());
        DeviceInfo {
            protocol_version: PROTOCOL_VERSION,
            device_id: truncated(&self.sessions.state().device_id),
            board: truncated(&self.cfg.board.name),
            firmware_version: truncated(env!("CARGO_PKG_VERSION")),
            slots: self.models.store.slots(),
            active_model_version: version,
            feature_schema: self.sessions.feature_schema(),
            capabilities: caps,
            last_result_seq: if authorized { self.sessions.log().last_seq() } else { 0 },
            active_session: if authorized { self.sessions.active() } else { None },
            challenge: self.challenge,
            authorized,
        }
    }

    fn hello(&mut self, h: Hello) -> Response {
        if h.protocol_version != PROTOCOL_VERSION {
            tracing::warn!(host = %Escaped(&h.host), version = h.protocol_version, "host speaks another protocol version");
            return Response::Error(Error::new(
                ErrorCode::UnsupportedVersion { supported: PROTOCOL_VERSION },
                &format!(
                    "this device speaks protocol v{PROTOCOL_VERSION}, the host v{}: update the older one",
                    h.protocol_version
                ),
            ));
        }
        tracing::info!(host = %Escaped(&h.host), "host connected");
        self.hello = true;
        self.current_key = None;
        if let Err(e) = getrandom::fill(&mut self.challenge) {
            tracing::error!("no random challenge ({e}): the connection cannot be authorised");
            self.challenge = [0; 32];
            self.hello = false;
            return Response::Error(Error::new(ErrorCode::Internal, "no random source for the challenge"));
        }
        Response::DeviceInfo(self.info())
    }
}
