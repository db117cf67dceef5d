//! Data integrity under damage and misuse, end to end: devices on pseudo-terminals, a host
//! syncing into one database, and between sessions the log's tail damaged, the state deleted,
//! a data directory cloned onto other hardware, a second daemon started on a directory in use.
//! However it goes, every result a device produced ends in the database exactly once with its
//! content, or is reported as a conflict: none is silently lost or stored under another's key.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use device::DeviceThread;
use host::client::DeviceClient;
use host::db::{Filter, ResultsDb, content_hash};
use host::session::run_session;
use link::SerialPort;
use protocol::{Modalities, ResultRecord};
use tests::{Served, copy_dir, open_device, sample_session, serve};

/// Runs `n` sessions on `d`; keeps their results as the device reported them.
fn sessions(d: &mut Served, n: usize, produced: &mut Produced) {
    let transcript = features::text::read_transcript(&sample_session().join("transcript.tsv")).expect("transcript");
    for i in 0..n {
        let label = format!("{}-{i}", produced.len());
        let out = run_session(&mut d.client, &transcript, &label, Modalities::TEXT, |_, _| {}).expect("session");
        produced.push((d.id.clone(), out.record));
    }
}

fn sync(d: &mut Served, db: &mut ResultsDb) -> host::sync::SyncReport {
    host::sync::sync(&mut d.client, db, &d.id, |_, _| {}).expect("sync")
}

type Produced = Vec<(String, ResultRecord)>;

fn log_of(data: &Path) -> PathBuf {
    data.join("results.log")
}

#[test]
fn every_result_reaches_the_database_once_or_is_reported_whatever_happens_to_the_device() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (a_data, b_data) = (dir.path().join("kiosk-a"), dir.path().join("kiosk-b"));
    let (serial_a, serial_b) = (dir.path().join("serial-a"), dir.path().join("serial-b"));
    std::fs::write(&serial_a, "10000000aaaaaaaa\0").expect("serial");
    std::fs::write(&serial_b, "10000000bbbbbbbb\0").expect("serial");
    let mut db = ResultsDb::open(&dir.path().join("results.db").into()).expect("db");
    let mut produced = Produced::new();
    let mut conflicts = 0;

    // Kiosk A: three sessions, synced.
    let mut a = serve(&a_data, Some(&serial_a));
    let a_id = a.id.clone();
    sessions(&mut a, 3, &mut produced);
    assert_eq!(sync(&mut a, &mut db).inserted, 3);
    // A second daemon on the same data directory refuses to start while A serves.
    let second = open_device(&a_data, Some(&serial_a)).expect_err("the directory is locked");
    assert!(second.to_string().contains("in use"), "{second}");
    a.stop();

    // The log's tail cut inside the last record (already synced): its number is not reused.
    let bytes = std::fs::read(log_of(&a_data)).expect("log");
    std::fs::write(log_of(&a_data), &bytes[..bytes.len() - 25]).expect("cut");
    let mut a = serve(&a_data, Some(&serial_a));
    sessions(&mut a, 2, &mut produced);
    let r = sync(&mut a, &mut db);
    assert_eq!((r.inserted, r.conflicts.len()), (2, 0), "the next results are new, not 'already there'");
    a.stop();

    // Only the final delimiter changed: the whole last record stays and nothing is renumbered.
    let mut bytes = std::fs::read(log_of(&a_data)).expect("log");
    let last = bytes.len() - 1;
    bytes[last] = 0x41;
    std::fs::write(log_of(&a_data), &bytes).expect("damage");
    let mut a = serve(&a_data, Some(&serial_a));
    sessions(&mut a, 1, &mut produced);
    assert_eq!(sync(&mut a, &mut db).inserted, 1);
    a.stop();

    // The card imaged onto kiosk B: B takes its own id and log; A's results are not served twice.
    copy_dir(&a_data, &b_data);
    let mut b = serve(&b_data, Some(&serial_b));
    assert_ne!(b.id, a_id);
    sessions(&mut b, 2, &mut produced);
    let r = sync(&mut b, &mut db);
    assert_eq!((r.fetched, r.inserted, r.conflicts.len()), (2, 2, 0), "B serves only its own results");
    b.stop();

    // A's state deleted: the id comes back from the hardware and the numbering continues.
    std::fs::remove_file(a_data.join("state.toml")).expect("rm state");
    let mut a = serve(&a_data, Some(&serial_a));
    assert_eq!(a.id, a_id);
    sessions(&mut a, 1, &mut produced);
    let r = sync(&mut a, &mut db);
    assert_eq!((r.inserted, r.conflicts.len()), (1, 0));
    a.stop();

    // Two serial-less units imaged from one card share an id: what the second one made under
    // numbers the first already used is kept aside as conflicts, never dropped or mixed in.
    let (c_data, d_data) = (dir.path().join("unit-c"), dir.path().join("unit-d"));
    let mut c = serve(&c_data, None);
    sessions(&mut c, 1, &mut produced);
    sync(&mut c, &mut db);
    c.stop();
    copy_dir(&c_data, &d_data);
    let (mut c, mut d) = (serve(&c_data, None), serve(&d_data, None));
    assert_eq!(c.id, d.id, "imaged without a hardware serial: one id");
    sessions(&mut c, 2, &mut produced);
    sessions(&mut d, 3, &mut produced);
    conflicts += sync(&mut c, &mut db).conflicts.len();
    conflicts += sync(&mut d, &mut db).conflicts.len();
    c.stop();
    d.stop();
    // A serial-less unit whose state is deleted refuses to start rather than take a new id.
    std::fs::remove_file(c_data.join("state.toml")).expect("rm state");
    let refused = open_device(&c_data, None).expect_err("refuses");
    assert!(refused.to_string().contains("state.toml is missing"), "{refused}");

    // Every result produced: in the database once with its content, or kept as a conflict.
    let stored: BTreeMap<(String, u64), String> = db
        .results(&Filter::default())
        .expect("results")
        .into_iter()
        .map(|s| ((s.device_id, s.record.seq), content_hash(&s.record)))
        .collect();
    let kept: Vec<(String, u64, String)> =
        db.conflicts().expect("conflicts").into_iter().map(|c| (c.device_id, c.seq, c.content_hash)).collect();
    assert_eq!(kept.len(), conflicts, "every conflict reported is kept");
    let mut in_db = 0;
    for (id, record) in &produced {
        let hash = content_hash(record);
        let here = stored.get(&(id.clone(), record.seq)) == Some(&hash);
        let aside = kept.iter().any(|(i, s, h)| i == id && *s == record.seq && *h == hash);
        assert!(here ^ aside, "result #{} of {id} (session {}) is {here}/{aside}", record.seq, record.session);
        in_db += usize::from(here);
    }
    assert_eq!(stored.len(), in_db, "nothing in the database that no device produced");
    assert_eq!(produced.len(), 15);
    assert!(conflicts >= 2, "the shared id produced conflicts: {conflicts}");
}

#[test]
fn a_device_restarted_after_storing_the_result_is_greeted_again_and_the_result_found() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("device");
    let server = open_device(&data, None).expect("opens");
    let (host_end, device_end) = link::pty_pair().expect("pty");
    let name = device_end.name().expect("pty name");
    let device = DeviceThread::serve(server, device_end).expect("serves");
    let key = device.host_key();
    let mut client = DeviceClient::new(host_end).with_key(key.clone());
    client.hello().expect("hello");
    let transcript = features::text::read_transcript(&sample_session().join("transcript.tsv")).expect("transcript");
    let session = client.start_session(Modalities::TEXT, "restart").expect("start").session;
    for (i, u) in transcript.iter().enumerate() {
        client.push_utterance(session, i as u32, u).expect("push");
    }
    client.stop_session(session).expect("stop");
    // The device stores the result and restarts before the host hears it is done.
    let mut server = device.stop().expect("stops");
    assert!(server.sessions().wait_idle(std::time::Duration::from_secs(60)));
    drop(server);
    let port = link::open_port(&name, 115_200).expect("reopen the device end");
    let device =
        DeviceThread::serve_with_key(open_device(&data, None).expect("reopens"), port, key).expect("serves again");
    let status = client.wait_for_result(session, std::time::Duration::from_secs(30)).expect("found after a hello");
    assert_eq!(status.state, protocol::SessionState::Done { seq: 1 });
    device.stop().expect("stops");
}
