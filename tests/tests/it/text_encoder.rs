//! The optional sentence encoder end to end: a feature cache with all-MiniLM-L6-v2 text
//! features, MIMML trained on it, exported, bundled, and a whole session on a simulated device
//! that loads the encoder the bundle needs. Needs `scripts/install_minilm.sh`.

use corpus::Split;
use corpus::cache::TextFrontEnds;
use features::schema::{schema_hash, schema_hash_for};
use features::text::{MINILM_DIM, TextEmbedding};
use host::client::DeviceClient;
use host::session::run_session;
use protocol::Modalities;
use runtime::Model;
use runtime::bundle::{Bundle, BundleSpec, Golden};
use runtime::minilm::{self, MiniLm};
use runtime::onnx::OnnxModel;
use tests::{sample_session, small_feature_cache_with};
use train::mimml::config::MimmlConfig;
use train::mimml::export::to_onnx;
use train::mimml::train::train;

#[test]
fn a_minilm_model_trains_exports_and_runs_a_session_on_a_device_that_loads_its_encoder() {
    let encoder = MiniLm::load(&minilm::default_dir()).expect("all-MiniLM-L6-v2 installed (scripts/install_minilm.sh)");
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = small_feature_cache_with(dir.path(), 5, TextFrontEnds { encoder: Some(&encoder), transcriber: None })
        .expect("cache builds");
    assert_eq!(cache.schema(), schema_hash_for(TextEmbedding::MiniLm));
    let id = cache.sessions(Split::Dev).find(|s| s.lengths[2] > 0).expect("a dev session with text").id;
    let f = cache.load(id).expect("loads");
    let text = f.text.as_ref().expect("text");
    assert_eq!(text.dim, TextEmbedding::MiniLm.feature_names().len());
    // The embedding block holds unit vectors from the encoder.
    let row = text.row(0);
    let norm: f32 = row[text.dim - MINILM_DIM..].iter().map(|v| v * v).sum();
    assert!((norm - 1.0).abs() < 1e-4, "{norm}");

    // The config must agree with the cache.
    let hashed_cfg = MimmlConfig { max_epochs: 2, hidden: 16, ..MimmlConfig::default() };
    let Err(err) = train(&cache, &hashed_cfg, |_| {}) else { panic!("a hashed config trained on a MiniLM cache") };
    let err = err.to_string();
    assert!(err.contains("minilm"), "{err}");
    let cfg = MimmlConfig { text_embedding: TextEmbedding::MiniLm, ..hashed_cfg };
    let t = train(&cache, &cfg, |_| {}).expect("trains");
    assert_eq!(t.schema(), schema_hash_for(TextEmbedding::MiniLm));
    assert_eq!(t.spec.dims[2], text.dim);

    let onnx = to_onnx(&t, "minilm-test").expect("exports");
    // The same graph declared with the hashed schema: its text input is too wide.
    let err = OnnxModel::from_bytes(&onnx, "x", schema_hash(), cfg.max_segments).expect_err("refused").to_string();
    assert!(err.contains("text") && err.contains("features per segment"), "{err}");
    let m = OnnxModel::from_bytes(&onnx, "minilm-test", t.schema(), cfg.max_segments).expect("loads");
    assert_eq!(m.text_embedding(), TextEmbedding::MiniLm);
    let golden = Golden::of(&m, &f).expect("predicts");
    let bundle = dir.path().join("bundle");
    let manifest = Bundle::write(
        &bundle,
        &BundleSpec {
            onnx: &onnx,
            model: &m,
            golden: &golden,
            decision_threshold: t.threshold,
            quantization: "f32",
            trained_on: None,
        },
    )
    .expect("writes");
    assert_eq!(manifest.feature_schema, t.schema().to_string());

    // A device given no encoder for this model refuses before any session.
    let opened = Bundle::open(&bundle).expect("opens");
    assert_eq!(
        device::load_text_encoder(&opened.model, None).expect("loads").map(|e| e.embedding()),
        Some(TextEmbedding::MiniLm)
    );
    let plain = device::simulated_with_model(&dir.path().join("d0"), &sample_session(), &bundle);
    assert!(plain.is_ok(), "simulated() loads the encoder itself: {:?}", plain.err());
    let committed = device::load_model(Some(&device::bundled_model_dir())).expect("the committed model");
    let bare = device::SessionPipeline::new(committed, true)
        .with_text_encoder(None)
        .expect("the committed model needs no encoder");
    let err = bare.with_text_encoder(Some(Box::new(encoder))).expect_err("refused").to_string();
    assert!(err.contains("needs the hashed text embedding, the device has minilm"), "{err}");

    // A whole session over a pty: the result carries the MiniLM schema.
    let (host_end, device_end) = link::pty_pair().expect("pty pair");
    let rig = device::DeviceThread::serve(plain.expect("device"), device_end).expect("serves");
    let mut client = DeviceClient::new(host_end).with_key(rig.host_key());
    client.hello().expect("hello");
    let transcript = features::text::read_transcript(&sample_session().join("transcript.tsv")).expect("transcript");
    let outcome = run_session(&mut client, &transcript, "minilm", Modalities::ALL, |_, _| {}).expect("session");
    assert_eq!(outcome.record.feature_schema, schema_hash_for(TextEmbedding::MiniLm));
    assert!(outcome.record.modalities.contains(Modalities::TEXT), "{:?}", outcome.record);
    drop(rig);
}
