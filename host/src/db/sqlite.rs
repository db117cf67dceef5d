//! The SQLite backend: one file on a clinic PC or a field laptop. WAL journal, `synchronous =
//! FULL`: a committed batch survives a power cut. The schema version is `PRAGMA user_version`;
//! older versions are migrated in place by `rusqlite_migration`, through the steps of
//! [`super::migrations`].

use std::path::Path;

use protocol::ResultRecord;
use rusqlite::{Connection, ErrorCode, OpenFlags, OptionalExtension, Transaction, params};
use rusqlite_migration::{HookResult, M, Migrations};

use super::migrations::MIGRATIONS;
use super::{Conflict, DbError, Filter, Row, SCHEMA_VERSION, StoreTx, Stored, StoredResult};

/// `PRAGMA application_id` of a MIMML results database ("MIML").
const APPLICATION_ID: i64 = 0x4D49_4D4C;

#[derive(Debug)]
pub struct SqliteDb {
    conn: Connection,
    path: String,
}

impl SqliteDb {
    /// Opens the database for syncing, creating it if missing and migrating an older schema.
    /// A database of another program is refused untouched.
    pub fn open(path: &Path) -> Result<SqliteDb, DbError> {
        let p = path.display().to_string();
        let sql = |source| sql_error(&p, source);
        let conn = Connection::open(path).map_err(sql)?;
        let mut db = SqliteDb { conn, path: p };
        db.check_ours()?;
        db.conn.pragma_update(None, "journal_mode", "WAL").map_err(|e| db.err(e))?;
        db.conn.pragma_update(None, "synchronous", "FULL").map_err(|e| db.err(e))?;
        db.migrate()?;
        Ok(db)
    }

    /// Opens an existing database for reading: never creates or changes one, and reads one on
    /// read-only media.
    pub fn open_read_only(path: &Path) -> Result<SqliteDb, DbError> {
        let p = path.display().to_string();
        if !path.is_file() {
            return Err(DbError::Missing { path: p });
        }
        // A WAL database on read-only media without its `-shm` file opens only as immutable.
        let db = match Self::read_only(path, false) {
            Err(DbError::Sql { .. } | DbError::ReadOnly { .. }) => Self::read_only(path, true)?,
            other => other?,
        };
        let version = db.pragma_i64("user_version")?;
        if version > SCHEMA_VERSION {
            return Err(DbError::Newer { path: db.path.clone(), found: version, known: SCHEMA_VERSION });
        }
        // An older schema reads as it is (results have the same columns); syncing migrates it.
        Ok(db)
    }

    /// Opens `path` for reading only; `immutable` tells SQLite the file cannot change (no
    /// locks, no `-shm`), which is what a read-only medium needs.
    fn read_only(path: &Path, immutable: bool) -> Result<SqliteDb, DbError> {
        let p = path.display().to_string();
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI;
        // A name not starting with `file:` is a plain path even with the URI flag.
        let target = if immutable {
            let escaped = p.replace('%', "%25").replace('?', "%3f").replace('#', "%23");
            format!("file:{escaped}?immutable=1")
        } else {
            p.clone()
        };
        let conn = Connection::open_with_flags(target, flags).map_err(|source| sql_error(&p, source))?;
        let db = SqliteDb { conn, path: p };
        db.check_ours()?;
        Ok(db)
    }

    fn err(&self, source: rusqlite::Error) -> DbError {
        sql_error(&self.path, source)
    }

    fn pragma_i64(&self, name: &str) -> Result<i64, DbError> {
        self.conn.pragma_query_value(None, name, |r| r.get(0)).map_err(|e| self.err(e))
    }

    /// Ours: our application id, or (schema version 1) no id and only our tables.
    fn check_ours(&self) -> Result<(), DbError> {
        let app = self.pragma_i64("application_id")?;
        if app == APPLICATION_ID {
            return Ok(());
        }
        let foreign: i64 = self
            .conn
            .query_row(
                "SELECT count(*) FROM sqlite_schema WHERE type = 'table'
                 AND name NOT IN ('results', 'sync_cursor') AND name NOT LIKE 'sqlite_%'",
                [],
                |r| r.get(0),
            )
            .map_err(|e| self.err(e))?;
        if app != 0 || foreign > 0 {
            return Err(DbError::Foreign { path: self.path.clone() });
        }
        Ok(())
    }

    fn migrate(&mut self) -> Result<(), DbError> {
        let version = self.pragma_i64("user_version")?;
        if version > SCHEMA_VERSION {
            return Err(DbError::Newer { path: self.path.clone(), found: version, known: SCHEMA_VERSION });
        }
        if version == SCHEMA_VERSION {
            return Ok(());
        }
        migrations().to_latest(&mut self.conn).map_err(|e| match e {
            // A read-only or full database says so, as a store into it does.
            rusqlite_migration::Error::RusqliteError { err, .. } => sql_error(&self.path, err),
            source => DbError::Migration { path: self.path.clone(), source },
        })
    }

    /// Highest sequence number stored for `device_id` (0 = none).
    pub fn cursor(&self, device_id: &str) -> Result<u64, DbError> {
        self.conn
            .query_row("SELECT last_seq FROM sync_cursor WHERE device_id = ?1", [device_id], |r| r.get::<_, i64>(0))
            .optional()
            .map(|v| v.unwrap_or(0) as u64)
            .map_err(|e| self.err(e))
    }

    /// Every device with results, and its cursor.
    pub fn cursors(&self) -> Result<Vec<(String, u64)>, DbError> {
        let mut stmt = self
            .conn
            .prepare("SELECT device_id, last_seq FROM sync_cursor ORDER BY device_id")
            .map_err(|e| self.err(e))?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as u64))).map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    /// See [`super::SqliteDb::store`].
    pub fn store(&mut self, device_id: &str, records: &[ResultRecord]) -> Result<Stored, DbError> {
        let path = self.path.clone();
        let tx = self.conn.transaction().map_err(|e| sql_error(&path, e))?;
        let mut batch = Batch { tx, path };
        let stored = super::store_batch(&mut batch, device_id, records)?;
        let Batch { tx, path } = batch;
        tx.commit().map_err(|e| sql_error(&path, e))?;
        Ok(stored)
    }

    /// Records kept aside as conflicts, oldest first.
    pub fn conflicts(&self) -> Result<Vec<Conflict>, DbError> {
        if self.pragma_i64("user_version")? < 2 {
            // Version 1 predates conflicts: it has none.
            return Ok(Vec::new());
        }
        let mut stmt = self
            .conn
            .prepare(
                "SELECT device_id, seq, content_hash, stored_hash, record, detected_at_ms FROM conflicts
                 ORDER BY detected_at_ms, device_id, seq",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| {
                let frame: Vec<u8> = r.get(4)?;
                Ok((r.get(0)?, r.get::<_, i64>(1)?, r.get(2)?, r.get(3)?, frame, r.get::<_, i64>(5)?))
            })
            .map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for row in rows {
            let (device_id, seq, content_hash, stored_hash, frame, at) = row.map_err(|e| self.err(e))?;
            // Written by `store` from a record: always decodes.
            let Some(record) = super::decode_stored(&frame) else { continue };
            out.push(Conflict {
                device_id,
                seq: seq as u64,
                record,
                content_hash,
                stored_hash,
                detected_at_ms: at as u64,
            });
        }
        Ok(out)
    }

    /// See [`super::SqliteDb::results`].
    pub fn results(&self, filter: &Filter) -> Result<Vec<StoredResult>, DbError> {
        read_rows(
            &self.conn,
            &self.path,
            &format!(
                "WHERE (?1 IS NULL OR device_id = ?1) AND (?2 IS NULL OR started_ms >= ?2) {}",
                super::listing_order()
            ),
            params![filter.device, filter.since_ms.map(|t| t as i64)],
        )
    }

    /// See [`super::SqliteDb::range`].
    pub fn range(&self, device_id: &str, from: u64, to: u64) -> Result<Vec<StoredResult>, DbError> {
        read_rows(
            &self.conn,
            &self.path,
            "WHERE device_id = ?1 AND seq BETWEEN ?2 AND ?3 ORDER BY seq",
            params![device_id, from as i64, to.min(i64::MAX as u64) as i64],
        )
    }

    /// See [`super::SqliteDb::stored_seqs`].
    pub fn stored_seqs(&self, device_id: &str, from: u64, to: u64) -> Result<Vec<u64>, DbError> {
        let mut stmt = self
            .conn
            .prepare("SELECT seq FROM results WHERE device_id = ?1 AND seq BETWEEN ?2 AND ?3 ORDER BY seq")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(params![device_id, from as i64, to.min(i64::MAX as u64) as i64], |r| r.get::<_, i64>(0))
            .map_err(|e| self.err(e))?;
        rows.map(|r| r.map(|s| s as u64)).collect::<Result<_, _>>().map_err(|e| self.err(e))
    }
}

/// An SQLite error, named for what it means to whoever syncs: a read-only or full database
/// stores nothing and the device keeps its records.
/// The steps of [`MIGRATIONS`] for SQLite. Each also marks the file as ours (`application_id`);
/// a step that changed the record's encoding recomputes the stored content hashes.
fn migrations() -> Migrations<'static> {
    Migrations::new(
        MIGRATIONS
            .iter()
            .map(|m| {
                let rehash = m.rehash;
                M::up_with_hook(m.sqlite, move |tx: &Transaction| -> HookResult {
                    tx.pragma_update(None, "application_id", APPLICATION_ID)?;
                    if rehash {
                        for r in rows(tx, "WHERE 1 = 1", [])? {
                            tx.execute(
                                "UPDATE results SET content_hash = ?1 WHERE device_id = ?2 AND seq = ?3",
                                params![super::content_hash(&r.record), r.device_id, r.record.seq as i64],
                            )?;
                        }
                    }
                    Ok(())
                })
            })
            .collect(),
    )
}

/// Brings a new database at `path` to schema `version` (≤ [`SCHEMA_VERSION`]) and no further:
/// the file an older `mimml` made, for upgrade tests and for reproducing a site's database.
pub fn create_at(path: &Path, version: i64) -> Result<(), DbError> {
    let p = path.display().to_string();
    let mut conn = Connection::open(path).map_err(|e| sql_error(&p, e))?;
    let to = usize::try_from(version.clamp(0, SCHEMA_VERSION)).unwrap_or(0);
    migrations().to_version(&mut conn, to).map_err(|source| DbError::Migration { path: p, source })
}

fn sql_error(path: &str, source: rusqlite::Error) -> DbError {
    match source.sqlite_error_code() {
        Some(ErrorCode::ReadOnly) => DbError::ReadOnly { path: path.to_owned(), source: Box::new(source) },
        Some(ErrorCode::DiskFull) => DbError::Full { path: path.to_owned(), source: Box::new(source) },
        _ => DbError::Sql { path: path.to_owned(), source },
    }
}

/// Results rows after `tail` (a `WHERE` clause and an order). A database of schema 1 or 2,
/// read without migrating it, has no questionnaire columns: they read as none.
fn read_rows(
    conn: &Connection,
    path: &str,
    tail: &str,
    args: impl rusqlite::Params,
) -> Result<Vec<StoredResult>, DbError> {
    rows(conn, tail, args).map_err(|source| sql_error(path, source))
}

/// [`read_rows`] with SQLite's own error (a migration step reads them too).
fn rows(conn: &Connection, tail: &str, args: impl rusqlite::Params) -> rusqlite::Result<Vec<StoredResult>> {
    let has_phq: bool =
        conn.query_row("SELECT count(*) > 0 FROM pragma_table_info('results') WHERE name = 'phq_answers'", [], |r| {
            r.get(0)
        })?;
    let columns = if has_phq {
        super::ROW_COLUMNS.to_owned()
    } else {
        super::ROW_COLUMNS.replace("phq_instrument, phq_answers", "NULL, NULL")
    };
    let mut stmt = conn.prepare(&format!("SELECT {columns} FROM results {tail}"))?;
    let rows = stmt.query_map(args, |r| {
        Ok(Row {
            device_id: r.get(0)?,
            seq: r.get(1)?,
            session: r.get(2)?,
            label: r.get(3)?,
            started_ms: r.get(4)?,
            finished_ms: r.get(5)?,
            compute_ms: r.get(6)?,
            p_depressed: r.get(7)?,
            phq8: r.get(8)?,
            gates: [r.get(9)?, r.get(10)?, r.get(11)?],
            modalities: r.get(12)?,
            model_version: r.get(13)?,
            feature_schema: r.get(14)?,
            flags: r.get(15)?,
            synced_at_ms: r.get(16)?,
            phq_instrument: r.get(17)?,
            phq_answers: r.get(18)?,
        }
        .into_stored())
    })?;
    rows.collect()
}

/// One storing transaction.
struct Batch<'c> {
    tx: Transaction<'c>,
    path: String,
}

impl StoreTx for Batch<'_> {
    fn insert(&mut self, device_id: &str, r: &ResultRecord, hash: &str, now: i64) -> Result<bool, DbError> {
        let (instrument, answers, score) = super::questionnaire_columns(r);
        let n = self
            .tx
            .prepare_cached(
                "INSERT OR IGNORE INTO results VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21)",
            )
            .and_then(|mut insert| {
                insert.execute(params![
                    device_id,
                    r.seq as i64,
                    r.session,
                    r.label.as_str(),
                    r.started_ms as i64,
                    r.finished_ms as i64,
                    r.compute_ms,
                    f64::from(r.p_depressed),
                    f64::from(r.phq8),
                    f64::from(r.gates[0]),
                    f64::from(r.gates[1]),
                    f64::from(r.gates[2]),
                    r.modalities.bits(),
                    r.model_version.as_str(),
                    r.feature_schema.to_string(),
                    r.flags.bits(),
                    now,
                    hash,
                    instrument,
                    answers,
                    score,
                ])
            })
            .map_err(|e| sql_error(&self.path, e))?;
        Ok(n == 1)
    }

    fn stored_hash(&mut self, device_id: &str, seq: u64) -> Result<String, DbError> {
        self.tx
            .query_row(
                "SELECT content_hash FROM results WHERE device_id = ?1 AND seq = ?2",
                params![device_id, seq as i64],
                |row| row.get(0),
            )
            .map_err(|e| sql_error(&self.path, e))
    }

    fn keep_conflict(&mut self, c: &Conflict, frame: &[u8], summary: &str) -> Result<(), DbError> {
        self.tx
            .execute(
                "INSERT OR IGNORE INTO conflicts VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    c.device_id,
                    c.seq as i64,
                    c.content_hash,
                    c.stored_hash,
                    frame,
                    summary,
                    c.detected_at_ms as i64
                ],
            )
            .map_err(|e| sql_error(&self.path, e))?;
        Ok(())
    }

    fn advance(&mut self, device_id: &str, seq: u64) -> Result<(), DbError> {
        self.tx
            .execute(
                "INSERT INTO sync_cursor VALUES (?1, ?2)
                 ON CONFLICT(device_id) DO UPDATE SET last_seq = max(last_seq, excluded.last_seq)",
                params![device_id, seq as i64],
            )
            .map_err(|e| sql_error(&self.path, e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::rec;
    use super::super::{content_hash, sha256_hex};
    use super::*;
    use protocol::{Instrument, Questionnaire, ResultFlags};

    #[test]
    fn a_batch_stored_twice_is_stored_once_and_round_trips() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut db = SqliteDb::open(&dir.path().join("r.db")).expect("open");
        assert_eq!(db.cursor("d1").expect("cursor"), 0);
        assert_eq!(db.store("d1", &[rec(1), rec(2)]).expect("store").inserted, 2);
        assert_eq!(db.store("d1", &[rec(2), rec(3)]).expect("store"), Stored { inserted: 1, conflicts: vec![] });
        assert_eq!(db.store("d2", &[rec(1)]).expect("store").inserted, 1);
        assert_eq!(db.cursor("d1").expect("cursor"), 3);
        let all = db.results(&Filter::device("d1")).expect("results");
        assert_eq!(all.iter().map(|r| r.record.clone()).collect::<Vec<_>>(), vec![rec(1), rec(2), rec(3)]);
        assert_eq!(db.results(&Filter::default()).expect("results").len(), 4);
        // The cursor never moves backwards.
        db.store("d1", &[rec(1)]).expect("store");
        assert_eq!(db.cursor("d1").expect("cursor"), 3);
    }

    #[test]
    fn a_different_record_under_a_stored_key_is_a_conflict_kept_aside() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut db = SqliteDb::open(&dir.path().join("r.db")).expect("open");
        db.store("d1", &[rec(1), rec(2)]).expect("store");
        // Another device under the same id: same numbers, other sessions.
        let mut other = rec(2);
        other.session = 77;
        other.p_depressed = 0.9;
        let stored = db.store("d1", &[other.clone(), rec(3)]).expect("store");
        assert_eq!(stored.inserted, 1);
        assert_eq!(stored.conflicts.len(), 1);
        assert_eq!((stored.conflicts[0].seq, &stored.conflicts[0].record), (2, &other));
        // Kept aside, not mixed in, and idempotent when the batch comes again.
        assert_eq!(db.results(&Filter::device("d1")).expect("results")[1].record, rec(2));
        db.store("d1", &[other.clone()]).expect("again");
        let kept = db.conflicts().expect("conflicts");
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].record, other);
        assert_eq!(kept[0].stored_hash, content_hash(&rec(2)));
    }

    #[test]
    fn a_version_1_database_is_migrated_with_hashes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("v1.db");
        let conn = Connection::open(&path).expect("open");
        conn.execute_batch(MIGRATIONS[0].sqlite).expect("v1");
        conn.execute(
            "INSERT INTO results VALUES ('d1', 1, 1, 'x', 10, 20, 5, 0.5, 12.0, 0.2, 0.3, 0.5, 7, 'm1', 'ab010203040506ff', 3, 0)",
            [],
        )
        .expect("row");
        drop(conn);
        // Reading does not migrate: the file stays as it was.
        let before = std::fs::read(&path).expect("read");
        let read = SqliteDb::open_read_only(&path).expect("read v1");
        assert_eq!(read.results(&Filter::default()).expect("results")[0].record, rec(1));
        assert_eq!(read.conflicts().expect("conflicts"), vec![]);
        drop(read);
        assert_eq!(std::fs::read(&path).expect("read"), before);
        let mut db = SqliteDb::open(&path).expect("migrate");
        assert_eq!(db.results(&Filter::default()).expect("results")[0].record, rec(1));
        // The migrated hash is the record's: the same record again is a repeat, not a conflict.
        assert_eq!(db.store("d1", &[rec(1)]).expect("store"), Stored::default());
        assert_eq!(db.pragma_i64("user_version").expect("version"), SCHEMA_VERSION);
    }

    #[test]
    fn a_version_2_database_is_migrated_and_its_hashes_follow_the_new_encoding() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("v2.db");
        let frame = |r: &ResultRecord| {
            let mut buf = vec![0u8; protocol::MAX_FRAME];
            let n = protocol::encode_frame(&r.as_v3(), &mut buf).expect("fits");
            buf.truncate(n);
            buf
        };
        let conn = Connection::open(&path).expect("open");
        conn.execute_batch(MIGRATIONS[0].sqlite).expect("v1");
        conn.execute_batch(MIGRATIONS[1].sqlite).expect("v2");
        conn.execute(
            "INSERT INTO results VALUES ('d1', 1, 1, 'x', 10, 20, 5, 0.5, 12.0, 0.2, 0.3, 0.5, 7, 'm1', 'ab010203040506ff', 3, 0, ?1)",
            [sha256_hex(&frame(&rec(1)))],
        )
        .expect("row");
        let mut other = rec(1);
        other.session = 9;
        conn.execute("INSERT INTO conflicts VALUES ('d1', 1, 'h', 's', ?1, 'x', 0)", [frame(&other)])
            .expect("conflict");
        conn.pragma_update(None, "application_id", APPLICATION_ID).expect("id");
        conn.pragma_update(None, "user_version", 2).expect("version");
        drop(conn);
        let read = SqliteDb::open_read_only(&path).expect("read v2 without migrating");
        assert_eq!(read.results(&Filter::default()).expect("results")[0].record, rec(1));
        drop(read);
        let mut db = SqliteDb::open(&path).expect("migrate");
        assert_eq!(db.pragma_i64("user_version").expect("version"), 3);
        assert_eq!(db.store("d1", &[rec(1)]).expect("store"), Stored::default(), "a repeat, not a conflict");
        assert_eq!(db.conflicts().expect("conflicts")[0].record, other, "a version-3 frame kept aside still reads");
    }

    #[test]
    fn a_questionnaire_round_trips() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut db = SqliteDb::open(&dir.path().join("r.db")).expect("open");
        let mut r = rec(1);
        r.questionnaire = Some(Questionnaire::new(Instrument::Phq9, &[1, 2, 3, 0, 1, 2, 3, 0, 1]).expect("valid"));
        r.flags |= ResultFlags::URGENT | ResultFlags::KIOSK;
        db.store("d1", &[r.clone(), rec(2)]).expect("store");
        db.store("d0", &[rec(5)]).expect("store");
        let back = db.results(&Filter::default()).expect("results");
        assert_eq!((&back[0].record, &back[2].record), (&r, &rec(2)), "the urgent result comes first");
        assert_eq!(back[1].device_id, "d0");
        let score: i64 =
            db.conn.query_row("SELECT phq_score FROM results WHERE seq = 1", [], |row| row.get(0)).expect("score");
        assert_eq!(score, 13);
    }

    #[test]
    fn reading_never_creates_and_another_programs_database_is_left_alone() {
        let dir = tempfile::tempdir().expect("tempdir");
        let typo = dir.path().join("typo.db");
        assert!(matches!(SqliteDb::open_read_only(&typo), Err(DbError::Missing { .. })));
        assert!(!typo.exists());
        let theirs = dir.path().join("theirs.db");
        Connection::open(&theirs).expect("open").execute_batch("CREATE TABLE notes (t TEXT);").expect("table");
        let before = std::fs::read(&theirs).expect("read");
        assert!(matches!(SqliteDb::open(&theirs), Err(DbError::Foreign { .. })));
        assert!(matches!(SqliteDb::open_read_only(&theirs), Err(DbError::Foreign { .. })));
        assert_eq!(std::fs::read(&theirs).expect("read"), before);
    }

    #[test]
    fn a_database_on_read_only_media_is_readable() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("r.db");
        let mut db = SqliteDb::open(&path).expect("open");
        db.store("d1", &[rec(1)]).expect("store");
        drop(db);
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o555)).expect("chmod");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o444)).expect("chmod");
        let read = SqliteDb::open_read_only(&path).map(|db| db.results(&Filter::default()).map(|r| r.len()));
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
        assert_eq!(read.expect("open").expect("results"), 1);
        // The immutable open a read-only medium falls back to reads the same rows, also from a
        // path with URI metacharacters.
        let odd = dir.path().join("a?b#c%d.db");
        std::fs::copy(&path, &odd).expect("copy");
        for immutable in [false, true] {
            let db = SqliteDb::read_only(&odd, immutable).expect("open");
            assert_eq!(db.results(&Filter::default()).expect("results").len(), 1);
        }
    }
}
