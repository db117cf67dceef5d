//! The host's results database: a local SQLite file (a clinic PC, a field laptop) or a fleet's
//! central PostgreSQL (many sites), with the same tables and the same rules.
//!
//! Exactly-once: a record is identified by `(device_id, seq)` (the primary key; an insert of a
//! stored key does nothing), and the per-device sync cursor moves in the same transaction as the
//! records it covers, never backwards. A batch re-fetched after a lost acknowledgement or a
//! crash inserts nothing new; a batch whose transaction did not commit (a killed host, a cut
//! database connection) is fetched again next time. Two hosts storing the same record at once
//! store it once: the second insert waits for the first's transaction and then finds the key.
//!
//! A record that arrives under a stored key with *other* content (two devices sharing an id) is
//! a [`Conflict`]: kept aside in its own table, never mixed into the results, never dropped.

pub mod migrations;
pub mod pg;
pub mod sqlite;

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

use protocol::{Instrument, Modalities, Questionnaire, ResultFlags, ResultRecord, SchemaHash};
use sha2::{Digest, Sha256};

/// The schema version both backends are at (SQLite: `PRAGMA user_version`; PostgreSQL: the
/// highest row of `mimml.schema_migrations`), the last step of [`migrations::MIGRATIONS`]. A
/// database of a later version is refused.
pub use migrations::SCHEMA_VERSION;

/// Where results are stored: `postgres://…` / `postgresql://…` (a libpq-style URL; TLS with
/// `sslmode=require`), anything else is an SQLite file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Sqlite(PathBuf),
    Postgres(String),
}

impl FromStr for Target {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Target, Self::Err> {
        Ok(if s.starts_with("postgres://") || s.starts_with("postgresql://") {
            Target::Postgres(s.to_owned())
        } else {
            Target::Sqlite(PathBuf::from(s))
        })
    }
}

impl From<&Path> for Target {
    fn from(p: &Path) -> Target {
        Target::Sqlite(p.to_owned())
    }
}

impl From<PathBuf> for Target {
    fn from(p: PathBuf) -> Target {
        Target::Sqlite(p)
    }
}

/// Shown with any password replaced by `***`: targets end up in logs and error messages.
impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Sqlite(p) => write!(f, "{}", p.display()),
            Target::Postgres(url) => f.write_str(&redact(url)),
        }
    }
}

/// `postgres://user:secret@host/db` → `postgres://user:***@host/db`; a `password=` parameter too.
fn redact(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let (authority, tail) = match rest.find(['/', '?']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let authority = match authority.rsplit_once('@') {
        Some((user, host)) => match user.split_once(':') {
            Some((name, _)) => format!("{name}:***@{host}"),
            None => authority.to_owned(),
        },
        None => authority.to_owned(),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let params: Vec<String> = query
                .split('&')
                .map(|p| if p.starts_with("password=") { "password=***".to_owned() } else { p.to_owned() })
                .collect();
            format!("{path}?{}", params.join("&"))
        }
        None => tail.to_owned(),
    };
    format!("{scheme}://{authority}{tail}")
}

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("results database {path}")]
    Sql {
        path: String,
        #[source]
        source: rusqlite::Error,
    },
    #[error("results database {target}")]
    Postgres {
        target: String,
        #[source]
        source: postgres::Error,
    },
    #[error("results database {target}: TLS setup")]
    Tls {
        target: String,
        #[source]
        source: rustls::Error,
    },
    /// Opening for reading never creates a database.
    #[error("no results database at {path} (`mimml sync --db {path}` creates one)")]
    Missing { path: String },
    /// The file is an SQLite database of another program: it is left untouched.
    #[error("{path} is not a MIMML results database (it holds other tables); refusing to change it")]
    Foreign { path: String },
    /// A migration step failed; the transaction rolled back and the database is as it was.
    #[error("results database {path}: migrating its schema")]
    Migration {
        path: String,
        #[source]
        source: rusqlite_migration::Error,
    },
    /// A later version of this tool wrote the database.
    #[error("results database {path} has schema version {found}; this mimml knows up to {known}")]
    Newer { path: String, found: i64, known: i64 },
    /// Nothing was stored; the device keeps its records (they are not acknowledged).
    #[error("results database {path} is read-only: nothing was stored, the device keeps its results")]
    ReadOnly {
        path: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Nothing was stored; the device keeps its records (they are not acknowledged).
    #[error("results database {path} is full (no space left): nothing was stored, the device keeps its results")]
    Full {
        path: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// Which stored results to read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filter {
    /// Only this device.
    pub device: Option<String>,
    /// Only sessions started at or after this time (Unix ms).
    pub since_ms: Option<u64>,
}

impl Filter {
    pub fn device(id: &str) -> Filter {
        Filter { device: Some(id.to_owned()), ..Filter::default() }
    }
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

impl Conflict {
    /// One line naming the arriving record, as the conflicts table keeps it and `mimml`
    /// prints it; the device's strings escaped (they may hold control characters).
    pub fn summary(&self) -> String {
        let r = &self.record;
        format!(
            "device {} #{} session {} \"{}\" P={:.3} model {}",
            protocol::Escaped(&self.device_id),
            r.seq,
            r.session,
            protocol::Escaped(&r.label),
            r.p_depressed,
            protocol::Escaped(&r.model_version)
        )
    }
}

/// What storing a batch did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stored {
    /// New records.
    pub inserted: usize,
    /// Records that conflicted with stored ones (kept aside).
    pub conflicts: Vec<Conflict>,
}

/// A results database of either backend.
#[derive(Debug)]
pub enum ResultsDb {
    Sqlite(sqlite::SqliteDb),
    Postgres(Box<pg::PgDb>),
}

impl ResultsDb {
    /// Opens the database for storing, creating its tables if missing and migrating an older
    /// schema. A database of another program, or of a later version, is refused untouched.
    pub fn open(target: &Target) -> Result<ResultsDb, DbError> {
        Ok(match target {
            Target::Sqlite(path) => ResultsDb::Sqlite(sqlite::SqliteDb::open(path)?),
            Target::Postgres(url) => ResultsDb::Postgres(Box::new(pg::PgDb::open(url, false)?)),
        })
    }

    /// Creates a database at schema `version` and no further, as an older `mimml` left it: for
    /// upgrade tests and for reproducing a site's database. [`open`](Self::open) upgrades it.
    pub fn create_at(target: &Target, version: i64) -> Result<(), DbError> {
        match target {
            Target::Sqlite(path) => sqlite::create_at(path, version),
            Target::Postgres(url) => pg::create_at(url, version),
        }
    }

    /// Opens an existing database for reading: never creates or changes one.
    pub fn open_read_only(target: &Target) -> Result<ResultsDb, DbError> {
        Ok(match target {
            Target::Sqlite(path) => ResultsDb::Sqlite(sqlite::SqliteDb::open_read_only(path)?),
            Target::Postgres(url) => ResultsDb::Postgres(Box::new(pg::PgDb::open(url, true)?)),
        })
    }

    /// Highest sequence number stored for `device_id` (0 = none).
    pub fn cursor(&mut self, device_id: &str) -> Result<u64, DbError> {
        match self {
            ResultsDb::Sqlite(db) => db.cursor(device_id),
            ResultsDb::Postgres(db) => db.cursor(device_id),
        }
    }

    /// Every device the database has results of, with its cursor.
    pub fn cursors(&mut self) -> Result<Vec<(String, u64)>, DbError> {
        match self {
            ResultsDb::Sqlite(db) => db.cursors(),
            ResultsDb::Postgres(db) => db.cursors(),
        }
    }

    /// Stores a batch and advances the cursor in one transaction. A record whose key is stored
    /// with the same content is a repeat (nothing happens); with other content it is a
    /// [`Conflict`], kept aside and returned.
    pub fn store(&mut self, device_id: &str, records: &[ResultRecord]) -> Result<Stored, DbError> {
        match self {
            ResultsDb::Sqlite(db) => db.store(device_id, records),
            ResultsDb::Postgres(db) => db.store(device_id, records),
        }
    }

    /// Stored results: urgent ones (PHQ-9 item 9 answered above 0) first, then by device and
    /// sequence.
    pub fn results(&mut self, filter: &Filter) -> Result<Vec<StoredResult>, DbError> {
        match self {
            ResultsDb::Sqlite(db) => db.results(filter),
            ResultsDb::Postgres(db) => db.results(filter),
        }
    }

    /// One device's results with `seq` in `from..=to`, in sequence order.
    pub fn range(&mut self, device_id: &str, from: u64, to: u64) -> Result<Vec<StoredResult>, DbError> {
        match self {
            ResultsDb::Sqlite(db) => db.range(device_id, from, to),
            ResultsDb::Postgres(db) => db.range(device_id, from, to),
        }
    }

    /// The sequence numbers stored for `device_id` in `from..=to`, ascending.
    pub fn stored_seqs(&mut self, device_id: &str, from: u64, to: u64) -> Result<Vec<u64>, DbError> {
        match self {
            ResultsDb::Sqlite(db) => db.stored_seqs(device_id, from, to),
            ResultsDb::Postgres(db) => db.stored_seqs(device_id, from, to),
        }
    }

    /// Records kept aside as conflicts, oldest first.
    pub fn conflicts(&mut self) -> Result<Vec<Conflict>, DbError> {
        match self {
            ResultsDb::Sqlite(db) => db.conflicts(),
            ResultsDb::Postgres(db) => db.conflicts(),
        }
    }
}

/// One transaction of a backend, as [`store_batch`] needs it.
pub(crate) trait StoreTx {
    /// Inserts the record unless its key is stored; true when inserted.
    fn insert(&mut self, device_id: &str, r: &ResultRecord, hash: &str, now: i64) -> Result<bool, DbError>;
    /// The content hash stored under the key.
    fn stored_hash(&mut self, device_id: &str, seq: u64) -> Result<String, DbError>;
    /// Keeps a conflicting record aside (a repeat of one already kept does nothing).
    fn keep_conflict(&mut self, c: &Conflict, frame: &[u8], summary: &str) -> Result<(), DbError>;
    /// Moves the cursor up to `seq` (never down).
    fn advance(&mut self, device_id: &str, seq: u64) -> Result<(), DbError>;
}

/// The exactly-once rule both backends follow, inside one transaction of theirs.
pub(crate) fn store_batch(tx: &mut impl StoreTx, device_id: &str, records: &[ResultRecord]) -> Result<Stored, DbError> {
    let now = now_ms();
    let mut stored = Stored::default();
    for r in records {
        let frame = encoded(r);
        let hash = sha256_hex(&frame);
        if tx.insert(device_id, r, &hash, now)? {
            stored.inserted += 1;
            continue;
        }
        let stored_hash = tx.stored_hash(device_id, r.seq)?;
        if stored_hash == hash {
            continue;
        }
        let conflict = Conflict {
            device_id: device_id.to_owned(),
            seq: r.seq,
            record: r.clone(),
            content_hash: hash,
            stored_hash,
            detected_at_ms: now as u64,
        };
        tx.keep_conflict(&conflict, &frame, &conflict.summary())?;
        stored.conflicts.push(conflict);
    }
    if let Some(max) = records.iter().map(|r| r.seq).max() {
        tx.advance(device_id, max)?;
    }
    Ok(stored)
}

/// The columns of a `results` row, as both backends store them.
pub(crate) struct Row {
    pub device_id: String,
    pub seq: i64,
    pub session: i64,
    pub label: String,
    pub started_ms: i64,
    pub finished_ms: i64,
    pub compute_ms: i64,
    pub p_depressed: f64,
    pub phq8: f64,
    pub gates: [f64; 3],
    pub modalities: i64,
    pub model_version: String,
    pub feature_schema: String,
    pub flags: i64,
    pub synced_at_ms: i64,
    pub phq_instrument: Option<String>,
    pub phq_answers: Option<String>,
}

impl Row {
    pub fn into_stored(self) -> StoredResult {
        StoredResult {
            device_id: self.device_id,
            record: ResultRecord {
                seq: self.seq as u64,
                session: self.session as u32,
                label: protocol::truncated(&self.label),
                started_ms: self.started_ms as u64,
                finished_ms: self.finished_ms as u64,
                compute_ms: self.compute_ms as u32,
                p_depressed: self.p_depressed as f32,
                phq8: self.phq8 as f32,
                gates: self.gates.map(|g| g as f32),
                modalities: Modalities::from_bits_retain(self.modalities as u8),
                model_version: protocol::truncated(&self.model_version),
                feature_schema: schema_hash(&self.feature_schema),
                flags: ResultFlags::from_bits_retain(self.flags as u32),
                questionnaire: parse_questionnaire(self.phq_instrument, self.phq_answers),
            },
            synced_at_ms: self.synced_at_ms as u64,
        }
    }
}

/// The `SELECT` list both backends read a [`Row`] from, in its field order.
pub(crate) const ROW_COLUMNS: &str = "device_id, seq, session, label, started_ms, finished_ms, compute_ms, p_depressed, \
     phq8, gate_audio, gate_video, gate_text, modalities, model_version, feature_schema, flags, synced_at_ms, \
     phq_instrument, phq_answers";

/// The order results are listed in: urgent first, then by device and sequence.
pub(crate) fn listing_order() -> String {
    format!("ORDER BY (flags & {}) = 0, device_id, seq", ResultFlags::URGENT.bits())
}

fn schema_hash(hex: &str) -> SchemaHash {
    let mut hash = [0u8; 8];
    for (i, b) in hash.iter_mut().enumerate() {
        *b = hex.get(2 * i..2 * i + 2).and_then(|h| u8::from_str_radix(h, 16).ok()).unwrap_or(0);
    }
    SchemaHash(hash)
}

/// The questionnaire columns: instrument name, answers as "0,1,…", score.
pub(crate) fn questionnaire_columns(r: &ResultRecord) -> (Option<&'static str>, Option<String>, Option<i64>) {
    match &r.questionnaire {
        Some(q) => (
            Some(q.instrument.name()),
            Some(q.answers.iter().map(u8::to_string).collect::<Vec<_>>().join(",")),
            Some(i64::from(q.score())),
        ),
        None => (None, None, None),
    }
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

/// A record kept as its frame (a conflict): today's layout, or protocol version 3's.
pub(crate) fn decode_stored(frame: &[u8]) -> Option<ResultRecord> {
    let now = protocol::FrameDecoder::new().feed::<ResultRecord>(frame).frame.and_then(Result::ok);
    now.or_else(|| {
        let v3 = protocol::FrameDecoder::new().feed::<protocol::ResultRecordV3>(frame).frame.and_then(Result::ok);
        v3.map(ResultRecord::from)
    })
}

/// A record's canonical encoding: its protocol frame.
pub(crate) fn encoded(r: &ResultRecord) -> Vec<u8> {
    let mut buf = vec![0u8; protocol::MAX_FRAME];
    // A record always fits in a frame (the protocol's tests check the largest one).
    let n = protocol::encode_frame(r, &mut buf).unwrap_or(0);
    buf.truncate(n);
    buf
}

pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// SHA-256 (hex) of a record's canonical encoding (its protocol frame).
pub fn content_hash(r: &ResultRecord) -> String {
    sha256_hex(&encoded(r))
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use protocol::truncated;

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
    fn a_target_is_postgres_by_its_scheme_and_never_shows_a_password() {
        assert_eq!("results.db".parse(), Ok(Target::Sqlite("results.db".into())));
        assert_eq!("./postgres://x".parse(), Ok(Target::Sqlite("./postgres://x".into())));
        let t: Target = "postgresql://clinic:s3cret@db.example:5432/mimml?sslmode=require&password=p2".parse().unwrap();
        assert!(matches!(t, Target::Postgres(_)));
        assert_eq!(t.to_string(), "postgresql://clinic:***@db.example:5432/mimml?sslmode=require&password=***");
        let t: Target = "postgres://h/db".parse().unwrap();
        assert_eq!(t.to_string(), "postgres://h/db");
    }
}
