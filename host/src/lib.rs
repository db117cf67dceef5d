//! # host — the `mimml` command-line tool's library
//!
//! * [`client::DeviceClient`]: typed calls to a device over any byte stream (retries, reply
//!   matching by request id).
//! * [`session::run_session`]: start → transcript push → stop → result.
//! * [`db::ResultsDb`] + [`sync::sync`]: exactly-once result sync into SQLite or PostgreSQL;
//!   [`forward::forward`]: from one database into another (a field laptop into the fleet's).
//! * [`flash::flash`]: resumable upload of a signed model bundle.
//! * [`report`]: summaries and the report formats (table, CSV, JSON, FHIR R4, printable HTML);
//!   [`models::Catalogue`]: what each model was trained on.
//! * [`terminal`]: stdout lines that end quietly on a closed pipe ([`out!`]), progress bars.
//!
//! Invariant: the host never receives raw audio or video — the protocol has no message for it.

pub mod client;
pub mod db;
pub mod flash;
pub mod forward;
pub mod models;
pub mod report;
pub mod session;
pub mod sync;
pub mod terminal;
