//! Human-readable summaries of results.

use std::fmt::Write;

use protocol::{Escaped, Modalities, ResultFlags, ResultRecord};

/// A bar of `width` cells for a value in [0, 1].
fn bar(v: f32, width: usize) -> String {
    let n = ((v.clamp(0.0, 1.0) * width as f32).round()) as usize;
    format!("{}{}", "█".repeat(n), "·".repeat(width - n))
}

/// A multi-line summary of one result.
pub fn describe(device_id: &str, r: &ResultRecord) -> String {
    let mut s = String::new();
    let screen = if r.flags.contains(ResultFlags::SCREEN_POSITIVE) {
        "POSITIVE screen (refer for clinical assessment)"
    } else {
        "negative screen"
    };
    let _ = writeln!(
        s,
        "  result #{} of device {}, session {} \"{}\"",
        r.seq,
        Escaped(device_id),
        r.session,
        Escaped(&r.label)
    );
    if r.flags.contains(ResultFlags::INSUFFICIENT_DATA) {
        let _ = writeln!(s, "  INSUFFICIENT DATA: no screen was made (too little speech, face and participant words);");
        let _ = writeln!(s, "                    repeat the session (a screening aid, not a diagnosis)");
        let _ = writeln!(s, "  flags             {}", r.flags - ResultFlags::INSUFFICIENT_DATA);
        return s;
    }
    let _ = writeln!(s, "  P(depressed)      {:.3}  → {screen}", r.p_depressed);
    let _ = writeln!(s, "                    (a screening aid, not a diagnosis)");
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
    let _ = writeln!(
        s,
        "  media             {:.1} s captured; device compute {} ms",
        (r.finished_ms.saturating_sub(r.started_ms)) as f64 / 1000.0,
        r.compute_ms
    );
    // The screen itself is said above.
    let flags = r.flags - ResultFlags::SCREEN_POSITIVE;
    if !flags.is_empty() {
        let _ = writeln!(s, "  flags             {flags}");
    }
    s
}

/// One line naming a result (for conflict listings).
pub fn one_line(device_id: &str, r: &ResultRecord) -> String {
    format!(
        "device {} #{} session {} \"{}\" P={:.3} model {}",
        Escaped(device_id),
        r.seq,
        r.session,
        Escaped(&r.label),
        r.p_depressed,
        Escaped(&r.model_version)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::{SchemaHash, truncated};

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
        }
    }

    #[test]
    fn a_label_cannot_drive_the_terminal() {
        let shown = describe("dev\u{1b}[31m", &rec("a\nb\u{1b}[2Jc", ResultFlags::empty()));
        assert!(!shown.contains('\u{1b}'), "{shown}");
        assert_eq!(shown.lines().next().map(|l| l.contains("a\\u{a}b\\u{1b}[2Jc")), Some(true), "{shown}");
        assert!(!one_line("d", &rec("x\ry", ResultFlags::empty())).contains('\r'));
    }

    #[test]
    fn insufficient_data_shows_no_probability_and_no_screen() {
        let shown = describe("d", &rec("x", ResultFlags::INSUFFICIENT_DATA | ResultFlags::TOO_LITTLE_SPEECH));
        assert!(shown.contains("INSUFFICIENT DATA") && shown.contains("not a diagnosis"), "{shown}");
        assert!(!shown.contains("P(depressed)") && !shown.contains("negative screen"), "{shown}");
        assert!(shown.contains("too little speech"), "{shown}");
    }
}
