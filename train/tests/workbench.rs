//! The workbench's rules on a real (small, synthetic) corpus: when a feature cache is reused or
//! rebuilt, and which session becomes a bundle's golden example.

use corpus::Split;
use corpus::cache::{self, CacheOptions, FeatureCache};
use corpus::daic::Corpus;
use corpus::synth::{SynthConfig, write_corpus};
use features::text::TextSetup;
use train::workbench::{ensure_cache, golden_session};

/// A 16-participant corpus of 4 s interviews in `dir/corpus`.
fn small_corpus(dir: &std::path::Path) -> std::path::PathBuf {
    let cfg = SynthConfig { participants: 16, seed: 5, seconds: 4.0, ..SynthConfig::default() };
    let root = dir.join("corpus");
    write_corpus(&cfg, &root, || {}).expect("corpus written");
    root
}

#[test]
fn a_cache_is_reused_only_when_built_with_the_same_options() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = small_corpus(dir.path());
    let at = dir.path().join("cache");
    // A cache built with other options (the interviewer's words included) is stale.
    let other = CacheOptions { include_interviewer_text: true, ..CacheOptions::default() };
    cache::build(&Corpus::open(&root).expect("opens"), &at, other, Default::default(), || {}).expect("built");
    let started = std::cell::Cell::new(None);
    let (c, built) =
        ensure_cache(&root, Some(&at), TextSetup::default(), |n| started.set(Some(n)), || {}).expect("cache");
    assert!(built, "a cache with other options was reused");
    assert_eq!(started.get(), Some(16), "the build reports how many sessions it reads");
    assert_eq!(c.index.options, CacheOptions::default());
    assert_eq!(c.index.sessions.len(), 16);
    // Now it matches: reused, nothing read.
    started.set(None);
    let (again, built) =
        ensure_cache(&root, Some(&at), TextSetup::default(), |n| started.set(Some(n)), || {}).expect("cache");
    assert!(!built && started.get().is_none());
    assert_eq!(again.index.sessions.len(), 16);
    // Without a folder named, the cache goes beside the corpus.
    let (_, built) = ensure_cache(&root, None, TextSetup::default(), |_| {}, || {}).expect("cache");
    assert!(built && dir.path().join("corpus-features/index.json").exists());
}

#[test]
fn the_golden_example_is_the_first_test_session_with_every_modality() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = small_corpus(dir.path());
    let corpus = Corpus::open(&root).expect("opens");
    let mut test_ids: Vec<u32> = corpus.participants().filter(|p| p.split == Split::Test).map(|p| p.id).collect();
    test_ids.sort_unstable();
    assert!(test_ids.len() >= 2, "the corpus has {test_ids:?} in its test split");
    // The first test session loses its face landmarks: it cannot be the golden example.
    let first = test_ids[0];
    std::fs::remove_file(root.join(format!("{first}_P/{first}_CLNF_features.txt"))).expect("remove");
    let at = dir.path().join("cache");
    cache::build(&Corpus::open(&root).expect("opens"), &at, CacheOptions::default(), Default::default(), || {})
        .expect("built");
    let c = FeatureCache::open(&at).expect("opens");
    let lengths = |id: u32| c.index.sessions.iter().find(|s| s.id == id).map(|s| s.lengths).expect("cached");
    assert_eq!(lengths(first)[1], 0, "no video for session {first}");
    let golden = golden_session(&c).expect("a golden example");
    let expected = test_ids[1..].iter().copied().find(|&id| lengths(id).iter().all(|&n| n > 0)).expect("one");
    assert_eq!(golden, c.load(expected).expect("loads"));
    assert!(golden.audio.is_some() && golden.video.is_some() && golden.text.is_some());
}
