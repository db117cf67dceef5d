//! Power spectra, log-mel spectra and MFCCs.
//!
//! One [`MelSpectrum`] computes everything per analysis frame; whole-signal framing
//! ([`MelSpectrum::mfcc`]) is a thin loop around the same code. The definitions follow
//! librosa's (`feature.mfcc` → `melspectrogram` → `power_to_db` → `dct(type 2, ortho)`), so the
//! reference check can run librosa with the same parameters ([`MelConfig::librosa_default`])
//! and compare numbers, while the device uses [`MelConfig::FRONTEND`] through the very same
//! functions.
//!
//! Written here, not taken from a crate: the crates that compute MFCCs (e.g. `mfcc`, `aubio`)
//! either use other mel/DCT conventions than librosa or bind C; what is hand-written is only the
//! filterbank and DCT tables (the FFT is realfft).

use std::sync::Arc;

use realfft::{RealFftPlanner, RealToComplex, num_complex::Complex};

/// Parameters of the mel front-end, named as librosa names them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MelConfig {
    pub sample_rate: u32,
    pub n_fft: usize,
    /// Analysis window length (periodic Hann), ≤ `n_fft`.
    pub win_length: usize,
    pub hop: usize,
    pub n_mels: usize,
    pub n_mfcc: usize,
    pub fmin: f32,
    pub fmax: f32,
    /// Zero-pad `n_fft / 2` samples on both sides so frame `t` is centred on `t · hop`.
    pub center: bool,
    /// Clamp the log-mel spectrum to `max − top_db` over the whole signal (librosa's
    /// `power_to_db(top_db=80)`). Needs the whole signal, so the streaming front-end leaves it off.
    pub top_db: Option<f32>,
}

/// librosa's `power_to_db` floor.
pub const AMIN: f32 = 1e-10;

impl MelConfig {
    /// The device front-end: 25 ms windows every 10 ms at 16 kHz, 40 mel bands, 13 MFCCs.
    pub const FRONTEND: MelConfig = MelConfig {
        sample_rate: 16_000,
        n_fft: 512,
        win_length: 400,
        hop: 160,
        n_mels: 40,
        n_mfcc: 13,
        fmin: 0.0,
        fmax: 8_000.0,
        center: false,
        top_db: None,
    };

    /// `librosa.feature.mfcc(y=y, sr=sample_rate)` with all other arguments at their defaults.
    pub fn librosa_default(sample_rate: u32) -> MelConfig {
        MelConfig {
            sample_rate,
            n_fft: 2048,
            win_length: 2048,
            hop: 512,
            n_mels: 128,
            n_mfcc: 20,
            fmin: 0.0,
            fmax: sample_rate as f32 / 2.0,
            center: true,
            top_db: Some(80.0),
        }
    }

    pub fn n_bins(&self) -> usize {
        self.n_fft / 2 + 1
    }
}

/// Slaney's mel scale (librosa `hz_to_mel(htk=False)`): linear below 1 kHz, logarithmic above.
pub fn hz_to_mel(hz: f64) -> f64 {
    let (f_sp, min_log_hz, min_log_mel, logstep) = (200.0 / 3.0, 1000.0, 15.0, (6.4f64).ln() / 27.0);
    if hz >= min_log_hz { min_log_mel + (hz / min_log_hz).ln() / logstep } else { hz / f_sp }
}

/// Inverse of [`hz_to_mel`].
pub fn mel_to_hz(mel: f64) -> f64 {
    let (f_sp, min_log_hz, min_log_mel, logstep) = (200.0 / 3.0, 1000.0, 15.0, (6.4f64).ln() / 27.0);
    if mel >= min_log_mel { min_log_hz * (logstep * (mel - min_log_mel)).exp() } else { mel * f_sp }
}

/// librosa's `filters.mel(norm="slaney")`: triangles on the Slaney mel scale, each scaled to unit
/// area. Computed in f64 like librosa, stored as f32. Row-major `[n_mels][n_bins]`.
pub fn mel_filterbank(cfg: &MelConfig) -> Vec<Vec<f32>> {
    let n_bins = cfg.n_bins();
    let fft_freqs: Vec<f64> =
        (0..n_bins).map(|k| k as f64 * f64::from(cfg.sample_rate) / 2.0 / (n_bins - 1) as f64).collect();
    let (lo, hi) = (hz_to_mel(f64::from(cfg.fmin)), hz_to_mel(f64::from(cfg.fmax)));
    let n = cfg.n_mels + 2;
    let mel_f: Vec<f64> = (0..n).map(|i| mel_to_hz(lo + (hi - lo) * i as f64 / (n - 1) as f64)).collect();
    (0..cfg.n_mels)
        .map(|i| {
            let (f0, f1, f2) = (mel_f[i], mel_f[i + 1], mel_f[i + 2]);
            let enorm = 2.0 / (f2 - f0);
            fft_freqs
                .iter()
                .map(|&f| {
                    let lower = (f - f0) / (f1 - f0);
                    let upper = (f2 - f) / (f2 - f1);
                    (lower.min(upper).max(0.0) * enorm) as f32
                })
                .collect()
        })
        .collect()
}

/// Periodic Hann window (scipy `get_window("hann", n, fftbins=True)`).
pub fn hann(n: usize) -> Vec<f32> {
    (0..n).map(|i| (0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / n as f64).cos()) as f32).collect()
}

/// Orthonormal DCT-II matrix, `[n_out][n_in]` (scipy `dct(type=2, norm="ortho")`).
fn dct_matrix(n_out: usize, n_in: usize) -> Vec<Vec<f32>> {
    (0..n_out)
        .map(|k| {
            let scale = if k == 0 { (1.0 / n_in as f64).sqrt() } else { (2.0 / n_in as f64).sqrt() };
            (0..n_in)
                .map(|n| {
                    (scale * (std::f64::consts::PI * k as f64 * (2 * n + 1) as f64 / (2 * n_in) as f64).cos()) as f32
                })
                .collect()
        })
        .collect()
}

/// A mel filterbank's non-zero span per band, so the band sums skip the zeros.
#[derive(Debug, Clone)]
struct Band {
    first: usize,
    weights: Vec<f32>,
}

/// Computes the power spectrum, log-mel spectrum and MFCCs of analysis frames. Reuses its FFT plan
/// and buffers; one per thread.
pub struct MelSpectrum {
    cfg: MelConfig,
    window: Vec<f32>,
    fft: Arc<dyn RealToComplex<f32>>,
    input: Vec<f32>,
    spectrum: Vec<Complex<f32>>,
    scratch: Vec<Complex<f32>>,
    bands: Vec<Band>,
    dct: Vec<Vec<f32>>,
}

impl std::fmt::Debug for MelSpectrum {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MelSpectrum").field("cfg", &self.cfg).finish_non_exhaustive()
    }
}

impl MelSpectrum {
    pub fn new(cfg: MelConfig) -> MelSpectrum {
        assert!(cfg.win_length <= cfg.n_fft && cfg.n_fft >= 2 && cfg.hop > 0, "invalid mel config {cfg:?}");
        let fft = RealFftPlanner::<f32>::new().plan_fft_forward(cfg.n_fft);
        let bands = mel_filterbank(&cfg)
            .into_iter()
            .map(|row| {
                let first = row.iter().position(|&w| w > 0.0).unwrap_or(0);
                let last = row.iter().rposition(|&w| w > 0.0).map_or(first, |l| l + 1);
                Band { first, weights: row[first..last.max(first)].to_vec() }
            })
            .collect();
        MelSpectrum {
            window: hann(cfg.win_length),
            input: fft.make_input_vec(),
            spectrum: fft.make_output_vec(),
            scratch: fft.make_scratch_vec(),
            fft,
            bands,
            dct: dct_matrix(cfg.n_mfcc, cfg.n_mels),
            cfg,
        }
    }

    pub fn config(&self) -> &MelConfig {
        &self.cfg
    }

    /// `|FFT(window · frame)|²` of one frame of `win_length` samples (shorter frames are
    /// zero-padded), written to `power` (`n_fft / 2 + 1` bins).
    pub fn power(&mut self, frame: &[f32], power: &mut Vec<f32>) {
        self.input.iter_mut().for_each(|v| *v = 0.0);
        for ((dst, &x), &w) in self.input.iter_mut().zip(frame).zip(&self.window) {
            *dst = x * w;
        }
        // Lengths are the plan's own, so this cannot fail.
        let planned = self.fft.process_with_scratch(&mut self.input, &mut self.spectrum, &mut self.scratch);
        debug_assert!(planned.is_ok());
        power.clear();
        power.extend(self.spectrum.iter().map(|c| c.norm_sqr()));
    }

    /// Mel band energies of a power spectrum.
    pub fn mel(&self, power: &[f32], mel: &mut Vec<f32>) {
        mel.clear();
        mel.extend(self.bands.iter().map(|b| super::dot(&b.weights, &power[b.first..])));
    }

    /// `10·log10(max(mel, AMIN))`, in place.
    pub fn log(mel: &mut [f32]) {
        mel.iter_mut().for_each(|m| *m = 10.0 * m.max(AMIN).log10());
    }

    /// MFCCs (orthonormal DCT-II) of a log-mel frame.
    pub fn dct(&self, log_mel: &[f32], mfcc: &mut Vec<f32>) {
        mfcc.clear();
        mfcc.extend(self.dct.iter().map(|row| super::dot(row, log_mel)));
    }

    /// Log-mel spectrogram of a whole signal, `[frames][n_mels]`, framed as the config says.
    pub fn log_mel(&mut self, signal: &[f32]) -> Vec<Vec<f32>> {
        let cfg = self.cfg;
        let padded: std::borrow::Cow<'_, [f32]> = if cfg.center {
            let pad = cfg.n_fft / 2;
            let mut v = vec![0.0; signal.len() + 2 * pad];
            v[pad..pad + signal.len()].copy_from_slice(signal);
            v.into()
        } else {
            signal.into()
        };
        // With centring, librosa frames n_fft samples and puts the shorter window in their middle.
        let offset = if cfg.center { (cfg.n_fft - cfg.win_length) / 2 } else { 0 };
        let span = if cfg.center { cfg.n_fft } else { cfg.win_length };
        let frames = if padded.len() >= span { 1 + (padded.len() - span) / cfg.hop } else { 0 };
        let (mut power, mut out) = (Vec::new(), Vec::with_capacity(frames));
        for t in 0..frames {
            let start = t * cfg.hop + offset;
            self.power(&padded[start..start + cfg.win_length], &mut power);
            let mut mel = Vec::new();
            self.mel(&power, &mut mel);
            Self::log(&mut mel);
            out.push(mel);
        }
        if let Some(top) = cfg.top_db {
            let max = out.iter().flatten().copied().fold(f32::MIN, f32::max);
            out.iter_mut().flatten().for_each(|v| *v = v.max(max - top));
        }
        out
    }

    /// MFCCs of a whole signal, `[frames][n_mfcc]`.
    pub fn mfcc(&mut self, signal: &[f32]) -> Vec<Vec<f32>> {
        self.log_mel(signal)
            .iter()
            .map(|m| {
                let mut c = Vec::new();
                self.dct(m, &mut c);
                c
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mel_scale_round_trips_and_matches_librosa_points() {
        for hz in [0.0, 300.0, 999.0, 1000.0, 4000.0, 8000.0] {
            assert!((mel_to_hz(hz_to_mel(hz)) - hz).abs() < 1e-9);
        }
        // librosa.hz_to_mel(1000) == 15, hz_to_mel(6400) == 42
        assert!((hz_to_mel(1000.0) - 15.0).abs() < 1e-12);
        assert!((hz_to_mel(6400.0) - 42.0).abs() < 1e-9);
    }

    #[test]
    fn filterbank_triangles_have_unit_area_in_hz() {
        let cfg = MelConfig::FRONTEND;
        let fb = mel_filterbank(&cfg);
        let df = cfg.sample_rate as f32 / cfg.n_fft as f32;
        for (i, row) in fb.iter().enumerate().skip(2) {
            // Slaney normalisation: height 2/(f2−f0), so the triangle's area is 1.
            let area: f32 = row.iter().sum::<f32>() * df;
            assert!((area - 1.0).abs() < 0.1, "band {i}: area {area}");
        }
    }

    #[test]
    fn a_tone_lands_in_its_bin_and_the_dct_is_orthonormal() {
        let cfg = MelConfig::FRONTEND;
        let mut m = MelSpectrum::new(cfg);
        let f = 1000.0;
        let x: Vec<f32> = (0..400).map(|i| (2.0 * std::f32::consts::PI * f * i as f32 / 16_000.0).sin()).collect();
        let mut p = Vec::new();
        m.power(&x, &mut p);
        let peak = p.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map(|(k, _)| k);
        assert_eq!(peak, Some(32)); // 1000 Hz / (16000 / 512)
        // An orthonormal DCT keeps the energy of a vector whose DCT is complete.
        let full = MelSpectrum::new(MelConfig { n_mfcc: 40, ..cfg });
        let v: Vec<f32> = (0..40).map(|i| (i as f32 * 0.37).sin()).collect();
        let mut c = Vec::new();
        full.dct(&v, &mut c);
        let (e1, e2) = (v.iter().map(|a| a * a).sum::<f32>(), c.iter().map(|a| a * a).sum::<f32>());
        assert!((e1 - e2).abs() < 1e-4 * e1, "{e1} vs {e2}");
    }

    #[test]
    fn centred_framing_counts_frames_like_librosa() {
        let mut m = MelSpectrum::new(MelConfig::librosa_default(16_000));
        // librosa: 1 + len // hop frames when centred.
        assert_eq!(m.mfcc(&vec![0.1; 16_000]).len(), 1 + 16_000 / 512);
        assert_eq!(m.mfcc(&[]).len(), 1);
        let mut f = MelSpectrum::new(MelConfig::FRONTEND);
        assert_eq!(f.mfcc(&vec![0.1; 16_000]).len(), 1 + (16_000 - 400) / 160);
        assert!(f.mfcc(&[0.0; 10]).is_empty());
    }
}
