//! The PostgreSQL backend: one central database that the hosts of many sites sync into at the
//! same time, and that field laptops forward into later (`mimml forward`).
//!
//! The tables live in their own schema, `mimml`, beside whatever else the database holds. They
//! are the SQLite backend's tables with PostgreSQL's types (INTEGER → BIGINT, REAL → DOUBLE
//! PRECISION, BLOB → BYTEA). The schema's steps are [`super::migrations`]'s, in this dialect,
//! recorded in `mimml.schema_migrations`; hosts that start at once take turns through a
//! transaction-scoped advisory lock, and a host whose database is current runs no DDL at all (a
//! site's role needs no CREATE privilege).
//!
//! Concurrency: every write is `INSERT … ON CONFLICT DO NOTHING` on `(device_id, seq)` in READ
//! COMMITTED. A second host inserting a key that a first host's open transaction holds waits
//! for it; if that commits, the second finds the row and compares content hashes, if it rolls
//! back, the second inserts. Batches insert in sequence order, so two hosts never wait on each
//! other in a cycle.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use postgres::error::SqlState;
use postgres::{Client, Config, Statement, Transaction};
use protocol::ResultRecord;

use super::migrations;
use super::{Conflict, DbError, Filter, Row, SCHEMA_VERSION, StoreTx, Stored, StoredResult};

/// Key of the advisory lock that serialises migrations ("MIML").
const MIGRATION_LOCK: i64 = 0x4D49_4D4C;

/// A connection to the central database, with the statements a sync repeats.
pub struct PgDb {
    client: Client,
    target: String,
    statements: Statements,
}

impl fmt::Debug for PgDb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgDb").field("target", &self.target).finish_non_exhaustive()
    }
}

struct Statements {
    insert: Statement,
    stored_hash: Statement,
    keep_conflict: Statement,
    advance: Statement,
}

impl Statements {
    fn prepare(client: &mut Client, target: &str) -> Result<Statements, DbError> {
        let mut prepare = |sql: &str| client.prepare(sql).map_err(|e| pg_error(target, e));
        Ok(Statements {
            insert: prepare(
                "INSERT INTO mimml.results VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, \
                 $15, $16, $17, $18, $19, $20, $21) ON CONFLICT (device_id, seq) DO NOTHING",
            )?,
            stored_hash: prepare("SELECT content_hash FROM mimml.results WHERE device_id = $1 AND seq = $2")?,
            keep_conflict: prepare(
                "INSERT INTO mimml.conflicts VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
            )?,
            advance: prepare(
                "INSERT INTO mimml.sync_cursor VALUES ($1, $2) ON CONFLICT (device_id) \
                 DO UPDATE SET last_seq = greatest(mimml.sync_cursor.last_seq, excluded.last_seq)",
            )?,
        })
    }
}

/// A PostgreSQL error, named for what it means to whoever syncs.
fn pg_error(target: &str, source: postgres::Error) -> DbError {
    let target = target.to_owned();
    match source.code() {
        Some(c) if *c == SqlState::READ_ONLY_SQL_TRANSACTION => {
            DbError::ReadOnly { path: target, source: Box::new(source) }
        }
        Some(c) if *c == SqlState::DISK_FULL || *c == SqlState::OUT_OF_MEMORY => {
            DbError::Full { path: target, source: Box::new(source) }
        }
        _ => DbError::Postgres { target, source },
    }
}

/// TLS through rustls with the system's roots; used when the URL asks for it (`sslmode=require`)
/// or the server offers it (`prefer`, libpq's default).
fn tls(target: &str) -> Result<tokio_postgres_rustls::MakeRustlsConnect, DbError> {
    let mut roots = rustls::RootCertStore::empty();
    // Unreadable system certificates leave fewer roots; a server they sign then fails to verify
    // with a clear TLS error at connect.
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|source| DbError::Tls { target: target.to_owned(), source })?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

impl PgDb {
    /// Connects. For storing (`read_only` false) the schema is created or migrated; for
    /// reading, a database without MIMML's schema is [`DbError::Missing`] and nothing is
    /// created.
    pub fn open(url: &str, read_only: bool) -> Result<PgDb, DbError> {
        let (mut client, target) = connect(url)?;
        let version = version(&mut client, &target)?;
        if version > SCHEMA_VERSION {
            return Err(DbError::Newer { path: target, found: version, known: SCHEMA_VERSION });
        }
        if read_only {
            if version == 0 {
                return Err(DbError::Missing { path: target });
            }
        } else if version < SCHEMA_VERSION {
            migrate(&mut client, &target)?;
        }
        let statements = Statements::prepare(&mut client, &target)?;
        Ok(PgDb { client, target, statements })
    }

    fn err(&self, source: postgres::Error) -> DbError {
        pg_error(&self.target, source)
    }

    /// See [`super::ResultsDb::cursor`].
    pub fn cursor(&mut self, device_id: &str) -> Result<u64, DbError> {
        let row = self
            .client
            .query_opt("SELECT last_seq FROM mimml.sync_cursor WHERE device_id = $1", &[&device_id])
            .map_err(|e| self.err(e))?;
        Ok(row.map_or(0, |r| r.get::<_, i64>(0) as u64))
    }

    /// See [`super::ResultsDb::cursors`].
    pub fn cursors(&mut self) -> Result<Vec<(String, u64)>, DbError> {
        let rows = self
            .client
            .query("SELECT device_id, last_seq FROM mimml.sync_cursor ORDER BY device_id", &[])
            .map_err(|e| self.err(e))?;
        Ok(rows.iter().map(|r| (r.get(0), r.get::<_, i64>(1) as u64)).collect())
    }

    /// See [`super::ResultsDb::store`].
    pub fn store(&mut self, device_id: &str, records: &[ResultRecord]) -> Result<Stored, DbError> {
        let target = self.target.clone();
        let statements = &self.statements;
        let tx = self.client.transaction().map_err(|e| pg_error(&target, e))?;
        let mut batch = Batch { tx, statements, target };
        let stored = super::store_batch(&mut batch, device_id, records)?;
        let Batch { tx, target, .. } = batch;
        tx.commit().map_err(|e| pg_error(&target, e))?;
        Ok(stored)
    }

    /// See [`super::ResultsDb::conflicts`].
    pub fn conflicts(&mut self) -> Result<Vec<Conflict>, DbError> {
        let rows = self
            .client
            .query(
                "SELECT device_id, seq, content_hash, stored_hash, record, detected_at_ms FROM mimml.conflicts
                 ORDER BY detected_at_ms, device_id, seq",
                &[],
            )
            .map_err(|e| self.err(e))?;
        Ok(rows
            .iter()
            .filter_map(|r| {
                // Written by `store` from a record: always decodes.
                let record = super::decode_stored(r.get::<_, &[u8]>(4))?;
                Some(Conflict {
                    device_id: r.get(0),
                    seq: r.get::<_, i64>(1) as u64,
                    record,
                    content_hash: r.get(2),
                    stored_hash: r.get(3),
                    detected_at_ms: r.get::<_, i64>(5) as u64,
                })
            })
            .collect())
    }

    /// See [`super::ResultsDb::results`].
    pub fn results(&mut self, filter: &Filter) -> Result<Vec<StoredResult>, DbError> {
        let since = filter.since_ms.map(|t| t as i64);
        self.read_rows(
            &format!(
                "WHERE ($1::TEXT IS NULL OR device_id = $1) AND ($2::BIGINT IS NULL OR started_ms >= $2) {}",
                super::listing_order()
            ),
            &[&filter.device, &since],
        )
    }

    /// See [`super::ResultsDb::range`].
    pub fn range(&mut self, device_id: &str, from: u64, to: u64) -> Result<Vec<StoredResult>, DbError> {
        let (from, to) = (from.min(i64::MAX as u64) as i64, to.min(i64::MAX as u64) as i64);
        self.read_rows("WHERE device_id = $1 AND seq BETWEEN $2 AND $3 ORDER BY seq", &[&device_id, &from, &to])
    }

    /// See [`super::ResultsDb::stored_seqs`].
    pub fn stored_seqs(&mut self, device_id: &str, from: u64, to: u64) -> Result<Vec<u64>, DbError> {
        let (from, to) = (from.min(i64::MAX as u64) as i64, to.min(i64::MAX as u64) as i64);
        let rows = self
            .client
            .query(
                "SELECT seq FROM mimml.results WHERE device_id = $1 AND seq BETWEEN $2 AND $3 ORDER BY seq",
                &[&device_id, &from, &to],
            )
            .map_err(|e| self.err(e))?;
        Ok(rows.iter().map(|r| r.get::<_, i64>(0) as u64).collect())
    }

    fn read_rows(
        &mut self,
        tail: &str,
        args: &[&(dyn postgres::types::ToSql + Sync)],
    ) -> Result<Vec<StoredResult>, DbError> {
        let rows = self
            .client
            .query(&format!("SELECT {} FROM mimml.results {tail}", super::ROW_COLUMNS), args)
            .map_err(|e| self.err(e))?;
        Ok(rows.iter().map(stored_result).collect())
    }
}

/// A row of `SELECT ROW_COLUMNS FROM mimml.results`.
fn stored_result(r: &postgres::Row) -> StoredResult {
    Row {
        device_id: r.get(0),
        seq: r.get(1),
        session: r.get(2),
        label: r.get(3),
        started_ms: r.get(4),
        finished_ms: r.get(5),
        compute_ms: r.get(6),
        p_depressed: r.get(7),
        phq8: r.get(8),
        gates: [r.get(9), r.get(10), r.get(11)],
        modalities: r.get(12),
        model_version: r.get(13),
        feature_schema: r.get(14),
        flags: r.get(15),
        synced_at_ms: r.get(16),
        phq_instrument: r.get(17),
        phq_answers: r.get(18),
    }
    .into_stored()
}

/// The schema version (0: no MIMML schema yet).
fn version(client: &mut Client, target: &str) -> Result<i64, DbError> {
    let row = client
        .query_one("SELECT to_regclass('mimml.schema_migrations') IS NOT NULL", &[])
        .map_err(|e| pg_error(target, e))?;
    if !row.get::<_, bool>(0) {
        return Ok(0);
    }
    let row = client
        .query_one("SELECT coalesce(max(version), 0) FROM mimml.schema_migrations", &[])
        .map_err(|e| pg_error(target, e))?;
    Ok(row.get(0))
}

/// Applies the missing migrations in one transaction, one host at a time.
fn migrate(client: &mut Client, target: &str) -> Result<(), DbError> {
    migrate_to(client, target, SCHEMA_VERSION)
}

/// Brings the database to schema `to` (and no further), one host at a time.
fn migrate_to(client: &mut Client, target: &str, to: i64) -> Result<(), DbError> {
    let err = |e| pg_error(target, e);
    let mut tx = client.transaction().map_err(err)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK]).map_err(err)?;
    tx.batch_execute(
        "CREATE SCHEMA IF NOT EXISTS mimml;
             CREATE TABLE IF NOT EXISTS mimml.schema_migrations (
                 version     BIGINT      PRIMARY KEY,
                 description TEXT        NOT NULL,
                 applied_at  TIMESTAMPTZ NOT NULL DEFAULT now()
             );",
    )
    .map_err(err)?;
    // Another host may have migrated while this one waited for the lock.
    let current: i64 =
        tx.query_one("SELECT coalesce(max(version), 0) FROM mimml.schema_migrations", &[]).map_err(err)?.get(0);
    for m in migrations::steps(current, to) {
        tx.batch_execute(m.postgres).map_err(err)?;
        tx.execute(
            "INSERT INTO mimml.schema_migrations (version, description) VALUES ($1, $2)",
            &[&m.version, &m.what],
        )
        .map_err(err)?;
    }
    if migrations::rehashes(current, to) {
        let rows = tx.query(&format!("SELECT {} FROM mimml.results", super::ROW_COLUMNS), &[]).map_err(err)?;
        for row in rows {
            let r = stored_result(&row);
            tx.execute(
                "UPDATE mimml.results SET content_hash = $1 WHERE device_id = $2 AND seq = $3",
                &[&super::content_hash(&r.record), &r.device_id, &(r.record.seq as i64)],
            )
            .map_err(err)?;
        }
    }
    tx.commit().map_err(err)
}

/// See [`super::ResultsDb::create_at`].
pub fn create_at(url: &str, version: i64) -> Result<(), DbError> {
    let (mut client, target) = connect(url)?;
    migrate_to(&mut client, &target, version.clamp(0, SCHEMA_VERSION))
}

/// A connection to `url` (bounded connect time, named `mimml`, kept alive) and the database's
/// name for errors, its password redacted.
fn connect(url: &str) -> Result<(Client, String), DbError> {
    let target = super::Target::Postgres(url.to_owned()).to_string();
    let mut config: Config = url.parse().map_err(|e| pg_error(&target, e))?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(Duration::from_secs(10));
    }
    if config.get_application_name().is_none() {
        config.application_name("mimml");
    }
    // A cut connection is noticed by the next statement, not after hours.
    config.keepalives_idle(Duration::from_secs(30));
    let client = config.connect(tls(&target)?).map_err(|e| pg_error(&target, e))?;
    Ok((client, target))
}

/// One storing transaction.
struct Batch<'c> {
    tx: Transaction<'c>,
    statements: &'c Statements,
    target: String,
}

impl StoreTx for Batch<'_> {
    fn insert(&mut self, device_id: &str, r: &ResultRecord, hash: &str, now: i64) -> Result<bool, DbError> {
        let (instrument, answers, score) = super::questionnaire_columns(r);
        let n = self
            .tx
            .execute(
                &self.statements.insert,
                &[
                    &device_id,
                    &(r.seq as i64),
                    &i64::from(r.session),
                    &r.label.as_str(),
                    &(r.started_ms as i64),
                    &(r.finished_ms as i64),
                    &i64::from(r.compute_ms),
                    &f64::from(r.p_depressed),
                    &f64::from(r.phq8),
                    &f64::from(r.gates[0]),
                    &f64::from(r.gates[1]),
                    &f64::from(r.gates[2]),
                    &i64::from(r.modalities.bits()),
                    &r.model_version.as_str(),
                    &r.feature_schema.to_string(),
                    &i64::from(r.flags.bits()),
                    &now,
                    &hash,
                    &instrument,
                    &answers,
                    &score,
                ],
            )
            .map_err(|e| pg_error(&self.target, e))?;
        Ok(n == 1)
    }

    fn stored_hash(&mut self, device_id: &str, seq: u64) -> Result<String, DbError> {
        let row = self
            .tx
            .query_one(&self.statements.stored_hash, &[&device_id, &(seq as i64)])
            .map_err(|e| pg_error(&self.target, e))?;
        Ok(row.get(0))
    }

    fn keep_conflict(&mut self, c: &Conflict, frame: &[u8], summary: &str) -> Result<(), DbError> {
        self.tx
            .execute(
                &self.statements.keep_conflict,
                &[
                    &c.device_id,
                    &(c.seq as i64),
                    &c.content_hash,
                    &c.stored_hash,
                    &frame,
                    &summary,
                    &(c.detected_at_ms as i64),
                ],
            )
            .map_err(|e| pg_error(&self.target, e))?;
        Ok(())
    }

    fn advance(&mut self, device_id: &str, seq: u64) -> Result<(), DbError> {
        self.tx
            .execute(&self.statements.advance, &[&device_id, &(seq as i64)])
            .map_err(|e| pg_error(&self.target, e))?;
        Ok(())
    }
}
