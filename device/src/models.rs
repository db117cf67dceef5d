//! The model store: two slots for flashed bundles, the upload in progress, and which model
//! serves.
//!
//! ```text
//! models/
//!   store.toml        which slot is confirmed, which is on trial, the anti-rollback floor
//!   slot0/ slot1/     verified, signed bundles (manifest.toml, manifest.sig, model.onnx, ...)
//!   upload/           meta.toml (the announced manifest, signature, size, SHA-256) + data.part
//! ```
//!
//! With no confirmed slot the *factory* model serves: the bundle the device was installed with
//! (`--model`), or the placeholder. A flashed bundle goes to the slot that is not confirmed and
//! serves on **trial**: confirmed by the host (or after `confirm_after` good sessions), reverted
//! by an explicit rollback, a failed self-test at load, or `max_trial_starts` starts of the
//! device without a confirmation (a crash loop).
//!
//! Every change of `store.toml` is atomic (temporary file, fsync, rename, fsync of the folder),
//! and a slot is filled under `slotN.new` and renamed into place only after it verified, so at
//! every instant the store names a model that is whole: the confirmed one (or the factory one)
//! or the one on trial, never neither. [`ModelStore::open`] finishes or undoes whatever a kill
//! interrupted. The upload is resumable: the announced manifest and SHA-256 name it, the part
//! file's length is the next offset expected (mcumgr's SMP image upload), and the whole
//! transfer's SHA-256 is checked at commit.

use std::path::{Path, PathBuf};

use protocol::{ModelSlot, SlotState, UploadBegin, UploadChunk, UploadStatus, truncated};
use runtime::bundle;
use runtime::signing::{self, TrustedKeys};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::storage::{Storage, write_atomic};

/// Starts of the device with a model on trial and no confirmation before it is reverted.
pub const MAX_TRIAL_STARTS: u32 = 3;

/// Free space kept beyond an upload's needs (the result log must still grow).
pub const RESERVE_BYTES: u64 = 16 * 1024 * 1024;

/// Why the store refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A file of the store could not be read or written.
    #[error("model store: {what} {path}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file or folder.
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// `store.toml` is not what the store writes.
    #[error("model store: {path} is damaged")]
    Damaged {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        #[source]
        source: crate::BoxError,
    },
    /// The bundle's signature, manifest, files, schema, encoder or self-test was refused.
    #[error("bundle refused")]
    Rejected(#[source] runtime::ModelError),
    /// The bundle is not newer than the confirmed one.
    #[error(
        "bundle version {version} is not above the confirmed version {confirmed} (anti-rollback; a downgrade needs \
         --allow-downgrade on the host and on the device)"
    )]
    Downgrade {
        /// The bundle's version.
        version: u64,
        /// The confirmed one.
        confirmed: u64,
    },
    /// The transfer is larger than allowed or than the free space.
    #[error("the transfer of {size} bytes does not fit: at most {limit} bytes can be taken now")]
    TooLarge {
        /// Announced size.
        size: u64,
        /// Most the device takes now.
        limit: u64,
    },
    /// No upload in progress (or nothing on trial).
    #[error("{0}")]
    Nothing(&'static str),
    /// A model is on trial: it must be confirmed or rolled back before another upload.
    #[error("model {0} is on trial: confirm it or roll it back before flashing another")]
    TrialPending(String),
    /// A chunk is not at the offset expected.
    #[error("chunk at offset {got}, expected {expected}")]
    OutOfOrder {
        /// The chunk's offset.
        got: u64,
        /// The offset expected.
        expected: u64,
    },
    /// A chunk runs past the announced size, or is empty.
    #[error("chunk at {offset} of {len} bytes does not fit the announced {total} bytes")]
    BadChunk {
        /// Offset.
        offset: u64,
        /// Length.
        len: usize,
        /// Announced size.
        total: u64,
    },
    /// Commit before every byte arrived.
    #[error("upload incomplete: {have} of {total} bytes")]
    Incomplete {
        /// Bytes held.
        have: u64,
        /// Announced size.
        total: u64,
    },
    /// The transfer's SHA-256 is not the announced one: the upload is discarded.
    #[error("the transfer's SHA-256 does not match the one announced: upload discarded, flash again")]
    Checksum,
}

impl crate::Refusal for StoreError {
    fn code(&self) -> protocol::ErrorCode {
        use protocol::ErrorCode as C;
        match self {
            StoreError::Io { .. } | StoreError::Damaged { .. } => C::Storage,
            StoreError::Rejected(runtime::ModelError::Signature(s))
                if !matches!(
                    s,
                    signing::SignatureError::Archive(_) | signing::SignatureError::ArchiveUnreadable { .. }
                ) =>
            {
                C::BadSignature
            }
            StoreError::Rejected(_) => C::BundleRejected,
            StoreError::Downgrade { confirmed, .. } => C::Downgrade { confirmed: *confirmed },
            StoreError::TooLarge { limit, .. } => {
                C::UploadTooLarge { limit: u32::try_from(*limit).unwrap_or(u32::MAX) }
            }
            StoreError::Nothing(_) | StoreError::TrialPending(_) => C::NoUpload,
            StoreError::OutOfOrder { expected, .. } => {
                C::UploadOutOfOrder { expected: u32::try_from(*expected).unwrap_or(u32::MAX) }
            }
            StoreError::BadChunk { .. } | StoreError::Incomplete { .. } => C::BadRequest,
            StoreError::Checksum => C::UploadChecksum,
        }
    }
}

/// What the device allows.
#[derive(Debug, Clone, Default)]
pub struct StorePolicy {
    /// Keys whose bundles the device takes.
    pub trusted: TrustedKeys,
    /// The device allows a bundle at or below the confirmed version when the host asks for it.
    pub allow_downgrade: bool,
    /// Sessions with a result on a trial model after which the device confirms it itself
    /// (0: only the host confirms).
    pub confirm_after: u32,
    /// Whether all-MiniLM-L6-v2 is installed (a bundle trained on it needs it).
    pub minilm_available: bool,
    /// Whether the device transcribes speech itself (a bundle trained on machine transcripts
    /// needs it).
    pub transcribes: bool,
}

/// `store.toml`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Meta {
    /// The confirmed slot; none: the factory model.
    confirmed: Option<u8>,
    /// The slot on trial.
    trial: Option<u8>,
    /// Starts of the device since the trial began.
    trial_starts: u32,
    /// Sessions with a result on the trial model.
    trial_sessions: u32,
    /// The highest version ever confirmed (anti-rollback).
    floor: u64,
}

/// `upload/meta.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct UploadMeta {
    manifest: String,
    signature: String,
    total_size: u64,
    sha256: String,
    slot: u8,
}

/// Which model serves, and from where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Serving {
    /// The factory model.
    Factory,
    /// A confirmed slot.
    Confirmed(PathBuf),
    /// A slot on trial.
    Trial(PathBuf),
}

impl Serving {
    /// The bundle folder (none for the factory model).
    pub fn dir(&self) -> Option<&Path> {
        match self {
            Serving::Factory => None,
            Serving::Confirmed(p) | Serving::Trial(p) => Some(p),
        }
    }
}

/// The two slots, the upload, and which model serves.
#[derive(Debug)]
pub struct ModelStore {
    dir: PathBuf,
    storage: Box<dyn Storage>,
    policy: StorePolicy,
    meta: Meta,
    upload: Option<(UploadMeta, u64)>,
}

fn other(slot: Option<u8>) -> u8 {
    match slot {
        Some(0) => 1,
        _ => 0,
    }
}

impl ModelStore {
    /// Opens (creating) the store in `dir`, finishing or undoing what a kill interrupted: a
    /// half-filled slot is removed, an upload whose metadata is not whole is discarded, a trial
    /// that has started [`MAX_TRIAL_STARTS`] times unconfirmed is reverted. Counts this start
    /// against a trial.
    pub fn open(dir: &Path, policy: StorePolicy, storage: Box<dyn Storage>) -> Result<ModelStore, StoreError> {
        let mut store = ModelStore { dir: dir.to_owned(), storage, policy, meta: Meta::default(), upload: None };
        store.storage.create_dir(dir).map_err(store.io("creating", dir))?;
        let meta_path = dir.join("store.toml");
        store.meta = match std::fs::read_to_string(&meta_path) {
            Ok(text) => {
                toml::from_str(&text).map_err(|e| StoreError::Damaged { path: meta_path.clone(), source: e.into() })?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Meta::default(),
            Err(source) => return Err(StoreError::Io { what: "reading", path: meta_path, source }),
        };
        for slot in [0u8, 1] {
            for leftover in [".new", ".old"] {
                let p = dir.join(format!("slot{slot}{leftover}"));
                if p.exists() {
                    tracing::info!(path = %p.display(), "removing a slot an interrupted install left");
                    store.storage.remove_dir_all(&p).map_err(store.io("removing", &p))?;
                }
            }
        }
        // A slot the metadata relies on must be whole; one that is not (a damaged card) is
        // dropped from the metadata rather than served.
        for slot in [store.meta.confirmed, store.meta.trial].into_iter().flatten() {
            if let Err(e) = store.check_slot(slot) {
                tracing::error!("slot {slot} does not verify and is taken out of service: {}", runtime::chain(&e));
                let mut meta = store.meta.clone();
                if meta.confirmed == Some(slot) {
                    meta.confirmed = None;
                }
                if meta.trial == Some(slot) {
                    meta.trial = None;
                }
                store.save(meta)?;
            }
        }
        store.upload = store.read_upload();
        if store.upload.is_none() && dir.join("upload").exists() {
            let p = dir.join("upload");
            store.storage.remove_dir_all(&p).map_err(store.io("removing", &p))?;
        }
        if let Some(slot) = store.meta.trial {
            let mut meta = store.meta.clone();
            meta.trial_starts += 1;
            if meta.trial_starts > MAX_TRIAL_STARTS {
                tracing::error!(
                    slot,
                    starts = meta.trial_starts - 1,
                    "the model on trial was never confirmed across {MAX_TRIAL_STARTS} starts (a crash loop?): reverting \
                     to the confirmed model"
                );
                meta.trial = None;
                meta.trial_starts = 0;
                meta.trial_sessions = 0;
            }
            store.save(meta)?;
        }
        Ok(store)
    }

    fn io<'a>(&self, what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> StoreError + 'a {
        move |source| StoreError::Io { what, path: path.to_owned(), source }
    }

    fn slot_dir(&self, slot: u8) -> PathBuf {
        self.dir.join(format!("slot{slot}"))
    }

    /// A slot's bundle: signed by a trusted key, every file matching its hash.
    fn check_slot(&self, slot: u8) -> Result<runtime::bundle::Manifest, runtime::ModelError> {
        let dir = self.slot_dir(slot);
        let m = bundle::verify_bundle_signature(&dir, &self.policy.trusted)?;
        runtime::bundle::check_file_hashes(&dir, &m)?;
        Ok(m)
    }

    fn read_upload(&self) -> Option<(UploadMeta, u64)> {
        let dir = self.dir.join("upload");
        let meta: UploadMeta = toml::from_str(&std::fs::read_to_string(dir.join("meta.toml")).ok()?).ok()?;
        let len = std::fs::metadata(dir.join("data.part")).ok()?.len();
        (len <= meta.total_size && meta.slot < 2).then_some((meta, len))
    }

    fn save(&mut self, meta: Meta) -> Result<(), StoreError> {
        let path = self.dir.join("store.toml");
        let text = toml::to_string(&meta).map_err(|e| StoreError::Damaged { path: path.clone(), source: e.into() })?;
        write_atomic(self.storage.as_mut(), &path, text.as_bytes()).map_err(|source| StoreError::Io {
            what: "writing",
            path,
            source,
        })?;
        self.meta = meta;
        Ok(())
    }

    /// The model that serves now.
    pub fn serving(&self) -> Serving {
        match (self.meta.trial, self.meta.confirmed) {
            (Some(t), _) => Serving::Trial(self.slot_dir(t)),
            (None, Some(c)) => Serving::Confirmed(self.slot_dir(c)),
            (None, None) => Serving::Factory,
        }
    }

    /// The confirmed model (the trial's fallback).
    pub fn confirmed(&self) -> Serving {
        self.meta.confirmed.map_or(Serving::Factory, |c| Serving::Confirmed(self.slot_dir(c)))
    }

    /// The anti-rollback floor: the highest version ever confirmed.
    pub fn floor(&self) -> u64 {
        self.meta.floor
    }

    /// The two slots as the protocol lists them.
    pub fn slots(&self) -> protocol::heapless::Vec<ModelSlot, 2> {
        let mut out = protocol::heapless::Vec::new();
        for slot in [0u8, 1] {
            let manifest =
                bundle::parse_manifest(&std::fs::read(self.slot_dir(slot).join(bundle::MANIFEST)).unwrap_or_default())
                    .ok();
            let state = match &manifest {
                None => SlotState::Empty,
                Some(_) if self.meta.trial == Some(slot) => SlotState::Trial,
                Some(_) if self.meta.confirmed == Some(slot) && self.meta.trial.is_none() => SlotState::Active,
                Some(_) if self.meta.confirmed == Some(slot) => SlotState::Confirmed,
                Some(_) => SlotState::Inactive,
            };
            let (model_version, version) = manifest.map_or((String::new(), 0), |m| (m.model_version, m.version));
            let _ = out.push(ModelSlot { slot, state, model_version: truncated(&model_version), version });
        }
        out
    }

    /// Starts or resumes an upload. A begin with the manifest and SHA-256 of the upload in
    /// progress resumes it; any other discards it. The manifest is checked first — signature,
    /// version, schema, encoder, size against the free space — so a refused bundle costs no
    /// write at all.
    pub fn begin(&mut self, b: &UploadBegin) -> Result<UploadStatus, StoreError> {
        let manifest = signing::signature_from_bytes(&b.signature)
            .map_err(runtime::ModelError::from)
            .and_then(|sig| bundle::verify_manifest(&b.manifest, &sig, &self.policy.trusted))
            .map_err(StoreError::Rejected)?;
        let total = u64::from(b.total_size);
        // Flashed already (a flash re-run after a cut at its very end): nothing to transfer.
        for slot in [self.meta.trial, self.meta.confirmed].into_iter().flatten() {
            if std::fs::read(self.slot_dir(slot).join(bundle::MANIFEST)).ok().as_deref() == Some(&b.manifest[..]) {
                return Ok(self.status_of(slot, total, total));
            }
        }
        if let Some(t) = self.meta.trial {
            let name = self.slots().get(usize::from(t)).map(|s| s.model_version.to_string()).unwrap_or_default();
            return Err(StoreError::TrialPending(name));
        }
        let floor = self.meta.floor;
        if manifest.version <= floor && !(b.allow_downgrade && self.policy.allow_downgrade) {
            return Err(StoreError::Downgrade { version: manifest.version, confirmed: floor });
        }
        self.check_compatible(&manifest).map_err(StoreError::Rejected)?;
        let sha = hex::encode(b.sha256);
        if let Some((u, have)) = &self.upload
            && u.manifest.as_bytes() == &b.manifest[..]
            && u.sha256 == sha
            && u.total_size == total
        {
            tracing::info!(offset = have, total, "resuming the upload in progress");
            return Ok(self.status_of(u.slot, *have, total));
        }
        // Room for the transfer and the unpacked slot, beside the reserve.
        let free = self.storage.available(&self.dir).map_err(self.io("measuring free space in", &self.dir))?;
        let held = self.upload.as_ref().map_or(0, |(_, have)| *have);
        let limit = ((free + held).saturating_sub(RESERVE_BYTES) / 2).min(bundle::MAX_TRANSFER);
        if total > limit || total == 0 {
            return Err(StoreError::TooLarge { size: total, limit });
        }
        let dir = self.dir.join("upload");
        self.upload = None;
        self.storage.remove_dir_all(&dir).map_err(self.io("removing", &dir))?;
        self.storage.create_dir(&dir).map_err(self.io("creating", &dir))?;
        let part = dir.join("data.part");
        self.storage.write(&part, &[]).map_err(self.io("creating", &part))?;
        self.storage.sync(&part).map_err(self.io("syncing", &part))?;
        let manifest_text =
            String::from_utf8(b.manifest.to_vec()).map_err(|_| StoreError::Nothing("the manifest is not UTF-8"))?;
        let meta = UploadMeta {
            manifest: manifest_text,
            signature: hex::encode(&b.signature),
            total_size: total,
            sha256: sha,
            slot: other(self.meta.confirmed),
        };
        let path = dir.join("meta.toml");
        let text = toml::to_string(&meta).map_err(|e| StoreError::Damaged { path: path.clone(), source: e.into() })?;
        write_atomic(self.storage.as_mut(), &path, text.as_bytes()).map_err(self.io("writing", &path))?;
        tracing::info!(model = %manifest.model_version, version = manifest.version, bytes = total, slot = meta.slot, "upload begun");
        let slot = meta.slot;
        self.upload = Some((meta, 0));
        Ok(self.status_of(slot, 0, total))
    }

    /// Schema, text encoder and transcripts: can this device compute the features the bundle
    /// was trained on?
    fn check_compatible(&self, m: &runtime::bundle::Manifest) -> Result<(), runtime::ModelError> {
        use features::text::{TextEmbedding, TranscriptSource};
        let schema = runtime::onnx::parse_schema(&m.feature_schema)?;
        let Some(features::text::TextSetup { embedding, transcripts }) = features::schema::schema_of(schema) else {
            return Err(runtime::ModelError::SchemaMismatch {
                expected: schema,
                actual: features::schema::schema_hash(),
            });
        };
        let missing = |detail: &str| runtime::ModelError::Manifest { field: "feature_schema", detail: detail.into() };
        if embedding == TextEmbedding::MiniLm && !self.policy.minilm_available {
            return Err(missing("the bundle needs the all-MiniLM-L6-v2 text encoder, which this device does not have"));
        }
        if transcripts == TranscriptSource::Asr && !self.policy.transcribes {
            return Err(missing(
                "the bundle was trained on machine transcripts (asr); this device does not transcribe (run with --asr)",
            ));
        }
        Ok(())
    }

    fn status_of(&self, slot: u8, next: u64, total: u64) -> UploadStatus {
        let slot = self.slots().get(usize::from(slot)).cloned().unwrap_or(ModelSlot {
            slot,
            state: SlotState::Empty,
            model_version: protocol::ShortStr::new(),
            version: 0,
        });
        let state = if self.upload.is_some() && next < total { SlotState::Staged } else { slot.state };
        UploadStatus {
            next_offset: u32::try_from(next).unwrap_or(u32::MAX),
            total_size: u32::try_from(total).unwrap_or(u32::MAX),
            slot: ModelSlot { state, ..slot },
        }
    }

    /// Where the upload stands.
    pub fn status(&self) -> Result<UploadStatus, StoreError> {
        match &self.upload {
            Some((u, have)) => Ok(self.status_of(u.slot, *have, u.total_size)),
            None => match self.meta.trial {
                Some(t) => Ok(self.status_of(t, 0, 0)),
                None => Err(StoreError::Nothing("no upload in progress")),
            },
        }
    }

    /// Writes one chunk at the offset expected, synced before it is acknowledged.
    pub fn chunk(&mut self, c: &UploadChunk) -> Result<UploadStatus, StoreError> {
        let Some((u, have)) = &self.upload else {
            return Err(StoreError::Nothing("no upload in progress: begin one first"));
        };
        let (slot, have, total) = (u.slot, *have, u.total_size);
        let offset = u64::from(c.offset);
        if offset != have {
            return Err(StoreError::OutOfOrder { got: offset, expected: have });
        }
        if c.data.is_empty() || offset + c.data.len() as u64 > total {
            return Err(StoreError::BadChunk { offset, len: c.data.len(), total });
        }
        let part = self.dir.join("upload/data.part");
        let written = self
            .storage
            .write_at(&part, offset, &c.data)
            .and_then(|()| self.storage.sync(&part))
            .map_err(self.io("writing", &part));
        if let Err(e) = written {
            // What is on disk is the truth now: resume from its length.
            if let Some((_, have)) = &mut self.upload {
                *have = std::fs::metadata(&part).map_or(offset, |m| m.len()).min(total);
            }
            return Err(e);
        }
        let next = offset + c.data.len() as u64;
        if let Some((_, have)) = &mut self.upload {
            *have = next;
        }
        Ok(self.status_of(slot, next, total))
    }

    /// Checks the whole transfer (SHA-256, archive, signature, hashes) and installs it into its
    /// slot with `verify` (the golden self-test and whatever loading the model needs), then puts
    /// it on trial. Returns what `verify` made (the loaded model) with the status.
    pub fn commit<T>(
        &mut self,
        verify: impl FnOnce(&Path) -> Result<T, runtime::ModelError>,
    ) -> Result<(UploadStatus, T), StoreError> {
        let Some((u, have)) = self.upload.clone() else {
            return Err(StoreError::Nothing("no upload in progress"));
        };
        if have != u.total_size {
            return Err(StoreError::Incomplete { have, total: u.total_size });
        }
        let dir = self.dir.join("upload");
        let part = dir.join("data.part");
        let data = std::fs::read(&part).map_err(self.io("reading", &part))?;
        if hex::encode(Sha256::digest(&data)) != u.sha256 {
            self.discard_upload()?;
            return Err(StoreError::Checksum);
        }
        let files = match bundle::unpack(&data, u.manifest.as_bytes()) {
            Ok(f) => f,
            Err(e) => {
                self.discard_upload()?;
                return Err(StoreError::Rejected(e));
            }
        };
        let (slot, staged, target) = (u.slot, self.dir.join(format!("slot{}.new", u.slot)), self.slot_dir(u.slot));
        self.storage.remove_dir_all(&staged).map_err(self.io("removing", &staged))?;
        self.storage.create_dir(&staged).map_err(self.io("creating", &staged))?;
        for (name, bytes) in &files {
            let path = staged.join(name);
            self.storage.write(&path, bytes).map_err(self.io("writing", &path))?;
            self.storage.sync(&path).map_err(self.io("syncing", &path))?;
        }
        self.storage.sync(&staged).map_err(self.io("syncing", &staged))?;
        let checked = bundle::verify_bundle_signature(&staged, &self.policy.trusted).and_then(|_| verify(&staged));
        let loaded = match checked {
            Ok(t) => t,
            Err(e) => {
                self.storage.remove_dir_all(&staged).map_err(self.io("removing", &staged))?;
                self.discard_upload()?;
                return Err(StoreError::Rejected(e));
            }
        };
        let old = self.dir.join(format!("slot{slot}.old"));
        if target.exists() {
            self.storage.rename(&target, &old).map_err(self.io("renaming", &target))?;
        }
        self.storage.rename(&staged, &target).map_err(self.io("renaming", &staged))?;
        self.storage.sync(&self.dir).map_err(self.io("syncing", &self.dir))?;
        let mut meta = self.meta.clone();
        meta.trial = Some(slot);
        meta.trial_starts = 0;
        meta.trial_sessions = 0;
        self.save(meta)?;
        self.storage.remove_dir_all(&old).map_err(self.io("removing", &old))?;
        self.discard_upload()?;
        tracing::info!(slot, "bundle installed and on trial");
        Ok((self.status_of(slot, u.total_size, u.total_size), loaded))
    }

    fn discard_upload(&mut self) -> Result<(), StoreError> {
        let dir = self.dir.join("upload");
        self.upload = None;
        self.storage.remove_dir_all(&dir).map_err(self.io("removing", &dir))
    }

    /// Keeps the model on trial: it becomes the confirmed one and raises the anti-rollback floor.
    pub fn confirm(&mut self) -> Result<UploadStatus, StoreError> {
        let Some(slot) = self.meta.trial else {
            return Err(StoreError::Nothing("no model is on trial"));
        };
        let version = self.check_slot(slot).map_err(StoreError::Rejected)?.version;
        let meta = Meta {
            confirmed: Some(slot),
            trial: None,
            trial_starts: 0,
            trial_sessions: 0,
            floor: self.meta.floor.max(version),
        };
        self.save(meta)?;
        tracing::info!(slot, version, "model confirmed");
        Ok(self.status_of(slot, 0, 0))
    }

    /// Ends the trial: the confirmed model (or the factory one) serves again.
    pub fn rollback(&mut self, why: &str) -> Result<UploadStatus, StoreError> {
        let Some(slot) = self.meta.trial else {
            return Err(StoreError::Nothing("no model is on trial"));
        };
        let meta = Meta { trial: None, trial_starts: 0, trial_sessions: 0, ..self.meta.clone() };
        self.save(meta)?;
        tracing::warn!(slot, "model on trial rolled back: {why}");
        Ok(self.status_of(slot, 0, 0))
    }

    /// A session on the trial model gave a result; after `confirm_after` of them the device
    /// confirms it. Returns whether it did.
    pub fn session_ok(&mut self) -> Result<bool, StoreError> {
        if self.meta.trial.is_none() {
            return Ok(false);
        }
        let mut meta = self.meta.clone();
        meta.trial_sessions += 1;
        let confirm = self.policy.confirm_after > 0 && meta.trial_sessions >= self.policy.confirm_after;
        self.save(meta)?;
        if confirm {
            self.confirm()?;
        }
        Ok(confirm)
    }
}
