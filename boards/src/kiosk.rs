//! The kiosk's LEDs and start button.

use std::sync::{Arc, Mutex};

/// The kiosk's LEDs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Led {
    /// Idle and ready for a session.
    Ready,
    /// Capturing or computing.
    Busy,
    /// The last session failed, or the device is unhealthy.
    Error,
}

#[derive(Debug, thiserror::Error)]
pub enum GpioError {
    #[error("GPIO {chip}: {detail}")]
    Line { chip: String, detail: String },
    #[error("this build has no GPIO support; rebuild with `--features gpio`")]
    NotCompiled,
}

/// Button and LEDs as the device sees them.
pub trait Kiosk: Send {
    fn set_led(&mut self, led: Led, on: bool) -> Result<(), GpioError>;
    /// Whether the start button is held down now.
    fn button_pressed(&mut self) -> Result<bool, GpioError>;

    /// Shows one state: exactly `led` lit.
    fn show(&mut self, led: Led) -> Result<(), GpioError> {
        for l in [Led::Ready, Led::Busy, Led::Error] {
            self.set_led(l, l == led)?;
        }
        Ok(())
    }
}

/// What a [`FakeKiosk`] saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KioskEvent {
    Led(Led, bool),
}

/// Records every LED change; the button is pressed by the test. Clones share state, so a test
/// keeps one clone and hands the other to the device.
#[derive(Debug, Clone, Default)]
pub struct FakeKiosk {
    events: Arc<Mutex<Vec<KioskEvent>>>,
    button: Arc<Mutex<bool>>,
}

impl FakeKiosk {
    pub fn events(&self) -> Vec<KioskEvent> {
        self.events.lock().map(|e| e.clone()).unwrap_or_default()
    }

    /// LEDs lit now.
    pub fn lit(&self) -> Vec<Led> {
        let mut state = std::collections::HashMap::new();
        for KioskEvent::Led(l, on) in self.events() {
            state.insert(l, on);
        }
        [Led::Ready, Led::Busy, Led::Error].into_iter().filter(|l| state.get(l) == Some(&true)).collect()
    }

    pub fn press(&self, down: bool) {
        if let Ok(mut b) = self.button.lock() {
            *b = down;
        }
    }
}

impl Kiosk for FakeKiosk {
    fn set_led(&mut self, led: Led, on: bool) -> Result<(), GpioError> {
        if let Ok(mut e) = self.events.lock() {
            e.push(KioskEvent::Led(led, on));
        }
        Ok(())
    }

    fn button_pressed(&mut self) -> Result<bool, GpioError> {
        Ok(self.button.lock().map(|b| *b).unwrap_or(false))
    }
}

/// The simulated board's kiosk: LED changes go to the log, the button is never pressed.
#[derive(Debug, Default)]
pub struct LogKiosk {
    lit: Option<Led>,
}

impl Kiosk for LogKiosk {
    fn set_led(&mut self, led: Led, on: bool) -> Result<(), GpioError> {
        if on && self.lit != Some(led) {
            tracing::debug!(?led, "LED on");
            self.lit = Some(led);
        }
        Ok(())
    }

    fn button_pressed(&mut self) -> Result<bool, GpioError> {
        Ok(false)
    }
}

#[cfg(feature = "gpio")]
pub use cdev::CdevKiosk;

#[cfg(feature = "gpio")]
mod cdev {
    use super::{GpioError, Kiosk, Led};
    use crate::GpioDef;
    use gpio_cdev::{Chip, LineHandle, LineRequestFlags};

    /// Real LEDs and button through the Linux GPIO character device.
    #[derive(Debug)]
    pub struct CdevKiosk {
        chip: String,
        ready: LineHandle,
        busy: LineHandle,
        error: LineHandle,
        button: LineHandle,
    }

    impl CdevKiosk {
        pub fn open(def: &GpioDef) -> Result<Self, GpioError> {
            let err = |detail: String| GpioError::Line { chip: def.chip.clone(), detail };
            let mut chip = Chip::new(&def.chip).map_err(|e| err(format!("cannot open: {e}")))?;
            let mut output = |line: u32, name: &str| {
                chip.get_line(line)
                    .and_then(|l| l.request(LineRequestFlags::OUTPUT, 0, name))
                    .map_err(|e| err(format!("line {line} ({name}): {e}")))
            };
            let ready = output(def.led_ready, "mimml-led-ready")?;
            let busy = output(def.led_busy, "mimml-led-busy")?;
            let error = output(def.led_error, "mimml-led-error")?;
            let button = chip
                .get_line(def.button)
                .and_then(|l| l.request(LineRequestFlags::INPUT | LineRequestFlags::ACTIVE_LOW, 0, "mimml-button"))
                .map_err(|e| err(format!("line {} (button): {e}", def.button)))?;
            Ok(CdevKiosk { chip: def.chip.clone(), ready, busy, error, button })
        }
    }

    impl Kiosk for CdevKiosk {
        fn set_led(&mut self, led: Led, on: bool) -> Result<(), GpioError> {
            let handle = match led {
                Led::Ready => &self.ready,
                Led::Busy => &self.busy,
                Led::Error => &self.error,
            };
            handle
                .set_value(u8::from(on))
                .map_err(|e| GpioError::Line { chip: self.chip.clone(), detail: format!("{led:?}: {e}") })
        }

        fn button_pressed(&mut self) -> Result<bool, GpioError> {
            self.button
                .get_value()
                .map(|v| v == 1)
                .map_err(|e| GpioError::Line { chip: self.chip.clone(), detail: format!("button: {e}") })
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn a_missing_chip_is_a_clear_error() {
            let def = GpioDef {
                chip: "/dev/gpiochip-does-not-exist".into(),
                button: 1,
                led_ready: 2,
                led_busy: 3,
                led_error: 4,
            };
            let err = CdevKiosk::open(&def).unwrap_err().to_string();
            assert!(err.contains("gpiochip-does-not-exist") && err.contains("cannot open"), "{err}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn show_lights_exactly_one_led() {
        let fake = FakeKiosk::default();
        let mut k = fake.clone();
        k.show(Led::Busy).expect("fake never fails");
        assert_eq!(fake.lit(), vec![Led::Busy]);
        k.show(Led::Error).expect("fake never fails");
        assert_eq!(fake.lit(), vec![Led::Error]);
        fake.press(true);
        assert!(k.button_pressed().expect("fake"));
    }
}
