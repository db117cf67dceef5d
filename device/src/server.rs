//! The device's side of the protocol, and nothing else: hello gating, the host's proof of its
//! key, the reply cache and dispatch of a request to the device's [`Parts`].
//!
//! [`Server::handle`] answers one [`HostFrame`]; the device's loop ([`crate::daemon`]) reads
//! frames off the link and hands each to it as an event among the others. A stop is answered at
//! once (`Processing`), so the link stays live while the device computes.
//!
//! A request re-sent after a lost reply carries the same id; the server answers it from a small
//! reply cache instead of executing it again, so a retried `SessionStop` never stops twice.
//!
//! Only a paired host that proved its key on this connection (`Auth` over the challenge of this
//! connection's `Hello`) may run sessions, read results or flash models; before that the device
//! answers `Hello`, `Ping` and the pairing requests, and everything else with `Unauthorized`.

use std::collections::VecDeque;

use boards::Board;
use protocol::*;

use crate::models::{ModelStore, StoreError};
use crate::pairing::Pairings;
use crate::session::{Origin, Sessions, StartRequest};
use crate::{ModelLoader, Refusal};

/// Replies remembered for duplicate requests.
const REPLY_CACHE: usize = 32;

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

/// What a request reaches: the sessions, the model store and the paired hosts, and what the
/// device says about itself.
#[derive(Debug)]
pub struct Parts {
    /// The board and whether inputs are simulated.
    pub cfg: ServerConfig,
    /// The session lifecycle and the result log.
    pub sessions: Sessions,
    /// The model store and its loader.
    pub models: Models,
    /// The paired hosts.
    pub pairings: Pairings,
}

/// The protocol server: the state of one host connection.
#[derive(Debug, Default)]
pub struct Server {
    replies: VecDeque<(RequestId, Response)>,
    hello: bool,
    /// This connection's challenge (fresh for every Hello).
    challenge: [u8; 32],
    /// The paired key this connection's host proved (none: not authorised).
    current_key: Option<PublicKey>,
}

/// A refusal: the error's code, and the error with its causes as the detail.
fn refused(e: &dyn Refusal) -> Response {
    Response::Error(Error::new(e.code(), &runtime::chain(e)))
}

/// A refused model upload, also kept in the device's log (a forged bundle is worth knowing of).
fn store_refused(e: &StoreError) -> Response {
    tracing::warn!("model upload: {}", runtime::chain(e));
    refused(e)
}

impl Server {
    /// A new connection: nothing of an earlier one carries over — not its hello, not the key its
    /// host proved, not its replies (a new host may reuse request ids).
    pub fn connected(&mut self) {
        *self = Server::default();
    }

    /// Handles one request.
    pub fn handle(&mut self, frame: HostFrame, parts: &mut Parts) -> DeviceFrame {
        let HostFrame { id, req } = frame;
        if let Some((_, cached)) = self.replies.iter().find(|(rid, _)| *rid == id) {
            tracing::debug!(id, "duplicate request, answering from the reply cache");
            return DeviceFrame { id, resp: cached.clone() };
        }
        let is_hello = matches!(req, Request::Hello(_));
        let resp = self.dispatch(req, parts);
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

    fn dispatch(&mut self, req: Request, parts: &mut Parts) -> Response {
        match req {
            Request::Hello(h) => self.hello(h, parts),
            _ if !self.hello => Response::Error(Error::new(ErrorCode::HelloFirst, "send Hello first")),
            Request::Ping(n) => Response::Pong(n),
            Request::Auth(a) => {
                match parts.pairings.authorize(&parts.sessions.state().device_id.clone(), &self.challenge, &a) {
                    Ok(()) => {
                        self.current_key = Some(a.host_key);
                        tracing::info!(host_key = %hex::encode(&a.host_key[..8]), "host authorised");
                        Response::DeviceInfo(self.info(parts))
                    }
                    Err(e) => {
                        tracing::warn!("a host failed to authorise: {e}");
                        refused(&e)
                    }
                }
            }
            Request::PairBegin(p) => {
                let button = parts.cfg.board.gpio.is_some();
                parts.pairings.begin(p.host_key, &p.name, button).map_or_else(|e| refused(&e), Response::Pairing)
            }
            Request::PairConfirm(c) => {
                let held = parts.cfg.board.gpio.is_some() && parts.sessions.button_held();
                let id = parts.sessions.state().device_id.clone();
                match parts.pairings.confirm(&id, &self.challenge, &c, held) {
                    Ok((hosts, key)) => {
                        // The host holds the key it paired: this connection is authorised.
                        self.current_key = Some(key);
                        Response::Paired(protocol::Pairings { hosts })
                    }
                    Err(e) => refused(&e),
                }
            }
            _ if self.current_key.is_none() => Response::Error(Error::new(
                ErrorCode::Unauthorized,
                "this host has not proven a paired key on this connection: pair it (mimml pair) first",
            )),
            Request::Unpair => match self.current_key.take() {
                Some(key) => parts
                    .pairings
                    .remove(&key)
                    .map_or_else(|e| refused(&e), |hosts| Response::Paired(protocol::Pairings { hosts })),
                None => Response::Error(Error::new(ErrorCode::Unauthorized, "no host key on this connection")),
            },
            Request::SessionStart(r) => parts
                .sessions
                .start(StartRequest {
                    modalities: r.modalities,
                    label: r.label,
                    host_time_ms: r.host_time_ms,
                    origin: Origin::Host,
                })
                .map_or_else(|e| refused(&e), Response::Session),
            Request::TranscriptChunk(c) => parts.sessions.add_words(&c).map_or_else(
                |e| refused(&e),
                |utterances| Response::TranscriptAccepted(TranscriptAccepted { session: c.session, utterances }),
            ),
            Request::SessionStop(id) => parts.sessions.stop(id).map_or_else(|e| refused(&e), Response::Session),
            Request::SessionStatus(id) => parts.sessions.status(id).map_or_else(|e| refused(&e), Response::Session),
            Request::SessionAbort(id) => parts.sessions.abort(id).map_or_else(|e| refused(&e), Response::Session),
            Request::Sync(c) => Response::Records(parts.sessions.records_after(c.after, usize::from(c.max))),
            Request::SyncAck(a) => {
                parts.sessions.ack(a.upto).map_or_else(|e| refused(&e), |upto| Response::Acked(Ack { upto }))
            }
            Request::UploadBegin(b) => {
                parts.models.store.begin(&b).map_or_else(|e| store_refused(&e), Response::Upload)
            }
            Request::UploadChunk(c) => {
                parts.models.store.chunk(&c).map_or_else(|e| store_refused(&e), Response::Upload)
            }
            Request::UploadStatus => parts.models.store.status().map_or_else(|e| store_refused(&e), Response::Upload),
            Request::UploadCommit => commit(parts),
            Request::UploadConfirm => parts.models.store.confirm().map_or_else(|e| store_refused(&e), Response::Upload),
            Request::UploadRollback => match parts.models.store.rollback("the host asked for it") {
                Ok(status) => {
                    serve_confirmed(parts);
                    Response::Upload(status)
                }
                Err(e) => store_refused(&e),
            },
        }
    }

    /// What the device is. Before the host authorised, no result count or session.
    pub fn info(&self, parts: &Parts) -> DeviceInfo {
        let authorized = self.current_key.is_some();
        let version: ShortStr = truncated(parts.sessions.model_version());
        let mut caps = Capabilities::from(parts.sessions.available());
        caps.set(Capabilities::SIMULATED, parts.cfg.simulated);
        caps.set(Capabilities::KIOSK, parts.cfg.board.gpio.is_some());
        DeviceInfo {
            protocol_version: PROTOCOL_VERSION,
            device_id: truncated(&parts.sessions.state().device_id),
            board: truncated(&parts.cfg.board.name),
            firmware_version: truncated(env!("CARGO_PKG_VERSION")),
            slots: parts.models.store.slots(),
            active_model_version: version,
            feature_schema: parts.sessions.feature_schema(),
            capabilities: caps,
            last_result_seq: if authorized { parts.sessions.log().last_seq() } else { 0 },
            active_session: if authorized { parts.sessions.active() } else { None },
            challenge: self.challenge,
            authorized,
        }
    }

    fn hello(&mut self, h: Hello, parts: &Parts) -> Response {
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
        Response::DeviceInfo(self.info(parts))
    }
}

/// Installs the upload and switches to it between sessions.
fn commit(parts: &mut Parts) -> Response {
    let loader = &parts.models.loader;
    match parts.models.store.commit(|dir| loader(Some(dir))) {
        Ok((status, loaded)) => {
            tracing::info!(model = loaded.model.version(), "new model on trial: it serves from the next session");
            parts.sessions.replace_model(loaded);
            Response::Upload(status)
        }
        Err(e) => store_refused(&e),
    }
}

/// After a rollback: the confirmed (or factory) model serves from the next session.
fn serve_confirmed(parts: &mut Parts) {
    let confirmed = parts.models.store.confirmed();
    match (parts.models.loader)(confirmed.dir()) {
        Ok(loaded) => parts.sessions.replace_model(loaded),
        Err(e) => tracing::error!("the confirmed model does not load: {}", runtime::chain(&e)),
    }
}
