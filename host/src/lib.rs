//! # host — the `mimml` command-line tool's library
//!
//! * [`client::DeviceClient`]: typed calls to a device over any byte stream (retries, reply
//!   matching by request id).
//! * [`session::run_session`]: start → transcript push → stop → result.
//! * [`db::ResultsDb`] + [`sync::sync`]: exactly-once result sync into SQLite.
//! * [`flash::flash`]: resumable upload of a signed model bundle.
//! * [`report`]: readable summaries.
//!
//! Invariant: the host never receives raw audio or video — the protocol has no message for it.

pub mod client;
pub mod db;
pub mod flash;
pub mod report;
pub mod session;
pub mod sync;
