//! Small persistent device state (`state.toml` in the data directory), written atomically:
//! a temporary file, `fsync`, rename, `fsync` of the directory.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("device state {path}: {detail}")]
    Invalid { path: PathBuf, detail: String },
    #[error("device state {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceState {
    /// Stable identity of this device, made on first start.
    pub device_id: String,
    /// Next session id to hand out.
    pub next_session: u32,
    /// Highest result sequence number the host has confirmed as stored.
    pub acked: u64,
}

impl DeviceState {
    fn path(dir: &Path) -> PathBuf {
        dir.join("state.toml")
    }

    /// Loads the state, or creates it (with a new device id) on first start. A damaged state
    /// file is an error: the operator decides, the device never guesses an identity.
    pub fn load_or_create(dir: &Path) -> Result<DeviceState, StateError> {
        let path = Self::path(dir);
        match std::fs::read_to_string(&path) {
            Ok(text) => toml::from_str(&text).map_err(|e| StateError::Invalid { path, detail: e.to_string() }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let state = DeviceState { device_id: new_device_id(), next_session: 1, acked: 0 };
                state.save(dir)?;
                Ok(state)
            }
            Err(source) => Err(StateError::Io { path, source }),
        }
    }

    pub fn save(&self, dir: &Path) -> Result<(), StateError> {
        let path = Self::path(dir);
        let io = |source| StateError::Io { path: path.clone(), source };
        let tmp = dir.join("state.toml.tmp");
        let text =
            toml::to_string(self).map_err(|e| StateError::Invalid { path: path.clone(), detail: e.to_string() })?;
        let mut f = std::fs::File::create(&tmp).map_err(io)?;
        f.write_all(text.as_bytes()).map_err(io)?;
        f.sync_all().map_err(io)?;
        std::fs::rename(&tmp, &path).map_err(io)?;
        std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io)?;
        Ok(())
    }
}

/// `mimml-` and 8 hex digits from the clock and process id: unique enough to tell a clinic's
/// devices apart; the operator can overwrite it in `state.toml`.
fn new_device_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0));
    h.write_u32(std::process::id());
    format!("mimml-{:08x}", h.finish() as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_once_then_reloaded() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut s = DeviceState::load_or_create(dir.path()).expect("create");
        assert!(s.device_id.starts_with("mimml-"));
        s.next_session = 7;
        s.save(dir.path()).expect("save");
        assert_eq!(DeviceState::load_or_create(dir.path()).expect("load"), s);
        std::fs::write(dir.path().join("state.toml"), "device_id = 3").expect("write");
        assert!(DeviceState::load_or_create(dir.path()).unwrap_err().to_string().contains("state.toml"));
    }
}
