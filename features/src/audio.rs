//! Audio front-end (foundation version): 16 kHz mono PCM → per-segment functionals.
//!
//! Frame-level descriptors every 10 ms: RMS energy (dBFS) and zero-crossing rate over 25 ms,
//! and F0 by normalised autocorrelation over 40 ms at 8 kHz (75–500 Hz, voiced when the peak exceeds
//! [`VOICING`] and the frame is above the energy floor; parabolic peak interpolation). A frame
//! is speech when its energy is above an adaptive floor (the 10th percentile of the session
//! + 15 dB, at least −55 dBFS). Per segment, [`FEATURE_NAMES`] summarise them.

use std::io::Read;
use std::path::Path;

use crate::segment::Segment;
use crate::{FeatureError, Sequence, mean_sd, quantile};

pub const SAMPLE_RATE: u32 = 16_000;
const FRAME: usize = 400; // 25 ms
const HOP: usize = 160; // 10 ms
const F0_WINDOW: usize = 640; // 40 ms: two periods at 75 Hz need 427 samples
/// Normalised autocorrelation peak above which a frame is voiced.
pub const VOICING: f32 = 0.5;

/// Names of the per-segment audio features, in order.
pub const FEATURE_NAMES: &[&str] = &[
    "duration_s",
    "energy_db_mean",
    "energy_db_sd",
    "zcr_mean",
    "voiced_ratio",
    "f0_mean_st",
    "f0_sd_st",
    "f0_range_st",
    "pause_ratio",
    "pause_mean_s",
    "voiced_onsets_per_s",
];

/// Mono PCM in [-1, 1].
#[derive(Debug, Clone, PartialEq)]
pub struct AudioClip {
    pub rate: u32,
    pub samples: Vec<f32>,
}

impl AudioClip {
    pub fn duration_s(&self) -> f32 {
        self.samples.len() as f32 / self.rate as f32
    }

    /// The samples between `start_ms` and `end_ms`, clamped to the clip.
    pub fn span(&self, start_ms: u32, end_ms: u32) -> &[f32] {
        let at = |ms: u32| ((u64::from(ms) * u64::from(self.rate) / 1000) as usize).min(self.samples.len());
        let (a, b) = (at(start_ms), at(end_ms));
        if a < b { &self.samples[a..b] } else { &[] }
    }
}

/// Reads a WAV file: 16 kHz, mono or stereo (averaged), 16/24/32-bit integer or 32-bit float.
/// Anything else is a clear error (resampling comes with the audio front-end issue).
pub fn read_wav(path: &Path) -> Result<AudioClip, FeatureError> {
    let origin = path.display().to_string();
    let file =
        std::fs::File::open(path).map_err(|e| FeatureError::Wav { path: origin.clone(), detail: e.to_string() })?;
    read_wav_from(std::io::BufReader::new(file), &origin)
}

/// [`read_wav`] from any reader (a member of a zip archive, bytes in memory); `origin` names it
/// in errors.
pub fn read_wav_from<R: Read>(r: R, origin: &str) -> Result<AudioClip, FeatureError> {
    let p = || origin.to_owned();
    let reader = hound::WavReader::new(r).map_err(|e| FeatureError::Wav { path: p(), detail: e.to_string() })?;
    let spec = reader.spec();
    if spec.sample_rate != SAMPLE_RATE {
        return Err(FeatureError::UnsupportedAudio {
            path: p(),
            detail: format!("sample rate {} Hz; this build reads {SAMPLE_RATE} Hz only", spec.sample_rate),
        });
    }
    if spec.channels == 0 || spec.channels > 2 {
        return Err(FeatureError::UnsupportedAudio { path: p(), detail: format!("{} channels", spec.channels) });
    }
    let interleaved: Vec<f32> = match (spec.sample_format, spec.bits_per_sample) {
        (hound::SampleFormat::Int, bits @ (16 | 24 | 32)) => {
            let scale = 1.0 / (1u64 << (bits - 1)) as f32;
            reader.into_samples::<i32>().map(|s| s.map(|v| v as f32 * scale)).collect::<Result<_, _>>()
        }
        (hound::SampleFormat::Float, 32) => reader.into_samples::<f32>().collect::<Result<_, _>>(),
        (fmt, bits) => {
            return Err(FeatureError::UnsupportedAudio { path: p(), detail: format!("{bits}-bit {fmt:?} samples") });
        }
    }
    .map_err(|e| FeatureError::Wav { path: p(), detail: e.to_string() })?;
    let samples = if spec.channels == 2 {
        interleaved.chunks_exact(2).map(|c| 0.5 * (c[0] + c[1])).collect()
    } else {
        interleaved
    };
    Ok(AudioClip { rate: spec.sample_rate, samples })
}

/// Frame-level descriptors of a stretch of audio, one entry per 10 ms hop.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Frames {
    pub energy_db: Vec<f32>,
    pub zcr: Vec<f32>,
    /// F0 in Hz, 0 where unvoiced.
    pub f0: Vec<f32>,
}

/// Energy, ZCR and F0 for every 10 ms hop of `x` that has a whole 25 ms frame.
pub fn frames(x: &[f32]) -> Frames {
    // F0 is searched at 8 kHz: [1 2 1]/4 low-pass, every other sample. Voice harmonics above
    // 4 kHz carry nothing the period search needs, and it makes the search 4× cheaper.
    let half: Vec<f32> = (0..x.len() / 2)
        .map(|i| {
            let c = x[2 * i];
            let l = if i > 0 { x[2 * i - 1] } else { c };
            0.25 * l + 0.5 * c + 0.25 * x[2 * i + 1]
        })
        .collect();
    let mut out = Frames::default();
    let mut start = 0;
    while start + FRAME <= x.len() {
        let f = &x[start..start + FRAME];
        let rms = (f.iter().map(|v| v * v).sum::<f32>() / FRAME as f32).sqrt();
        out.energy_db.push(20.0 * rms.max(1e-6).log10());
        let crossings = f.windows(2).filter(|w| (w[0] >= 0.0) != (w[1] >= 0.0)).count();
        out.zcr.push(crossings as f32 / FRAME as f32);
        let (a, b) = (start / 2, ((start + F0_WINDOW) / 2).min(half.len()));
        out.f0.push(if rms > 1e-3 { f0_of(&half[a..b], (SAMPLE_RATE / 2) as f32) } else { 0.0 });
        start += HOP;
    }
    out
}

/// F0 of one window sampled at `fs` by normalised autocorrelation; 0 when unvoiced.
fn f0_of(w: &[f32], fs: f32) -> f32 {
    let min_lag = (fs / 500.0) as usize;
    let max_lag = ((fs / 75.0) as usize).min(w.len() / 2);
    if max_lag < min_lag + 2 {
        return 0.0;
    }
    let mean = w.iter().sum::<f32>() / w.len() as f32;
    let x: Vec<f32> = w.iter().map(|v| v - mean).collect();
    let n = x.len();
    // Prefix sums of squares give both energies of every lag in O(1).
    let mut sq = Vec::with_capacity(n + 1);
    sq.push(0.0f32);
    for v in &x {
        sq.push(sq[sq.len() - 1] + v * v);
    }
    let r = |lag: usize| -> f32 {
        let num: f32 = x[..n - lag].iter().zip(&x[lag..]).map(|(p, q)| p * q).sum();
        let den = ((sq[n - lag] - sq[0]) * (sq[n] - sq[lag])).sqrt();
        if den > 0.0 { num / den } else { 0.0 }
    };
    let rs: Vec<f32> = (min_lag..=max_lag).map(r).collect();
    // The first local maximum above the threshold that is close to the global one: avoids
    // picking a multiple of the period (octave errors down).
    let best = rs.iter().copied().fold(f32::MIN, f32::max);
    if best < VOICING {
        return 0.0;
    }
    let Some(i) = (1..rs.len().saturating_sub(1))
        .find(|&i| rs[i] >= rs[i - 1] && rs[i] >= rs[i + 1] && rs[i] >= VOICING && rs[i] >= 0.9 * best)
    else {
        return 0.0;
    };
    let (a, b, c) = (rs[i - 1], rs[i], rs[i + 1]);
    let denom = a - 2.0 * b + c;
    let shift = if denom.abs() > 1e-9 { 0.5 * (a - c) / denom } else { 0.0 };
    fs / ((i + min_lag) as f32 + shift)
}

/// The session's speech/non-speech energy threshold (dBFS).
fn speech_floor(energy_db: &[f32]) -> f32 {
    (quantile(energy_db, 0.1) + 15.0).max(-55.0)
}

/// Too little signal or too much clipping for the features to mean much.
pub fn low_quality(clip: &AudioClip) -> bool {
    let f = frames(&clip.samples);
    if f.energy_db.is_empty() {
        return true;
    }
    let floor = speech_floor(&f.energy_db);
    let speech = f.energy_db.iter().filter(|&&e| e > floor).count() as f32 / f.energy_db.len() as f32;
    let clipped = clip.samples.iter().filter(|v| v.abs() >= 0.999).count() as f32;
    let (mean_db, _) = mean_sd(&f.energy_db);
    speech < 0.05 || mean_db < -70.0 || clipped > 0.01 * clip.samples.len() as f32
}

fn semitones(hz: f32) -> f32 {
    12.0 * (hz / 27.5).log2()
}

/// Per-segment functionals ([`FEATURE_NAMES`]), one row per segment. Frame descriptors are
/// computed once over the whole clip; the speech floor is the session's.
pub fn segment_features(clip: &AudioClip, segments: &[Segment]) -> Sequence {
    let all = frames(&clip.samples);
    let floor = speech_floor(&all.energy_db);
    let hop_ms = 1000.0 * HOP as f32 / clip.rate as f32;
    let mut seq = Sequence::new(FEATURE_NAMES.len());
    for seg in segments {
        let a = ((seg.start_ms as f32 / hop_ms) as usize).min(all.energy_db.len());
        let b = ((seg.end_ms as f32 / hop_ms) as usize).min(all.energy_db.len());
        let (e, z, f0) = (&all.energy_db[a..b], &all.zcr[a..b], &all.f0[a..b]);
        let voiced: Vec<f32> = f0.iter().filter(|&&v| v > 0.0).map(|&v| semitones(v)).collect();
        let speech: Vec<bool> = e.iter().map(|&v| v > floor).collect();
        let (mut pauses, mut run) = (Vec::new(), 0usize);
        for &s in &speech {
            if s {
                if run >= 15 {
                    pauses.push(run as f32 * hop_ms / 1000.0);
                }
                run = 0;
            } else {
                run += 1;
            }
        }
        let onsets = f0.windows(3).filter(|w| w[0] == 0.0 && w[1] > 0.0 && w[2] > 0.0).count();
        let n = e.len().max(1) as f32;
        let dur = (b - a) as f32 * hop_ms / 1000.0;
        let (e_mean, e_sd) = mean_sd(e);
        let (z_mean, _) = mean_sd(z);
        let (f_mean, f_sd) = mean_sd(&voiced);
        let (p_mean, _) = mean_sd(&pauses);
        seq.push(&[
            dur,
            if e.is_empty() { -120.0 } else { e_mean },
            e_sd,
            z_mean,
            voiced.len() as f32 / n,
            f_mean,
            f_sd,
            quantile(&voiced, 0.9) - quantile(&voiced, 0.1),
            speech.iter().filter(|s| !**s).count() as f32 / n,
            p_mean,
            if dur > 0.0 { onsets as f32 / dur } else { 0.0 },
        ]);
    }
    seq
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone_bursts(seconds: f32, on_s: f32, off_s: f32) -> AudioClip {
        let n = (seconds * SAMPLE_RATE as f32) as usize;
        let period = ((on_s + off_s) * SAMPLE_RATE as f32) as usize;
        let on = (on_s * SAMPLE_RATE as f32) as usize;
        let samples = (0..n)
            .map(|i| {
                if i % period < on {
                    0.3 * (i as f32 * 2.0 * std::f32::consts::PI * 220.0 / 16000.0).sin()
                } else {
                    0.0
                }
            })
            .collect();
        AudioClip { rate: SAMPLE_RATE, samples }
    }

    fn whole(clip: &AudioClip) -> Vec<f32> {
        let seg = Segment { start_ms: 0, end_ms: (clip.duration_s() * 1000.0) as u32 };
        segment_features(clip, &[seg]).row(0).to_vec()
    }

    fn col(name: &str) -> usize {
        FEATURE_NAMES.iter().position(|n| *n == name).expect("known feature")
    }

    /// A buzzy voice-like signal: harmonics of an F0 that follows `f0(t)`.
    fn voice(seconds: f32, f0: impl Fn(f32) -> f32) -> AudioClip {
        let n = (seconds * SAMPLE_RATE as f32) as usize;
        let mut phase = 0.0f32;
        let samples = (0..n)
            .map(|i| {
                let t = i as f32 / SAMPLE_RATE as f32;
                phase += 2.0 * std::f32::consts::PI * f0(t) / SAMPLE_RATE as f32;
                (1..6).map(|h| 0.3 / h as f32 * (h as f32 * phase).sin()).sum::<f32>()
            })
            .collect();
        AudioClip { rate: SAMPLE_RATE, samples }
    }

    #[test]
    fn pauses_are_measured() {
        let f = whole(&tone_bursts(20.0, 1.0, 1.0));
        let (ratio, mean) = (f[col("pause_ratio")], f[col("pause_mean_s")]);
        assert!((ratio - 0.5).abs() < 0.05, "{ratio}");
        assert!((mean - 1.0).abs() < 0.1, "{mean}");
        let f2 = whole(&tone_bursts(20.0, 1.0, 3.0));
        assert!(f2[col("pause_ratio")] > ratio + 0.15 && f2[col("pause_mean_s")] > 2.5, "{f2:?}");
    }

    #[test]
    fn f0_is_found_and_its_variability_measured() {
        for hz in [90.0f32, 150.0, 240.0] {
            let clip = voice(1.0, |_| hz);
            let f = frames(&clip.samples);
            let voiced: Vec<f32> = f.f0.iter().copied().filter(|&v| v > 0.0).collect();
            assert!(voiced.len() > 80, "{hz} Hz: only {} voiced frames", voiced.len());
            let med = quantile(&voiced, 0.5);
            assert!((med - hz).abs() < 1.5, "{hz} Hz estimated as {med}");
        }
        let flat = whole(&voice(4.0, |_| 120.0));
        let lively = whole(&voice(4.0, |t| 120.0 * (1.0 + 0.2 * (2.0 * std::f32::consts::PI * 0.8 * t).sin())));
        assert!(flat[col("f0_sd_st")] < 0.2, "{flat:?}");
        assert!(lively[col("f0_sd_st")] > 1.5 && lively[col("f0_range_st")] > 4.0, "{lively:?}");
        assert!((flat[col("f0_mean_st")] - 12.0 * (120.0f32 / 27.5).log2()).abs() < 0.2);
        let silence = AudioClip { rate: SAMPLE_RATE, samples: vec![0.0; 16_000] };
        assert!(frames(&silence.samples).f0.iter().all(|&v| v == 0.0));
    }

    #[test]
    fn silence_and_clipping_are_low_quality() {
        let silence = AudioClip { rate: SAMPLE_RATE, samples: vec![0.0; 32_000] };
        assert!(low_quality(&silence));
        let clipped = AudioClip {
            rate: SAMPLE_RATE,
            samples: (0..32_000).map(|i| if i % 2 == 0 { 1.0 } else { -1.0 }).collect(),
        };
        assert!(low_quality(&clipped));
        assert!(low_quality(&AudioClip { rate: SAMPLE_RATE, samples: vec![] }));
        assert!(!low_quality(&tone_bursts(5.0, 1.0, 1.0)));
        // Segments beyond the clip give a row of an empty stretch, not a panic.
        let s = segment_features(&silence, &[Segment { start_ms: 5_000, end_ms: 9_000 }]);
        assert_eq!(s.len(), 1);
    }

    fn write_i16_wav(path: &Path, channels: u16, sample_rate: u32, interleaved: &[i16]) {
        let spec =
            hound::WavSpec { channels, sample_rate, bits_per_sample: 16, sample_format: hound::SampleFormat::Int };
        let mut w = hound::WavWriter::create(path, spec).expect("create");
        for &s in interleaved {
            w.write_sample(s).expect("write");
        }
        w.finalize().expect("finalize");
    }

    #[test]
    fn bad_wavs_are_clear_errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        let truncated = dir.path().join("t.wav");
        std::fs::write(&truncated, b"RIFF\x24\x00\x00\x00WAVEfmt ").expect("write");
        let e = read_wav(&truncated).unwrap_err().to_string();
        assert!(e.contains("t.wav"), "{e}");

        let wrong_rate = dir.path().join("r.wav");
        write_i16_wav(&wrong_rate, 1, 44_100, &[0]);
        let e = read_wav(&wrong_rate).unwrap_err().to_string();
        assert!(e.contains("44100 Hz"), "{e}");
    }

    #[test]
    fn stereo_16_bit_is_averaged_to_mono() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s.wav");
        write_i16_wav(&path, 2, 16_000, &[16384, 0].repeat(10));
        let clip = read_wav(&path).expect("reads");
        assert_eq!(clip.samples, vec![0.25; 10]);
    }
}
