//! One screening session driven from the host: start, push the transcript, stop, fetch the
//! result.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use features::text::Utterance;
use protocol::{ErrorCode, Modalities, ResultRecord, SessionId, SessionState};

use crate::client::{ClientError, DeviceClient, RESULT_WAIT};

/// Why a session produced no result on the host.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// Talking to the device failed.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The device could not compute or store the result.
    #[error("session {session} failed on the device: {code:?} (see the device log)")]
    Failed {
        /// The session.
        session: SessionId,
        /// The device's code.
        code: ErrorCode,
    },
    /// The device reported a result it then did not return.
    #[error("device reported result #{seq} for session {session} but did not return it")]
    MissingResult {
        /// The session.
        session: SessionId,
        /// The sequence number reported.
        seq: u64,
    },
    /// The transcript exceeds a limit of the protocol; nothing was sent.
    #[error("the transcript is too large for one session: {0}")]
    TooLarge(String),
    /// The device reported sequence number 0, which no result has (they start at 1).
    #[error("device reported result #0 for session {session}: not a valid sequence number")]
    InvalidSeq {
        /// The session.
        session: SessionId,
    },
}

/// What a session produced, with timings.
#[derive(Debug, Clone)]
pub struct SessionOutcome {
    /// The session.
    pub session: SessionId,
    /// Its result, as the device logged it.
    pub record: ResultRecord,
    /// Utterances pushed.
    pub utterances: usize,
    /// Time to push the transcript.
    pub push: Duration,
    /// From stop request to logged result (features + inference + log write + link).
    pub stop: Duration,
}

/// Runs a session. `progress(done, total)` is called after each utterance is pushed.
pub fn run_session<P: Read + Write>(
    client: &mut DeviceClient<P>,
    transcript: &[Utterance],
    label: &str,
    modalities: Modalities,
    mut progress: impl FnMut(usize, usize),
) -> Result<SessionOutcome, SessionError> {
    check_limits(transcript)?;
    let started = client.start_session(modalities, label)?;
    let session = started.session;
    let t = Instant::now();
    push_transcript(client, session, transcript, &mut progress)?;
    let push = t.elapsed();
    let t = Instant::now();
    let record = stop_session(client, session)?;
    Ok(SessionOutcome { session, record, utterances: transcript.len(), push, stop: t.elapsed() })
}

/// Pushes a whole transcript into a capturing session (one the host started, or a kiosk's),
/// after checking it against the device's limits. `progress(done, total)` after each utterance.
pub fn push_transcript<P: Read + Write>(
    client: &mut DeviceClient<P>,
    session: SessionId,
    transcript: &[Utterance],
    mut progress: impl FnMut(usize, usize),
) -> Result<(), SessionError> {
    check_limits(transcript)?;
    for (i, u) in transcript.iter().enumerate() {
        client.push_utterance(session, i as u32, u)?;
        progress(i + 1, transcript.len());
    }
    Ok(())
}

/// Stops `session` (whoever started it), waits for the device to compute and store its result,
/// and fetches that result.
pub fn stop_session<P: Read + Write>(
    client: &mut DeviceClient<P>,
    session: SessionId,
) -> Result<ResultRecord, SessionError> {
    let t = Instant::now();
    client.stop_session(session)?;
    let status = client.wait_for_result(session, RESULT_WAIT)?;
    let seq = match status.state {
        SessionState::Done { seq: 0 } => return Err(SessionError::InvalidSeq { session }),
        SessionState::Done { seq } => seq,
        SessionState::Failed(code) => return Err(SessionError::Failed { session, code }),
        state @ (SessionState::Capturing | SessionState::Processing) => {
            return Err(ClientError::Unfinished { session, state, waited: t.elapsed() }.into());
        }
    };
    let batch = client.records_after(seq - 1, 1)?;
    batch.records.into_iter().find(|r| r.seq == seq).ok_or(SessionError::MissingResult { session, seq })
}

/// The device's transcript limits ([`protocol::MAX_UTTERANCES`] and the byte limits), checked
/// before a session starts so that a transcript the device would refuse is never half sent.
pub fn check_limits(transcript: &[Utterance]) -> Result<(), SessionError> {
    if transcript.len() > protocol::MAX_UTTERANCES as usize {
        return Err(SessionError::TooLarge(format!(
            "{} utterances; a session takes at most {}",
            transcript.len(),
            protocol::MAX_UTTERANCES
        )));
    }
    if let Some((i, u)) = transcript.iter().enumerate().find(|(_, u)| u.text.len() > protocol::MAX_UTTERANCE_BYTES) {
        return Err(SessionError::TooLarge(format!(
            "utterance {} has {} bytes; an utterance holds at most {}",
            i + 1,
            u.text.len(),
            protocol::MAX_UTTERANCE_BYTES
        )));
    }
    let total: usize = transcript.iter().map(|u| u.text.len()).sum();
    if total > protocol::MAX_SESSION_TEXT_BYTES {
        return Err(SessionError::TooLarge(format!(
            "{total} bytes of text; a session takes at most {}",
            protocol::MAX_SESSION_TEXT_BYTES
        )));
    }
    Ok(())
}
