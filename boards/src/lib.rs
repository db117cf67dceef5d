//! # boards — what the device runs on
//!
//! * [`Board`]: a board definition, read from a TOML data file in `boards/definitions/` (the
//!   probe-rs "target description as data" pattern). The files are compiled in, so the device
//!   binary needs no data directory to know its board; `--board-file` can load another one.
//!   [`Board::validate`] checks what the TOML schema cannot (pins in range and distinct, sane
//!   sizes), naming the field at fault.
//! * [`Panel`]: the kiosk's button and LEDs over the embedded-hal 1.0 digital traits:
//!   [`GpioPanel`] on real pins (the GPIO character device with `gpio`, rppal with `rpi`) or
//!   embedded-hal-mock pins in tests, [`FakePanel`] (records, for device tests), [`LogPanel`]
//!   (the simulated board), and the [`Debouncer`] that turns button levels into presses.
//!
//! Invariant: nothing here knows about the protocol, features or models.

mod panel;

pub use panel::*;

use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
pub enum BoardError {
    #[error("unknown board {name:?}; known boards: {known}")]
    Unknown { name: String, known: String },
    #[error("invalid board definition {origin}: {source}")]
    Invalid {
        origin: String,
        #[source]
        source: toml::de::Error,
    },
    #[error("board definition {origin}: {field}: {detail}")]
    Field { origin: String, field: String, detail: String },
    #[error("cannot read board definition {}", path.display())]
    Io {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A board definition. See `boards/definitions/*.toml`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Board {
    pub name: String,
    pub description: String,
    pub arch: String,
    /// A file holding the board's hardware serial number (`/proc/device-tree/serial-number` on
    /// a Raspberry Pi or a Jetson). The device id is bound to it, so a data directory copied to
    /// another board (an imaged SD card) is recognised as a clone. Boards without one keep the
    /// id stored in their data directory.
    #[serde(default)]
    pub serial: Option<std::path::PathBuf>,
    pub link: LinkDef,
    #[serde(default)]
    pub capture: Option<CaptureDef>,
    #[serde(default)]
    pub gpio: Option<GpioDef>,
    /// A touch screen showing the kiosk page (a browser in kiosk mode on the device's loopback).
    #[serde(default)]
    pub screen: Option<ScreenDef>,
    /// A speaker the interview prompts are spoken on.
    #[serde(default)]
    pub speaker: Option<SpeakerDef>,
    /// Where the device keeps data and raw media.
    #[serde(default)]
    pub storage: StorageDef,
    pub inference: InferenceDef,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LinkDef {
    /// Default serial device (USB gadget ACM, UART); `--port` overrides it.
    #[serde(default)]
    pub port: Option<String>,
    pub baud: u32,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CaptureDef {
    /// V4L2 device node.
    pub camera: String,
    /// ALSA PCM name.
    pub microphone: String,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct GpioDef {
    /// The GPIO character device (the `gpio` feature); rppal (`rpi`) ignores it.
    pub chip: String,
    /// Lines the chip offers on the board's header: every pin must be below it.
    pub lines: u32,
    /// The start/answer button (active low: it pulls the line to ground).
    pub button: u32,
    pub led_ready: u32,
    pub led_busy: u32,
    pub led_error: u32,
    /// A "needs attention" LED; without one the error LED blinks.
    #[serde(default)]
    pub led_attention: Option<u32>,
    /// A staff alert output (buzzer, nurse-call relay), raised by a safety answer.
    #[serde(default)]
    pub alert: Option<u32>,
}

impl GpioDef {
    fn pins(&self) -> Vec<(&'static str, u32)> {
        let mut pins = vec![
            ("button", self.button),
            ("led_ready", self.led_ready),
            ("led_busy", self.led_busy),
            ("led_error", self.led_error),
        ];
        pins.extend(self.led_attention.map(|p| ("led_attention", p)));
        pins.extend(self.alert.map(|p| ("alert", p)));
        pins
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ScreenDef {
    /// Loopback TCP port of the kiosk page (`http://127.0.0.1:PORT/`).
    pub port: u16,
    /// Screen size in pixels, for the browser window.
    pub width: u32,
    pub height: u32,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SpeakerDef {
    /// ALSA PCM the prompts are played on.
    pub pcm: String,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StorageDef {
    /// The data directory (state, result log, models, paired hosts).
    #[serde(default = "default_data_dir")]
    pub data_dir: std::path::PathBuf,
    /// Where raw audio and frames wait for their features: a tmpfs, so they never reach the SD
    /// card and vanish at power-off.
    #[serde(default = "default_spool")]
    pub spool: std::path::PathBuf,
    /// A session is refused when the data directory has less free space than this.
    #[serde(default = "default_min_free")]
    pub min_free_mb: u32,
}

fn default_data_dir() -> std::path::PathBuf {
    "/var/lib/mimml".into()
}

fn default_spool() -> std::path::PathBuf {
    "/run/mimml/spool".into()
}

fn default_min_free() -> u32 {
    64
}

impl Default for StorageDef {
    fn default() -> Self {
        StorageDef { data_dir: default_data_dir(), spool: default_spool(), min_free_mb: default_min_free() }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Accelerator {
    Cpu,
    Cuda,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct InferenceDef {
    pub accelerator: Accelerator,
    pub threads: u32,
}

/// The definitions shipped with this build: (file name, contents).
const BUILTIN: &[(&str, &str)] = &[
    ("rpi4.toml", include_str!("../definitions/rpi4.toml")),
    ("rpi5.toml", include_str!("../definitions/rpi5.toml")),
    ("jetson-orin-nano.toml", include_str!("../definitions/jetson-orin-nano.toml")),
    ("sim.toml", include_str!("../definitions/sim.toml")),
];

impl Board {
    /// Parses and validates a definition; `origin` names it in errors.
    pub fn from_toml(text: &str, origin: &str) -> Result<Board, BoardError> {
        let board: Board =
            toml::from_str(text).map_err(|source| BoardError::Invalid { origin: origin.to_owned(), source })?;
        board.validate(origin)?;
        Ok(board)
    }

    /// What the schema cannot say: every GPIO pin is a line of the chip and used once, the
    /// screen has a real size and a port, the inference has a thread.
    pub fn validate(&self, origin: &str) -> Result<(), BoardError> {
        let fail = |field: &str, detail: String| {
            Err(BoardError::Field { origin: origin.to_owned(), field: field.to_owned(), detail })
        };
        if let Some(gpio) = &self.gpio {
            let pins = gpio.pins();
            for (i, &(field, pin)) in pins.iter().enumerate() {
                if pin >= gpio.lines {
                    return fail(
                        &format!("gpio.{field}"),
                        format!("line {pin} is not on {} (lines 0..{})", gpio.chip, gpio.lines),
                    );
                }
                if let Some((other, _)) = pins[..i].iter().find(|(_, p)| *p == pin) {
                    return fail(&format!("gpio.{field}"), format!("line {pin} is already gpio.{other}"));
                }
            }
        }
        if let Some(screen) = &self.screen {
            if screen.port == 0 {
                return fail("screen.port", "0 is not a port".into());
            }
            if !(320..=7680).contains(&screen.width) || !(240..=4320).contains(&screen.height) {
                return fail("screen.width", format!("{}x{} is not a screen size", screen.width, screen.height));
            }
        }
        if self.storage.min_free_mb == 0 {
            return fail("storage.min_free_mb", "must be at least 1 MB: a full card loses results".into());
        }
        if !(1..=64).contains(&self.inference.threads) {
            return fail("inference.threads", format!("{} is not 1..=64", self.inference.threads));
        }
        Ok(())
    }

    pub fn from_file(path: &std::path::Path) -> Result<Board, BoardError> {
        let text = std::fs::read_to_string(path).map_err(|source| BoardError::Io { path: path.to_owned(), source })?;
        Board::from_toml(&text, &path.display().to_string())
    }

    /// Every built-in board.
    pub fn builtin() -> Result<Vec<Board>, BoardError> {
        BUILTIN.iter().map(|(file, text)| Board::from_toml(text, file)).collect()
    }

    /// A built-in board by name.
    pub fn by_name(name: &str) -> Result<Board, BoardError> {
        let all = Board::builtin()?;
        let known = all.iter().map(|b| b.name.as_str()).collect::<Vec<_>>().join(", ");
        all.into_iter().find(|b| b.name == name).ok_or_else(|| BoardError::Unknown { name: name.to_owned(), known })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_definition_parses_and_is_named_after_its_file() {
        let boards = Board::builtin().expect("built-in definitions are valid");
        assert_eq!(boards.len(), BUILTIN.len());
        for (board, (file, _)) in boards.iter().zip(BUILTIN) {
            assert_eq!(format!("{}.toml", board.name), *file);
        }
        let jetson = Board::by_name("jetson-orin-nano").expect("present");
        assert_eq!(jetson.inference.accelerator, Accelerator::Cuda);
        assert!(Board::by_name("sim").expect("present").gpio.is_none());
    }

    #[test]
    fn unknown_board_lists_the_known_ones() {
        let err = Board::by_name("pi-zero").unwrap_err().to_string();
        assert!(err.contains("pi-zero") && err.contains("rpi4") && err.contains("sim"), "{err}");
    }

    #[test]
    fn a_pin_off_the_chip_or_used_twice_is_an_error_naming_the_field() {
        let rpi5 = BUILTIN.iter().find(|(f, _)| *f == "rpi5.toml").expect("rpi5").1;
        let err = Board::from_toml(&rpi5.replace("led_busy = 23", "led_busy = 40"), "x.toml").unwrap_err().to_string();
        assert!(err.contains("x.toml") && err.contains("gpio.led_busy") && err.contains("40"), "{err}");
        let err = Board::from_toml(&rpi5.replace("led_busy = 23", "led_busy = 17"), "x.toml").unwrap_err().to_string();
        assert!(err.contains("gpio.led_busy") && err.contains("gpio.button"), "{err}");
        let err = Board::from_toml(&rpi5.replace("port = 8080", "port = 0"), "x.toml").unwrap_err().to_string();
        assert!(err.contains("screen.port"), "{err}");
        let err = Board::from_toml(&rpi5.replace("width = 800", "width = 8"), "x.toml").unwrap_err().to_string();
        assert!(err.contains("screen.width"), "{err}");
        let err = Board::from_toml(&rpi5.replace("threads = 4", "threads = 0"), "x.toml").unwrap_err().to_string();
        assert!(err.contains("inference.threads"), "{err}");
        let err =
            Board::from_toml(&rpi5.replace("min_free_mb = 64", "min_free_mb = 0"), "x.toml").unwrap_err().to_string();
        assert!(err.contains("storage.min_free_mb"), "{err}");
    }

    #[test]
    fn kiosk_boards_have_a_screen_a_button_and_a_spool_on_tmpfs() {
        for name in ["rpi4", "rpi5", "jetson-orin-nano"] {
            let b = Board::by_name(name).expect("present");
            assert!(b.gpio.is_some() && b.screen.is_some(), "{name}");
            assert!(b.storage.spool.starts_with("/run"), "{name}: raw media must stay off the card");
        }
    }

    #[test]
    fn a_misspelt_field_is_an_error_naming_the_file() {
        let text = BUILTIN[0].1.replace("led_busy", "led_bsy");
        let err = Board::from_toml(&text, "custom.toml").unwrap_err().to_string();
        assert!(err.contains("custom.toml") && err.contains("led_bsy"), "{err}");
    }
}
