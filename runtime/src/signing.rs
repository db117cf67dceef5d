//! Signing keys: ed25519 keys and their files, trusted-key lists, signatures as bytes and hex.
//! What a bundle's signature covers and how it is checked is [`crate::bundle`]'s.
//!
//! Key files are one line each, so a trusted-keys file is public-key lines put together (as
//! ssh's `authorized_keys`):
//!
//! * secret: `mimml-ed25519-secret <64 hex: the 32-byte seed>` (created 0600, never printed);
//! * public: `mimml-ed25519 <64 hex: the public key> <comment>`.
//!
//! The key id is the first 8 bytes of the public key's SHA-256, in hex. The cryptography is
//! ed25519-dalek's; this module only reads and writes files.

use std::io::Read;
use std::path::{Path, PathBuf};

use ed25519_dalek::{SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

const SECRET_TAG: &str = "mimml-ed25519-secret";
const PUBLIC_TAG: &str = "mimml-ed25519";

/// Why a key, signature or transfer was refused.
#[derive(Debug, thiserror::Error)]
pub enum SignatureError {
    /// A key file could not be read or written.
    #[error("key file {path}")]
    Io {
        /// The file.
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A key file is not in the format its kind has.
    #[error("{path}, line {line}: {detail}")]
    KeyFormat {
        /// The file.
        path: PathBuf,
        /// The line, from 1.
        line: usize,
        /// What is wrong.
        detail: String,
    },
    /// The bundle has no `manifest.sig`, or the manifest names no key.
    #[error("the bundle is not signed ({0})")]
    Unsigned(String),
    /// The signature is not 64 bytes of hex.
    #[error("manifest.sig is not an ed25519 signature (128 hex digits)")]
    Malformed,
    /// The manifest names a key the verifier does not trust.
    #[error("the bundle is signed by key {0}, which is not trusted here")]
    UnknownKey(String),
    /// The signature does not verify with the named key: the manifest was changed after
    /// signing, or the signature was made by another key.
    #[error("the signature does not verify with key {0}: the manifest was changed after signing or forged")]
    Forged(String),
    /// The transfer archive is not a bundle.
    #[error("transfer archive: {0}")]
    Archive(String),
    /// The transfer archive cannot be read as a tar archive.
    #[error("transfer archive: {what} unreadable")]
    ArchiveUnreadable {
        /// The entry, or the archive itself.
        what: String,
        #[source]
        source: std::io::Error,
    },
}

/// A key's id: the first 8 bytes of the SHA-256 of its public key, in hex.
pub fn key_id(key: &VerifyingKey) -> String {
    hex::encode(&Sha256::digest(key.as_bytes())[..8])
}

/// A new signing key from the operating system's random source.
pub fn generate() -> Result<SigningKey, SignatureError> {
    let mut seed = [0u8; 32];
    // as text: getrandom's error implements std::error::Error only with its `std` feature.
    getrandom::fill(&mut seed).map_err(|e| SignatureError::Io {
        path: PathBuf::from("(system random source)"),
        source: std::io::Error::other(e.to_string()),
    })?;
    Ok(SigningKey::from_bytes(&seed))
}

/// The public-key line of `key`.
pub fn public_line(key: &VerifyingKey, comment: &str) -> String {
    let comment: String = comment.chars().filter(|c| !c.is_control()).collect();
    format!("{PUBLIC_TAG} {} {comment}\n", hex::encode(key.as_bytes()))
}

/// Writes `key` to `secret` (created, never overwritten, mode 0600) and its public line to
/// `public`.
pub fn write_key_pair(key: &SigningKey, secret: &Path, public: &Path, comment: &str) -> Result<(), SignatureError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    fn io(path: &Path) -> impl Fn(std::io::Error) -> SignatureError + '_ {
        move |source| SignatureError::Io { path: path.to_owned(), source }
    }
    let mut f =
        std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(secret).map_err(io(secret))?;
    writeln!(f, "{SECRET_TAG} {}", hex::encode(key.to_bytes())).and_then(|()| f.sync_all()).map_err(io(secret))?;
    let mut p = std::fs::OpenOptions::new().write(true).create_new(true).open(public).map_err(io(public))?;
    p.write_all(public_line(&key.verifying_key(), comment).as_bytes()).map_err(io(public))
}

fn read_small(path: &Path) -> Result<String, SignatureError> {
    let io = |source| SignatureError::Io { path: path.to_owned(), source };
    let mut text = String::new();
    std::fs::File::open(path).and_then(|f| f.take(1 << 20).read_to_string(&mut text)).map_err(io)?;
    Ok(text)
}

fn hex32(path: &Path, line: usize, word: Option<&str>) -> Result<[u8; 32], SignatureError> {
    let bad = |detail: &str| SignatureError::KeyFormat { path: path.to_owned(), line, detail: detail.into() };
    let word = word.ok_or_else(|| bad("the key is missing"))?;
    let bytes = hex::decode(word).map_err(|_| bad("the key is not hex"))?;
    bytes.try_into().map_err(|_| bad("the key is not 32 bytes (64 hex digits)"))
}

/// Reads a secret key file.
pub fn read_secret(path: &Path) -> Result<SigningKey, SignatureError> {
    let text = read_small(path)?;
    let mut words = text.split_whitespace();
    if words.next() != Some(SECRET_TAG) {
        return Err(SignatureError::KeyFormat {
            path: path.to_owned(),
            line: 1,
            detail: format!("not a secret key (it does not start with {SECRET_TAG})"),
        });
    }
    Ok(SigningKey::from_bytes(&hex32(path, 1, words.next())?))
}

/// Public keys trusted to sign bundles (or, on a device, hosts paired with it), with comments.
#[derive(Debug, Clone, Default)]
pub struct TrustedKeys {
    keys: Vec<(VerifyingKey, String)>,
}

impl TrustedKeys {
    /// Reads a file of public-key lines (blank lines and `#` comments allowed).
    pub fn read(path: &Path) -> Result<TrustedKeys, SignatureError> {
        let text = read_small(path)?;
        let mut keys = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut words = line.splitn(3, ' ');
            if words.next() != Some(PUBLIC_TAG) {
                return Err(SignatureError::KeyFormat {
                    path: path.to_owned(),
                    line: i + 1,
                    detail: format!("not a public key line (it does not start with {PUBLIC_TAG})"),
                });
            }
            let bytes = hex32(path, i + 1, words.next())?;
            let key = VerifyingKey::from_bytes(&bytes).map_err(|_| SignatureError::KeyFormat {
                path: path.to_owned(),
                line: i + 1,
                detail: "not a valid ed25519 public key".into(),
            })?;
            keys.push((key, words.next().unwrap_or_default().to_owned()));
        }
        Ok(TrustedKeys { keys })
    }

    /// One key.
    pub fn single(key: VerifyingKey, comment: &str) -> TrustedKeys {
        TrustedKeys { keys: vec![(key, comment.to_owned())] }
    }

    /// The key with id `id`.
    pub fn by_id(&self, id: &str) -> Option<&VerifyingKey> {
        self.keys.iter().map(|(k, _)| k).find(|k| key_id(k).eq_ignore_ascii_case(id))
    }

    /// Whether no key is trusted.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The keys with their comments.
    pub fn iter(&self) -> impl Iterator<Item = (&VerifyingKey, &str)> {
        self.keys.iter().map(|(k, c)| (k, c.as_str()))
    }
}

/// Parses a signature from `manifest.sig`'s text (hex).
pub fn parse_signature(text: &str) -> Result<ed25519_dalek::Signature, SignatureError> {
    let bytes = hex::decode(text.trim()).map_err(|_| SignatureError::Malformed)?;
    signature_from_bytes(&bytes)
}

/// A signature from its 64 bytes.
pub fn signature_from_bytes(bytes: &[u8]) -> Result<ed25519_dalek::Signature, SignatureError> {
    let bytes: [u8; 64] = bytes.try_into().map_err(|_| SignatureError::Malformed)?;
    Ok(ed25519_dalek::Signature::from_bytes(&bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_files_round_trip_and_the_secret_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let key = generate().expect("key");
        let (secret, public) = (dir.path().join("k.key"), dir.path().join("k.pub"));
        write_key_pair(&key, &secret, &public, "clinic\nforged line").expect("writes");
        let mode = std::fs::metadata(&secret).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(read_secret(&secret).expect("reads").to_bytes(), key.to_bytes());
        let trusted = TrustedKeys::read(&public).expect("reads");
        assert_eq!(
            trusted.iter().map(|(k, c)| (*k, c.to_owned())).collect::<Vec<_>>(),
            vec![(key.verifying_key(), "clinicforged line".to_owned())]
        );
        // Never overwritten.
        assert!(write_key_pair(&key, &secret, &public, "again").is_err());
        // Wrong kind of file, bad hex, wrong length: the file and line are named.
        assert!(matches!(read_secret(&public), Err(SignatureError::KeyFormat { line: 1, .. })));
        std::fs::write(&public, "# keys\n\nmimml-ed25519 abcd short\n").expect("write");
        assert!(matches!(TrustedKeys::read(&public), Err(SignatureError::KeyFormat { line: 3, .. })));
        std::fs::write(&public, format!("mimml-ed25519 {} é\n", "é".repeat(32))).expect("write");
        assert!(matches!(TrustedKeys::read(&public), Err(SignatureError::KeyFormat { line: 1, .. })));
    }
}
