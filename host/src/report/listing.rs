//! The list formats of `mimml report`: a table for a terminal, CSV for a spreadsheet, JSON.

use std::fmt::Write;

use protocol::{Escaped, Modalities, ResultFlags};

use super::{NOTICE, flag_words, local, record_json, screen, utc};
use crate::db::StoredResult;
use crate::models::Catalogue;

/// Results with the urgent ones first, otherwise in the order given (a stable sort: the
/// database's order by device and sequence stays).
pub fn urgent_first(results: &[StoredResult]) -> Vec<&StoredResult> {
    let mut v: Vec<&StoredResult> = results.iter().collect();
    v.sort_by_key(|s| !s.record.flags.contains(ResultFlags::URGENT));
    v
}

fn modalities(m: Modalities) -> String {
    Modalities::NAMES.iter().filter(|(b, _)| m.contains(*b)).map(|(_, n)| *n).collect::<Vec<_>>().join("+")
}

fn questionnaire(s: &StoredResult) -> String {
    s.record.questionnaire.as_ref().map_or_else(String::new, |q| format!("{} {}", q.instrument.name(), q.score()))
}

/// The models of `results` with what each was trained on, one line each.
fn model_lines(results: &[StoredResult], models: &Catalogue) -> Vec<String> {
    let mut versions: Vec<&str> = results.iter().map(|s| s.record.model_version.as_str()).collect();
    versions.sort_unstable();
    versions.dedup();
    versions
        .into_iter()
        .map(|v| {
            let p = models.provenance(v);
            format!("model {} trained on {}", Escaped(v), p.trained_on)
        })
        .collect()
}

/// A table: one line per result, urgent ones first and marked `!!`.
pub fn table(results: &[StoredResult], models: &Catalogue) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "MIMML screening results ({NOTICE})");
    let _ = writeln!(
        s,
        "{:<2} {:<18} {:>6}  {:<20}  {:<17} {:>5} {:>5}  {:<9}  {:<16}  flags",
        "", "device", "#", "started", "screen", "P", "PHQ-8", "PHQ", "modalities"
    );
    for r in urgent_first(results) {
        let rec = &r.record;
        let insufficient = rec.flags.contains(ResultFlags::INSUFFICIENT_DATA);
        let (p, phq) = if insufficient {
            ("-".into(), "-".into())
        } else {
            (format!("{:.3}", rec.p_depressed), format!("{:.1}", rec.phq8))
        };
        let _ = writeln!(
            s,
            "{:<2} {:<18} {:>6}  {:<20}  {:<17} {:>5} {:>5}  {:<9}  {:<16}  {}",
            if rec.flags.contains(ResultFlags::URGENT) { "!!" } else { "" },
            Escaped(&r.device_id).to_string(),
            rec.seq,
            local(rec.started_ms),
            screen(rec),
            p,
            phq,
            questionnaire(r),
            modalities(rec.modalities),
            flag_words(rec).join(", ")
        );
    }
    if results.is_empty() {
        let _ = writeln!(s, "   (no results)");
    }
    if results.iter().any(|r| r.record.flags.contains(ResultFlags::URGENT)) {
        let _ = writeln!(
            s,
            "!! = PHQ-9 item 9 (thoughts of death or self-harm) answered above 0: a same-day safety assessment is needed"
        );
    }
    for line in model_lines(results, models) {
        let _ = writeln!(s, "{line}");
    }
    s
}

/// A cell a spreadsheet will not run as a formula (OWASP's CSV-injection advice: a leading `=`,
/// `+`, `-`, `@`, tab or carriage return is quoted away with an apostrophe).
fn cell(text: &str) -> String {
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) { format!("'{text}") } else { text.to_owned() }
}

/// CSV with a header row; every row carries the notice and what its model was trained on.
pub fn csv(results: &[StoredResult], models: &Catalogue) -> Result<String, csv::Error> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record([
        "urgent",
        "device_id",
        "seq",
        "session",
        "label",
        "started_utc",
        "finished_utc",
        "screen",
        "p_depressed",
        "phq8_estimate",
        "questionnaire",
        "questionnaire_answers",
        "questionnaire_score",
        "gate_audio",
        "gate_video",
        "gate_text",
        "modalities",
        "flags",
        "model_version",
        "model_trained_on",
        "feature_schema",
        "notice",
    ])?;
    for r in urgent_first(results) {
        let rec = &r.record;
        let insufficient = rec.flags.contains(ResultFlags::INSUFFICIENT_DATA);
        let q = rec.questionnaire.as_ref();
        w.write_record([
            rec.flags.contains(ResultFlags::URGENT).to_string(),
            cell(&r.device_id),
            rec.seq.to_string(),
            rec.session.to_string(),
            cell(&rec.label),
            utc(rec.started_ms),
            utc(rec.finished_ms),
            screen(rec).to_owned(),
            if insufficient { String::new() } else { format!("{:.4}", rec.p_depressed) },
            if insufficient { String::new() } else { format!("{:.2}", rec.phq8) },
            q.map_or_else(String::new, |q| q.instrument.name().to_owned()),
            q.map_or_else(String::new, |q| q.answers.iter().map(u8::to_string).collect::<Vec<_>>().join(" ")),
            q.map_or_else(String::new, |q| q.score().to_string()),
            format!("{:.4}", rec.gates[0]),
            format!("{:.4}", rec.gates[1]),
            format!("{:.4}", rec.gates[2]),
            modalities(rec.modalities),
            flag_words(rec).join("; "),
            cell(&rec.model_version),
            models.provenance(&rec.model_version).trained_on,
            rec.feature_schema.to_string(),
            NOTICE.to_owned(),
        ])?;
    }
    let bytes = w.into_inner().map_err(|e| e.into_error())?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// JSON: the notice, the models, and the results (urgent first) as `mimml results --json` shows
/// each.
pub fn json(results: &[StoredResult], models: &Catalogue) -> serde_json::Value {
    serde_json::json!({
        "notice": NOTICE,
        "models": model_lines(results, models),
        "results": urgent_first(results)
            .into_iter()
            .map(|r| {
                let mut j = record_json(&r.device_id, &r.record, &models.provenance(&r.record.model_version));
                j["synced"] = utc(r.synced_at_ms).into();
                j
            })
            .collect::<Vec<_>>(),
    })
}
