//! The schema's history: one ordered list, a step per schema version, each step in both
//! dialects. A released step is never edited (a database out there is at its version); a change
//! to the schema is a new step at the end.
//!
//! SQLite records the version in `PRAGMA user_version` and runs the steps through
//! `rusqlite_migration`; PostgreSQL records it in `mimml.schema_migrations` and runs them in
//! [`super::pg`] under an advisory lock, so hosts that start at once migrate one at a time
//! (`refinery`, the crate that serves PostgreSQL, keeps its own history table and has no such
//! lock). Both apply every missing step in one transaction. PostgreSQL support began at version
//! 3, whose databases were created whole; the earlier steps exist in its dialect so that the
//! list is one and every version of either backend upgrades the same way (tested).

/// One schema version.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    /// The version this step brings a database to.
    pub version: i64,
    /// What it adds, as `mimml.schema_migrations` records it.
    pub what: &'static str,
    /// SQLite's statements.
    pub sqlite: &'static str,
    /// PostgreSQL's statements (the tables in schema `mimml`).
    pub postgres: &'static str,
    /// The record's encoding changed with this version: stored content hashes are recomputed
    /// in the same transaction.
    pub rehash: bool,
}

/// Every step, in order; a database at version N has had the first N.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        what: "results and sync cursors",
        // IF NOT EXISTS: a version-1 SQLite database set no user_version, so it reads as 0.
        sqlite: "
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
",
        postgres: "
CREATE TABLE mimml.results (
    device_id      TEXT             NOT NULL,
    seq            BIGINT           NOT NULL,
    session        BIGINT           NOT NULL,
    label          TEXT             NOT NULL,
    started_ms     BIGINT           NOT NULL,
    finished_ms    BIGINT           NOT NULL,
    compute_ms     BIGINT           NOT NULL,
    p_depressed    DOUBLE PRECISION NOT NULL,
    phq8           DOUBLE PRECISION NOT NULL,
    gate_audio     DOUBLE PRECISION NOT NULL,
    gate_video     DOUBLE PRECISION NOT NULL,
    gate_text      DOUBLE PRECISION NOT NULL,
    modalities     BIGINT           NOT NULL,
    model_version  TEXT             NOT NULL,
    feature_schema TEXT             NOT NULL,
    flags          BIGINT           NOT NULL,
    synced_at_ms   BIGINT           NOT NULL,
    PRIMARY KEY (device_id, seq)
);
CREATE TABLE mimml.sync_cursor (
    device_id TEXT   PRIMARY KEY,
    last_seq  BIGINT NOT NULL
);
",
        rehash: false,
    },
    Migration {
        version: 2,
        what: "content hashes, and records that conflict with stored ones kept aside",
        sqlite: "
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
",
        postgres: "
ALTER TABLE mimml.results ADD COLUMN content_hash TEXT NOT NULL DEFAULT '';
CREATE TABLE mimml.conflicts (
    device_id      TEXT   NOT NULL,
    seq            BIGINT NOT NULL,
    content_hash   TEXT   NOT NULL,
    stored_hash    TEXT   NOT NULL,
    record         BYTEA  NOT NULL,
    summary        TEXT   NOT NULL,
    detected_at_ms BIGINT NOT NULL,
    PRIMARY KEY (device_id, seq, content_hash)
);
",
        rehash: false,
    },
    Migration {
        version: 3,
        what: "the kiosk's questionnaire (instrument, answers as \"0,1,…\", total; NULL for none)",
        sqlite: "
ALTER TABLE results ADD COLUMN phq_instrument TEXT;
ALTER TABLE results ADD COLUMN phq_answers TEXT;
ALTER TABLE results ADD COLUMN phq_score INTEGER;
",
        postgres: "
ALTER TABLE mimml.results ADD COLUMN phq_instrument TEXT;
ALTER TABLE mimml.results ADD COLUMN phq_answers TEXT;
ALTER TABLE mimml.results ADD COLUMN phq_score BIGINT;
",
        // The record's encoding gained the questionnaire.
        rehash: true,
    },
];

/// The schema version of a database that has had every step.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Whether going from `from` to `to` recomputes the stored content hashes.
pub(crate) fn rehashes(from: i64, to: i64) -> bool {
    steps(from, to).any(|m| m.rehash)
}

/// The steps from version `from` (exclusive) to `to` (inclusive).
pub(crate) fn steps(from: i64, to: i64) -> impl Iterator<Item = &'static Migration> {
    MIGRATIONS.iter().filter(move |m| m.version > from && m.version <= to)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_steps_are_numbered_one_after_another() {
        for (i, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(m.version, i as i64 + 1, "{}", m.what);
            assert!(!m.sqlite.trim().is_empty() && !m.postgres.trim().is_empty(), "{}", m.what);
        }
        assert_eq!(steps(1, 3).map(|m| m.version).collect::<Vec<_>>(), vec![2, 3]);
        assert!(rehashes(0, 3) && rehashes(2, 3) && !rehashes(0, 2) && !rehashes(3, 3));
    }
}
