//! The host's results database (SQLite).
//!
//! Exactly-once: a record is identified by `(device_id, seq)` (primary key), and the per-device
//! sync cursor moves in the same transaction as the records it covers. A batch re-fetched after
//! a lost acknowledgement or a crash inserts nothing new; a batch whose transaction did not
//! commit is fetched again next time.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use protocol::{Modalities, ResultFlags, ResultRecord};
use rusqlite::{Connection, OptionalExtension, params};

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("results database {path}: {source}")]
    Sql {
        path: String,
        #[source]
        source: rusqlite::Error,
    },
}

const SCHEMA: &str = "
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

/// A stored result.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredResult {
    pub device_id: String,
    pub record: ResultRecord,
    pub synced_at_ms: u64,
}

#[derive(Debug)]
pub struct ResultsDb {
    conn: Connection,
    path: String,
}

impl ResultsDb {
    pub fn open(path: &Path) -> Result<ResultsDb, DbError> {
        let p = path.display().to_string();
        let sql = |source| DbError::Sql { path: p.clone(), source };
        let conn = Connection::open(path).map_err(sql)?;
        conn.pragma_update(None, "journal_mode", "WAL").map_err(sql)?;
        conn.pragma_update(None, "synchronous", "FULL").map_err(sql)?;
        conn.execute_batch(SCHEMA).map_err(sql)?;
        Ok(ResultsDb { conn, path: p })
    }

    fn err(&self, source: rusqlite::Error) -> DbError {
        DbError::Sql { path: self.path.clone(), source }
    }

    /// Highest sequence number stored for `device_id` (0 = none).
    pub fn cursor(&self, device_id: &str) -> Result<u64, DbError> {
        self.conn
            .query_row("SELECT last_seq FROM sync_cursor WHERE device_id = ?1", [device_id], |r| r.get::<_, i64>(0))
            .optional()
            .map(|v| v.unwrap_or(0) as u64)
            .map_err(|e| self.err(e))
    }

    /// Stores a batch and advances the cursor in one transaction; returns how many records
    /// were new.
    pub fn store(&mut self, device_id: &str, records: &[ResultRecord]) -> Result<usize, DbError> {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
        let path = self.path.clone();
        let sql = |source| DbError::Sql { path: path.clone(), source };
        let tx = self.conn.transaction().map_err(sql)?;
        let mut inserted = 0;
        {
            let mut stmt = tx
                .prepare_cached(
                    "INSERT OR IGNORE INTO results VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)",
                )
                .map_err(sql)?;
            for r in records {
                inserted += stmt
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
                    ])
                    .map_err(sql)?;
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
        Ok(inserted)
    }

    /// Stored results, oldest first; all devices when `device_id` is `None`.
    pub fn results(&self, device_id: Option<&str>) -> Result<Vec<StoredResult>, DbError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT device_id, seq, session, label, started_ms, finished_ms, compute_ms, p_depressed, phq8,
                        gate_audio, gate_video, gate_text, modalities, model_version, feature_schema, flags, synced_at_ms
                 FROM results WHERE ?1 IS NULL OR device_id = ?1 ORDER BY device_id, seq",
            )
            .map_err(|e| self.err(e))?;
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
                    },
                    synced_at_ms: r.get::<_, i64>(16)? as u64,
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
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
        }
    }

    #[test]
    fn a_batch_stored_twice_is_stored_once_and_round_trips() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut db = ResultsDb::open(&dir.path().join("r.db")).expect("open");
        assert_eq!(db.cursor("d1").expect("cursor"), 0);
        assert_eq!(db.store("d1", &[rec(1), rec(2)]).expect("store"), 2);
        assert_eq!(db.store("d1", &[rec(2), rec(3)]).expect("store"), 1);
        assert_eq!(db.store("d2", &[rec(1)]).expect("store"), 1);
        assert_eq!(db.cursor("d1").expect("cursor"), 3);
        let all = db.results(Some("d1")).expect("results");
        assert_eq!(all.iter().map(|r| r.record.clone()).collect::<Vec<_>>(), vec![rec(1), rec(2), rec(3)]);
        assert_eq!(db.results(None).expect("results").len(), 4);
        // The cursor never moves backwards.
        db.store("d1", &[rec(1)]).expect("store");
        assert_eq!(db.cursor("d1").expect("cursor"), 3);
    }
}
