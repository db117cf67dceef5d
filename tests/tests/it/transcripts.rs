//! Transcript parsers on real files that registry packages ship as their test data
//! (`scripts/install_test_data.sh`): webvtt-py's WebVTT and SRT samples, pysrt's SRT files in
//! every encoding it tests, subsrt's interview-like captions with speaker labels. Valid files
//! give every cue (counted from the file's timing lines, not by our parser); malformed ones an
//! error naming the file, the line and what was expected; the rest of the formats (DAIC-WOZ TSV)
//! on the bundled sample.

use std::path::{Path, PathBuf};

use features::text::Speaker;
use features::transcript::{Format, Speakers, read};

fn dir(package: &str) -> PathBuf {
    let d = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("data/external/transcripts").join(package);
    assert!(d.is_dir(), "{}: run scripts/install_test_data.sh (the README's test command does)", d.display());
    d
}

fn any() -> Speakers {
    Speakers::default()
}

/// Timing lines in a file, counted without our parser (UTF-8 files only).
fn timing_lines(path: &Path) -> usize {
    std::fs::read_to_string(path).expect("utf-8").lines().filter(|l| l.contains("-->")).count()
}

/// Cues whose text is nothing but sounds in brackets (`[música]`) or nothing at all: counted
/// line by line, without our parser.
fn wordless_cues(path: &Path) -> usize {
    let text = std::fs::read_to_string(path).expect("utf-8");
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    let mut n = 0;
    for (i, l) in lines.iter().enumerate() {
        if !l.contains("-->") {
            continue;
        }
        let payload: Vec<&&str> = lines[i + 1..].iter().take_while(|l| !l.is_empty() && !l.contains("-->")).collect();
        if payload.iter().all(|p| p.starts_with('[') && p.ends_with(']')) {
            n += 1;
        }
    }
    n
}

#[test]
fn every_valid_webvtt_and_srt_sample_of_webvtt_py_reads_with_all_its_cues() {
    let d = dir("webvtt-py");
    let mut checked = 0;
    for entry in std::fs::read_dir(&d).expect("ls") {
        let path = entry.expect("entry").path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or_default();
        if !matches!(ext, "vtt" | "srt") || name.starts_with("invalid") || name.starts_with("missing") {
            continue;
        }
        if matches!(name.as_str(), "empty.vtt" | "no_captions.vtt") {
            continue;
        }
        let cues = timing_lines(&path) - wordless_cues(&path);
        // Files that name several speakers: one of them is the participant.
        let participant = match name.as_str() {
            "netflix_chicas_del_cable.vtt" => Some("Alba".to_owned()),
            "non_padded_timestamps.vtt" => Some("John Smith".to_owned()),
            "regions.vtt" => Some("Fred".to_owned()),
            _ => None,
        };
        let speakers = Speakers { participant };
        let u = read(&path, None, &speakers).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(u.len(), cues, "{name}: one utterance per cue with words");
        let tag = |t: &str| t.contains("</") || t.contains("<i>") || t.contains("<v ") || t.contains("<c");
        assert!(u.iter().all(|u| u.end_ms >= u.start_ms && !tag(&u.text)), "{name}: tags left in {u:?}");
        checked += 1;
    }
    assert!(checked >= 15, "only {checked} samples checked");

    // webvtt-py's own expectations (its tests/test_webvtt.py).
    let sample = read(&d.join("sample.vtt"), None, &any()).expect("sample.vtt");
    assert_eq!(sample.len(), 16);
    assert_eq!((sample[0].start_ms, sample[0].end_ms, sample[0].text.as_str()), (500, 7000, "Caption text #1"));
    let tags = read(&d.join("cue_tags.vtt"), None, &any()).expect("cue_tags.vtt");
    assert_eq!(tags[0].text, "When the moon hits your eye");
    assert_eq!(tags[0].start_ms, 16_500, "hours are optional");
    let voices = read(&d.join("non_padded_timestamps.vtt"), None, &Speakers { participant: Some("John Smith".into()) })
        .expect("voices");
    assert_eq!((voices[0].speaker, voices[0].text.as_str()), (Speaker::Interviewer, "Good morning everyone."));
    assert_eq!((voices[1].speaker, voices[1].start_ms, voices[1].end_ms), (Speaker::Participant, 3540, 7230));
    let bom = read(&d.join("captions_with_bom.vtt"), None, &any()).expect("BOM");
    assert!(!bom.is_empty());
}

#[test]
fn malformed_samples_are_errors_with_file_line_and_what_was_expected() {
    let d = dir("webvtt-py");
    let cases: [(&str, &str, &str); 8] = [
        ("invalid.vtt", "line 1", "expected \"WEBVTT\""),
        ("invalid_timeframe.vtt", "line 6", "bad end time"),
        ("missing_timeframe.vtt", "line 6", "no timing line"),
        ("invalid_timeframe.srt", "line 6", "bad end time"),
        ("missing_timeframe.srt", "line 6", "expected a cue timing"),
        ("invalid_format1.srt", "line 1", "no timing line"),
        ("empty.vtt", "", "expected \"WEBVTT\""),
        ("no_captions.vtt", "", "no utterances"),
    ];
    for (name, line, what) in cases {
        let e = read(&d.join(name), None, &any()).expect_err(name).to_string();
        assert!(e.contains(name), "{name}: the message names the file: {e}");
        assert!(e.contains(line) && e.contains(what), "{name}: expected {line:?} and {what:?} in: {e}");
    }
    // A timing line inside a cue's text starts the next cue, as the W3C parser has it (and
    // webvtt-py without `strict`: four cues, the second without text).
    let u = read(&d.join("invalid_timeframe_in_cue_text.vtt"), None, &any()).expect("W3C parsing");
    assert_eq!(
        u.iter().map(|u| u.text.as_str()).collect::<Vec<_>>(),
        ["Caption text #1", "Caption text #2", "Caption text #3"]
    );
    // A cue without text is not an utterance, and is no error.
    let u = read(&d.join("missing_caption_text.vtt"), None, &any()).expect("parses");
    assert_eq!(u.len(), timing_lines(&d.join("missing_caption_text.vtt")) - 1);
}

#[test]
fn pysrt_files_in_every_encoding_read_alike_and_legacy_ones_are_refused() {
    let d = dir("pysrt");
    let film = read(&d.join("utf-8.srt"), None, &any()).expect("utf-8.srt");
    assert_eq!(film.len(), timing_lines(&d.join("utf-8.srt")));
    assert_eq!(film[1].text, "CE FILM RELATE DES ÉVÉNEMENTS QUI ONT EXISTÉ.");
    assert_eq!((film[1].start_ms, film[1].end_ms), (27_074, 30_566));
    let reference = read(&d.join("bom-utf-8.srt"), None, &any()).expect("bom-utf-8.srt");
    assert_eq!(reference.len(), 7);
    for name in ["bom-utf-16-le.srt", "bom-utf-16-be.srt", "bom-utf-32-le.srt", "bom-utf-32-be.srt"] {
        let u = read(&d.join(name), None, &any()).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(u.len(), reference.len(), "{name}");
        assert_eq!(u[1].text, reference[1].text, "{name}");
    }
    let no_numbers = read(&d.join("no-indexes.srt"), None, &any()).expect("cue numbers are optional");
    assert!(!no_numbers.is_empty());
    let caps = read(&d.join("capability_tester.srt"), None, &any()).expect("CRLF, tags");
    assert!(caps.iter().all(|u| !u.text.contains('<') && !u.text.contains('\r')), "{caps:?}");
    let e = read(&d.join("windows-1252.srt"), None, &any()).expect_err("legacy encoding").to_string();
    assert!(e.contains("windows-1252.srt") && e.contains("not UTF-8") && e.contains("iconv"), "{e}");
    // pysrt's "empty" file has cues without text: they are not utterances.
    let sparse = read(&d.join("empty.srt"), None, &any()).expect("cues without text");
    assert_eq!(sparse.len(), timing_lines(&d.join("empty.srt")) - wordless_cues(&d.join("empty.srt")));
    assert_eq!(sparse.len(), 5);
    // pysrt refuses times without milliseconds; they are unambiguous, and read here.
    let whole = read(&d.join("invalid.srt"), None, &any()).expect("whole seconds");
    assert_eq!((whole[0].start_ms, whole[0].end_ms), (1000, 10_000));
}

#[test]
fn caption_speaker_labels_tell_the_participant_from_the_interviewer() {
    let d = dir("subsrt");
    // `>> ALICE:` / `>> JOHN:` mark changes of speaker in the SRT.
    let e = read(&d.join("sample.srt"), None, &any()).expect_err("two speakers, none chosen").to_string();
    assert!(e.contains("ALICE") && e.contains("JOHN") && e.contains("--participant"), "{e}");
    let u = read(&d.join("sample.srt"), None, &Speakers { participant: Some("alice".into()) }).expect("mapped");
    assert_eq!(
        u.len(),
        timing_lines(&d.join("sample.srt")) - 1,
        "every cue but the one that is only \"[intro music]\""
    );
    assert!(u.iter().all(|u| !u.text.contains("intro music")));
    assert_eq!(
        (u[0].speaker, u[0].text.as_str()),
        (Speaker::Participant, "Hi, my name is Alice Miller and this is John Brown")
    );
    assert_eq!((u[1].speaker, u[1].text.as_str()), (Speaker::Interviewer, "and we're the owners of Miller Bakery."));
    let participant: Vec<&str> =
        u.iter().filter(|u| u.speaker == Speaker::Participant).map(|u| u.text.as_str()).collect();
    let interviewer = u.len() - participant.len();
    assert!(!participant.is_empty() && interviewer > 0, "{participant:?}");
    // The WebVTT twin: NOTE and STYLE blocks skipped, every cue read.
    let v = read(&d.join("sample.vtt"), None, &any()).expect("vtt");
    assert_eq!(v.len(), timing_lines(&d.join("sample.vtt")) - wordless_cues(&d.join("sample.vtt")));
    // subsrt's own JSON is not whisper's: refused, saying what whisper JSON is.
    let e = read(&d.join("sample.json"), None, &any()).expect_err("another JSON").to_string();
    assert!(e.contains("sample.json") && e.contains("\"segments\""), "{e}");
    // Forcing the wrong format is an error, not a silent empty transcript.
    let e = read(&d.join("sample.srt"), Some(Format::Vtt), &any()).expect_err("not vtt").to_string();
    assert!(e.contains("line 1") && e.contains("WEBVTT"), "{e}");
}

#[test]
fn the_daic_woz_sample_reads_through_the_same_entry_point() {
    let path = tests::sample_session().join("transcript.tsv");
    let u = read(&path, None, &any()).expect("DAIC TSV");
    assert_eq!(u, features::text::read_transcript(&path).expect("same"));
    assert!(u.iter().any(|u| u.speaker == Speaker::Interviewer) && u.iter().any(|u| u.speaker == Speaker::Participant));
}
