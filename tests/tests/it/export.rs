//! Export parity: the trained candle model and its ONNX export run by tract agree, and bundles
//! refuse anything that does not check out.

use corpus::Split;
use corpus::cache::FeatureCache;
use runtime::Model;
use runtime::bundle::{Bundle, BundleSpec, Golden};
use runtime::onnx::{OnnxModel, Precision};
use train::mimml::config::{Fusion, MimmlConfig};
use train::mimml::export::{Quantization, to_onnx, to_onnx_quantized};
use train::mimml::train::{examples, predict, train};

fn cache(dir: &std::path::Path) -> FeatureCache {
    tests::small_feature_cache(dir, 9).expect("synthetic corpus and its cache")
}

#[test]
fn candle_and_tract_agree_within_1e_4() {
    let dir = tempfile::tempdir().expect("tempdir");
    let c = cache(dir.path());
    for fusion in [Fusion::Gated, Fusion::Concat] {
        let cfg = MimmlConfig { max_epochs: 4, hidden: 16, fusion, max_segments: 6, ..MimmlConfig::default() };
        let t = train(&c, &cfg, |_| {}).expect("trains");
        let onnx = to_onnx(&t, "parity").expect("exports");
        let m =
            OnnxModel::from_bytes(&onnx, "parity", features::schema::schema_hash(), cfg.max_segments).expect("loads");
        let mut ex = examples(&c, Split::Test, &t.spec, &t.model.cfg).expect("examples");
        let sessions: Vec<u32> = c.sessions(Split::Test).map(|s| s.id).collect();
        // Every other session loses its video, to check absent modalities too.
        let mut raw: Vec<features::SessionFeatures> = sessions.iter().map(|&id| c.load(id).expect("loads")).collect();
        for (k, (e, f)) in ex.iter_mut().zip(raw.iter_mut()).enumerate() {
            if k % 2 == 1 {
                e.seqs[1] = None;
                f.video = None;
            }
        }
        let reference = predict(&t.model, &t.spec, &ex).expect("candle");
        let mut worst = 0f32;
        for ((s, gates), f) in reference.iter().zip(&raw) {
            let p = m.predict(f).expect("tract");
            worst = worst.max((p.p_depressed - s.p).abs());
            for (a, b) in p.gates.iter().zip(gates) {
                worst = worst.max((a - b).abs());
            }
            assert!((p.phq8 - s.phq8_pred).abs() < 1e-3 * 24.0, "{} vs {}", p.phq8, s.phq8_pred);
        }
        assert!(worst <= 1e-4, "{fusion:?}: |Δ| = {worst}");
    }
}

#[test]
fn f16_and_int8_stay_within_0_01_of_f32_and_are_smaller() {
    let dir = tempfile::tempdir().expect("tempdir");
    let c = cache(dir.path());
    let cfg = MimmlConfig { max_epochs: 6, ..MimmlConfig::default() };
    let t = train(&c, &cfg, |_| {}).expect("trains");
    let schema = features::schema::schema_hash();
    let f32_bytes = to_onnx(&t, "q").expect("exports");
    let reference = OnnxModel::from_bytes(&f32_bytes, "q", schema, cfg.max_segments).expect("loads");
    let dev: Vec<features::SessionFeatures> =
        c.sessions(Split::Dev).chain(c.sessions(Split::Test)).map(|s| c.load(s.id).expect("loads")).collect();
    for q in [Quantization::F16, Quantization::Int8] {
        let bytes = to_onnx_quantized(&t, "q", q).expect("exports");
        let m = OnnxModel::from_bytes(&bytes, "q", schema, cfg.max_segments).expect("loads");
        let worst = dev
            .iter()
            .map(|f| (m.predict(f).expect("runs").p_depressed - reference.predict(f).expect("runs").p_depressed).abs())
            .fold(0f32, f32::max);
        assert!(worst <= 0.01, "{q:?}: |Δp| = {worst}");
        let ratio = bytes.len() as f32 / f32_bytes.len() as f32;
        let limit = if q == Quantization::Int8 { 0.30 } else { 0.55 };
        assert!(ratio <= limit, "{q:?}: {} of {} bytes ({ratio:.2})", bytes.len(), f32_bytes.len());
    }
    // f16 arithmetic, as the Jetson's GPU runs it (here on the CPU: same translated graph).
    let half = OnnxModel::from_bytes_with(&f32_bytes, "q", schema, cfg.max_segments, Precision::F16).expect("loads");
    assert!(half.is_half());
    let worst = dev
        .iter()
        .map(|f| (half.predict(f).expect("runs").p_depressed - reference.predict(f).expect("runs").p_depressed).abs())
        .fold(0f32, f32::max);
    assert!(worst <= 0.01 && worst > 0.0, "f16 compute: |Δp| = {worst}");
}

#[test]
fn bundles_are_verified_before_use() {
    let dir = tempfile::tempdir().expect("tempdir");
    let c = cache(dir.path());
    let cfg = MimmlConfig { max_epochs: 3, hidden: 16, ..MimmlConfig::default() };
    let t = train(&c, &cfg, |_| {}).expect("trains");
    let onnx = to_onnx(&t, "b1").expect("exports");
    let id = c.sessions(Split::Dev).next().expect("a dev session").id;
    let f = c.load(id).expect("loads");
    let m = OnnxModel::from_bytes(&onnx, "b1", features::schema::schema_hash(), cfg.max_segments).expect("loads");
    let golden = Golden::of(&m, &f).expect("predicts");
    let b = dir.path().join("bundle");
    Bundle::write(
        &b,
        &BundleSpec {
            onnx: &onnx,
            model: &m,
            golden: &golden,
            decision_threshold: 0.4,
            quantization: "f32",
            trained_on: None,
        },
    )
    .expect("writes");
    let opened = Bundle::open(&b).expect("a good bundle opens");
    assert_eq!(opened.manifest.model_version, "b1");
    assert!(!opened.model.is_placeholder());
    assert_eq!(opened.model.decision_threshold(), 0.4);

    // A flipped byte in the model: the hash check refuses it.
    let mut bytes = std::fs::read(b.join("model.onnx")).expect("read");
    bytes[100] ^= 0x20;
    std::fs::write(b.join("model.onnx"), &bytes).expect("write");
    let err = Bundle::open(&b).expect_err("refused").to_string();
    assert!(err.contains("model.onnx") && err.contains("SHA-256"), "{err}");
    bytes[100] ^= 0x20;
    std::fs::write(b.join("model.onnx"), &bytes).expect("restore");

    // Another feature schema: refused before anything runs.
    let manifest = std::fs::read_to_string(b.join("manifest.toml")).expect("manifest");
    let schema = features::schema::schema_hash().to_string();
    std::fs::write(b.join("manifest.toml"), manifest.replace(&schema, "0123456789abcdef")).expect("write");
    let err = Bundle::open(&b).expect_err("refused").to_string();
    assert!(err.contains("0123456789abcdef"), "{err}");
    std::fs::write(b.join("manifest.toml"), &manifest).expect("restore");

    // A golden output that the model does not reproduce: the self-test fails.
    let mut g = golden.clone();
    g.p_depressed += 0.01;
    Bundle::write(
        &b,
        &BundleSpec {
            onnx: &onnx,
            model: &m,
            golden: &g,
            decision_threshold: 0.4,
            quantization: "f32",
            trained_on: None,
        },
    )
    .expect("writes");
    assert!(Bundle::open(&b).expect_err("refused").to_string().contains("self-test"));

    // Not ONNX at all.
    assert!(OnnxModel::from_bytes(b"garbage", "x", features::schema::schema_hash(), 8).is_err());
}

/// The committed bundle is exactly what this exporter makes of the committed checkpoint, so a
/// change to the exporter cannot leave a stale demo model behind (`mimml-lab reexport` updates it).
#[test]
fn the_committed_bundle_is_the_export_of_the_committed_checkpoint() {
    let bundle = device::bundled_model_dir();
    let (t, meta) =
        train::mimml::train::Trained::load(&bundle.with_file_name("mimml-synth-checkpoint")).expect("checkpoint");
    let onnx = to_onnx(&t, &meta.version).expect("exports");
    let committed = std::fs::read(bundle.join("model.onnx")).expect("committed model");
    assert!(
        onnx == committed,
        "assets/model/mimml-synth/model.onnx is not the export of its checkpoint: run \
         `mimml-lab reexport --model assets/model/mimml-synth-checkpoint --bundle assets/model/mimml-synth`"
    );
}

/// Re-exporting over a bundle keeps its golden inputs and threshold; a new bundle that does
/// not verify leaves the old one as it was.
#[test]
fn replacing_a_bundles_model_keeps_its_golden_inputs_and_never_breaks_it() {
    let committed = device::bundled_model_dir();
    let dir = tempfile::tempdir().expect("tempdir");
    let b = dir.path().join("bundle");
    std::fs::create_dir(&b).expect("mkdir");
    for f in ["manifest.toml", "model.onnx", "golden.json"] {
        std::fs::copy(committed.join(f), b.join(f)).expect("copy");
    }
    let before = Bundle::open(&b).expect("the copy verifies");
    let (t, meta) =
        train::mimml::train::Trained::load(&committed.with_file_name("mimml-synth-checkpoint")).expect("checkpoint");
    let int8 = to_onnx_quantized(&t, &meta.version, Quantization::Int8).expect("exports");
    let m = OnnxModel::from_bytes(&int8, &meta.version, t.schema(), t.model.cfg.max_segments).expect("loads");
    let files = |d: &std::path::Path| -> Vec<Vec<u8>> {
        ["manifest.toml", "model.onnx", "golden.json"].iter().map(|f| std::fs::read(d.join(f)).expect("read")).collect()
    };

    // A quantisation this build does not know: the staged bundle fails to verify.
    let kept = files(&b);
    let err = Bundle::replace_model(&b, &int8, &m, "int9").expect_err("refused").to_string();
    assert!(err.contains("int9"), "{err}");
    assert_eq!(files(&b), kept, "the old bundle is untouched");
    assert_eq!(std::fs::read_dir(dir.path()).expect("ls").count(), 1, "no staging folder left behind");

    let manifest = Bundle::replace_model(&b, &int8, &m, "int8").expect("replaces");
    let after = Bundle::open(&b).expect("the new bundle verifies");
    assert_eq!(manifest.quantization, "int8");
    assert_eq!(after.manifest.decision_threshold, before.manifest.decision_threshold);
    assert_eq!(std::fs::read(b.join("model.onnx")).expect("read"), int8);
    let golden = |d: &std::path::Path| -> Golden {
        serde_json::from_slice(&std::fs::read(d.join("golden.json")).expect("read")).expect("json")
    };
    let (old, new) = (golden(&committed), golden(&b));
    assert_eq!(old.inputs, new.inputs);
    assert!((old.p_depressed - new.p_depressed).abs() < 0.01 && old.p_depressed != new.p_depressed);
    assert_eq!(std::fs::read_dir(dir.path()).expect("ls").count(), 1, "no staging or old folder left behind");
}
