//! The data directory's persistent state (`state.toml`), written atomically (a temporary file,
//! `fsync`, rename, `fsync` of the directory), and the device's identity.
//!
//! Exactly-once sync rests on `(device_id, seq)` naming one result forever, so both halves are
//! guarded here:
//!
//! * **Sequence numbers**: `last_seq` is the highest number ever handed out, saved (fsynced)
//!   before the record that carries it is appended. The log can lose its tail to damage; the
//!   numbers it held are never handed out again.
//! * **Identity**: on a board with a hardware serial number the id is derived from it and the
//!   serial is stored beside it. A data directory that wakes up on another board (an SD card
//!   imaged from a provisioned one) is a *clone*: it takes the id of its own hardware and starts
//!   a log of its own, the copied log kept aside unserved. A directory whose state file is gone
//!   but whose log holds results is a *reset*: with a serial the id is derived again (the same
//!   one); without one the device refuses to start rather than serve those results under a new
//!   id.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("device state {path} is not valid TOML of the device's state")]
    Invalid {
        path: PathBuf,
        #[source]
        source: crate::BoxError,
    },
    #[error("device state {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The state file is gone but the log holds results, and there is no hardware serial to
    /// recover the identity from.
    #[error(
        "{state} is missing but {log} holds results: starting would give them a new device id and the host \
         would store them twice. Restore state.toml from a backup, or sync the log with the old id and move it away"
    )]
    Missing { state: PathBuf, log: PathBuf },
    /// The board names a serial-number file that cannot be read.
    #[error("hardware serial number {path}")]
    Serial {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Another process holds the data directory.
    #[error(
        "data directory {path} is in use by another mimml-device (its lock is held); two daemons on one \
         directory would hand out the same sequence numbers"
    )]
    Locked { path: PathBuf },
    /// The serial-number file holds no usable serial.
    #[error("hardware serial number {path} is empty or not printable text")]
    BadSerial { path: PathBuf },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceState {
    /// Identity of this device: the key of its results in every host database.
    pub device_id: String,
    /// The hardware serial number the id is bound to (boards that have one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hardware_serial: Option<String>,
    /// Next session id to hand out.
    pub next_session: u32,
    /// Highest result sequence number the host has confirmed as stored.
    pub acked: u64,
    /// Highest result sequence number ever handed out (the log's high-water mark).
    #[serde(default)]
    pub last_seq: u64,
    /// The session capturing when this was saved: set at its start, cleared when it stops or
    /// is aborted. Found set at start-up, the device stopped mid-session (power loss, crash):
    /// that session is recorded as aborted, never as a result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capturing: Option<u32>,
}

/// How the identity was established at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    /// A new data directory.
    Fresh,
    /// The stored identity, on the hardware it belongs to.
    Stored,
    /// The state file was missing; the id was derived again from the hardware serial.
    Recovered,
    /// The data directory was made on another board; this board took its own id, and the
    /// copied log was moved to `kept_aside`.
    Cloned { previous_id: String, kept_aside: Option<PathBuf> },
}

impl DeviceState {
    fn path(dir: &Path) -> PathBuf {
        dir.join("state.toml")
    }

    fn new(serial: Option<&str>) -> DeviceState {
        let device_id = serial.map_or_else(random_device_id, device_id_for_serial);
        DeviceState {
            device_id,
            hardware_serial: serial.map(str::to_owned),
            next_session: 1,
            acked: 0,
            last_seq: 0,
            capturing: None,
        }
    }

    /// The state of the data directory `dir`, whose result log is `log`, on hardware with
    /// `serial`: loaded, created, recovered or re-identified as the module docs describe. A
    /// damaged state file is an error: the operator decides, the device never guesses.
    pub fn establish(dir: &Path, log: &Path, serial: Option<&str>) -> Result<(DeviceState, Identity), StateError> {
        let path = Self::path(dir);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => Some(text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(source) => return Err(StateError::Io { path, source }),
        };
        let log_has_data = std::fs::metadata(log).is_ok_and(|m| m.len() > 0);
        let Some(text) = text else {
            if log_has_data && serial.is_none() {
                return Err(StateError::Missing { state: path, log: log.to_owned() });
            }
            let state = Self::new(serial);
            state.save(dir)?;
            return Ok((state, if log_has_data { Identity::Recovered } else { Identity::Fresh }));
        };
        let mut state: DeviceState =
            toml::from_str(&text).map_err(|e| StateError::Invalid { path, source: e.into() })?;
        match (serial, state.hardware_serial.as_deref()) {
            (Some(now), Some(stored)) if now != stored => {
                let previous_id = state.device_id.clone();
                let kept_aside = if log_has_data {
                    let aside = log.with_extension(format!("log.cloned-from-{previous_id}"));
                    std::fs::rename(log, &aside).map_err(|source| StateError::Io { path: log.to_owned(), source })?;
                    Some(aside)
                } else {
                    None
                };
                let fresh = Self::new(Some(now));
                fresh.save(dir)?;
                Ok((fresh, Identity::Cloned { previous_id, kept_aside }))
            }
            (Some(now), None) => {
                // A directory from before the id was bound (or from a board without a serial
                // definition): bind it to this hardware from now on.
                state.hardware_serial = Some(now.to_owned());
                state.save(dir)?;
                Ok((state, Identity::Stored))
            }
            _ => Ok((state, Identity::Stored)),
        }
    }

    pub fn save(&self, dir: &Path) -> Result<(), StateError> {
        let path = Self::path(dir);
        let io = |source| StateError::Io { path: path.clone(), source };
        let tmp = dir.join("state.toml.tmp");
        let text = toml::to_string(self).map_err(|e| StateError::Invalid { path: path.clone(), source: e.into() })?;
        let mut f = std::fs::File::create(&tmp).map_err(io)?;
        f.write_all(text.as_bytes()).map_err(io)?;
        f.sync_all().map_err(io)?;
        std::fs::rename(&tmp, &path).map_err(io)?;
        std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io)?;
        Ok(())
    }
}

/// A data directory held by this process: an advisory lock on its `lock` file, held until
/// the value is dropped (the process's life for the daemon).
#[derive(Debug)]
pub struct DataDir {
    path: PathBuf,
    _lock: std::fs::File,
}

impl DataDir {
    /// Locks the existing directory `path`; fails at once if another process holds it.
    pub fn lock(path: &Path) -> Result<DataDir, StateError> {
        let lock_path = path.join("lock");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|source| StateError::Io { path: lock_path.clone(), source })?;
        match file.try_lock() {
            Ok(()) => Ok(DataDir { path: path.to_owned(), _lock: file }),
            Err(std::fs::TryLockError::WouldBlock) => Err(StateError::Locked { path: path.to_owned() }),
            Err(std::fs::TryLockError::Error(source)) => Err(StateError::Io { path: lock_path, source }),
        }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Reads the hardware serial number from `path` (device-tree strings end in NUL).
pub fn read_serial(path: &Path) -> Result<String, StateError> {
    let bytes = std::fs::read(path).map_err(|source| StateError::Serial { path: path.to_owned(), source })?;
    let text = String::from_utf8_lossy(&bytes);
    let serial = text.trim_matches(|c: char| c == '\0' || c.is_whitespace());
    if serial.is_empty() || serial.len() > 128 || !serial.chars().all(|c| c.is_ascii_graphic()) {
        return Err(StateError::BadSerial { path: path.to_owned() });
    }
    Ok(serial.to_owned())
}

/// `mimml-` and 12 hex digits of SHA-256 over the serial: the same board always gets the same
/// id, and the serial itself is not what hosts store.
pub fn device_id_for_serial(serial: &str) -> String {
    let digest = Sha256::digest(format!("mimml-device-id:{serial}").as_bytes());
    let hex: String = digest.iter().take(6).map(|b| format!("{b:02x}")).collect();
    format!("mimml-{hex}")
}

/// `mimml-` and 8 hex digits from the clock and process id: unique enough to tell a clinic's
/// serial-less devices apart; the operator can overwrite it in `state.toml`.
fn random_device_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0));
    h.write_u32(std::process::id());
    format!("mimml-{:08x}", h.finish() as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn establish(dir: &Path, serial: Option<&str>) -> Result<(DeviceState, Identity), StateError> {
        DeviceState::establish(dir, &dir.join("results.log"), serial)
    }

    #[test]
    fn created_once_then_reloaded() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut s, how) = establish(dir.path(), None).expect("create");
        assert_eq!(how, Identity::Fresh);
        assert!(s.device_id.starts_with("mimml-"));
        s.next_session = 7;
        s.save(dir.path()).expect("save");
        assert_eq!(establish(dir.path(), None).expect("load"), (s, Identity::Stored));
        std::fs::write(dir.path().join("state.toml"), "device_id = 3").expect("write");
        assert!(establish(dir.path(), None).unwrap_err().to_string().contains("state.toml"));
    }

    #[test]
    fn a_deleted_state_with_results_in_the_log_never_gets_a_new_id() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (s, _) = establish(dir.path(), None).expect("create");
        std::fs::write(dir.path().join("results.log"), [0, 1, 2, 0]).expect("log");
        std::fs::remove_file(dir.path().join("state.toml")).expect("rm");
        let e = establish(dir.path(), None).unwrap_err();
        assert!(matches!(e, StateError::Missing { .. }), "{e}");
        assert!(!dir.path().join("state.toml").exists(), "nothing invented");
        // With a hardware serial the same id comes back.
        std::fs::write(dir.path().join("state.toml"), toml::to_string(&s).expect("toml")).expect("restore");
        let (bound, _) = establish(dir.path(), Some("10000000abcd")).expect("bind");
        assert_eq!(
            (bound.device_id.as_str(), bound.hardware_serial.as_deref()),
            (s.device_id.as_str(), Some("10000000abcd"))
        );
        std::fs::remove_file(dir.path().join("state.toml")).expect("rm");
        let (again, how) = establish(dir.path(), Some("10000000abcd")).expect("recover");
        assert_eq!((again.device_id, how), (device_id_for_serial("10000000abcd"), Identity::Recovered));
    }

    #[test]
    fn a_data_directory_on_other_hardware_is_a_clone_with_its_own_id_and_log() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (a, _) = establish(dir.path(), Some("serial-A")).expect("create");
        std::fs::write(dir.path().join("results.log"), [0, 1, 2, 0]).expect("log");
        let (b, how) = establish(dir.path(), Some("serial-B")).expect("clone");
        assert_ne!(a.device_id, b.device_id);
        assert_eq!(b.device_id, device_id_for_serial("serial-B"));
        let Identity::Cloned { previous_id, kept_aside: Some(aside) } = how else { panic!("{how:?}") };
        assert_eq!(previous_id, a.device_id);
        assert_eq!(std::fs::read(aside).expect("aside"), [0, 1, 2, 0]);
        assert!(!dir.path().join("results.log").exists(), "the copied log is not served");
        assert_eq!((b.next_session, b.last_seq, b.acked), (1, 0, 0));
    }

    #[test]
    fn a_data_directory_is_held_by_one_holder_at_a_time() {
        let dir = tempfile::tempdir().expect("tempdir");
        let held = DataDir::lock(dir.path()).expect("lock");
        assert!(matches!(DataDir::lock(dir.path()), Err(StateError::Locked { .. })));
        drop(held);
        DataDir::lock(dir.path()).expect("free again");
    }

    #[test]
    fn serials_are_read_from_device_tree_strings() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("serial-number");
        std::fs::write(&p, b"10000000abcdef12\0").expect("write");
        assert_eq!(read_serial(&p).expect("serial"), "10000000abcdef12");
        std::fs::write(&p, b"\0\n").expect("write");
        assert!(matches!(read_serial(&p), Err(StateError::BadSerial { .. })));
        assert!(matches!(read_serial(&dir.path().join("none")), Err(StateError::Serial { .. })));
    }
}
