//! Flashing a signed bundle: the transfer archive sent in chunks that carry their offset, the
//! device answering the offset it expects next (mcumgr's SMP image upload), so an interrupted
//! flash — cable pulled, host killed, device restarted — resumes where the device's copy ends
//! when run again; the SHA-256 of the whole transfer is announced first and checked at commit.

use std::io::{Read, Write};
use std::path::Path;

use protocol::{ErrorCode, MAX_CHUNK, MAX_MANIFEST, SlotState, UploadBegin, UploadChunk, UploadStatus, endpoints};
use sha2::{Digest, Sha256};

use crate::client::{ClientError, DeviceClient};

/// Why a flash did not complete.
#[derive(Debug, thiserror::Error)]
pub enum FlashError {
    /// The bundle could not be read, is not signed, or does not verify here.
    #[error("bundle {path}")]
    Bundle {
        /// The bundle folder.
        path: std::path::PathBuf,
        #[source]
        source: runtime::ModelError,
    },
    /// The bundle has no signature file.
    #[error("bundle {path} is not signed (no manifest.sig): `mimml bundle sign` it")]
    Unsigned {
        /// The bundle folder.
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The transfer is larger than the protocol carries.
    #[error("the bundle's transfer ({0} bytes) is larger than the protocol carries")]
    TooLarge(usize),
    /// The device refused or the link failed.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The device kept answering with offsets that do not move forward.
    #[error("the device does not take the upload forward (stuck at offset {0})")]
    Stuck(u32),
}

/// A bundle packed for flashing.
#[derive(Debug, Clone)]
pub struct Transfer {
    /// The archive sent.
    pub archive: Vec<u8>,
    /// The signed manifest, as announced.
    pub manifest: Vec<u8>,
    /// Its signature.
    pub signature: [u8; 64],
    /// SHA-256 of `archive`.
    pub sha256: [u8; 32],
    /// The manifest's model version and bundle version.
    pub model_version: String,
    /// Bundle version.
    pub version: u64,
}

impl Transfer {
    /// Packs the signed bundle in `dir` (refusing one that is unsigned or damaged).
    pub fn of(dir: &Path) -> Result<Transfer, FlashError> {
        let bundle = |source| FlashError::Bundle { path: dir.to_owned(), source };
        let sig_text = std::fs::read_to_string(dir.join(runtime::bundle::SIGNATURE))
            .map_err(|source| FlashError::Unsigned { path: dir.to_owned(), source })?;
        let (archive, manifest) = runtime::bundle::pack(dir).map_err(bundle)?;
        let m = runtime::bundle::parse_manifest(&manifest).map_err(bundle)?;
        runtime::bundle::check_file_hashes(dir, &m).map_err(bundle)?;
        let signature = runtime::signing::parse_signature(&sig_text).map_err(|e| bundle(e.into()))?.to_bytes();
        if manifest.len() > MAX_MANIFEST || u32::try_from(archive.len()).is_err() {
            return Err(FlashError::TooLarge(archive.len()));
        }
        let sha256 = Sha256::digest(&archive).into();
        Ok(Transfer { archive, manifest, signature, sha256, model_version: m.model_version, version: m.version })
    }
}

/// How a flash ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Flashed {
    /// The status after commit (the slot on trial).
    pub status: UploadStatus,
    /// Where the upload began (non-zero: resumed).
    pub resumed_at: u32,
    /// Bytes sent in chunks by this run.
    pub sent: u64,
    /// The device already had this bundle installed: nothing was sent.
    pub already: bool,
}

/// Sends `t` and commits it. `progress(offset, total)` after every chunk.
pub fn flash<P: Read + Write>(
    client: &mut DeviceClient<P>,
    t: &Transfer,
    allow_downgrade: bool,
    mut progress: impl FnMut(u64, u64),
) -> Result<Flashed, FlashError> {
    let total = t.archive.len() as u32;
    let begin = UploadBegin {
        manifest: protocol::heapless::Vec::from_slice(&t.manifest)
            .map_err(|_| FlashError::TooLarge(t.manifest.len()))?,
        signature: protocol::heapless::Vec::from_slice(&t.signature).unwrap_or_default(),
        total_size: total,
        sha256: t.sha256,
        allow_downgrade,
    };
    let status = client.call::<endpoints::UploadBegin>(begin)?;
    if matches!(status.slot.state, SlotState::Trial | SlotState::Active | SlotState::Confirmed)
        && status.next_offset == total
    {
        progress(u64::from(total), u64::from(total));
        return Ok(Flashed { status, resumed_at: total, sent: 0, already: true });
    }
    let resumed_at = status.next_offset;
    if resumed_at > 0 {
        tracing::info!(offset = resumed_at, total, "resuming an interrupted flash");
    }
    let mut offset = resumed_at;
    let mut sent = 0u64;
    let mut stuck = 0;
    while offset < total {
        let end = (offset as usize + MAX_CHUNK).min(t.archive.len());
        let chunk = UploadChunk {
            offset,
            data: protocol::heapless::Vec::from_slice(&t.archive[offset as usize..end]).unwrap_or_default(),
        };
        match client.call::<endpoints::UploadChunk>(chunk) {
            Ok(s) => {
                sent += (end - offset as usize) as u64;
                offset = s.next_offset;
                stuck = 0;
            }
            // The device holds another amount (a chunk whose answer was lost, a restart): go on
            // from where it is.
            Err(ClientError::Device { code: ErrorCode::UploadOutOfOrder { expected }, .. }) if stuck < 3 => {
                tracing::debug!(offset, expected, "the device expects another offset");
                stuck += 1;
                offset = expected;
            }
            Err(ClientError::Device { code: ErrorCode::UploadOutOfOrder { expected }, .. }) => {
                return Err(FlashError::Stuck(expected));
            }
            Err(e) => return Err(e.into()),
        }
        progress(u64::from(offset), u64::from(total));
    }
    let status = client.call::<endpoints::UploadCommit>(())?;
    Ok(Flashed { status, resumed_at, sent, already: false })
}
