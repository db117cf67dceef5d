//! Interview transcripts in the formats clinics and tools write: DAIC-WOZ TSV, WebVTT, SRT,
//! whisper / faster-whisper JSON (`segments` with times) and plain text (one utterance a line,
//! no times). Each becomes [`Utterance`]s with the participant told apart from the interviewer,
//! whose lines never reach the text features.
//!
//! Speakers: DAIC-WOZ names them (`Participant`, `Ellie`). In the other formats a speaker is a
//! WebVTT voice span (`<v Name>`), a whisper segment's `speaker` (WhisperX diarisation), or a
//! caption label at the start of a cue or line (`>> NAME:`, `NAME:` in capitals, `[Name] …`); a
//! cue without one continues the previous speaker (captions mark only changes, `>>`). Sounds
//! (`[music]`, a leading `[risita]`) are not words: they are left out of the text. A file
//! that names no speaker is one speaker, the participant. A file that names several needs
//! `participant` ([`Speakers`]): that name's lines are the participant's, every other
//! speaker's are the interviewer's; without it the file is refused, naming the speakers found,
//! because guessing could put the interviewer's words into the screening.
//!
//! Every problem is an error with the file, the line, and what was expected there.
//! Plain-text utterances have no times (0–0): the device then cuts the audio by voice activity.
//!
//! The parsers are written here: the caption crates either parse one format only, drop voice
//! spans, or reject the lenient timestamps real files have (`0:0:7.23`).

use std::path::Path;

use crate::FeatureError;
use crate::text::{Speaker, Utterance};

/// A transcript format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// DAIC-WOZ: TAB-separated `start_time stop_time speaker value`, with that header.
    Daic,
    /// WebVTT (W3C): `WEBVTT`, cues `00:00:01.000 --> 00:00:04.000`, `<v Speaker>` spans.
    Vtt,
    /// SubRip: numbered cues `00:00:01,000 --> 00:00:04,000`.
    Srt,
    /// whisper / faster-whisper JSON: `{"segments": [{"start", "end", "text"}]}` (seconds) or
    /// the bare list of segments.
    Whisper,
    /// One utterance a line, no times.
    Plain,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::Daic => "DAIC-WOZ TSV",
            Format::Vtt => "WebVTT",
            Format::Srt => "SRT",
            Format::Whisper => "whisper JSON",
            Format::Plain => "plain text",
        }
    }

    /// The names [`FromStr`](std::str::FromStr) takes.
    pub const NAMES: [&'static str; 5] = ["daic", "vtt", "srt", "whisper", "plain"];

    /// The format of a file: by its extension, else by its content.
    pub fn detect(path: &Path, text: &str) -> Format {
        let ext = path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
        match ext.as_deref() {
            Some("vtt") => return Format::Vtt,
            Some("srt") => return Format::Srt,
            Some("json") => return Format::Whisper,
            Some("tsv" | "csv") => return Format::Daic,
            Some("txt") => return Format::Plain,
            _ => {}
        }
        let head = text.trim_start_matches('\u{feff}').trim_start();
        let first = head.lines().next().unwrap_or("");
        if first.starts_with("WEBVTT") {
            Format::Vtt
        } else if first.split('\t').map(str::trim).eq(["start_time", "stop_time", "speaker", "value"]) {
            Format::Daic
        } else if head.starts_with(['{', '[']) {
            Format::Whisper
        } else if head.lines().take(4).any(|l| l.contains("-->")) {
            Format::Srt
        } else {
            Format::Plain
        }
    }
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Format, String> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "daic" | "tsv" => Format::Daic,
            "vtt" | "webvtt" => Format::Vtt,
            "srt" => Format::Srt,
            "whisper" | "json" => Format::Whisper,
            "plain" | "txt" | "text" => Format::Plain,
            _ => return Err(format!("unknown transcript format {s:?} (one of {})", Format::NAMES.join(", "))),
        })
    }
}

/// Who the participant is, for files that name several speakers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Speakers {
    /// The participant's name as the file writes it (case does not matter).
    pub participant: Option<String>,
}

/// Reads a transcript file: `format` or the detected one. Text is UTF-8 (a byte-order mark
/// is allowed), or UTF-16 / UTF-32 with a byte-order mark.
pub fn read(path: &Path, format: Option<Format>, speakers: &Speakers) -> Result<Vec<Utterance>, FeatureError> {
    let origin = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|source| FeatureError::Io { path: origin.clone(), source })?;
    let text =
        decode(&bytes).map_err(|(line, detail)| FeatureError::Transcript { path: origin.clone(), line, detail })?;
    let format = format.unwrap_or_else(|| Format::detect(path, &text));
    parse(&text, &origin, format, speakers)
}

/// Bytes → text: UTF-32 and UTF-16 by their byte-order marks, else UTF-8. Legacy 8-bit
/// encodings are refused, not guessed.
fn decode(bytes: &[u8]) -> Result<String, (usize, String)> {
    let units32 = |be: bool| -> Result<String, (usize, String)> {
        let body = &bytes[4..];
        if !body.len().is_multiple_of(4) {
            return Err((0, "UTF-32 text with a truncated last character".into()));
        }
        body.chunks_exact(4)
            .map(|c| {
                let v = if be {
                    u32::from_be_bytes([c[0], c[1], c[2], c[3]])
                } else {
                    u32::from_le_bytes([c[0], c[1], c[2], c[3]])
                };
                char::from_u32(v).ok_or((0, format!("UTF-32 text with an invalid character U+{v:X}")))
            })
            .collect()
    };
    let units16 = |be: bool| -> Result<String, (usize, String)> {
        let body = &bytes[2..];
        if !body.len().is_multiple_of(2) {
            return Err((0, "UTF-16 text with a truncated last character".into()));
        }
        let units: Vec<u16> = body
            .chunks_exact(2)
            .map(|c| if be { u16::from_be_bytes([c[0], c[1]]) } else { u16::from_le_bytes([c[0], c[1]]) })
            .collect();
        String::from_utf16(&units).map_err(|_| (0, "UTF-16 text with an unpaired surrogate".into()))
    };
    match bytes {
        [0, 0, 0xFE, 0xFF, ..] => units32(true),
        [0xFF, 0xFE, 0, 0, ..] => units32(false),
        [0xFE, 0xFF, ..] => units16(true),
        [0xFF, 0xFE, ..] => units16(false),
        _ => String::from_utf8(bytes.to_vec()).map_err(|e| {
            let at = e.utf8_error().valid_up_to();
            let line = 1 + bytes[..at].iter().filter(|&&b| b == b'\n').count();
            (
                line,
                format!("not UTF-8 (byte {at}); convert the file to UTF-8 first (e.g. iconv -f WINDOWS-1252 -t UTF-8)"),
            )
        }),
    }
}

/// Parses transcript text of a known format; `origin` names it in errors.
pub fn parse(text: &str, origin: &str, format: Format, speakers: &Speakers) -> Result<Vec<Utterance>, FeatureError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let err = |line: usize, detail: String| FeatureError::Transcript { path: origin.to_owned(), line, detail };
    let cues = match format {
        Format::Daic => return crate::text::parse_transcript(text, origin),
        Format::Vtt => vtt(text).map_err(|(l, d)| err(l, d))?,
        Format::Srt => srt(text).map_err(|(l, d)| err(l, d))?,
        Format::Whisper => whisper(text).map_err(|(l, d)| err(l, d))?,
        Format::Plain => plain(text),
    };
    if cues.iter().all(|c| c.text.is_empty()) {
        return Err(err(0, format!("no utterances: a {} transcript with no text", format.name())));
    }
    assign(cues, speakers).map_err(|d| err(0, d))
}

/// A cue as read, before speakers are mapped.
#[derive(Debug, Clone, PartialEq)]
struct Cue {
    start_ms: u32,
    end_ms: u32,
    /// Named in the cue, if it names one.
    speaker: Option<String>,
    text: String,
}

type Parsed = Result<Vec<Cue>, (usize, String)>;

/// Speakers → participant / interviewer; unnamed cues continue the previous speaker.
fn assign(cues: Vec<Cue>, speakers: &Speakers) -> Result<Vec<Utterance>, String> {
    let mut names: Vec<String> = Vec::new();
    for c in &cues {
        if let Some(s) = &c.speaker
            && !names.iter().any(|n| n.eq_ignore_ascii_case(s))
        {
            names.push(s.clone());
        }
    }
    let participant = match (&speakers.participant, names.len()) {
        (Some(p), _) => {
            if !names.is_empty() && !names.iter().any(|n| n.eq_ignore_ascii_case(p)) {
                return Err(format!("no speaker named {p:?} in the file; it names {}", names.join(", ")));
            }
            Some(p.clone())
        }
        (None, 0 | 1) => None,
        (None, _) => {
            return Err(format!(
                "the file names {} speakers ({}): say which is the participant (--participant NAME); \
                 the others' lines are the interviewer's and stay out of the text features",
                names.len(),
                names.join(", ")
            ));
        }
    };
    let mut current: Option<String> = None;
    let mut out = Vec::with_capacity(cues.len());
    for c in cues {
        if c.speaker.is_some() {
            current.clone_from(&c.speaker);
        }
        if c.text.is_empty() {
            continue;
        }
        let speaker = match (&participant, &current) {
            // One speaker, or none named: the participant.
            (None, _) => Speaker::Participant,
            (Some(p), Some(s)) if s.eq_ignore_ascii_case(p) => Speaker::Participant,
            (Some(_), Some(_)) => Speaker::Interviewer,
            // Before the first named speaker of a file that names the participant: as plain.
            (Some(_), None) if names.is_empty() => Speaker::Participant,
            (Some(_), None) => Speaker::Interviewer,
        };
        out.push(Utterance { start_ms: c.start_ms, end_ms: c.end_ms, speaker, text: c.text });
    }
    Ok(out)
}

/// A caption timestamp: `[h:]m:s[.fff]`, with `,` as SRT writes the fraction; hours and
/// minutes of any width, a fraction of 1–3 digits (`7.23` is 7.230 s).
fn timestamp(s: &str) -> Option<u32> {
    let s = s.trim();
    let (whole, frac) = match s.find(['.', ',']) {
        Some(i) => (&s[..i], &s[i + 1..]),
        None => (s, ""),
    };
    let parts: Vec<&str> = whole.split(':').collect();
    if !(2..=3).contains(&parts.len()) || frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let num = |p: &str| -> Option<u64> {
        if p.is_empty() || p.len() > 4 || !p.bytes().all(|b| b.is_ascii_digit()) { None } else { p.parse().ok() }
    };
    let (h, m, sec) = match parts.as_slice() {
        [m, s] => (0, num(m)?, num(s)?),
        [h, m, s] => (num(h)?, num(m)?, num(s)?),
        _ => return None,
    };
    if m >= 60 && parts.len() == 3 || sec >= 60 {
        return None;
    }
    let ms = if frac.is_empty() { 0 } else { frac.parse::<u64>().ok()? * 10u64.pow(3 - frac.len() as u32) };
    u32::try_from(((h * 60 + m) * 60 + sec) * 1000 + ms).ok()
}

/// `start --> end [settings]` → (start, end), end not before start.
fn timing(line: &str, n: usize) -> Result<(u32, u32), (usize, String)> {
    let Some((a, b)) = line.split_once("-->") else {
        return Err((n, format!("expected a cue timing \"00:00:01.000 --> 00:00:04.000\", found {line:?}")));
    };
    let b = b.split_whitespace().next().unwrap_or("");
    let start = timestamp(a).ok_or((n, format!("bad start time {:?} (expected hh:mm:ss.ttt)", a.trim())))?;
    let end = timestamp(b).ok_or((n, format!("bad end time {b:?} (expected hh:mm:ss.ttt)")))?;
    if end < start {
        return Err((n, format!("the cue ends ({}) before it starts ({})", b, a.trim())));
    }
    Ok((start, end))
}

/// Cue text → (speaker named in it, plain text): voice spans, caption labels, tags and
/// character references handled.
fn cue_text(lines: &[&str]) -> (Option<String>, String) {
    let mut speaker = None;
    let mut words = Vec::new();
    for raw in lines {
        // `[music]`, `[laughter]`: sounds, not words.
        let bare = raw.trim();
        if bare.starts_with('[') && bare.ends_with(']') {
            continue;
        }
        // `<v Name>` / `<v.class Name>`: the first voice names the speaker.
        if speaker.is_none()
            && let Some(i) = raw.find("<v")
            && matches!(raw[i + 2..].chars().next(), Some(' ' | '.' | '\t'))
            && let Some(end) = raw[i..].find('>')
        {
            let inner = &raw[i + 2..i + end];
            let name = inner.split_once([' ', '\t']).map_or("", |(_, n)| n).trim();
            if !name.is_empty() {
                speaker = Some(name.to_owned());
            }
        }
        let mut line = strip_tags(raw);
        // A leading lower-case `[risita]` describes a sound; `[Alba] …` names the speaker.
        if let Some(rest) = line.trim_start().strip_prefix('[')
            && let Some((inside, after)) = rest.split_once(']')
            && !inside.trim_start().starts_with(char::is_uppercase)
        {
            line = after.to_owned();
        }
        if let Some((name, rest)) = caption_label(&line) {
            if speaker.is_none() {
                speaker = Some(name);
            }
            line = rest;
        }
        let line = line.trim();
        if !line.is_empty() {
            words.push(unescape(line));
        }
    }
    (speaker, words.join(" "))
}

/// Removes `<...>` tags and SRT's `{\an8}`-style overrides.
fn strip_tags(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut depth = None;
    for c in s.chars() {
        match (depth, c) {
            (None, '<') => depth = Some('>'),
            (None, '{') => depth = Some('}'),
            (Some(close), c) if c == close => depth = None,
            (Some(_), _) => {}
            (None, c) => out.push(c),
        }
    }
    out
}

/// `>> NAME: text`, `>> text` (a change of speaker, unnamed), `NAME: text` with NAME in
/// capitals, `[NAME] text` → (name, text). `>>` alone yields no name.
fn caption_label(line: &str) -> Option<(String, String)> {
    let t = line.trim_start();
    let (t, marked) = match t.strip_prefix(">>") {
        Some(rest) => (rest.trim_start(), true),
        None => (t, false),
    };
    if let Some(rest) = t.strip_prefix('[')
        && let Some((name, after)) = rest.split_once(']')
        && name.trim_start().starts_with(char::is_uppercase)
        && plausible_name(name, false)
    {
        return Some((name.trim().to_owned(), after.trim_start().to_owned()));
    }
    if let Some((name, after)) = t.split_once(':')
        && plausible_name(name, !marked)
    {
        return Some((name.trim().to_owned(), after.trim_start().to_owned()));
    }
    None
}

/// A speaker label: 1–3 words of letters (and `.`, `'`, `-`, digits after the first letter);
/// in capitals when nothing else marks it as a label (`Note: …` in running text is not one).
fn plausible_name(name: &str, capitals: bool) -> bool {
    let name = name.trim();
    let words: Vec<&str> = name.split_whitespace().collect();
    !words.is_empty()
        && words.len() <= 3
        && name.len() <= 40
        && words.iter().all(|w| {
            w.chars().next().is_some_and(char::is_alphabetic)
                && w.chars().all(|c| c.is_alphanumeric() || matches!(c, '.' | '\'' | '-' | '_'))
        })
        && (!capitals || name.chars().filter(|c| c.is_alphabetic()).all(char::is_uppercase))
}

/// HTML-style character references captions use.
fn unescape(s: &str) -> String {
    if !s.contains('&') {
        return s.to_owned();
    }
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&nbsp;", " ")
        .replace("&lrm;", "")
        .replace("&rlm;", "")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

/// Lines with their 1-based numbers, split into blank-line-separated blocks.
fn blocks(text: &str) -> Vec<Vec<(usize, &str)>> {
    let mut out = Vec::new();
    let mut cur = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
        } else {
            cur.push((i + 1, line));
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

fn vtt(text: &str) -> Parsed {
    let first = text.lines().next().unwrap_or("");
    let signature = first.strip_prefix("WEBVTT");
    if !signature.is_some_and(|rest| rest.is_empty() || rest.starts_with([' ', '\t'])) {
        return Err((1, format!("expected \"WEBVTT\" on the first line of a WebVTT file, found {first:?}")));
    }
    let mut cues = Vec::new();
    // The first block is the header (signature and metadata lines).
    for block in blocks(text).into_iter().skip(1) {
        let (n0, head) = block[0];
        if head.starts_with("NOTE") || head.starts_with("STYLE") || head.starts_with("REGION") {
            continue;
        }
        // As the W3C parser does: a line with "-->" starts a cue (ending the one before, even
        // without a blank line between); one line before the first timing is the identifier.
        let mut current: Option<(usize, u32, u32, Vec<&str>)> = None;
        for (i, &(n, line)) in block.iter().enumerate() {
            if line.contains("-->") {
                let (start_ms, end_ms) = timing(line, n)?;
                if let Some((_, s, e, payload)) = current.replace((n, start_ms, end_ms, Vec::new())) {
                    let (speaker, text) = cue_text(&payload);
                    cues.push(Cue { start_ms: s, end_ms: e, speaker, text });
                }
            } else if let Some((_, _, _, payload)) = current.as_mut() {
                payload.push(line);
            } else if i > 0 {
                return Err((n0, format!("a cue identifier {head:?} with no timing line after it")));
            }
        }
        match current {
            Some((_, start_ms, end_ms, payload)) => {
                let (speaker, text) = cue_text(&payload);
                cues.push(Cue { start_ms, end_ms, speaker, text });
            }
            None => return Err((n0, format!("a cue identifier {head:?} with no timing line after it"))),
        }
    }
    Ok(cues)
}

fn srt(text: &str) -> Parsed {
    let mut cues = Vec::new();
    for block in blocks(text) {
        let (n0, head) = block[0];
        // The cue number is optional in practice.
        let t = usize::from(!head.contains("-->"));
        if t == 1 && !head.trim().bytes().all(|b| b.is_ascii_digit()) {
            return Err((
                n0,
                format!("expected a cue number or a timing line \"00:00:01,000 --> 00:00:04,000\", found {head:?}"),
            ));
        }
        let Some(&(n, timing_line)) = block.get(t) else {
            return Err((n0, format!("cue {} has no timing line", head.trim())));
        };
        let (start_ms, end_ms) = timing(timing_line, n)?;
        let payload: Vec<&str> = block[t + 1..].iter().map(|(_, l)| *l).collect();
        let (speaker, text) = cue_text(&payload);
        cues.push(Cue { start_ms, end_ms, speaker, text });
    }
    if cues.is_empty() {
        return Err((0, "no cues: an empty SRT file".into()));
    }
    Ok(cues)
}

#[derive(serde::Deserialize)]
struct WhisperFile {
    segments: Vec<WhisperSegment>,
}

/// The bare list of segments faster-whisper users dump (`[s._asdict() for s in segments]`):
/// known by `seek`, which every whisper segment carries and other caption JSON does not (a
/// list of `start`/`end`/`text` alone could be in milliseconds).
#[derive(serde::Deserialize)]
struct BareSegment {
    #[allow(dead_code, reason = "required, to tell whisper's segments from other captions")]
    seek: serde_json::Number,
    #[serde(flatten)]
    segment: WhisperSegment,
}

#[derive(serde::Deserialize)]
#[serde(untagged)]
enum WhisperTop {
    File(WhisperFile),
    Segments(Vec<BareSegment>),
}

#[derive(serde::Deserialize)]
struct WhisperSegment {
    start: f64,
    end: f64,
    text: String,
    #[serde(default)]
    speaker: Option<String>,
}

fn whisper(text: &str) -> Parsed {
    // as text: a transcript's problem is reported in words with its line (serde_json's own
    // message names it).
    let top: WhisperTop = serde_json::from_str(text).map_err(|e| {
        let what = if e.is_data() {
            "expected whisper JSON: an object with \"segments\" (each with \"start\" and \"end\" in seconds and \"text\"), \
             or faster-whisper's list of segments (with \"seek\")"
                .to_owned()
        } else {
            format!("not JSON: {e}")
        };
        (e.line(), what)
    })?;
    let segments = match top {
        WhisperTop::File(f) => f.segments,
        WhisperTop::Segments(s) => s.into_iter().map(|b| b.segment).collect(),
    };
    let ms = |t: f64| (t.is_finite() && (0.0..4.0e6).contains(&t)).then(|| (t * 1000.0).round() as u32);
    segments
        .into_iter()
        .enumerate()
        .map(|(i, s)| {
            let bad = |what: &str| (0, format!("segment {i}: {what} (start {}, end {})", s.start, s.end));
            let (Some(start_ms), Some(end_ms)) = (ms(s.start), ms(s.end)) else {
                return Err(bad("times must be seconds from 0"));
            };
            if end_ms < start_ms {
                return Err(bad("ends before it starts"));
            }
            Ok(Cue { start_ms, end_ms, speaker: s.speaker, text: s.text.trim().to_owned() })
        })
        .collect()
}

fn plain(text: &str) -> Vec<Cue> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(_, l)| {
            let (speaker, text) = match caption_label(l) {
                Some((name, rest)) => (Some(name), rest),
                None => (None, l.to_owned()),
            };
            Cue { start_ms: 0, end_ms: 0, speaker, text: text.trim().to_owned() }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str, format: Format, participant: Option<&str>) -> Result<Vec<Utterance>, FeatureError> {
        parse(text, "t", format, &Speakers { participant: participant.map(str::to_owned) })
    }

    #[test]
    fn timestamps_of_every_common_shape() {
        assert_eq!(timestamp("00:00:01.000"), Some(1000));
        assert_eq!(timestamp("01:02:03,456"), Some(3_723_456));
        assert_eq!(timestamp("02:03.5"), Some(123_500));
        assert_eq!(timestamp("0:0:7.23"), Some(7230));
        assert_eq!(timestamp("1:2:7.950"), Some(3_727_950));
        for bad in ["", "1", "00:61.000", "00:00:01.0000", "aa:bb:cc", "00:00:-1.0", "1:2:3:4"] {
            assert_eq!(timestamp(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn vtt_voices_map_to_the_participant_and_the_interviewer() {
        let text = "WEBVTT\n\n00:01.000 --> 00:04.000\n<v Dr. Ellis>How have you been sleeping?</v>\n\n\
                    2\n00:00:04.500 --> 00:00:09.000 align:start\n<v.loud Sam>Badly, to be honest &amp; I <i>wake</i> early.\n\n\
                    NOTE a comment\n\n00:00:09.500 --> 00:00:11.000\nEvery night.\n";
        let u = p(text, Format::Vtt, Some("sam")).expect("parses");
        assert_eq!(u.len(), 3);
        assert_eq!((u[0].speaker, u[0].start_ms, u[0].end_ms), (Speaker::Interviewer, 1000, 4000));
        assert_eq!((u[1].speaker, u[1].text.as_str()), (Speaker::Participant, "Badly, to be honest & I wake early."));
        assert_eq!(u[2].speaker, Speaker::Participant, "an unnamed cue continues the speaker");
        let e = p(text, Format::Vtt, None).expect_err("two speakers, none chosen");
        assert!(e.to_string().contains("Dr. Ellis, Sam") && e.to_string().contains("--participant"), "{e}");
        let e = p(text, Format::Vtt, Some("Alex")).expect_err("no such speaker");
        assert!(e.to_string().contains("no speaker named \"Alex\""), "{e}");
    }

    #[test]
    fn errors_name_the_line_and_what_was_expected() {
        let e = p("WEBVTX\n\n00:01.000 --> 00:02.000\nx\n", Format::Vtt, None).expect_err("signature");
        assert!(e.to_string().contains("t:1") || e.to_string().contains("line 1"), "{e}");
        let e = p("WEBVTT\n\n00:01.000 --> 00:00.500\nx\n", Format::Vtt, None).expect_err("backwards");
        assert!(e.to_string().contains("line 3") && e.to_string().contains("before it starts"), "{e}");
        let e = p("1\n00:00:01,000 -> 00:00:02,000\nx\n", Format::Srt, None).expect_err("arrow");
        assert!(e.to_string().contains("line 2") && e.to_string().contains("expected a cue timing"), "{e}");
        let e = p("{\"segments\": [{\"start\": 1.0, \"text\": \"hi\"}]}", Format::Whisper, None).expect_err("no end");
        assert!(e.to_string().contains("\"segments\""), "{e}");
        let e = p("{\"segments\": [{\"start\": 2.0, \"end\": 1.0, \"text\": \"hi\"}]}", Format::Whisper, None)
            .expect_err("backwards");
        assert!(e.to_string().contains("segment 0"), "{e}");
    }

    #[test]
    fn whisper_segments_and_plain_lines() {
        let j = r#"{"text": " Fine. Not great.", "segments": [
            {"id": 0, "seek": 0, "start": 0.0, "end": 2.4, "text": " Fine.", "tokens": [1], "no_speech_prob": 0.01},
            {"id": 1, "seek": 0, "start": 2.4, "end": 4.0, "text": " Not great.", "tokens": [2]}], "language": "en"}"#;
        let u = p(j, Format::Whisper, None).expect("parses");
        assert_eq!((u[1].start_ms, u[1].end_ms, u[1].text.as_str()), (2400, 4000, "Not great."));
        let bare = r#"[{"seek": 0, "start": 0.5, "end": 1.5, "text": "yes", "speaker": "SPEAKER_01"},
                       {"seek": 0, "start": 1.5, "end": 3.0, "text": "how so", "speaker": "SPEAKER_00"}]"#;
        let u = p(bare, Format::Whisper, Some("SPEAKER_01")).expect("diarised");
        assert_eq!((u[0].speaker, u[1].speaker), (Speaker::Participant, Speaker::Interviewer));
        let u = p("I sleep badly.\n\nNote: the dog barks.\n", Format::Plain, None).expect("plain");
        assert_eq!(u.len(), 2);
        assert_eq!((u[1].start_ms, u[1].end_ms, u[1].text.as_str()), (0, 0, "Note: the dog barks."));
        let u = p("INTERVIEWER: How are you?\nPATIENT: Tired.\n", Format::Plain, Some("patient")).expect("labels");
        assert_eq!(
            (u[0].speaker, u[1].speaker, u[1].text.as_str()),
            (Speaker::Interviewer, Speaker::Participant, "Tired.")
        );
    }

    #[test]
    fn formats_are_detected_by_extension_then_content() {
        let d = |name: &str, text: &str| Format::detect(Path::new(name), text);
        assert_eq!(d("a.vtt", ""), Format::Vtt);
        assert_eq!(d("a.SRT", ""), Format::Srt);
        assert_eq!(d("a", "\u{feff}WEBVTT\n"), Format::Vtt);
        assert_eq!(d("a", "start_time\tstop_time\tspeaker\tvalue\n"), Format::Daic);
        assert_eq!(d("a", " {\"segments\": []}"), Format::Whisper);
        assert_eq!(d("a", "1\n00:00:01,000 --> 00:00:02,000\nx"), Format::Srt);
        assert_eq!(d("a", "hello\n"), Format::Plain);
    }

    #[test]
    fn text_in_other_encodings_is_read_or_refused_clearly() {
        let mut le = vec![0xFF, 0xFE];
        le.extend("héllo".encode_utf16().flat_map(u16::to_le_bytes));
        assert_eq!(decode(&le).expect("utf-16le"), "héllo");
        let mut be32 = vec![0, 0, 0xFE, 0xFF];
        be32.extend("ok ✓".chars().flat_map(|c| (c as u32).to_be_bytes()));
        assert_eq!(decode(&be32).expect("utf-32be"), "ok ✓");
        let (line, detail) = decode(b"line one\nl\xe9gal\n").expect_err("latin-1");
        assert_eq!(line, 2);
        assert!(detail.contains("not UTF-8"), "{detail}");
    }
}
