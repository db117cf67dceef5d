//! How the front-end is compared with the reference tools (librosa, Praat). Used by the
//! reference test (committed fixtures) and by `bench/run audio` (live, same run as the tools).

use super::lld::{self, LldExtractor};
use super::spectral::{MelConfig, MelSpectrum};

/// MFCC agreement with librosa: for each coefficient, the largest absolute difference over all
/// frames divided by that coefficient's largest absolute reference value; the worst coefficient
/// counts. (Element-wise relative error is meaningless for coefficients that cross zero.)
/// `reference` is `[n_mfcc][frames]`, as librosa returns it. `None` when the shapes differ.
pub fn mfcc_relative_error(samples: &[f32], sample_rate: u32, reference: &[Vec<f32>]) -> Option<f32> {
    let ours = MelSpectrum::new(MelConfig::librosa_default(sample_rate)).mfcc(samples);
    if reference.len() != MelConfig::librosa_default(sample_rate).n_mfcc
        || reference.iter().any(|row| row.len() != ours.len())
    {
        return None;
    }
    let mut worst = 0.0f32;
    for (k, row) in reference.iter().enumerate() {
        let scale = row.iter().fold(0.0f32, |m, v| m.max(v.abs())).max(1e-6);
        let err = row.iter().zip(&ours).fold(0.0f32, |m, (r, o)| m.max((r - o[k]).abs()));
        worst = worst.max(err / scale);
    }
    Some(worst)
}

/// F0 agreement with Praat on the frames both call voiced.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct F0Agreement {
    /// Median |ours − Praat| in Hz.
    pub median_abs_hz: f32,
    /// Frames both call voiced.
    pub both_voiced: usize,
    /// Of the frames either calls voiced, the share both do.
    pub voicing_agreement: f32,
    /// Of all of Praat's frames, the share both call voiced or both unvoiced.
    pub frame_agreement: f32,
    /// Of the frames both call voiced, the share more than 20 % apart (gross pitch errors).
    pub gross_errors: f32,
}

/// Our F0 track (the analyser's, voicing along the path), linearly interpolated at Praat's frame
/// times (both neighbours voiced), against Praat's values (0 = unvoiced). 16 kHz input.
pub fn f0_agreement(samples: &[f32], times_s: &[f32], praat_hz: &[f32]) -> F0Agreement {
    let mut x = LldExtractor::new();
    let mut frames = Vec::new();
    x.push(samples, &mut frames);
    x.decide_voicing(&mut frames);
    let ours = x.f0_hz();
    let at = |t: f32| -> f32 {
        let pos = (t * lld::RATE as f32 - lld::CENTRE as f32) / lld::HOP as f32;
        if pos < 0.0 {
            return 0.0;
        }
        let i = pos.floor() as usize;
        match (ours.get(i), ours.get(i + 1)) {
            (Some(&a), Some(&b)) if a > 0.0 && b > 0.0 => a + (b - a) * (pos - i as f32),
            (Some(&a), None) => a,
            _ => 0.0,
        }
    };
    let (mut errs, mut either, mut same, mut gross) = (Vec::new(), 0usize, 0usize, 0usize);
    for (&t, &p) in times_s.iter().zip(praat_hz) {
        let o = at(t);
        if o > 0.0 || p > 0.0 {
            either += 1;
        }
        if (o > 0.0) == (p > 0.0) {
            same += 1;
        }
        if o > 0.0 && p > 0.0 {
            errs.push((o - p).abs());
            if (o - p).abs() > 0.2 * p {
                gross += 1;
            }
        }
    }
    F0Agreement {
        median_abs_hz: if errs.is_empty() { f32::INFINITY } else { crate::quantile(&errs, 0.5) },
        both_voiced: errs.len(),
        voicing_agreement: errs.len() as f32 / either.max(1) as f32,
        frame_agreement: same as f32 / times_s.len().max(1) as f32,
        gross_errors: gross as f32 / errs.len().max(1) as f32,
    }
}
