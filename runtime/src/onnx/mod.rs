//! ONNX inference with tract — what the device runs — and model bundles.
//!
//! A bundle is a folder:
//!
//! * `manifest.toml`: model version, feature-schema hash, quantisation, creation time,
//!   segments kept per modality, and the SHA-256 of every other file;
//! * `model.onnx`: the graph of [`crate::mimml::export`] (inputs `audio`, `video`, `text`,
//!   `present`; outputs `p_depressed`, `phq8`, `gates`);
//! * `golden.json`: one input with its expected output, for the device's self-test.
//!
//! [`Bundle::open`] checks, in this order, before any session can run: every file's hash, the
//! feature schema against this build's front-ends, the ONNX inputs against the front-ends'
//! feature widths, and the golden output. Anything off is a [`ModelError`], never a panic.
//! A flashed bundle also holds `manifest.sig`, the signature over the manifest
//! ([`crate::signing`]).

use std::path::{Path, PathBuf};

use features::{Sequence, SessionFeatures};
use protocol::SchemaHash;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tract_onnx::prelude::*;
use tract_onnx::tract_hir::infer::Factoid;

use crate::{Model, ModelError, Prediction};

pub mod gru;

/// Feature widths the front-ends of this build produce, per modality, with the default (hashed)
/// text embedding.
pub fn feature_widths() -> [usize; 3] {
    features::schema::FEATURE_SCHEMA.widths()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
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

/// One runnable plan and how it computes. Each plan is prepared on its own, so on a GPU the
/// two plans of a model may end up with different backends or precisions.
pub(crate) struct Plan {
    runnable: Box<dyn Runnable>,
    /// A run state kept from the last run: spawning one allocates every node's state again,
    /// a few percent of a run. Sound because [`onnx_recurrence`] makes every recurrent op start from
    /// its `initial_h` on every run, so a state carries nothing from one session to the next.
    /// Taken for a run and put back after it; a concurrent run spawns its own.
    spare: std::sync::Mutex<Option<Box<dyn tract_onnx::tract_core::runtime::State>>>,
    /// "cpu" or "cuda".
    backend: &'static str,
    /// Computes in f16: inputs and outputs are cast at the boundary.
    half: bool,
}

impl Plan {
    fn new(runnable: Box<dyn Runnable>, backend: &'static str, half: bool) -> Plan {
        Plan { runnable, spare: std::sync::Mutex::new(None), backend, half }
    }

    /// "cpu" or "cuda".
    pub(crate) fn backend(&self) -> &'static str {
        self.backend
    }

    /// Runs an f32 graph's plan on f32 inputs, giving f32 outputs whatever it computes in: an
    /// f16 plan's inputs and outputs are cast at the boundary.
    pub(crate) fn run_f32(&self, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        if !self.half {
            return self.run(inputs);
        }
        let cast = |t: TValue, from: DatumType, to: DatumType| -> TractResult<TValue> {
            Ok(if t.datum_type() == from { t.cast_to_dt(to)?.into_owned().into() } else { t })
        };
        let inputs =
            inputs.into_iter().map(|t| cast(t, f32::datum_type(), f16::datum_type())).collect::<TractResult<_>>()?;
        self.run(inputs)?.into_iter().map(|t| cast(t, f16::datum_type(), f32::datum_type())).collect()
    }

    /// Runs on the spare state (or a fresh one when it is in use or a run failed on it).
    fn run(&self, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let spare = self.spare.try_lock().ok().and_then(|mut s| s.take());
        let mut state = match spare {
            Some(s) => s,
            None => self.runnable.spawn()?,
        };
        let out = state.run(inputs)?;
        if let Ok(mut slot) = self.spare.try_lock() {
            *slot = Some(state);
        }
        Ok(out)
    }
}

/// A loaded, optimised ONNX model.
pub struct OnnxModel {
    plan: Plan,
    /// The same graph specialised to `max_segments` rows per modality.
    fixed: Plan,
    version: String,
    schema: SchemaHash,
    /// The text features' embedding the model was trained on (from its schema).
    text_embedding: features::text::TextEmbedding,
    max_segments: usize,
    threshold: f32,
}

impl std::fmt::Debug for OnnxModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnnxModel")
            .field("version", &self.version)
            .field("schema", &self.schema)
            .finish_non_exhaustive()
    }
}

fn half() -> f32 {
    0.5
}

pub fn parse_schema(hex: &str) -> Result<SchemaHash, ModelError> {
    let mut out = [0u8; 8];
    // Checked as bytes: a 16-byte string of non-ASCII characters has no char boundary at
    // every other byte, so slicing it as text would panic.
    let digits = hex.as_bytes();
    if digits.len() != 16 || !digits.iter().all(u8::is_ascii_hexdigit) {
        return Err(ModelError::BadSchema(hex.to_owned()));
    }
    for (b, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
        let nibble = |d: u8| (d as char).to_digit(16).unwrap_or_default() as u8;
        *b = nibble(pair[0]) << 4 | nibble(pair[1]);
    }
    Ok(SchemaHash(out))
}

/// The arithmetic a plan computes in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Precision {
    /// f16 on a GPU (the `cuda` feature with a CUDA driver), f32 on the CPU, where f16 is
    /// emulated on x86 and ten times slower.
    #[default]
    Auto,
    /// f16 wherever the plan runs: what the GPU path computes, reproducible on the CPU (the
    /// parity tests and `bench/run inference` use it).
    F16,
}

/// The graph translated to compute in f16. The GRUs stay in f32 (our [`gru::Gru`] computes in
/// f32, as tract's `GruSeq` does), with casts around them; the exporter names their nodes
/// `gru_*`.
fn to_half(model: TypedModel) -> Result<TypedModel, ModelError> {
    use tract_onnx::tract_core::transform::{NodeFilter, build_float_translator};
    let filter = NodeFilter { include: None, exclude: Some(vec!["gru".into()]) };
    build_float_translator(f32::datum_type(), f16::datum_type(), filter)
        .transform_into(model)
        .map_err(ModelError::tract("translating the model to f16"))
}

impl OnnxModel {
    /// Loads ONNX bytes: checks the inputs against the front-ends, then optimises once.
    pub fn from_bytes(
        bytes: &[u8],
        version: &str,
        schema: SchemaHash,
        max_segments: usize,
    ) -> Result<OnnxModel, ModelError> {
        Self::from_bytes_with(bytes, version, schema, max_segments, Precision::Auto)
    }

    /// [`from_bytes`](Self::from_bytes) with a choice of arithmetic.
    pub fn from_bytes_with(
        bytes: &[u8],
        version: &str,
        schema: SchemaHash,
        max_segments: usize,
        precision: Precision,
    ) -> Result<OnnxModel, ModelError> {
        // Any schema this build's front-ends can produce; the text embedding follows from it.
        let Some(text_embedding) = features::schema::text_embedding_of(schema) else {
            return Err(ModelError::SchemaMismatch { expected: schema, actual: features::schema::schema_hash() });
        };
        let widths = features::schema::FeatureSchema::with_text(text_embedding).widths();
        let mut onnx = tract_onnx::onnx();
        gru::register(&mut onnx);
        let model = onnx.model_for_read(&mut &bytes[..]).map_err(ModelError::tract("reading the ONNX model"))?;
        let inputs = model.input_outlets().map_err(ModelError::tract("reading the ONNX model's inputs"))?.to_vec();
        let names: Vec<String> = inputs.iter().map(|o| model.node(o.node).name.clone()).collect();
        if names != ["audio", "video", "text", "present"] {
            return Err(ModelError::Inputs(names));
        }
        for (m, outlet) in inputs.iter().take(3).enumerate() {
            let fact = model.outlet_fact(*outlet).map_err(ModelError::tract("reading the ONNX model's inputs"))?;
            let last =
                fact.shape.dims().last().and_then(|d| d.concretize()).and_then(|d| d.to_string().parse::<usize>().ok());
            if last != Some(widths[m]) {
                return Err(ModelError::InputWidth { input: names[m].clone(), got: last, want: widths[m] });
            }
        }
        // A second plan with every sequence exactly `max_segments` long: with concrete shapes
        // tract folds and packs more (it runs 32 segments in about the time the general plan
        // takes for 10), and most sessions fill all segments (absent modalities are fed as zero
        // rows with `present` 0, which the graph multiplies away).
        let mut fixed_model = model.clone();
        for (m, w) in widths.iter().enumerate() {
            fixed_model = fixed_model
                .with_input_fact(m, f32::fact([1, max_segments.max(1), *w]).into())
                .map_err(ModelError::tract("fixing the input shapes"))?;
        }
        let declutter = |m: InferenceModel| {
            m.into_typed()
                .map(onnx_recurrence)
                .and_then(|m| m.into_decluttered())
                .map_err(ModelError::tract("preparing the ONNX model"))
        };
        let plan = prepare(declutter(model)?, precision)?;
        let fixed = prepare(declutter(fixed_model)?, precision)?;
        Ok(OnnxModel { plan, fixed, version: version.to_owned(), schema, text_embedding, max_segments, threshold: 0.5 })
    }

    /// Where inference runs: "cpu" or "cuda".
    pub fn backend(&self) -> &'static str {
        self.plan.backend
    }

    /// Whether a plan computes in f16.
    pub fn is_half(&self) -> bool {
        self.plan.half || self.fixed.half
    }

    /// Sets the decision threshold (from the bundle manifest).
    pub fn with_threshold(mut self, threshold: f32) -> Self {
        self.threshold = threshold;
        self
    }

    /// Runs the graph on rows per modality (empty = absent).
    pub fn run(&self, rows: [&[&[f32]]; 3]) -> Result<Prediction, ModelError> {
        let full = self.max_segments.max(1);
        // The specialised plan serves when every present modality has exactly `full` rows.
        let use_fixed = rows.iter().all(|r| r.is_empty() || r.len() == full) && rows.iter().any(|r| !r.is_empty());
        self.run_on(rows, use_fixed)
    }

    /// An f32 input as `plan` takes it (cast to f16 for an f16 plan).
    fn input(plan: &Plan, t: TractResult<Tensor>) -> Result<TValue, ModelError> {
        let t = t.map_err(ModelError::tract("building an input tensor"))?;
        if plan.half {
            Ok(t.cast_to::<f16>().map_err(ModelError::tract("casting an input to f16"))?.into_owned().into())
        } else {
            Ok(t.into())
        }
    }

    fn run_on(&self, rows: [&[&[f32]]; 3], use_fixed: bool) -> Result<Prediction, ModelError> {
        let widths = features::schema::FeatureSchema::with_text(self.text_embedding).widths();
        let full = self.max_segments.max(1);
        let plan = if use_fixed { &self.fixed } else { &self.plan };
        let mut inputs: TVec<TValue> = tvec![];
        let mut present = [0f32; 3];
        for m in 0..3 {
            let r = rows[m];
            let (t, data): (usize, Vec<f32>) = if r.is_empty() {
                let t = if use_fixed { full } else { 1 };
                (t, vec![0.0; t * widths[m]])
            } else {
                present[m] = 1.0;
                (r.len(), r.iter().flat_map(|x| x.iter().copied()).collect())
            };
            if data.len() != t * widths[m] {
                return Err(ModelError::Shape {
                    modality: ["audio", "video", "text"][m],
                    got: data.len() / t,
                    want: widths[m],
                });
            }
            inputs.push(Self::input(plan, Tensor::from_shape(&[1, t, widths[m]], &data))?);
        }
        if present == [0.0; 3] {
            return Err(ModelError::NoInput);
        }
        inputs.push(Self::input(plan, Tensor::from_shape(&[1, 3], &present))?);
        let out = plan.run(inputs).map_err(ModelError::tract("inference"))?;
        let get = |i: usize| -> Result<Vec<f32>, ModelError> {
            let t = out[i].cast_to::<f32>().map_err(ModelError::tract("reading an output"))?;
            Ok(t.to_plain_array_view::<f32>()
                .map_err(ModelError::tract("reading an output"))?
                .iter()
                .copied()
                .collect())
        };
        let (p, phq, g) = (get(0)?, get(1)?, get(2)?);
        if p.len() != 1 || phq.len() != 1 || g.len() != 3 {
            return Err(ModelError::Outputs);
        }
        Ok(Prediction { p_depressed: p[0], phq8: phq[0], gates: [g[0], g[1], g[2]] })
    }
}

impl Model for OnnxModel {
    fn version(&self) -> &str {
        &self.version
    }

    fn feature_schema(&self) -> SchemaHash {
        self.schema
    }

    fn text_embedding(&self) -> features::text::TextEmbedding {
        self.text_embedding
    }

    fn is_placeholder(&self) -> bool {
        false
    }

    fn decision_threshold(&self) -> f32 {
        self.threshold
    }

    fn predict(&self, f: &SessionFeatures) -> Result<Prediction, ModelError> {
        fn pick(s: &Option<Sequence>, max: usize) -> Vec<&[f32]> {
            s.as_ref().map(|q| q.select_evenly(max)).unwrap_or_default()
        }
        let max = self.max_segments;
        let (a, v, t) = (pick(&f.audio, max), pick(&f.video, max), pick(&f.text, max));
        self.run([&a, &v, &t])
    }
}

/// ONNX's contract for its recurrent ops: every run starts from `initial_h`. tract's `Scan`
/// and fused `GruSeq` instead carry their hidden state from one run of a state to the next
/// (for streaming) unless `reset_every_turn` is set; without it a reused state would start a
/// session where the previous one ended.
fn onnx_recurrence(mut model: TypedModel) -> TypedModel {
    use tract_onnx::tract_core::ops::{gru_seq::GruSeq, scan::Scan};
    for node in model.nodes_mut() {
        if let Some(scan) = node.op_as_mut::<Scan>() {
            scan.reset_every_turn = true;
            scan.body = onnx_recurrence(std::mem::take(&mut scan.body));
        } else if let Some(gru) = node.op_as_mut::<GruSeq>() {
            gru.reset_every_turn = true;
        }
    }
    model
}

/// The plan for a decluttered model: with the `cuda` feature and a CUDA driver, the CUDA
/// runtime's, in f16 (f32 if the f16 translation fails to prepare); otherwise the CPU's, in f32
/// unless `Precision::F16` asks for f16.
pub(crate) fn prepare(typed: TypedModel, precision: Precision) -> Result<Plan, ModelError> {
    #[cfg(feature = "cuda")]
    {
        // Linking tract-cuda registers its runtime.
        use tract_cuda as _;
        match tract_onnx::tract_core::runtime::runtime_for_name("cuda") {
            Ok(Some(rt)) => {
                match to_half(typed.clone())
                    .and_then(|h| rt.prepare(h).map_err(ModelError::tract("preparing the f16 model for CUDA")))
                {
                    Ok(runnable) => return Ok(Plan::new(runnable, "cuda", true)),
                    Err(e) => tracing::warn!("CUDA runtime could not prepare the f16 model, trying f32: {e}"),
                }
                match rt.prepare(typed.clone()) {
                    Ok(runnable) => return Ok(Plan::new(runnable, "cuda", false)),
                    Err(e) => tracing::warn!("CUDA runtime could not prepare the model, using the CPU: {e:#}"),
                }
            }
            Ok(None) => tracing::warn!("no CUDA runtime registered in this build, using the CPU"),
            Err(e) => tracing::warn!("CUDA unavailable, using the CPU: {e:#}"),
        }
    }
    prepare_cpu(typed, precision == Precision::F16)
}

/// The CPU's plan for a decluttered model, in f16 when `half`.
pub(crate) fn prepare_cpu(typed: TypedModel, half: bool) -> Result<Plan, ModelError> {
    let typed = if half { to_half(typed)? } else { typed };
    let plan = typed
        .into_optimized()
        .and_then(|m| m.into_runnable())
        .map_err(ModelError::tract("preparing the ONNX model"))?;
    Ok(Plan::new(Box::new(plan), "cpu", half))
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
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
    /// Writes a bundle folder from ONNX bytes, the model loaded from them (its version, feature
    /// schema and segment count go into the manifest) and a golden example.
    pub fn write(
        dir: &Path,
        onnx: &[u8],
        model: &OnnxModel,
        golden: &Golden,
        decision_threshold: f32,
        quantization: &str,
        trained_on: Option<&str>,
    ) -> Result<Manifest, ModelError> {
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
    pub fn install(
        dir: &Path,
        onnx: &[u8],
        model: &OnnxModel,
        golden: &Golden,
        decision_threshold: f32,
        quantization: &str,
        trained_on: Option<&str>,
    ) -> Result<Manifest, ModelError> {
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
        let staged = Self::write(&staging, onnx, model, golden, decision_threshold, quantization, trained_on)
            .and_then(|m| Self::open(&staging).map(|_| m));
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
        let trained_on = old.manifest.trained_on.as_deref();
        Self::install(dir, onnx, model, &golden, old.manifest.decision_threshold, quantization, trained_on)
    }

    /// Opens and verifies a bundle: hashes, schema, inputs, golden self-test (|Δ| ≤ 1e-4).
    pub fn open(dir: &Path) -> Result<Bundle, ModelError> {
        Self::open_with(dir, Precision::Auto)
    }

    /// [`open`](Self::open) with a choice of arithmetic.
    pub fn open_with(dir: &Path, precision: Precision) -> Result<Bundle, ModelError> {
        let read = |name: &str| read_bundle_file(dir, name);
        let manifest = crate::signing::parse_manifest(&read("manifest.toml")?)?;
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

    fn committed() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../assets/model/mimml-synth")
    }

    #[test]
    fn the_committed_bundle_verifies_and_runs() {
        let b = Bundle::open(&committed()).expect("the committed bundle verifies");
        assert!(!b.model.is_placeholder());
        let row = vec![0.0f32; feature_widths()[0]];
        let p = b.model.run([&[&row[..]], &[], &[]]).expect("audio alone is enough");
        assert!((0.0..=1.0).contains(&p.p_depressed) && p.gates[1] == 0.0 && p.gates[2] == 0.0, "{p:?}");
        assert!(matches!(b.model.run([&[], &[], &[]]), Err(ModelError::NoInput)));
        let short = [0.0f32; 3];
        assert!(matches!(b.model.run([&[&short[..]], &[], &[]]), Err(ModelError::Shape { modality: "audio", .. })));
    }

    #[test]
    fn the_specialised_plan_agrees_with_the_general_one() {
        let b = Bundle::open(&committed()).expect("verifies");
        let full = b.manifest.max_segments;
        let w = feature_widths();
        let rows: Vec<Vec<Vec<f32>>> = (0..3)
            .map(|m| {
                (0..full).map(|i| (0..w[m]).map(|j| ((i * 13 + j * 7 + m) % 11) as f32 / 11.0).collect()).collect()
            })
            .collect();
        let r: Vec<Vec<&[f32]>> = rows.iter().map(|x| x.iter().map(Vec::as_slice).collect()).collect();
        // All present, and video absent (fed as zero rows to the specialised plan).
        for input in [[&r[0][..], &r[1][..], &r[2][..]], [&r[0][..], &[][..], &r[2][..]]] {
            let fixed = b.model.run_on(input, true).expect("specialised");
            let general = b.model.run_on(input, false).expect("general");
            assert!((fixed.p_depressed - general.p_depressed).abs() < 1e-5, "{fixed:?} vs {general:?}");
            assert!(fixed.gates.iter().zip(&general.gates).all(|(a, b)| (a - b).abs() < 1e-5));
        }
    }

    /// Runs reuse a kept state: a session's result must not depend on the session before it,
    /// on either plan, whatever length that one had.
    #[test]
    fn a_run_carries_nothing_into_the_next() {
        let b = Bundle::open(&committed()).expect("verifies");
        let full = b.manifest.max_segments;
        let w = feature_widths();
        let rows = |n: usize, seed: usize| -> Vec<Vec<Vec<f32>>> {
            (0..3)
                .map(|m| {
                    (0..n)
                        .map(|i| (0..w[m]).map(|j| ((i * 7 + j * 5 + m + seed) % 13) as f32 / 6.5 - 1.0).collect())
                        .collect()
                })
                .collect()
        };
        let (a, other, short) = (rows(full, 0), rows(full, 5), rows(full / 3, 9));
        let run = |x: &[Vec<Vec<f32>>], fixed: bool| {
            let r: Vec<Vec<&[f32]>> = x.iter().map(|m| m.iter().map(Vec::as_slice).collect()).collect();
            b.model.run_on([&r[0], &r[1], &r[2]], fixed).expect("runs")
        };
        for fixed in [true, false] {
            let first = run(&a, fixed);
            let between = run(&other, fixed);
            assert_ne!(first, between, "different sessions give different results");
            if !fixed {
                run(&short, false);
            }
            assert_eq!(run(&a, fixed), first, "specialised plan: {fixed}");
        }
    }

    /// The independent check: onnxruntime's outputs for the committed bundle, recorded by
    /// `scripts/onnxruntime_reference.sh` (short and full-length sessions, one with video absent),
    /// and tract's on the same inputs agree to 1e-5.
    #[test]
    fn tract_agrees_with_onnxruntime_on_the_committed_bundle() {
        #[derive(Deserialize)]
        struct Case {
            name: String,
            inputs: Vec<Vec<Vec<f32>>>,
            p_depressed: f32,
            phq8: f32,
            gates: Vec<f32>,
        }
        #[derive(Deserialize)]
        struct Reference {
            onnxruntime: String,
            model_sha256: String,
            cases: Vec<Case>,
        }
        let path = committed().with_extension("onnxruntime.json");
        let r: Reference = serde_json::from_slice(&std::fs::read(&path).expect("reference")).expect("json");
        let b = Bundle::open(&committed()).expect("verifies");
        assert_eq!(
            r.model_sha256,
            b.manifest.files["model.onnx"],
            "{} was recorded for another model.onnx: run scripts/onnxruntime_reference.sh",
            path.display()
        );
        assert_eq!(r.cases.len(), 3);
        for c in &r.cases {
            let rows: Vec<Vec<&[f32]>> = c.inputs.iter().map(|m| m.iter().map(Vec::as_slice).collect()).collect();
            let got = b.model.run([&rows[0], &rows[1], &rows[2]]).expect("runs");
            let worst = [got.p_depressed - c.p_depressed, (got.phq8 - c.phq8) / 24.0]
                .into_iter()
                .chain(got.gates.iter().zip(&c.gates).map(|(a, b)| a - b))
                .map(f32::abs)
                .fold(0.0, f32::max);
            assert!(worst <= 1e-5, "{}: tract and onnxruntime {} differ by {worst}", c.name, r.onnxruntime);
        }
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

    /// The f16 plan (the GPU's arithmetic, here on the CPU) passes the bundle's self-test within
    /// the f16 bound but is not bit-for-bit the f32 plan.
    #[test]
    fn the_f16_plan_passes_the_self_test_within_its_bound() {
        let half = Bundle::open_with(&committed(), Precision::F16).expect("verifies in f16");
        let full = Bundle::open(&committed()).expect("verifies in f32");
        assert!(half.model.is_half() && !full.model.is_half());
        let (h, f) =
            (full.golden.predict_with(&half.model).expect("f16"), full.golden.predict_with(&full.model).expect("f32"));
        let d = (h.p_depressed - f.p_depressed).abs();
        assert!(d > 0.0 && d <= 0.01, "|Δp| = {d}");
    }

    /// With the `cuda` feature and no CUDA driver (this machine, CI), loading falls back to the
    /// CPU and still passes the self-test; with a driver, it runs on the GPU.
    #[cfg(feature = "cuda")]
    #[test]
    fn cuda_falls_back_to_the_cpu_without_a_driver() {
        let b = Bundle::open(&committed()).expect("verifies on either backend");
        let driver = ["/dev/nvidia0", "/dev/nvhost-ctrl-gpu"].iter().any(|p| Path::new(p).exists());
        if driver {
            assert!(["cuda", "cpu"].contains(&b.model.backend()));
        } else {
            assert_eq!(b.model.backend(), "cpu");
        }
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
}
