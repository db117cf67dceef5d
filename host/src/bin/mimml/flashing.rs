//! Sending a signed bundle to a device, and keeping or dropping the model on trial.

use std::path::Path;

use host::out;
use indicatif::{ProgressBar, ProgressStyle};

use crate::cli::PortArgs;
use crate::context::Ctx;

/// `mimml flash`: resumes where an interrupted flash stopped.
pub(crate) fn flash(
    ctx: &Ctx,
    port: &PortArgs,
    bundle: &Path,
    allow_downgrade: bool,
    confirm: bool,
) -> anyhow::Result<()> {
    let t = host::flash::Transfer::of(bundle)?;
    let (mut client, info) = ctx.connect(port)?;
    let bar = ProgressBar::new(t.archive.len() as u64).with_style(
        ProgressStyle::with_template("  flashing [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let flashed = host::flash::flash(&mut client, &t, allow_downgrade, |done, _| bar.set_position(done));
    bar.finish_and_clear();
    let flashed = flashed?;
    if flashed.already {
        out!("{} already holds {} version {}", info.device_id, t.model_version, t.version);
    } else if flashed.resumed_at > 0 {
        out!("resumed at byte {} of {}", flashed.resumed_at, t.archive.len());
    }
    out!(
        "{} version {} is on trial in slot {} of {}: it serves from the next session",
        t.model_version,
        t.version,
        flashed.status.slot.slot,
        info.device_id
    );
    if confirm {
        client.call::<protocol::endpoints::UploadConfirm>(())?;
        out!("confirmed");
    } else {
        out!("confirm it with `mimml model confirm --port {}` once it works", port.port);
    }
    Ok(())
}

/// `mimml model confirm`.
pub(crate) fn confirm(ctx: &Ctx, port: &PortArgs) -> anyhow::Result<()> {
    let (mut client, info) = ctx.connect(port)?;
    let s = client.call::<protocol::endpoints::UploadConfirm>(())?;
    out!("{} version {} confirmed on {}", s.slot.model_version, s.slot.version, info.device_id);
    Ok(())
}

/// `mimml model rollback`.
pub(crate) fn rollback(ctx: &Ctx, port: &PortArgs) -> anyhow::Result<()> {
    let (mut client, info) = ctx.connect(port)?;
    client.call::<protocol::endpoints::UploadRollback>(())?;
    let now = client.hello()?;
    out!("{} rolled back: {} serves", info.device_id, now.active_model_version);
    Ok(())
}
