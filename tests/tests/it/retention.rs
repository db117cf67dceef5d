//! Device log retention, end to end over a pty: acknowledged results past their age are
//! deleted once the host has them; with storage low, acknowledged results go first and never
//! an unacknowledged one, and a session the device could not store is refused with a clear
//! status (protocol `Storage`, the error LED); numbering survives deletions and restarts.

use std::time::Duration;

use device::retention::{FakeSpace, Retention};
use host::db::{Filter, ResultsDb};
use protocol::Modalities;
use tests::{device_with_results, open_device};

const MIB: u64 = 1 << 20;

fn serve_with(data: &std::path::Path, retention: Retention, space: &FakeSpace) -> tests::Served {
    let mut server = open_device(data, None).expect("opens");
    server.sessions().set_retention(retention, Box::new(space.clone()));
    let (host_end, device_end) = link::pty_pair().expect("pty");
    let device = device::DeviceThread::serve(server, device_end).expect("serves");
    let mut client = host::client::DeviceClient::new(host_end).with_key(device.host_key());
    let id = client.hello().expect("hello").device_id.as_str().to_owned();
    tests::Served { device, client, id }
}

#[test]
fn acknowledged_results_past_their_age_are_deleted_and_numbering_goes_on() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("unit");
    // 40 results from months ago (the synthetic ones are dated 2026-05-28 on).
    device_with_results(&data, None, 40);
    let space = FakeSpace::new(10 * 1024 * MIB);
    let thirty_days = Retention { acked_max_age: Some(Duration::from_secs(30 * 86_400)), min_free_bytes: 64 * MIB };
    let mut db = ResultsDb::open(&dir.path().join("r.db").into()).expect("db");

    let mut d = serve_with(&data, thirty_days, &space);
    // Nothing is deleted before the host has it.
    let r = host::sync::sync(&mut d.client, &mut db, &d.id, |_, _| {}).expect("sync");
    assert_eq!(r.inserted, 40);
    let info = d.client.hello().expect("hello");
    assert_eq!(info.last_result_seq, 40);
    let mut server = d.stop();
    assert_eq!(server.log().len(), 0, "all 40 acknowledged and past 30 days: deleted");
    assert_eq!(server.sessions().state().acked, 40);
    drop(server);

    // A fresh session after a restart: number 41, synced as a new result.
    let mut d = serve_with(&data, thirty_days, &space);
    let transcript = features::text::read_transcript(&tests::sample_session().join("transcript.tsv")).expect("tsv");
    let out =
        host::session::run_session(&mut d.client, &transcript, "after", Modalities::TEXT, |_, _| {}).expect("session");
    assert_eq!(out.record.seq, 41);
    let r = host::sync::sync(&mut d.client, &mut db, &d.id, |_, _| {}).expect("sync");
    assert_eq!((r.inserted, r.cursor), (1, 41));
    let server = d.stop();
    assert_eq!(server.log().len(), 1, "today's result is acknowledged but young: kept");
    assert_eq!(db.results(&Filter::default()).expect("results").len(), 41);
}

#[test]
fn with_storage_low_acknowledged_results_go_first_and_a_session_that_cannot_be_stored_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("unit");
    device_with_results(&data, None, 30);
    let space = FakeSpace::new(10 * MIB);
    let keep_forever = Retention { acked_max_age: None, min_free_bytes: 64 * MIB };
    let mut d = serve_with(&data, keep_forever, &space);
    // The host acknowledged 1..=12 only (a sync cut short).
    d.client.ack(12).expect("ack");

    let refused = d.client.start_session(Modalities::TEXT, "full").expect_err("no room");
    let text = format!("{:#}", anyhow::Error::from(refused));
    assert!(text.contains("Storage"), "{text}");
    let info = d.client.hello().expect("hello");
    assert!(info.active_session.is_none(), "nothing started");
    let mut server = d.stop();
    let left: Vec<u64> = server.log().after(0, 100).map(|r| r.seq).collect();
    assert_eq!(left, (13..=30).collect::<Vec<_>>(), "acknowledged ones deleted, every unacknowledged one kept");
    assert_eq!(server.sessions().state().acked, 12);
    drop(server);

    // Room again (the card cleaned up): sessions start, numbering continues after 30.
    space.set(512 * MIB);
    let mut d = serve_with(&data, keep_forever, &space);
    let started = d.client.start_session(Modalities::TEXT, "room").expect("starts");
    d.client.abort_session(started.session).expect("abort");
    let mut db = ResultsDb::open(&dir.path().join("r.db").into()).expect("db");
    let r = host::sync::sync(&mut d.client, &mut db, &d.id, |_, _| {}).expect("sync");
    assert_eq!((r.inserted, r.cursor), (18, 30), "the 18 kept results reach the host");
    drop(d.stop());
}
