//! The device's loop: every thing the device reacts to is one [`Event`], and
//! [`Device::handle`] is the one place that matches them.
//!
//! ```text
//!   host frame (link) ──────────┐
//!   screen tap (kiosk page) ────┤
//!   button press (debounced) ───┼──▶ Event ──▶ Device::handle ──▶ Server (the wire) / Sessions /
//!   finished session (worker) ──┤                                  Kiosk / model trial / watchdog
//!   clock tick (every 20 ms) ───┘
//! ```
//!
//! Events the device makes itself (finished sessions, taps, button presses, a due tick) come
//! before the next host frame, so a status query sees every result already computed. The kiosk
//! is told of its session's end by the `Finished` event, and of a host stopping its session by
//! the request that did it; it never asks.

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use boards::{ButtonEvent, Debouncer};
use link::{FramedLink, LinkError};
use protocol::{DeviceFrame, HostFrame, ResultFlags, SessionState, SessionStatus};

use crate::kiosk::{Input, Kiosk};
use crate::log::ResultLog;
use crate::models::{ModelStore, Serving};
use crate::pairing::Pairings;
use crate::server::{Parts, Server, ServerConfig};
use crate::session::{Finished, Sessions};
use crate::watchdog::Watchdog;

/// How often the clock ticks (kiosk timeouts, the microphone level, the LEDs, the watchdog), and
/// so the longest the loop waits for a host frame.
pub const TICK: Duration = Duration::from_millis(20);

/// Everything the device reacts to.
#[derive(Debug)]
pub enum Event {
    /// A request from the connected host: answered with a frame. (Boxed: a frame holds up to
    /// a transcript or upload chunk, and events wait in a queue.)
    Request(Box<HostFrame>),
    /// A tap on the kiosk's screen.
    Tap(Input),
    /// The kiosk's button, debounced.
    Button(ButtonEvent),
    /// The session worker is done with a stopped session.
    Finished(Finished),
    /// The clock.
    Tick(Instant),
}

/// A device: its parts, the host connection's state, the kiosk, and the loop that feeds them
/// events.
#[derive(Debug)]
pub struct Device {
    parts: Parts,
    wire: Server,
    kiosk: Option<Kiosk>,
    button: Debouncer,
    watchdog: Watchdog,
    /// Events taken from their sources and not handled yet.
    pending: VecDeque<Event>,
    next_tick: Instant,
}

impl Device {
    /// A device of `parts`, with no kiosk.
    pub fn new(parts: Parts) -> Device {
        tracing::info!(
            device_id = %parts.sessions.state().device_id,
            board = %parts.cfg.board.name,
            model = parts.sessions.model_version(),
            results = parts.sessions.log().len(),
            paired_hosts = parts.pairings.count(),
            "device ready"
        );
        Device {
            parts,
            wire: Server::default(),
            kiosk: None,
            button: Debouncer::default(),
            watchdog: Watchdog::from_env(),
            pending: VecDeque::new(),
            next_tick: Instant::now(),
        }
    }

    /// Tells systemd the daemon is up (a no-op outside systemd).
    pub fn ready(&mut self) {
        let status = format!("device {} serving, model {}", self.device_id(), self.parts.sessions.model_version());
        self.watchdog.ready(&status);
    }

    /// What the device runs on.
    pub fn config(&self) -> &ServerConfig {
        &self.parts.cfg
    }

    /// Runs `kiosk` on this device: from here on the loop hands it its events.
    pub fn set_kiosk(&mut self, kiosk: Kiosk) {
        self.kiosk = Some(kiosk);
    }

    /// The kiosk, if this device runs one.
    pub fn kiosk(&self) -> Option<&Kiosk> {
        self.kiosk.as_ref()
    }

    /// The paired hosts (at the device: pair a key, reset the list).
    pub fn pairings(&mut self) -> &mut Pairings {
        &mut self.parts.pairings
    }

    /// The model store.
    pub fn model_store(&self) -> &ModelStore {
        &self.parts.models.store
    }

    /// The sessions (settings; tests drive them directly).
    pub fn sessions(&mut self) -> &mut Sessions {
        &mut self.parts.sessions
    }

    /// The device id.
    pub fn device_id(&self) -> &str {
        &self.parts.sessions.state().device_id
    }

    /// What the device says about itself to the connected host (`Hello`'s answer).
    pub fn info(&self) -> protocol::DeviceInfo {
        self.wire.info(&self.parts)
    }

    /// The result log.
    pub fn log(&self) -> &ResultLog {
        self.parts.sessions.log()
    }

    /// Handles one event; a host's request gets its reply.
    pub fn handle(&mut self, event: Event) -> Option<DeviceFrame> {
        let now = Instant::now();
        match event {
            Event::Request(frame) => return Some(self.on_request(*frame, now)),
            Event::Tap(input) => {
                if let Some(k) = self.kiosk.as_mut() {
                    k.input(&mut self.parts.sessions, input, now);
                }
            }
            Event::Button(press) => {
                if let Some(k) = self.kiosk.as_mut() {
                    k.input(&mut self.parts.sessions, Input::Button(press), now);
                }
            }
            Event::Finished(finished) => {
                let status = self.parts.sessions.finish(finished);
                self.count_on_trial(status);
                if let Some(k) = self.kiosk.as_mut() {
                    k.finished(&mut self.parts.sessions, status, now);
                }
            }
            Event::Tick(at) => {
                self.watchdog.ping(at);
                self.parts.sessions.tick();
                if let Some(k) = self.kiosk.as_mut() {
                    k.tick(&mut self.parts.sessions, at);
                }
            }
        }
        None
    }

    /// A host's request, after every event the device has made itself (tests drive the device
    /// this way, without a link).
    pub fn request(&mut self, frame: HostFrame) -> DeviceFrame {
        self.step();
        self.on_request(frame, Instant::now())
    }

    fn on_request(&mut self, frame: HostFrame, now: Instant) -> DeviceFrame {
        let reply = self.wire.handle(frame, &mut self.parts);
        if let Some(k) = self.kiosk.as_mut() {
            k.after_request(&mut self.parts.sessions, now);
        }
        reply
    }

    /// Handles every event the device has made itself, and a clock tick.
    pub fn step(&mut self) {
        self.next_tick = Instant::now();
        while let Some(event) = self.own_event() {
            let _ = self.handle(event);
        }
    }

    /// The next event the device made itself: a finished session, a tap, a button press, or the
    /// clock when a tick is due.
    fn own_event(&mut self) -> Option<Event> {
        if self.pending.is_empty() {
            self.gather();
        }
        if let Some(event) = self.pending.pop_front() {
            return Some(event);
        }
        let now = Instant::now();
        (now >= self.next_tick).then(|| {
            self.next_tick = now + TICK;
            Event::Tick(now)
        })
    }

    /// Takes what the worker, the screen and the button have for the loop. One finished session
    /// at a time: it leaves the worker's queue only when handled (a dead worker's sessions are
    /// reported from that queue).
    fn gather(&mut self) {
        if let Some(finished) = self.parts.sessions.take_finished() {
            self.pending.push_back(Event::Finished(finished));
        }
        let Some(kiosk) = &self.kiosk else { return };
        if let Some(screen) = kiosk.screen() {
            self.pending.extend(screen.taps().into_iter().map(Event::Tap));
        }
        let held = self.parts.sessions.button_held();
        if let Some(press) = self.button.update(held, Instant::now()) {
            self.pending.push_back(Event::Button(press));
        }
    }

    /// The next event, waiting for a frame from `link` until the next tick is due.
    fn next_event<P: Read + Write>(&mut self, link: &mut FramedLink<P>) -> Result<Event, LinkError> {
        if let Some(event) = self.own_event() {
            return Ok(event);
        }
        Ok(match link.recv::<HostFrame>(self.next_tick)? {
            Some(frame) => Event::Request(Box::new(frame)),
            None => {
                let now = Instant::now();
                self.next_tick = now + TICK;
                Event::Tick(now)
            }
        })
    }

    /// Serves a new host connection on `link` until `stop` is set. Returns on a link I/O error.
    pub fn serve<P: Read + Write>(&mut self, link: &mut FramedLink<P>, stop: &AtomicBool) -> Result<(), LinkError> {
        self.wire.connected();
        while !stop.load(Ordering::Relaxed) {
            let event = self.next_event(link)?;
            if let Some(reply) = self.handle(event) {
                link.send(&reply)?;
            }
        }
        Ok(())
    }

    /// Keeps the device's own work going (finished results, the kiosk) for `time` without a
    /// link: while no host port can be opened, a kiosk still runs its sessions.
    pub fn idle(&mut self, time: Duration, stop: &AtomicBool) {
        let until = Instant::now() + time;
        while Instant::now() < until && !stop.load(Ordering::Relaxed) {
            match self.own_event() {
                Some(event) => {
                    let _ = self.handle(event);
                }
                None => std::thread::sleep(self.next_tick.saturating_duration_since(Instant::now())),
            }
        }
    }

    /// A result of the model on trial counts towards confirming it, unless it had too little
    /// data to say anything.
    fn count_on_trial(&mut self, status: SessionStatus) {
        let SessionState::Done { seq } = status.state else { return };
        if !matches!(self.parts.models.store.serving(), Serving::Trial(_)) {
            return;
        }
        let sessions = &self.parts.sessions;
        let Some(record) = sessions.log().get(seq) else { return };
        if record.model_version.as_str() != sessions.model_version()
            || record.flags.contains(ResultFlags::INSUFFICIENT_DATA)
        {
            return;
        }
        let trial = sessions.model_version().to_owned();
        match self.parts.models.store.session_ok() {
            Ok(true) => tracing::info!(model = %trial, "model on trial confirmed after its sessions"),
            Ok(false) => {}
            Err(e) => tracing::error!("cannot record a session on the model on trial: {}", runtime::chain(&e)),
        }
    }
}
