//! Machine transcripts end to end: a feature cache whose words come from a transcriber over the
//! participant's turns, MIMML trained on it under its own feature schema, exported, and a
//! device that does not transcribe refusing it. The transcriber here is a stand-in that counts
//! loud stretches (real Whisper on the device is in `device/tests/it/pipeline.rs`); what is tested
//! is where its words go.

use std::sync::atomic::{AtomicUsize, Ordering};

use corpus::Split;
use corpus::cache::{self, CacheOptions, TextFrontEnds};
use corpus::daic::Corpus;
use features::FeatureError;
use features::schema::{schema_hash, schema_hash_with};
use features::text::{MachineWords, Speaker, TextEmbedding, Transcriber, TranscriptSource};
use protocol::ResultFlags;
use runtime::Model;
use runtime::bundle::{Bundle, BundleSpec, Golden};
use runtime::onnx::OnnxModel;
use tests::{sample_session, small_feature_cache_with};
use train::mimml::config::MimmlConfig;
use train::mimml::export::to_onnx;
use train::mimml::train::{Trained, train};

/// Says "word" for every 250 ms whose RMS is above 0.01, and counts its calls.
#[derive(Debug, Default)]
struct LoudStretches {
    calls: AtomicUsize,
}

impl LoudStretches {
    fn words(samples: &[f32]) -> usize {
        samples.chunks_exact(4_000).filter(|c| c.iter().map(|v| v * v).sum::<f32>() / c.len() as f32 > 1e-4).count()
    }
}

impl Transcriber for LoudStretches {
    fn name(&self) -> &str {
        "loud-stretches"
    }
    fn transcribe(&self, samples: &[f32]) -> Result<MachineWords, FeatureError> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        Ok(MachineWords::sure(vec!["word"; Self::words(samples)].join(" ")))
    }
}

#[test]
fn a_model_trained_on_machine_transcripts_has_its_own_schema_and_needs_a_device_that_transcribes() {
    let asr = LoudStretches::default();
    let dir = tempfile::tempdir().expect("tempdir");
    let machine = TextFrontEnds { encoder: None, transcriber: Some(&asr) };
    let cache = small_feature_cache_with(dir.path(), 5, machine).expect("cache builds");
    let schema = schema_hash_with(TextEmbedding::Hashed, TranscriptSource::Asr);
    assert_eq!(cache.schema(), schema);
    assert_ne!(schema, schema_hash());

    // Every session's text is the transcriber's, one call per participant turn, over its samples.
    let corpus = Corpus::open(&dir.path().join("corpus")).expect("corpus");
    let mut turns = 0;
    for s in &cache.index.sessions {
        let f = cache.load(s.id).expect("loads");
        let raw = corpus.load(s.id);
        let clip = raw.audio.as_ref().expect("audio").to_frontend_rate().expect("16 kHz");
        let said: Vec<usize> = raw
            .transcript
            .as_deref()
            .expect("transcript")
            .iter()
            .filter(|u| u.speaker == Speaker::Participant && u.end_ms > u.start_ms)
            .map(|u| LoudStretches::words(clip.span(u.start_ms, u.end_ms)))
            .collect();
        turns += said.len();
        let cached: f32 = f.text.as_ref().map_or(0.0, |t| (0..t.len()).map(|i| t.row(i)[0]).sum());
        assert_eq!(cached as usize, said.iter().sum::<usize>(), "session {}", s.id);
        if f.text.is_some() {
            assert!(f.flags.contains(ResultFlags::MACHINE_TRANSCRIPT), "session {}: {}", s.id, f.flags);
        }
    }
    assert_eq!(asr.calls.load(Ordering::Relaxed), turns);

    // A build must be given exactly the front-ends its options name, and writes nothing otherwise.
    let machine_options = CacheOptions { transcripts: TranscriptSource::Asr, ..CacheOptions::default() };
    for (options, text, why) in [
        (machine_options, TextFrontEnds::default(), "need a transcriber"),
        (CacheOptions::default(), machine, "for pushed transcripts"),
        (CacheOptions { include_interviewer_text: true, ..machine_options }, machine, "no interviewer text"),
    ] {
        let out = dir.path().join("refused");
        let err = cache::build(&corpus, &out, options, text, || {}).expect_err("refused").to_string();
        assert!(err.contains(why), "{err}");
        assert!(!out.join("index.json").exists());
    }

    // The config must agree with the cache, and the checkpoint keeps the schema.
    let pushed_cfg = MimmlConfig { max_epochs: 2, hidden: 16, ..MimmlConfig::default() };
    let Err(err) = train(&cache, &pushed_cfg, |_| {}) else { panic!("a pushed-transcript config trained") };
    assert!(err.to_string().contains("asr transcripts"), "{err}");
    let cfg = MimmlConfig { transcripts: TranscriptSource::Asr, ..pushed_cfg };
    let t = train(&cache, &cfg, |_| {}).expect("trains");
    assert_eq!(t.schema(), schema);
    t.save(&dir.path().join("ckpt"), "asr-test").expect("saves");
    let (back, meta) = Trained::load(&dir.path().join("ckpt")).expect("loads");
    assert_eq!((back.schema(), meta.config.transcripts), (schema, TranscriptSource::Asr));

    // Exported, the model says what it needs; a device that does not transcribe refuses it.
    let onnx = to_onnx(&t, "asr-test").expect("exports");
    let m = OnnxModel::from_bytes(&onnx, "asr-test", t.schema(), cfg.max_segments).expect("loads");
    assert_eq!((m.text_embedding(), m.transcript_source()), (TextEmbedding::Hashed, TranscriptSource::Asr));
    let golden_id = cache.sessions(Split::Test).find(|s| s.lengths.iter().all(|&n| n > 0)).expect("a full session").id;
    let golden = Golden::of(&m, &cache.load(golden_id).expect("loads")).expect("predicts");
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
    assert_eq!(manifest.feature_schema, schema.to_string());
    let err = device::simulated_with_model(&dir.path().join("d0"), &sample_session(), &bundle)
        .expect_err("a device without --asr refused the model");
    let err = runtime::chain(&err);
    assert!(err.contains("machine transcripts") && err.contains("--asr"), "{err}");
}
