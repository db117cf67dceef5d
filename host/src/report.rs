//! Human-readable summaries of results.

use std::fmt::Write;

use protocol::{Modalities, ResultRecord};

fn flag_names(flags: u16) -> Vec<&'static str> {
    [
        (ResultRecord::FLAG_LOW_QUALITY_AUDIO, "low-quality audio"),
        (ResultRecord::FLAG_NO_FACE, "no usable video"),
        (ResultRecord::FLAG_SHORT_TRANSCRIPT, "short transcript"),
        (ResultRecord::FLAG_PLACEHOLDER_MODEL, "PLACEHOLDER MODEL (not a screening result)"),
        (ResultRecord::FLAG_SIMULATED, "simulated inputs"),
        (ResultRecord::FLAG_SEVERAL_FACES, "several faces in view"),
        (ResultRecord::FLAG_DAMAGED_VIDEO, "damaged video frames skipped"),
    ]
    .into_iter()
    .filter(|(bit, _)| flags & bit != 0)
    .map(|(_, name)| name)
    .collect()
}

/// A bar of `width` cells for a value in [0, 1].
fn bar(v: f32, width: usize) -> String {
    let n = ((v.clamp(0.0, 1.0) * width as f32).round()) as usize;
    format!("{}{}", "█".repeat(n), "·".repeat(width - n))
}

/// A multi-line summary of one result.
pub fn describe(device_id: &str, r: &ResultRecord) -> String {
    let mut s = String::new();
    let screen = if r.flags & ResultRecord::FLAG_SCREEN_POSITIVE != 0 {
        "POSITIVE screen (refer for clinical assessment)"
    } else {
        "negative screen"
    };
    let _ = writeln!(s, "  result #{} of device {device_id}, session {} \"{}\"", r.seq, r.session, r.label);
    let _ = writeln!(s, "  P(depressed)      {:.3}  → {screen}", r.p_depressed);
    let _ = writeln!(s, "  PHQ-8 estimate    {:.1} / 24", r.phq8);
    let _ = writeln!(s, "  contribution      (fusion gate per modality)");
    for (i, (name, bit)) in
        [("audio", Modalities::AUDIO), ("video", Modalities::VIDEO), ("text", Modalities::TEXT)].into_iter().enumerate()
    {
        if r.modalities.has(bit) {
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
    let flags = flag_names(r.flags);
    if !flags.is_empty() {
        let _ = writeln!(s, "  flags             {}", flags.join(", "));
    }
    s
}
