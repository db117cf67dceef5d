//! Host ↔ device over a real pseudo-terminal: hello, transcript push, session, result sync —
//! clean, and with a damaged link.

use std::sync::atomic::Ordering;

use host::client::DeviceClient;
use host::db::ResultsDb;
use host::session::run_session;
use host::sync::sync;
use protocol::{Modalities, ResultRecord};
use tests::{Fault, FaultyPort, Rig, sample_session};

struct Run {
    record: ResultRecord,
    device_id: String,
    db_rows: Vec<ResultRecord>,
    host_bad_frames: u64,
    device_log_len: usize,
    faults_applied: usize,
}

/// One whole session on a fresh device, with the given faults on host→device and
/// device→host frames.
fn session(host_faults: Vec<(usize, Fault)>, device_faults: Vec<(usize, Fault)>) -> Run {
    let dir = tempfile::tempdir().expect("tempdir");
    let (host_end, device_end) = link::pty_pair().expect("pty pair");
    let device_port = FaultyPort::new(device_end, device_faults);
    let device_applied = device_port.applied();
    let rig = Rig::start(&dir.path().join("device"), device_port).expect("device starts");
    let host_port = FaultyPort::new(host_end, host_faults);
    let host_applied = host_port.applied();
    let mut client = DeviceClient::new(host_port)
        .with_patience(host::client::Patience { per_attempt: std::time::Duration::from_millis(700), attempts: 8 });

    let info = client.hello().expect("hello");
    assert_eq!(info.protocol_version, protocol::PROTOCOL_VERSION);
    assert_eq!(info.board.as_str(), "sim");
    assert!(info.capabilities.has(protocol::Capabilities::SIMULATED));
    let transcript = features::text::read_transcript(&sample_session().join("transcript.tsv")).expect("transcript");
    let outcome = run_session(&mut client, &transcript, "e2e", Modalities::ALL, |_, _| {}).expect("session completes");

    let mut db = ResultsDb::open(&dir.path().join("results.db")).expect("db");
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
        db_rows: db.results(None).expect("rows").into_iter().map(|r| r.record).collect(),
        host_bad_frames,
        device_log_len: device.log().len(),
        faults_applied: host_applied.load(Ordering::Relaxed) + device_applied.load(Ordering::Relaxed),
    }
}

/// Everything about a result that does not depend on when it was made.
fn essence(r: &ResultRecord) -> (u64, u32, f32, f32, [f32; 3], Modalities, String, protocol::SchemaHash, u16) {
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
    assert_eq!(run.faults_applied, 0);
    assert_eq!(run.device_log_len, 1);
    assert_eq!(run.db_rows, vec![run.record.clone()]);
    let r = &run.record;
    assert!(run.device_id.starts_with("mimml-"));
    // All three: the sample's frames go through the face detector and landmark model.
    assert_eq!(r.modalities, Modalities::ALL, "flags {:#x}", r.flags);
    assert!(r.flags & ResultRecord::FLAG_NO_FACE == 0);
    assert!(r.gates[1] > 0.0, "{:?}", r.gates);
    assert!((0.0..=1.0).contains(&r.p_depressed));
    assert!((0.0..=24.0).contains(&r.phq8));
    assert!((r.gates.iter().sum::<f32>() - 1.0).abs() < 1e-5, "{:?}", r.gates);
    assert_eq!(r.feature_schema, features::schema::schema_hash());
    // The committed MIMML bundle, run by tract: a real model, not the placeholder.
    let manifest = std::fs::read_to_string(device::bundled_model_dir().join("manifest.toml")).expect("bundle");
    assert!(manifest.contains(&format!("model_version = \"{}\"", r.model_version)), "{}", r.model_version);
    assert!(r.flags & ResultRecord::FLAG_PLACEHOLDER_MODEL == 0 && r.flags & ResultRecord::FLAG_SIMULATED != 0);
    // The sample is a 60 s recording; the result says so.
    let media_s = (r.finished_ms - r.started_ms) as f64 / 1000.0;
    assert!((55.0..65.0).contains(&media_s), "{media_s}");
}

#[test]
fn garbage_truncation_bit_flips_and_lost_frames_do_not_change_the_result() {
    let clean = session(vec![], vec![]);
    let junk: Vec<u8> = (0..300u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    // Host frames: 0 hello, 1 session start, 2.. transcript (12 utterances), then stop, sync…
    let host_faults = vec![
        (1, Fault::GarbageBefore(junk.clone())),
        (3, Fault::TruncatedCopyBefore),
        (5, Fault::FlipBit),  // lost: the host must time out and resend
        (8, Fault::Drop),     // lost too
        (15, Fault::FlipBit), // the session stop itself
        (17, Fault::GarbageBefore(vec![0, 0, 0xFF, 0x13, 0])),
    ];
    // Device frames: replies in the same order. Losing a reply makes the host resend, and the
    // device must answer from its reply cache instead of running the request again.
    let device_faults = vec![
        (0, Fault::TruncatedCopyBefore),
        (1, Fault::Drop), // the session start's reply: a resent start must not be refused as "active"
        (2, Fault::GarbageBefore(junk)),
        (6, Fault::Drop),
        (14, Fault::FlipBit), // the stop's reply: a second stop must not log a second result
    ];
    let faulty = session(host_faults, device_faults);
    assert_eq!(faulty.faults_applied, 11, "every planned fault hit a frame");
    assert!(faulty.host_bad_frames >= 3, "host saw {} bad frames", faulty.host_bad_frames);
    assert_eq!(essence(&faulty.record), essence(&clean.record));
    assert_eq!(faulty.device_log_len, 1, "a retried stop logged a second result");
    assert_eq!(faulty.db_rows.len(), 1);
    assert_eq!(essence(&faulty.db_rows[0]), essence(&clean.record));
}
