//! FHIR R4 for an electronic health record: a `Bundle` (type `collection`) holding, per
//! screening, an `Observation` and, when the kiosk took a questionnaire, a
//! `QuestionnaireResponse` that the Observation is derived from.
//!
//! The Observation: status `final`, category `survey`, the risk probability as its value
//! (absent, with a reason, when the device had too little data), a POS/NEG/IND interpretation,
//! components for the PHQ-8 estimate, the questionnaire score, each modality's contribution
//! (fusion-gate weight; absent modalities with a reason), each flag, the model version and
//! feature schema; the device as an identifier; notes with "screening aid, not a diagnosis",
//! what the model was trained on and what its validation figures are and are not.
//!
//! The subject is pseudonymous: `Patient/<pseudonym>`, the session's label (labels carry no
//! personal data) or the device and session, which the receiving system maps to its patient.
//! Resource ids and `urn:uuid:` full URLs are derived from `(device_id, seq)`, so exporting the
//! same result twice gives the same resources.
//!
//! Codes: LOINC 44261-6 (PHQ-9 total score), 44249-1 (the PHQ-9 panel, as the questionnaire's
//! canonical URL) and the answer list LL358-3 (LA6568-5 … LA6571-9); MIMML's own measures use
//! the code system `urn:mimml:code`.

use protocol::{Instrument, Modalities, ResultFlags, ResultRecord};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::{NOTICE, flag_words, utc};
use crate::db::StoredResult;
use crate::models::Catalogue;

const MIMML: &str = "urn:mimml:code";
const LOINC: &str = "http://loinc.org";
const UCUM: &str = "http://unitsofmeasure.org";
const ABSENT: &str = "http://terminology.hl7.org/CodeSystem/data-absent-reason";

/// LOINC's answers to every PHQ item (answer list LL358-3), by score.
const ANSWERS: [(&str, &str); 4] = [
    ("LA6568-5", "Not at all"),
    ("LA6569-3", "Several days"),
    ("LA6570-1", "More than half the days"),
    ("LA6571-9", "Nearly every day"),
];

/// A FHIR `id` ([A-Za-z0-9.-]{1,64}) from free text: other characters become `-`.
fn fhir_id(text: &str) -> String {
    let id: String = text
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '.' || c == '-' { c } else { '-' })
        .take(64)
        .collect();
    if id.is_empty() { "unnamed".into() } else { id }
}

/// A stable `urn:uuid:` for one resource of one result (name-based: SHA-256 of the key, with
/// the version and variant bits of RFC 9562's version 8).
fn uuid(kind: &str, device_id: &str, seq: u64) -> String {
    let d = Sha256::digest(format!("mimml/{kind}/{device_id}/{seq}").as_bytes());
    let mut b = [0u8; 16];
    b.copy_from_slice(&d[..16]);
    b[6] = (b[6] & 0x0F) | 0x80;
    b[8] = (b[8] & 0x3F) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("urn:uuid:{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..])
}

fn mimml_code(code: &str, text: &str) -> Value {
    json!({ "coding": [{ "system": MIMML, "code": code, "display": text }], "text": text })
}

/// The pseudonymous subject of a result.
fn subject(device_id: &str, r: &ResultRecord) -> Value {
    let pseudonym =
        if r.label.is_empty() { fhir_id(&format!("mimml-{device_id}-s{}", r.session)) } else { fhir_id(&r.label) };
    json!({
        "reference": format!("Patient/{pseudonym}"),
        "type": "Patient",
        "identifier": { "system": "urn:mimml:pseudonym", "value": pseudonym },
        "display": "pseudonymous screening participant",
    })
}

fn absent(code: &str, text: &str) -> Value {
    json!({ "coding": [{ "system": ABSENT, "code": code }], "text": text })
}

fn components(r: &ResultRecord, insufficient: bool) -> Vec<Value> {
    let mut c = Vec::new();
    if insufficient {
        c.push(json!({
            "code": mimml_code("phq8-estimate", "PHQ-8 score estimated by the model"),
            "dataAbsentReason": absent("not-performed", "insufficient data: no estimate was made"),
        }));
    } else {
        c.push(json!({
            "code": mimml_code("phq8-estimate", "PHQ-8 score estimated by the model"),
            "valueQuantity": { "value": round(r.phq8, 2), "unit": "score", "system": UCUM, "code": "{score}" },
        }));
    }
    if let Some(q) = &r.questionnaire {
        let code = match q.instrument {
            Instrument::Phq9 => json!({
                "coding": [{ "system": LOINC, "code": "44261-6",
                             "display": "Patient Health Questionnaire 9 item (PHQ-9) total score [Reported]" }],
                "text": "PHQ-9 total score (answered by the patient at the kiosk)",
            }),
            Instrument::Phq8 => mimml_code("phq8-total", "PHQ-8 total score (answered by the patient at the kiosk)"),
        };
        c.push(json!({ "code": code, "valueInteger": q.score() }));
    }
    for (i, (bit, name)) in Modalities::NAMES.into_iter().enumerate() {
        let code = mimml_code(&format!("contribution-{name}"), &format!("contribution of {name} (fusion-gate weight)"));
        if r.modalities.contains(bit) {
            c.push(json!({
                "code": code,
                "valueQuantity": { "value": round(100.0 * r.gates[i], 1), "unit": "%", "system": UCUM, "code": "%" },
            }));
        } else {
            c.push(json!({ "code": code, "dataAbsentReason": absent("not-performed", &format!("no usable {name}")) }));
        }
    }
    for word in flag_words(r) {
        c.push(json!({ "code": mimml_code("flag", "quality or provenance flag"), "valueString": word }));
    }
    c.push(json!({ "code": mimml_code("model-version", "model version"), "valueString": r.model_version.as_str() }));
    c.push(
        json!({ "code": mimml_code("feature-schema", "feature schema"), "valueString": r.feature_schema.to_string() }),
    );
    c
}

/// Two decimals are what the record carries meaningfully; JSON numbers stay short.
fn round(v: f32, decimals: i32) -> f64 {
    let f = 10f64.powi(decimals);
    (f64::from(v) * f).round() / f
}

fn questionnaire_response(s: &StoredResult) -> Option<Value> {
    let (r, q) = (&s.record, s.record.questionnaire.as_ref()?);
    let canonical = match q.instrument {
        Instrument::Phq9 => "http://loinc.org/q/44249-1",
        Instrument::Phq8 => "urn:mimml:questionnaire:phq-8",
    };
    let items: Vec<Value> = q
        .answers
        .iter()
        .enumerate()
        .map(|(i, &a)| {
            let (code, display) = ANSWERS[usize::from(a.min(3))];
            json!({
                "linkId": (i + 1).to_string(),
                "text": protocol::PHQ_ITEMS[i],
                "answer": [{ "valueCoding": { "system": LOINC, "code": code, "display": display } }],
            })
        })
        .collect();
    Some(json!({
        "resourceType": "QuestionnaireResponse",
        "id": fhir_id(&format!("mimml-{}-{}-phq", s.device_id, r.seq)),
        "questionnaire": canonical,
        "status": "completed",
        "subject": subject(&s.device_id, r),
        "authored": utc(r.finished_ms),
        "item": items,
    }))
}

fn observation(s: &StoredResult, models: &Catalogue, qr: Option<&str>) -> Value {
    let r = &s.record;
    let model = models.provenance(&r.model_version);
    let insufficient = r.flags.contains(ResultFlags::INSUFFICIENT_DATA);
    let (code, text) = if insufficient {
        ("IND", "insufficient data: no screen was made; repeat the session")
    } else if r.flags.contains(ResultFlags::SCREEN_POSITIVE) {
        ("POS", "positive screen: refer for clinical assessment")
    } else {
        ("NEG", "negative screen")
    };
    let mut notes = vec![
        json!({ "text": format!("MIMML multimodal depression screening: {NOTICE}.") }),
        json!({ "text": format!("Model {} trained on {}. {}", r.model_version.as_str(), model.trained_on, model.validation()) }),
    ];
    if r.flags.contains(ResultFlags::URGENT) {
        notes.insert(
            0,
            json!({ "text": "URGENT: PHQ-9 item 9 (thoughts of death or self-harm) answered above 0: a same-day safety \
                             assessment by a clinician is needed, whatever the score." }),
        );
    }
    let mut o = json!({
        "resourceType": "Observation",
        "id": fhir_id(&format!("mimml-{}-{}", s.device_id, r.seq)),
        "identifier": [{ "system": "urn:mimml:result", "value": format!("{}/{}", s.device_id, r.seq) }],
        "status": "final",
        "category": [{ "coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/observation-category",
            "code": "survey", "display": "Survey" }] }],
        "code": mimml_code("depression-screen", &format!("Multimodal depression screening ({NOTICE})")),
        "subject": subject(&s.device_id, r),
        "effectiveDateTime": utc(r.started_ms),
        "issued": utc(s.synced_at_ms),
        "interpretation": [{ "coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation", "code": code }],
            "text": text }],
        "note": notes,
        "device": {
            "identifier": { "system": "urn:mimml:device", "value": s.device_id },
            "display": format!("MIMML screening device {}", s.device_id),
        },
        "component": components(r, insufficient),
    });
    if insufficient {
        o["dataAbsentReason"] = absent("not-performed", "insufficient data: too little speech, face and words");
    } else {
        o["valueQuantity"] = json!({
            "value": round(r.p_depressed, 4), "unit": "probability", "system": UCUM, "code": "1" });
    }
    if let Some(qr) = qr {
        o["derivedFrom"] = json!([{ "reference": qr, "type": "QuestionnaireResponse" }]);
    }
    o
}

/// A `collection` Bundle of the results, urgent ones first.
pub fn bundle(results: &[StoredResult], models: &Catalogue, generated_ms: u64) -> Value {
    let mut entries = Vec::new();
    for s in super::listing::urgent_first(results) {
        let qr_url = uuid("questionnaire-response", &s.device_id, s.record.seq);
        let qr = questionnaire_response(s);
        entries.push(json!({
            "fullUrl": uuid("observation", &s.device_id, s.record.seq),
            "resource": observation(s, models, qr.as_ref().map(|_| qr_url.as_str())),
        }));
        if let Some(qr) = qr {
            entries.push(json!({ "fullUrl": qr_url, "resource": qr }));
        }
    }
    json!({
        "resourceType": "Bundle",
        "id": fhir_id(&format!("mimml-report-{generated_ms}")),
        "type": "collection",
        "timestamp": utc(generated_ms),
        "entry": entries,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_uuids_are_valid_and_stable() {
        assert_eq!(fhir_id("kiosk a/ü#1"), "kiosk-a---1");
        assert_eq!(fhir_id(&"x".repeat(80)).len(), 64);
        let u = uuid("observation", "d", 1);
        assert_eq!(u, uuid("observation", "d", 1));
        assert_ne!(u, uuid("observation", "d", 2));
        let hex = u.trim_start_matches("urn:uuid:");
        assert_eq!(hex.len(), 36);
        assert_eq!(&hex[14..15], "8", "version 8");
        assert!(matches!(&hex[19..20], "8" | "9" | "a" | "b"), "RFC 9562 variant");
    }
}
