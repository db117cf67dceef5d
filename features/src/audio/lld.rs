//! Frame-level low-level descriptors (LLDs), 100 frames per second, computed as audio streams in.
//!
//! Frame `i` is centred on sample `i · 160 + 320` (20 ms + 10 ms · i at 16 kHz). Per frame:
//!
//! | LLD | definition |
//! |---|---|
//! | `loudness` | Σ over the 40 mel bands of (band power)^0.3 — a Zwicker-style compressed loudness proxy (openSMILE's eGeMAPS uses the same 0.3 compression on an auditory spectrum) |
//! | `energy_db` | RMS of the 25 ms frame in dBFS (floor −120) |
//! | `zcr` | zero crossings per sample in the 25 ms frame |
//! | `f0_st` | F0 in semitones above 27.5 Hz ([`super::pitch`], 40 ms window, Praat's path over the whole recording); 0 when unvoiced |
//! | `voicing` | normalised autocorrelation peak (0 when unvoiced) |
//! | `jitter` | local jitter of the pitch pulses in the 40 ms window (voiced frames) |
//! | `shimmer` | local shimmer, relative amplitude (voiced frames) |
//! | `hnr_db` | harmonics-to-noise ratio 10·log10(r / (1 − r)) (voiced frames) |
//! | `alpha_ratio_db` | 10·log10 of energy 50–1000 Hz over energy 1–5 kHz |
//! | `hammarberg_db` | 10·log10 of the strongest bin 0–2 kHz over the strongest bin 2–5 kHz |
//! | `slope_0_500`, `slope_500_1500` | least-squares slope of the dB power spectrum over those bands, dB/kHz |
//! | `flux` | squared difference of consecutive L1-normalised magnitude spectra |
//! | `mfcc0`…`mfcc12` | MFCCs of [`MelConfig::FRONTEND`] (25 ms Hann, 512-point FFT, 40 Slaney mel bands, 10·log10, orthonormal DCT-II) |
//!
//! Spectral LLDs use the 25 ms window, voice LLDs the 40 ms window around the same centre.

use super::pitch::{self, Candidates, PitchTracker, Voice};
use super::spectral::{MelConfig, MelSpectrum};

pub const RATE: u32 = 16_000;
pub const HOP: usize = 160;
const SPEC_WIN: usize = 400;
const VOICE_WIN: usize = 640;
/// Samples from a frame's first voice-window sample to its centre.
pub const CENTRE: usize = VOICE_WIN / 2;

pub const N_MFCC: usize = 13;
pub const LLD_NAMES: &[&str] = &[
    "loudness",
    "energy_db",
    "zcr",
    "f0_st",
    "voicing",
    "jitter",
    "shimmer",
    "hnr_db",
    "alpha_ratio_db",
    "hammarberg_db",
    "slope_0_500",
    "slope_500_1500",
    "flux",
    "mfcc0",
    "mfcc1",
    "mfcc2",
    "mfcc3",
    "mfcc4",
    "mfcc5",
    "mfcc6",
    "mfcc7",
    "mfcc8",
    "mfcc9",
    "mfcc10",
    "mfcc11",
    "mfcc12",
];
pub const N_LLD: usize = 26;

/// Indices into a frame of [`LLD_NAMES`].
pub mod idx {
    pub const LOUDNESS: usize = 0;
    pub const ENERGY_DB: usize = 1;
    pub const ZCR: usize = 2;
    pub const F0_ST: usize = 3;
    pub const VOICING: usize = 4;
    pub const JITTER: usize = 5;
    pub const SHIMMER: usize = 6;
    pub const HNR_DB: usize = 7;
    pub const ALPHA_RATIO: usize = 8;
    pub const HAMMARBERG: usize = 9;
    pub const SLOPE_0_500: usize = 10;
    pub const SLOPE_500_1500: usize = 11;
    pub const FLUX: usize = 12;
    pub const MFCC0: usize = 13;
}

pub type Lld = [f32; N_LLD];

/// Semitones above 27.5 Hz (A0), the F0 unit of the LLDs.
pub fn semitones(hz: f32) -> f32 {
    12.0 * (hz / 27.5).log2()
}

/// Streaming LLD extractor over 16 kHz mono samples: [`push`](Self::push) any chunk sizes, the
/// frames come out as soon as their 40 ms window is complete, their voice columns decided per
/// frame; [`decide_voicing`](Self::decide_voicing) at the end re-decides them along Praat's path
/// over the whole recording. Output is the same whatever the chunking (tested).
#[derive(Debug)]
pub struct LldExtractor {
    mel: MelSpectrum,
    pitch: PitchTracker,
    /// Samples not yet consumed; `buf[0]` is sample `consumed` of the stream.
    buf: Vec<f32>,
    prev_mag: Vec<f32>,
    mag: Vec<f32>,
    power: Vec<f32>,
    bands: Vec<f32>,
    mfcc: Vec<f32>,
    f0: Vec<f32>,
    /// Every frame's pitch candidates, for the path at the end.
    candidates: Vec<Candidates>,
    /// Largest and smallest sample, sum and count of all samples: the global peak about the mean.
    extremes: (f32, f32),
    total: (f64, u64),
    slopes: [SlopeFit; 2],
}

/// Precomputed least-squares fit of y over a bin range: slope = Σ w_k·y_k.
#[derive(Debug, Clone)]
struct SlopeFit {
    first: usize,
    weights: Vec<f32>,
}

impl SlopeFit {
    fn new(lo_hz: f32, hi_hz: f32, bin_hz: f32) -> SlopeFit {
        let first = (lo_hz / bin_hz).ceil() as usize;
        let last = (hi_hz / bin_hz).floor() as usize;
        let xs: Vec<f32> = (first..=last).map(|k| k as f32 * bin_hz / 1000.0).collect();
        let mean = xs.iter().sum::<f32>() / xs.len() as f32;
        let sxx: f32 = xs.iter().map(|x| (x - mean).powi(2)).sum();
        SlopeFit { first, weights: xs.iter().map(|x| (x - mean) / sxx).collect() }
    }

    fn slope(&self, db: impl Fn(usize) -> f32) -> f32 {
        self.weights.iter().enumerate().map(|(i, w)| w * db(self.first + i)).sum()
    }
}

impl Default for LldExtractor {
    fn default() -> Self {
        Self::new()
    }
}

impl LldExtractor {
    pub fn new() -> LldExtractor {
        let bin_hz = RATE as f32 / MelConfig::FRONTEND.n_fft as f32;
        LldExtractor {
            mel: MelSpectrum::new(MelConfig::FRONTEND),
            pitch: PitchTracker::new(RATE, VOICE_WIN),
            buf: Vec::new(),
            prev_mag: Vec::new(),
            mag: Vec::new(),
            power: Vec::new(),
            bands: Vec::new(),
            mfcc: Vec::new(),
            f0: Vec::new(),
            candidates: Vec::new(),
            extremes: (0.0, 0.0),
            total: (0.0, 0),
            slopes: [SlopeFit::new(0.0, 500.0, bin_hz), SlopeFit::new(500.0, 1500.0, bin_hz)],
        }
    }

    /// Feeds samples; appends every frame that became complete to `out`.
    pub fn push(&mut self, samples: &[f32], out: &mut Vec<Lld>) {
        for &x in samples {
            self.extremes = (self.extremes.0.max(x), self.extremes.1.min(x));
        }
        self.total =
            (self.total.0 + samples.iter().map(|&x| f64::from(x)).sum::<f64>(), self.total.1 + samples.len() as u64);
        self.buf.extend_from_slice(samples);
        let mut start = 0;
        while start + VOICE_WIN <= self.buf.len() {
            let frame = self.frame(start);
            out.push(frame);
            start += HOP;
        }
        self.buf.drain(..start);
    }

    fn frame(&mut self, start: usize) -> Lld {
        let mut o = [0.0f32; N_LLD];
        let centre = start + CENTRE;
        let spec = &self.buf[centre - SPEC_WIN / 2..centre + SPEC_WIN / 2];
        let rms = (super::dot(spec, spec) / SPEC_WIN as f32).sqrt();
        o[idx::ENERGY_DB] = 20.0 * rms.max(1e-6).log10();
        o[idx::ZCR] = spec.windows(2).filter(|w| (w[0] >= 0.0) != (w[1] >= 0.0)).count() as f32 / SPEC_WIN as f32;

        self.mel.power(spec, &mut self.power);
        self.mel.mel(&self.power, &mut self.bands);
        o[idx::LOUDNESS] = self.bands.iter().map(|b| b.max(0.0).powf(0.3)).sum();
        let p = &self.power;
        let bin_hz = RATE as f32 / MelConfig::FRONTEND.n_fft as f32;
        let band =
            |lo: f32, hi: f32| ((lo / bin_hz).ceil() as usize, ((hi / bin_hz).floor() as usize).min(p.len() - 1));
        let sum = |(a, b): (usize, usize)| p[a..=b].iter().sum::<f32>();
        let max = |(a, b): (usize, usize)| p[a..=b].iter().copied().fold(0.0f32, f32::max);
        let db = |v: f32| 10.0 * v.max(1e-12).log10();
        o[idx::ALPHA_RATIO] = db(sum(band(50.0, 1000.0))) - db(sum(band(1000.0, 5000.0)));
        o[idx::HAMMARBERG] = db(max(band(0.0, 2000.0))) - db(max(band(2000.0, 5000.0)));
        o[idx::SLOPE_0_500] = self.slopes[0].slope(|k| db(p[k]));
        o[idx::SLOPE_500_1500] = self.slopes[1].slope(|k| db(p[k]));
        self.mag.clear();
        self.mag.extend(p.iter().map(|v| v.sqrt()));
        let inv_l1 = 1.0 / super::sum(&self.mag).max(1e-12);
        self.mag.iter_mut().for_each(|m| *m *= inv_l1);
        if self.prev_mag.len() == self.mag.len() {
            // Reuse prev_mag as the difference: d = mag − prev, flux = d·d.
            self.prev_mag.iter_mut().zip(&self.mag).for_each(|(q, m)| *q = m - *q);
            o[idx::FLUX] = super::dot(&self.prev_mag, &self.prev_mag);
        }
        std::mem::swap(&mut self.prev_mag, &mut self.mag);
        MelSpectrum::log(&mut self.bands);
        self.mel.dct(&self.bands, &mut self.mfcc);
        o[idx::MFCC0..idx::MFCC0 + N_MFCC].copy_from_slice(&self.mfcc[..N_MFCC]);

        // The recording's global peak (about its mean, wherever the mean ends up) is at least
        // half the range of the samples seen so far.
        let silent = pitch::silent_below(0.999 * 0.5 * (self.extremes.0 - self.extremes.1));
        let c = self.pitch.candidates(&self.buf[start..start + VOICE_WIN], silent);
        let v = c.frame_voice();
        set_voice(&mut o, &v);
        self.f0.push(v.f0);
        self.candidates.push(c);
        o
    }

    /// Re-decides the voice columns of `frames` — every frame pushed so far, in order — along
    /// Praat's path over the whole recording (see [`pitch::path`]).
    pub fn decide_voicing(&mut self, frames: &mut [Lld]) {
        debug_assert_eq!(frames.len(), self.candidates.len());
        let mean = if self.total.1 > 0 { (self.total.0 / self.total.1 as f64) as f32 } else { 0.0 };
        let global_peak = (self.extremes.0 - mean).max(mean - self.extremes.1);
        let chosen = pitch::path(&self.candidates, global_peak);
        for ((frame, (c, k)), f0) in frames.iter_mut().zip(self.candidates.iter().zip(chosen)).zip(&mut self.f0) {
            let v = k.map(|k| c.voiced[k]).unwrap_or_default();
            set_voice(frame, &v);
            *f0 = v.f0;
        }
    }

    /// F0 in Hz of every frame produced so far (0 = unvoiced), for callers that want Hertz.
    pub fn f0_hz(&self) -> &[f32] {
        &self.f0
    }
}

fn set_voice(o: &mut Lld, v: &Voice) {
    let voiced = v.f0 > 0.0;
    let or0 = |x: f32| if voiced { x } else { 0.0 };
    o[idx::F0_ST] = if voiced { semitones(v.f0) } else { 0.0 };
    o[idx::VOICING] = or0(v.strength);
    o[idx::JITTER] = or0(v.jitter);
    o[idx::SHIMMER] = or0(v.shimmer);
    o[idx::HNR_DB] = or0(v.hnr_db);
}

/// Time in seconds of frame `i`'s centre.
pub fn frame_time_s(i: usize) -> f32 {
    (i * HOP + CENTRE) as f32 / RATE as f32
}

/// All LLD frames of a whole 16 kHz signal, voicing decided along the path.
pub fn llds(samples: &[f32]) -> Vec<Lld> {
    let mut x = LldExtractor::new();
    let mut out = Vec::with_capacity(samples.len() / HOP);
    x.push(samples, &mut out);
    x.decide_voicing(&mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chirpy(n: usize) -> Vec<f32> {
        let mut phase = 0.0f32;
        (0..n)
            .map(|i| {
                let t = i as f32 / RATE as f32;
                phase += 2.0 * std::f32::consts::PI * (120.0 + 40.0 * (3.0 * t).sin()) / RATE as f32;
                let gate = if (t * 2.0).fract() < 0.7 { 1.0 } else { 0.0 };
                gate * (1..6).map(|h| 0.2 * (h as f32 * phase).sin() / h as f32).sum::<f32>()
            })
            .collect()
    }

    #[test]
    fn streaming_in_any_chunks_equals_whole_signal() {
        let x = chirpy(16_000 * 2);
        let whole = llds(&x);
        assert_eq!(whole.len(), (x.len() - VOICE_WIN) / HOP + 1);
        for chunk in [1usize, 37, 160, 1000, 7919] {
            let mut e = LldExtractor::new();
            let mut out = Vec::new();
            for c in x.chunks(chunk) {
                e.push(c, &mut out);
            }
            e.decide_voicing(&mut out);
            assert_eq!(out, whole, "chunk {chunk}");
        }
    }

    #[test]
    fn descriptors_respond_to_what_they_measure() {
        let x = chirpy(16_000 * 2);
        let f = llds(&x);
        let voiced = f.iter().filter(|l| l[idx::F0_ST] > 0.0).count();
        assert!(voiced > f.len() / 2, "{voiced} of {}", f.len());
        // The gate closes 30 % of the time: those frames are silent, unvoiced and quiet.
        let quiet = f.iter().filter(|l| l[idx::ENERGY_DB] < -100.0).count();
        assert!(quiet > f.len() / 5, "{quiet}");
        assert!(f.iter().filter(|l| l[idx::ENERGY_DB] < -100.0).all(|l| l[idx::F0_ST] == 0.0));
        // A low-pass voice has more energy below 1 kHz than above: positive alpha ratio.
        let loud: Vec<&Lld> = f.iter().filter(|l| l[idx::ENERGY_DB] > -40.0).collect();
        // Voiced frames inside the gate (not straddling its edges) are harmonic.
        for l in loud.iter().filter(|l| l[idx::VOICING] > 0.9) {
            assert!(l[idx::ALPHA_RATIO] > 10.0 && l[idx::HNR_DB] > 9.0, "{l:?}");
        }
        // Onsets have spectral flux; steady frames little.
        let max_flux = f.iter().map(|l| l[idx::FLUX]).fold(0.0, f32::max);
        let median_flux = crate::quantile(&f.iter().map(|l| l[idx::FLUX]).collect::<Vec<_>>(), 0.5);
        assert!(max_flux > 10.0 * median_flux, "{max_flux} vs {median_flux}");
        assert!(f.iter().flatten().all(|v| v.is_finite()));
    }
}
