//! systemd's service watchdog: under `Type=notify` with `WatchdogSec=`, the daemon says
//! `READY=1` once it serves and then pings `WATCHDOG=1` on its loop's clock ticks at half the
//! interval; a loop that hangs stops the pings and systemd restarts the daemon. Outside systemd
//! (no `NOTIFY_SOCKET`) every call is a no-op.

use std::time::{Duration, Instant};

use sd_notify::NotifyState;

/// Pings the service manager from the device's loop.
#[derive(Debug)]
pub struct Watchdog {
    every: Option<Duration>,
    last: Option<Instant>,
}

impl Watchdog {
    /// The watchdog systemd asked for (`WATCHDOG_USEC` for this process), if any.
    pub fn from_env() -> Watchdog {
        let every = sd_notify::watchdog_enabled().map(|d| d / 2);
        if let Some(d) = every {
            tracing::info!(every_ms = d.as_millis() as u64, "systemd watchdog: pinging from the device's loop");
        }
        Watchdog { every, last: None }
    }

    /// Tells systemd the daemon is up (`READY=1`) with a status line.
    pub fn ready(&mut self, status: &str) {
        notify(&[NotifyState::Ready, NotifyState::Status(status)]);
        self.last = None;
        self.ping(Instant::now());
    }

    /// Pings if half the watchdog interval has passed since the last ping.
    pub fn ping(&mut self, now: Instant) {
        let Some(every) = self.every else { return };
        if self.last.is_some_and(|t| now.duration_since(t) < every) {
            return;
        }
        self.last = Some(now);
        notify(&[NotifyState::Watchdog]);
    }
}

fn notify(state: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(state) {
        tracing::warn!("systemd notification failed: {e}");
    }
}
