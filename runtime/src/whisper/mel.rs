//! Whisper's log-mel front-end, as faster-whisper's `FeatureExtractor` computes it (the model
//! was trained on OpenAI's, which this equals): 16 kHz input, 400-sample periodic Hann windows
//! every 160 samples (10 ms) centred with reflect padding, power spectrum, 80 Slaney-normalised
//! mel bands up to 8 kHz, `log10` floored at 1e-10, then clamped to 8 decades below the
//! loudest value of the whole input and scaled as `(x + 4) / 4`.

use std::sync::Arc;

use realfft::{RealFftPlanner, RealToComplex};

/// Samples per second Whisper takes.
pub const SAMPLE_RATE: u32 = 16_000;
/// FFT size and window length.
pub const N_FFT: usize = 400;
/// Samples between frames.
pub const HOP: usize = 160;
/// Mel bands.
pub const N_MELS: usize = 80;
/// Frames in one 30-s encoder window.
pub const WINDOW_FRAMES: usize = 3000;
const BINS: usize = N_FFT / 2 + 1;

/// The mel filter bank `[N_MELS][BINS]`, computed as faster-whisper's `get_mel_filters` does
/// (librosa's Slaney mel scale without htk, Slaney area normalisation), in f64 then stored f32.
pub fn mel_filters() -> Vec<[f32; BINS]> {
    let sr = f64::from(SAMPLE_RATE);
    let fft_freqs: Vec<f64> = (0..BINS).map(|i| i as f64 * sr / N_FFT as f64).collect();
    let (min_mel, max_mel) = (0.0f64, 45.245640471924965f64);
    let f_sp = 200.0 / 3.0;
    let (min_log_hz, min_log_mel, logstep) = (1000.0f64, 1000.0 / f_sp, 6.4f64.ln() / 27.0);
    let freqs: Vec<f64> = (0..N_MELS + 2)
        .map(|i| {
            // numpy's linspace: start + i·step, the last point exact.
            let m = if i == N_MELS + 1 {
                max_mel
            } else {
                min_mel + i as f64 * ((max_mel - min_mel) / (N_MELS + 1) as f64)
            };
            if m >= min_log_mel { min_log_hz * (logstep * (m - min_log_mel)).exp() } else { f_sp * m }
        })
        .collect();
    (0..N_MELS)
        .map(|m| {
            let enorm = 2.0 / (freqs[m + 2] - freqs[m]);
            let mut row = [0f32; BINS];
            for (k, w) in row.iter_mut().enumerate() {
                let lower = -(freqs[m] - fft_freqs[k]) / (freqs[m + 1] - freqs[m]);
                let upper = (freqs[m + 2] - fft_freqs[k]) / (freqs[m + 2] - freqs[m + 1]);
                *w = (0f64.max(lower.min(upper)) * enorm) as f32;
            }
            row
        })
        .collect()
}

/// Computes log-mel spectrograms; holds the FFT plan and the filter bank.
pub struct LogMel {
    fft: Arc<dyn RealToComplex<f32>>,
    window: [f32; N_FFT],
    filters: Vec<[f32; BINS]>,
}

impl std::fmt::Debug for LogMel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogMel").finish_non_exhaustive()
    }
}

impl Default for LogMel {
    fn default() -> Self {
        LogMel::new()
    }
}

impl LogMel {
    pub fn new() -> LogMel {
        let mut window = [0f32; N_FFT];
        for (i, w) in window.iter_mut().enumerate() {
            // numpy's hanning(N + 1)[:-1] (periodic Hann), in f64 then f32.
            *w = (0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / N_FFT as f64).cos()) as f32;
        }
        LogMel { fft: RealFftPlanner::new().plan_fft_forward(N_FFT), window, filters: mel_filters() }
    }

    /// The log-mel spectrogram of 16 kHz `samples`, band-major `[N_MELS][frames]` with
    /// `frames = samples / HOP` (faster-whisper's `features[:, :-1]`). Empty input gives no
    /// frames.
    pub fn compute(&self, samples: &[f32]) -> (Vec<f32>, usize) {
        let frames = samples.len() / HOP;
        if frames == 0 {
            return (Vec::new(), 0);
        }
        // faster-whisper pads 160 zeros at the end, then reflects N_FFT/2 samples at both ends.
        let mut padded = Vec::with_capacity(samples.len() + HOP + N_FFT);
        let half = N_FFT / 2;
        let mut body = samples.to_vec();
        body.extend(std::iter::repeat_n(0.0, HOP));
        padded.extend((1..=half).rev().map(|i| body[i.min(body.len() - 1)]));
        padded.extend_from_slice(&body);
        let n = body.len();
        padded.extend((0..half).map(|i| body[n.saturating_sub(2 + i)]));
        let mut out = vec![0f32; N_MELS * frames];
        let mut input = self.fft.make_input_vec();
        let mut spectrum = self.fft.make_output_vec();
        let mut scratch = self.fft.make_scratch_vec();
        let mut power = [0f32; BINS];
        for t in 0..frames {
            let frame = &padded[t * HOP..t * HOP + N_FFT];
            for ((x, s), w) in input.iter_mut().zip(frame).zip(&self.window) {
                *x = s * w;
            }
            // The lengths are the plan's own: this cannot fail.
            let _ = self.fft.process_with_scratch(&mut input, &mut spectrum, &mut scratch);
            for (p, c) in power.iter_mut().zip(&spectrum) {
                *p = c.re * c.re + c.im * c.im;
            }
            for (m, row) in self.filters.iter().enumerate() {
                let e: f32 = row.iter().zip(&power).map(|(w, p)| w * p).sum();
                out[m * frames + t] = e.max(1e-10).log10();
            }
        }
        let max = out.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
        for v in &mut out {
            *v = (v.max(max - 8.0) + 4.0) / 4.0;
        }
        (out, frames)
    }
}

/// Frames `start..start + WINDOW_FRAMES` of a band-major spectrogram, zero-padded past its end
/// (faster-whisper's `pad_or_trim`), as the encoder's `[N_MELS][WINDOW_FRAMES]` input.
pub fn window(mel: &[f32], frames: usize, start: usize) -> Vec<f32> {
    let mut out = vec![0f32; N_MELS * WINDOW_FRAMES];
    let take = frames.saturating_sub(start).min(WINDOW_FRAMES);
    for m in 0..N_MELS {
        out[m * WINDOW_FRAMES..m * WINDOW_FRAMES + take]
            .copy_from_slice(&mel[m * frames + start..m * frames + start + take]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_filter_bank_is_slaney_triangles_up_to_8_khz() {
        let f = mel_filters();
        assert_eq!(f.len(), N_MELS);
        // Each band is one triangle: non-zero on a contiguous run of bins, peaks increasing.
        let mut last_peak = 0;
        for row in &f {
            let nz: Vec<usize> = (0..BINS).filter(|&k| row[k] > 0.0).collect();
            assert!(!nz.is_empty());
            assert_eq!(nz.last().unwrap() - nz[0] + 1, nz.len());
            let peak = (0..BINS).max_by(|&a, &b| row[a].total_cmp(&row[b])).unwrap();
            assert!(peak >= last_peak);
            last_peak = peak;
        }
        // The first band's weights as librosa.filters.mel(sr=16000, n_fft=400, n_mels=80) gives.
        assert!((f[0][1] - 0.024_862_8).abs() < 1e-6, "{}", f[0][1]);
    }

    #[test]
    fn a_tone_lights_its_band_and_silence_is_the_floor() {
        let lm = LogMel::new();
        let tone: Vec<f32> =
            (0..16_000).map(|i| (2.0 * std::f32::consts::PI * 1000.0 * i as f32 / 16_000.0).sin()).collect();
        let (mel, frames) = lm.compute(&tone);
        assert_eq!(frames, 100);
        let t = 50;
        let band = (0..N_MELS).max_by(|&a, &b| mel[a * frames + t].total_cmp(&mel[b * frames + t])).unwrap();
        let centre_hz = |m: usize| {
            let row = &lm.filters[m];
            (0..BINS).max_by(|&a, &b| row[a].total_cmp(&row[b])).unwrap() as f32 * 40.0
        };
        assert!((centre_hz(band) - 1000.0).abs() <= 40.0, "band {band} at {} Hz", centre_hz(band));
        let (quiet, n) = lm.compute(&vec![0.0; 3200]);
        assert_eq!(n, 20);
        // All −10 decades: clamped to itself, scaled to (−10 + 4) / 4.
        assert!(quiet.iter().all(|&v| v == -1.5));
        assert_eq!(lm.compute(&[0.1; 100]).1, 0);
        let w = window(&mel, frames, 0);
        assert_eq!(w.len(), N_MELS * WINDOW_FRAMES);
        assert_eq!(w[WINDOW_FRAMES + 3], mel[frames + 3]);
        assert_eq!(w[WINDOW_FRAMES + 150], 0.0);
    }
}
