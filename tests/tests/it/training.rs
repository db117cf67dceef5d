//! MIMML training on a small synthetic corpus: deterministic for a seed, checkpoints round-trip,
//! a checkpoint of other front-ends is refused, missing modalities still give a result.

use corpus::Split;
use corpus::cache::FeatureCache;
use train::mimml::config::{Fusion, MimmlConfig};
use train::mimml::train::{Trained, examples, predict, train};

fn cache(dir: &std::path::Path) -> FeatureCache {
    tests::small_feature_cache(dir, 5).expect("synthetic corpus and its cache")
}

fn quick(seed: u64) -> MimmlConfig {
    MimmlConfig { max_epochs: 6, patience: 6, hidden: 16, seed, ..MimmlConfig::default() }
}

#[test]
fn training_is_deterministic_and_checkpoints_round_trip() {
    let dir = tempfile::tempdir().expect("tempdir");
    let c = cache(dir.path());
    let a = train(&c, &quick(3), |_| {}).expect("trains");
    let b = train(&c, &quick(3), |_| {}).expect("trains");
    assert_eq!(a.history, b.history, "same seed, same run");
    let other = train(&c, &quick(4), |_| {}).expect("trains");
    assert_ne!(a.history, other.history, "another seed, another run");
    assert!(a.history.iter().all(|e| e.loss.is_finite() && e.nce.is_finite() && e.lld.is_finite()), "{:?}", a.history);

    let ex = examples(&c, Split::Test, &a.spec, &a.model.cfg).expect("examples");
    let before = predict(&a.model, &a.spec, &ex).expect("predicts");
    a.save(&dir.path().join("ckpt"), "test-model").expect("saves");
    let (back, meta) = Trained::load(&dir.path().join("ckpt")).expect("loads");
    assert_eq!(meta.version, "test-model");
    assert_eq!(back.threshold, a.threshold);
    let after = predict(&back.model, &back.spec, &ex).expect("predicts");
    assert_eq!(before, after);
    for (s, gates) in &after {
        assert!((0.0..=1.0).contains(&s.p) && (0.0..=24.0).contains(&s.phq8_pred));
        assert!((gates.iter().sum::<f32>() - 1.0).abs() < 1e-4, "{gates:?}");
    }

    // A checkpoint made for other front-ends is refused, with both hashes named.
    let cfg_path = dir.path().join("ckpt/config.json");
    let text = std::fs::read_to_string(&cfg_path).expect("config");
    let schema = features::schema::schema_hash().to_string();
    std::fs::write(&cfg_path, text.replace(&schema, "00000000deadbeef")).expect("write");
    let err = Trained::load(&dir.path().join("ckpt")).expect_err("refused").to_string();
    assert!(err.contains("00000000deadbeef") && err.contains(&schema), "{err}");
}

#[test]
fn a_session_without_video_or_text_still_gets_a_result() {
    let dir = tempfile::tempdir().expect("tempdir");
    let c = cache(dir.path());
    for fusion in [Fusion::Gated, Fusion::Concat] {
        let t = train(&c, &MimmlConfig { fusion, ..quick(1) }, |_| {}).expect("trains");
        let mut ex = examples(&c, Split::Dev, &t.spec, &t.model.cfg).expect("examples");
        for e in &mut ex {
            e.seqs[1] = None;
            e.seqs[2] = None;
        }
        for (s, gates) in predict(&t.model, &t.spec, &ex).expect("predicts") {
            assert!(s.p.is_finite());
            assert_eq!((gates[1], gates[2]), (0.0, 0.0), "{fusion:?}: absent modalities weigh nothing");
            assert!((gates[0] - 1.0).abs() < 1e-5);
        }
    }
}
