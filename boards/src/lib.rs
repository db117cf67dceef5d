//! # boards — what the device runs on
//!
//! * [`Board`]: a board definition, read from a TOML data file in `boards/definitions/` (the
//!   probe-rs "target description as data" pattern). The files are compiled in, so the device
//!   binary needs no data directory to know its board; `--board-file` can load another one.
//! * [`Kiosk`]: the kiosk's button and LEDs behind a trait, with [`FakeKiosk`] (records what the
//!   hardware would see, for tests), [`LogKiosk`] (the simulated board: LEDs go to the log) and,
//!   with the `gpio` feature, `CdevKiosk` (real lines through `/dev/gpiochipN`).
//!
//! Invariant: nothing here knows about the protocol, features or models.

mod kiosk;

pub use kiosk::*;

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
    #[error("cannot read board definition {path}: {source}")]
    Io {
        path: String,
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
    pub chip: String,
    pub button: u32,
    pub led_ready: u32,
    pub led_busy: u32,
    pub led_error: u32,
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
    /// Parses a definition; `origin` names it in errors.
    pub fn from_toml(text: &str, origin: &str) -> Result<Board, BoardError> {
        toml::from_str(text).map_err(|source| BoardError::Invalid { origin: origin.to_owned(), source })
    }

    pub fn from_file(path: &std::path::Path) -> Result<Board, BoardError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| BoardError::Io { path: path.display().to_string(), source })?;
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
    fn a_misspelt_field_is_an_error_naming_the_file() {
        let text = BUILTIN[0].1.replace("led_busy", "led_bsy");
        let err = Board::from_toml(&text, "custom.toml").unwrap_err().to_string();
        assert!(err.contains("custom.toml") && err.contains("led_bsy"), "{err}");
    }
}
