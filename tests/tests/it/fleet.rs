//! Results of many devices and sites in one database: both backends (SQLite, and a real
//! PostgreSQL server, see `tests::pg`) behave alike; hosts at several sites sync into one
//! central PostgreSQL at the same time; two hosts syncing the same device's records at once
//! store each once; a field laptop forwards what it synced into the central database later,
//! exactly once; a read-only or full database stores nothing and the device keeps everything.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Barrier};

use host::db::{DbError, Filter, ResultsDb, Target, content_hash};
use protocol::{Instrument, Questionnaire, ResultFlags, ResultRecord};
use tests::{copy_dir, device_with_results, serve, synthetic_result};

/// The same test on an SQLite file in `dir` and on a fresh PostgreSQL database.
fn backends(dir: &Path, name: &str) -> [(&'static str, Target); 2] {
    [
        ("sqlite", Target::Sqlite(dir.join(format!("{name}.db")))),
        ("postgres", Target::Postgres(tests::pg::server().database(name))),
    ]
}

fn rec(seq: u64) -> ResultRecord {
    ResultRecord { seq, ..synthetic_result(seq) }
}

fn keys(db: &mut ResultsDb) -> Vec<(String, u64)> {
    db.results(&Filter::default()).expect("results").into_iter().map(|s| (s.device_id, s.record.seq)).collect()
}

#[test]
fn both_backends_store_exactly_once_keep_conflicts_and_read_the_same() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut listings = Vec::new();
    for (backend, target) in backends(dir.path(), "rules") {
        let mut db = ResultsDb::open(&target).expect("open");
        assert_eq!(db.cursor("d1").expect("cursor"), 0, "{backend}");
        assert_eq!(db.store("d1", &[rec(1), rec(2)]).expect("store").inserted, 2);
        let again = db.store("d1", &[rec(2), rec(3)]).expect("store");
        assert_eq!((again.inserted, again.conflicts.len()), (1, 0), "{backend}: a repeat is not stored twice");
        // Out of order, and a later record of another device that is urgent.
        let mut urgent = rec(9);
        urgent.questionnaire = Some(Questionnaire::new(Instrument::Phq9, &[1, 2, 3, 0, 1, 2, 3, 0, 2]).expect("valid"));
        urgent.flags |= ResultFlags::URGENT | ResultFlags::KIOSK;
        db.store("d0", &[urgent.clone(), rec(4)]).expect("store");
        db.store("d1", &[rec(1)]).expect("store");
        assert_eq!(db.cursor("d1").expect("cursor"), 3, "{backend}: the cursor never moves back");
        assert_eq!(db.cursors().expect("cursors"), vec![("d0".to_owned(), 9), ("d1".to_owned(), 3)]);
        // The same number with other content: kept aside, reported, idempotent.
        let mut other = rec(2);
        other.session = 777;
        let stored = db.store("d1", &[other.clone()]).expect("store");
        assert_eq!(stored.conflicts.len(), 1, "{backend}");
        db.store("d1", &[other.clone()]).expect("again");
        let kept = db.conflicts().expect("conflicts");
        assert_eq!(kept.len(), 1, "{backend}");
        assert_eq!((&kept[0].record, &kept[0].stored_hash), (&other, &content_hash(&rec(2))), "{backend}");

        let all = db.results(&Filter::default()).expect("results");
        assert_eq!(all[0].record, urgent, "{backend}: urgent first, questionnaire and flags round-trip");
        assert_eq!(
            all.iter().map(|s| (s.device_id.as_str(), s.record.seq)).collect::<Vec<_>>(),
            vec![("d0", 9), ("d0", 4), ("d1", 1), ("d1", 2), ("d1", 3)],
            "{backend}"
        );
        let since = Filter { since_ms: Some(rec(3).started_ms), ..Filter::default() };
        let later: Vec<u64> = db.results(&since).expect("since").iter().map(|s| s.record.seq).collect();
        assert_eq!(later, vec![9, 4, 3], "{backend}: --since");
        assert_eq!(db.stored_seqs("d1", 2, 10).expect("seqs"), vec![2, 3]);
        assert_eq!(db.range("d0", 1, 100).expect("range").iter().map(|s| s.record.seq).collect::<Vec<_>>(), vec![4, 9]);
        listings.push(all.into_iter().map(|s| (s.device_id, s.record)).collect::<Vec<_>>());

        // Reading opens never create: the same target reads back; a missing one is an error.
        let mut read = ResultsDb::open_read_only(&target).expect("read");
        assert_eq!(read.results(&Filter::device("d1")).expect("results").len(), 3);
    }
    assert_eq!(listings[0], listings[1], "the two backends return the same results");
}

#[test]
fn both_backends_have_the_same_tables_and_columns() {
    let dir = tempfile::tempdir().expect("tempdir");
    let [(_, sqlite), (_, pg)] = backends(dir.path(), "schema");
    let (Target::Sqlite(path), Target::Postgres(url)) = (&sqlite, &pg) else { unreachable!() };
    drop(ResultsDb::open(&sqlite).expect("sqlite"));
    drop(ResultsDb::open(&pg).expect("postgres"));
    assert_eq!(sqlite_columns(path), postgres_columns(url));
    let mut client = postgres::Client::connect(url, postgres::NoTls).expect("connect");
    let versions: Vec<i64> = client
        .query("SELECT version FROM mimml.schema_migrations", &[])
        .expect("versions")
        .iter()
        .map(|r| r.get(0))
        .collect();
    // Every step of the one list, once, in order.
    assert_eq!(versions, (1..=host::db::SCHEMA_VERSION).collect::<Vec<_>>());
}

/// (table, column) of the PostgreSQL results database at `url`, in [`sqlite_columns`]' order.
fn postgres_columns(url: &str) -> Vec<(String, String)> {
    let mut client = postgres::Client::connect(url, postgres::NoTls).expect("connect");
    let rows = client
        .query(
            "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = 'mimml' \
             AND table_name <> 'schema_migrations' ORDER BY table_name, ordinal_position",
            &[],
        )
        .expect("columns");
    rows.iter().map(|r| (r.get(0), r.get(1))).collect()
}

/// `r` stored as an older `mimml` stored it: the columns every schema version has.
fn insert_as_version_1(target: &Target, device_id: &str, r: &ResultRecord) {
    let columns = "device_id, seq, session, label, started_ms, finished_ms, compute_ms, p_depressed, phq8, \
                   gate_audio, gate_video, gate_text, modalities, model_version, feature_schema, flags, synced_at_ms";
    let schema = r.feature_schema.to_string();
    let ints = [
        r.seq as i64,
        i64::from(r.session),
        r.started_ms as i64,
        r.finished_ms as i64,
        i64::from(r.compute_ms),
        i64::from(r.modalities.bits()),
        i64::from(r.flags.bits()),
        0,
    ];
    let reals = [r.p_depressed, r.phq8, r.gates[0], r.gates[1], r.gates[2]].map(f64::from);
    match target {
        Target::Sqlite(path) => {
            let conn = rusqlite::Connection::open(path).expect("open");
            conn.execute(
                &format!("INSERT INTO results ({columns}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)"),
                rusqlite::params![
                    device_id, ints[0], ints[1], r.label.as_str(), ints[2], ints[3], ints[4], reals[0], reals[1],
                    reals[2], reals[3], reals[4], ints[5], r.model_version.as_str(), schema, ints[6], ints[7]
                ],
            )
            .expect("row");
        }
        Target::Postgres(url) => {
            let mut client = postgres::Client::connect(url, postgres::NoTls).expect("connect");
            client
                .execute(
                    &format!("INSERT INTO mimml.results ({columns}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)"),
                    &[
                        &device_id, &ints[0], &ints[1], &r.label.as_str(), &ints[2], &ints[3], &ints[4], &reals[0],
                        &reals[1], &reals[2], &reals[3], &reals[4], &ints[5], &r.model_version.as_str(), &schema,
                        &ints[6], &ints[7],
                    ],
                )
                .expect("row");
        }
    }
}

/// Every schema version either backend can be at — each a prefix of the one migration list —
/// upgrades to the same tables and columns as a new database, keeps its results, and leaves
/// their content hashes those of today's encoding (a repeat is no conflict).
#[test]
fn every_schema_version_of_both_backends_upgrades_to_the_same_columns() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fresh = dir.path().join("fresh.db");
    drop(ResultsDb::open(&Target::Sqlite(fresh.clone())).expect("new"));
    let want = sqlite_columns(&fresh);
    assert_eq!(want.iter().filter(|(t, _)| t == "results").count(), 21, "{want:?}");
    let current = host::db::SCHEMA_VERSION;
    for version in 0..=current {
        for (backend, target) in backends(dir.path(), &format!("v{version}")) {
            ResultsDb::create_at(&target, version).expect("a database of an older version");
            let r = rec(1);
            let older = (1..current).contains(&version);
            if older {
                insert_as_version_1(&target, "d1", &r);
            }
            let mut db = ResultsDb::open(&target).unwrap_or_else(|e| panic!("{backend} from {version}: {e:?}"));
            let columns = match &target {
                Target::Sqlite(path) => sqlite_columns(path),
                Target::Postgres(url) => postgres_columns(url),
            };
            assert_eq!(columns, want, "{backend} from version {version}");
            if older {
                assert_eq!(db.results(&Filter::default()).expect("results")[0].record, r, "{backend} from {version}");
                let again = db.store("d1", std::slice::from_ref(&r)).expect("store");
                assert_eq!((again.inserted, again.conflicts.len()), (0, 0), "{backend} from {version}: a repeat");
            }
            drop(db);
            // Upgraded once: opening again changes nothing, and the version is today's.
            let version_now = match &target {
                Target::Sqlite(path) => rusqlite::Connection::open(path)
                    .expect("open")
                    .pragma_query_value(None, "user_version", |row| row.get::<_, i64>(0))
                    .expect("version"),
                Target::Postgres(url) => postgres::Client::connect(url, postgres::NoTls)
                    .expect("connect")
                    .query_one("SELECT max(version) FROM mimml.schema_migrations", &[])
                    .expect("version")
                    .get(0),
            };
            assert_eq!(version_now, current, "{backend} from {version}");
        }
    }
}

/// (table, column) of an SQLite results database, in the PostgreSQL listing's order.
fn sqlite_columns(path: &Path) -> Vec<(String, String)> {
    let conn = rusqlite::Connection::open(path).expect("open");
    let mut out = Vec::new();
    for table in ["conflicts", "results", "sync_cursor"] {
        let mut stmt = conn.prepare("SELECT name FROM pragma_table_info(?1) ORDER BY cid").expect("prepare");
        let columns = stmt.query_map([table], |r| r.get::<_, String>(0)).expect("query");
        out.extend(columns.map(|c| (table.to_owned(), c.expect("column"))));
    }
    out
}

#[test]
fn hosts_opening_a_new_central_database_at_once_migrate_it_once() {
    let url = tests::pg::server().database("migrate");
    let barrier = Arc::new(Barrier::new(6));
    let hosts: Vec<_> = (0..6)
        .map(|_| {
            let (url, barrier) = (url.clone(), Arc::clone(&barrier));
            std::thread::spawn(move || {
                barrier.wait();
                ResultsDb::open(&Target::Postgres(url)).map(drop)
            })
        })
        .collect();
    for h in hosts {
        h.join().expect("thread").expect("every host opens the database");
    }
    let mut client = postgres::Client::connect(&url, postgres::NoTls).expect("connect");
    let n: i64 = client.query_one("SELECT count(*) FROM mimml.schema_migrations", &[]).expect("count").get(0);
    assert_eq!(n, host::db::SCHEMA_VERSION, "each step applied once, not once per host");
}

#[test]
fn a_postgres_database_of_a_later_version_or_without_results_is_refused_untouched() {
    let url = tests::pg::server().database("versions");
    let target = Target::Postgres(url.clone());
    assert!(matches!(ResultsDb::open_read_only(&target), Err(DbError::Missing { .. })));
    let mut client = postgres::Client::connect(&url, postgres::NoTls).expect("connect");
    let schemas: i64 =
        client.query_one("SELECT count(*) FROM pg_namespace WHERE nspname = 'mimml'", &[]).expect("count").get(0);
    assert_eq!(schemas, 0, "reading created nothing");
    drop(ResultsDb::open(&target).expect("creates"));
    client
        .execute("INSERT INTO mimml.schema_migrations (version, description) VALUES (99, 'future')", &[])
        .expect("v99");
    let err = ResultsDb::open(&target).expect_err("newer");
    assert!(err.to_string().contains("schema version 99"), "{err}");
    assert!(matches!(ResultsDb::open_read_only(&target), Err(DbError::Newer { found: 99, .. })));
    // A wrong password or host is an error naming the target, without the password.
    let bad = Target::Postgres("postgres://nobody:hunter2@127.0.0.1:1/none?connect_timeout=2".into());
    let err = format!("{:#}", anyhow::Error::from(ResultsDb::open(&bad).expect_err("no server")));
    assert!(err.contains("nobody:***@127.0.0.1:1") && !err.contains("hunter2"), "{err}");
}

/// Device data folders with results, each on its own hardware serial (so its own id).
fn devices(dir: &Path, names: &[&str], results: u64) -> Vec<(PathBuf, PathBuf)> {
    names
        .iter()
        .map(|name| {
            let data = dir.join(name);
            let serial = dir.join(format!("{name}.serial"));
            std::fs::write(&serial, format!("{:016x}\0", name.bytes().map(u64::from).sum::<u64>() * 7919))
                .expect("serial");
            device_with_results(&data, Some(&serial), results);
            (data, serial)
        })
        .collect()
}

#[test]
fn sites_sync_their_devices_into_one_central_database_at_once_and_a_device_reached_twice_is_stored_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let central = Target::Postgres(tests::pg::server().database("sites"));
    let units = devices(dir.path(), &["a", "b", "c", "d"], 120);
    // Unit "e"'s card, copied: both copies serve the same device's log under the same id, as
    // when two hosts reach one device's records at once.
    let e = dir.path().join("e");
    device_with_results(&e, None, 150);
    let e2 = dir.path().join("e-copy");
    copy_dir(&e, &e2);

    let plan: Vec<Vec<(PathBuf, Option<PathBuf>)>> = vec![
        vec![(units[0].0.clone(), Some(units[0].1.clone())), (units[1].0.clone(), Some(units[1].1.clone())), (e, None)],
        vec![
            (units[2].0.clone(), Some(units[2].1.clone())),
            (units[3].0.clone(), Some(units[3].1.clone())),
            (e2, None),
        ],
    ];
    let barrier = Arc::new(Barrier::new(plan.len()));
    let sites: Vec<_> = plan
        .into_iter()
        .map(|site| {
            let (central, barrier) = (central.clone(), Arc::clone(&barrier));
            std::thread::spawn(move || {
                let mut served: Vec<_> = site.iter().map(|(data, serial)| serve(data, serial.as_deref())).collect();
                let mut db = ResultsDb::open(&central).expect("central database");
                barrier.wait();
                // Each host syncs its devices one after another, and again: the second round
                // finds nothing new.
                let mut inserted = 0;
                for _round in 0..2 {
                    for d in &mut served {
                        let r = host::sync::sync(&mut d.client, &mut db, &d.id, |_, _| {}).expect("sync");
                        assert!(r.conflicts.is_empty(), "{:?}", r.conflicts);
                        inserted += r.inserted;
                    }
                }
                let ids: Vec<String> = served.iter().map(|d| d.id.clone()).collect();
                served.into_iter().for_each(|d| drop(d.stop()));
                (ids, inserted)
            })
        })
        .collect();
    let mut inserted = 0;
    let mut ids = BTreeSet::new();
    for s in sites {
        let (site_ids, n) = s.join().expect("site");
        inserted += n;
        ids.extend(site_ids);
    }
    assert_eq!(ids.len(), 5, "{ids:?}");
    let mut db = ResultsDb::open_read_only(&central).expect("read");
    let stored = keys(&mut db);
    let unique: BTreeSet<_> = stored.iter().cloned().collect();
    println!("central database: {} results from {} devices, {} inserted by 2 sites", stored.len(), ids.len(), inserted);
    assert_eq!(stored.len(), 4 * 120 + 150, "every result once");
    assert_eq!(unique.len(), stored.len(), "none twice");
    assert_eq!(inserted, stored.len(), "the two hosts reaching unit e together inserted each of its results once");
    assert!(db.conflicts().expect("conflicts").is_empty());
    for (id, cursor) in db.cursors().expect("cursors") {
        let expected = if stored.iter().filter(|(d, _)| *d == id).count() == 150 { 150 } else { 120 };
        assert_eq!(cursor, expected, "{id}");
    }
}

#[test]
fn a_field_laptop_forwards_to_the_central_database_exactly_once_even_with_a_site_in_between() {
    let dir = tempfile::tempdir().expect("tempdir");
    let central = Target::Postgres(tests::pg::server().database("forward"));
    let laptop = Target::Sqlite(dir.path().join("laptop.db"));
    let units = devices(dir.path(), &["f", "g"], 300);

    // In the field: the laptop syncs both units (which then may drop what it acknowledged).
    let mut local = ResultsDb::open(&laptop).expect("laptop db");
    let mut ids = Vec::new();
    for (data, serial) in &units {
        let mut d = serve(data, Some(serial));
        host::sync::sync(&mut d.client, &mut local, &d.id, |_, _| {}).expect("field sync");
        ids.push(d.id.clone());
        drop(d.stop());
    }
    // Back at a site, unit f runs more sessions and is synced straight into the central
    // database before the laptop forwards: its later results are there, its earlier ones not.
    device_with_results(&units[0].0, Some(&units[0].1), 40);
    let mut db = ResultsDb::open(&central).expect("central");
    let mut d = serve(&units[0].0, Some(&units[0].1));
    let r = host::sync::sync(&mut d.client, &mut db, &d.id, |_, _| {}).expect("site sync");
    drop(d.stop());
    assert_eq!(r.inserted, 340, "a device that kept its log serves it all");
    // Only results 301..=340 from the device: drop the first 300 to model a unit that deleted
    // what the laptop acknowledged.
    let mut client = match &central {
        Target::Postgres(url) => postgres::Client::connect(url, postgres::NoTls).expect("connect"),
        Target::Sqlite(_) => unreachable!(),
    };
    client.execute("DELETE FROM mimml.results WHERE seq <= 300", &[]).expect("delete");
    assert_eq!(db.cursor(&ids[0]).expect("cursor"), 340);

    // Two laptops with the same records forward at once (a copy of the file), then once more.
    let copy = Target::Sqlite(dir.path().join("laptop-copy.db"));
    drop(local);
    std::fs::copy(dir.path().join("laptop.db"), dir.path().join("laptop-copy.db")).expect("copy");
    let forwards: Vec<_> = [laptop.clone(), copy]
        .into_iter()
        .map(|from| {
            let central = central.clone();
            std::thread::spawn(move || {
                let mut source = ResultsDb::open_read_only(&from).expect("source");
                let mut dest = ResultsDb::open(&central).expect("dest");
                host::forward::forward(&mut source, &mut dest, |_, _, _| {}).expect("forward")
            })
        })
        .collect();
    let done: Vec<_> = forwards.into_iter().map(|f| f.join().expect("thread")).collect();
    let inserted: usize = done.iter().map(|d| d.inserted()).sum();
    assert_eq!(inserted, 600, "the 300 + 300 the central database lacked, once between the two laptops");
    assert!(done.iter().all(|d| d.conflicts.is_empty()));
    let mut source = ResultsDb::open_read_only(&laptop).expect("source");
    let again = host::forward::forward(&mut source, &mut db, |_, _, _| {}).expect("again");
    assert_eq!(again.inserted(), 0);
    let stored = keys(&mut db);
    assert_eq!(stored.len(), 640);
    assert_eq!(stored.iter().cloned().collect::<BTreeSet<_>>().len(), 640);
    // The forwarded copies are the devices' records, byte for byte.
    for s in db.results(&Filter::device(&ids[1])).expect("results") {
        let there = source.range(&ids[1], s.record.seq, s.record.seq).expect("range");
        assert_eq!(content_hash(&there[0].record), content_hash(&s.record));
    }
}

#[test]
fn a_read_only_database_stores_nothing_and_the_device_keeps_its_results() {
    let dir = tempfile::tempdir().expect("tempdir");
    let units = devices(dir.path(), &["h"], 25);
    for (backend, target) in backends(dir.path(), "readonly") {
        drop(ResultsDb::open(&target).expect("create"));
        let mut db = match &target {
            Target::Postgres(url) => {
                let mut c = postgres::Client::connect(url, postgres::NoTls).expect("connect");
                let name = url.rsplit('/').next().expect("db name");
                c.batch_execute(&format!("ALTER DATABASE {name} SET default_transaction_read_only = on"))
                    .expect("read only");
                ResultsDb::open(&target).expect("opens (current schema: no DDL)")
            }
            Target::Sqlite(path) => {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o444)).expect("chmod");
                // As root the file mode does not stop writes: a read-only open does.
                ResultsDb::Sqlite(host::db::sqlite::SqliteDb::open_read_only(path).expect("open"))
            }
        };
        let mut d = serve(&units[0].0, Some(&units[0].1));
        let err = host::sync::sync(&mut d.client, &mut db, &d.id, |_, _| {}).expect_err("read-only");
        let text = format!("{:#}", anyhow::Error::from(err));
        assert!(text.contains("read-only") && text.contains("device keeps its results"), "{backend}: {text}");
        assert_eq!(db.cursor(&d.id).expect("cursor"), 0, "{backend}: the cursor did not move");
        let mut server = d.stop();
        assert_eq!(server.sessions().state().acked, 0, "{backend}: nothing acknowledged");
        assert_eq!(server.log().len(), 25, "{backend}: nothing dropped");
        assert_eq!(keys(&mut db).len(), 0, "{backend}");
    }
}
