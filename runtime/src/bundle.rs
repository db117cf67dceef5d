//! The model bundle: the format a trained model travels and is installed in, and every check
//! made on it before a session can use it. [`crate::onnx`] runs the graph; this module owns
//! everything around it.
//!
//! A bundle is a folder:
//!
//! * `manifest.toml`: the bundle [`FORMAT`], model version, feature-schema hash, quantisation,
//!   creation time, segments kept per modality, decision threshold, what the model was trained
//!   on, and the SHA-256 of every other file;
//! * `model.onnx`: the graph of `train::mimml::export` (inputs `audio`, `video`, `text`,
//!   `present`; outputs `p_depressed`, `phq8`, `gates`);
//! * `golden.json`: one input with its expected output, for the device's self-test, pinning
//!   the manifest fields that change what a result says;
//! * `manifest.sig` (a signed bundle): the ed25519 signature over the manifest's bytes. The
//!   manifest hashes every other file, so the signature covers the whole bundle; it names the
//!   signing key (`key_id`) and a monotonic `version` a device refuses to go below.
//!
//! Compatibility follows RAUC's rule: a manifest states its `format`, and a reader refuses a
//! format newer than the one it knows and any field it does not know (`deny_unknown_fields`),
//! so an old device never silently ignores what a newer bundle needs. A bundle whose format
//! changes what an old reader must do gets a new [`FORMAT`]; the reader accepts every older one.
//!
//! [`Bundle::open`] checks, in this order, before any session can run: the manifest's fields,
//! every file's hash, the feature schema against this build's front-ends, the ONNX inputs
//! against the front-ends' feature widths, and the golden output. Anything off is a
//! [`ModelError`], never a panic. Between devices a bundle travels as a ustar archive
//! ([`pack`], [`unpack`]) with its manifest announced first.

use std::io::Read;
use std::path::{Path, PathBuf};

use ed25519_dalek::{Signer, SigningKey, Verifier};
use features::{Sequence, SessionFeatures};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::onnx::{OnnxModel, Precision, parse_schema};
use crate::signing::{SignatureError, TrustedKeys, key_id, parse_signature};
use crate::{Model, ModelError, Prediction};

/// The bundle format this software writes and the newest it reads.
pub const FORMAT: u32 = 1;

fn first_format() -> u32 {
    1
}

/// The decision threshold of a manifest that states none.
fn half() -> f32 {
    0.5
}

/// The manifest's file name in a bundle.
pub const MANIFEST: &str = "manifest.toml";
/// The signature's file name in a bundle.
pub const SIGNATURE: &str = "manifest.sig";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// The bundle format the manifest is written in ([`FORMAT`]); absent = 1, the format of
    /// every bundle made before the field existed. A newer one is refused, never half-read.
    #[serde(default = "first_format")]
    pub format: u32,
    pub model_version: String,
    /// Monotonic bundle version: a device refuses a bundle at or below the one it has confirmed
    /// (anti-rollback). 0 = never signed.
    #[serde(default)]
    pub version: u64,
    /// Id of the key that signed the manifest ([`crate::signing::key_id`]); absent = unsigned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    /// Hex feature-schema hash the model was trained on.
    pub feature_schema: String,
    /// "f32", "f16" or "int8".
    pub quantization: String,
    /// Unix seconds.
    pub created: u64,
    pub max_segments: usize,
    /// `p_depressed` at or above this is a positive screen (tuned on the dev split).
    #[serde(default = "half")]
    pub decision_threshold: f32,
    /// What the model was trained on, in words a clinician reads on every report (e.g.
    /// "synthetic interviews (no real patients)"); absent = not stated, and reports say so.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trained_on: Option<String>,
    /// File name → hex SHA-256.
    pub files: std::collections::BTreeMap<String, String>,
}

/// One input with its expected output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Golden {
    /// Rows per modality (audio, video, text), raw features; empty = absent.
    pub inputs: [Vec<Vec<f32>>; 3],
    pub p_depressed: f32,
    pub phq8: f32,
    pub gates: [f32; 3],
    /// The manifest fields the bundle was made with ([`Bundle::write`] fills them in). The
    /// golden file is hashed in the manifest, so editing one of these in the manifest alone is
    /// caught; the signature of the signing step then covers both.
    #[serde(default)]
    pub pinned: Option<Pinned>,
}

/// Manifest fields that change what a result says, as the bundle was made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pinned {
    pub model_version: String,
    pub feature_schema: String,
    pub max_segments: usize,
    pub decision_threshold: f32,
}

/// Files a bundle must list (and so hash) in its manifest.
pub const REQUIRED_FILES: [&str; 2] = ["model.onnx", "golden.json"];

/// Largest file a bundle may hold (the ONNX graph of a MIMML model is a few MB).
pub const MAX_BUNDLE_FILE: u64 = 512 * 1024 * 1024;

/// Most segments per modality a manifest may ask for (the exporter uses 32).
pub const MAX_SEGMENTS: usize = 4096;

impl Manifest {
    /// Every field within what a bundle may say: plain file names inside the bundle, the
    /// required files listed, numbers in range, a version made of plain characters.
    pub fn check(&self) -> Result<(), ModelError> {
        let bad = |field, detail: String| Err(ModelError::Manifest { field, detail });
        if self.format == 0 || self.format > FORMAT {
            return bad(
                "format",
                format!(
                    "bundle format {} is not one this software reads (1 to {FORMAT}): update it before \
                     installing this bundle",
                    self.format
                ),
            );
        }
        let version_ok = |c: char| c.is_ascii_alphanumeric() || "._+-".contains(c);
        if self.model_version.is_empty() || self.model_version.len() > 32 || !self.model_version.chars().all(version_ok)
        {
            return bad("model_version", format!("{:?} is not 1-32 letters, digits or . _ + -", self.model_version));
        }
        if !(1..=MAX_SEGMENTS).contains(&self.max_segments) {
            return bad("max_segments", format!("{} is not within 1..={MAX_SEGMENTS}", self.max_segments));
        }
        if !(self.decision_threshold > 0.0 && self.decision_threshold < 1.0) {
            return Err(ModelError::Threshold(self.decision_threshold));
        }
        if let Some(id) = &self.key_id
            && (id.len() != 16 || !id.bytes().all(|b| b.is_ascii_hexdigit()))
        {
            return bad("key_id", format!("{:?} is not 16 hex digits", protocol::Escaped(id)));
        }
        for required in REQUIRED_FILES {
            if !self.files.contains_key(required) {
                return bad("files", format!("{required} is not listed with its SHA-256"));
            }
        }
        for (name, hash) in &self.files {
            let mut parts = Path::new(name).components();
            let plain = matches!((parts.next(), parts.next()), (Some(std::path::Component::Normal(_)), None))
                && !name.starts_with('.')
                && name.len() <= 64
                && name.chars().all(|c| c.is_ascii_graphic());
            if !plain {
                return bad("files", format!("{name:?} is not a plain file name inside the bundle"));
            }
            if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
                return bad("files", format!("the SHA-256 of {name} is not 64 hex digits"));
            }
        }
        Ok(())
    }

    /// The fields the golden example pins.
    fn pinned(&self) -> Pinned {
        Pinned {
            model_version: self.model_version.clone(),
            feature_schema: self.feature_schema.clone(),
            max_segments: self.max_segments,
            decision_threshold: self.decision_threshold,
        }
    }
}

/// Checks every file the manifest lists against its SHA-256.
pub fn check_file_hashes(dir: &Path, manifest: &Manifest) -> Result<(), ModelError> {
    for (name, want) in &manifest.files {
        let got = sha256_hex(&read_bundle_file(dir, name)?);
        if !got.eq_ignore_ascii_case(want) {
            return Err(ModelError::HashMismatch { file: name.clone(), got, want: want.clone() });
        }
    }
    Ok(())
}

/// Reads a bundle file: a regular file (not a link, device or folder) of bounded size.
pub(crate) fn read_bundle_file(dir: &Path, name: &str) -> Result<Vec<u8>, ModelError> {
    use std::io::Read;
    let path = dir.join(name);
    let io = |source| ModelError::Io { path: path.clone(), source };
    let meta = std::fs::symlink_metadata(&path).map_err(io)?;
    if !meta.is_file() {
        return Err(ModelError::Manifest { field: "files", detail: format!("{name} is not a regular file") });
    }
    let mut bytes = Vec::new();
    std::fs::File::open(&path).and_then(|f| f.take(MAX_BUNDLE_FILE + 1).read_to_end(&mut bytes)).map_err(io)?;
    if bytes.len() as u64 > MAX_BUNDLE_FILE {
        return Err(ModelError::Manifest {
            field: "files",
            detail: format!("{name} is larger than {MAX_BUNDLE_FILE} bytes"),
        });
    }
    Ok(bytes)
}

impl Golden {
    /// `model`'s output on these inputs.
    pub fn predict_with(&self, model: &OnnxModel) -> Result<Prediction, ModelError> {
        let rows: Vec<Vec<&[f32]>> = self.inputs.iter().map(|r| r.iter().map(Vec::as_slice).collect()).collect();
        model.run([&rows[0], &rows[1], &rows[2]])
    }

    /// `f` as `model` sees it (at most its `max_segments` rows per modality) with `model`'s
    /// output: the self-test example of a bundle.
    pub fn of(model: &OnnxModel, f: &SessionFeatures) -> Result<Golden, ModelError> {
        let p = model.predict(f)?;
        let rows = |s: &Option<Sequence>| -> Vec<Vec<f32>> {
            s.as_ref()
                .map(|q| q.select_evenly(model.max_segments).into_iter().map(<[f32]>::to_vec).collect())
                .unwrap_or_default()
        };
        Ok(Golden {
            inputs: [rows(&f.audio), rows(&f.video), rows(&f.text)],
            p_depressed: p.p_depressed,
            phq8: p.phq8,
            gates: p.gates,
            pinned: None,
        })
    }
}

/// Parses manifest bytes (UTF-8 TOML) and checks their fields.
pub fn parse_manifest(bytes: &[u8]) -> Result<Manifest, ModelError> {
    let manifest: Manifest = std::str::from_utf8(bytes)
        .map_err(crate::BoxError::from)
        .and_then(|text| toml::from_str(text).map_err(crate::BoxError::from))
        .map_err(|source| ModelError::Parse { file: MANIFEST, source })?;
    manifest.check()?;
    Ok(manifest)
}

/// Checks `signature` over `manifest` (bytes as signed) with the trusted key the manifest
/// names; returns the parsed manifest.
pub fn verify_manifest(
    manifest: &[u8],
    signature: &ed25519_dalek::Signature,
    trusted: &TrustedKeys,
) -> Result<Manifest, ModelError> {
    let parsed = parse_manifest(manifest)?;
    let id = parsed.key_id.clone().ok_or_else(|| SignatureError::Unsigned("the manifest names no key_id".into()))?;
    let key = trusted.by_id(&id).ok_or_else(|| SignatureError::UnknownKey(id.clone()))?;
    key.verify(manifest, signature).map_err(|_| SignatureError::Forged(id))?;
    Ok(parsed)
}

/// Checks the signature of the bundle in `dir` (manifest and `manifest.sig`); the files' hashes
/// are checked by [`Bundle::open`].
pub fn verify_bundle_signature(dir: &Path, trusted: &TrustedKeys) -> Result<Manifest, ModelError> {
    let manifest = read_bundle_file(dir, MANIFEST)?;
    let sig = match read_bundle_file(dir, SIGNATURE) {
        Ok(bytes) => parse_signature(&String::from_utf8_lossy(&bytes))?,
        Err(ModelError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            return Err(SignatureError::Unsigned(format!("no {SIGNATURE}")).into());
        }
        Err(e) => return Err(e),
    };
    verify_manifest(&manifest, &sig, trusted)
}

/// Signs the bundle in `dir` with `key`: sets the manifest's `key_id` and, when given, its
/// `version`, rewrites `manifest.toml` and writes `manifest.sig`. The bundle's files must match
/// their hashes first: a signature never vouches for a damaged bundle.
pub fn sign_bundle(dir: &Path, key: &SigningKey, version: Option<u64>) -> Result<Manifest, ModelError> {
    let mut manifest = parse_manifest(&read_bundle_file(dir, MANIFEST)?)?;
    check_file_hashes(dir, &manifest)?;
    if let Some(v) = version {
        manifest.version = v;
    }
    if manifest.version == 0 {
        return Err(ModelError::Manifest {
            field: "version",
            detail: "a signed bundle needs a version of 1 or more (--version)".into(),
        });
    }
    manifest.key_id = Some(key_id(&key.verifying_key()));
    let text = toml::to_string(&manifest).map_err(|e| ModelError::Parse { file: MANIFEST, source: e.into() })?;
    let sig = key.sign(text.as_bytes());
    write_replacing(&dir.join(MANIFEST), text.as_bytes())?;
    write_replacing(&dir.join(SIGNATURE), format!("{}\n", hex::encode(sig.to_bytes())).as_bytes())?;
    Ok(manifest)
}

/// Writes `path` through a temporary file and a rename, so a reader sees the old or the new
/// content, never a mix.
fn write_replacing(path: &Path, bytes: &[u8]) -> Result<(), ModelError> {
    let tmp = path.with_extension("tmp");
    let io = |source| ModelError::Io { path: path.to_owned(), source };
    std::fs::write(&tmp, bytes).and_then(|()| std::fs::rename(&tmp, path)).map_err(io)
}

/// Most bytes an upload may carry (the bundle's files, the manifest and the archive's headers).
pub const MAX_TRANSFER: u64 = 512 * 1024 * 1024;

/// The transfer archive of the bundle in `dir`: a ustar archive of `manifest.toml`,
/// `manifest.sig` and every file the manifest lists, in that order. Returns the archive and the
/// manifest's bytes.
pub fn pack(dir: &Path) -> Result<(Vec<u8>, Vec<u8>), ModelError> {
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
            .map_err(|source| ModelError::Io { path: dir.join(name), source })?;
    }
    let bytes = archive.into_inner().map_err(|source| ModelError::Io { path: dir.to_owned(), source })?;
    Ok((bytes, manifest_bytes))
}

/// The files of a transfer archive, checked against `manifest` (the bytes the upload began
/// with): the archive's `manifest.toml` is those bytes, it holds `manifest.sig` and exactly the
/// files the manifest lists, each a regular file under a plain name, once, with its hash.
pub fn unpack(archive: &[u8], manifest: &[u8]) -> Result<Vec<(String, Vec<u8>)>, ModelError> {
    let bad = |detail: String| ModelError::from(SignatureError::Archive(detail));
    let listed = parse_manifest(manifest)?;
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    let mut reader = tar::Archive::new(archive);
    let unreadable = |what: &str| {
        let what = what.to_owned();
        move |source| ModelError::from(SignatureError::ArchiveUnreadable { what, source })
    };
    let entries = reader.entries().map_err(unreadable("the archive"))?;
    for entry in entries {
        let mut entry = entry.map_err(unreadable("an entry"))?;
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
        let size = entry.header().size().map_err(unreadable(&format!("{name}'s size")))?;
        if size > MAX_BUNDLE_FILE {
            return Err(bad(format!("{name} is larger than a bundle file may be")));
        }
        let mut bytes = Vec::with_capacity(size as usize);
        entry.read_to_end(&mut bytes).map_err(unreadable(&name))?;
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
            return Err(ModelError::HashMismatch { file: name.clone(), got, want: want.clone() });
        }
    }
    Ok(files)
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// What [`Bundle::write`] makes a bundle of.
#[derive(Debug, Clone, Copy)]
pub struct BundleSpec<'a> {
    /// The ONNX graph's bytes.
    pub onnx: &'a [u8],
    /// The model loaded from them: its version, feature schema and segment count go into the
    /// manifest.
    pub model: &'a OnnxModel,
    /// The self-test example (its pinned fields are filled in).
    pub golden: &'a Golden,
    /// `p_depressed` at or above this is a positive screen.
    pub decision_threshold: f32,
    /// "f32", "f16" or "int8".
    pub quantization: &'a str,
    /// What the model was trained on, in a clinician's words.
    pub trained_on: Option<&'a str>,
}

/// A verified bundle, ready to serve.
#[derive(Debug)]
pub struct Bundle {
    pub dir: PathBuf,
    pub manifest: Manifest,
    pub model: OnnxModel,
    /// The self-test example the model reproduced.
    pub golden: Golden,
}

impl Bundle {
    /// Writes a bundle folder at `dir` from `spec`, in the current [`FORMAT`].
    pub fn write(dir: &Path, spec: &BundleSpec<'_>) -> Result<Manifest, ModelError> {
        let BundleSpec { onnx, model, golden, decision_threshold, quantization, trained_on } = *spec;
        let io = |path: PathBuf| move |source| ModelError::Io { path, source };
        std::fs::create_dir_all(dir).map_err(io(dir.to_owned()))?;
        let pinned = Pinned {
            model_version: model.version.clone(),
            feature_schema: model.schema.to_string(),
            max_segments: model.max_segments,
            decision_threshold,
        };
        let golden = Golden { pinned: Some(pinned), ..golden.clone() };
        let golden_json = serde_json::to_vec_pretty(&golden)
            .map_err(|e| ModelError::Parse { file: "golden.json", source: e.into() })?;
        std::fs::write(dir.join("model.onnx"), onnx).map_err(io(dir.join("model.onnx")))?;
        std::fs::write(dir.join("golden.json"), &golden_json).map_err(io(dir.join("golden.json")))?;
        let manifest = Manifest {
            format: FORMAT,
            model_version: model.version.clone(),
            version: 0,
            key_id: None,
            feature_schema: model.schema.to_string(),
            quantization: quantization.into(),
            created: std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs()),
            max_segments: model.max_segments,
            decision_threshold,
            trained_on: trained_on.map(str::to_owned),
            files: [("model.onnx".to_owned(), sha256_hex(onnx)), ("golden.json".to_owned(), sha256_hex(&golden_json))]
                .into(),
        };
        let text =
            toml::to_string(&manifest).map_err(|e| ModelError::Parse { file: "manifest.toml", source: e.into() })?;
        std::fs::write(dir.join("manifest.toml"), text).map_err(io(dir.join("manifest.toml")))?;
        Ok(manifest)
    }

    /// [`write`](Self::write)s a bundle to `dir` without putting a working one at risk: into a
    /// sibling folder first, verified by [`open`](Self::open), then swapped in. On any error
    /// whatever was at `dir` is left as it was.
    pub fn install(dir: &Path, spec: &BundleSpec<'_>) -> Result<Manifest, ModelError> {
        let sibling = |ext: &str| {
            let mut name = dir.file_name().unwrap_or_default().to_os_string();
            name.push(ext);
            dir.with_file_name(name)
        };
        let (staging, previous) = (sibling(".new"), sibling(".old"));
        let io = |what: &Path, source| ModelError::Io { path: what.to_owned(), source };
        for leftover in [&staging, &previous] {
            if leftover.exists() {
                std::fs::remove_dir_all(leftover).map_err(|e| io(leftover, e))?;
            }
        }
        let staged = Self::write(&staging, spec).and_then(|m| Self::open(&staging).map(|_| m));
        let manifest = match staged {
            Ok(m) => m,
            Err(e) => {
                // Best effort: the error to report is the one above.
                let _ = std::fs::remove_dir_all(&staging);
                return Err(e);
            }
        };
        if dir.exists() {
            std::fs::rename(dir, &previous).map_err(|e| io(dir, e))?;
        }
        std::fs::rename(&staging, dir).map_err(|e| io(dir, e))?;
        if previous.exists() {
            std::fs::remove_dir_all(&previous).map_err(|e| io(&previous, e))?;
        }
        Ok(manifest)
    }

    /// Puts `onnx` (loaded as `model`) in place of the model of the bundle at `dir`, keeping the
    /// bundle's golden inputs (their expected outputs computed anew) and decision threshold:
    /// how a shipped model is re-exported after an exporter change, without its corpus. The
    /// bundle at `dir` must verify; it is replaced as [`install`](Self::install) does.
    pub fn replace_model(
        dir: &Path,
        onnx: &[u8],
        model: &OnnxModel,
        quantization: &str,
    ) -> Result<Manifest, ModelError> {
        let old = Self::open(dir)?;
        let p = old.golden.predict_with(model)?;
        let golden = Golden { p_depressed: p.p_depressed, phq8: p.phq8, gates: p.gates, ..old.golden };
        Self::install(
            dir,
            &BundleSpec {
                onnx,
                model,
                golden: &golden,
                decision_threshold: old.manifest.decision_threshold,
                quantization,
                trained_on: old.manifest.trained_on.as_deref(),
            },
        )
    }

    /// Opens and verifies a bundle: hashes, schema, inputs, golden self-test (|Δ| ≤ 1e-4).
    pub fn open(dir: &Path) -> Result<Bundle, ModelError> {
        Self::open_with(dir, Precision::Auto)
    }

    /// [`open`](Self::open) with a choice of arithmetic.
    pub fn open_with(dir: &Path, precision: Precision) -> Result<Bundle, ModelError> {
        let read = |name: &str| read_bundle_file(dir, name);
        let manifest = parse_manifest(&read("manifest.toml")?)?;
        check_file_hashes(dir, &manifest)?;
        if !["f32", "f16", "int8"].contains(&manifest.quantization.as_str()) {
            return Err(ModelError::Quantization(manifest.quantization.clone()));
        }
        let schema = parse_schema(&manifest.feature_schema)?;
        let golden: Golden = serde_json::from_slice(&read("golden.json")?)
            .map_err(|e| ModelError::Parse { file: "golden.json", source: e.into() })?;
        let Some(pinned) = &golden.pinned else {
            return Err(ModelError::Manifest {
                field: "files",
                detail: "golden.json does not pin the manifest's version, schema, segments and threshold \
                         (re-export the bundle)"
                    .into(),
            });
        };
        let ours = manifest.pinned();
        let differs = |field, a: String, b: String| {
            if a == b { Ok(()) } else { Err(ModelError::Pinned { field, manifest: a, golden: b }) }
        };
        differs("model_version", ours.model_version, pinned.model_version.clone())?;
        differs("feature_schema", ours.feature_schema, pinned.feature_schema.clone())?;
        differs("max_segments", ours.max_segments.to_string(), pinned.max_segments.to_string())?;
        differs("decision_threshold", ours.decision_threshold.to_string(), pinned.decision_threshold.to_string())?;
        let model = OnnxModel::from_bytes_with(
            &read("model.onnx")?,
            &manifest.model_version,
            schema,
            manifest.max_segments,
            precision,
        )?
        .with_threshold(manifest.decision_threshold);
        let got = golden.predict_with(&model)?;
        // The golden output was computed in f32: an f32 plan must match it to 1e-4; an f16 plan
        // to the f16 parity bound, 0.01 (PHQ-8 on its 0-24 scale divided by 24).
        let (tolerance, phq_scale) = if model.is_half() { (0.01, 24.0) } else { (1e-4, 1.0) };
        let worst = [got.p_depressed - golden.p_depressed, (got.phq8 - golden.phq8) / phq_scale]
            .into_iter()
            .chain(got.gates.iter().zip(&golden.gates).map(|(a, b)| a - b))
            .map(f32::abs)
            .fold(0.0, f32::max);
        if worst > tolerance {
            return Err(ModelError::SelfTest { worst, tolerance });
        }
        Ok(Bundle { dir: dir.to_owned(), manifest, model, golden })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signing::generate;

    fn committed() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../assets/model/mimml-synth")
    }

    fn committed_copy() -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tempdir");
        for f in ["manifest.toml", "model.onnx", "golden.json"] {
            std::fs::copy(committed().join(f), dir.path().join(f)).expect("copy");
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
            Err(ModelError::Signature(SignatureError::UnknownKey(_)))
        ));
        // The manifest edited after signing (version raised by hand).
        let path = dir.path().join(MANIFEST);
        let text = std::fs::read_to_string(&path).expect("read");
        std::fs::write(&path, text.replace("version = 7", "version = 8")).expect("write");
        assert!(matches!(
            verify_bundle_signature(dir.path(), &trusted),
            Err(ModelError::Signature(SignatureError::Forged(_)))
        ));
        std::fs::write(&path, &text).expect("write");
        // A signature by an untrusted key under the trusted key's id.
        let forged = other.sign(text.as_bytes());
        std::fs::write(dir.path().join(SIGNATURE), hex::encode(forged.to_bytes())).expect("write");
        assert!(matches!(
            verify_bundle_signature(dir.path(), &trusted),
            Err(ModelError::Signature(SignatureError::Forged(_)))
        ));
        std::fs::write(dir.path().join(SIGNATURE), "zz").expect("write");
        assert!(matches!(
            verify_bundle_signature(dir.path(), &trusted),
            Err(ModelError::Signature(SignatureError::Malformed))
        ));
        std::fs::remove_file(dir.path().join(SIGNATURE)).expect("rm");
        assert!(matches!(
            verify_bundle_signature(dir.path(), &trusted),
            Err(ModelError::Signature(SignatureError::Unsigned(_)))
        ));
    }

    #[test]
    fn signing_refuses_a_damaged_bundle_and_a_versionless_one() {
        let dir = committed_copy();
        let key = generate().expect("key");
        std::fs::write(dir.path().join("golden.json"), b"{}").expect("write");
        assert!(matches!(sign_bundle(dir.path(), &key, Some(1)), Err(ModelError::HashMismatch { .. })));
        let dir = committed_copy();
        let manifest = parse_manifest(&std::fs::read(dir.path().join(MANIFEST)).expect("read")).expect("parses");
        if manifest.version == 0 {
            assert!(matches!(sign_bundle(dir.path(), &key, None), Err(ModelError::Manifest { .. })));
        }
        assert!(sign_bundle(dir.path(), &key, Some(1)).is_ok());
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

    /// A manifest whose schema is 16 bytes but not 16 hex digits (8 two-byte characters) is a
    /// clear error, not a panic of the daemon at start.
    #[test]
    fn a_non_ascii_feature_schema_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().expect("tempdir");
        for f in ["manifest.toml", "model.onnx", "golden.json"] {
            std::fs::copy(committed().join(f), dir.path().join(f)).expect("copy");
        }
        let manifest = std::fs::read_to_string(dir.path().join("manifest.toml")).expect("manifest");
        let schema = features::schema::schema_hash().to_string();
        assert!(manifest.contains(&schema), "{manifest}");
        let bad = "é".repeat(8);
        assert_eq!(bad.len(), 16);
        let line = format!("feature_schema = \"{schema}\"");
        let edited = manifest.replace(&line, &format!("feature_schema = \"{bad}\""));
        std::fs::write(dir.path().join("manifest.toml"), edited).expect("write");
        let e = Bundle::open(dir.path()).expect_err("refused").to_string();
        assert!(e.contains("feature schema") && e.contains("16 hex digits"), "{e}");
        assert!(parse_schema("0123456789ABCDEF").is_ok() && parse_schema("0123456789abcdeg").is_err());
    }

    /// The committed bundle copied to a temporary folder with its manifest edited by `edit`.
    fn tampered(edit: impl Fn(&str) -> String) -> (tempfile::TempDir, Result<Bundle, ModelError>) {
        let dir = tempfile::tempdir().expect("tempdir");
        for f in ["manifest.toml", "model.onnx", "golden.json"] {
            std::fs::copy(committed().join(f), dir.path().join(f)).expect("copy");
        }
        let text = std::fs::read_to_string(dir.path().join("manifest.toml")).expect("read");
        std::fs::write(dir.path().join("manifest.toml"), edit(&text)).expect("write");
        let opened = Bundle::open(dir.path());
        (dir, opened)
    }

    fn set(text: &str, key: &str, value: &str) -> String {
        text.lines()
            .map(|l| if l.starts_with(&format!("{key} = ")) { format!("{key} = {value}") } else { l.to_owned() })
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn an_edited_manifest_is_refused() {
        let files_only = |t: &str| t.split("[files]").next().unwrap_or_default().to_owned();
        // An empty [files] table no longer skips the hash checks.
        let (dir, r) = tampered(|t| format!("{}[files]\n", files_only(t)));
        assert!(matches!(r, Err(ModelError::Manifest { field: "files", .. })), "{r:?}");
        // ... so a flipped byte in model.onnx is caught.
        let mut onnx = std::fs::read(dir.path().join("model.onnx")).expect("read");
        let n = onnx.len();
        onnx[n / 2] ^= 1;
        std::fs::write(dir.path().join("model.onnx"), onnx).expect("write");
        assert!(matches!(Bundle::open(dir.path()), Err(ModelError::Manifest { .. })));
        for (key, value) in
            [("decision_threshold", "1.0"), ("decision_threshold", "0.0"), ("decision_threshold", "nan")]
        {
            let (_d, r) = tampered(|t| set(t, key, value));
            assert!(matches!(r, Err(ModelError::Threshold(_))), "{key} = {value}: {r:?}");
        }
        for (key, value, field) in [
            ("decision_threshold", "0.9", "decision_threshold"),
            ("model_version", "\"clinic-approved-v9\"", "model_version"),
            ("max_segments", "1", "max_segments"),
        ] {
            let (_d, r) = tampered(|t| set(t, key, value));
            assert!(matches!(&r, Err(ModelError::Pinned { field: f, .. }) if *f == field), "{key} = {value}: {r:?}");
        }
        let (_d, r) = tampered(|t| set(t, "max_segments", "100000000000"));
        assert!(matches!(r, Err(ModelError::Manifest { field: "max_segments", .. })), "{r:?}");
        let (_d, r) = tampered(|t| set(t, "model_version", "\"v1\\u001b[2J\""));
        assert!(matches!(r, Err(ModelError::Manifest { field: "model_version", .. })), "{r:?}");
    }

    #[test]
    fn manifest_file_names_stay_inside_the_bundle() {
        let zeros = "0".repeat(64);
        for name in ["/etc/hostname", "../../../../etc/hostname", "sub/model.onnx", ".hidden", "/dev/zero"] {
            let (_d, r) = tampered(|t| format!("{t}\n\"{name}\" = \"{zeros}\"\n"));
            assert!(matches!(r, Err(ModelError::Manifest { field: "files", .. })), "{name}: {r:?}");
        }
        // A plain name that is not a regular file (a link to a device) is refused before reading.
        let (dir, _) = tampered(|t| t.to_owned());
        std::os::unix::fs::symlink("/dev/zero", dir.path().join("extra.bin")).expect("symlink");
        let text = std::fs::read_to_string(dir.path().join("manifest.toml")).expect("read");
        std::fs::write(dir.path().join("manifest.toml"), format!("{text}\n\"extra.bin\" = \"{zeros}\"\n"))
            .expect("write");
        let r = Bundle::open(dir.path());
        assert!(
            matches!(&r, Err(ModelError::Manifest { detail, .. }) if detail.contains("not a regular file")),
            "{r:?}"
        );
    }

    /// RAUC's rule, both ways: a manifest from before the format field reads as format 1; a
    /// newer format, or a field this build does not know, is refused with an error that says so.
    #[test]
    fn a_newer_format_or_an_unknown_field_is_refused_and_an_older_manifest_reads() {
        let text = std::fs::read_to_string(committed().join(MANIFEST)).expect("read");
        assert!(!text.contains("format"), "the committed bundle predates the field:\n{text}");
        assert_eq!(Bundle::open(&committed()).expect("reads").manifest.format, 1);

        let (_d, r) = tampered(|t| format!("format = {}\n{t}", FORMAT + 1));
        let e = r.expect_err("a newer format is refused");
        assert!(matches!(e, ModelError::Manifest { field: "format", .. }), "{e:?}");
        assert!(e.to_string().contains(&format!("bundle format {} is not one this software reads", FORMAT + 1)), "{e}");
        let (_d, r) = tampered(|t| format!("format = 0\n{t}"));
        assert!(matches!(r, Err(ModelError::Manifest { field: "format", .. })), "{r:?}");

        let (_d, r) = tampered(|t| format!("needs_secure_boot = true\n{t}"));
        let e = crate::chain(&r.expect_err("an unknown field is refused"));
        assert!(e.contains("manifest.toml") && e.contains("unknown field `needs_secure_boot`"), "{e}");

        // What this build writes states its format and reads back.
        let b = Bundle::open(&committed()).expect("verifies");
        let dir = tempfile::tempdir().expect("tempdir");
        let onnx = std::fs::read(committed().join("model.onnx")).expect("read");
        let spec = BundleSpec {
            onnx: &onnx,
            model: &b.model,
            golden: &b.golden,
            decision_threshold: b.manifest.decision_threshold,
            quantization: "f32",
            trained_on: None,
        };
        Bundle::write(dir.path(), &spec).expect("writes");
        let written = std::fs::read_to_string(dir.path().join(MANIFEST)).expect("read");
        assert!(written.starts_with(&format!("format = {FORMAT}\n")), "{written}");
        assert_eq!(Bundle::open(dir.path()).expect("reads back").manifest.format, FORMAT);
    }
}
