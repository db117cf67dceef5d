//! Voice activity and utterance segmentation, for audio whose transcript has no timing (or no
//! transcript at all).
//!
//! A [`VoiceActivity`] turns 16 kHz audio into speech probabilities per frame; [`utterances`]
//! turns those into utterance segments with hysteresis, minimum durations, gap merging and a
//! length cap. Two detectors: [`EnergyVad`] here (no model; the session's adaptive energy floor
//! of the audio front-end), and silero-vad through tract in `runtime::vad` (the device uses it
//! when its model is installed and falls back to [`EnergyVad`] otherwise).

use crate::audio::{self, AudioClip};
use crate::segment::Segment;
use crate::{FeatureError, quantile};

/// Speech probabilities, one per frame of `frame_ms`, the first frame starting at 0.
#[derive(Debug, Clone, PartialEq)]
pub struct SpeechProbabilities {
    pub frame_ms: f32,
    pub p: Vec<f32>,
}

/// A voice-activity detector over 16 kHz mono audio.
pub trait VoiceActivity: std::fmt::Debug + Send + Sync {
    /// Short name for logs and results ("silero-vad", "energy").
    fn name(&self) -> &str;
    fn speech_probabilities(&self, clip: &AudioClip) -> Result<SpeechProbabilities, FeatureError>;
}

/// Speech = frame energy above the session's adaptive floor (the audio front-end's rule), as a
/// 0/1 probability every 10 ms.
#[derive(Debug, Clone, Copy, Default)]
pub struct EnergyVad;

impl VoiceActivity for EnergyVad {
    fn name(&self) -> &str {
        "energy"
    }

    fn speech_probabilities(&self, clip: &AudioClip) -> Result<SpeechProbabilities, FeatureError> {
        Ok(energy_probabilities(&audio::analyse(clip)?))
    }
}

/// [`EnergyVad`]'s rule on an analysis already made (a live recording's, which keeps no samples).
pub fn energy_probabilities(a: &audio::Analysis) -> SpeechProbabilities {
    // Frames are centred 20 ms in; shift so that frame k covers [10k, 10k + 10) ms.
    let lead = audio::lld::CENTRE / audio::lld::HOP;
    let mut p = vec![0.0; lead];
    p.extend(a.frames.iter().map(|f| if f[audio::lld::idx::ENERGY_DB] > a.speech_floor_db { 1.0 } else { 0.0 }));
    SpeechProbabilities { frame_ms: 10.0, p }
}

/// How probabilities become utterances.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SegmenterConfig {
    /// Speech starts when p ≥ `on` and continues while p ≥ `off` (silero's defaults 0.5 / 0.35).
    pub on: f32,
    pub off: f32,
    /// Shorter speech runs are dropped (clicks, coughs).
    pub min_speech_ms: u32,
    /// Gaps shorter than this join two runs into one utterance.
    pub merge_gap_ms: u32,
    /// Longer utterances are cut into pieces of at most this length.
    pub max_utterance_ms: u32,
    /// Added before and after each utterance (clamped to its neighbours).
    pub pad_ms: u32,
}

impl Default for SegmenterConfig {
    fn default() -> Self {
        SegmenterConfig {
            on: 0.5,
            off: 0.35,
            min_speech_ms: 250,
            merge_gap_ms: 1_000,
            max_utterance_ms: 30_000,
            pad_ms: 100,
        }
    }
}

/// Utterance segments from speech probabilities.
pub fn utterances(sp: &SpeechProbabilities, cfg: &SegmenterConfig) -> Vec<Segment> {
    let at = |k: usize| (k as f32 * sp.frame_ms).round() as u32;
    let mut runs: Vec<(u32, u32)> = Vec::new();
    let mut start: Option<usize> = None;
    for (k, &p) in sp.p.iter().enumerate() {
        match start {
            None if p >= cfg.on => start = Some(k),
            Some(s) if p < cfg.off => {
                runs.push((at(s), at(k)));
                start = None;
            }
            _ => {}
        }
    }
    if let Some(s) = start {
        runs.push((at(s), at(sp.p.len())));
    }
    let mut merged: Vec<(u32, u32)> = Vec::new();
    for r in runs {
        match merged.last_mut() {
            Some(last) if r.0.saturating_sub(last.1) < cfg.merge_gap_ms => last.1 = r.1,
            _ => merged.push(r),
        }
    }
    merged.retain(|(a, b)| b - a >= cfg.min_speech_ms);
    let end_of_audio = at(sp.p.len());
    let mut out = Vec::new();
    for i in 0..merged.len() {
        let lo = if i > 0 { merged[i - 1].1 } else { 0 };
        let hi = merged.get(i + 1).map_or(end_of_audio, |n| n.0);
        let (a, b) = (merged[i].0.saturating_sub(cfg.pad_ms).max(lo), (merged[i].1 + cfg.pad_ms).min(hi));
        let pieces = (b - a).div_ceil(cfg.max_utterance_ms.max(1)).max(1);
        let len = (b - a).div_ceil(pieces);
        out.extend((0..pieces).map(|j| Segment { start_ms: a + j * len, end_ms: (a + (j + 1) * len).min(b) }));
    }
    out
}

/// Share of frames at or above `on`: a quick "is there speech at all".
pub fn speech_share(sp: &SpeechProbabilities, on: f32) -> f32 {
    if sp.p.is_empty() { 0.0 } else { sp.p.iter().filter(|&&p| p >= on).count() as f32 / sp.p.len() as f32 }
}

/// Median probability, for logs.
pub fn median(sp: &SpeechProbabilities) -> f32 {
    quantile(&sp.p, 0.5)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probs(pattern: &[(f32, usize)]) -> SpeechProbabilities {
        SpeechProbabilities {
            frame_ms: 10.0,
            p: pattern.iter().flat_map(|&(p, n)| std::iter::repeat_n(p, n)).collect(),
        }
    }

    #[test]
    fn hysteresis_merging_and_minimum_length() {
        let cfg = SegmenterConfig { pad_ms: 0, ..Default::default() };
        // 1 s speech, a 0.4 dip (kept by hysteresis), 0.5 s gap (merged), 1 s speech,
        // 3 s silence, a 100 ms click (dropped), 2 s silence, 2 s speech.
        let sp = probs(&[
            (0.0, 50),
            (0.9, 50),
            (0.4, 20),
            (0.9, 30),
            (0.1, 50),
            (0.8, 100),
            (0.0, 300),
            (0.9, 10),
            (0.0, 200),
            (0.7, 200),
        ]);
        let u = utterances(&sp, &cfg);
        assert_eq!(
            u,
            vec![Segment { start_ms: 500, end_ms: 3_000 }, Segment { start_ms: 8_100, end_ms: 10_100 }],
            "{u:?}"
        );
    }

    #[test]
    fn long_speech_is_cut_and_padding_stays_inside_the_audio() {
        let cfg = SegmenterConfig::default();
        let u = utterances(&probs(&[(0.9, 7_000)]), &cfg);
        assert_eq!(u.len(), 3);
        assert_eq!((u[0].start_ms, u[2].end_ms), (0, 70_000));
        assert!(u.iter().all(|s| s.end_ms - s.start_ms <= 30_000));
        assert!(utterances(&probs(&[(0.0, 500)]), &cfg).is_empty());
        assert!(utterances(&probs(&[]), &cfg).is_empty());
    }

    #[test]
    fn energy_vad_finds_tone_bursts() {
        // 1 s bursts every 3 s.
        let samples: Vec<f32> =
            (0..16_000 * 12).map(|i| if (i / 16_000) % 3 == 0 { 0.3 * (i as f32 * 0.09).sin() } else { 0.0 }).collect();
        let clip = AudioClip { rate: 16_000, samples };
        let sp = EnergyVad.speech_probabilities(&clip).expect("analysed");
        let u = utterances(&sp, &SegmenterConfig::default());
        assert_eq!(u.len(), 4, "{u:?}");
        for (k, s) in u.iter().enumerate() {
            let onset = k as u32 * 3_000;
            assert!(s.start_ms.abs_diff(onset.saturating_sub(100)) <= 30, "{u:?}");
            assert!(s.end_ms.abs_diff(onset + 1_100) <= 30, "{u:?}");
        }
    }
}
