//! One screening session driven from the host: start, push the transcript, stop, fetch the
//! result.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use features::text::Utterance;
use protocol::{ErrorCode, Modalities, ResultRecord, SessionId, SessionState};

use crate::client::{ClientError, DeviceClient};

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("session {session} failed on the device: {code:?} (see the device log)")]
    Failed { session: SessionId, code: ErrorCode },
    #[error("device reported result #{seq} for session {session} but did not return it")]
    MissingResult { session: SessionId, seq: u64 },
}

/// What a session produced, with timings.
#[derive(Debug, Clone)]
pub struct SessionOutcome {
    pub session: SessionId,
    pub record: ResultRecord,
    pub utterances: usize,
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
    let started = client.start_session(modalities, label)?;
    let session = started.session;
    let t = Instant::now();
    for (i, u) in transcript.iter().enumerate() {
        client.push_utterance(session, i as u32, u)?;
        progress(i + 1, transcript.len());
    }
    let push = t.elapsed();
    let t = Instant::now();
    let status = client.stop_session(session)?;
    let stop = t.elapsed();
    let seq = match status.state {
        SessionState::Done { seq } => seq,
        SessionState::Failed(code) => return Err(SessionError::Failed { session, code }),
        SessionState::Capturing | SessionState::Processing => {
            return Err(SessionError::Client(ClientError::Unexpected {
                what: "session stop",
                got: "an unfinished session".into(),
            }));
        }
    };
    let batch = client.records_after(seq - 1, 1)?;
    let record =
        batch.records.into_iter().find(|r| r.seq == seq).ok_or(SessionError::MissingResult { session, seq })?;
    Ok(SessionOutcome { session, record, utterances: transcript.len(), push, stop })
}
