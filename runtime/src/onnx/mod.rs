//! ONNX inference with tract — what the device runs: a MIMML graph ([`OnnxModel`]) prepared as
//! a runnable plan on the CPU or, with the `cuda` feature and a driver, the GPU. The bundle a
//! model arrives in (manifest, hashes, golden self-test, signature) is [`crate::bundle`]'s.

use features::{Sequence, SessionFeatures};
use protocol::SchemaHash;
use tract_onnx::prelude::*;
use tract_onnx::tract_hir::infer::Factoid;

use crate::{Model, ModelError, Prediction};

pub mod gru;

/// Feature widths the front-ends of this build produce, per modality, with the default (hashed)
/// text embedding.
pub fn feature_widths() -> [usize; 3] {
    features::schema::FEATURE_SCHEMA.widths()
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
    pub(crate) version: String,
    pub(crate) schema: SchemaHash,
    /// The text features' embedding the model was trained on (from its schema).
    text_embedding: features::text::TextEmbedding,
    pub(crate) max_segments: usize,
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

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use serde::Deserialize;

    use super::*;
    // Tests sit above the code they test: they open the committed bundle to get its model.
    use crate::bundle::Bundle;

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
}
