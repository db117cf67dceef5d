//! Audio front-end: PCM → frame-level descriptors → per-segment functionals.
//!
//! * [`read_wav`]: 8/16/24/32-bit integer or 32-bit float WAV, any channel count (averaged),
//!   any rate (resampled to 16 kHz by [`resample`](mod@resample), soxr-HQ's response).
//! * [`spectral`]: power/log-mel spectra and MFCCs, librosa's definitions (validated against
//!   librosa by `bench/run audio` and the committed reference fixture).
//! * [`pitch`]: Boersma/Praat-style autocorrelation F0, HNR, jitter, shimmer (validated against
//!   parselmouth the same way).
//! * [`lld`]: the streaming extractor, 100 frames/s of [`lld::LLD_NAMES`].
//! * [`segment_features`]: per segment, the eGeMAPS-like functionals of [`FEATURE_NAMES`] —
//!   means, deviations and percentiles of the LLDs plus pause and speech-rate statistics. A
//!   frame is speech when its energy is above the session's adaptive floor (the 10th percentile
//!   plus 15 dB, at least −55 dBFS); voice-quality and spectral-balance functionals average voiced
//!   frames only, as eGeMAPS does.

pub mod decode;
pub mod lld;
pub mod pitch;
pub mod reference;
pub mod resample;
pub mod spectral;

use std::io::Read;
use std::path::Path;

use crate::segment::Segment;
use crate::{FeatureError, Sequence, mean_sd, quantile};
use lld::{Lld, idx};

pub use lld::{LldExtractor, llds, semitones};

/// Dot product with eight independent accumulators, so that the compiler vectorises it (a plain
/// `.sum()` over f32 must keep its sequential order and stays scalar).
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (ca, cb) = (a[..n].chunks_exact(8), b[..n].chunks_exact(8));
    let tail: f32 = ca.remainder().iter().zip(cb.remainder()).map(|(x, y)| x * y).sum();
    let mut acc = [0.0f32; 8];
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// Sum with eight accumulators (see [`dot`]).
pub(crate) fn sum(a: &[f32]) -> f32 {
    let c = a.chunks_exact(8);
    let tail: f32 = c.remainder().iter().sum();
    let mut acc = [0.0f32; 8];
    for x in c {
        for i in 0..8 {
            acc[i] += x[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// The rate every front-end works at; other rates are resampled on reading.
pub const SAMPLE_RATE: u32 = 16_000;

/// Names of the per-segment audio features, in order.
pub const FEATURE_NAMES: &[&str] = &[
    "duration_s",
    "loudness_mean",
    "loudness_sd",
    "loudness_p20",
    "loudness_p80",
    "energy_db_mean",
    "energy_db_sd",
    "zcr_mean",
    "voiced_ratio",
    "f0_mean_st",
    "f0_sd_st",
    "f0_range_st",
    "f0_p50_st",
    "jitter_mean",
    "shimmer_mean",
    "hnr_mean_db",
    "alpha_ratio_mean_db",
    "hammarberg_mean_db",
    "slope_0_500_mean",
    "slope_500_1500_mean",
    "flux_mean",
    "flux_sd",
    "mfcc1_mean",
    "mfcc2_mean",
    "mfcc3_mean",
    "mfcc4_mean",
    "mfcc1_sd",
    "mfcc2_sd",
    "mfcc3_sd",
    "mfcc4_sd",
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

    /// This clip at [`SAMPLE_RATE`] (a copy when it already is).
    pub fn to_frontend_rate(&self) -> Result<AudioClip, FeatureError> {
        if self.rate == SAMPLE_RATE {
            return Ok(self.clone());
        }
        Ok(AudioClip { rate: SAMPLE_RATE, samples: resample(&self.samples, self.rate)? })
    }
}

/// The samples of a recording's answer windows only, at [`SAMPLE_RATE`]: what a live kiosk keeps
/// for the device's transcription while the rest of the recording is analysed as it arrives.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AnswerAudio {
    /// Each window: its start on the recording's clock (ms) and its samples, in order.
    pub windows: Vec<(u32, Vec<f32>)>,
}

impl AnswerAudio {
    /// The samples of the kept window that overlaps `start_ms..end_ms` the most, cut to the
    /// overlap; `None` when no window overlaps it. The kiosk's clock and the microphone's
    /// sample count can differ by a buffer's latency, so windows are matched by overlap.
    pub fn span(&self, start_ms: u32, end_ms: u32) -> Option<&[f32]> {
        let end_of =
            |w: &(u32, Vec<f32>)| w.0.saturating_add((w.1.len() as u64 * 1000 / u64::from(SAMPLE_RATE)) as u32);
        let overlap = |w: &(u32, Vec<f32>)| end_of(w).min(end_ms).saturating_sub(w.0.max(start_ms));
        let w = self.windows.iter().filter(|w| overlap(w) > 0).max_by_key(|w| overlap(w))?;
        let at =
            |ms: u32| ((u64::from(ms.saturating_sub(w.0)) * u64::from(SAMPLE_RATE) / 1000) as usize).min(w.1.len());
        Some(&w.1[at(start_ms)..at(end_ms.max(start_ms))])
    }

    /// Samples kept, all windows.
    pub fn samples(&self) -> usize {
        self.windows.iter().map(|w| w.1.len()).sum()
    }
}

/// Resamples mono `samples` from `rate` to [`SAMPLE_RATE`] (see [`resample`](mod@resample):
/// soxr-HQ's response, no delay, the whole clip).
pub fn resample(samples: &[f32], rate: u32) -> Result<Vec<f32>, FeatureError> {
    if !(4_000..=384_000).contains(&rate) {
        return Err(FeatureError::UnsupportedAudio {
            path: format!("{rate} Hz audio"),
            detail: format!("sample rate {rate} Hz is outside 4–384 kHz"),
        });
    }
    Ok(resample::resample(samples, rate, SAMPLE_RATE))
}

/// Reads a recording as 16 kHz mono, whatever its format: PCM WAV by [`read_wav`] (its precise
/// errors for a truncated or damaged WAV), anything else — µ-law/A-law/ADPCM WAV, FLAC, Ogg
/// Vorbis, MP3 — by [`decode::decode`], recognised from the content, not the name.
pub fn read_audio(path: &Path) -> Result<AudioClip, FeatureError> {
    let origin = path.display().to_string();
    let mut head = [0u8; 12];
    let n = std::fs::File::open(path)
        .and_then(|mut f| read_up_to(&mut f, &mut head))
        .map_err(|source| FeatureError::Io { path: origin.clone(), source })?;
    let riff_wave = n == 12 && matches!(&head[..4], b"RIFF" | b"RIFX") && &head[8..] == b"WAVE";
    if riff_wave {
        match read_wav(path) {
            Err(FeatureError::Wav { source: hound::Error::Unsupported, .. }) => {}
            other => return other,
        }
    }
    let clip = decode::decode(path)?;
    clip.to_frontend_rate().map_err(|e| match e {
        FeatureError::UnsupportedAudio { detail, .. } => FeatureError::UnsupportedAudio { path: origin, detail },
        other => other,
    })
}

fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// Reads a WAV file as 16 kHz mono. See [`read_wav_from`].
pub fn read_wav(path: &Path) -> Result<AudioClip, FeatureError> {
    let origin = path.display().to_string();
    let file = std::fs::File::open(path).map_err(|source| FeatureError::Io { path: origin.clone(), source })?;
    read_wav_from(std::io::BufReader::new(file), &origin)
}

/// Reads a WAV from any reader (a member of a zip archive, bytes in memory) as 16 kHz mono:
/// 8/16/24/32-bit integer or 32-bit float PCM, channels averaged, other rates resampled.
/// Anything else (A-law, ADPCM, 64-bit float, a truncated header or data) is a clear error
/// naming `origin`.
pub fn read_wav_from<R: Read>(r: R, origin: &str) -> Result<AudioClip, FeatureError> {
    let p = || origin.to_owned();
    let reader = hound::WavReader::new(r).map_err(|source| FeatureError::Wav { path: p(), source })?;
    let spec = reader.spec();
    if spec.channels == 0 {
        return Err(FeatureError::UnsupportedAudio { path: p(), detail: "0 channels".into() });
    }
    let frames = reader.duration();
    let (interleaved, cut): (Vec<f32>, Option<hound::Error>) = match (spec.sample_format, spec.bits_per_sample) {
        (hound::SampleFormat::Int, bits @ (8 | 16 | 24 | 32)) => {
            let scale = 1.0 / (1u64 << (bits - 1)) as f32;
            collect_until_error(reader.into_samples::<i32>().map(|s| s.map(|v| v as f32 * scale)))
        }
        (hound::SampleFormat::Float, 32) => collect_until_error(reader.into_samples::<f32>()),
        (fmt, bits) => {
            return Err(FeatureError::UnsupportedAudio { path: p(), detail: format!("{bits}-bit {fmt:?} samples") });
        }
    };
    let ch = usize::from(spec.channels);
    if let Some(e) = cut {
        // A recording cut short is reported, not silently shortened: for training its labels
        // describe the whole interview.
        return Err(FeatureError::TruncatedWav {
            path: p(),
            frames: interleaved.len() / ch,
            expected: frames,
            source: e,
        });
    }
    let mono: Vec<f32> = if ch == 1 {
        interleaved
    } else {
        interleaved.chunks_exact(ch).map(|c| c.iter().sum::<f32>() / ch as f32).collect()
    };
    let clip = AudioClip { rate: spec.sample_rate, samples: mono };
    clip.to_frontend_rate().map_err(|e| match e {
        FeatureError::UnsupportedAudio { detail, .. } => FeatureError::UnsupportedAudio { path: p(), detail },
        other => other,
    })
}

fn collect_until_error<T>(it: impl Iterator<Item = Result<T, hound::Error>>) -> (Vec<T>, Option<hound::Error>) {
    let mut out = Vec::new();
    for s in it {
        match s {
            Ok(v) => out.push(v),
            Err(e) => return (out, Some(e)),
        }
    }
    (out, None)
}

/// The LLDs of a clip plus what the functionals need from the whole session.
#[derive(Debug, Clone)]
pub struct Analysis {
    pub frames: Vec<Lld>,
    /// Speech/non-speech energy threshold, dBFS.
    pub speech_floor_db: f32,
    /// Too little signal or too much clipping for the features to mean much.
    pub low_quality: bool,
    /// Length of the audio analysed, ms.
    pub duration_ms: u32,
}

/// Runs the LLD extractor over a clip (resampled to 16 kHz if needed).
pub fn analyse(clip: &AudioClip) -> Result<Analysis, FeatureError> {
    let at_rate;
    let samples = if clip.rate == SAMPLE_RATE {
        &clip.samples
    } else {
        at_rate = clip.to_frontend_rate()?;
        &at_rate.samples
    };
    let mut a = Analyser::default();
    a.push(samples);
    Ok(a.finish())
}

/// [`analyse`] as the samples arrive (16 kHz, any chunk sizes): a live recording keeps only its
/// frames and their pitch candidates (26 values and 128 bytes every 10 ms: 14 MB for 10 minutes,
/// against 38 MB of samples), and its analysis equals the whole clip's.
#[derive(Debug, Default)]
pub struct Analyser {
    x: LldExtractor,
    frames: Vec<Lld>,
    samples: usize,
    clipped: usize,
}

impl Analyser {
    /// Takes the next samples.
    pub fn push(&mut self, samples: &[f32]) {
        self.x.push(samples, &mut self.frames);
        self.samples += samples.len();
        self.clipped += samples.iter().filter(|v| v.abs() >= 0.999).count();
    }

    /// Seconds of audio taken.
    pub fn duration_s(&self) -> f32 {
        self.samples as f32 / SAMPLE_RATE as f32
    }

    /// The analysis of everything taken, voicing decided along Praat's path over it all.
    pub fn finish(mut self) -> Analysis {
        self.x.decide_voicing(&mut self.frames);
        let frames = self.frames;
        let energy: Vec<f32> = frames.iter().map(|f| f[idx::ENERGY_DB]).collect();
        let floor = speech_floor(&energy);
        let low_quality = if energy.is_empty() {
            true
        } else {
            let speech = energy.iter().filter(|&&e| e > floor).count() as f32 / energy.len() as f32;
            let (mean_db, _) = mean_sd(&energy);
            speech < 0.05 || mean_db < -70.0 || self.clipped as f32 > 0.01 * self.samples as f32
        };
        Analysis {
            frames,
            speech_floor_db: floor,
            low_quality,
            duration_ms: (self.samples as u64 * 1000 / u64::from(SAMPLE_RATE)) as u32,
        }
    }
}

/// The session's speech/non-speech energy threshold (dBFS).
fn speech_floor(energy_db: &[f32]) -> f32 {
    (quantile(energy_db, 0.1) + 15.0).max(-55.0)
}

/// Too little signal or too much clipping for the features to mean much. A clip that cannot be
/// resampled is low quality too.
pub fn low_quality(clip: &AudioClip) -> bool {
    analyse(clip).map_or(true, |a| a.low_quality)
}

/// Per-segment functionals ([`FEATURE_NAMES`]) of an analysed clip, one row per segment.
/// Segments beyond the clip give rows of an empty stretch.
pub fn functionals(a: &Analysis, segments: &[Segment]) -> Sequence {
    let hop_s = lld::HOP as f32 / SAMPLE_RATE as f32;
    let n = a.frames.len();
    // Frame i is centred at CENTRE + i·HOP samples; a segment takes the frames centred inside it.
    let frame_at = |ms: u32| -> usize {
        let sample = u64::from(ms) * u64::from(SAMPLE_RATE) / 1000;
        (sample.saturating_sub(lld::CENTRE as u64).div_ceil(lld::HOP as u64) as usize).min(n)
    };
    let mut seq = Sequence::new(FEATURE_NAMES.len());
    for seg in segments {
        let (lo, hi) = (frame_at(seg.start_ms), frame_at(seg.end_ms).max(frame_at(seg.start_ms)));
        let f = &a.frames[lo..hi];
        let col = |i: usize, keep: &dyn Fn(&Lld) -> bool| -> Vec<f32> {
            f.iter().filter(|l| keep(l)).map(|l| l[i]).collect()
        };
        let all = |_: &Lld| true;
        let voiced = |l: &Lld| l[idx::F0_ST] > 0.0;
        let speech = |l: &Lld| l[idx::ENERGY_DB] > a.speech_floor_db;
        let mean = |v: &[f32]| mean_sd(v).0;
        let sd = |v: &[f32]| mean_sd(v).1;

        let loud = col(idx::LOUDNESS, &all);
        let energy = col(idx::ENERGY_DB, &all);
        let f0 = col(idx::F0_ST, &voiced);
        let flux = col(idx::FLUX, &speech);
        let is_speech: Vec<bool> = f.iter().map(speech).collect();
        let (mut pauses, mut run) = (Vec::new(), 0usize);
        for &s in &is_speech {
            if s {
                if run >= 15 {
                    pauses.push(run as f32 * hop_s);
                }
                run = 0;
            } else {
                run += 1;
            }
        }
        let onsets = f.windows(3).filter(|w| !voiced(&w[0]) && voiced(&w[1]) && voiced(&w[2])).count();
        let frames = f.len().max(1) as f32;
        let dur = f.len() as f32 * hop_s;
        let mut row = vec![
            dur,
            mean(&loud),
            sd(&loud),
            quantile(&loud, 0.2),
            quantile(&loud, 0.8),
            if energy.is_empty() { -120.0 } else { mean(&energy) },
            sd(&energy),
            mean(&col(idx::ZCR, &all)),
            f0.len() as f32 / frames,
            mean(&f0),
            sd(&f0),
            quantile(&f0, 0.9) - quantile(&f0, 0.1),
            quantile(&f0, 0.5),
            mean(&col(idx::JITTER, &voiced)),
            mean(&col(idx::SHIMMER, &voiced)),
            mean(&col(idx::HNR_DB, &voiced)),
            mean(&col(idx::ALPHA_RATIO, &voiced)),
            mean(&col(idx::HAMMARBERG, &voiced)),
            mean(&col(idx::SLOPE_0_500, &voiced)),
            mean(&col(idx::SLOPE_500_1500, &voiced)),
            mean(&flux),
            sd(&flux),
        ];
        let mfcc: Vec<Vec<f32>> = (1..=4).map(|k| col(idx::MFCC0 + k, &speech)).collect();
        row.extend(mfcc.iter().map(|c| mean(c)));
        row.extend(mfcc.iter().map(|c| sd(c)));
        row.extend([
            is_speech.iter().filter(|s| !**s).count() as f32 / frames,
            mean(&pauses),
            if dur > 0.0 { onsets as f32 / dur } else { 0.0 },
        ]);
        seq.push(&row);
    }
    seq
}

/// [`analyse`] then [`functionals`]; a clip that cannot be analysed gives no rows.
pub fn segment_features(clip: &AudioClip, segments: &[Segment]) -> Sequence {
    match analyse(clip) {
        Ok(a) => functionals(&a, segments),
        Err(e) => {
            tracing::warn!("audio not analysed: {e}");
            Sequence::new(FEATURE_NAMES.len())
        }
    }
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

    #[test]
    fn an_analysis_made_as_samples_arrive_equals_the_whole_clips() {
        let clip = tone_bursts(3.0, 0.3, 0.2);
        let whole = analyse(&clip).expect("analyses");
        let mut live = Analyser::default();
        // A microphone's periods, of uneven length.
        for chunk in clip.samples.chunks(1_337) {
            live.push(chunk);
        }
        assert!((live.duration_s() - 3.0).abs() < 1e-3);
        let live = live.finish();
        assert_eq!(live.frames, whole.frames);
        assert_eq!(
            (live.speech_floor_db, live.low_quality, live.duration_ms),
            (whole.speech_floor_db, whole.low_quality, 3_000)
        );
        assert!(!whole.low_quality && Analyser::default().finish().low_quality, "an empty recording is low quality");
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
            let mut x = LldExtractor::new();
            x.push(&clip.samples, &mut Vec::new());
            let voiced: Vec<f32> = x.f0_hz().iter().copied().filter(|&v| v > 0.0).collect();
            assert!(voiced.len() > 80, "{hz} Hz: only {} voiced frames", voiced.len());
            let med = quantile(&voiced, 0.5);
            assert!((med - hz).abs() < 0.5, "{hz} Hz estimated as {med}");
        }
        let flat = whole(&voice(4.0, |_| 120.0));
        let lively = whole(&voice(4.0, |t| 120.0 * (1.0 + 0.2 * (2.0 * std::f32::consts::PI * 0.8 * t).sin())));
        assert!(flat[col("f0_sd_st")] < 0.2, "{flat:?}");
        assert!(lively[col("f0_sd_st")] > 1.5 && lively[col("f0_range_st")] > 4.0, "{lively:?}");
        assert!((flat[col("f0_mean_st")] - semitones(120.0)).abs() < 0.1);
        assert!((flat[col("f0_p50_st")] - semitones(120.0)).abs() < 0.1);
        assert!(flat[col("hnr_mean_db")] > 15.0 && flat[col("jitter_mean")] < 0.01, "{flat:?}");
        let silence = AudioClip { rate: SAMPLE_RATE, samples: vec![0.0; 16_000] };
        assert!(llds(&silence.samples).iter().all(|l| l[idx::F0_ST] == 0.0));
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

        // A-law (format tag 6): a well-formed header of an encoding this front-end does not read.
        let mut alaw = b"RIFF\x2c\x00\x00\x00WAVEfmt \x12\x00\x00\x00\x06\x00\x01\x00".to_vec();
        alaw.extend_from_slice(&8000u32.to_le_bytes());
        alaw.extend_from_slice(&8000u32.to_le_bytes());
        alaw.extend_from_slice(b"\x01\x00\x08\x00\x00\x00data\x04\x00\x00\x00\x00\x00\x00\x00");
        let e = read_wav_from(&alaw[..], "alaw.wav").unwrap_err().to_string();
        assert!(e.contains("alaw.wav"), "{e}");

        // Data cut in the middle: the error says where.
        let whole = dir.path().join("w.wav");
        write_i16_wav(&whole, 1, 16_000, &[1000; 1000]);
        let bytes = std::fs::read(&whole).expect("read");
        let e = read_wav_from(&bytes[..bytes.len() - 501], "cut.wav").unwrap_err().to_string();
        assert!(e.contains("cut.wav") && e.contains("truncated after 749 of 1000"), "{e}");
        assert!(read_wav_from(&bytes[..30], "hdr.wav").is_err());
    }

    #[test]
    fn other_rates_are_resampled_keeping_pitch_and_duration() {
        let dir = tempfile::tempdir().expect("tempdir");
        for rate in [8_000u32, 22_050, 44_100, 48_000] {
            let path = dir.path().join(format!("r{rate}.wav"));
            let n = rate as usize * 2;
            let tone: Vec<i16> = (0..n)
                .map(|i| {
                    let ph = 2.0 * std::f32::consts::PI * 200.0 * i as f32 / rate as f32;
                    (8000.0 * (ph.sin() + 0.5 * (2.0 * ph).sin())) as i16
                })
                .collect();
            write_i16_wav(&path, 1, rate, &tone);
            let clip = read_wav(&path).expect("resampled");
            assert_eq!(clip.rate, SAMPLE_RATE);
            assert!((clip.samples.len() as i64 - 32_000).abs() <= 2, "{rate}: {} samples", clip.samples.len());
            let mut x = LldExtractor::new();
            x.push(&clip.samples, &mut Vec::new());
            let f0 = quantile(&x.f0_hz().iter().copied().filter(|&v| v > 0.0).collect::<Vec<_>>(), 0.5);
            assert!((f0 - 200.0).abs() < 0.5, "{rate}: {f0} Hz");
        }
        let eight_bit = dir.path().join("u8.wav");
        let spec = hound::WavSpec {
            channels: 3,
            sample_rate: 16_000,
            bits_per_sample: 8,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::create(&eight_bit, spec).expect("create");
        for s in [64i8, 0, -64].repeat(5) {
            w.write_sample(s).expect("write");
        }
        w.finalize().expect("finalize");
        assert_eq!(read_wav(&eight_bit).expect("8-bit, 3 channels").samples, vec![0.0; 5]);
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
