//! Results: syncing them from a device, forwarding them between databases, listing them and the
//! reports made of them.

use std::path::Path;

use anyhow::Context;
use host::db::{Filter, ResultsDb, Target};
use host::terminal::sync_with_progress;
use host::{forward, out, out_raw, report};
use indicatif::{ProgressBar, ProgressStyle};

use crate::cli::PortArgs;
use crate::context::{Ctx, print_json};

/// `mimml sync`: every result the device has and the database lacks, exactly once.
pub(crate) fn sync(ctx: &Ctx, port: &PortArgs, db: &Target) -> anyhow::Result<()> {
    let (mut client, info) = ctx.connect(port)?;
    let mut db = ResultsDb::open(db)?;
    let r = sync_with_progress(&mut client, &mut db, info.device_id.as_str())?;
    if ctx.json {
        print_json(&serde_json::json!({
            "device_id": info.device_id.as_str(),
            "fetched": r.fetched,
            "inserted": r.inserted,
            "cursor": r.cursor,
            "conflicts": r.conflicts.iter().map(|c| report::record_json(&c.device_id, &c.record, &ctx.model(&c.record))).collect::<Vec<_>>(),
        }));
    } else {
        out!(
            "synced {} result(s) from {} ({} new); database holds up to #{}",
            r.fetched,
            info.device_id,
            r.inserted,
            r.cursor
        );
    }
    for c in &r.conflicts {
        eprintln!("CONFLICT {}", c.summary());
    }
    anyhow::ensure!(
        r.conflicts.is_empty(),
        "{} result(s) arrived under numbers this database holds with other content: kept aside, not \
         stored as results (two devices may share the id {}; see `mimml results --conflicts`)",
        r.conflicts.len(),
        info.device_id
    );
    Ok(())
}

/// `mimml forward`: what `from` has and `to` lacks, exactly once.
pub(crate) fn forward(ctx: &Ctx, from: &Target, to: &Target) -> anyhow::Result<()> {
    anyhow::ensure!(from != to, "--from and --to name the same database");
    let mut source = ResultsDb::open_read_only(from)?;
    let mut dest = ResultsDb::open(to)?;
    let bar = ProgressBar::new(0).with_style(
        ProgressStyle::with_template("  forwarding {msg} [{bar:30}] {pos}/{len}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let done = forward::forward(&mut source, &mut dest, |device, sent, total| {
        bar.set_message(device.to_owned());
        bar.set_length(total as u64);
        bar.set_position(sent as u64);
    });
    bar.finish_and_clear();
    let done = done?;
    if ctx.json {
        print_json(&serde_json::json!({
            "from": from.to_string(),
            "to": to.to_string(),
            "devices": done.devices.iter().map(|(d, had, new)| serde_json::json!({
                "device_id": d, "records": had, "inserted": new,
            })).collect::<Vec<_>>(),
            "inserted": done.inserted(),
            "conflicts": done.conflicts.iter().map(|c| report::record_json(&c.device_id, &c.record, &ctx.model(&c.record))).collect::<Vec<_>>(),
            "source_conflicts_not_forwarded": done.source_conflicts,
        }));
    } else {
        for (device, had, new) in &done.devices {
            out!("  {device}: {had} result(s) in {from}, {new} new in {to}");
        }
        out!("forwarded {} new result(s) from {from} to {to}", done.inserted());
    }
    for c in &done.conflicts {
        eprintln!("CONFLICT {}", c.summary());
    }
    if done.source_conflicts > 0 {
        eprintln!(
            "note: {} record(s) kept aside as conflicts in {from} are not forwarded \
             (`mimml results --db {from} --conflicts`)",
            done.source_conflicts
        );
    }
    anyhow::ensure!(
        done.conflicts.is_empty(),
        "{} result(s) arrived under numbers {to} holds with other content: kept aside there, not stored as \
         results (`mimml results --db {to} --conflicts`)",
        done.conflicts.len()
    );
    Ok(())
}

/// `mimml results --conflicts`: the records kept aside.
pub(crate) fn conflicts(db: &Target, device: Option<&str>) -> anyhow::Result<()> {
    let mut db = ResultsDb::open_read_only(db)?;
    let kept = db.conflicts()?;
    if kept.is_empty() {
        out!("no conflicts");
    }
    for c in kept.iter().filter(|c| device.is_none_or(|d| d == c.device_id)) {
        out!("{} (stored record's hash {})", c.summary(), c.stored_hash);
    }
    Ok(())
}

/// `mimml results`: urgent ones first.
pub(crate) fn list(ctx: &Ctx, db: &Target, device: Option<String>) -> anyhow::Result<()> {
    let mut db = ResultsDb::open_read_only(db)?;
    let rows = db.results(&Filter { device, ..Filter::default() })?;
    if ctx.json {
        print_json(&rows.iter().map(|r| report::record_json(&r.device_id, &r.record, &ctx.model(&r.record))).collect());
        return Ok(());
    }
    if rows.is_empty() {
        out!("no results");
    }
    for r in rows {
        out!("{}", report::describe(&r.device_id, &r.record, &ctx.model(&r.record)));
    }
    Ok(())
}

/// `mimml report`: to `out`, or stdout.
pub(crate) fn report(
    ctx: &Ctx,
    db: &Target,
    filter: Filter,
    format: report::Format,
    out: Option<&Path>,
) -> anyhow::Result<()> {
    let mut db = ResultsDb::open_read_only(db)?;
    let rows = db.results(&filter)?;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
    let models = &ctx.models;
    let text = match format {
        report::Format::Table => report::listing::table(&rows, models),
        report::Format::Csv => report::listing::csv(&rows, models)?,
        report::Format::Json => serde_json::to_string_pretty(&report::listing::json(&rows, models))? + "\n",
        report::Format::Fhir => serde_json::to_string_pretty(&report::fhir::bundle(&rows, models, now))? + "\n",
        report::Format::Html => report::html::document(&rows, models, now),
    };
    match out {
        Some(path) => {
            std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
            eprintln!("{} result(s) written to {} ({format:?})", rows.len(), path.display());
        }
        None => out_raw!("{text}"),
    }
    Ok(())
}
