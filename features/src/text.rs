//! Text front-end and the DAIC-WOZ transcript format.
//!
//! One row per utterance ([`FEATURE_NAMES`]), computed offline with nothing to download:
//!
//! * `words`, `words_per_s`;
//! * **affect lexicon**: the share of the utterance's words in each of [`LEXICON`]'s categories
//!   (first-person singular, negative and positive emotion, sadness, anxiety, anger,
//!   fatigue/sleep, absolutist, negation, social, cognitive) — small built-in word lists in the
//!   spirit of LIWC, whose categories are the ones the depression-language literature reports
//!   (first-person focus, negative affect, absolutist words); a trailing `*` matches a prefix;
//! * **hashed n-gram embedding**: unigrams and bigrams, signed feature hashing (FNV-1a, so the
//!   same on every machine) into [`EMBED_DIM`] buckets, L2-normalised — a fixed, training-free
//!   stand-in for a sentence embedding.
//!
//! **Sentence encoder, chosen by config** ([`TextEmbedding`]): the hashed embedding above, or
//! all-MiniLM-L6-v2 ([`TextEmbedding::MiniLm`], 384 dims, mean-pooled and L2-normalised as
//! sentence-transformers does), which then replaces the hashed block. This crate only defines
//! the [`SentenceEncoder`] interface; `runtime::minilm` runs the model with tract. The choice is
//! part of the feature schema, so a model trained with one embedding refuses the other.
//! Callers pass the participant's utterances only unless told otherwise: the interviewer's
//! follow-up prompts leak the label (see `shared/reference/mimml.md`).

use std::path::Path;
use std::sync::LazyLock;

use crate::{FeatureError, Sequence};

/// Buckets of the hashed n-gram embedding.
pub const EMBED_DIM: usize = 32;

/// Width of all-MiniLM-L6-v2's sentence embedding.
pub const MINILM_DIM: usize = 384;

/// Which embedding fills the text rows after the lexicon features.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize)]
pub enum TextEmbedding {
    /// Signed hashed uni+bigrams ([`EMBED_DIM`]); nothing to install.
    #[default]
    #[serde(rename = "hashed")]
    Hashed,
    /// all-MiniLM-L6-v2 ([`MINILM_DIM`]); needs `scripts/install_minilm.sh`.
    #[serde(rename = "minilm")]
    MiniLm,
}

impl TextEmbedding {
    pub const ALL: [TextEmbedding; 2] = [TextEmbedding::Hashed, TextEmbedding::MiniLm];

    pub fn name(self) -> &'static str {
        match self {
            TextEmbedding::Hashed => "hashed",
            TextEmbedding::MiniLm => "minilm",
        }
    }

    pub fn parse(s: &str) -> Option<TextEmbedding> {
        Self::ALL.into_iter().find(|e| e.name() == s)
    }

    /// Names of the per-utterance text features with this embedding, in order.
    pub fn feature_names(self) -> &'static [&'static str] {
        match self {
            TextEmbedding::Hashed => FEATURE_NAMES,
            TextEmbedding::MiniLm => &MINILM_FEATURE_NAMES,
        }
    }
}

impl std::fmt::Display for TextEmbedding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Where the words of the text features come from: a transcript pushed by a host (typed, or a
/// corpus's own), or the device's speech recognition. Part of the feature schema: a model
/// learns the words it is trained on, and machine words differ from typed ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize)]
pub enum TranscriptSource {
    #[default]
    #[serde(rename = "pushed")]
    Pushed,
    /// Whisper tiny.en on the participant's turns (`runtime::whisper`).
    #[serde(rename = "asr")]
    Asr,
}

impl TranscriptSource {
    pub const ALL: [TranscriptSource; 2] = [TranscriptSource::Pushed, TranscriptSource::Asr];

    pub fn name(self) -> &'static str {
        match self {
            TranscriptSource::Pushed => "pushed",
            TranscriptSource::Asr => "asr",
        }
    }

    pub fn parse(s: &str) -> Option<TranscriptSource> {
        Self::ALL.into_iter().find(|e| e.name() == s)
    }
}

impl std::fmt::Display for TranscriptSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The text front-end a model is trained with and a device must match: its sentence embedding
/// and where its words come from (both part of the feature schema).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TextSetup {
    pub embedding: TextEmbedding,
    pub transcripts: TranscriptSource,
}

impl std::fmt::Display for TextSetup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} embedding over {} transcripts", self.embedding, self.transcripts)
    }
}

/// The lexical features, then `minilm_0` … `minilm_383`.
static MINILM_FEATURE_NAMES: LazyLock<Vec<&'static str>> = LazyLock::new(|| {
    let names = (0..MINILM_DIM).map(|i| &*format!("minilm_{i}").leak());
    FEATURE_NAMES[..EMBED_AT].iter().copied().chain(names).collect()
});

/// A sentence encoder: text → a fixed-width embedding.
pub trait SentenceEncoder: std::fmt::Debug + Send + Sync {
    /// Which embedding this is (and so its width and feature names).
    fn embedding(&self) -> TextEmbedding;
    fn embed(&self, text: &str) -> Result<Vec<f32>, FeatureError>;
}

/// Speech recognition on the device: 16 kHz mono speech → its words. The device's is Whisper
/// (`runtime::whisper`); the text features of a session without a pushed transcript come from
/// it.
pub trait Transcriber: std::fmt::Debug + Send + Sync {
    /// Short name for logs ("whisper-tiny.en").
    fn name(&self) -> &str;
    /// The words of `samples` (16 kHz mono); empty when nothing was said.
    fn transcribe(&self, samples: &[f32]) -> Result<MachineWords, FeatureError>;
}

/// What a [`Transcriber`] heard in one stretch of speech.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MachineWords {
    /// The words; empty when nothing was said.
    pub text: String,
    /// The recogniser doubts them: low confidence, or a repetition loop left out.
    pub unreliable: bool,
}

impl MachineWords {
    /// Words the recogniser is sure of.
    pub fn sure(text: impl Into<String>) -> MachineWords {
        MachineWords { text: text.into(), unreliable: false }
    }
}

/// Names of the per-utterance text features, in order.
pub const FEATURE_NAMES: &[&str] = &[
    "words",
    "words_per_s",
    "lex_first_person",
    "lex_negative",
    "lex_positive",
    "lex_sadness",
    "lex_anxiety",
    "lex_anger",
    "lex_fatigue",
    "lex_absolutist",
    "lex_negation",
    "lex_social",
    "lex_cognitive",
    "emb_0",
    "emb_1",
    "emb_2",
    "emb_3",
    "emb_4",
    "emb_5",
    "emb_6",
    "emb_7",
    "emb_8",
    "emb_9",
    "emb_10",
    "emb_11",
    "emb_12",
    "emb_13",
    "emb_14",
    "emb_15",
    "emb_16",
    "emb_17",
    "emb_18",
    "emb_19",
    "emb_20",
    "emb_21",
    "emb_22",
    "emb_23",
    "emb_24",
    "emb_25",
    "emb_26",
    "emb_27",
    "emb_28",
    "emb_29",
    "emb_30",
    "emb_31",
];
const LEX_AT: usize = 2;
const EMBED_AT: usize = LEX_AT + LEXICON.len();

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
    // Editors on Windows start UTF-8 files with a byte-order mark.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
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
    let bytes = std::fs::read(path).map_err(|source| FeatureError::Io { path: origin.clone(), source })?;
    let text = String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        let line = 1 + e.as_bytes()[..at].iter().filter(|&&b| b == b'\n').count();
        FeatureError::Transcript { path: origin.clone(), line, detail: format!("not UTF-8 (byte {at} of the file)") }
    })?;
    parse_transcript(&text, &origin)
}

/// The affect lexicon: (category, words). `*` at the end of a word matches any continuation.
pub const LEXICON: &[(&str, &[&str])] = &[
    ("first_person", &["i", "me", "my", "mine", "myself", "i'm", "i've", "i'd", "i'll"]),
    (
        "negative",
        &[
            "bad",
            "worse",
            "worst",
            "hate*",
            "awful",
            "terrible",
            "horrible",
            "miserable",
            "hurt*",
            "pain*",
            "suffer*",
            "fail*",
            "wrong",
            "problem*",
            "difficult*",
            "hard",
            "struggl*",
            "upset*",
            "empty",
            "worthless",
            "hopeless",
            "guilt*",
            "lost",
            "useless",
            "ugly",
        ],
    ),
    (
        "positive",
        &[
            "happy",
            "happi*",
            "good",
            "great",
            "nice",
            "love*",
            "enjoy*",
            "fun",
            "glad",
            "excit*",
            "proud",
            "calm",
            "relax*",
            "fine",
            "wonderful",
            "laugh*",
            "hope",
            "hopeful",
            "better",
            "best",
            "beautiful",
            "awesome",
            "amazing",
            "grateful",
            "thank*",
        ],
    ),
    (
        "sadness",
        &[
            "sad*", "cry*", "cried", "tear*", "depress*", "lonel*", "alone", "grief", "griev*", "unhappy", "down",
            "blue",
        ],
    ),
    (
        "anxiety",
        &[
            "worr*",
            "anxi*",
            "nervous*",
            "afraid",
            "fear*",
            "scared",
            "panic*",
            "stress*",
            "tense",
            "uneasy",
            "overwhelm*",
        ],
    ),
    ("anger", &["angry", "anger", "mad", "furious", "annoy*", "irritat*", "frustrat*", "rage", "hostil*", "resent*"]),
    (
        "fatigue",
        &[
            "tired", "exhaust*", "sleep*", "insomnia", "fatigue*", "energy", "rest", "bed", "nap*", "awake", "weary",
            "drained",
        ],
    ),
    (
        "absolutist",
        &[
            "always",
            "never",
            "nothing",
            "everything",
            "completely",
            "totally",
            "entire*",
            "all",
            "constant*",
            "definitely",
            "every",
            "whole",
            "absolutely",
        ],
    ),
    (
        "negation",
        &[
            "not", "no", "never", "don't", "can't", "won't", "didn't", "isn't", "wasn't", "nobody", "none", "nor",
            "cannot",
        ],
    ),
    (
        "social",
        &[
            "friend*", "family", "mom", "mother", "dad", "father", "parent*", "brother*", "sister*", "wife", "husband",
            "son", "daughter", "kid*", "people", "we", "us", "our", "together", "talk*",
        ],
    ),
    (
        "cognitive",
        &[
            "think*",
            "thought*",
            "know*",
            "because",
            "reason*",
            "understand*",
            "realiz*",
            "mean",
            "believe*",
            "guess",
            "maybe",
            "wonder*",
        ],
    ),
];

fn in_category(word: &str, list: &[&str]) -> bool {
    list.iter().any(|entry| match entry.strip_suffix('*') {
        Some(prefix) => word.starts_with(prefix),
        None => word == *entry,
    })
}

fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !(c.is_alphanumeric() || c == '\''))
        .filter(|w| !w.is_empty())
        .map(|w| w.trim_matches('\'').to_lowercase())
}

fn fnv1a(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3))
}

/// Adds `sign(h) · weight` to bucket `h mod EMBED_DIM`.
fn hash_into(row: &mut [f32], h: u64, weight: f32) {
    let sign = if h >> 63 == 1 { -1.0 } else { 1.0 };
    row[(h % EMBED_DIM as u64) as usize] += sign * weight;
}

/// One row per utterance ([`FEATURE_NAMES`], or with `encoder`'s embedding in place of the
/// hashed one); `None` when there are no words at all. Only an encoder's failure is an error.
pub fn utterance_features(
    utterances: &[&Utterance],
    encoder: Option<&dyn SentenceEncoder>,
) -> Result<Option<Sequence>, FeatureError> {
    let embedding = encoder.map_or(TextEmbedding::Hashed, |e| e.embedding());
    let width = embedding.feature_names().len();
    let mut seq = Sequence::new(width);
    let mut total = 0usize;
    let mut row = vec![0.0f32; width];
    for u in utterances {
        let ws: Vec<String> = words(&u.text).collect();
        let n = ws.len();
        total += n;
        row.iter_mut().for_each(|v| *v = 0.0);
        let secs = u.end_ms.saturating_sub(u.start_ms) as f32 / 1000.0;
        row[0] = n as f32;
        row[1] = if secs > 0.0 { n as f32 / secs } else { 0.0 };
        if n > 0 {
            for (c, (_, list)) in LEXICON.iter().enumerate() {
                row[LEX_AT + c] = ws.iter().filter(|w| in_category(w, list)).count() as f32 / n as f32;
            }
        }
        let emb = &mut row[EMBED_AT..];
        if let Some(encoder) = encoder {
            // An utterance without words keeps a zero embedding, as with the hashed one.
            if n > 0 {
                let e = encoder.embed(&u.text)?;
                if e.len() != emb.len() {
                    return Err(FeatureError::EncoderWidth {
                        name: embedding.name().into(),
                        got: e.len(),
                        want: emb.len(),
                    });
                }
                emb.copy_from_slice(&e);
            }
            seq.push(&row);
            continue;
        }
        for (i, w) in ws.iter().enumerate() {
            hash_into(emb, fnv1a(w), 1.0);
            if let Some(next) = ws.get(i + 1) {
                // A bigram hashes "w next" (the space keeps "a bc" and "ab c" apart).
                hash_into(emb, fnv1a(&format!("{w} {next}")), 0.5);
            }
        }
        let norm = emb.iter().map(|v| v * v).sum::<f32>().sqrt();
        if norm > 0.0 {
            emb.iter_mut().for_each(|v| *v /= norm);
        }
        seq.push(&row);
    }
    Ok((total > 0).then_some(seq))
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
        let f = utterance_features(&part, None).expect("no encoder, no error").expect("participant spoke");
        assert_eq!(f.len(), 1);
        let f = f.row(0);
        assert_eq!(f[0], 7.0); // i'm tired and sad i never sleep
        assert_eq!(f[1], 7.0 / 3.0);
        let lex = |name: &str| f[FEATURE_NAMES.iter().position(|n| *n == format!("lex_{name}")).expect("category")];
        assert_eq!(lex("first_person"), 2.0 / 7.0); // i'm, i
        assert_eq!(lex("sadness"), 1.0 / 7.0); // sad
        assert_eq!(lex("fatigue"), 2.0 / 7.0); // tired, sleep (prefix sleep*)
        assert_eq!(lex("absolutist"), 1.0 / 7.0); // never
        assert_eq!(lex("negation"), 1.0 / 7.0); // never
        assert_eq!(lex("positive"), 0.0);
        // The hashed n-gram embedding is deterministic and unit length.
        let emb: f32 = f[EMBED_AT..].iter().map(|v| v * v).sum();
        assert!((emb - 1.0).abs() < 1e-5, "{emb}");
        // FNV-1a test vectors: the hash is the published one, not this machine's.
        assert_eq!(fnv1a("a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a("foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn bigrams_tell_word_order_apart() {
        let utt =
            |text: &str| Utterance { start_ms: 0, end_ms: 1000, speaker: Speaker::Participant, text: text.into() };
        let (a, b) = (utt("dog bites man"), utt("man bites dog"));
        let f = utterance_features(&[&a, &b], None).expect("no encoder").expect("words");
        let (ra, rb) = (&f.row(0)[EMBED_AT..], &f.row(1)[EMBED_AT..]);
        assert_ne!(ra, rb);
        let cos: f32 = ra.iter().zip(rb).map(|(x, y)| x * y).sum();
        assert!(cos > 0.5, "same words, similar embedding: {cos}");
    }

    #[test]
    fn malformed_lines_name_the_line() {
        for (text, line, needle) in [
            ("start_time\tstop_time\tspeaker\tvalue\n1\t2\tEllie\n", 2, "4 TAB"),
            ("start_time\tstop_time\tspeaker\tvalue\n1\tx\tEllie\thi\n", 2, "bad time"),
            ("start_time\tstop_time\tspeaker\tvalue\n1\t2\tEllie\thi\n3\t2\tParticipant\tyo\n", 3, "before"),
            ("start_time\tstop_time\tspeaker\tvalue\n1\t2\tBob\thi\n", 2, "unknown speaker"),
            ("time\tvalue\n", 1, "header"),
            ("\u{feff}start_time\tstop_time\tspeaker\tvalue\n1\t2\tBob\thi\n", 2, "unknown speaker"),
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
        let e = read_transcript(&p).unwrap_err().to_string();
        assert!(e.contains("not UTF-8") && e.contains("line 2:"), "{e}");
        // A file-level problem names no line.
        let e = parse_transcript("", "t.tsv").unwrap_err().to_string();
        assert_eq!(e, "transcript t.tsv: empty transcript");
    }

    #[test]
    fn no_words_no_text_features() {
        let u =
            parse_transcript("start_time\tstop_time\tspeaker\tvalue\n1\t2\tParticipant\t...\n", "t").expect("valid");
        assert!(utterance_features(&[&u[0]], None).expect("no encoder").is_none());
        assert!(utterance_features(&[], None).expect("no encoder").is_none());
    }

    /// A stand-in encoder: the embedding is the text's length in every slot.
    #[derive(Debug)]
    struct Lengths(usize);

    impl SentenceEncoder for Lengths {
        fn embedding(&self) -> TextEmbedding {
            TextEmbedding::MiniLm
        }
        fn embed(&self, text: &str) -> Result<Vec<f32>, FeatureError> {
            Ok(vec![text.len() as f32; self.0])
        }
    }

    #[test]
    fn an_encoder_replaces_the_hashed_block_and_a_wrong_width_is_an_error() {
        let u = parse_transcript(GOOD, "t").expect("valid");
        let part = [&u[1]];
        let f = utterance_features(&part, Some(&Lengths(MINILM_DIM))).expect("encodes").expect("words");
        assert_eq!(f.dim, TextEmbedding::MiniLm.feature_names().len());
        assert_eq!(f.dim, EMBED_AT + MINILM_DIM);
        let hashed = utterance_features(&part, None).expect("ok").expect("words");
        assert_eq!(f.row(0)[..EMBED_AT], hashed.row(0)[..EMBED_AT], "lexical features are the same");
        assert!(f.row(0)[EMBED_AT..].iter().all(|&v| v == u[1].text.len() as f32));
        assert_eq!(TextEmbedding::MiniLm.feature_names()[EMBED_AT], "minilm_0");
        assert_eq!(TextEmbedding::MiniLm.feature_names().last(), Some(&"minilm_383"));
        let err = utterance_features(&part, Some(&Lengths(3))).unwrap_err();
        assert!(err.to_string().contains("gave 3 values, expected 384"), "{err}");
        for e in TextEmbedding::ALL {
            assert_eq!(TextEmbedding::parse(e.name()), Some(e));
        }
    }
}
