//! Segments: the time spans a session's feature sequences are cut into.
//!
//! With a timed transcript, one segment per participant turn (consecutive participant
//! utterances less than [`MERGE_GAP_MS`] apart are one turn). Without one, fixed windows of
//! [`WINDOW_MS`]. Audio without a timed transcript is cut into utterances by voice activity
//! ([`crate::vad`]).

use crate::text::{Speaker, Utterance};

/// Participant utterances closer than this are one turn.
pub const MERGE_GAP_MS: u32 = 300;
/// Window length without a transcript.
pub const WINDOW_MS: u32 = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    pub start_ms: u32,
    pub end_ms: u32,
}

impl Segment {
    pub fn duration_s(&self) -> f32 {
        self.end_ms.saturating_sub(self.start_ms) as f32 / 1000.0
    }
}

/// Participant turns, in time order.
pub fn participant_turns(transcript: &[Utterance]) -> Vec<Segment> {
    let mut spans: Vec<Segment> = transcript
        .iter()
        .filter(|u| u.speaker == Speaker::Participant && u.end_ms > u.start_ms)
        .map(|u| Segment { start_ms: u.start_ms, end_ms: u.end_ms })
        .collect();
    spans.sort_by_key(|s| s.start_ms);
    let mut out: Vec<Segment> = Vec::new();
    for s in spans {
        match out.last_mut() {
            Some(last) if s.start_ms <= last.end_ms + MERGE_GAP_MS => last.end_ms = last.end_ms.max(s.end_ms),
            _ => out.push(s),
        }
    }
    out
}

/// Windows of [`WINDOW_MS`] covering `duration_ms` (the last one may be shorter; none under 1 s).
pub fn fixed_windows(duration_ms: u32) -> Vec<Segment> {
    (0..duration_ms)
        .step_by(WINDOW_MS as usize)
        .map(|start_ms| Segment { start_ms, end_ms: (start_ms + WINDOW_MS).min(duration_ms) })
        .filter(|s| s.end_ms - s.start_ms >= 1000)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u(start_ms: u32, end_ms: u32, speaker: Speaker) -> Utterance {
        Utterance { start_ms, end_ms, speaker, text: String::new() }
    }

    #[test]
    fn close_participant_utterances_merge_into_turns() {
        let t = [
            u(0, 1000, Speaker::Interviewer),
            u(1200, 2000, Speaker::Participant),
            u(2100, 3000, Speaker::Participant),
            u(3500, 4000, Speaker::Interviewer),
            u(4500, 6000, Speaker::Participant),
        ];
        assert_eq!(
            participant_turns(&t),
            vec![Segment { start_ms: 1200, end_ms: 3000 }, Segment { start_ms: 4500, end_ms: 6000 }]
        );
    }

    #[test]
    fn windows_cover_the_session() {
        let w = fixed_windows(25_500);
        assert_eq!(w.len(), 3);
        assert_eq!(w[2], Segment { start_ms: 20_000, end_ms: 25_500 });
        assert!(fixed_windows(500).is_empty());
    }
}
