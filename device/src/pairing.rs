//! Paired hosts: the only hosts that may run sessions, read results or flash models.
//!
//! A host pairs while someone is at the device: it sends its public key (`PairBegin`), the
//! device shows a one-time six-digit code on its log, its screen (the file `pairing.code` in the
//! data folder) — and on a kiosk board, holding the button works instead — and the host sends
//! the code back signed with its key (`PairConfirm`), proving it holds the key it asked to pair.
//! A code lives [`CODE_LIFETIME`] and takes [`ATTEMPTS`] tries; after [`MAX_FAILURES`] wrong codes
//! pairing is refused for [`LOCKOUT`].
//!
//! Afterwards every connection proves the key again (`Auth`): the host signs the challenge the
//! device put in this connection's `DeviceInfo`, fresh for every `Hello`, so a recorded
//! exchange does not authorise a later connection. Paired keys live in `hosts.toml`, written
//! atomically.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ed25519_dalek::{Verifier, VerifyingKey};
use protocol::signed::{auth_message, pair_message};
use protocol::{Auth, PairChallenge, PairConfirm, PairMethod, PublicKey, ShortStr};
use serde::{Deserialize, Serialize};

/// How long a pairing code is valid.
pub const CODE_LIFETIME: Duration = Duration::from_secs(120);
/// Tries one code takes.
pub const ATTEMPTS: u8 = 3;
/// Wrong codes after which pairing is refused for [`LOCKOUT`].
pub const MAX_FAILURES: u32 = 10;
/// How long pairing is refused after [`MAX_FAILURES`] wrong codes.
pub const LOCKOUT: Duration = Duration::from_secs(600);
/// Most paired hosts.
pub const MAX_HOSTS: usize = 32;

/// Why pairing or authorisation failed.
#[derive(Debug, thiserror::Error)]
pub enum PairingError {
    /// `hosts.toml` could not be read or written.
    #[error("paired hosts file {path}")]
    Io {
        /// The file.
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// `hosts.toml` is not what the device writes.
    #[error("paired hosts file {path} is damaged")]
    Damaged {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        #[source]
        source: crate::BoxError,
    },
    /// The host key is not paired, or its signature does not verify.
    #[error("this host is not paired with the device (run `mimml pair`), or its signature does not verify")]
    Unauthorized,
    /// A pairing confirmation that is refused.
    #[error("pairing refused: {0}")]
    Refused(&'static str),
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct Host {
    /// The public key, hex.
    key: String,
    /// The host's name as it gave it.
    name: String,
    /// When it paired, Unix seconds.
    paired: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct HostsFile {
    #[serde(default)]
    host: Vec<Host>,
}

#[derive(Debug)]
struct Pending {
    key: PublicKey,
    name: String,
    code: u32,
    until: Instant,
    attempts: u8,
}

/// The paired hosts and the pairing in progress.
#[derive(Debug)]
pub struct Pairings {
    path: PathBuf,
    code_path: PathBuf,
    hosts: Vec<Host>,
    pending: Option<Pending>,
    failures: u32,
    locked_until: Option<Instant>,
}

fn verify(key: &PublicKey, message: &[u8], signature: &[u8]) -> bool {
    let Ok(key) = VerifyingKey::from_bytes(key) else { return false };
    let Ok(sig) = runtime::signing::signature_from_bytes(signature) else { return false };
    key.verify(message, &sig).is_ok()
}

impl crate::Refusal for PairingError {
    fn code(&self) -> protocol::ErrorCode {
        match self {
            PairingError::Unauthorized => protocol::ErrorCode::Unauthorized,
            PairingError::Refused(_) => protocol::ErrorCode::PairingFailed,
            PairingError::Io { .. } | PairingError::Damaged { .. } => protocol::ErrorCode::Storage,
        }
    }
}

impl Pairings {
    /// The paired hosts of the device whose data folder is `data_dir`.
    pub fn open(data_dir: &Path) -> Result<Pairings, PairingError> {
        let path = data_dir.join("hosts.toml");
        let hosts = match std::fs::read_to_string(&path) {
            Ok(text) => {
                toml::from_str::<HostsFile>(&text)
                    .map_err(|e| PairingError::Damaged { path: path.clone(), source: e.into() })?
                    .host
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(source) => return Err(PairingError::Io { path, source }),
        };
        let code_path = data_dir.join("pairing.code");
        // A code shown before a restart is not pending any more.
        let _ = std::fs::remove_file(&code_path);
        Ok(Pairings { path, code_path, hosts, pending: None, failures: 0, locked_until: None })
    }

    /// How many hosts are paired.
    pub fn count(&self) -> u8 {
        u8::try_from(self.hosts.len()).unwrap_or(u8::MAX)
    }

    fn find(&self, key: &PublicKey) -> Option<usize> {
        let hex = hex::encode(key);
        self.hosts.iter().position(|h| h.key == hex)
    }

    fn save(&mut self, hosts: Vec<Host>) -> Result<(), PairingError> {
        let text = toml::to_string(&HostsFile { host: hosts.clone() })
            .map_err(|e| PairingError::Damaged { path: self.path.clone(), source: e.into() })?;
        crate::storage::write_atomic(&mut crate::storage::FsStorage, &self.path, text.as_bytes())
            .map_err(|source| PairingError::Io { path: self.path.clone(), source })?;
        self.hosts = hosts;
        Ok(())
    }

    /// Pairs `key` directly: for someone with the device's data folder in hand (provisioning,
    /// `mimml-device pairings add`). Returns the number of paired hosts.
    pub fn add(&mut self, key: PublicKey, name: &str) -> Result<u8, PairingError> {
        if self.find(&key).is_none() {
            if self.hosts.len() >= MAX_HOSTS {
                return Err(PairingError::Refused("the device already has the most paired hosts it keeps"));
            }
            let mut hosts = self.hosts.clone();
            let paired = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
            let name = protocol::Escaped(name).to_string();
            hosts.push(Host { key: hex::encode(key), name, paired });
            self.save(hosts)?;
        }
        Ok(self.count())
    }

    /// Forgets `key`. Returns the number of paired hosts left.
    pub fn remove(&mut self, key: &PublicKey) -> Result<u8, PairingError> {
        if let Some(i) = self.find(key) {
            let mut hosts = self.hosts.clone();
            hosts.remove(i);
            self.save(hosts)?;
        }
        Ok(self.count())
    }

    /// Forgets every host (at the device: `mimml-device pairings reset`).
    pub fn reset(&mut self) -> Result<usize, PairingError> {
        let n = self.hosts.len();
        self.save(Vec::new())?;
        Ok(n)
    }

    /// The paired hosts' names and keys (hex).
    pub fn list(&self) -> Vec<(String, String)> {
        self.hosts.iter().map(|h| (h.name.clone(), h.key.clone())).collect()
    }

    /// Checks an [`Auth`] against this connection's challenge.
    pub fn authorize(&self, device_id: &str, challenge: &[u8; 32], a: &Auth) -> Result<(), PairingError> {
        // An id too long for the wire was never sent to a host, so no host signed over it.
        let Ok(id) = ShortStr::try_from(device_id) else { return Err(PairingError::Unauthorized) };
        if self.find(&a.host_key).is_some()
            && verify(&a.host_key, &auth_message(&id, challenge, &a.host_key), &a.signature)
        {
            Ok(())
        } else {
            Err(PairingError::Unauthorized)
        }
    }

    /// Begins pairing `key`: a new code, shown on the log and in `pairing.code`.
    pub fn begin(&mut self, key: PublicKey, name: &str, button: bool) -> Result<PairChallenge, PairingError> {
        if self.locked_until.is_some_and(|t| Instant::now() < t) {
            return Err(PairingError::Refused("too many wrong codes: pairing is locked for a while"));
        }
        let mut bytes = [0u8; 4];
        // as text: getrandom's error implements std::error::Error only with its `std` feature.
        getrandom::fill(&mut bytes).map_err(|e| PairingError::Io {
            path: PathBuf::from("(system random source)"),
            source: std::io::Error::other(e.to_string()),
        })?;
        let code = u32::from_le_bytes(bytes) % 1_000_000;
        let name = protocol::Escaped(name).to_string();
        tracing::warn!(
            host = %name,
            "PAIRING CODE {code:06}: a host asks to pair; enter this code on the host to allow it (valid {} s)",
            CODE_LIFETIME.as_secs()
        );
        let _ = crate::storage::write_atomic(
            &mut crate::storage::FsStorage,
            &self.code_path,
            format!("{code:06} {name}\n").as_bytes(),
        );
        self.pending = Some(Pending { key, name, code, until: Instant::now() + CODE_LIFETIME, attempts: ATTEMPTS });
        Ok(PairChallenge {
            method: if button { PairMethod::Button } else { PairMethod::Code },
            expires_s: CODE_LIFETIME.as_secs() as u16,
            attempts: ATTEMPTS,
        })
    }

    /// Completes the pairing begun on this connection: the code (or the button held) and the
    /// host's signature over it. Returns the number of paired hosts and the key paired.
    pub fn confirm(
        &mut self,
        device_id: &str,
        challenge: &[u8; 32],
        c: &PairConfirm,
        button_held: bool,
    ) -> Result<(u8, PublicKey), PairingError> {
        let Some(p) = &mut self.pending else {
            return Err(PairingError::Refused("no pairing was begun"));
        };
        if Instant::now() > p.until {
            self.end_pending();
            return Err(PairingError::Refused("the code expired: begin again"));
        }
        let signed = ShortStr::try_from(device_id).map(|id| pair_message(&id, challenge, c.code, &p.key));
        if !signed.is_ok_and(|m| verify(&p.key, &m, &c.signature)) {
            return Err(PairingError::Refused("the host's signature does not verify"));
        }
        if c.code != p.code && !button_held {
            p.attempts = p.attempts.saturating_sub(1);
            self.failures += 1;
            if p.attempts == 0 {
                self.end_pending();
            }
            if self.failures >= MAX_FAILURES {
                self.locked_until = Some(Instant::now() + LOCKOUT);
                self.failures = 0;
                self.end_pending();
                tracing::error!("{MAX_FAILURES} wrong pairing codes: pairing locked for {} s", LOCKOUT.as_secs());
            }
            return Err(PairingError::Refused("wrong code"));
        }
        let (key, name) = (p.key, p.name.clone());
        self.end_pending();
        let n = self.add(key, &name)?;
        self.failures = 0;
        tracing::info!(host = %name, "host paired");
        Ok((n, key))
    }

    fn end_pending(&mut self) {
        self.pending = None;
        let _ = std::fs::remove_file(&self.code_path);
    }
}
