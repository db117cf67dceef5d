//! Finding devices, saying what one is, pairing and unpairing this host.

use host::{out, report};
use protocol::DeviceInfo;

use crate::cli::PortArgs;
use crate::context::{Ctx, print_json};

/// `mimml devices`: serial ports that may be devices, USB ones first.
pub(crate) fn list() -> anyhow::Result<()> {
    let ports = link::list_ports()?;
    if ports.is_empty() {
        out!("no serial ports found (a device appears as /dev/ttyACM* over USB)");
    }
    for p in ports {
        out!("{:<24} {}", p.path, p.kind);
    }
    Ok(())
}

/// `mimml info`.
pub(crate) fn info(ctx: &Ctx, port: &PortArgs) -> anyhow::Result<()> {
    let (_, info) = ctx.connect(port)?;
    if ctx.json {
        print_json(&report::info_json(&info));
    } else {
        print_info(&info);
    }
    Ok(())
}

/// `mimml pair`: the code from the person at the device (or the kiosk button held).
pub(crate) fn pair(ctx: &Ctx, port: &PortArgs, code: Option<u32>, name: &str) -> anyhow::Result<()> {
    // Made here when this host has none yet; `connect` then proves it.
    ctx.host_key(true)?;
    let (mut client, info) = ctx.connect(port)?;
    if info.authorized {
        out!("this host is already paired with {}", info.device_id);
        return Ok(());
    }
    let hosts = client.pair(name, |challenge| {
        if challenge.method == protocol::PairMethod::Button {
            eprintln!("hold the device's button, or enter the code it shows");
        }
        match code {
            Some(c) => Ok(c),
            None => Ok(ask_code(challenge.expires_s)),
        }
    })?;
    out!("paired with {} ({hosts} host(s) paired)", info.device_id);
    Ok(())
}

/// `mimml unpair`.
pub(crate) fn unpair(ctx: &Ctx, port: &PortArgs) -> anyhow::Result<()> {
    let (mut client, info) = ctx.connect(port)?;
    let left = client.unpair()?;
    out!("{} forgot this host ({left} host(s) still paired)", info.device_id);
    Ok(())
}

/// Asks for the pairing code on the terminal.
fn ask_code(expires_s: u16) -> u32 {
    loop {
        eprint!("code shown on the device (valid {expires_s} s): ");
        let mut line = String::new();
        if std::io::stdin().read_line(&mut line).map_or(true, |n| n == 0) {
            return u32::MAX;
        }
        match line.trim().parse::<u32>() {
            Ok(c) if c < 1_000_000 => return c,
            _ => eprintln!("six digits, please"),
        }
    }
}

fn print_info(i: &DeviceInfo) {
    out!("device          {}", i.device_id);
    out!("board           {}", i.board);
    out!("firmware        {} (protocol v{})", i.firmware_version, i.protocol_version);
    out!("model           {} (feature schema {})", i.active_model_version, i.feature_schema);
    for s in &i.slots {
        if s.state == protocol::SlotState::Empty {
            out!("  slot {}        empty", s.slot);
        } else {
            out!("  slot {}        {:?} {} version {}", s.slot, s.state, s.model_version, s.version);
        }
    }
    if !i.authorized {
        out!("paired          no (results and sessions need `mimml pair --port ...`)");
        return;
    }
    out!("capabilities    {}", i.capabilities);
    out!("results logged  {}", i.last_result_seq);
    match i.active_session {
        Some(s) => out!(
            "session running {} ({:?}, {:.1} s captured; `mimml session abort {}` ends it)",
            s.session,
            s.state,
            f64::from(s.captured_ms) / 1000.0,
            s.session
        ),
        None => out!("session running none"),
    }
}
