//! The host's results database (SQLite).
//!
//! Exactly-once: a record is identified by `(device_id, seq)` (primary key), and the per-device
//! sync cursor moves in the same transaction as the records it covers. A batch re-fetched after
//! a lost acknowledgement or a crash inserts nothing new; a batch whose transaction did not
//! commit is fetched again next time.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use protocol::{Instrument, Modalities, Questionnaire, ResultFlags, ResultRecord};
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use sha2::{Digest, Sha256};

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("results database {path}")]
    Sql {
        path: String,
        #[source]
        source: rusqlite::Error,
    },
    /// Opening for reading never creates a database.
    #[error("no results database at {path} (`mimml sync --db {path}` creates one)")]
    Missing { path: String },
    /// The file is an SQLite database of another program: it is left untouched.
    #[error("{path} is not a MIMML results database (it holds other tables); refusing to change it")]
    Foreign { path: String },
    /// A later version of this tool wrote the database.
    #[error("results database {path} has schema version {found}; this mimml knows up to {known}")]
    Newer { path: String, found: i64, known: i64 },
}

/// `PRAGMA application_id` of a MIMML results database ("MIML").
const APPLICATION_ID: i64 = 0x4D49_4D4C;

/// `PRAGMA user_version` of the current schema. Version 1 (no content hashes, no conflicts
/// table, no application id) is migrated in place.
const SCHEMA_VERSION: i64 = 3;

const SCHEMA_V1: &str = "
CREATE TABLE IF NOT EXISTS results (
    device_id      TEXT    NOT NULL,
    seq            INTEGER NOT NULL,
    session        INTEGER NOT NULL,
    label          TEXT    NOT NULL,
    started_ms     INTEGER NOT NULL,
    finished_ms    INTEGER NOT NULL,
    compute_ms     INTEGER NOT NULL,
    p_depressed    REAL    NOT NULL,
    phq8           REAL    NOT NULL,
    gate_audio     REAL    NOT NULL,
    gate_video     REAL    NOT NULL,
    gate_text      REAL    NOT NULL,
    modalities     INTEGER NOT NULL,
    model_version  TEXT    NOT NULL,
    feature_schema TEXT    NOT NULL,
    flags          INTEGER NOT NULL,
    synced_at_ms   INTEGER NOT NULL,
    PRIMARY KEY (device_id, seq)
);
CREATE TABLE IF NOT EXISTS sync_cursor (
    device_id TEXT    PRIMARY KEY,
    last_seq  INTEGER NOT NULL
);
";

/// Version 2: every record's content hash, and records that arrived under a `(device_id, seq)`
/// already stored with other content, kept aside.
const SCHEMA_V2: &str = "
ALTER TABLE results ADD COLUMN content_hash TEXT NOT NULL DEFAULT '';
CREATE TABLE IF NOT EXISTS conflicts (
    device_id      TEXT    NOT NULL,
    seq            INTEGER NOT NULL,
    content_hash   TEXT    NOT NULL,
    stored_hash    TEXT    NOT NULL,
    record         BLOB    NOT NULL,
    summary        TEXT    NOT NULL,
    detected_at_ms INTEGER NOT NULL,
    PRIMARY KEY (device_id, seq, content_hash)
);
";

/// Version 3: the questionnaire the kiosk took (instrument, answers as "0,1,…", total), NULL for
/// none. Content hashes are recomputed: the record's encoding gained the questionnaire.
const SCHEMA_V3: &str = "
ALTER TABLE results ADD COLUMN phq_instrument TEXT;
ALTER TABLE results ADD COLUMN phq_answers TEXT;
ALTER TABLE results ADD COLUMN phq_score INTEGER;
";

fn instrument_name(q: &Questionnaire) -> &'static str {
    q.instrument.name()
}

fn parse_questionnaire(instrument: Option<String>, answers: Option<String>) -> Option<Questionnaire> {
    let instrument = match instrument?.as_str() {
        "PHQ-8" => Instrument::Phq8,
        "PHQ-9" => Instrument::Phq9,
        _ => return None,
    };
    let answers: Vec<u8> = answers?.split(',').map(|a| a.trim().parse().ok()).collect::<Option<_>>()?;
    Questionnaire::new(instrument, &answers).ok()
}

/// A stored result.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredResult {
    pub device_id: String,
    pub record: ResultRecord,
    pub synced_at_ms: u64,
}

/// A record that arrived under a `(device_id, seq)` the database already holds with other
/// content: two devices sharing an id, or a device that lost its numbering. Kept aside, never
/// dropped and never mixed into `results`.
#[derive(Debug, Clone, PartialEq)]
pub struct Conflict {
    pub device_id: String,
    pub seq: u64,
    /// The arriving record.
    pub record: ResultRecord,
    pub content_hash: String,
    /// The hash of the record stored under the same key.
    pub stored_hash: String,
    pub detected_at_ms: u64,
}

/// What storing a batch did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stored {
    /// New records.
    pub inserted: usize,
    /// Records that conflicted with stored ones (kept aside).
    pub conflicts: Vec<Conflict>,
}

/// A record kept as its frame (a conflict): today's layout, or protocol version 3's.
fn decode_stored(frame: &[u8]) -> Option<ResultRecord> {
    let now = protocol::FrameDecoder::new().feed::<ResultRecord>(frame).frame.and_then(Result::ok);
    now.or_else(|| {
        let v3 = protocol::FrameDecoder::new().feed::<protocol::ResultRecordV3>(frame).frame.and_then(Result::ok);
        v3.map(ResultRecord::from)
    })
}

/// A record's canonical encoding: its protocol frame.
fn encoded(r: &ResultRecord) -> Vec<u8> {
    let mut buf = vec![0u8; protocol::MAX_FRAME];
    // A record always fits in a frame (the protocol's tests check the largest one).
    let n = protocol::encode_frame(r, &mut buf).unwrap_or(0);
    buf.truncate(n);
    buf
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// SHA-256 (hex) of a record's canonical encoding (its protocol frame).
pub fn content_hash(r: &ResultRecord) -> String {
    sha256_hex(&encoded(r))
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

#[derive(Debug)]
pub struct ResultsDb {
    conn: Connection,
    path: String,
}

impl ResultsDb {
    /// Opens the database for syncing, creating it if missing and migrating an older schema.
    /// A database of another program is refused untouched.
    pub fn open(path: &Path) -> Result<ResultsDb, DbError> {
        let p = path.display().to_string();
        let sql = |source| DbError::Sql { path: p.clone(), source };
        let conn = Connection::open(path).map_err(sql)?;
        let mut db = ResultsDb { conn, path: p };
        db.check_ours()?;
        db.conn.pragma_update(None, "journal_mode", "WAL").map_err(|e| db.err(e))?;
        db.conn.pragma_update(None, "synchronous", "FULL").map_err(|e| db.err(e))?;
        db.migrate()?;
        Ok(db)
    }

    /// Opens an existing database for reading: never creates or changes one, and reads one on
    /// read-only media.
    pub fn open_read_only(path: &Path) -> Result<ResultsDb, DbError> {
        let p = path.display().to_string();
        if !path.is_file() {
            return Err(DbError::Missing { path: p });
        }
        // A WAL database on read-only media without its `-shm` file opens only as immutable.
        let db = match Self::read_only(path, false) {
            Err(DbError::Sql { .. }) => Self::read_only(path, true)?,
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
    fn read_only(path: &Path, immutable: bool) -> Result<ResultsDb, DbError> {
        let p = path.display().to_string();
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI;
        // A name not starting with `file:` is a plain path even with the URI flag.
        let target = if immutable {
            let escaped = p.replace('%', "%25").replace('?', "%3f").replace('#', "%23");
            format!("file:{escaped}?immutable=1")
        } else {
            p.clone()
        };
        let conn =
            Connection::open_with_flags(target, flags).map_err(|source| DbError::Sql { path: p.clone(), source })?;
        let db = ResultsDb { conn, path: p };
        db.check_ours()?;
        Ok(db)
    }

    fn err(&self, source: rusqlite::Error) -> DbError {
        DbError::Sql { path: self.path.clone(), source }
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
        let path = self.path.clone();
        let sql = |source| DbError::Sql { path: path.clone(), source };
        let tx = self.conn.transaction().map_err(sql)?;
        // Version 0 is a new database or one of version 1 (which set no version).
        tx.execute_batch(SCHEMA_V1).map_err(sql)?;
        if version < 2 {
            tx.execute_batch(SCHEMA_V2).map_err(sql)?;
        }
        tx.execute_batch(SCHEMA_V3).map_err(sql)?;
        // Hashes of the records stored before, in today's encoding.
        let rows = Self::read_results(&tx, None, &path)?;
        for r in rows {
            tx.execute(
                "UPDATE results SET content_hash = ?1 WHERE device_id = ?2 AND seq = ?3",
                params![content_hash(&r.record), r.device_id, r.record.seq as i64],
            )
            .map_err(sql)?;
        }
        tx.pragma_update(None, "application_id", APPLICATION_ID).map_err(sql)?;
        tx.pragma_update(None, "user_version", SCHEMA_VERSION).map_err(sql)?;
        tx.commit().map_err(sql)
    }

    /// Highest sequence number stored for `device_id` (0 = none).
    pub fn cursor(&self, device_id: &str) -> Result<u64, DbError> {
        self.conn
            .query_row("SELECT last_seq FROM sync_cursor WHERE device_id = ?1", [device_id], |r| r.get::<_, i64>(0))
            .optional()
            .map(|v| v.unwrap_or(0) as u64)
            .map_err(|e| self.err(e))
    }

    /// Stores a batch and advances the cursor in one transaction. A record whose key is stored
    /// with the same content is a repeat (nothing happens); with other content it is a
    /// [`Conflict`], kept aside and returned.
    pub fn store(&mut self, device_id: &str, records: &[ResultRecord]) -> Result<Stored, DbError> {
        let now = now_ms();
        let path = self.path.clone();
        let sql = |source| DbError::Sql { path: path.clone(), source };
        let tx = self.conn.transaction().map_err(sql)?;
        let mut stored = Stored::default();
        {
            let mut insert = tx
                .prepare_cached(
                    "INSERT OR IGNORE INTO results VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21)",
                )
                .map_err(sql)?;
            for r in records {
                let frame = encoded(r);
                let hash = sha256_hex(&frame);
                let n = insert
                    .execute(params![
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
                        r.questionnaire.as_ref().map(instrument_name),
                        r.questionnaire
                            .as_ref()
                            .map(|q| { q.answers.iter().map(u8::to_string).collect::<Vec<_>>().join(",") }),
                        r.questionnaire.as_ref().map(Questionnaire::score),
                    ])
                    .map_err(sql)?;
                if n == 1 {
                    stored.inserted += 1;
                    continue;
                }
                let stored_hash: String = tx
                    .query_row(
                        "SELECT content_hash FROM results WHERE device_id = ?1 AND seq = ?2",
                        params![device_id, r.seq as i64],
                        |row| row.get(0),
                    )
                    .map_err(sql)?;
                if stored_hash == hash {
                    continue;
                }
                tx.execute(
                    "INSERT OR IGNORE INTO conflicts VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                    params![
                        device_id,
                        r.seq as i64,
                        hash,
                        stored_hash,
                        frame,
                        crate::report::one_line(device_id, r),
                        now
                    ],
                )
                .map_err(sql)?;
                stored.conflicts.push(Conflict {
                    device_id: device_id.to_owned(),
                    seq: r.seq,
                    record: r.clone(),
                    content_hash: hash,
                    stored_hash,
                    detected_at_ms: now as u64,
                });
            }
            if let Some(max) = records.iter().map(|r| r.seq).max() {
                tx.execute(
                    "INSERT INTO sync_cursor VALUES (?1, ?2)
                     ON CONFLICT(device_id) DO UPDATE SET last_seq = max(last_seq, excluded.last_seq)",
                    params![device_id, max as i64],
                )
                .map_err(sql)?;
            }
        }
        tx.commit().map_err(sql)?;
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
                let record = decode_stored(&frame);
                Ok((r.get(0)?, r.get::<_, i64>(1)?, r.get(2)?, r.get(3)?, record, r.get::<_, i64>(5)?))
            })
            .map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for row in rows {
            let (device_id, seq, content_hash, stored_hash, record, at) = row.map_err(|e| self.err(e))?;
            // Written by `store` from a record: always decodes.
            let Some(record) = record else { continue };
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

    /// Stored results: urgent ones (PHQ-9 item 9 answered above 0) first, then by device and
    /// sequence; all devices when `device_id` is `None`.
    pub fn results(&self, device_id: Option<&str>) -> Result<Vec<StoredResult>, DbError> {
        Self::read_results(&self.conn, device_id, &self.path)
    }

    fn read_results(conn: &Connection, device_id: Option<&str>, path: &str) -> Result<Vec<StoredResult>, DbError> {
        let err = |source| DbError::Sql { path: path.to_owned(), source };
        // A database of schema 1 or 2, read without migrating it, has no questionnaires.
        let has_phq: bool = conn
            .query_row("SELECT count(*) > 0 FROM pragma_table_info('results') WHERE name = 'phq_answers'", [], |r| {
                r.get(0)
            })
            .map_err(err)?;
        let phq = if has_phq { "phq_instrument, phq_answers" } else { "NULL, NULL" };
        let mut stmt = conn
            .prepare(&format!(
                "SELECT device_id, seq, session, label, started_ms, finished_ms, compute_ms, p_depressed, phq8,
                        gate_audio, gate_video, gate_text, modalities, model_version, feature_schema, flags, synced_at_ms,
                        {phq}
                 FROM results WHERE ?1 IS NULL OR device_id = ?1
                 ORDER BY (flags & {urgent}) = 0, device_id, seq",
                urgent = ResultFlags::URGENT.bits()
            ))
            .map_err(err)?;
        let rows = stmt
            .query_map([device_id], |r| {
                let schema: String = r.get(14)?;
                let mut hash = [0u8; 8];
                for (i, b) in hash.iter_mut().enumerate() {
                    *b = schema.get(2 * i..2 * i + 2).and_then(|h| u8::from_str_radix(h, 16).ok()).unwrap_or(0);
                }
                Ok(StoredResult {
                    device_id: r.get(0)?,
                    record: ResultRecord {
                        seq: r.get::<_, i64>(1)? as u64,
                        session: r.get(2)?,
                        label: protocol::truncated(&r.get::<_, String>(3)?),
                        started_ms: r.get::<_, i64>(4)? as u64,
                        finished_ms: r.get::<_, i64>(5)? as u64,
                        compute_ms: r.get(6)?,
                        p_depressed: r.get::<_, f64>(7)? as f32,
                        phq8: r.get::<_, f64>(8)? as f32,
                        gates: [r.get::<_, f64>(9)? as f32, r.get::<_, f64>(10)? as f32, r.get::<_, f64>(11)? as f32],
                        modalities: Modalities::from_bits_retain(r.get(12)?),
                        model_version: protocol::truncated(&r.get::<_, String>(13)?),
                        feature_schema: protocol::SchemaHash(hash),
                        flags: ResultFlags::from_bits_retain(r.get(15)?),
                        questionnaire: parse_questionnaire(r.get(17)?, r.get(18)?),
                    },
                    synced_at_ms: r.get::<_, i64>(16)? as u64,
                })
            })
            .map_err(err)?;
        rows.collect::<Result<_, _>>().map_err(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::{SchemaHash, truncated};

    pub(crate) fn rec(seq: u64) -> ResultRecord {
        ResultRecord {
            seq,
            session: seq as u32,
            label: truncated("x"),
            started_ms: 10,
            finished_ms: 20,
            compute_ms: 5,
            p_depressed: 0.5,
            phq8: 12.0,
            gates: [0.2, 0.3, 0.5],
            modalities: Modalities::ALL,
            model_version: truncated("m1"),
            feature_schema: SchemaHash([0xAB, 1, 2, 3, 4, 5, 6, 0xFF]),
            flags: ResultFlags::LOW_QUALITY_AUDIO | ResultFlags::NO_FACE,
            questionnaire: None,
        }
    }

    #[test]
    fn a_batch_stored_twice_is_stored_once_and_round_trips() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut db = ResultsDb::open(&dir.path().join("r.db")).expect("open");
        assert_eq!(db.cursor("d1").expect("cursor"), 0);
        assert_eq!(db.store("d1", &[rec(1), rec(2)]).expect("store").inserted, 2);
        assert_eq!(db.store("d1", &[rec(2), rec(3)]).expect("store"), Stored { inserted: 1, conflicts: vec![] });
        assert_eq!(db.store("d2", &[rec(1)]).expect("store").inserted, 1);
        assert_eq!(db.cursor("d1").expect("cursor"), 3);
        let all = db.results(Some("d1")).expect("results");
        assert_eq!(all.iter().map(|r| r.record.clone()).collect::<Vec<_>>(), vec![rec(1), rec(2), rec(3)]);
        assert_eq!(db.results(None).expect("results").len(), 4);
        // The cursor never moves backwards.
        db.store("d1", &[rec(1)]).expect("store");
        assert_eq!(db.cursor("d1").expect("cursor"), 3);
    }

    #[test]
    fn a_different_record_under_a_stored_key_is_a_conflict_kept_aside() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut db = ResultsDb::open(&dir.path().join("r.db")).expect("open");
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
        assert_eq!(db.results(Some("d1")).expect("results")[1].record, rec(2));
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
        conn.execute_batch(SCHEMA_V1).expect("v1");
        conn.execute(
            "INSERT INTO results VALUES ('d1', 1, 1, 'x', 10, 20, 5, 0.5, 12.0, 0.2, 0.3, 0.5, 7, 'm1', 'ab010203040506ff', 3, 0)",
            [],
        )
        .expect("row");
        drop(conn);
        // Reading does not migrate: the file stays as it was.
        let before = std::fs::read(&path).expect("read");
        let read = ResultsDb::open_read_only(&path).expect("read v1");
        assert_eq!(read.results(None).expect("results")[0].record, rec(1));
        assert_eq!(read.conflicts().expect("conflicts"), vec![]);
        drop(read);
        assert_eq!(std::fs::read(&path).expect("read"), before);
        let mut db = ResultsDb::open(&path).expect("migrate");
        assert_eq!(db.results(None).expect("results")[0].record, rec(1));
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
        conn.execute_batch(SCHEMA_V1).expect("v1");
        conn.execute_batch(SCHEMA_V2).expect("v2");
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
        let read = ResultsDb::open_read_only(&path).expect("read v2 without migrating");
        assert_eq!(read.results(None).expect("results")[0].record, rec(1));
        drop(read);
        let mut db = ResultsDb::open(&path).expect("migrate");
        assert_eq!(db.pragma_i64("user_version").expect("version"), 3);
        assert_eq!(db.store("d1", &[rec(1)]).expect("store"), Stored::default(), "a repeat, not a conflict");
        assert_eq!(db.conflicts().expect("conflicts")[0].record, other, "a version-3 frame kept aside still reads");
    }

    #[test]
    fn a_questionnaire_round_trips() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut db = ResultsDb::open(&dir.path().join("r.db")).expect("open");
        let mut r = rec(1);
        r.questionnaire = Some(Questionnaire::new(Instrument::Phq9, &[1, 2, 3, 0, 1, 2, 3, 0, 1]).expect("valid"));
        r.flags |= ResultFlags::URGENT | ResultFlags::KIOSK;
        db.store("d1", &[r.clone(), rec(2)]).expect("store");
        db.store("d0", &[rec(5)]).expect("store");
        let back = db.results(None).expect("results");
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
        assert!(matches!(ResultsDb::open_read_only(&typo), Err(DbError::Missing { .. })));
        assert!(!typo.exists());
        let theirs = dir.path().join("theirs.db");
        Connection::open(&theirs).expect("open").execute_batch("CREATE TABLE notes (t TEXT);").expect("table");
        let before = std::fs::read(&theirs).expect("read");
        assert!(matches!(ResultsDb::open(&theirs), Err(DbError::Foreign { .. })));
        assert!(matches!(ResultsDb::open_read_only(&theirs), Err(DbError::Foreign { .. })));
        assert_eq!(std::fs::read(&theirs).expect("read"), before);
    }

    #[test]
    fn a_database_on_read_only_media_is_readable() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("r.db");
        let mut db = ResultsDb::open(&path).expect("open");
        db.store("d1", &[rec(1)]).expect("store");
        drop(db);
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o555)).expect("chmod");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o444)).expect("chmod");
        let read = ResultsDb::open_read_only(&path).map(|db| db.results(None).map(|r| r.len()));
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
        assert_eq!(read.expect("open").expect("results"), 1);
        // The immutable open a read-only medium falls back to reads the same rows, also from a
        // path with URI metacharacters.
        let odd = dir.path().join("a?b#c%d.db");
        std::fs::copy(&path, &odd).expect("copy");
        for immutable in [false, true] {
            let db = ResultsDb::read_only(&odd, immutable).expect("open");
            assert_eq!(db.results(None).expect("results").len(), 1);
        }
    }
}
