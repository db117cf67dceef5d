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
    /// Longer utterances are cut at their longest pauses, again and again, into pieces of at
    /// most this length (10 s by default: a conversation's turns that follow each other with
    /// short pauses would otherwise become one long utterance); speech without any pause into
    /// equal parts.
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
            max_utterance_ms: 10_000,
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
    // Runs closer than the merge gap form one utterance; each keeps its runs, so that a long one
    // can be split again at its own pauses.
    let mut merged: Vec<Vec<(u32, u32)>> = Vec::new();
    for r in runs {
        match merged.last_mut() {
            Some(last) if r.0.saturating_sub(last[last.len() - 1].1) < cfg.merge_gap_ms => last.push(r),
            _ => merged.push(vec![r]),
        }
    }
    merged.retain(|u| u[u.len() - 1].1 - u[0].0 >= cfg.min_speech_ms);
    let mut pieces: Vec<(u32, u32)> = Vec::new();
    for u in &merged {
        split_at_pauses(u, cfg.max_utterance_ms.max(1), &mut pieces);
    }
    let end_of_audio = at(sp.p.len());
    (0..pieces.len())
        .map(|i| {
            let lo = if i > 0 { pieces[i - 1].1 } else { 0 };
            let hi = pieces.get(i + 1).map_or(end_of_audio, |n| n.0);
            let (a, b) = pieces[i];
            Segment { start_ms: a.saturating_sub(cfg.pad_ms).max(lo), end_ms: (b + cfg.pad_ms).min(hi) }
        })
        .collect()
}

/// Cuts an utterance (its speech runs, in order) into pieces of at most `max_ms`: at its longest
/// pause, again and again; a single run longer than `max_ms` (no pause to cut at) into equal
/// parts.
fn split_at_pauses(runs: &[(u32, u32)], max_ms: u32, out: &mut Vec<(u32, u32)>) {
    let (a, b) = (runs[0].0, runs[runs.len() - 1].1);
    if b - a <= max_ms {
        out.push((a, b));
    } else if runs.len() > 1 {
        // The longest pause; of equal ones, the one nearest the middle (balanced pieces).
        let mid = (a + b) / 2;
        let cut = (0..runs.len() - 1)
            .max_by_key(|&i| (runs[i + 1].0 - runs[i].1, std::cmp::Reverse(runs[i].1.abs_diff(mid))))
            .unwrap_or(0);
        split_at_pauses(&runs[..=cut], max_ms, out);
        split_at_pauses(&runs[cut + 1..], max_ms, out);
    } else {
        let n = (b - a).div_ceil(max_ms);
        let len = (b - a).div_ceil(n);
        out.extend((0..n).map(|j| (a + j * len, (a + (j + 1) * len).min(b))));
    }
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
        assert_eq!(u.len(), 7);
        assert_eq!((u[0].start_ms, u[6].end_ms), (0, 70_000));
        assert!(u.iter().all(|s| s.end_ms - s.start_ms <= cfg.max_utterance_ms));
        assert!(utterances(&probs(&[(0.0, 500)]), &cfg).is_empty());
        assert!(utterances(&probs(&[]), &cfg).is_empty());
    }

    #[test]
    fn long_speech_is_cut_at_its_longest_pauses() {
        // 4 s, a 0.6 s pause, 3 s, a 0.3 s pause, 5 s: one utterance by the merge gap, 12.9 s
        // long, so cut at the 0.6 s pause; the rest (8.3 s) fits.
        let cfg = SegmenterConfig { pad_ms: 0, ..SegmenterConfig::default() };
        let u = utterances(&probs(&[(0.9, 400), (0.0, 60), (0.9, 300), (0.0, 30), (0.9, 500)]), &cfg);
        assert_eq!(u, vec![Segment { start_ms: 0, end_ms: 4_000 }, Segment { start_ms: 4_600, end_ms: 12_900 }]);
        // Equal pauses: the one nearest the middle.
        let u = utterances(
            &probs(&[(0.9, 300), (0.0, 50), (0.9, 300), (0.0, 50), (0.9, 300), (0.0, 50), (0.9, 300)]),
            &cfg,
        );
        assert_eq!(u.iter().map(|s| s.start_ms).collect::<Vec<_>>(), vec![0, 7_000], "{u:?}");
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
