//! Signed bundles: ed25519 keys, the signature over a bundle's manifest, trusted-key lists, and
//! the transfer archive a bundle travels in.
//!
//! The manifest holds the SHA-256 of every other file of the bundle, so a signature over the
//! manifest's bytes covers the whole bundle; `manifest.sig` beside it holds that signature. The
//! manifest names the signing key (`key_id`) and a monotonic `version` the device refuses to go
//! below.
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

use ed25519_dalek::{Signer, SigningKey, Verifier, VerifyingKey};
use sha2::{Digest, Sha256};

use crate::onnx::{Manifest, read_bundle_file};

/// The manifest's file name in a bundle.
pub const MANIFEST: &str = "manifest.toml";
/// The signature's file name in a bundle.
pub const SIGNATURE: &str = "manifest.sig";

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
}

/// A key's id: the first 8 bytes of the SHA-256 of its public key, in hex.
pub fn key_id(key: &VerifyingKey) -> String {
    hex::encode(&Sha256::digest(key.as_bytes())[..8])
}

/// A new signing key from the operating system's random source.
pub fn generate() -> Result<SigningKey, SignatureError> {
    let mut seed = [0u8; 32];
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

/// Parses manifest bytes (UTF-8 TOML) and checks their fields.
pub fn parse_manifest(bytes: &[u8]) -> Result<Manifest, crate::ModelError> {
    let manifest: Manifest = std::str::from_utf8(bytes)
        .map_err(crate::BoxError::from)
        .and_then(|text| toml::from_str(text).map_err(crate::BoxError::from))
        .map_err(|source| crate::ModelError::Parse { file: MANIFEST, source })?;
    manifest.check()?;
    Ok(manifest)
}

/// Checks `signature` over `manifest` (bytes as signed) with the trusted key the manifest
/// names; returns the parsed manifest.
pub fn verify_manifest(
    manifest: &[u8],
    signature: &ed25519_dalek::Signature,
    trusted: &TrustedKeys,
) -> Result<Manifest, crate::ModelError> {
    let parsed = parse_manifest(manifest)?;
    let id = parsed.key_id.clone().ok_or_else(|| SignatureError::Unsigned("the manifest names no key_id".into()))?;
    let key = trusted.by_id(&id).ok_or_else(|| SignatureError::UnknownKey(id.clone()))?;
    key.verify(manifest, signature).map_err(|_| SignatureError::Forged(id))?;
    Ok(parsed)
}

/// Checks the signature of the bundle in `dir` (manifest and `manifest.sig`); the files' hashes
/// are checked by [`crate::onnx::Bundle::open`].
pub fn verify_bundle_signature(dir: &Path, trusted: &TrustedKeys) -> Result<Manifest, crate::ModelError> {
    let manifest = read_bundle_file(dir, MANIFEST)?;
    let sig = match read_bundle_file(dir, SIGNATURE) {
        Ok(bytes) => parse_signature(&String::from_utf8_lossy(&bytes))?,
        Err(crate::ModelError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            return Err(SignatureError::Unsigned(format!("no {SIGNATURE}")).into());
        }
        Err(e) => return Err(e),
    };
    verify_manifest(&manifest, &sig, trusted)
}

/// Signs the bundle in `dir` with `key`: sets the manifest's `key_id` and, when given, its
/// `version`, rewrites `manifest.toml` and writes `manifest.sig`. The bundle's files must match
/// their hashes first: a signature never vouches for a damaged bundle.
pub fn sign_bundle(dir: &Path, key: &SigningKey, version: Option<u64>) -> Result<Manifest, crate::ModelError> {
    let mut manifest = parse_manifest(&read_bundle_file(dir, MANIFEST)?)?;
    crate::onnx::check_file_hashes(dir, &manifest)?;
    if let Some(v) = version {
        manifest.version = v;
    }
    if manifest.version == 0 {
        return Err(crate::ModelError::Manifest {
            field: "version",
            detail: "a signed bundle needs a version of 1 or more (--version)".into(),
        });
    }
    manifest.key_id = Some(key_id(&key.verifying_key()));
    let text = toml::to_string(&manifest).map_err(|e| crate::ModelError::Parse { file: MANIFEST, source: e.into() })?;
    let sig = key.sign(text.as_bytes());
    write_replacing(&dir.join(MANIFEST), text.as_bytes())?;
    write_replacing(&dir.join(SIGNATURE), format!("{}\n", hex::encode(sig.to_bytes())).as_bytes())?;
    Ok(manifest)
}

/// Writes `path` through a temporary file and a rename, so a reader sees the old or the new
/// content, never a mix.
fn write_replacing(path: &Path, bytes: &[u8]) -> Result<(), crate::ModelError> {
    let tmp = path.with_extension("tmp");
    let io = |source| crate::ModelError::Io { path: path.to_owned(), source };
    std::fs::write(&tmp, bytes).and_then(|()| std::fs::rename(&tmp, path)).map_err(io)
}

/// Most bytes an upload may carry (the bundle's files, the manifest and the archive's headers).
pub const MAX_TRANSFER: u64 = 512 * 1024 * 1024;

/// The transfer archive of the bundle in `dir`: a ustar archive of `manifest.toml`,
/// `manifest.sig` and every file the manifest lists, in that order. Returns the archive and the
/// manifest's bytes.
pub fn pack(dir: &Path) -> Result<(Vec<u8>, Vec<u8>), crate::ModelError> {
    let manifest_bytes = read_bundle_file(dir, MANIFEST)?;
    let manifest = parse_manifest(&manifest_bytes)?;
    let mut names = vec![MANIFEST.to_owned(), SIGNATURE.to_owned()];
    names.extend(manifest.files.keys().cloned());
    let mut archive = tar::Builder::new(Vec::new());
    archive.mode(tar::HeaderMode::Deterministic);
    for name in &names {
        let bytes = if name == MANIFEST { manifest_bytes.clone() } else { read_bundle_file(dir, name)? };
        let mut header = tar::Header::new_ustar();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_entry_type(tar::EntryType::Regular);
        archive
            .append_data(&mut header, name, bytes.as_slice())
            .map_err(|source| crate::ModelError::Io { path: dir.join(name), source })?;
    }
    let bytes = archive.into_inner().map_err(|source| crate::ModelError::Io { path: dir.to_owned(), source })?;
    Ok((bytes, manifest_bytes))
}

/// The files of a transfer archive, checked against `manifest` (the bytes the upload began
/// with): the archive's `manifest.toml` is those bytes, it holds `manifest.sig` and exactly the
/// files the manifest lists, each a regular file under a plain name, once, with its hash.
pub fn unpack(archive: &[u8], manifest: &[u8]) -> Result<Vec<(String, Vec<u8>)>, crate::ModelError> {
    let bad = |detail: String| crate::ModelError::from(SignatureError::Archive(detail));
    let listed = parse_manifest(manifest)?;
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    let mut reader = tar::Archive::new(archive);
    let entries = reader.entries().map_err(|e| bad(format!("unreadable: {e}")))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| bad(format!("unreadable entry: {e}")))?;
        if entry.header().entry_type() != tar::EntryType::Regular {
            return Err(bad("an entry is not a regular file".into()));
        }
        let name = entry
            .path()
            .ok()
            .and_then(|p| p.to_str().map(str::to_owned))
            .ok_or_else(|| bad("an entry's name is not UTF-8".into()))?;
        if name != MANIFEST && name != SIGNATURE && !listed.files.contains_key(&name) {
            return Err(bad(format!("{:?} is not a file the manifest lists", protocol::Escaped(&name))));
        }
        if files.iter().any(|(n, _)| *n == name) {
            return Err(bad(format!("{name} appears twice")));
        }
        let size = entry.header().size().map_err(|e| bad(format!("{name}: size: {e}")))?;
        if size > crate::onnx::MAX_BUNDLE_FILE {
            return Err(bad(format!("{name} is larger than a bundle file may be")));
        }
        let mut bytes = Vec::with_capacity(size as usize);
        entry.read_to_end(&mut bytes).map_err(|e| bad(format!("{name}: {e}")))?;
        files.push((name, bytes));
    }
    let find = |name: &str| files.iter().find(|(n, _)| n == name).map(|(_, b)| b);
    if find(MANIFEST).map(Vec::as_slice) != Some(manifest) {
        return Err(bad("its manifest.toml is not the manifest the upload began with".into()));
    }
    if find(SIGNATURE).is_none() {
        return Err(SignatureError::Unsigned(format!("no {SIGNATURE} in the archive")).into());
    }
    for (name, want) in &listed.files {
        let bytes = find(name).ok_or_else(|| bad(format!("{name} is missing")))?;
        let got = hex::encode(Sha256::digest(bytes));
        if !got.eq_ignore_ascii_case(want) {
            return Err(crate::ModelError::HashMismatch { file: name.clone(), got, want: want.clone() });
        }
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn committed_copy() -> tempfile::TempDir {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../assets/model/mimml-synth");
        let dir = tempfile::tempdir().expect("tempdir");
        for f in ["manifest.toml", "model.onnx", "golden.json"] {
            std::fs::copy(src.join(f), dir.path().join(f)).expect("copy");
        }
        dir
    }

    #[test]
    fn a_signed_bundle_verifies_and_any_change_is_caught() {
        let dir = committed_copy();
        let key = generate().expect("key");
        let trusted = TrustedKeys::single(key.verifying_key(), "test");
        let m = sign_bundle(dir.path(), &key, Some(7)).expect("signs");
        assert_eq!((m.version, m.key_id.clone()), (7, Some(key_id(&key.verifying_key()))));
        let v = verify_bundle_signature(dir.path(), &trusted).expect("verifies");
        assert_eq!(v, m);

        // Another key, not trusted.
        let other = generate().expect("key");
        assert!(matches!(
            verify_bundle_signature(dir.path(), &TrustedKeys::single(other.verifying_key(), "x")),
            Err(crate::ModelError::Signature(SignatureError::UnknownKey(_)))
        ));
        // The manifest edited after signing (version raised by hand).
        let path = dir.path().join(MANIFEST);
        let text = std::fs::read_to_string(&path).expect("read");
        std::fs::write(&path, text.replace("version = 7", "version = 8")).expect("write");
        assert!(matches!(
            verify_bundle_signature(dir.path(), &trusted),
            Err(crate::ModelError::Signature(SignatureError::Forged(_)))
        ));
        std::fs::write(&path, &text).expect("write");
        // A signature by an untrusted key under the trusted key's id.
        let forged = other.sign(text.as_bytes());
        std::fs::write(dir.path().join(SIGNATURE), hex::encode(forged.to_bytes())).expect("write");
        assert!(matches!(
            verify_bundle_signature(dir.path(), &trusted),
            Err(crate::ModelError::Signature(SignatureError::Forged(_)))
        ));
        std::fs::write(dir.path().join(SIGNATURE), "zz").expect("write");
        assert!(matches!(
            verify_bundle_signature(dir.path(), &trusted),
            Err(crate::ModelError::Signature(SignatureError::Malformed))
        ));
        std::fs::remove_file(dir.path().join(SIGNATURE)).expect("rm");
        assert!(matches!(
            verify_bundle_signature(dir.path(), &trusted),
            Err(crate::ModelError::Signature(SignatureError::Unsigned(_)))
        ));
    }

    #[test]
    fn signing_refuses_a_damaged_bundle_and_a_versionless_one() {
        let dir = committed_copy();
        let key = generate().expect("key");
        std::fs::write(dir.path().join("golden.json"), b"{}").expect("write");
        assert!(matches!(sign_bundle(dir.path(), &key, Some(1)), Err(crate::ModelError::HashMismatch { .. })));
        let dir = committed_copy();
        let manifest = parse_manifest(&std::fs::read(dir.path().join(MANIFEST)).expect("read")).expect("parses");
        if manifest.version == 0 {
            assert!(matches!(sign_bundle(dir.path(), &key, None), Err(crate::ModelError::Manifest { .. })));
        }
        assert!(sign_bundle(dir.path(), &key, Some(1)).is_ok());
    }

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

    #[test]
    fn a_transfer_archive_unpacks_to_the_bundle_and_nothing_else() {
        let dir = committed_copy();
        let key = generate().expect("key");
        sign_bundle(dir.path(), &key, Some(3)).expect("signs");
        let (archive, manifest) = pack(dir.path()).expect("packs");
        let files = unpack(&archive, &manifest).expect("unpacks");
        let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["manifest.toml", "manifest.sig", "golden.json", "model.onnx"]);
        for (name, bytes) in &files {
            assert_eq!(bytes, &std::fs::read(dir.path().join(name)).expect("read"), "{name}");
        }
        // The archive's manifest must be the announced one.
        let mut other = manifest.clone();
        other.extend_from_slice(b"\n");
        assert!(unpack(&archive, &other).is_err());
        // A changed byte inside the model: its hash no longer matches.
        let at = archive.len() / 2;
        let mut damaged = archive.clone();
        damaged[at] ^= 0x55;
        assert!(unpack(&damaged, &manifest).is_err());
        // Truncated.
        assert!(unpack(&archive[..archive.len() / 3], &manifest).is_err());
    }
}
