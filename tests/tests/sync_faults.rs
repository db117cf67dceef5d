//! Exactly-once sync under a thousand random faults per backend (`MIMML_SYNC_FAULTS`, at least
//! 200: CI runs 200, `bench/run faults` the full count), into SQLite and into a real
//! PostgreSQL server: damaged and dropped frames both ways (garbage, truncated copies, flipped
//! bits, drops), the device stopped mid-sync and restarted (with new results), the host killed
//! right after its database commit and before its acknowledgement, the database connection cut
//! mid-sync (PostgreSQL: the backend terminated, or the whole server restarted the way a crash
//! does). However it goes, the database ends with exactly the device's records: none lost, none
//! twice, each with the device's content.
//!
//! Alone in its test binary: it restarts the PostgreSQL server, which would cut other tests'
//! connections.

use std::io::{Read, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use device::retention::{FakeSpace, Retention};
use host::client::{DeviceClient, Patience};
use host::db::{Filter, ResultsDb, Target, content_hash};
use protocol::{DeviceFrame, FrameDecoder, HostFrame, Request};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tests::{Fault, FaultyPort, device_with_results, open_device};

/// Faults to inject per backend: `MIMML_SYNC_FAULTS`, else 1,000.
fn faults() -> usize {
    const FULL: usize = 1000;
    const LEAST: usize = 200;
    match std::env::var("MIMML_SYNC_FAULTS") {
        Err(_) => FULL,
        Ok(v) => match v.parse() {
            Ok(n) if n >= LEAST => n,
            _ => panic!("MIMML_SYNC_FAULTS={v:?}: a number of faults per backend, at least {LEAST}"),
        },
    }
}

/// A host port that fails (as a killed host would) when it is asked to send the
/// acknowledgement: the database has committed, the device never hears it.
struct KillBeforeAck<P> {
    inner: P,
    armed: bool,
    fired: Arc<AtomicBool>,
}

impl<P: Read> Read for KillBeforeAck<P> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.inner.read(buf)
    }
}

impl<P: Write> Write for KillBeforeAck<P> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let is_ack = matches!(
            FrameDecoder::new().feed::<HostFrame>(buf).frame,
            Some(Ok(HostFrame { req: Request::SyncAck(_), .. }))
        );
        if self.armed && is_ack {
            self.fired.store(true, Ordering::SeqCst);
            return Err(std::io::Error::new(std::io::ErrorKind::BrokenPipe, "host killed before its ack"));
        }
        self.inner.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Random link faults: up to `n` frames of the given kinds, each damaged one way.
fn plan(rng: &mut StdRng, kinds: &[&'static str], n: usize) -> Vec<(&'static str, usize, Fault)> {
    let mut seen = std::collections::HashSet::new();
    (0..n)
        .filter_map(|_| {
            let kind = kinds[rng.random_range(0..kinds.len())];
            let at = rng.random_range(0..6);
            let fault = match rng.random_range(0..4) {
                0 => Fault::Drop,
                1 => Fault::FlipBit,
                2 => Fault::TruncatedCopyBefore,
                _ => Fault::GarbageBefore((0..rng.random_range(1..40)).map(|_| rng.random::<u8>()).collect()),
            };
            seen.insert((kind, at)).then_some((kind, at, fault))
        })
        .collect()
}

#[derive(Debug, Default)]
struct Tally {
    link: usize,
    device_killed: usize,
    host_killed: usize,
    db_cut: usize,
    server_restarted: usize,
    rounds: usize,
    sync_errors: usize,
}

impl Tally {
    fn total(&self) -> usize {
        self.link + self.device_killed + self.host_killed + self.db_cut + self.server_restarted
    }
}

/// Cuts the test database's connections from the side, as a network or server fault does.
fn cut_connections(admin_url: &str, db_url: &str) -> usize {
    let name = db_url.rsplit('/').next().unwrap_or_default().to_owned();
    let Ok(mut admin) = postgres::Client::connect(admin_url, postgres::NoTls) else { return 0 };
    admin
        .query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND application_name = 'mimml'",
            &[&name],
        )
        .map_or(0, |rows| rows.len())
}

fn run(target: &Target, dir: &Path, seed: u64) -> Tally {
    let mut rng = StdRng::seed_from_u64(seed);
    let data = dir.join("unit");
    device_with_results(&data, None, 300);
    let keep = Retention::KEEP;
    let pg = match target {
        Target::Postgres(url) => Some((tests::pg::server(), url.clone())),
        Target::Sqlite(_) => None,
    };
    let mut tally = Tally::default();
    let started = Instant::now();
    let faults = faults();
    while tally.total() < faults {
        tally.rounds += 1;
        // Between rounds the device runs more sessions.
        device_with_results(&data, None, rng.random_range(4..30));
        let mut server = open_device(&data, None).expect("device opens");
        server.sessions().set_retention(keep, Box::new(FakeSpace::new(u64::MAX)));
        let (host_end, device_end) = link::pty_pair().expect("pty");
        let device_port = FaultyPort::<_, DeviceFrame>::new(device_end, plan(&mut rng, &["Records", "Acked"], 3));
        let device_applied = device_port.applied();
        let device = Arc::new(Mutex::new(Some(device::DeviceThread::serve(server, device_port).expect("serves"))));
        let key = device.lock().expect("lock").as_ref().expect("running").host_key();

        // 0: host killed before its ack; 1–2: device stopped; 3–4: connection cut (PostgreSQL);
        // 5: server restarted (PostgreSQL; about one round in seven); 6–7: link faults only.
        let terminal = match rng.random_range(0..40) {
            0 => 5,
            n => n % 8,
        };
        let host_port = FaultyPort::<_, HostFrame>::new(host_end, plan(&mut rng, &["sync", "sync ack"], 4));
        let host_applied = host_port.applied();
        let fired = Arc::new(AtomicBool::new(false));
        let port = KillBeforeAck { inner: host_port, armed: terminal == 0, fired: Arc::clone(&fired) };
        let mut client = DeviceClient::new(port)
            .with_key(key)
            .with_patience(Patience { per_attempt: Duration::from_millis(40), attempts: 6 });

        // The host opens its database (a restarted server may need a moment).
        let mut db = None;
        for _ in 0..100 {
            match ResultsDb::open(target) {
                Ok(d) => {
                    db = Some(d);
                    break;
                }
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
        let mut db = db.expect("the database opens again");

        // Faults from the side, at a random moment of the sync.
        let delay = Duration::from_millis(rng.random_range(0..25));
        let side = {
            let device = Arc::clone(&device);
            let pg = pg.clone();
            std::thread::spawn(move || {
                std::thread::sleep(delay);
                match (terminal, pg) {
                    (1 | 2, _) => {
                        let d = device.lock().expect("lock").take();
                        d.map(|d| drop(d.stop())).map(|()| "device")
                    }
                    (3 | 4, Some((_, url))) => {
                        (cut_connections(&tests::pg::server().url, &url) > 0).then_some("db cut")
                    }
                    (5, Some((server, _))) => {
                        server.restart();
                        Some("server restarted")
                    }
                    _ => None,
                }
            })
        };
        let id = client.hello().map(|i| i.device_id.as_str().to_owned());
        let outcome = id
            .map_err(host::sync::SyncError::from)
            .and_then(|id| host::sync::sync(&mut client, &mut db, &id, |_, _| {}));
        if outcome.is_err() {
            tally.sync_errors += 1;
        }
        if let Ok(r) = &outcome {
            assert!(r.conflicts.is_empty(), "{:?}", r.conflicts);
        }
        match side.join().expect("side thread") {
            Some("device") => tally.device_killed += 1,
            Some("db cut") => tally.db_cut += 1,
            Some("server restarted") => tally.server_restarted += 1,
            _ => {}
        }
        if fired.load(Ordering::SeqCst) {
            tally.host_killed += 1;
        }
        tally.link += host_applied.lock().expect("lock").len();
        // The host is gone before the device (it was killed, or it is done).
        drop(client);
        drop(db);
        if let Some(d) = device.lock().expect("lock").take() {
            // A device whose host hung up may end on a link error: either way it stops.
            let _ = d.stop();
        }
        tally.link += device_applied.lock().expect("lock").len();
    }

    // A last, clean sync; then the database holds exactly the device's records.
    let mut server = open_device(&data, None).expect("device opens");
    server.sessions().set_retention(keep, Box::new(FakeSpace::new(u64::MAX)));
    let log: Vec<protocol::ResultRecord> = server.log().after(0, usize::MAX).cloned().collect();
    let (host_end, device_end) = link::pty_pair().expect("pty");
    let d = device::DeviceThread::serve(server, device_end).expect("serves");
    let mut client = DeviceClient::new(host_end).with_key(d.host_key());
    let id = client.hello().expect("hello").device_id.as_str().to_owned();
    let mut db = ResultsDb::open(target).expect("db");
    host::sync::sync(&mut client, &mut db, &id, |_, _| {}).expect("a clean sync");
    let server = d.stop().expect("stops");
    drop(client);
    let stored = db.results(&Filter::default()).expect("results");
    println!(
        "{target}: {} faults in {} rounds ({:?}; {} syncs failed and were retried) in {:.0} s; device log {} records, \
         database {} records, acknowledged up to #{}",
        tally.total(),
        tally.rounds,
        tally,
        tally.sync_errors,
        started.elapsed().as_secs_f64(),
        log.len(),
        stored.len(),
        server.log().last_seq()
    );
    assert_eq!(stored.len(), log.len(), "every record once: none lost, none duplicated");
    let mut by_seq: Vec<_> = stored.iter().map(|s| (s.record.seq, content_hash(&s.record))).collect();
    by_seq.sort();
    let expected: Vec<_> = log.iter().map(|r| (r.seq, content_hash(r))).collect();
    assert_eq!(by_seq, expected, "the database holds the device's records, byte for byte");
    assert!(db.conflicts().expect("conflicts").is_empty());
    assert!(tally.total() >= faults);
    tally
}

#[test]
fn exactly_once_under_random_faults_into_sqlite_and_postgres() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sqlite = run(&Target::Sqlite(dir.path().join("r.db")), &dir.path().join("sqlite"), 1);
    assert!(sqlite.device_killed > 0 && sqlite.host_killed > 0 && sqlite.link > 0, "{sqlite:?}");
    let pg = Target::Postgres(tests::pg::server().database("faults"));
    let postgres = run(&pg, &dir.path().join("postgres"), 2);
    assert!(postgres.db_cut > 0 && postgres.server_restarted > 0 && postgres.host_killed > 0, "{postgres:?}");
}
