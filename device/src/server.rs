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

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use boards::Board;
use link::{FramedLink, LinkError};
use protocol::*;

use crate::session::{Origin, SessionError, Sessions, StartRequest};

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

/// The protocol server.
#[derive(Debug)]
pub struct Server {
    cfg: ServerConfig,
    sessions: Sessions,
    replies: VecDeque<(RequestId, Response)>,
    hello: bool,
}

/// A refusal: the error's code, and the error with its causes as the detail.
fn refused(e: &SessionError) -> Response {
    Response::Error(Error::new(e.code(), &runtime::chain(e)))
}

impl Server {
    /// A server in front of `sessions`.
    pub fn new(cfg: ServerConfig, sessions: Sessions) -> Server {
        tracing::info!(
            device_id = %sessions.state().device_id,
            board = %cfg.board.name,
            model = sessions.model_version(),
            results = sessions.log().len(),
            "device ready"
        );
        Server { cfg, sessions, replies: VecDeque::new(), hello: false }
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
    pub fn serve<P: Read + Write>(&mut self, link: &mut FramedLink<P>, stop: &AtomicBool) -> Result<(), LinkError> {
        while !stop.load(Ordering::Relaxed) {
            self.sessions.poll();
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
        self.sessions.poll();
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
            _ if !self.hello => Response::Error(Error::new(ErrorCode::HelloFirst, "send Hello first")),
            Request::Ping(n) => Response::Pong(n),
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
            Request::UploadBegin(_)
            | Request::UploadChunk(_)
            | Request::UploadStatus
            | Request::UploadCommit
            | Request::UploadConfirm
            | Request::UploadRollback => Response::Error(Error::new(
                ErrorCode::NotImplemented,
                "model upload is not in this firmware (see the model-flashing issue)",
            )),
        }
    }

    /// What the device is.
    pub fn info(&self) -> DeviceInfo {
        let mut slots = protocol::heapless::Vec::new();
        let version: ShortStr = truncated(self.sessions.model_version());
        let _ = slots.push(ModelSlot { slot: 0, state: SlotState::Active, model_version: version.clone() });
        let _ = slots.push(ModelSlot { slot: 1, state: SlotState::Empty, model_version: ShortStr::new() });
        let mut caps = Capabilities::from(self.sessions.available());
        caps.set(Capabilities::SIMULATED, self.cfg.simulated);
        caps.set(Capabilities::KIOSK, self.cfg.board.gpio.is_some());
        DeviceInfo {
            protocol_version: PROTOCOL_VERSION,
            device_id: truncated(&self.sessions.state().device_id),
            board: truncated(&self.cfg.board.name),
            firmware_version: truncated(env!("CARGO_PKG_VERSION")),
            slots,
            active_model_version: version,
            feature_schema: self.sessions.feature_schema(),
            capabilities: caps,
            last_result_seq: self.sessions.log().last_seq(),
            active_session: self.sessions.active(),
        }
    }

    fn hello(&mut self, h: Hello) -> Response {
        if h.protocol_version != PROTOCOL_VERSION {
            tracing::warn!(host = %Escaped(&h.host), version = h.protocol_version, "host speaks another protocol version");
            return Response::Error(Error::new(
                ErrorCode::UnsupportedVersion { supported: PROTOCOL_VERSION },
                "protocol version not supported",
            ));
        }
        tracing::info!(host = %Escaped(&h.host), "host connected");
        self.hello = true;
        Response::DeviceInfo(self.info())
    }
}
