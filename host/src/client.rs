//! A typed client for the device: one method per endpoint (the postcard-rpc client pattern).
//!
//! Every call sends a request with a fresh id and waits for the response with that id. On a
//! timeout the same request (same id) is sent again, so a reply lost to line noise is recovered
//! and the device, which caches replies by id, never executes a request twice.

use std::io::{Read, Write};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use features::text::Utterance;
use link::{FramedLink, LinkError, LinkStats};
use protocol::*;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(transparent)]
    Link(#[from] LinkError),
    #[error("device did not answer {what} after {attempts} attempts")]
    Timeout { what: &'static str, attempts: u32 },
    #[error("device refused {what}: {code:?}: {detail}")]
    Device { what: &'static str, code: ErrorCode, detail: String },
    #[error("device answered {what} with an unexpected {got}")]
    Unexpected { what: &'static str, got: String },
}

/// How long to wait for one reply, and how often to try.
#[derive(Debug, Clone, Copy)]
pub struct Patience {
    pub per_attempt: Duration,
    pub attempts: u32,
}

impl Patience {
    pub const QUICK: Patience = Patience { per_attempt: Duration::from_millis(1500), attempts: 5 };
    /// For `SessionStop`: the device computes features and the prediction before answering.
    pub const COMPUTE: Patience = Patience { per_attempt: Duration::from_secs(5), attempts: 60 };
}

#[derive(Debug)]
pub struct DeviceClient<P> {
    link: FramedLink<P>,
    next_id: RequestId,
    patience: Patience,
}

fn name(r: &Response) -> String {
    let s = format!("{r:?}");
    s.split(['(', ' ', '{']).next().unwrap_or_default().to_owned()
}

macro_rules! expect {
    ($resp:expr, $what:expr, $pat:pat => $val:expr) => {
        match $resp {
            $pat => Ok($val),
            other => Err(ClientError::Unexpected { what: $what, got: name(&other) }),
        }
    };
}

impl<P: Read + Write> DeviceClient<P> {
    /// Wraps a port. Request ids start from the clock so that ids of an earlier run of the
    /// host are not mistaken for this run's.
    pub fn new(port: P) -> Self {
        let seed = SystemTime::now().duration_since(UNIX_EPOCH).map_or(1, |d| d.subsec_nanos() ^ d.as_secs() as u32);
        DeviceClient { link: FramedLink::new(port), next_id: seed | 1, patience: Patience::QUICK }
    }

    pub fn with_patience(mut self, patience: Patience) -> Self {
        self.patience = patience;
        self
    }

    pub fn stats(&self) -> LinkStats {
        self.link.stats()
    }

    /// Sends `req` and returns the device's response to it; device errors become
    /// [`ClientError::Device`].
    pub fn call(&mut self, what: &'static str, req: Request, patience: Patience) -> Result<Response, ClientError> {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        let frame = HostFrame { id, req };
        for attempt in 1..=patience.attempts {
            if attempt > 1 {
                tracing::debug!(what, id, attempt, "no reply yet, sending again");
            }
            self.link.send(&frame)?;
            let deadline = Instant::now() + patience.per_attempt;
            while let Some(reply) = self.link.recv::<DeviceFrame>(deadline)? {
                if reply.id != id {
                    tracing::debug!(got = reply.id, want = id, "discarding a stale reply");
                    continue;
                }
                return match reply.resp {
                    Response::Error(e) => {
                        Err(ClientError::Device { what, code: e.code, detail: e.detail.as_str().to_owned() })
                    }
                    resp => Ok(resp),
                };
            }
        }
        Err(ClientError::Timeout { what, attempts: patience.attempts })
    }

    fn quick(&mut self, what: &'static str, req: Request) -> Result<Response, ClientError> {
        self.call(what, req, self.patience)
    }

    pub fn hello(&mut self) -> Result<DeviceInfo, ClientError> {
        let req = Request::Hello(Hello {
            protocol_version: PROTOCOL_VERSION,
            host: truncated(concat!("mimml ", env!("CARGO_PKG_VERSION"))),
        });
        expect!(self.quick("hello", req)?, "hello", Response::DeviceInfo(i) => i)
    }

    pub fn ping(&mut self, nonce: u32) -> Result<u32, ClientError> {
        expect!(self.quick("ping", Request::Ping(nonce))?, "ping", Response::Pong(n) => n)
    }

    pub fn start_session(&mut self, modalities: Modalities, label: &str) -> Result<SessionStatus, ClientError> {
        let host_time_ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
        let req = Request::SessionStart(SessionStart { modalities, label: truncated(label), host_time_ms });
        expect!(self.quick("session start", req)?, "session start", Response::Session(s) => s)
    }

    /// Pushes one utterance, split into parts of at most [`MAX_TEXT`] bytes at character
    /// boundaries. Returns the device's count of complete utterances.
    pub fn push_utterance(&mut self, session: SessionId, index: u32, u: &Utterance) -> Result<u32, ClientError> {
        let parts = split_text(&u.text);
        let mut accepted = 0;
        for (part, text) in parts.iter().enumerate() {
            let req = Request::TranscriptChunk(TranscriptChunk {
                session,
                utterance: index,
                part: part as u16,
                last_part: part + 1 == parts.len(),
                start_ms: u.start_ms,
                end_ms: u.end_ms,
                speaker: u.speaker.into(),
                text: truncated(text),
            });
            accepted =
                expect!(self.quick("transcript", req)?, "transcript", Response::TranscriptAccepted(a) => a.utterances)?;
        }
        Ok(accepted)
    }

    /// Ends the session; returns once the device has logged the result (or failed).
    pub fn stop_session(&mut self, session: SessionId) -> Result<SessionStatus, ClientError> {
        expect!(self.call("session stop", Request::SessionStop(session), Patience::COMPUTE)?, "session stop", Response::Session(s) => s)
    }

    pub fn session_status(&mut self, session: SessionId) -> Result<SessionStatus, ClientError> {
        expect!(self.quick("session status", Request::SessionStatus(session))?, "session status", Response::Session(s) => s)
    }

    pub fn records_after(&mut self, after: u64, max: u8) -> Result<RecordBatch, ClientError> {
        expect!(self.quick("sync", Request::Sync(SyncCursor { after, max }))?, "sync", Response::Records(b) => b)
    }

    pub fn ack(&mut self, upto: u64) -> Result<u64, ClientError> {
        expect!(self.quick("sync ack", Request::SyncAck(Ack { upto }))?, "sync ack", Response::Acked(a) => a.upto)
    }
}

/// Splits text into pieces of at most [`MAX_TEXT`] bytes at character boundaries; an empty
/// text is one empty piece.
pub fn split_text(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = text;
    while rest.len() > MAX_TEXT {
        let mut cut = MAX_TEXT;
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        out.push(&rest[..cut]);
        rest = &rest[cut..];
    }
    out.push(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_text_splits_at_char_boundaries_and_rejoins() {
        let text = "é".repeat(MAX_TEXT); // 2 bytes each
        let parts = split_text(&text);
        assert_eq!(parts.len(), 2);
        assert!(parts.iter().all(|p| p.len() <= MAX_TEXT));
        assert_eq!(parts.concat(), text);
        assert_eq!(split_text(""), vec![""]);
    }
}
