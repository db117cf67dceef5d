//! The kiosk's physical controls: one button and a few LEDs, over the embedded-hal 1.0 digital
//! traits.
//!
//! [`Panel`] is what the device sees. [`GpioPanel`] drives any `InputPin`/`OutputPin` pins —
//! the Linux GPIO character device (`gpio` feature, [`GpioPanel::open_cdev`]), rppal on a
//! Raspberry Pi (`rpi` feature, [`GpioPanel::open_rppal`]) or embedded-hal-mock in tests.
//! [`FakePanel`] records what the device showed (device tests); [`LogPanel`] is the simulated
//! board's (indicators go to the log).
//!
//! The button is read by polling; [`Debouncer`] turns levels into presses: a short press
//! (reported on release) and a long press (reported once, while still held).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use embedded_hal::digital::{InputPin, OutputPin};

#[cfg(any(feature = "gpio", feature = "rpi"))]
use crate::GpioDef;

/// What the LEDs show. Each maps to a pattern over the board's LEDs ([`Indicator::pattern`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Indicator {
    /// Ready for a session.
    Idle,
    /// Capturing an answer.
    Recording,
    /// Computing a result.
    Processing,
    /// The session is over (result stored, or ended without one).
    Done,
    /// The last session failed, or the device is unhealthy.
    Error,
    /// Staff are needed (a safety answer, storage full): stays until the kiosk is reset.
    Attention,
}

/// One LED's behaviour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lamp {
    /// Dark.
    Off,
    /// Lit.
    On,
    /// Lit and dark in turn, [`BLINK`] each.
    Blink,
}

/// Half a blink period.
pub const BLINK: Duration = Duration::from_millis(500);

/// The LEDs a board has. `attention` is optional; without it, [`Indicator::Attention`] blinks
/// the error LED.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pattern {
    /// The green "ready" LED.
    pub ready: Lamp,
    /// The amber "busy" LED.
    pub busy: Lamp,
    /// The red "error" LED.
    pub error: Lamp,
    /// The "needs attention" LED, where fitted.
    pub attention: Lamp,
}

impl Indicator {
    /// The LED pattern of this indicator on a board with (`has_attention`) or without an
    /// attention LED.
    pub fn pattern(self, has_attention: bool) -> Pattern {
        use Lamp::*;
        let p = |ready, busy, error, attention| Pattern { ready, busy, error, attention };
        match self {
            Indicator::Idle => p(On, Off, Off, Off),
            Indicator::Recording => p(Off, On, Off, Off),
            Indicator::Processing => p(Off, Blink, Off, Off),
            Indicator::Done => p(Blink, Off, Off, Off),
            Indicator::Error => p(Off, Off, On, Off),
            Indicator::Attention if has_attention => p(Off, Off, Off, On),
            Indicator::Attention => p(Off, Off, Blink, Off),
        }
    }
}

/// A GPIO line that could not be opened, read or driven.
#[derive(Debug, thiserror::Error)]
pub enum GpioError {
    /// A line failed; `what` names it (e.g. "line 23 (led_busy)").
    #[error("GPIO {chip}: {what}: {detail}")]
    Line {
        /// The chip (or "rppal").
        chip: String,
        /// The line and its role.
        what: String,
        /// What went wrong.
        detail: String,
    },
    /// The board names GPIO this build cannot drive.
    #[error("this build has no GPIO support; rebuild with `--features gpio` (or `rpi` on a Raspberry Pi)")]
    NotCompiled,
}

/// The button and LEDs as the device sees them.
pub trait Panel: Send {
    /// Shows `indicator` on the LEDs.
    fn show(&mut self, indicator: Indicator) -> Result<(), GpioError>;
    /// Whether the button is held down now (the raw level; see [`Debouncer`]).
    fn button_held(&mut self) -> Result<bool, GpioError>;
    /// Drives the staff alert output (a buzzer, a relay to a nurse call), where fitted.
    fn alert(&mut self, on: bool) -> Result<(), GpioError>;
    /// Advances blinking LEDs to `now`; called often (every few tens of ms).
    fn tick(&mut self, now: Instant) -> Result<(), GpioError> {
        let _ = now;
        Ok(())
    }
}

/// A button press, debounced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ButtonEvent {
    /// Pressed and released within [`Debouncer::LONG_PRESS`].
    Press,
    /// Held for [`Debouncer::LONG_PRESS`] (reported once, while held; its release is silent).
    LongPress,
}

/// Turns polled button levels into [`ButtonEvent`]s: a level counts once it held for
/// [`Debouncer::SETTLE`], so contact bounce and single-sample glitches are ignored.
#[derive(Debug, Clone, Default)]
pub struct Debouncer {
    stable: bool,
    candidate: bool,
    candidate_since: Option<Instant>,
    pressed_at: Option<Instant>,
    long_reported: bool,
}

impl Debouncer {
    /// How long a level must hold to count.
    pub const SETTLE: Duration = Duration::from_millis(30);
    /// How long a hold makes a long press.
    pub const LONG_PRESS: Duration = Duration::from_secs(2);

    /// Takes the level `held` sampled at `now`.
    pub fn update(&mut self, held: bool, now: Instant) -> Option<ButtonEvent> {
        if held != self.candidate || self.candidate_since.is_none() {
            self.candidate = held;
            self.candidate_since = Some(now);
        }
        let settled = self.candidate_since.is_some_and(|t| now.duration_since(t) >= Self::SETTLE);
        if settled && self.candidate != self.stable {
            self.stable = self.candidate;
            if self.stable {
                self.pressed_at = self.candidate_since;
                self.long_reported = false;
            } else {
                self.pressed_at = None;
                if !self.long_reported {
                    return Some(ButtonEvent::Press);
                }
            }
        }
        if self.stable
            && !self.long_reported
            && self.pressed_at.is_some_and(|t| now.duration_since(t) >= Self::LONG_PRESS)
        {
            self.long_reported = true;
            return Some(ButtonEvent::LongPress);
        }
        None
    }

    /// Whether the button counts as held now.
    pub fn held(&self) -> bool {
        self.stable
    }
}

/// A panel on embedded-hal pins: the button (`true` = pressed, after the line's active-low
/// setting), three LEDs, and optionally an attention LED and a staff alert output.
#[derive(Debug)]
pub struct GpioPanel<I, O> {
    chip: String,
    button: I,
    ready: O,
    busy: O,
    error: O,
    attention: Option<O>,
    alert: Option<O>,
    pattern: Option<Pattern>,
    /// Blinking LEDs are lit now.
    blink_lit: bool,
    last_toggle: Option<Instant>,
}

fn line_error(chip: &str, what: &str, e: impl std::fmt::Debug) -> GpioError {
    GpioError::Line { chip: chip.to_owned(), what: what.to_owned(), detail: format!("{e:?}") }
}

impl<I: InputPin, O: OutputPin> GpioPanel<I, O> {
    /// A panel on these pins; `chip` names them in errors.
    pub fn new(chip: &str, button: I, [ready, busy, error]: [O; 3], attention: Option<O>, alert: Option<O>) -> Self {
        GpioPanel {
            chip: chip.to_owned(),
            button,
            ready,
            busy,
            error,
            attention,
            alert,
            pattern: None,
            blink_lit: true,
            last_toggle: None,
        }
    }

    fn drive(&mut self) -> Result<(), GpioError> {
        let Some(p) = self.pattern else { return Ok(()) };
        let level = |lamp: Lamp, blink_lit: bool| match lamp {
            Lamp::Off => false,
            Lamp::On => true,
            Lamp::Blink => blink_lit,
        };
        let chip = self.chip.clone();
        let set = |pin: &mut O, on: bool, what: &str| {
            if on { pin.set_high() } else { pin.set_low() }.map_err(|e| line_error(&chip, what, e))
        };
        set(&mut self.ready, level(p.ready, self.blink_lit), "led_ready")?;
        set(&mut self.busy, level(p.busy, self.blink_lit), "led_busy")?;
        set(&mut self.error, level(p.error, self.blink_lit), "led_error")?;
        if let Some(pin) = self.attention.as_mut() {
            set(pin, level(p.attention, self.blink_lit), "led_attention")?;
        }
        Ok(())
    }
}

impl<I: InputPin + Send, O: OutputPin + Send> Panel for GpioPanel<I, O> {
    fn show(&mut self, indicator: Indicator) -> Result<(), GpioError> {
        let pattern = indicator.pattern(self.attention.is_some());
        if self.pattern == Some(pattern) {
            return Ok(());
        }
        self.pattern = Some(pattern);
        self.blink_lit = true;
        self.last_toggle = None;
        self.drive()
    }

    fn button_held(&mut self) -> Result<bool, GpioError> {
        self.button.is_high().map_err(|e| line_error(&self.chip, "button", e))
    }

    fn alert(&mut self, on: bool) -> Result<(), GpioError> {
        let chip = self.chip.clone();
        match self.alert.as_mut() {
            Some(pin) => if on { pin.set_high() } else { pin.set_low() }.map_err(|e| line_error(&chip, "alert", e)),
            None => Ok(()),
        }
    }

    fn tick(&mut self, now: Instant) -> Result<(), GpioError> {
        let blinking = self.pattern.is_some_and(|p| [p.ready, p.busy, p.error, p.attention].contains(&Lamp::Blink));
        if !blinking {
            return Ok(());
        }
        let Some(last) = self.last_toggle else {
            self.last_toggle = Some(now);
            return Ok(());
        };
        if now.duration_since(last) < BLINK {
            return Ok(());
        }
        self.last_toggle = Some(now);
        self.blink_lit = !self.blink_lit;
        self.drive()
    }
}

#[cfg(feature = "gpio")]
impl GpioPanel<linux_embedded_hal::CdevPin, linux_embedded_hal::CdevPin> {
    /// The board's lines on the GPIO character device `def.chip` (button active low, with the
    /// board's pull-up).
    pub fn open_cdev(def: &GpioDef) -> Result<Self, GpioError> {
        use linux_embedded_hal::CdevPin;
        use linux_embedded_hal::gpio_cdev::{Chip, LineRequestFlags};
        let chip_name = def.chip.clone();
        let mut chip = Chip::new(&def.chip).map_err(|e| line_error(&chip_name, "chip", e))?;
        let mut request = |line: u32, flags: LineRequestFlags, role: &str| {
            let what = format!("line {line} ({role})");
            chip.get_line(line)
                .and_then(|l| l.request(flags, 0, &format!("mimml-{role}")))
                .and_then(CdevPin::new)
                .map_err(|e| line_error(&chip_name, &what, e))
        };
        let button = request(def.button, LineRequestFlags::INPUT | LineRequestFlags::ACTIVE_LOW, "button")?;
        let leds = [
            request(def.led_ready, LineRequestFlags::OUTPUT, "led_ready")?,
            request(def.led_busy, LineRequestFlags::OUTPUT, "led_busy")?,
            request(def.led_error, LineRequestFlags::OUTPUT, "led_error")?,
        ];
        let attention = def.led_attention.map(|l| request(l, LineRequestFlags::OUTPUT, "led_attention")).transpose()?;
        let alert = def.alert.map(|l| request(l, LineRequestFlags::OUTPUT, "alert")).transpose()?;
        Ok(GpioPanel::new(&def.chip, button, leds, attention, alert))
    }
}

/// rppal's button pin, reporting `true` while pressed (the line is pulled up and the button
/// pulls it to ground).
#[cfg(feature = "rpi")]
#[derive(Debug)]
pub struct ActiveLow<P>(pub P);

#[cfg(feature = "rpi")]
impl<P: embedded_hal::digital::ErrorType> embedded_hal::digital::ErrorType for ActiveLow<P> {
    type Error = P::Error;
}

#[cfg(feature = "rpi")]
impl<P: InputPin> InputPin for ActiveLow<P> {
    fn is_high(&mut self) -> Result<bool, Self::Error> {
        self.0.is_low()
    }
    fn is_low(&mut self) -> Result<bool, Self::Error> {
        self.0.is_high()
    }
}

#[cfg(feature = "rpi")]
impl GpioPanel<ActiveLow<rppal::gpio::InputPin>, rppal::gpio::OutputPin> {
    /// The board's lines through rppal (BCM numbering; the button with the internal pull-up).
    pub fn open_rppal(def: &GpioDef) -> Result<Self, GpioError> {
        let gpio = rppal::gpio::Gpio::new().map_err(|e| line_error("rppal", "GPIO", e))?;
        let pin = |line: u32, role: &str| {
            let what = format!("line {line} ({role})");
            u8::try_from(line)
                .map_err(|e| line_error("rppal", &what, e))
                .and_then(|n| gpio.get(n).map_err(|e| line_error("rppal", &what, e)))
        };
        let button = ActiveLow(pin(def.button, "button")?.into_input_pullup());
        let leds = [
            pin(def.led_ready, "led_ready")?.into_output_low(),
            pin(def.led_busy, "led_busy")?.into_output_low(),
            pin(def.led_error, "led_error")?.into_output_low(),
        ];
        let attention = def.led_attention.map(|l| pin(l, "led_attention").map(|p| p.into_output_low())).transpose()?;
        let alert = def.alert.map(|l| pin(l, "alert").map(|p| p.into_output_low())).transpose()?;
        Ok(GpioPanel::new("rppal", button, leds, attention, alert))
    }
}

/// What a [`FakePanel`] saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PanelEvent {
    /// An indicator was shown.
    Show(Indicator),
    /// The alert output was switched.
    Alert(bool),
}

/// Records what the device showed; the button is pressed by the test. Clones share state, so a
/// test keeps one clone and hands the other to the device.
#[derive(Debug, Clone, Default)]
pub struct FakePanel {
    events: Arc<Mutex<Vec<PanelEvent>>>,
    button: Arc<Mutex<bool>>,
}

impl FakePanel {
    /// Everything shown, in order.
    pub fn events(&self) -> Vec<PanelEvent> {
        self.events.lock().map(|e| e.clone()).unwrap_or_default()
    }

    /// The indicator shown last.
    pub fn shown(&self) -> Option<Indicator> {
        self.events().into_iter().rev().find_map(|e| match e {
            PanelEvent::Show(i) => Some(i),
            PanelEvent::Alert(_) => None,
        })
    }

    /// Whether the alert output is on.
    pub fn alerting(&self) -> bool {
        self.events().into_iter().rev().find_map(|e| match e {
            PanelEvent::Alert(on) => Some(on),
            PanelEvent::Show(_) => None,
        }) == Some(true)
    }

    /// Holds (`true`) or releases the button.
    pub fn press(&self, down: bool) {
        if let Ok(mut b) = self.button.lock() {
            *b = down;
        }
    }

    fn push(&self, e: PanelEvent) {
        if let Ok(mut events) = self.events.lock() {
            events.push(e);
        }
    }
}

impl Panel for FakePanel {
    fn show(&mut self, indicator: Indicator) -> Result<(), GpioError> {
        if self.shown() != Some(indicator) {
            self.push(PanelEvent::Show(indicator));
        }
        Ok(())
    }

    fn button_held(&mut self) -> Result<bool, GpioError> {
        Ok(self.button.lock().map(|b| *b).unwrap_or(false))
    }

    fn alert(&mut self, on: bool) -> Result<(), GpioError> {
        self.push(PanelEvent::Alert(on));
        Ok(())
    }
}

/// The simulated board's panel: indicator changes go to the log, the button is never pressed.
#[derive(Debug, Default)]
pub struct LogPanel {
    shown: Option<Indicator>,
}

impl Panel for LogPanel {
    fn show(&mut self, indicator: Indicator) -> Result<(), GpioError> {
        if self.shown != Some(indicator) {
            tracing::debug!(?indicator, "LEDs");
            self.shown = Some(indicator);
        }
        Ok(())
    }

    fn button_held(&mut self) -> Result<bool, GpioError> {
        Ok(false)
    }

    fn alert(&mut self, on: bool) -> Result<(), GpioError> {
        if on {
            tracing::warn!("staff alert raised");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use embedded_hal_mock::eh1::digital::{Mock, State, Transaction as T};

    fn at(start: Instant, ms: u64) -> Instant {
        start + Duration::from_millis(ms)
    }

    #[test]
    fn bounce_is_one_press_reported_on_release() {
        let t0 = Instant::now();
        let mut d = Debouncer::default();
        // Contact bounce at 0–12 ms, then held until 400 ms, bounce on release.
        let samples =
            [(0, true), (4, false), (8, true), (12, true), (50, true), (400, false), (404, true), (408, false)];
        let mut events = Vec::new();
        for (ms, level) in samples {
            events.extend(d.update(level, at(t0, ms)));
        }
        assert!(d.held(), "released only 8 ms ago");
        events.extend(d.update(false, at(t0, 450)));
        assert_eq!(events, vec![ButtonEvent::Press]);
        assert!(!d.held());
    }

    #[test]
    fn a_glitch_shorter_than_the_settling_time_is_no_press() {
        let t0 = Instant::now();
        let mut d = Debouncer::default();
        let events: Vec<_> = [(0, false), (10, true), (25, false), (100, false)]
            .into_iter()
            .filter_map(|(ms, l)| d.update(l, at(t0, ms)))
            .collect();
        assert!(events.is_empty(), "{events:?}");
    }

    #[test]
    fn a_long_hold_is_one_long_press_and_a_silent_release() {
        let t0 = Instant::now();
        let mut d = Debouncer::default();
        let mut events = Vec::new();
        for ms in (0..=3000).step_by(20) {
            events.extend(d.update(true, at(t0, ms)));
        }
        assert_eq!(events, vec![ButtonEvent::LongPress]);
        events.extend(d.update(false, at(t0, 3020)));
        events.extend(d.update(false, at(t0, 3100)));
        assert_eq!(events, vec![ButtonEvent::LongPress], "the release of a long press is not a press");
        // 1.9 s is still a short press.
        events.clear();
        for ms in (4000..=5900).step_by(20) {
            events.extend(d.update(true, at(t0, ms)));
        }
        events.extend(d.update(false, at(t0, 5920)));
        events.extend(d.update(false, at(t0, 6000)));
        assert_eq!(events, vec![ButtonEvent::Press]);
    }

    fn out(states: &[State]) -> Mock {
        Mock::new(&states.iter().map(|s| T::set(*s)).collect::<Vec<_>>())
    }

    #[test]
    fn every_indicator_drives_the_lines_its_pattern_names() {
        use State::{High as H, Low as L};
        // Idle, Recording, Processing (busy blinking: lit, dark, lit), Attention, Error.
        let mut ready = out(&[H, L, L, L, L, L, L]);
        let mut busy = out(&[L, H, H, L, H, L, L]);
        let mut error = out(&[L, L, L, L, L, L, H]);
        let mut attention = out(&[L, L, L, L, L, H, L]);
        let mut alert = out(&[H, L]);
        let mut button = Mock::new(&[T::get(H), T::get(L)]);
        let mut panel = GpioPanel::new(
            "mock",
            button.clone(),
            [ready.clone(), busy.clone(), error.clone()],
            Some(attention.clone()),
            Some(alert.clone()),
        );
        let t0 = Instant::now();
        panel.show(Indicator::Idle).expect("idle");
        panel.show(Indicator::Idle).expect("the same indicator again drives nothing");
        panel.show(Indicator::Recording).expect("recording");
        panel.tick(at(t0, 0)).expect("steady: no change");
        panel.show(Indicator::Processing).expect("processing");
        panel.tick(at(t0, 0)).expect("starts the blink clock");
        panel.tick(at(t0, 200)).expect("too early to toggle");
        panel.tick(at(t0, 500)).expect("dark");
        panel.tick(at(t0, 1000)).expect("lit");
        panel.show(Indicator::Attention).expect("attention");
        panel.show(Indicator::Error).expect("error");
        panel.alert(true).expect("alert on");
        panel.alert(false).expect("alert off");
        assert!(panel.button_held().expect("read"));
        assert!(!panel.button_held().expect("read"));
        for pin in [&mut ready, &mut busy, &mut error, &mut attention, &mut alert, &mut button] {
            pin.done();
        }
    }

    #[test]
    fn without_an_attention_led_attention_blinks_the_error_led() {
        use State::{High as H, Low as L};
        let mut ready = out(&[L, L]);
        let mut busy = out(&[L, L]);
        let mut error = out(&[H, L]);
        let mut button = Mock::new(&[]);
        let mut panel = GpioPanel::<Mock, Mock>::new(
            "mock",
            button.clone(),
            [ready.clone(), busy.clone(), error.clone()],
            None,
            None,
        );
        let t0 = Instant::now();
        panel.show(Indicator::Attention).expect("attention");
        panel.tick(t0).expect("clock");
        panel.tick(at(t0, 600)).expect("dark");
        panel.alert(true).expect("no alert line: nothing to drive");
        for pin in [&mut ready, &mut busy, &mut error, &mut button] {
            pin.done();
        }
    }

    #[test]
    fn a_failing_line_is_an_error_naming_it() {
        use embedded_hal_mock::eh1::MockError;
        let mut busy = Mock::new(&[T::set(State::High).with_error(MockError::Io(std::io::ErrorKind::BrokenPipe))]);
        let mut ready = out(&[State::Low]);
        let mut error = out(&[]);
        let mut button = Mock::new(&[]);
        let mut panel = GpioPanel::<Mock, Mock>::new(
            "gpiochip9",
            button.clone(),
            [ready.clone(), busy.clone(), error.clone()],
            None,
            None,
        );
        let err = panel.show(Indicator::Recording).expect_err("the busy line fails").to_string();
        assert!(err.contains("gpiochip9") && err.contains("led_busy"), "{err}");
        for pin in [&mut ready, &mut busy, &mut error, &mut button] {
            pin.done();
        }
    }

    #[test]
    fn the_fake_records_indicators_and_the_alert() {
        let fake = FakePanel::default();
        let mut p = fake.clone();
        p.show(Indicator::Recording).expect("fake");
        p.show(Indicator::Recording).expect("fake");
        p.alert(true).expect("fake");
        assert_eq!(fake.events(), vec![PanelEvent::Show(Indicator::Recording), PanelEvent::Alert(true)]);
        assert_eq!(fake.shown(), Some(Indicator::Recording));
        assert!(fake.alerting());
        fake.press(true);
        assert!(p.button_held().expect("fake"));
    }
}
