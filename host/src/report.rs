//! Human-readable summaries of results.

use std::fmt::Write;

use protocol::{Modalities, ResultFlags, ResultRecord};

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
    let _ = writeln!(s, "  result #{} of device {device_id}, session {} \"{}\"", r.seq, r.session, r.label);
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
    let _ = writeln!(s, "  model             {} (feature schema {})", r.model_version, r.feature_schema);
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
        "device {device_id} #{} session {} \"{}\" P={:.3} model {}",
        r.seq,
        r.session,
        r.label.escape_debug(),
        r.p_depressed,
        r.model_version.escape_debug()
    )
}
