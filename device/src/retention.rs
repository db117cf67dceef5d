//! How long the device keeps results, and what it does when storage runs low.
//!
//! A result the host has acknowledged (stored in its database, see `mimml sync`) is deleted
//! from the log once it is older than [`Retention::acked_max_age`]. When the data folder's file
//! system has less than [`Retention::min_free_bytes`] free, the device deletes acknowledged
//! results first (all of them, oldest first), never an unacknowledged one, and if that does not
//! free enough it refuses to start a session it could not store (`ErrorCode::Storage` over the
//! protocol, the kiosk's failure screen and error LED), instead of losing a result later.
//!
//! Free space is read through [`FreeSpace`]: `statvfs` on the device, a settable value in tests.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The retention rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Acknowledged results older than this are deleted; `None` keeps them.
    pub acked_max_age: Option<Duration>,
    /// Below this many free bytes the device frees what it may, then refuses new sessions.
    pub min_free_bytes: u64,
}

impl Retention {
    /// Keep every result, never refuse a session: what a device has until it is told otherwise
    /// (the demo, tests).
    pub const KEEP: Retention = Retention { acked_max_age: None, min_free_bytes: 0 };
}

impl Default for Retention {
    /// 30 days; 64 MiB free (a session's result is a few hundred bytes, but state and log
    /// rewrites, research media and the system's own logs need room too).
    fn default() -> Self {
        Retention { acked_max_age: Some(Duration::from_secs(30 * 24 * 3600)), min_free_bytes: 64 << 20 }
    }
}

/// Free bytes of the file system holding a path.
pub trait FreeSpace: Send + std::fmt::Debug {
    fn free_bytes(&self, path: &Path) -> std::io::Result<u64>;
}

/// The real file system: `statvfs`, blocks available to unprivileged users (what the
/// service's user can write).
#[derive(Debug, Default, Clone, Copy)]
pub struct Statvfs;

impl FreeSpace for Statvfs {
    fn free_bytes(&self, path: &Path) -> std::io::Result<u64> {
        let s = nix::sys::statvfs::statvfs(path).map_err(std::io::Error::from)?;
        #[allow(clippy::useless_conversion, reason = "the field types differ between targets")]
        Ok(u64::from(s.blocks_available()).saturating_mul(u64::from(s.fragment_size())))
    }
}

/// A file system whose free space a test sets; shared, so the test changes it while the device
/// runs.
#[derive(Debug, Clone, Default)]
pub struct FakeSpace(pub Arc<AtomicU64>);

impl FakeSpace {
    pub fn new(free: u64) -> FakeSpace {
        FakeSpace(Arc::new(AtomicU64::new(free)))
    }

    pub fn set(&self, free: u64) {
        self.0.store(free, Ordering::SeqCst);
    }
}

impl FreeSpace for FakeSpace {
    fn free_bytes(&self, _: &Path) -> std::io::Result<u64> {
        Ok(self.0.load(Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statvfs_reads_the_file_system_of_a_folder() {
        let dir = tempfile::tempdir().expect("tempdir");
        let free = Statvfs.free_bytes(dir.path()).expect("statvfs");
        assert!(free > 0);
        assert!(Statvfs.free_bytes(&dir.path().join("missing")).is_err());
    }
}
