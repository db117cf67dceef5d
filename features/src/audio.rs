//! Audio front-end (foundation version): 16 kHz mono PCM → session-level statistics.
//!
//! Frames of 25 ms every 10 ms. Per frame: RMS energy in dBFS and zero-crossing rate. A frame
//! is "speech" when its energy is above an adaptive floor (the 10th percentile + 15 dB, and at
//! least −55 dBFS). The session is summarised by [`FEATURE_NAMES`]. When utterance times are
//! known (from the transcript), only the participant's stretches are used.

use std::path::Path;

use crate::{FeatureError, mean_sd};

pub const SAMPLE_RATE: u32 = 16_000;
const FRAME: usize = 400; // 25 ms
const HOP: usize = 160; // 10 ms

/// Names of the audio features, in order.
pub const FEATURE_NAMES: &[&str] = &[
    "energy_db_mean",
    "energy_db_sd",
    "speech_energy_db_sd",
    "zcr_mean",
    "pause_ratio",
    "mean_pause_s",
    "speech_segments_per_min",
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
    let p = || path.display().to_string();
    let reader = hound::WavReader::open(path).map_err(|e| FeatureError::Wav { path: p(), detail: e.to_string() })?;
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

/// Audio features and quality.
#[derive(Debug, Clone, PartialEq)]
pub struct AudioSummary {
    pub features: Vec<f32>,
    /// Too little signal or too much clipping for the features to mean much.
    pub low_quality: bool,
}

/// Features over the given spans of `clip` (ms), or the whole clip when `spans` is empty.
pub fn audio_features(clip: &AudioClip, spans: &[(u32, u32)]) -> AudioSummary {
    let whole = [(0, (clip.duration_s() * 1000.0) as u32)];
    let spans = if spans.is_empty() { &whole[..] } else { spans };

    let mut energy = Vec::new();
    let mut zcr = Vec::new();
    let mut clipped = 0usize;
    let mut total = 0usize;
    for &(a, b) in spans {
        let x = clip.span(a, b);
        total += x.len();
        clipped += x.iter().filter(|v| v.abs() >= 0.999).count();
        let mut start = 0;
        while start + FRAME <= x.len() {
            let f = &x[start..start + FRAME];
            let rms = (f.iter().map(|v| v * v).sum::<f32>() / FRAME as f32).sqrt();
            energy.push(20.0 * rms.max(1e-6).log10());
            let crossings = f.windows(2).filter(|w| (w[0] >= 0.0) != (w[1] >= 0.0)).count();
            zcr.push(crossings as f32 / FRAME as f32);
            start += HOP;
        }
    }
    if energy.is_empty() {
        return AudioSummary { features: vec![0.0; FEATURE_NAMES.len()], low_quality: true };
    }

    let mut sorted = energy.clone();
    sorted.sort_by(f32::total_cmp);
    let floor = (sorted[sorted.len() / 10] + 15.0).max(-55.0);
    let speech: Vec<bool> = energy.iter().map(|&e| e > floor).collect();
    let speech_energy: Vec<f32> = energy.iter().zip(&speech).filter(|(_, s)| **s).map(|(e, _)| *e).collect();

    // Pauses: runs of ≥ 20 non-speech frames (200 ms). Segments: runs of speech.
    let (mut pauses, mut segments, mut run) = (Vec::new(), 0usize, 0usize);
    let mut prev = false;
    for &s in &speech {
        if s {
            if run >= 20 {
                pauses.push(run as f32 * HOP as f32 / SAMPLE_RATE as f32);
            }
            run = 0;
            if !prev {
                segments += 1;
            }
        } else {
            run += 1;
        }
        prev = s;
    }
    let minutes = energy.len() as f32 * HOP as f32 / SAMPLE_RATE as f32 / 60.0;
    let (e_mean, e_sd) = mean_sd(&energy);
    let (_, s_sd) = mean_sd(&speech_energy);
    let (z_mean, _) = mean_sd(&zcr);
    let (pause_mean, _) = mean_sd(&pauses);
    let speech_ratio = speech_energy.len() as f32 / energy.len() as f32;
    AudioSummary {
        features: vec![e_mean, e_sd, s_sd, z_mean, 1.0 - speech_ratio, pause_mean, segments as f32 / minutes.max(1e-3)],
        low_quality: speech_ratio < 0.05 || e_mean < -70.0 || clipped as f32 > 0.01 * total as f32,
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
    fn pauses_are_measured() {
        let s = audio_features(&tone_bursts(20.0, 1.0, 1.0), &[]);
        assert!(!s.low_quality);
        let pause_ratio = s.features[4];
        let mean_pause = s.features[5];
        assert!((pause_ratio - 0.5).abs() < 0.05, "{pause_ratio}");
        assert!((mean_pause - 1.0).abs() < 0.1, "{mean_pause}");
        let s2 = audio_features(&tone_bursts(20.0, 1.0, 3.0), &[]);
        assert!(s2.features[4] > pause_ratio + 0.15 && s2.features[5] > 2.5, "{:?}", s2.features);
    }

    #[test]
    fn silence_and_clipping_are_low_quality() {
        let silence = AudioClip { rate: SAMPLE_RATE, samples: vec![0.0; 32_000] };
        assert!(audio_features(&silence, &[]).low_quality);
        let clipped = AudioClip {
            rate: SAMPLE_RATE,
            samples: (0..32_000).map(|i| if i % 2 == 0 { 1.0 } else { -1.0 }).collect(),
        };
        assert!(audio_features(&clipped, &[]).low_quality);
        let empty = AudioClip { rate: SAMPLE_RATE, samples: vec![] };
        assert!(audio_features(&empty, &[]).low_quality);
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
