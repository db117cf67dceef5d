//! The host crate's integration tests, one module per subject, linked into one test executable
//! (a binary per file would link the same dependencies once per file).

mod cli;
mod flash;
mod session;
