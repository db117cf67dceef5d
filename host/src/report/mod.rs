//! What the host says about results: the terminal summary ([`describe`]), JSON, and the
//! report formats of `mimml report` ([`Format`]: a table, CSV, JSON, FHIR R4, printable HTML).
//!
//! Every one of them says "screening aid, not a diagnosis" and what the model was trained on
//! ([`crate::models::Provenance`]), and lists urgent results (PHQ-9 item 9 above 0) first.

pub mod fhir;
pub mod html;
pub mod listing;

use std::fmt::Write;

use protocol::{Escaped, Modalities, ResultFlags, ResultRecord};

use crate::models::Provenance;

/// The words every clinical output carries.
pub const NOTICE: &str = "screening aid, not a diagnosis";

/// The report formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One line per result, for a terminal.
    Table,
    /// One row per result, for a spreadsheet.
    Csv,
    /// The results as JSON.
    Json,
    /// A FHIR R4 Bundle: an Observation per screening and a QuestionnaireResponse per
    /// questionnaire, for an electronic health record.
    Fhir,
    /// A printable page per screening for the clinician.
    Html,
}

/// Unix ms → RFC 3339 in UTC, to the second ("2026-12-01T09:30:00Z").
pub fn utc(ms: u64) -> String {
    jiff::Timestamp::from_millisecond(ms.min(i64::MAX as u64) as i64)
        .map_or_else(|_| format!("@{ms}ms"), |t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
}

/// Unix ms → the host's local time with its zone ("2026-12-01 10:30 CET"), for people.
pub fn local(ms: u64) -> String {
    jiff::Timestamp::from_millisecond(ms.min(i64::MAX as u64) as i64).map_or_else(
        |_| format!("@{ms}ms"),
        |t| t.to_zoned(jiff::tz::TimeZone::system()).strftime("%Y-%m-%d %H:%M %Z").to_string(),
    )
}

/// The flags of a result in words, without the screen itself (said elsewhere).
pub fn flag_words(r: &ResultRecord) -> Vec<&'static str> {
    let shown = r.flags - ResultFlags::SCREEN_POSITIVE;
    ResultFlags::NAMES.iter().filter(|(f, _)| shown.contains(*f)).map(|(_, n)| *n).collect()
}

/// A bar of `width` cells for a value in [0, 1].
fn bar(v: f32, width: usize) -> String {
    let n = ((v.clamp(0.0, 1.0) * width as f32).round()) as usize;
    format!("{}{}", "█".repeat(n), "·".repeat(width - n))
}

/// A multi-line summary of one result.
pub fn describe(device_id: &str, r: &ResultRecord, model: &Provenance) -> String {
    let mut s = String::new();
    let screen = if r.flags.contains(ResultFlags::SCREEN_POSITIVE) {
        "POSITIVE screen (refer for clinical assessment)"
    } else {
        screen(r)
    };
    if r.flags.contains(ResultFlags::URGENT) {
        let _ = writeln!(s, "  !! URGENT: PHQ-9 item 9 (thoughts of death or self-harm) answered above 0:");
        let _ = writeln!(s, "  !! a same-day safety assessment by a clinician is needed, whatever the score.");
    }
    let _ = writeln!(
        s,
        "  result #{} of device {}, session {} \"{}\"",
        r.seq,
        Escaped(device_id),
        r.session,
        Escaped(&r.label)
    );
    if let Some(q) = &r.questionnaire {
        let _ = writeln!(
            s,
            "  {} (patient)     {} / {} ({}{})",
            q.instrument.name(),
            q.score(),
            q.instrument.max_score(),
            q.severity().name(),
            if q.score() >= protocol::PHQ_CUTOFF { ", at or above the screening cut-off of 10" } else { "" }
        );
    }
    if r.flags.contains(ResultFlags::INSUFFICIENT_DATA) {
        let _ = writeln!(s, "  INSUFFICIENT DATA: no screen was made (too little speech, face and participant words);");
        let _ = writeln!(s, "                    repeat the session ({NOTICE})");
        let _ = writeln!(s, "  model             {} trained on {}", Escaped(&r.model_version), model.trained_on);
        let _ = writeln!(s, "  flags             {}", r.flags - ResultFlags::INSUFFICIENT_DATA);
        return s;
    }
    let _ = writeln!(s, "  P(depressed)      {:.3}  → {screen}", r.p_depressed);
    let _ = writeln!(s, "                    ({NOTICE})");
    if model.synthetic {
        let _ = writeln!(s, "                    !! the model was trained on synthetic data only: this screen has no");
        let _ =
            writeln!(s, "                    !! clinical meaning (a demonstration of the system, not of a patient)");
    }
    let _ = writeln!(s, "  PHQ-8 estimate    {:.1} / 24", r.phq8);
    let _ = writeln!(s, "  contribution      (fusion gate per modality)");
    for (i, (bit, name)) in Modalities::NAMES.into_iter().enumerate() {
        if r.modalities.contains(bit) {
            let _ = writeln!(s, "    {name:<6} {} {:>5.1} %", bar(r.gates[i], 20), 100.0 * r.gates[i]);
        } else {
            let _ = writeln!(s, "    {name:<6} absent");
        }
    }
    let _ = writeln!(s, "  model             {} (feature schema {})", Escaped(&r.model_version), r.feature_schema);
    let _ = writeln!(s, "  trained on        {}", model.trained_on);
    let _ = writeln!(
        s,
        "  media             {:.1} s captured; device compute {} ms",
        (r.finished_ms.saturating_sub(r.started_ms)) as f64 / 1000.0,
        r.compute_ms
    );
    // The screen itself is said above.
    let flags = r.flags - ResultFlags::SCREEN_POSITIVE - ResultFlags::URGENT;
    if !flags.is_empty() {
        let _ = writeln!(s, "  flags             {flags}");
    }
    s
}

/// What a result says, in words: "positive screen", "negative screen" or "insufficient data".
pub fn screen(r: &ResultRecord) -> &'static str {
    if r.flags.contains(ResultFlags::INSUFFICIENT_DATA) {
        "insufficient data"
    } else if r.flags.contains(ResultFlags::SCREEN_POSITIVE) {
        "positive screen"
    } else {
        "negative screen"
    }
}

/// Names of the set members of a flag type, as a JSON array.
fn names<F: bitflags::Flags + Copy>(set: F, table: &[(F, &str)]) -> serde_json::Value {
    table.iter().filter(|(f, _)| set.contains(*f)).map(|(_, n)| serde_json::Value::from(*n)).collect()
}

/// A result as JSON (machine-readable output of `results`, `session run`, `sync` and `report`).
pub fn record_json(device_id: &str, r: &ResultRecord, model: &Provenance) -> serde_json::Value {
    let insufficient = r.flags.contains(ResultFlags::INSUFFICIENT_DATA);
    serde_json::json!({
        "device_id": device_id,
        "seq": r.seq,
        "session": r.session,
        "label": r.label.as_str(),
        "started_ms": r.started_ms,
        "finished_ms": r.finished_ms,
        "compute_ms": r.compute_ms,
        "screen": screen(r),
        "p_depressed": (!insufficient).then_some(r.p_depressed),
        "phq8": (!insufficient).then_some(r.phq8),
        "gates": { "audio": r.gates[0], "video": r.gates[1], "text": r.gates[2] },
        "modalities": names(r.modalities, &Modalities::NAMES),
        "flags": names(r.flags, &ResultFlags::NAMES),
        "model_version": r.model_version.as_str(),
        "model_trained_on": model.trained_on,
        "feature_schema": r.feature_schema.to_string(),
        "started": utc(r.started_ms),
        "urgent": r.flags.contains(ResultFlags::URGENT),
        "questionnaire": r.questionnaire.as_ref().map(|q| serde_json::json!({
            "instrument": q.instrument.name(),
            "answers": q.answers.as_slice(),
            "score": q.score(),
            "severity": q.severity().name(),
        })),
        "notice": NOTICE,
    })
}

/// What a device is, as JSON.
pub fn info_json(i: &protocol::DeviceInfo) -> serde_json::Value {
    serde_json::json!({
        "device_id": i.device_id.as_str(),
        "board": i.board.as_str(),
        "firmware_version": i.firmware_version.as_str(),
        "protocol_version": i.protocol_version,
        "model_version": i.active_model_version.as_str(),
        "feature_schema": i.feature_schema.to_string(),
        "capabilities": names(i.capabilities, &protocol::Capabilities::NAMES),
        "authorized": i.authorized,
        "slots": i.slots.iter().map(|s| serde_json::json!({
            "slot": s.slot,
            "state": format!("{:?}", s.state),
            "model_version": s.model_version.as_str(),
            "version": s.version,
        })).collect::<Vec<_>>(),
        "last_result_seq": i.last_result_seq,
        "active_session": i.active_session.map(|s| serde_json::json!({
            "session": s.session,
            "state": format!("{:?}", s.state),
            "captured_ms": s.captured_ms,
        })),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::{SchemaHash, truncated};

    fn synthetic() -> Provenance {
        Provenance { trained_on: "synthetic interviews (no real patients)".into(), synthetic: true, known: true }
    }

    fn rec(label: &str, flags: ResultFlags) -> ResultRecord {
        ResultRecord {
            seq: 4,
            session: 2,
            label: truncated(label),
            started_ms: 0,
            finished_ms: 60_000,
            compute_ms: 9,
            p_depressed: 0.0,
            phq8: 0.0,
            gates: [0.0; 3],
            modalities: Modalities::empty(),
            model_version: truncated("m"),
            feature_schema: SchemaHash([1; 8]),
            flags,
            questionnaire: None,
        }
    }

    #[test]
    fn a_label_cannot_drive_the_terminal() {
        let shown = describe("dev\u{1b}[31m", &rec("a\nb\u{1b}[2Jc", ResultFlags::empty()), &synthetic());
        assert!(!shown.contains('\u{1b}'), "{shown}");
        assert_eq!(shown.lines().next().map(|l| l.contains("a\\u{a}b\\u{1b}[2Jc")), Some(true), "{shown}");
        let conflict = crate::db::Conflict {
            device_id: "d".into(),
            seq: 4,
            record: rec("x\ry", ResultFlags::empty()),
            content_hash: String::new(),
            stored_hash: String::new(),
            detected_at_ms: 0,
        };
        assert!(!conflict.summary().contains('\r'));
    }

    #[test]
    fn json_output_names_the_screen_and_hides_numbers_without_data() {
        let j = record_json("d", &rec("x", ResultFlags::INSUFFICIENT_DATA), &synthetic());
        assert_eq!((j["screen"].as_str(), j["p_depressed"].is_null()), (Some("insufficient data"), true));
        assert_eq!(j["notice"], "screening aid, not a diagnosis");
        let j = record_json("d", &rec("x", ResultFlags::SCREEN_POSITIVE | ResultFlags::SIMULATED), &synthetic());
        assert_eq!(j["screen"], "positive screen");
        assert_eq!(j["flags"], serde_json::json!(["simulated inputs", "positive screen"]));
    }

    #[test]
    fn insufficient_data_shows_no_probability_and_no_screen() {
        let shown =
            describe("d", &rec("x", ResultFlags::INSUFFICIENT_DATA | ResultFlags::TOO_LITTLE_SPEECH), &synthetic());
        assert!(shown.contains("INSUFFICIENT DATA") && shown.contains("not a diagnosis"), "{shown}");
        assert!(!shown.contains("P(depressed)") && !shown.contains("negative screen"), "{shown}");
        assert!(shown.contains("too little speech"), "{shown}");
    }

    #[test]
    fn an_urgent_result_says_so_first_with_the_questionnaire() {
        let mut r = rec("x", ResultFlags::URGENT | ResultFlags::KIOSK);
        r.questionnaire = Some(
            protocol::Questionnaire::new(protocol::Instrument::Phq9, &[2, 2, 1, 1, 1, 1, 1, 1, 1]).expect("valid"),
        );
        let shown = describe("d", &r, &synthetic());
        assert!(shown.lines().next().is_some_and(|l| l.contains("URGENT")), "{shown}");
        assert!(shown.contains("PHQ-9 (patient)     11 / 27 (moderate, at or above the screening cut-off"), "{shown}");
        let j = record_json("d", &r, &synthetic());
        assert_eq!((j["urgent"].as_bool(), j["questionnaire"]["score"].as_u64()), (Some(true), Some(11)));
        assert_eq!(j["questionnaire"]["severity"], "moderate");
    }
}
