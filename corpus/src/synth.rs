//! A synthetic DAIC-shaped corpus.
//!
//! Same file layout as DAIC-WOZ (`NNN_P/NNN_AUDIO.wav`, `NNN_TRANSCRIPT.csv`,
//! `NNN_CLNF_features.txt`, `NNN_CLNF_pose.txt`, `NNN_CLNF_gaze.txt`, `NNN_CLNF_AUs.txt`, the
//! AVEC 2017 split files with PHQ-8 items), so [`super::daic::Corpus`] reads it like the real one.
//!
//! ## How depression is planted
//! Each participant gets a PHQ-8 score (depressed ⇔ score ≥ 10, prevalence 30 %) and a severity
//! `z = (score − 9.5) / 6`. Each modality `m` sees its own noisy copy
//! `s_m = strength_m · z + N(0, 1)`, so the modalities are partly redundant and each is noisy;
//! for a fraction `disagree` of participants one modality sees `−strength_m · z` instead, so no
//! single modality is reliable for everyone and fusion has something to win.
//!
//! * **audio** (higher `s_a`): flatter intonation (smaller F0 excursions), slower syllable rate,
//!   longer pauses between phrases and before answering;
//! * **video** (higher `s_v`): less head motion, fewer and weaker smiles, head tilted further
//!   down (a downward-gaze proxy visible in 2-D landmarks; also written to the pose and gaze
//!   files);
//! * **text** (higher `s_t`): more negative-affect, first-person and absolutist sentences,
//!   fewer positive ones. The interviewer's follow-up "That sounds really hard." follows the
//!   true label, as in DAIC-WOZ, where interviewer prompts leak it: text features leave the
//!   interviewer out by default.
//!
//! ## Speech
//! A small formant synthesiser written here (no good crate does this): a sawtooth glottal
//! source at an F0 that follows a per-sentence declination plus per-syllable accents, through
//! three two-pole formant resonators per vowel, with a noise burst for each syllable onset.
//! It is deterministic for a seed on every machine, and its F0, rate and pauses are exactly the
//! planted ones. It is not intelligible speech: the signals a model learns from it are the
//! planted prosody, not words.
//!
//! Everything is deterministic for a seed: participant `k` uses its own generator seeded from
//! `(seed, k)`, so output does not depend on thread scheduling.

use std::f32::consts::PI;
use std::io::Write;
use std::path::Path;

use features::landmarks::{LandmarkFrame, LandmarkTrack, POINTS, mean_face_3d, write_clnf};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use super::{CorpusError, PHQ8_ITEMS, Split};

/// File that marks a corpus as synthetic; it holds the generator's settings and every
/// participant's hidden truth (JSON).
pub const MARKER: &str = "SYNTHETIC.json";

const RATE: u32 = 16_000;
const FPS: f32 = 30.0;
const FIRST_ID: u32 = 300;

/// What to generate.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SynthConfig {
    pub participants: usize,
    pub seed: u64,
    /// Approximate length of each interview, seconds.
    pub seconds: f32,
    /// Signal strength per modality: audio, video, text (0 = no signal).
    pub strength: [f32; 3],
    /// Fraction of participants with one contradicting modality.
    pub disagree: f32,
    /// Write sessions as `NNN_P.zip` archives instead of folders.
    pub zip: bool,
}

impl Default for SynthConfig {
    fn default() -> Self {
        SynthConfig { participants: 189, seed: 1, seconds: 60.0, strength: [1.0, 1.0, 1.0], disagree: 0.15, zip: false }
    }
}

/// The hidden truth of one synthetic participant.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Truth {
    pub id: u32,
    pub split: Split,
    pub phq8: u8,
    pub items: [u8; 8],
    pub gender: u8,
    /// Per-modality signals `s_m` (audio, video, text).
    pub signal: [f32; 3],
    /// The modality that contradicts, if any.
    pub disagrees: Option<usize>,
}

impl Truth {
    pub fn depressed(&self) -> bool {
        self.phq8 >= 10
    }
}

fn gauss(rng: &mut impl Rng) -> f32 {
    let u1: f32 = rng.random::<f32>().max(1e-7);
    let u2: f32 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (2.0 * PI * u2).cos()
}

fn participant_rng(seed: u64, k: usize) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (k as u64 + 1))
}

/// Draws every participant's truth (labels, split, signals) for `cfg`.
pub fn truths(cfg: &SynthConfig) -> Vec<Truth> {
    let mut out: Vec<Truth> = (0..cfg.participants)
        .map(|k| {
            let mut rng = participant_rng(cfg.seed, k);
            let depressed = rng.random_bool(0.3);
            let u: f32 = rng.random();
            let phq8 = if depressed { 10 + (u.powf(1.5) * 15.0) as u8 } else { (u.powf(1.3) * 10.0) as u8 }.min(24);
            let mut items = [0u8; 8];
            let mut left = phq8;
            while left > 0 {
                let i = rng.random_range(0..8);
                if items[i] < 3 {
                    items[i] += 1;
                    left -= 1;
                }
            }
            let z = (f32::from(phq8) - 9.5) / 6.0;
            let disagrees = rng.random_bool(f64::from(cfg.disagree)).then(|| rng.random_range(0..3));
            let mut signal = [0.0f32; 3];
            for (m, s) in signal.iter_mut().enumerate() {
                let sign = if disagrees == Some(m) { -1.0 } else { 1.0 };
                *s = sign * cfg.strength[m] * z + gauss(&mut rng);
            }
            Truth {
                id: FIRST_ID + k as u32,
                split: Split::Train,
                phq8,
                items,
                gender: u8::from(rng.random_bool(0.5)),
                signal,
                disagrees,
            }
        })
        .collect();
    assign_splits(&mut out, cfg.seed);
    out
}

/// Stratified participant-level split in DAIC-WOZ's proportions (107 : 35 : 47).
fn assign_splits(ts: &mut [Truth], seed: u64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5EED_5EED);
    for depressed in [false, true] {
        let mut idx: Vec<usize> = (0..ts.len()).filter(|&i| ts[i].depressed() == depressed).collect();
        // Fisher–Yates with our generator (deterministic).
        for i in (1..idx.len()).rev() {
            let j = rng.random_range(0..=i);
            idx.swap(i, j);
        }
        let n = idx.len() as f32;
        let n_train = (n * 107.0 / 189.0).round() as usize;
        let n_dev = (n * 35.0 / 189.0).round() as usize;
        for (rank, &i) in idx.iter().enumerate() {
            ts[i].split = if rank < n_train {
                Split::Train
            } else if rank < n_train + n_dev {
                Split::Dev
            } else {
                Split::Test
            };
        }
    }
}

/// Writes the corpus to `out`; `progress` is called once per session written. Returns the truth.
pub fn write_corpus(cfg: &SynthConfig, out: &Path, progress: impl Fn() + Sync) -> Result<Vec<Truth>, CorpusError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| CorpusError::Io { path: path.clone(), source }
    };
    std::fs::create_dir_all(out).map_err(io(out))?;
    let ts = truths(cfg);
    ts.par_iter().enumerate().try_for_each(|(k, t)| -> Result<(), CorpusError> {
        let files = session_files(cfg, k, t);
        if cfg.zip {
            let path = out.join(format!("{}_P.zip", t.id));
            let mut z = zip::ZipWriter::new(std::fs::File::create(&path).map_err(io(&path))?);
            let opts = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
            for (name, bytes) in &files {
                z.start_file(format!("{}_P/{name}", t.id), opts)
                    .and_then(|()| z.write_all(bytes).map_err(zip::result::ZipError::Io))
                    .map_err(|e| CorpusError::Io { path: path.clone(), source: std::io::Error::other(e) })?;
            }
            z.finish().map_err(|e| CorpusError::Io { path: path.clone(), source: std::io::Error::other(e) })?;
        } else {
            let dir = out.join(format!("{}_P", t.id));
            std::fs::create_dir_all(&dir).map_err(io(&dir))?;
            for (name, bytes) in &files {
                let p = dir.join(name);
                std::fs::write(&p, bytes).map_err(io(&p))?;
            }
        }
        progress();
        Ok(())
    })?;
    write_splits(&ts, out)?;
    let marker = serde_json::json!({ "generator": "mimml-lab corpus synth", "config": cfg, "truth": ts });
    let p = out.join(MARKER);
    std::fs::write(&p, serde_json::to_vec_pretty(&marker).unwrap_or_default())
        .map_err(|source| CorpusError::Io { path: p.clone(), source })?;
    Ok(ts)
}

fn write_splits(ts: &[Truth], out: &Path) -> Result<(), CorpusError> {
    let labelled = |split: Split| {
        let mut s = String::from("Participant_ID,PHQ8_Binary,PHQ8_Score,Gender");
        for item in PHQ8_ITEMS {
            s.push(',');
            s.push_str(item);
        }
        s.push('\n');
        for t in ts.iter().filter(|t| t.split == split) {
            s.push_str(&format!("{},{},{},{}", t.id, u8::from(t.depressed()), t.phq8, t.gender));
            for v in t.items {
                s.push_str(&format!(",{v}"));
            }
            s.push('\n');
        }
        s
    };
    let mut full_test = String::from("Participant_ID,PHQ_Binary,PHQ_Score,Gender\n");
    let mut test = String::from("participant_ID,Gender\n");
    for t in ts.iter().filter(|t| t.split == Split::Test) {
        full_test.push_str(&format!("{},{},{},{}\n", t.id, u8::from(t.depressed()), t.phq8, t.gender));
        test.push_str(&format!("{},{}\n", t.id, t.gender));
    }
    for (name, text) in [
        ("train_split_Depression_AVEC2017.csv", labelled(Split::Train)),
        ("dev_split_Depression_AVEC2017.csv", labelled(Split::Dev)),
        ("full_test_split.csv", full_test),
        ("test_split_Depression_AVEC2017.csv", test),
    ] {
        let p = out.join(name);
        std::fs::write(&p, text).map_err(|source| CorpusError::Io { path: p.clone(), source })?;
    }
    Ok(())
}

const NEUTRAL: &[&str] = &[
    "I work in an office downtown.",
    "I grew up near the coast.",
    "We moved here a few years ago.",
    "My brother lives in another state.",
    "I usually take the bus to work.",
    "The weekends are pretty quiet.",
    "I studied engineering in college.",
    "I cook dinner most evenings.",
    "My job is mostly paperwork and meetings.",
    "I have a small apartment near the park.",
    "I watch the news in the morning.",
    "My parents still live in the same house.",
];
const POSITIVE: &[&str] = &[
    "I really enjoy hiking with my friends.",
    "Things have been pretty good lately.",
    "I love spending time with my family.",
    "I'm proud of what we did this year.",
    "We laugh a lot together.",
    "I feel calm and relaxed most days.",
    "Work has been fun and exciting.",
    "I'm glad I moved here, it's great.",
];
const NEGATIVE: &[&str] = &[
    "I feel tired all the time.",
    "I can't really sleep at night.",
    "I don't enjoy the things I used to.",
    "I feel like a failure most days.",
    "I'm always worried about everything.",
    "I just stay home alone.",
    "Nothing really matters to me anymore.",
    "I feel empty and sad, and I don't know why.",
    "My days are exhausting and I never rest.",
    "I hate how I feel about myself.",
];
const PROMPTS: &[&str] = &[
    "How are you doing today?",
    "Where are you from originally?",
    "What do you do for a living?",
    "How have you been sleeping lately?",
    "What do you enjoy doing to relax?",
    "How close are you to your family?",
    "When was the last time you felt really happy?",
    "What are you most proud of?",
    "How do you cope when things get hard?",
    "Tell me about your last vacation.",
];

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// One line of the interview.
struct Line {
    interviewer: bool,
    text: String,
}

fn script(t: &Truth, rng: &mut ChaCha8Rng, n_turns: usize) -> Vec<Line> {
    let s_t = t.signal[2];
    let p_neg = sigmoid(1.2 * s_t - 0.8);
    let p_pos = sigmoid(-1.2 * s_t - 0.8);
    let mut lines = vec![Line { interviewer: true, text: "Hi, I'm Ellie. Thanks for coming in today.".into() }];
    for turn in 0..n_turns {
        lines.push(Line { interviewer: true, text: PROMPTS[(turn + rng.random_range(0..3)) % PROMPTS.len()].into() });
        let n = rng.random_range(1..=3);
        let answer: Vec<&str> = (0..n)
            .map(|_| {
                let u: f32 = rng.random();
                let pool = if u < p_neg {
                    NEGATIVE
                } else if u < p_neg + p_pos {
                    POSITIVE
                } else {
                    NEUTRAL
                };
                pool[rng.random_range(0..pool.len())]
            })
            .collect();
        lines.push(Line { interviewer: false, text: answer.join(" ") });
        if rng.random_bool(if t.depressed() { 0.45 } else { 0.08 }) {
            lines.push(Line { interviewer: true, text: "That sounds really hard.".into() });
        }
    }
    lines
}

/// Voice parameters of one speaker.
#[derive(Debug, Clone, Copy)]
struct Voice {
    f0: f32,
    /// Intonation excursion, semitones.
    pitch_sd: f32,
    /// Syllables per second.
    rate: f32,
    /// Pause between sentences, seconds.
    phrase_pause: f32,
}

const VOWELS: [[f32; 3]; 5] = [
    [730.0, 1090.0, 2440.0],
    [270.0, 2290.0, 3010.0],
    [300.0, 870.0, 2240.0],
    [530.0, 1840.0, 2480.0],
    [570.0, 840.0, 2410.0],
];

fn syllables(word: &str) -> usize {
    let mut n = 0;
    let mut prev = false;
    for c in word.chars() {
        let v = "aeiouyAEIOUY".contains(c);
        if v && !prev {
            n += 1;
        }
        prev = v;
    }
    n.max(1)
}

/// Synthesises `text` (appending to `out`) with the formant synthesiser described in the module
/// docs.
fn speak(text: &str, v: Voice, rng: &mut ChaCha8Rng, out: &mut Vec<f32>) {
    let fs = RATE as f32;
    let sentences: Vec<&str> = text.split_inclusive(['.', '?', '!']).map(str::trim).filter(|s| !s.is_empty()).collect();
    let mut phase = 0.0f32;
    for (si, sentence) in sentences.iter().enumerate() {
        let words: Vec<usize> = sentence.split_whitespace().map(syllables).collect();
        let total: usize = words.iter().sum();
        let mut k = 0usize;
        for &n_syl in &words {
            for _ in 0..n_syl {
                let progress = k as f32 / total.max(1) as f32;
                k += 1;
                // Declination from +sd to −sd over the sentence, plus a random accent.
                let st = v.pitch_sd * (0.8 - 1.6 * progress + 0.7 * gauss(rng));
                let f0 = v.f0 * 2f32.powf(st / 12.0);
                let dur = (1.0 / v.rate) * (0.8 + 0.4 * rng.random::<f32>());
                let n = (dur * fs) as usize;
                let onset = (0.04 * fs) as usize;
                let formants = VOWELS[rng.random_range(0..VOWELS.len())];
                let mut res = formants.map(|f| Resonator::new(f, 90.0, fs));
                let start_f0 = f0 * 2f32.powf(0.5 * gauss(rng) * v.pitch_sd / 12.0);
                for i in 0..n {
                    let t = i as f32 / n as f32;
                    // F0 glides within the syllable.
                    let hz = start_f0 + (f0 - start_f0) * t;
                    phase = (phase + hz / fs) % 1.0;
                    let src = if i < onset { 0.3 * (rng.random::<f32>() - 0.5) } else { 2.0 * phase - 1.0 };
                    let y: f32 = res.iter_mut().map(|r| r.step(src)).sum();
                    let env = (i as f32 / (0.015 * fs)).min(1.0) * ((n - i) as f32 / (0.03 * fs)).min(1.0);
                    out.push(0.02 * y * env);
                }
            }
            out.extend(std::iter::repeat_n(0.0, (0.03 * fs) as usize));
        }
        if si + 1 < sentences.len() {
            let pause = v.phrase_pause * (0.7 + 0.6 * rng.random::<f32>());
            out.extend(std::iter::repeat_n(0.0, (pause * fs) as usize));
        }
    }
}

/// A two-pole resonator at `freq` with bandwidth `bw`, unity gain at the peak.
struct Resonator {
    a1: f32,
    a2: f32,
    g: f32,
    y1: f32,
    y2: f32,
}

impl Resonator {
    fn new(freq: f32, bw: f32, fs: f32) -> Self {
        let r = (-PI * bw / fs).exp();
        Resonator { a1: 2.0 * r * (2.0 * PI * freq / fs).cos(), a2: -r * r, g: 1.0 - r, y1: 0.0, y2: 0.0 }
    }

    fn step(&mut self, x: f32) -> f32 {
        let y = self.g * x + self.a1 * self.y1 + self.a2 * self.y2;
        self.y2 = self.y1;
        self.y1 = y;
        y
    }
}

/// All files of one session: (file name, bytes).
fn session_files(cfg: &SynthConfig, k: usize, t: &Truth) -> Vec<(String, Vec<u8>)> {
    let mut rng = participant_rng(cfg.seed ^ 0xA0D1_0000, k);
    let s_a = t.signal[0];
    let ellie = Voice { f0: 210.0, pitch_sd: 2.5, rate: 4.8, phrase_pause: 0.3 };
    let me = Voice {
        f0: if t.gender == 1 { 110.0 } else { 200.0 } * (1.0 + 0.08 * gauss(&mut rng)),
        pitch_sd: (3.0 * (-0.3 * s_a).exp()).clamp(0.6, 6.0),
        rate: (4.5 * (-0.12 * s_a).exp()).clamp(2.0, 7.0),
        phrase_pause: (0.35 * (0.35 * s_a).exp()).clamp(0.1, 2.5),
    };
    let latency = (0.6 * (0.3 * s_a).exp()).clamp(0.2, 3.0);

    // Speech, growing the script until the interview is long enough.
    // More turns than the time allows; the loop below stops at the target length.
    let turns = (cfg.seconds / 4.0).ceil() as usize + 2;
    let lines = script(t, &mut rng, turns);
    let mut pcm: Vec<f32> = vec![0.0; (0.5 * RATE as f32) as usize];
    let mut rows = Vec::new();
    let mut speaking = Vec::new(); // participant spans, seconds
    for line in &lines {
        if pcm.len() as f32 / RATE as f32 >= cfg.seconds && line.interviewer {
            break;
        }
        let start = pcm.len() as f32 / RATE as f32;
        speak(&line.text, if line.interviewer { ellie } else { me }, &mut rng, &mut pcm);
        let stop = pcm.len() as f32 / RATE as f32;
        rows.push(format!(
            "{start:.3}\t{stop:.3}\t{}\t{}",
            if line.interviewer { "Ellie" } else { "Participant" },
            line.text
        ));
        if !line.interviewer {
            speaking.push((start, stop));
        }
        let gap = if line.interviewer { latency * (0.7 + 0.6 * rng.random::<f32>()) } else { 0.5 };
        pcm.extend(std::iter::repeat_n(0.0, (gap * RATE as f32) as usize));
    }
    for s in pcm.iter_mut() {
        *s += 0.0005 * gauss(&mut rng);
    }
    let duration = pcm.len() as f32 / RATE as f32;

    let mut wav = std::io::Cursor::new(Vec::new());
    {
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: RATE,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        // Writing to memory cannot fail except on a size overflow, far beyond any interview.
        if let Ok(mut w) = hound::WavWriter::new(&mut wav, spec) {
            for s in &pcm {
                let _ = w.write_sample((s.clamp(-1.0, 1.0) * 32767.0) as i16);
            }
            let _ = w.finalize();
        }
    }
    let transcript = format!("start_time\tstop_time\tspeaker\tvalue\n{}\n", rows.join("\n"));

    let (track, pose, gaze, aus) = face(t, &mut rng, duration, &speaking);
    let mut clnf = Vec::new();
    let _ = write_clnf(&track, &mut clnf);
    vec![
        (format!("{}_AUDIO.wav", t.id), wav.into_inner()),
        (format!("{}_TRANSCRIPT.csv", t.id), transcript.into_bytes()),
        (format!("{}_CLNF_features.txt", t.id), clnf),
        (format!("{}_CLNF_pose.txt", t.id), pose.into_bytes()),
        (format!("{}_CLNF_gaze.txt", t.id), gaze.into_bytes()),
        (format!("{}_CLNF_AUs.txt", t.id), aus.into_bytes()),
    ]
}

/// The face track and the pose, gaze and AU tables, at 30 fps.
fn face(
    t: &Truth,
    rng: &mut ChaCha8Rng,
    duration: f32,
    speaking: &[(f32, f32)],
) -> (LandmarkTrack, String, String, String) {
    let s_v = t.signal[1];
    let motion = (6.0 * (-0.35 * s_v).exp()).clamp(1.0, 20.0); // px per √s of random walk
    // Radians of head pitch (nose down); the landmarks are a posed 3-D face, projected.
    let pitch_mean = 0.08 + 0.06 * s_v;
    let smile_rate = (0.12 * (-0.6 * s_v).exp()).clamp(0.005, 0.5); // per second
    let smile_strength = (0.15 * (-0.2 * s_v).exp()).clamp(0.05, 0.25);
    let iod = 60.0 * (1.0 + 0.05 * gauss(rng));
    let base = mean_face_3d();
    let n = (duration * FPS) as usize;
    let dt = 1.0 / FPS;

    let (mut x, mut y, mut vx, mut vy) = (320.0f32, 240.0f32, 0.0f32, 0.0f32);
    let (mut roll, mut yaw, mut pitch) = (0.0f32, 0.0f32, pitch_mean);
    let (mut smile_left, mut smile_level) = (0.0f32, 0.0f32);
    let mut blink_left = 0.0f32;
    let mut frames = Vec::with_capacity(n);
    let mut pose = String::from("frame, timestamp, confidence, success, Tx, Ty, Tz, Rx, Ry, Rz\n");
    let mut gaze = String::from(
        "frame, timestamp, confidence, success, x_0, y_0, z_0, x_1, y_1, z_1, x_h0, y_h0, z_h0, x_h1, y_h1, z_h1\n",
    );
    let mut aus = String::from(
        "frame, timestamp, confidence, success, AU01_r, AU02_r, AU04_r, AU05_r, AU06_r, AU09_r, AU10_r, AU12_r, AU14_r, AU15_r, AU17_r, AU20_r, AU25_r, AU26_r, AU04_c, AU12_c, AU15_c, AU23_c, AU28_c, AU45_c\n",
    );
    for i in 0..n {
        let time = i as f32 * dt;
        // Head: damped random walk of the velocity (AR(1)), pulled back to the centre.
        vx = 0.9 * vx + motion * dt.sqrt() * gauss(rng) - 0.02 * (x - 320.0);
        vy = 0.9 * vy + motion * dt.sqrt() * gauss(rng) - 0.02 * (y - 240.0);
        x += vx;
        y += vy;
        roll = 0.97 * roll + 0.004 * gauss(rng);
        yaw = 0.97 * yaw + 0.01 * gauss(rng) * motion / 6.0;
        pitch = pitch + 0.05 * (pitch_mean - pitch) + 0.004 * gauss(rng);
        if smile_left <= 0.0 && rng.random::<f32>() < smile_rate * dt {
            smile_left = 1.0 + 2.0 * rng.random::<f32>();
        }
        let target = if smile_left > 0.0 { smile_strength } else { 0.0 };
        smile_level += 0.2 * (target - smile_level);
        smile_left -= dt;
        if blink_left <= 0.0 && rng.random::<f32>() < 0.3 * dt {
            blink_left = 0.15;
        }
        let closed = if blink_left > 0.0 { 0.85 } else { 0.0 };
        blink_left -= dt;
        let talking = speaking.iter().any(|&(a, b)| (a..b).contains(&time));
        let open = if talking { 0.06 * (2.0 * PI * 4.0 * time).sin().abs() } else { 0.0 };

        let mut p = base;
        for (k, dx) in [(48usize, -0.5f32), (54, 0.5)] {
            p[k][1] -= smile_level;
            p[k][0] += dx * smile_level;
        }
        for k in [49usize, 53, 59, 55] {
            p[k][1] -= 0.4 * smile_level;
        }
        for k in [61usize, 62, 63] {
            p[k][1] -= open / 2.0;
        }
        for k in [65usize, 66, 67] {
            p[k][1] += open / 2.0;
        }
        for k in [37usize, 38, 43, 44] {
            p[k][1] *= 1.0 - closed;
        }
        for k in [40usize, 41, 46, 47] {
            p[k][1] *= 1.0 - closed;
        }
        // Pose the face: pitch about x, yaw about y, roll in the image; orthographic projection.
        let (c, s) = (roll.cos(), roll.sin());
        let (cp, sp, cy, sy) = (pitch.cos(), pitch.sin(), yaw.cos(), yaw.sin());
        let pts: [[f32; 2]; POINTS] = p.map(|[u, v, w]| {
            let (v1, w1) = (v * cp + w * sp, -v * sp + w * cp);
            let u2 = u * cy + w1 * sy;
            [x + iod * (c * u2 - s * v1), y + iod * (s * u2 + c * v1)]
        });
        let valid = rng.random::<f32>() > 0.02;
        frames.push(LandmarkFrame { t_ms: (time * 1000.0).round() as u32, valid, pts: Box::new(pts) });

        let head = format!("{}, {:.3}, {}, {}", i + 1, time, if valid { "0.98" } else { "0" }, u8::from(valid));
        pose.push_str(&format!(
            "{head}, {:.1}, {:.1}, {:.1}, {:.4}, {:.4}, {:.4}\n",
            (x - 320.0) * 600.0 / iod / 10.0,
            (y - 240.0) * 600.0 / iod / 10.0,
            600.0 + 20.0 * gauss(rng),
            0.5 * pitch + 0.1,
            yaw,
            roll
        ));
        let gy = 0.2 + 2.0 * pitch;
        let gz = -(1.0 - gy * gy).max(0.0).sqrt();
        gaze.push_str(&format!(
            "{head}, {:.4}, {gy:.4}, {gz:.4}, {:.4}, {gy:.4}, {gz:.4}, {:.4}, {gy:.4}, {gz:.4}, {:.4}, {gy:.4}, {gz:.4}\n",
            0.05 + yaw,
            -0.05 + yaw,
            0.05,
            -0.05
        ));
        let au12 = (smile_level * 25.0).min(5.0);
        let mut au = head.clone();
        for v in [0.2, 0.1, 0.3, 0.1, au12 * 0.6, 0.05, 0.2, au12, 0.3, 0.2, 0.4, 0.1, open * 30.0, open * 20.0] {
            au.push_str(&format!(", {:.3}", v + 0.05 * gauss(rng).abs()));
        }
        for v in [0.0, f32::from(u8::from(au12 > 1.0)), 0.0, 0.0, 0.0, f32::from(u8::from(closed > 0.0))] {
            au.push_str(&format!(", {v}"));
        }
        aus.push_str(&au);
        aus.push('\n');
    }
    (LandmarkTrack { fps: FPS, frames }, pose, gaze, aus)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truths_are_deterministic_stratified_and_consistent() {
        let cfg = SynthConfig { participants: 189, ..SynthConfig::default() };
        let a = truths(&cfg);
        assert_eq!(a, truths(&cfg));
        assert_ne!(a, truths(&SynthConfig { seed: 2, ..cfg.clone() }));
        for t in &a {
            assert_eq!(t.items.iter().map(|&v| u32::from(v)).sum::<u32>(), u32::from(t.phq8));
            assert!(t.items.iter().all(|&v| v <= 3));
        }
        let count = |s: Split| a.iter().filter(|t| t.split == s).count();
        let dep = |s: Split| a.iter().filter(|t| t.split == s && t.depressed()).count() as f32 / count(s) as f32;
        assert!((100..=114).contains(&count(Split::Train)), "{}", count(Split::Train));
        assert!((30..=40).contains(&count(Split::Dev)));
        // Stratified: every split has about the same share of depressed participants.
        for s in Split::ALL {
            assert!((dep(s) - dep(Split::Train)).abs() < 0.08, "{s}: {}", dep(s));
        }
    }

    #[test]
    fn planted_signals_follow_severity() {
        let cfg = SynthConfig { participants: 400, disagree: 0.0, ..SynthConfig::default() };
        let ts = truths(&cfg);
        for m in 0..3 {
            let mean = |dep: bool| {
                let v: Vec<f32> = ts.iter().filter(|t| t.depressed() == dep).map(|t| t.signal[m]).collect();
                v.iter().sum::<f32>() / v.len() as f32
            };
            assert!(mean(true) > mean(false) + 1.0, "modality {m}");
        }
    }
}
