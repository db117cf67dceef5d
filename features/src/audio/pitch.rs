//! F0, voicing, HNR, jitter and shimmer of one analysis window.
//!
//! F0 follows Boersma (1993), the method behind Praat's `To Pitch (ac)`: subtract the local mean,
//! apply a Hann window, take the autocorrelation by FFT and divide it by the window's own
//! autocorrelation, which removes the taper's bias so that a periodic signal peaks near 1.
//! Candidates are the local maxima between the pitch floor and ceiling above half the voicing
//! threshold, positions refined by parabolic interpolation, strengths above 1 reflected (1/r), as
//! Praat keeps them. Each frame's [`Candidates`] (plus its local peak) go to [`path`], Praat's
//! path finder: a Viterbi search over the whole recording that weighs each voiced candidate's
//! strength less an octave cost against an unvoiced candidate whose strength grows as the frame
//! gets quiet relative to the recording's global peak (silence threshold), and charges for
//! voiced/unvoiced transitions and octave jumps — `To Pitch (ac)`'s defaults throughout.
//! [`PitchTracker::analyse`] is the per-frame decision alone (strongest candidate above the
//! voicing threshold), for a single window.
//!
//! HNR is `10·log10(r / (1 − r))` at the chosen peak (Boersma's harmonicity). Jitter and shimmer
//! ("local") come from the pitch pulses inside the window: successive waveform maxima one period
//! apart, positions refined parabolically.
//!
//! Hand-written: no maintained crate implements Boersma's normalised autocorrelation pitch
//! (`pitch-detection` has McLeod/YIN without the window correction or HNR).

use std::sync::Arc;

use realfft::{ComplexToReal, RealFftPlanner, RealToComplex, num_complex::Complex};

/// Praat's defaults for `to_pitch()`.
pub const FLOOR_HZ: f32 = 75.0;
pub const CEILING_HZ: f32 = 600.0;
/// Praat's voicing threshold.
pub const VOICING_THRESHOLD: f32 = 0.45;
/// Praat's silence threshold: frames whose peak is below this fraction of the recording's peak
/// lean towards unvoiced.
pub const SILENCE_THRESHOLD: f32 = 0.03;
const OCTAVE_COST: f32 = 0.01;
/// Path costs per 10 ms frame (Praat's defaults; its time-step correction is 1 at 10 ms).
const VOICED_UNVOICED_COST: f32 = 0.14;
const OCTAVE_JUMP_COST: f32 = 0.35;
/// Voiced candidates kept per frame (Praat keeps up to 14). The path rarely takes one beyond the
/// first few; six keep a live recording's candidates at 7.7 MB per 10 minutes.
pub const MAX_CANDIDATES: usize = 6;

/// What one window says about the voice.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Voice {
    /// F0 in Hz; 0 when unvoiced.
    pub f0: f32,
    /// Normalised autocorrelation at the chosen peak (0 when unvoiced).
    pub strength: f32,
    pub hnr_db: f32,
    pub jitter: f32,
    pub shimmer: f32,
}

/// What one frame offers the path finder.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Candidates {
    /// Largest |windowed sample| within half a longest period of the centre (Praat's).
    pub local_peak: f32,
    /// Voiced candidates, best (strength less octave cost) first; `n` of them are valid.
    pub voiced: [Voice; MAX_CANDIDATES],
    pub n: u8,
}

impl Candidates {
    pub fn voiced(&self) -> &[Voice] {
        &self.voiced[..usize::from(self.n)]
    }

    /// The frame's own decision, before the path finder sees the whole recording: its best
    /// voiced candidate above the voicing threshold, else unvoiced (`Voice::default()`).
    pub fn frame_voice(&self) -> Voice {
        self.voiced().iter().find(|v| v.strength > VOICING_THRESHOLD).copied().unwrap_or_default()
    }
}

/// A frame's local peak, as a share of the recording's global peak, at which its unvoiced
/// strength starts to rise above the voicing threshold + 1 (Praat's silence rule).
const SILENT_SHARE: f32 = SILENCE_THRESHOLD / (1.0 + VOICING_THRESHOLD);

/// A voiced candidate's strength less Praat's octave cost (favours higher candidates a little,
/// against sub-harmonics).
fn voiced_score(v: &Voice) -> f32 {
    v.strength - OCTAVE_COST * (CEILING_HZ / v.f0).log2()
}

/// The local peak below which a frame is unvoiced whatever its candidates, given a lower bound
/// of the recording's global peak: its unvoiced strength is then at least `voicing threshold +
/// 1` (1.45), a voiced candidate's score at most 1, and leaving the unvoiced state costs at most
/// two voiced/unvoiced transitions (0.28). Frames below it skip the autocorrelation; the path
/// comes out the same.
pub fn silent_below(global_peak_at_least: f32) -> f32 {
    global_peak_at_least * SILENT_SHARE
}

/// Praat's path finder over a whole recording: for each frame, the index of its chosen voiced
/// candidate, or `None` for unvoiced. `global_peak` is the recording's largest |sample − mean|.
pub fn path(frames: &[Candidates], global_peak: f32) -> Vec<Option<usize>> {
    let unvoiced_strength = |c: &Candidates| -> f32 {
        if global_peak <= 0.0 || c.local_peak <= 0.0 {
            return VOICING_THRESHOLD + 2.0;
        }
        let relative = c.local_peak / global_peak / SILENT_SHARE;
        VOICING_THRESHOLD + (2.0 - relative).max(0.0)
    };
    // State 0 is unvoiced, state k ≥ 1 voiced candidate k − 1.
    let f0_of = |c: &Candidates, k: usize| if k == 0 { 0.0 } else { c.voiced[k - 1].f0 };
    let transition = |f_prev: f32, f: f32| -> f32 {
        match (f_prev > 0.0, f > 0.0) {
            (false, false) => 0.0,
            (true, true) => OCTAVE_JUMP_COST * (f_prev / f).log2().abs(),
            _ => VOICED_UNVOICED_COST,
        }
    };
    let mut back: Vec<[u8; MAX_CANDIDATES + 1]> = Vec::with_capacity(frames.len());
    let mut score = [0.0f32; MAX_CANDIDATES + 1];
    let mut prev: Option<&Candidates> = None;
    for c in frames {
        let states = 1 + usize::from(c.n);
        let mut next = [f32::NEG_INFINITY; MAX_CANDIDATES + 1];
        let mut from = [0u8; MAX_CANDIDATES + 1];
        for (k, slot) in next.iter_mut().enumerate().take(states) {
            let delta = if k == 0 { unvoiced_strength(c) } else { voiced_score(&c.voiced[k - 1]) };
            let f = f0_of(c, k);
            let (best, arg) = match prev {
                None => (0.0, 0),
                Some(p) => (0..1 + usize::from(p.n))
                    .map(|j| (score[j] - transition(f0_of(p, j), f), j))
                    .fold((f32::NEG_INFINITY, 0), |b, x| if x.0 > b.0 { x } else { b }),
            };
            *slot = best + delta;
            from[k] = arg as u8;
        }
        score = next;
        back.push(from);
        prev = Some(c);
    }
    let mut out = vec![None; frames.len()];
    let Some(last) = frames.last() else { return out };
    let mut k = (0..1 + usize::from(last.n)).fold(0, |b, k| if score[k] > score[b] { k } else { b });
    for i in (0..frames.len()).rev() {
        out[i] = k.checked_sub(1);
        k = usize::from(back[i][k]);
    }
    out
}

/// Reusable state for [`PitchTracker::analyse`]: FFT plans, the window and its autocorrelation.
pub struct PitchTracker {
    rate: f32,
    len: usize,
    window: Vec<f32>,
    /// 1 / the window's normalised autocorrelation, per lag.
    window_acf: Vec<f32>,
    r: Vec<f32>,
    fwd: Arc<dyn RealToComplex<f32>>,
    inv: Arc<dyn ComplexToReal<f32>>,
    buf: Vec<f32>,
    spec: Vec<Complex<f32>>,
    acf: Vec<f32>,
    scratch_f: Vec<Complex<f32>>,
    scratch_i: Vec<Complex<f32>>,
    centred: Vec<f32>,
}

impl std::fmt::Debug for PitchTracker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PitchTracker").field("rate", &self.rate).field("len", &self.len).finish_non_exhaustive()
    }
}

impl PitchTracker {
    /// A tracker for windows of `len` samples at `rate` Hz. Praat uses three periods of the
    /// floor (40 ms at 75 Hz).
    pub fn new(rate: u32, len: usize) -> PitchTracker {
        let n_fft = (len + len / 2).next_power_of_two();
        let mut planner = RealFftPlanner::<f32>::new();
        let (fwd, inv) = (planner.plan_fft_forward(n_fft), planner.plan_fft_inverse(n_fft));
        let window: Vec<f32> = (0..len)
            .map(|i| (0.5 - 0.5 * (2.0 * std::f64::consts::PI * (i as f64 + 0.5) / len as f64).cos()) as f32)
            .collect();
        let mut t = PitchTracker {
            rate: rate as f32,
            len,
            window_acf: Vec::new(),
            buf: fwd.make_input_vec(),
            spec: fwd.make_output_vec(),
            acf: inv.make_output_vec(),
            scratch_f: fwd.make_scratch_vec(),
            scratch_i: inv.make_scratch_vec(),
            centred: vec![0.0; len],
            r: Vec::new(),
            fwd,
            inv,
            window: window.clone(),
        };
        // Stored as reciprocals (0 where the window's autocorrelation vanishes).
        t.window_acf = t.autocorrelation(&window).iter().map(|&b| if b > 1e-6 { 1.0 / b } else { 0.0 }).collect();
        t
    }

    /// Normalised autocorrelation (r(0) = 1) of `x` (≤ `len` samples), by FFT.
    fn autocorrelation(&mut self, x: &[f32]) -> &[f32] {
        self.buf.iter_mut().for_each(|v| *v = 0.0);
        self.buf[..x.len()].copy_from_slice(x);
        // Buffer lengths are the plans' own, so these cannot fail.
        let ok = self.fwd.process_with_scratch(&mut self.buf, &mut self.spec, &mut self.scratch_f).is_ok();
        for c in &mut self.spec {
            *c = Complex::new(c.norm_sqr(), 0.0);
        }
        let ok = ok && self.inv.process_with_scratch(&mut self.spec, &mut self.acf, &mut self.scratch_i).is_ok();
        debug_assert!(ok);
        let r0 = self.acf[0];
        if r0 > 0.0 {
            let inv = 1.0 / r0;
            self.acf.iter_mut().for_each(|v| *v *= inv);
        }
        &self.acf[..self.len]
    }

    /// The strongest candidate above the voicing threshold of one window of exactly `len`
    /// samples, by itself (no path).
    pub fn analyse(&mut self, w: &[f32]) -> Voice {
        let c = self.candidates(w, 0.0);
        c.frame_voice()
    }

    /// The voiced candidates of one window of exactly `len` samples and its local peak. A window
    /// whose local peak is below `silent_below` gets none (see [`silent_below`]).
    pub fn candidates(&mut self, w: &[f32], silent_below: f32) -> Candidates {
        let mut out = Candidates::default();
        if w.len() != self.len {
            return out;
        }
        // As Praat: the mean of one longest period either side of the centre is removed before
        // windowing (a window-wide mean leaves low-frequency rumble that inflates every lag), and
        // the local peak is the windowed frame's largest value within half a longest period of
        // the centre.
        let period = (self.rate / FLOOR_HZ) as usize;
        let centre = self.len / 2;
        let around = &w[centre.saturating_sub(period)..(centre + period).min(w.len())];
        let mean = super::sum(around) / around.len() as f32;
        let mut centred = std::mem::take(&mut self.centred);
        for ((c, &x), &h) in centred.iter_mut().zip(w).zip(&self.window) {
            *c = (x - mean) * h;
        }
        let half = period / 2 + 1;
        out.local_peak = centred[centre.saturating_sub(half)..(centre + half).min(w.len())]
            .iter()
            .fold(0.0f32, |m, &x| m.max(x.abs()));
        let rate = self.rate;
        let min_lag = (rate / CEILING_HZ).floor().max(2.0) as usize;
        let max_lag = ((rate / FLOOR_HZ).ceil() as usize).min(self.len / 2);
        if out.local_peak > 0.0 && out.local_peak >= silent_below && max_lag >= min_lag + 2 {
            let inv_wacf = std::mem::take(&mut self.window_acf);
            let mut r = std::mem::take(&mut self.r);
            r.clear();
            r.extend(self.autocorrelation(&centred).iter().zip(&inv_wacf).take(max_lag + 2).map(|(&a, &b)| a * b));
            self.window_acf = inv_wacf;
            let mut peaks = peaks(&r, min_lag, max_lag, rate);
            peaks.sort_by(|a, b| voiced_score(b).total_cmp(&voiced_score(a)));
            for p in peaks.into_iter().take(MAX_CANDIDATES) {
                let lag = rate / p.f0;
                let (jitter, shimmer) = perturbation(w, lag);
                let r = p.strength.clamp(1e-4, 0.9999);
                out.voiced[usize::from(out.n)] =
                    Voice { f0: p.f0, strength: p.strength, hnr_db: 10.0 * (r / (1.0 - r)).log10(), jitter, shimmer };
                out.n += 1;
            }
            self.r = r;
        }
        self.centred = centred;
        out
    }
}

/// The local maxima of a normalised autocorrelation between the lags of the ceiling and floor
/// above half the voicing threshold, as (F0, strength) in [`Voice`]s.
fn peaks(r: &[f32], min_lag: usize, max_lag: usize, rate: f32) -> Vec<Voice> {
    let mut out = Vec::new();
    for i in min_lag.max(1)..=max_lag.min(r.len() - 2) {
        let (a, b, c) = (r[i - 1], r[i], r[i + 1]);
        if !(b >= a && b >= c && b > 0.5 * VOICING_THRESHOLD) {
            continue;
        }
        let denom = a - 2.0 * b + c;
        let shift = if denom.abs() > 1e-9 { (0.5 * (a - c) / denom).clamp(-0.5, 0.5) } else { 0.0 };
        let lag = i as f32 + shift;
        let mut strength = b - 0.25 * (a - c) * shift;
        if strength > 1.0 {
            strength = 1.0 / strength;
        }
        out.push(Voice { f0: rate / lag, strength, ..Voice::default() });
    }
    out
}

/// Local jitter and shimmer from the pulses one `period` (samples) apart in `w`.
fn perturbation(w: &[f32], period: f32) -> (f32, f32) {
    let argmax = |a: usize, b: usize| -> Option<usize> {
        // The last of equal maxima, as `Iterator::max_by` picks.
        let mut best: Option<usize> = None;
        for i in a..b.min(w.len()) {
            if best.is_none_or(|j| w[i] >= w[j]) {
                best = Some(i);
            }
        }
        best.filter(|&i| i > 0 && i + 1 < w.len())
    };
    // The parabola through a peak and its neighbours: (position, height).
    let refine = |i: usize| -> (f32, f32) {
        let (a, b, c) = (w[i - 1], w[i], w[i + 1]);
        let d = a - 2.0 * b + c;
        let shift = if d.abs() > 1e-12 { (0.5 * (a - c) / d).clamp(-0.5, 0.5) } else { 0.0 };
        (i as f32 + shift, b - 0.25 * (a - c) * shift)
    };
    // Running sums over the pulses (no allocation: this runs for every candidate of every frame):
    // periods and their successive differences, amplitudes and theirs.
    let Some(first) = argmax(0, period.ceil() as usize) else { return (0.0, 0.0) };
    let mut at = first;
    let (mut prev_pos, mut prev_amp) = refine(at);
    prev_amp = prev_amp.abs();
    let mut prev_period: Option<f32> = None;
    let (mut n_pulses, mut sum_period, mut sum_dperiod) = (1usize, 0.0f32, 0.0f32);
    let (mut sum_amp, mut sum_damp) = (prev_amp, 0.0f32);
    loop {
        let expect = at as f32 + period;
        let (a, b) = ((expect - 0.2 * period).max(0.0) as usize, (expect + 0.2 * period).ceil() as usize + 1);
        if b >= w.len() {
            break;
        }
        let Some(next) = argmax(a, b) else { break };
        at = next;
        let (pos, amp) = refine(at);
        let (p, amp) = (pos - prev_pos, amp.abs());
        if let Some(q) = prev_period {
            sum_dperiod += (p - q).abs();
        }
        sum_period += p;
        sum_damp += (amp - prev_amp).abs();
        sum_amp += amp;
        n_pulses += 1;
        (prev_pos, prev_amp, prev_period) = (pos, amp, Some(p));
    }
    if n_pulses < 3 {
        return (0.0, 0.0);
    }
    let n_periods = (n_pulses - 1) as f32;
    let jitter = if n_pulses >= 3 { (sum_dperiod / (n_periods - 1.0)) / (sum_period / n_periods) } else { 0.0 };
    let a_mean = sum_amp / n_pulses as f32;
    let shimmer = if a_mean > 0.0 { (sum_damp / (n_pulses - 1) as f32) / a_mean } else { 0.0 };
    (jitter, shimmer)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn harmonics(f0: impl Fn(usize) -> f32, amp: impl Fn(usize) -> f32, n: usize) -> Vec<f32> {
        let mut phase = 0.0f32;
        (0..n)
            .map(|i| {
                phase += 2.0 * std::f32::consts::PI * f0(i) / 16_000.0;
                amp(i) * (1..8).map(|h| (h as f32 * phase).sin() / h as f32).sum::<f32>()
            })
            .collect()
    }

    #[test]
    fn f0_of_harmonic_signals_within_a_fraction_of_a_hertz() {
        let mut t = PitchTracker::new(16_000, 640);
        for hz in [80.0f32, 110.0, 165.0, 220.0, 310.0, 450.0] {
            let v = t.analyse(&harmonics(|_| hz, |_| 0.3, 640));
            assert!((v.f0 - hz).abs() < 0.5, "{hz} Hz estimated as {}", v.f0);
            assert!(v.strength > 0.95 && v.hnr_db > 15.0, "{v:?}");
            assert!(v.jitter < 0.005 && v.shimmer < 0.02, "clean signal {hz}: {v:?}");
        }
    }

    #[test]
    fn noise_and_silence_are_unvoiced() {
        let mut t = PitchTracker::new(16_000, 640);
        assert_eq!(t.analyse(&[0.0; 640]).f0, 0.0);
        // A deterministic white-ish noise (LCG).
        let mut s = 12345u32;
        let noise: Vec<f32> = (0..640)
            .map(|_| {
                s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (s >> 8) as f32 / (1u32 << 24) as f32 - 0.5
            })
            .collect();
        assert_eq!(t.analyse(&noise).f0, 0.0);
        assert_eq!(t.analyse(&[0.1; 10]), Voice::default());
    }

    /// Glottal-like cycles one after another, each with its own period and amplitude.
    fn cycles(period_amp: impl Fn(usize) -> (f32, f32), n: usize) -> Vec<f32> {
        let mut out = Vec::with_capacity(n);
        let mut k = 0;
        while out.len() < n {
            let (period, amp) = period_amp(k);
            let len = period.round() as usize;
            out.extend((0..len).map(|i| {
                let ph = 2.0 * std::f32::consts::PI * i as f32 / len as f32;
                amp * (1..8).map(|h| (h as f32 * ph).sin() / h as f32).sum::<f32>()
            }));
            k += 1;
        }
        out.truncate(n);
        out
    }

    #[test]
    fn jitter_and_shimmer_grow_with_perturbation() {
        let mut t = PitchTracker::new(16_000, 640);
        // Pseudo-random ±4 % periods and ±20 % amplitudes, cycle by cycle.
        let wobble = |k: usize, salt: u32| {
            ((k as u32).wrapping_mul(2_654_435_761).wrapping_add(salt) >> 16) as f32 / 65_536.0 * 2.0 - 1.0
        };
        let clean = t.analyse(&cycles(|_| (106.0, 0.3), 640));
        let rough =
            t.analyse(&cycles(|k| (106.0 * (1.0 + 0.04 * wobble(k, 7)), 0.3 * (1.0 + 0.2 * wobble(k, 99))), 640));
        assert!(rough.f0 > 120.0 && rough.f0 < 180.0, "{rough:?}");
        assert!(rough.jitter > 3.0 * clean.jitter.max(0.003), "{clean:?} vs {rough:?}");
        assert!(rough.shimmer > 3.0 * clean.shimmer.max(0.01), "{clean:?} vs {rough:?}");
        assert!(rough.hnr_db < clean.hnr_db, "{clean:?} vs {rough:?}");
    }
}
