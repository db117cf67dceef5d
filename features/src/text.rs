//! Text front-end (foundation version) and the DAIC-WOZ transcript format.
//!
//! One row per utterance: word count and rate, lexical rates per word (first-person singular
//! pronouns, negative- and positive-affect words, absolutist words — small built-in word lists)
//! and a 16-bucket signed hashed bag of words (FNV-1a; deterministic on every machine), a
//! stand-in for the affect lexicon and sentence embeddings of the text front-end issue. Callers
//! pass the participant's utterances only unless told otherwise: the interviewer's follow-up
//! prompts leak the label (see `shared/reference/mimml.md`).

use std::path::Path;

use crate::{FeatureError, Sequence};

/// Names of the per-utterance text features, in order.
pub const FEATURE_NAMES: &[&str] = &[
    "words",
    "words_per_s",
    "first_person_rate",
    "negative_rate",
    "positive_rate",
    "absolutist_rate",
    "bow_0",
    "bow_1",
    "bow_2",
    "bow_3",
    "bow_4",
    "bow_5",
    "bow_6",
    "bow_7",
    "bow_8",
    "bow_9",
    "bow_10",
    "bow_11",
    "bow_12",
    "bow_13",
    "bow_14",
    "bow_15",
];
const BOW: usize = 16;
const BOW_AT: usize = 6;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Speaker {
    Participant,
    Interviewer,
}

impl From<Speaker> for protocol::Speaker {
    fn from(s: Speaker) -> Self {
        match s {
            Speaker::Participant => protocol::Speaker::Participant,
            Speaker::Interviewer => protocol::Speaker::Interviewer,
        }
    }
}

impl From<protocol::Speaker> for Speaker {
    fn from(s: protocol::Speaker) -> Self {
        match s {
            protocol::Speaker::Participant => Speaker::Participant,
            protocol::Speaker::Interviewer => Speaker::Interviewer,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Utterance {
    pub start_ms: u32,
    pub end_ms: u32,
    pub speaker: Speaker,
    pub text: String,
}

/// Parses a DAIC-WOZ transcript: TAB-separated `start_time stop_time speaker value` with a
/// header line, times in seconds, speaker `Ellie` or `Participant`. Any problem is an error
/// naming the line; an empty transcript is an error too.
pub fn parse_transcript(text: &str, origin: &str) -> Result<Vec<Utterance>, FeatureError> {
    let err = |line: usize, detail: String| FeatureError::Transcript { path: origin.to_owned(), line, detail };
    let mut lines = text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty());
    match lines.next() {
        Some((_, header)) if header.split('\t').map(str::trim).eq(["start_time", "stop_time", "speaker", "value"]) => {}
        Some((i, _)) => return Err(err(i + 1, "header must be start_time<TAB>stop_time<TAB>speaker<TAB>value".into())),
        None => return Err(err(0, "empty transcript".into())),
    }
    let mut out = Vec::new();
    for (i, line) in lines {
        let cols: Vec<&str> = line.splitn(4, '\t').collect();
        if cols.len() != 4 {
            return Err(err(i + 1, format!("expected 4 TAB-separated columns, found {}", cols.len())));
        }
        let time = |s: &str| -> Result<u32, FeatureError> {
            let t: f64 = s.trim().parse().map_err(|_| err(i + 1, format!("bad time {s:?}")))?;
            if !(0.0..4.0e6).contains(&t) {
                return Err(err(i + 1, format!("time {t} out of range")));
            }
            Ok((t * 1000.0).round() as u32)
        };
        let (start_ms, end_ms) = (time(cols[0])?, time(cols[1])?);
        if end_ms < start_ms {
            return Err(err(i + 1, format!("stop_time before start_time ({} < {})", cols[1], cols[0])));
        }
        let speaker = match cols[2].trim() {
            "Participant" => Speaker::Participant,
            "Ellie" => Speaker::Interviewer,
            other => return Err(err(i + 1, format!("unknown speaker {other:?}"))),
        };
        out.push(Utterance { start_ms, end_ms, speaker, text: cols[3].trim().to_owned() });
    }
    if out.is_empty() {
        return Err(err(0, "no utterances".into()));
    }
    Ok(out)
}

/// Reads and parses a transcript file; non-UTF-8 content is an error, not a panic.
pub fn read_transcript(path: &Path) -> Result<Vec<Utterance>, FeatureError> {
    let origin = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| FeatureError::Transcript {
        path: origin.clone(),
        line: 0,
        detail: e.to_string(),
    })?;
    let text = String::from_utf8(bytes).map_err(|e| FeatureError::Transcript {
        path: origin.clone(),
        line: 0,
        detail: format!("not UTF-8 (byte {})", e.utf8_error().valid_up_to()),
    })?;
    parse_transcript(&text, &origin)
}

const FIRST_PERSON: &[&str] = &["i", "me", "my", "mine", "myself", "i'm", "i've", "i'd", "i'll"];
const NEGATIVE: &[&str] = &[
    "sad",
    "tired",
    "alone",
    "lonely",
    "hopeless",
    "worthless",
    "bad",
    "worse",
    "worst",
    "hate",
    "cry",
    "crying",
    "depressed",
    "anxious",
    "worried",
    "afraid",
    "empty",
    "guilty",
    "hurt",
    "pain",
    "stress",
    "stressed",
    "exhausted",
    "worn",
    "angry",
    "upset",
    "miserable",
    "lost",
    "failure",
    "can't",
    "don't",
    "not",
    "never",
];
const POSITIVE: &[&str] = &[
    "happy",
    "good",
    "great",
    "nice",
    "love",
    "enjoy",
    "fun",
    "glad",
    "excited",
    "proud",
    "calm",
    "relaxed",
    "fine",
    "wonderful",
    "friends",
    "laugh",
    "hope",
    "better",
    "best",
];
const ABSOLUTIST: &[&str] =
    &["always", "never", "nothing", "everything", "completely", "totally", "entire", "all", "constantly"];

fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !(c.is_alphanumeric() || c == '\''))
        .filter(|w| !w.is_empty())
        .map(|w| w.trim_matches('\'').to_lowercase())
}

fn fnv1a(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3))
}

/// One row per utterance ([`FEATURE_NAMES`]); `None` when there are no words at all.
pub fn utterance_features(utterances: &[&Utterance]) -> Option<Sequence> {
    let mut seq = Sequence::new(FEATURE_NAMES.len());
    let mut total = 0usize;
    for u in utterances {
        let ws: Vec<String> = words(&u.text).collect();
        let n = ws.len();
        total += n;
        let rate = |list: &[&str]| {
            if n == 0 { 0.0 } else { ws.iter().filter(|w| list.contains(&w.as_str())).count() as f32 / n as f32 }
        };
        let secs = u.end_ms.saturating_sub(u.start_ms) as f32 / 1000.0;
        let mut row = vec![
            n as f32,
            if secs > 0.0 { n as f32 / secs } else { 0.0 },
            rate(FIRST_PERSON),
            rate(NEGATIVE),
            rate(POSITIVE),
            rate(ABSOLUTIST),
        ];
        row.resize(FEATURE_NAMES.len(), 0.0);
        for w in &ws {
            let h = fnv1a(w);
            let sign = if h >> 63 == 1 { -1.0 } else { 1.0 };
            row[BOW_AT + (h % BOW as u64) as usize] += sign;
        }
        let norm = (n.max(1) as f32).sqrt();
        row[BOW_AT..].iter_mut().for_each(|v| *v /= norm);
        seq.push(&row);
    }
    (total > 0).then_some(seq)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "start_time\tstop_time\tspeaker\tvalue\n0.5\t2.0\tEllie\thow are you\n2.5\t5.5\tParticipant\tI'm tired and sad, I never sleep\n";

    #[test]
    fn parses_daic_format_and_uses_participant_only() {
        let u = parse_transcript(GOOD, "t.tsv").expect("valid");
        assert_eq!(u.len(), 2);
        assert_eq!((u[1].start_ms, u[1].end_ms, u[1].speaker), (2500, 5500, Speaker::Participant));
        let part: Vec<&Utterance> = u.iter().filter(|u| u.speaker == Speaker::Participant).collect();
        let f = utterance_features(&part).expect("participant spoke");
        assert_eq!(f.len(), 1);
        let f = f.row(0);
        assert_eq!(f[0], 7.0); // i'm tired and sad i never sleep
        assert_eq!(f[1], 7.0 / 3.0);
        assert_eq!(f[2], 2.0 / 7.0); // i'm, i
        assert_eq!(f[3], 3.0 / 7.0); // tired, sad, never
        // The hashed bag of words is deterministic and normalised: 7 words, one per bucket at most ±.
        let bow: f32 = f[BOW_AT..].iter().map(|v| v * v).sum();
        assert!(bow > 0.0 && bow <= 7.0 * 7.0 / 7.0 + 1e-4, "{bow}");
        assert_eq!(fnv1a("sad"), fnv1a("sad"));
    }

    #[test]
    fn malformed_lines_name_the_line() {
        for (text, line, needle) in [
            ("start_time\tstop_time\tspeaker\tvalue\n1\t2\tEllie\n", 2, "4 TAB"),
            ("start_time\tstop_time\tspeaker\tvalue\n1\tx\tEllie\thi\n", 2, "bad time"),
            ("start_time\tstop_time\tspeaker\tvalue\n1\t2\tEllie\thi\n3\t2\tParticipant\tyo\n", 3, "before"),
            ("start_time\tstop_time\tspeaker\tvalue\n1\t2\tBob\thi\n", 2, "unknown speaker"),
            ("time\tvalue\n", 1, "header"),
            ("", 0, "empty"),
        ] {
            match parse_transcript(text, "t.tsv") {
                Err(FeatureError::Transcript { line: l, detail, .. }) => {
                    assert_eq!(l, line, "{detail}");
                    assert!(detail.contains(needle), "{detail}");
                }
                other => panic!("{text:?} gave {other:?}"),
            }
        }
    }

    #[test]
    fn non_utf8_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("t.tsv");
        std::fs::write(&p, b"start_time\tstop_time\tspeaker\tvalue\n1\t2\tEllie\t\xFF\xFE\n").expect("write");
        assert!(read_transcript(&p).unwrap_err().to_string().contains("not UTF-8"));
    }

    #[test]
    fn no_words_no_text_features() {
        let u =
            parse_transcript("start_time\tstop_time\tspeaker\tvalue\n1\t2\tParticipant\t...\n", "t").expect("valid");
        assert!(utterance_features(&[&u[0]]).is_none());
        assert!(utterance_features(&[]).is_none());
    }
}
