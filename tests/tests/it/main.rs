//! The tests crate's integration tests, one module per subject, linked into one test executable
//! (a binary per file would link the same dependencies once per file). `sync_faults` is the one
//! binary apart: it restarts the PostgreSQL server the fleet tests here share.

mod daic_corpus;
mod end_to_end;
mod export;
mod fleet;
mod integrity;
mod kiosk_screen;
mod machine_transcripts;
mod real_speech;
mod reports;
mod retention;
mod text_encoder;
mod training;
mod transcripts;
