//! The corpus path: a synthetic corpus written in the DAIC-WOZ layout, read back through the
//! real reader, damaged in every way the issue names, and turned into the feature cache.

use std::collections::HashSet;
use std::path::Path;

use corpus::cache::{self, CacheOptions, FeatureCache};
use corpus::daic::Corpus;
use corpus::synth::{SynthConfig, Truth, write_corpus};
use corpus::{Problem, Split};

fn small(participants: usize, seconds: f32, zip: bool) -> SynthConfig {
    SynthConfig { participants, seed: 7, seconds, zip, ..SynthConfig::default() }
}

fn synth(dir: &Path, cfg: &SynthConfig) -> Vec<Truth> {
    write_corpus(cfg, dir, || {}).expect("synthetic corpus written")
}

#[test]
fn labels_items_and_sessions_round_trip_through_the_reader() {
    let dir = tempfile::tempdir().expect("tempdir");
    let truth = synth(dir.path(), &small(10, 12.0, false));
    let corpus = Corpus::open(dir.path()).expect("opens");
    assert!(corpus.synthetic);
    assert_eq!(corpus.problems, Vec::<Problem>::new());
    assert_eq!(corpus.available().count(), 10);
    for t in &truth {
        let p = corpus.participant(t.id).expect("listed");
        assert_eq!(p.split, t.split);
        let l = p.labels.as_ref().expect("labelled");
        assert_eq!((l.depressed, l.phq8, l.gender), (t.depressed(), t.phq8, t.gender));
        // Items are in the train and dev files; the test file has totals only, as in DAIC-WOZ.
        assert_eq!(l.items, (t.split != Split::Test).then_some(t.items));

        let s = corpus.load(t.id);
        assert_eq!(s.problems, Vec::<Problem>::new(), "session {}", t.id);
        let audio = s.audio.expect("audio");
        assert!((11.0..25.0).contains(&audio.duration_s()), "{}", audio.duration_s());
        let transcript = s.transcript.expect("transcript");
        assert!(transcript.iter().any(|u| u.speaker == features::text::Speaker::Participant));
        let lm = s.landmarks.expect("landmarks");
        assert!((lm.fps - 30.0).abs() < 0.5);
        assert_eq!(s.pose.expect("pose").rows.len(), lm.frames.len());
        assert!(s.aus.expect("AUs").columns.contains(&"AU12_r".to_owned()));
        assert_eq!(s.gaze.expect("gaze").columns.len(), 16);
    }
}

#[test]
fn no_participant_is_in_two_splits() {
    let dir = tempfile::tempdir().expect("tempdir");
    let truth = synth(dir.path(), &small(60, 1.0, false));
    // From the files themselves: the three labelled split files are disjoint and cover all.
    let ids = |file: &str| -> HashSet<String> {
        std::fs::read_to_string(dir.path().join(file))
            .expect("split file")
            .lines()
            .skip(1)
            .map(|l| l.split(',').next().unwrap_or_default().to_owned())
            .collect()
    };
    let (train, dev, test) = (
        ids("train_split_Depression_AVEC2017.csv"),
        ids("dev_split_Depression_AVEC2017.csv"),
        ids("full_test_split.csv"),
    );
    assert!(train.is_disjoint(&dev) && train.is_disjoint(&test) && dev.is_disjoint(&test));
    assert_eq!(train.len() + dev.len() + test.len(), truth.len());
    assert!(!train.is_empty() && !dev.is_empty() && !test.is_empty());

    // A participant listed twice is reported and kept in one split only.
    let dev_file = dir.path().join("dev_split_Depression_AVEC2017.csv");
    let first_train = std::fs::read_to_string(dir.path().join("train_split_Depression_AVEC2017.csv"))
        .expect("read")
        .lines()
        .nth(1)
        .expect("a row")
        .to_owned();
    let mut dev_text = std::fs::read_to_string(&dev_file).expect("read");
    dev_text.push_str(&first_train);
    dev_text.push('\n');
    std::fs::write(&dev_file, dev_text).expect("write");
    let corpus = Corpus::open(dir.path()).expect("opens");
    let dup: u32 = first_train.split(',').next().and_then(|v| v.parse().ok()).expect("id");
    assert_eq!(corpus.participant(dup).expect("kept").split, Split::Train);
    assert!(corpus.problems.iter().any(|p| p.session == Some(dup) && p.message.contains("also listed")));
    let mut seen = HashSet::new();
    assert!(corpus.participants().all(|p| seen.insert(p.id)));
}

#[test]
fn each_corruption_is_reported_for_its_session_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    let truth = synth(dir.path(), &small(6, 8.0, false));
    let id = |k: usize| truth[k].id;
    let file = |k: usize, suffix: &str| dir.path().join(format!("{}_P/{}_{suffix}", id(k), id(k)));

    // 0: truncated WAV.
    let wav = std::fs::read(file(0, "AUDIO.wav")).expect("wav");
    std::fs::write(file(0, "AUDIO.wav"), &wav[..wav.len() / 3]).expect("write");
    // 1: malformed transcript line (three columns).
    let t = std::fs::read_to_string(file(1, "TRANSCRIPT.csv")).expect("transcript");
    let mut lines: Vec<String> = t.lines().map(String::from).collect();
    lines[3] = "1.0\t2.0\tParticipant".into();
    std::fs::write(file(1, "TRANSCRIPT.csv"), lines.join("\n")).expect("write");
    // 2: missing transcript.
    std::fs::remove_file(file(2, "TRANSCRIPT.csv")).expect("remove");
    // 3: wrong column count in the landmark file.
    let c = std::fs::read_to_string(file(3, "CLNF_features.txt")).expect("clnf");
    let mut lines: Vec<String> = c.lines().map(String::from).collect();
    lines[10] = lines[10].rsplit_once(',').expect("columns").0.to_owned();
    std::fs::write(file(3, "CLNF_features.txt"), lines.join("\n")).expect("write");
    // A malformed split-file line.
    let split = dir.path().join("train_split_Depression_AVEC2017.csv");
    let mut s = std::fs::read_to_string(&split).expect("split");
    s.push_str("999,1,not-a-number,0,0,0,0,0,0,0,0,0\n");
    std::fs::write(&split, s).expect("write");

    let corpus = Corpus::open(dir.path()).expect("opens despite the damage");
    let split_problem = corpus.problems.iter().find(|p| p.file.contains("train_split")).expect("split problem");
    assert!(split_problem.line > 1 && split_problem.message.contains("not a number"), "{split_problem}");
    assert!(corpus.participant(999).is_none());

    let expect = |k: usize, file_part: &str, line: Option<usize>, msg: &str| {
        let s = corpus.load(id(k));
        let real: Vec<&Problem> = s.problems.iter().filter(|p| !p.message.starts_with("note:")).collect();
        assert_eq!(real.len(), 1, "session {}: {real:?}", id(k));
        let p = real[0];
        assert_eq!(p.session, Some(id(k)));
        assert!(p.file.contains(file_part), "{p}");
        if let Some(line) = line {
            assert_eq!(p.line, line, "{p}");
        }
        assert!(p.message.to_lowercase().contains(msg), "{p}");
        s
    };
    let s0 = expect(0, "AUDIO.wav", None, "truncated");
    assert!(s0.audio.is_none() && s0.transcript.is_some() && s0.landmarks.is_some());
    let s1 = expect(1, "TRANSCRIPT.csv", Some(4), "column");
    assert!(s1.transcript.is_none() && s1.audio.is_some());
    let s2 = expect(2, "TRANSCRIPT.csv", None, "missing");
    assert!(s2.transcript.is_none());
    let s3 = expect(3, "CLNF_features.txt", Some(11), "columns");
    assert!(s3.landmarks.is_none());
    for k in 4..6 {
        let s = corpus.load(id(k));
        assert!(s.problems.is_empty() && s.audio.is_some() && s.transcript.is_some() && s.landmarks.is_some());
    }
    // The check table counts them per split and lists them.
    let report = corpus.check(|| {});
    assert_eq!(report.problems.len(), 5, "{report}");
    assert_eq!(report.rows.iter().map(|r| r.missing_files).sum::<usize>(), 1);
    assert_eq!(report.rows.iter().map(|r| r.with_problems).sum::<usize>(), 4);

    // The cache still builds; damaged modalities are absent, the rest present.
    let out = tempfile::tempdir().expect("tempdir");
    let r = cache::build(&corpus, out.path(), CacheOptions::default(), Default::default(), || {}).expect("builds");
    assert_eq!(r.built, 6);
    let c = FeatureCache::open(out.path()).expect("opens");
    let f0 = c.load(id(0)).expect("loads");
    assert!(f0.audio.is_none() && f0.text.is_some() && f0.video.is_some());
    let f2 = c.load(id(2)).expect("loads");
    assert!(f2.text.is_none() && f2.audio.is_some());
}

#[test]
fn zipped_sessions_read_like_folders() {
    let (a, b) = (tempfile::tempdir().expect("tempdir"), tempfile::tempdir().expect("tempdir"));
    synth(a.path(), &small(3, 6.0, false));
    synth(b.path(), &small(3, 6.0, true));
    assert!(
        std::fs::read_dir(b.path()).expect("ls").any(|e| e
            .expect("entry")
            .file_name()
            .to_string_lossy()
            .ends_with("_P.zip"))
    );
    let (ca, cb) = (Corpus::open(a.path()).expect("folders"), Corpus::open(b.path()).expect("zips"));
    for p in ca.available() {
        let (x, y) = (ca.load(p.id), cb.load(p.id));
        assert!(y.problems.is_empty(), "{:?}", y.problems);
        assert_eq!(x.audio, y.audio);
        assert_eq!(x.transcript, y.transcript);
        assert_eq!(x.landmarks, y.landmarks);
    }
    // A damaged archive is a problem of that session, not a crash.
    let victim = cb.available().next().expect("one").id;
    std::fs::write(b.path().join(format!("{victim}_P.zip")), b"PK\x03\x04 garbage").expect("write");
    let s = Corpus::open(b.path()).expect("opens").load(victim);
    assert!(s.audio.is_none() && s.problems.iter().any(|p| p.message.contains("zip")), "{:?}", s.problems);
}

#[test]
fn the_cache_is_keyed_by_schema_and_options() {
    let dir = tempfile::tempdir().expect("tempdir");
    synth(dir.path(), &small(4, 6.0, false));
    let corpus = Corpus::open(dir.path()).expect("opens");
    let out = tempfile::tempdir().expect("tempdir");
    let first = cache::build(&corpus, out.path(), CacheOptions::default(), Default::default(), || {}).expect("builds");
    assert_eq!((first.built, first.reused, first.was_stale), (4, 0, false));
    let again = cache::build(&corpus, out.path(), CacheOptions::default(), Default::default(), || {}).expect("builds");
    assert_eq!((again.built, again.reused), (0, 4));
    let c = FeatureCache::open(out.path()).expect("opens");
    for s in &c.index.sessions {
        let f = c.load(s.id).expect("loads");
        assert_eq!(
            s.lengths,
            [
                f.audio.as_ref().map_or(0, |q| q.len()),
                f.video.as_ref().map_or(0, |q| q.len()),
                f.text.as_ref().map_or(0, |q| q.len())
            ]
        );
        assert!(s.lengths.iter().all(|&n| n > 0), "{s:?}");
        assert_eq!(f.audio.as_ref().map(|q| q.dim), Some(features::audio::FEATURE_NAMES.len()));
    }
    // Different options: stale, rebuilt.
    let other = cache::build(
        &corpus,
        out.path(),
        CacheOptions { include_interviewer_text: true, ..CacheOptions::default() },
        Default::default(),
        || {},
    )
    .expect("builds");
    assert_eq!((other.built, other.was_stale), (4, true));
    // A cache from other front-ends is refused when opened.
    let index = out.path().join("index.json");
    let text = std::fs::read_to_string(&index).expect("index");
    let schema = features::schema::schema_hash().to_string();
    std::fs::write(&index, text.replace(&schema, "0000000000000000")).expect("write");
    let err = FeatureCache::open(out.path()).expect_err("stale").to_string();
    assert!(err.contains("stale") && err.contains(&schema), "{err}");
}

/// Pearson correlation.
fn corr(x: &[f32], y: &[f32]) -> f32 {
    let n = x.len() as f32;
    let (mx, my) = (x.iter().sum::<f32>() / n, y.iter().sum::<f32>() / n);
    let cov: f32 = x.iter().zip(y).map(|(a, b)| (a - mx) * (b - my)).sum();
    let vx: f32 = x.iter().map(|a| (a - mx).powi(2)).sum();
    let vy: f32 = y.iter().map(|b| (b - my).powi(2)).sum();
    cov / (vx * vy).sqrt()
}

#[test]
fn planted_signals_survive_into_the_features() {
    let dir = tempfile::tempdir().expect("tempdir");
    let truth = synth(
        dir.path(),
        &SynthConfig { participants: 36, seed: 3, seconds: 20.0, disagree: 0.0, ..SynthConfig::default() },
    );
    let corpus = Corpus::open(dir.path()).expect("opens");
    let out = tempfile::tempdir().expect("tempdir");
    cache::build(&corpus, out.path(), CacheOptions::default(), Default::default(), || {}).expect("builds");
    let c = FeatureCache::open(out.path()).expect("opens");
    let col = |names: &[&str], n: &str| names.iter().position(|c| *c == n).expect("feature");
    let mut rows = Vec::new();
    for t in &truth {
        let f = c.load(t.id).expect("loads");
        let (a, v, x) = (f.audio.expect("audio").mean(), f.video.expect("video").mean(), f.text.expect("text").mean());
        rows.push((
            t.signal,
            a[col(features::audio::FEATURE_NAMES, "f0_sd_st")],
            v[col(features::landmarks::FEATURE_NAMES, "motion_mean")],
            v[col(features::landmarks::FEATURE_NAMES, "smile_ratio")],
            x[col(features::text::FEATURE_NAMES, "lex_negative")],
            v[col(features::landmarks::FEATURE_NAMES, "head_pitch_deg")],
        ));
    }
    let sig = |m: usize| rows.iter().map(|r| r.0[m]).collect::<Vec<f32>>();
    let pitch_var = corr(&sig(0), &rows.iter().map(|r| r.1).collect::<Vec<_>>());
    let motion = corr(&sig(1), &rows.iter().map(|r| r.2).collect::<Vec<_>>());
    let smiles = corr(&sig(1), &rows.iter().map(|r| r.3).collect::<Vec<_>>());
    let negative = corr(&sig(2), &rows.iter().map(|r| r.4).collect::<Vec<_>>());
    let head_down = corr(&sig(1), &rows.iter().map(|r| r.5).collect::<Vec<_>>());
    println!(
        "corr: pitch variability {pitch_var:.2}, head motion {motion:.2}, smiles {smiles:.2}, negative words {negative:.2}, head pitch {head_down:.2}"
    );
    assert!(head_down > 0.6, "head pitch (PnP) vs video signal: {head_down}");
    assert!(pitch_var < -0.6, "pitch variability vs audio signal: {pitch_var}");
    assert!(motion < -0.6, "head motion vs video signal: {motion}");
    assert!(smiles < -0.3, "smiles vs video signal: {smiles}");
    assert!(negative > 0.5, "negative words vs text signal: {negative}");
}
