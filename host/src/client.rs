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

/// Why a call to the device did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The link failed (port closed, I/O error).
    #[error(transparent)]
    Link(#[from] LinkError),
    /// No answer after every retry.
    #[error("device did not answer {what} after {attempts} attempts")]
    Timeout {
        /// The endpoint.
        what: &'static str,
        /// Attempts made.
        attempts: u32,
    },
    /// The device refused or failed the request.
    #[error("device refused {what}: {code:?}: {detail}")]
    Device {
        /// The endpoint.
        what: &'static str,
        /// The device's code.
        code: ErrorCode,
        /// The device's explanation.
        detail: String,
    },
    /// The device answered with a response of another endpoint.
    #[error("device answered {what} with an unexpected {got}")]
    Unexpected {
        /// The endpoint.
        what: &'static str,
        /// The response's variant.
        got: &'static str,
    },
    /// The device restarted while it held the session, before the session's result was stored:
    /// the session has no result and must be run again.
    #[error(
        "the device restarted while session {session} was {stage}; it holds no result for it: run the session again"
    )]
    LostInRestart {
        /// The session.
        session: SessionId,
        /// Where the session stood when the device went away.
        stage: &'static str,
    },
    /// A session did not finish within the time the host allows.
    #[error("session {session} was still {state:?} after {waited:?}")]
    Unfinished {
        /// The session.
        session: SessionId,
        /// Where it stood.
        state: SessionState,
        /// How long the host waited.
        waited: Duration,
    },
}

/// How long to wait for one reply, and how often to try.
#[derive(Debug, Clone, Copy)]
pub struct Patience {
    /// Wait for one reply.
    pub per_attempt: Duration,
    /// Sends of the same request before giving up.
    pub attempts: u32,
}

impl Patience {
    /// Every request: the device answers at once (a stop computes on a worker).
    pub const QUICK: Patience = Patience { per_attempt: Duration::from_millis(1500), attempts: 5 };
}

/// How long [`DeviceClient::wait_for_result`] waits for a stopped session's result: features
/// and inference over a long interview on a Raspberry Pi take seconds, not minutes.
pub const RESULT_WAIT: Duration = Duration::from_secs(300);

/// How often a stopped session's status is asked for.
const STATUS_EVERY: Duration = Duration::from_millis(25);

/// A device on the other end of a byte stream.
#[derive(Debug)]
pub struct DeviceClient<P> {
    link: FramedLink<P>,
    next_id: RequestId,
    patience: Patience,
    /// The host's key, proven to the device after every hello.
    key: Option<ed25519_dalek::SigningKey>,
    /// What the last hello said (its challenge signs this connection's proofs).
    info: Option<DeviceInfo>,
}

impl<P: Read + Write> DeviceClient<P> {
    /// Wraps a port. Request ids start from the clock so that ids of an earlier run of the
    /// host are not mistaken for this run's.
    pub fn new(port: P) -> Self {
        let seed = SystemTime::now().duration_since(UNIX_EPOCH).map_or(1, |d| d.subsec_nanos() ^ d.as_secs() as u32);
        DeviceClient {
            link: FramedLink::new(port),
            next_id: seed | 1,
            patience: Patience::QUICK,
            key: None,
            info: None,
        }
    }

    /// Proves `key` (paired with the device) after every hello.
    pub fn with_key(mut self, key: ed25519_dalek::SigningKey) -> Self {
        self.key = Some(key);
        self
    }

    /// Waits and retries as `patience` says.
    pub fn with_patience(mut self, patience: Patience) -> Self {
        self.patience = patience;
        self
    }

    /// Frames and bytes sent and received, bad frames seen.
    pub fn stats(&self) -> LinkStats {
        self.link.stats()
    }

    /// Calls endpoint `E`: sends the request with a fresh id (the same id on every retry) and
    /// returns the answer; device errors become [`ClientError::Device`].
    pub fn call<E: Endpoint>(&mut self, req: E::Request) -> Result<E::Response, ClientError> {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        let frame = HostFrame { id, req: E::request(req) };
        for attempt in 1..=self.patience.attempts {
            if attempt > 1 {
                tracing::debug!(what = E::NAME, id, attempt, "no reply yet, sending again");
            }
            self.link.send(&frame)?;
            let deadline = Instant::now() + self.patience.per_attempt;
            while let Some(reply) = self.link.recv::<DeviceFrame>(deadline)? {
                if reply.id != id {
                    tracing::debug!(got = reply.id, want = id, "discarding a stale reply");
                    continue;
                }
                return E::response(reply.resp).map_err(|other| match other {
                    Response::Error(e) => {
                        ClientError::Device { what: E::NAME, code: e.code, detail: e.detail.as_str().to_owned() }
                    }
                    other => ClientError::Unexpected { what: E::NAME, got: other.name() },
                });
            }
        }
        Err(ClientError::Timeout { what: E::NAME, attempts: self.patience.attempts })
    }

    /// Opens the connection and, with a key, proves it; returns what the device is. A key the
    /// device does not know leaves the connection unauthorised (`info.authorized` false): the
    /// device still says what it is, and refuses the rest with `Unauthorized`.
    pub fn hello(&mut self) -> Result<DeviceInfo, ClientError> {
        let info = self.call::<endpoints::Hello>(Hello {
            protocol_version: PROTOCOL_VERSION,
            host: truncated(concat!("mimml ", env!("CARGO_PKG_VERSION"))),
        })?;
        self.info = Some(info.clone());
        let Some(key) = self.key.clone() else { return Ok(info) };
        use ed25519_dalek::Signer;
        let host_key = key.verifying_key().to_bytes();
        let msg = protocol::signed::auth_message(&info.device_id, &info.challenge, &host_key);
        let auth =
            Auth { host_key, signature: heapless::Vec::from_slice(&key.sign(&msg).to_bytes()).unwrap_or_default() };
        match self.call::<endpoints::Auth>(auth) {
            Ok(full) => {
                self.info = Some(full.clone());
                Ok(full)
            }
            Err(ClientError::Device { code: ErrorCode::Unauthorized, .. }) => {
                tracing::debug!("this host's key is not paired with the device");
                Ok(info)
            }
            Err(e) => Err(e),
        }
    }

    /// Pairs this client's key: the device shows a code, `code` asks the person at the device
    /// for it (given how the device confirms), and the signed answer completes the pairing.
    /// Returns how many hosts the device has paired. Call [`hello`](Self::hello) first.
    pub fn pair(
        &mut self,
        name: &str,
        code: impl FnOnce(&PairChallenge) -> Result<u32, ClientError>,
    ) -> Result<u8, ClientError> {
        use ed25519_dalek::Signer;
        let (Some(key), Some(info)) = (self.key.clone(), self.info.clone()) else {
            return Err(ClientError::Unexpected { what: "pair", got: "no key or no hello" });
        };
        let host_key = key.verifying_key().to_bytes();
        let challenge = self.call::<endpoints::PairBegin>(PairBegin { host_key, name: truncated(name) })?;
        let code = code(&challenge)?;
        let msg = protocol::signed::pair_message(&info.device_id, &info.challenge, code, &host_key);
        let signature = heapless::Vec::from_slice(&key.sign(&msg).to_bytes()).unwrap_or_default();
        Ok(self.call::<endpoints::PairConfirm>(PairConfirm { code, signature })?.hosts)
    }

    /// Forgets this host at the device. Returns how many hosts stay paired.
    pub fn unpair(&mut self) -> Result<u8, ClientError> {
        Ok(self.call::<endpoints::Unpair>(())?.hosts)
    }

    /// Liveness check.
    pub fn ping(&mut self, nonce: u32) -> Result<u32, ClientError> {
        self.call::<endpoints::Ping>(nonce)
    }

    /// Starts a session capturing `modalities`, labelled `label`.
    pub fn start_session(&mut self, modalities: Modalities, label: &str) -> Result<SessionStatus, ClientError> {
        let host_time_ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
        self.call::<endpoints::SessionStart>(SessionStart { modalities, label: truncated(label), host_time_ms })
    }

    /// Pushes one utterance, split into parts of at most [`MAX_TEXT`] bytes at character
    /// boundaries. Returns the device's count of complete utterances.
    pub fn push_utterance(&mut self, session: SessionId, index: u32, u: &Utterance) -> Result<u32, ClientError> {
        let parts = split_text(&u.text);
        let mut accepted = 0;
        for (part, text) in parts.iter().enumerate() {
            let chunk = TranscriptChunk {
                session,
                utterance: index,
                part: part as u16,
                last_part: part + 1 == parts.len(),
                start_ms: u.start_ms,
                end_ms: u.end_ms,
                speaker: u.speaker.into(),
                text: truncated(text),
            };
            accepted = self.call::<endpoints::Transcript>(chunk)?.utterances;
        }
        Ok(accepted)
    }

    /// Ends capture; the device answers at once and computes on (`Processing`).
    pub fn stop_session(&mut self, session: SessionId) -> Result<SessionStatus, ClientError> {
        self.call::<endpoints::SessionStop>(session)
    }

    /// Where a session stands.
    pub fn session_status(&mut self, session: SessionId) -> Result<SessionStatus, ClientError> {
        self.call::<endpoints::SessionStatus>(session)
    }

    /// Aborts a session (any host may: one whose host has gone); no result is made.
    pub fn abort_session(&mut self, session: SessionId) -> Result<SessionStatus, ClientError> {
        self.call::<endpoints::SessionAbort>(session)
    }

    /// Asks for a stopped session's status until it is no longer processing, for at most
    /// `limit`; returns that status (`Done` or `Failed`). A device that restarted meanwhile
    /// (it asks for a hello again) is greeted again and asked once more: a result it stored
    /// before the restart is found by its session.
    pub fn wait_for_result(&mut self, session: SessionId, limit: Duration) -> Result<SessionStatus, ClientError> {
        let started = Instant::now();
        let mut restarted = false;
        loop {
            let status = match self.session_status(session) {
                Ok(s) => s,
                Err(ClientError::Device { code: ErrorCode::HelloFirst, .. }) if !restarted => {
                    tracing::warn!(session, "the device restarted; greeting it again");
                    self.hello()?;
                    restarted = true;
                    continue;
                }
                Err(ClientError::Device { code: ErrorCode::UnknownSession, .. }) if restarted => {
                    return Err(ClientError::LostInRestart { session, stage: "being computed" });
                }
                Err(e) => return Err(e),
            };
            if !matches!(status.state, SessionState::Processing | SessionState::Capturing) {
                return Ok(status);
            }
            if started.elapsed() >= limit {
                return Err(ClientError::Unfinished { session, state: status.state, waited: started.elapsed() });
            }
            std::thread::sleep(STATUS_EVERY);
        }
    }

    /// Up to `max` result records after sequence number `after`.
    pub fn records_after(&mut self, after: u64, max: u8) -> Result<RecordBatch, ClientError> {
        self.call::<endpoints::Sync>(SyncCursor { after, max })
    }

    /// Tells the device every record up to `upto` is stored; returns the device's ack.
    pub fn ack(&mut self, upto: u64) -> Result<u64, ClientError> {
        Ok(self.call::<endpoints::SyncAck>(Ack { upto })?.upto)
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
