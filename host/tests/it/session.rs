//! The host's session runner against a scripted device on a pty: what it does with answers a
//! real device should never give.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use features::text::{Speaker, Utterance};
use host::client::DeviceClient;
use host::session::{SessionError, run_session};
use link::FramedLink;
use protocol::*;

/// Serves `port` until `stop`, answering a stop with `Processing` and every status query with
/// `done`; counts status queries.
fn scripted_device(
    port: link::TTYPort,
    done: SessionState,
    stop: Arc<AtomicBool>,
    polls: Arc<AtomicU32>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut link = FramedLink::new(port);
        let session = |state| Response::Session(SessionStatus { session: 5, state, captured_ms: 10 });
        while !stop.load(Ordering::Relaxed) {
            let Ok(Some(HostFrame { id, req })) = link.recv::<HostFrame>(Instant::now() + Duration::from_millis(20))
            else {
                continue;
            };
            let resp = match req {
                Request::SessionStart(_) => session(SessionState::Capturing),
                Request::TranscriptChunk(c) => {
                    Response::TranscriptAccepted(TranscriptAccepted { session: c.session, utterances: c.utterance + 1 })
                }
                Request::SessionStop(_) => session(SessionState::Processing),
                Request::SessionStatus(_) => {
                    polls.fetch_add(1, Ordering::Relaxed);
                    session(done)
                }
                other => Response::Error(Error::new(ErrorCode::NotImplemented, other.name())),
            };
            if link.send(&DeviceFrame { id, resp }).is_err() {
                break;
            }
        }
    })
}

fn run_against(done: SessionState) -> (Result<host::session::SessionOutcome, SessionError>, u32) {
    let (host_end, device_end) = link::pty_pair().expect("pty");
    let stop = Arc::new(AtomicBool::new(false));
    let polls = Arc::new(AtomicU32::new(0));
    let t = scripted_device(device_end, done, Arc::clone(&stop), Arc::clone(&polls));
    let mut client = DeviceClient::new(host_end);
    let words = [Utterance { start_ms: 0, end_ms: 1_000, speaker: Speaker::Participant, text: "hello".into() }];
    let outcome = run_session(&mut client, &words, "t", Modalities::ALL, |_, _| {});
    stop.store(true, Ordering::Relaxed);
    t.join().expect("device thread");
    (outcome, polls.load(Ordering::Relaxed))
}

#[test]
fn a_result_numbered_zero_is_an_error_not_an_underflow() {
    let (outcome, polls) = run_against(SessionState::Done { seq: 0 });
    assert!(matches!(outcome, Err(SessionError::InvalidSeq { session: 5 })), "{outcome:?}");
    assert_eq!(polls, 1, "the host asked for the stopped session's status");
}

#[test]
fn a_failed_session_reports_the_device_code() {
    let (outcome, _) = run_against(SessionState::Failed(ErrorCode::ModelFailure));
    assert!(matches!(outcome, Err(SessionError::Failed { session: 5, code: ErrorCode::ModelFailure })), "{outcome:?}");
}
