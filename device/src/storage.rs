//! The file operations the model store changes disk with, behind a trait so that a test can cut
//! the device off at any one of them (the MCUboot simulator's idea) or make one fail with the
//! error a full or failing card gives.
//!
//! [`FsStorage`] is the real one. [`FaultyStorage`] counts operations and, at the chosen one,
//! either stops for good — the process was killed: that operation is half done (a write leaves a
//! prefix of its bytes) and every later one fails — or fails once with `ENOSPC` or `EIO`. Reads
//! go straight to the file system: a kill does not change what was already written.

use std::io::{Seek, SeekFrom, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};

/// Changes to files and folders.
pub trait Storage: Send + std::fmt::Debug {
    /// Creates or truncates `path` and writes `bytes` (no sync).
    fn write(&mut self, path: &Path, bytes: &[u8]) -> std::io::Result<()>;
    /// Writes `bytes` at `offset` of `path` (created if missing; no sync).
    fn write_at(&mut self, path: &Path, offset: u64, bytes: &[u8]) -> std::io::Result<()>;
    /// Flushes a file or a folder (its entries) to the disk.
    fn sync(&mut self, path: &Path) -> std::io::Result<()>;
    /// Renames `from` to `to`, replacing a file at `to`.
    fn rename(&mut self, from: &Path, to: &Path) -> std::io::Result<()>;
    /// Creates a folder and its parents (nothing if it exists).
    fn create_dir(&mut self, path: &Path) -> std::io::Result<()>;
    /// Removes a folder and what it holds (nothing if it does not exist).
    fn remove_dir_all(&mut self, path: &Path) -> std::io::Result<()>;
    /// Bytes free for this process on the file system of `path`.
    fn available(&self, path: &Path) -> std::io::Result<u64>;
}

/// The file system.
#[derive(Debug, Default, Clone, Copy)]
pub struct FsStorage;

impl Storage for FsStorage {
    fn write(&mut self, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
        std::fs::write(path, bytes)
    }

    fn write_at(&mut self, path: &Path, offset: u64, bytes: &[u8]) -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(false).open(path)?;
        f.seek(SeekFrom::Start(offset))?;
        f.write_all(bytes)
    }

    fn sync(&mut self, path: &Path) -> std::io::Result<()> {
        std::fs::File::open(path)?.sync_all()
    }

    fn rename(&mut self, from: &Path, to: &Path) -> std::io::Result<()> {
        std::fs::rename(from, to)
    }

    fn create_dir(&mut self, path: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(path)
    }

    fn remove_dir_all(&mut self, path: &Path) -> std::io::Result<()> {
        match std::fs::remove_dir_all(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            other => other,
        }
    }

    // `fsblkcnt_t` and `c_ulong` are 32 bits on some targets.
    #[allow(clippy::useless_conversion)]
    fn available(&self, path: &Path) -> std::io::Result<u64> {
        let s = nix::sys::statvfs::statvfs(path).map_err(std::io::Error::from)?;
        Ok(u64::from(s.blocks_available()) * u64::from(s.fragment_size()))
    }
}

/// What a [`FaultyStorage`] does at its chosen operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The process dies there: half of a write lands, nothing after it.
    Kill,
    /// The operation fails once with this OS error (`libc::ENOSPC`, `libc::EIO`).
    Error(i32),
}

/// [`FsStorage`] that injects one [`Fault`] at operation `at` (from 0). Clones share the count.
#[derive(Debug, Clone)]
pub struct FaultyStorage {
    at: u64,
    fault: Fault,
    count: Arc<Mutex<u64>>,
}

impl FaultyStorage {
    /// Injects `fault` at operation `at`.
    pub fn new(at: u64, fault: Fault) -> FaultyStorage {
        FaultyStorage { at, fault, count: Arc::default() }
    }

    /// Operations attempted so far (the injected one and those after it included).
    pub fn ops(&self) -> u64 {
        self.count.lock().map_or(0, |c| *c)
    }

    /// Whether the fault has been injected.
    pub fn fired(&self) -> bool {
        self.ops() > self.at
    }

    /// Counts one operation; what the operation must do.
    fn next(&self) -> Step {
        let n = match self.count.lock() {
            Ok(mut c) => {
                *c += 1;
                *c - 1
            }
            Err(_) => return Step::Dead,
        };
        match self.fault {
            Fault::Kill if n == self.at => Step::Half,
            Fault::Kill if n > self.at => Step::Dead,
            Fault::Error(errno) if n == self.at => Step::Fail(errno),
            _ => Step::Run,
        }
    }
}

enum Step {
    Run,
    Half,
    Dead,
    Fail(i32),
}

fn killed() -> std::io::Error {
    std::io::Error::other("the process was killed here (injected)")
}

impl Storage for FaultyStorage {
    fn write(&mut self, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
        match self.next() {
            Step::Run => FsStorage.write(path, bytes),
            Step::Half => FsStorage.write(path, &bytes[..bytes.len() / 2]).and(Err(killed())),
            Step::Dead => Err(killed()),
            Step::Fail(e) => Err(std::io::Error::from_raw_os_error(e)),
        }
    }

    fn write_at(&mut self, path: &Path, offset: u64, bytes: &[u8]) -> std::io::Result<()> {
        match self.next() {
            Step::Run => FsStorage.write_at(path, offset, bytes),
            Step::Half => FsStorage.write_at(path, offset, &bytes[..bytes.len() / 2]).and(Err(killed())),
            Step::Dead => Err(killed()),
            Step::Fail(e) => Err(std::io::Error::from_raw_os_error(e)),
        }
    }

    fn sync(&mut self, path: &Path) -> std::io::Result<()> {
        self.plain(|| FsStorage.sync(path))
    }

    fn rename(&mut self, from: &Path, to: &Path) -> std::io::Result<()> {
        self.plain(|| FsStorage.rename(from, to))
    }

    fn create_dir(&mut self, path: &Path) -> std::io::Result<()> {
        self.plain(|| FsStorage.create_dir(path))
    }

    fn remove_dir_all(&mut self, path: &Path) -> std::io::Result<()> {
        self.plain(|| FsStorage.remove_dir_all(path))
    }

    fn available(&self, path: &Path) -> std::io::Result<u64> {
        FsStorage.available(path)
    }
}

impl FaultyStorage {
    /// An operation that is done or not: a kill before it leaves it undone.
    fn plain(&self, op: impl FnOnce() -> std::io::Result<()>) -> std::io::Result<()> {
        match self.next() {
            Step::Run => op(),
            Step::Half | Step::Dead => Err(killed()),
            Step::Fail(e) => Err(std::io::Error::from_raw_os_error(e)),
        }
    }
}

/// Writes `path` so that it holds the old or the new content whatever happens: a temporary
/// file written and synced, renamed over `path`, the folder synced.
pub fn write_atomic(storage: &mut dyn Storage, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    storage.write(&tmp, bytes)?;
    storage.sync(&tmp)?;
    storage.rename(&tmp, path)?;
    storage.sync(path.parent().unwrap_or(Path::new(".")))
}
