//! Host ↔ device over a real pseudo-terminal: hello, transcript push, session, result sync —
//! clean, and with a damaged link.

use std::collections::HashMap;

use host::client::DeviceClient;
use host::db::{Filter, ResultsDb};
use host::session::run_session;
use host::sync::sync;
use protocol::{DeviceFrame, HostFrame, Modalities, ResultFlags, ResultRecord};
use tests::{Fault, FaultyPort, sample_session};

struct Run {
    record: ResultRecord,
    device_id: String,
    db_rows: Vec<ResultRecord>,
    host_bad_frames: u64,
    device_log_len: usize,
    /// Faults applied on each side, as (kind, occurrence).
    applied: Vec<(String, usize)>,
    /// Frames sent by the host, by kind.
    host_sent: HashMap<String, usize>,
    /// Frames sent by the device, by kind.
    device_sent: HashMap<String, usize>,
}

/// One whole session on a fresh device, with the given faults on host→device and
/// device→host frames.
fn session(host_faults: Vec<(&'static str, usize, Fault)>, device_faults: Vec<(&'static str, usize, Fault)>) -> Run {
    let dir = tempfile::tempdir().expect("tempdir");
    let (host_end, device_end) = link::pty_pair().expect("pty pair");
    let device_port = FaultyPort::<_, DeviceFrame>::new(device_end, device_faults);
    let (device_applied, device_sent) = (device_port.applied(), device_port.sent());
    let rig = device::DeviceThread::simulated(&dir.path().join("device"), &sample_session(), device_port)
        .expect("device starts");
    let host_port = FaultyPort::<_, HostFrame>::new(host_end, host_faults);
    let (host_applied, host_sent) = (host_port.applied(), host_port.sent());
    let mut client = DeviceClient::new(host_port)
        .with_key(rig.host_key())
        .with_patience(host::client::Patience { per_attempt: std::time::Duration::from_millis(700), attempts: 8 });

    let info = client.hello().expect("hello");
    assert_eq!(info.protocol_version, protocol::PROTOCOL_VERSION);
    assert_eq!(info.board.as_str(), "sim");
    assert!(info.capabilities.contains(protocol::Capabilities::SIMULATED));
    let transcript = features::text::read_transcript(&sample_session().join("transcript.tsv")).expect("transcript");
    let outcome = run_session(&mut client, &transcript, "e2e", Modalities::ALL, |_, _| {}).expect("session completes");

    let mut db = ResultsDb::open(&dir.path().join("results.db").into()).expect("db");
    let report = sync(&mut client, &mut db, info.device_id.as_str(), |_, _| {}).expect("sync");
    assert_eq!((report.fetched, report.inserted, report.cursor), (1, 1, outcome.record.seq));
    // A second sync finds nothing new: exactly once.
    let again = sync(&mut client, &mut db, info.device_id.as_str(), |_, _| {}).expect("sync again");
    assert_eq!((again.fetched, again.inserted), (0, 0));

    let host_bad_frames = client.stats().bad_frames;
    let device = rig.stop().expect("device stops cleanly");
    drop(client);
    Run {
        record: outcome.record,
        device_id: info.device_id.as_str().to_owned(),
        db_rows: db.results(&Filter::default()).expect("rows").into_iter().map(|r| r.record).collect(),
        host_bad_frames,
        device_log_len: device.log().len(),
        applied: [host_applied, device_applied].iter().flat_map(|a| a.lock().expect("lock").clone()).collect(),
        host_sent: host_sent.lock().expect("lock").clone(),
        device_sent: device_sent.lock().expect("lock").clone(),
    }
}

/// Everything about a result that does not depend on when it was made.
fn essence(r: &ResultRecord) -> (u64, u32, f32, f32, [f32; 3], Modalities, String, protocol::SchemaHash, ResultFlags) {
    (
        r.seq,
        r.session,
        r.p_depressed,
        r.phq8,
        r.gates,
        r.modalities,
        r.model_version.to_string(),
        r.feature_schema,
        r.flags,
    )
}

#[test]
fn a_screening_session_reaches_the_database_once() {
    let run = session(vec![], vec![]);
    assert!(run.applied.is_empty());
    assert_eq!(run.host_sent["session stop"], 1, "{:?}", run.host_sent);
    assert_eq!(run.device_log_len, 1);
    assert_eq!(run.db_rows, vec![run.record.clone()]);
    let r = &run.record;
    assert!(run.device_id.starts_with("mimml-"));
    // All three: the sample's frames go through the face detector and landmark model.
    assert_eq!(r.modalities, Modalities::ALL, "flags {}", r.flags);
    assert!(!r.flags.contains(ResultFlags::NO_FACE));
    assert!(r.gates[1] > 0.0, "{:?}", r.gates);
    assert!((0.0..=1.0).contains(&r.p_depressed));
    assert!((0.0..=24.0).contains(&r.phq8));
    assert!((r.gates.iter().sum::<f32>() - 1.0).abs() < 1e-5, "{:?}", r.gates);
    assert_eq!(r.feature_schema, features::schema::schema_hash());
    // The committed MIMML bundle, run by tract: a real model, not the placeholder.
    let manifest = std::fs::read_to_string(device::bundled_model_dir().join("manifest.toml")).expect("bundle");
    assert!(manifest.contains(&format!("model_version = \"{}\"", r.model_version)), "{}", r.model_version);
    assert!(!r.flags.contains(ResultFlags::PLACEHOLDER_MODEL) && r.flags.contains(ResultFlags::SIMULATED));
    // The sample is a 60 s recording; the result says so.
    let media_s = (r.finished_ms - r.started_ms) as f64 / 1000.0;
    assert!((55.0..65.0).contains(&media_s), "{media_s}");
}

#[test]
fn garbage_truncation_bit_flips_and_lost_frames_do_not_change_the_result() {
    let clean = session(vec![], vec![]);
    let junk: Vec<u8> = (0..300u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    // Each fault hits the first frame of its kind. A lost request or reply makes the host
    // resend the request with the same id; the device must answer a repeat from its reply cache
    // instead of running it again.
    let host_faults = vec![
        ("session start", 0, Fault::GarbageBefore(junk.clone())),
        ("transcript", 1, Fault::TruncatedCopyBefore),
        ("transcript", 3, Fault::FlipBit), // lost: the host must time out and resend
        ("transcript", 6, Fault::Drop),    // lost too
        ("session stop", 0, Fault::FlipBit),
        ("session status", 0, Fault::GarbageBefore(vec![0, 0, 0xFF, 0x13, 0])),
        ("sync", 0, Fault::Drop),
    ];
    let device_faults = vec![
        ("DeviceInfo", 0, Fault::TruncatedCopyBefore),
        // The session start's reply: a resent start must not be refused as "active".
        ("session capturing", 0, Fault::Drop),
        ("TranscriptAccepted", 0, Fault::GarbageBefore(junk)),
        ("TranscriptAccepted", 4, Fault::Drop),
        // The stop's reply: the resent stop is answered from the cache, nothing computed twice.
        ("session processing", 0, Fault::FlipBit),
        ("Records", 0, Fault::Drop),
    ];
    let planned = host_faults.len() + device_faults.len();
    let faulty = session(host_faults, device_faults);
    assert_eq!(faulty.applied.len(), planned, "every planned fault hit a frame: {:?}", faulty.applied);
    assert!(faulty.host_bad_frames >= 3, "host saw {} bad frames", faulty.host_bad_frames);
    // The stop was sent three times: once lost on the way, once answered with a lost reply, and
    // once more, answered from the reply cache.
    assert_eq!(faulty.host_sent["session stop"], 3, "{:?}", faulty.host_sent);
    assert_eq!(faulty.host_sent["session start"], 2, "{:?}", faulty.host_sent);
    assert!(faulty.device_sent["session processing"] >= 2, "the stop's answer, repeated: {:?}", faulty.device_sent);
    assert!(faulty.host_sent["sync"] >= 3, "two syncs, one resent: {:?}", faulty.host_sent);
    assert_eq!(essence(&faulty.record), essence(&clean.record));
    assert_eq!(faulty.device_log_len, 1, "a retried stop logged a second result");
    assert_eq!(faulty.db_rows.len(), 1);
    assert_eq!(essence(&faulty.db_rows[0]), essence(&clean.record));
}
