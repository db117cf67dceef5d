//! `bench/run corpus`: feature-cache build time per hour of audio.
//!
//! Writes a synthetic corpus of about one hour of interviews (12 participants × 5 minutes),
//! then builds the feature cache from it — reading every session through the real DAIC-WOZ
//! reader and running the device's front-ends — once on one thread and once on all cores.
//! No reference tool: the issue names none for this figure.

use std::time::Instant;

use corpus::cache::{CacheOptions, build};
use corpus::daic::Corpus;
use corpus::synth::{SynthConfig, write_corpus};

fn main() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let corpus_dir = dir.path().join("corpus");
    let t = Instant::now();
    let cfg = SynthConfig { participants: 12, seed: 1, seconds: 300.0, ..SynthConfig::default() };
    write_corpus(&cfg, &corpus_dir, || {})?;
    println!("synthetic corpus: 12 × 300 s written in {:.1} s", t.elapsed().as_secs_f32());
    let corpus = Corpus::open(&corpus_dir)?;

    let one = rayon::ThreadPoolBuilder::new().num_threads(1).build()?;
    let r1 =
        one.install(|| build(&corpus, &dir.path().join("cache1"), CacheOptions::default(), Default::default(), || {}))?;
    let per_hour_1 = r1.seconds / r1.audio_hours;
    println!(
        "1 thread : {:.2} h of audio in {:.1} s → {per_hour_1:.1} s per hour of audio ({:.0}× realtime)",
        r1.audio_hours,
        r1.seconds,
        3600.0 / per_hour_1
    );
    let threads = rayon::current_num_threads();
    let rn = build(&corpus, &dir.path().join("cacheN"), CacheOptions::default(), Default::default(), || {})?;
    let per_hour_n = rn.seconds / rn.audio_hours;
    println!("{threads} threads: {per_hour_n:.1} s per hour of audio ({:.0}× realtime)", 3600.0 / per_hour_n);

    // Where the time goes: the audio front-end alone on one session.
    let s = corpus.load(corpus.available().next().map(|p| p.id).unwrap_or(300));
    if let Some(a) = &s.audio {
        let t = Instant::now();
        let f = features::audio::llds(&a.samples);
        let audio_rt = a.duration_s() / t.elapsed().as_secs_f32();
        println!("audio frame descriptors alone: {audio_rt:.0}× realtime on one thread ({} frames)", f.len());
    }
    println!(
        "RESULT corpus cache_s_per_audio_hour_1thread={per_hour_1:.1} cache_s_per_audio_hour_{threads}threads={per_hour_n:.1} \
         realtime_factor_1thread={:.0} audio_hours={:.2}",
        3600.0 / per_hour_1,
        r1.audio_hours
    );
    Ok(())
}
