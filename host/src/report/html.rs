//! The clinician's report: one printable A4 page per screening, self-contained (no scripts, no
//! fonts or images fetched: the bar chart is inline SVG), urgent screenings first.

use std::fmt::Write;

use protocol::{Modalities, ResultFlags};

use super::{NOTICE, flag_words, local};
use crate::db::StoredResult;
use crate::models::Catalogue;

/// Text for HTML content and attribute values. Written here: the five characters HTML gives
/// meaning to, nothing a crate would add.
fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "
@page { size: A4; margin: 12mm; }
body { font-family: 'DejaVu Sans', Arial, sans-serif; font-size: 10pt; color: #111; margin: 0; }
.page { page-break-after: always; break-after: page; max-width: 186mm; margin: 0 auto; padding: 0; }
.page:last-child { page-break-after: auto; break-after: auto; }
h1 { font-size: 14pt; margin: 0 0 1mm 0; }
.notice { font-weight: bold; border: 1.5pt solid #111; padding: 2mm 3mm; margin: 2mm 0 3mm 0; }
.urgent { background: #b00020; color: #fff; font-weight: bold; padding: 2mm 3mm; margin: 2mm 0; }
.synthetic { border: 1.5pt dashed #8a5a00; color: #5a3a00; padding: 2mm 3mm; margin: 2mm 0; }
.screen { font-size: 14pt; font-weight: bold; margin: 2mm 0; }
table { border-collapse: collapse; width: 100%; margin: 1mm 0 3mm 0; }
th, td { text-align: left; padding: 0.8mm 1.5mm; border-bottom: 0.4pt solid #bbb; vertical-align: top; }
th { width: 38%; font-weight: normal; color: #444; }
h2 { font-size: 11.5pt; margin: 3mm 0 1mm 0; border-bottom: 0.8pt solid #111; }
table.phq { font-size: 9pt; }
table.phq th { width: 70%; color: #111; }
table.phq th, table.phq td { padding: 0.4mm 1.5mm; }
.small { font-size: 9pt; color: #333; }
";

/// The whole document: one `<section class="page">` per result.
pub fn document(results: &[StoredResult], models: &Catalogue, generated_ms: u64) -> String {
    let mut s = String::new();
    let _ = write!(
        s,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>MIMML screening report ({NOTICE})</title><style>{STYLE}</style></head><body>\n"
    );
    for r in super::listing::urgent_first(results) {
        page(&mut s, r, models, generated_ms);
    }
    if results.is_empty() {
        let _ = write!(
            s,
            "<section class=\"page\"><h1>MIMML screening report</h1><p class=\"notice\">{NOTICE}</p>\
                           <p>No results match.</p></section>"
        );
    }
    s.push_str("</body></html>\n");
    s
}

fn row(s: &mut String, label: &str, value: &str) {
    let _ = write!(s, "<tr><th>{}</th><td>{value}</td></tr>", esc(label));
}

fn page(s: &mut String, stored: &StoredResult, models: &Catalogue, generated_ms: u64) {
    let r = &stored.record;
    let model = models.provenance(&r.model_version);
    let insufficient = r.flags.contains(ResultFlags::INSUFFICIENT_DATA);
    let _ = write!(s, "<section class=\"page\" data-seq=\"{}\">", r.seq);
    let _ = write!(
        s,
        "<h1>Depression screening: result</h1><div class=\"notice\">This is a {NOTICE}. \
                       It does not replace a clinical assessment.</div>"
    );
    if r.flags.contains(ResultFlags::URGENT) {
        let _ = write!(
            s,
            "<div class=\"urgent\">URGENT: PHQ-9 item 9 (thoughts of being better off dead or of self-harm) was answered \
             above 0. A same-day safety assessment by a clinician is needed, whatever the score.</div>"
        );
    }
    let headline = if insufficient {
        "Insufficient data: no screen was made. Repeat the session.".to_owned()
    } else if r.flags.contains(ResultFlags::SCREEN_POSITIVE) {
        "Positive screen: refer for clinical assessment".to_owned()
    } else {
        "Negative screen".to_owned()
    };
    let _ = write!(s, "<div class=\"screen\">{}</div>", esc(&headline));
    if model.synthetic {
        let _ = write!(
            s,
            "<div class=\"synthetic\">The model that computed this result was trained on synthetic data only: \
             the screen has no clinical meaning.</div>"
        );
    }
    s.push_str("<table>");
    if !insufficient {
        row(s, "Probability of depression (model)", &format!("{:.2}", r.p_depressed));
        row(s, "PHQ-8 estimate (model)", &format!("{:.1} of 24", r.phq8));
    }
    row(s, "Participant (pseudonym)", &if r.label.is_empty() { "—".into() } else { esc(&r.label) });
    row(s, "Session", &format!("{} on device {}, result #{}", r.session, esc(&stored.device_id), r.seq));
    row(
        s,
        "Recorded",
        &format!(
            "{} ({:.0} s of interview)",
            esc(&local(r.started_ms)),
            r.finished_ms.saturating_sub(r.started_ms) as f64 / 1000.0
        ),
    );
    s.push_str("</table>");

    if let Some(q) = &r.questionnaire {
        let _ = write!(
            s,
            "<h2>{} answered by the patient</h2><p class=\"small\">{}</p><table class=\"phq\">",
            q.instrument.name(),
            esc(protocol::PHQ_STEM)
        );
        for (i, a) in q.answers.iter().enumerate() {
            let answer = protocol::PHQ_OPTIONS.iter().find(|(_, v)| v == a).map_or("?", |(t, _)| t);
            row(s, &format!("{}. {}", i + 1, protocol::PHQ_ITEMS[i]), &format!("{} ({a})", esc(answer)));
        }
        row(s, "Total", &format!("<b>{} of {}</b>: {}", q.score(), q.instrument.max_score(), esc(q.severity().name())));
        s.push_str("</table>");
    }

    s.push_str("<h2>What the result rests on</h2>");
    chart(s, r);
    let flags = flag_words(r);
    let _ =
        write!(s, "<p><b>Flags:</b> {}</p>", if flags.is_empty() { "none".to_owned() } else { esc(&flags.join("; ")) });

    s.push_str("<h2>The model</h2><table>");
    row(s, "Model version", &esc(&r.model_version));
    row(s, "Feature schema", &r.feature_schema.to_string());
    row(s, "Trained on", &esc(&model.trained_on));
    s.push_str("</table>");
    let _ = write!(
        s,
        "<p class=\"small\"><b>Validation figures, what they are and are not.</b> {}</p>",
        esc(model.validation())
    );
    let _ = writeln!(
        s,
        "<p class=\"small\">Generated {} by mimml {}. {}. PHQ wording: {}</p></section>",
        esc(&local(generated_ms)),
        env!("CARGO_PKG_VERSION"),
        NOTICE,
        esc(protocol::PHQ_SOURCE)
    );
}

/// Each modality's share of the fused result as a horizontal bar (inline SVG: prints as drawn).
fn chart(s: &mut String, r: &protocol::ResultRecord) {
    let (w, bar_w, h) = (480, 300, 22);
    let _ = write!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{}\" role=\"img\" \
         aria-label=\"contribution of each modality\">",
        3 * h + 8
    );
    for (i, (bit, name)) in Modalities::NAMES.into_iter().enumerate() {
        let y = 4 + i * h;
        let _ = write!(s, "<text x=\"0\" y=\"{}\" font-size=\"12\">{name}</text>", y + 15);
        if r.modalities.contains(bit) {
            let share = r.gates[i].clamp(0.0, 1.0);
            let len = (share * bar_w as f32).round() as usize;
            let _ = write!(
                s,
                "<rect x=\"70\" y=\"{}\" width=\"{bar_w}\" height=\"{}\" fill=\"#eee\"/>\
                 <rect x=\"70\" y=\"{}\" width=\"{len}\" height=\"{}\" fill=\"#1f5fa8\"/>\
                 <text x=\"{}\" y=\"{}\" font-size=\"12\">{:.0} %</text>",
                y + 3,
                h - 8,
                y + 3,
                h - 8,
                80 + bar_w,
                y + 15,
                100.0 * share
            );
        } else {
            let _ = write!(
                s,
                "<text x=\"70\" y=\"{}\" font-size=\"12\" fill=\"#666\">absent (no usable {name})</text>",
                y + 15
            );
        }
    }
    s.push_str("</svg><p class=\"small\">Bars: the weight the model's fusion gave each modality for this session.</p>");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_cannot_inject_markup() {
        assert_eq!(esc("<script>a&'\"</script>\u{7}"), "&lt;script&gt;a&amp;&#39;&quot;&lt;/script&gt;\u{FFFD}");
    }
}
