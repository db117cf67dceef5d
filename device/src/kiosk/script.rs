//! The kiosk script: consent text, the guided interview's prompts and timing, the
//! questionnaire, the safety message, the timeouts. A TOML file a clinic can edit;
//! `device/kiosk/interview.toml` is the default, compiled in.

use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

/// The script shipped with the device.
pub const DEFAULT: &str = include_str!("../../kiosk/interview.toml");

/// A script that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ScriptError {
    /// Not valid TOML, or a field unknown, missing or of the wrong type.
    #[error("kiosk script {origin}")]
    Toml {
        /// The file.
        origin: String,
        #[source]
        source: toml::de::Error,
    },
    /// A field out of its range.
    #[error("kiosk script {origin}: {field}: {detail}")]
    Field {
        /// The file.
        origin: String,
        /// The field.
        field: String,
        /// What is wrong.
        detail: String,
    },
    /// The file could not be read.
    #[error("cannot read kiosk script {}", path.display())]
    Io {
        /// The file.
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The whole script.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Script {
    /// What the patient agrees to.
    pub consent: Consent,
    /// Timing of the interview.
    pub interview: Interview,
    /// The prompts, in order.
    #[serde(rename = "prompt")]
    pub prompts: Vec<Prompt>,
    /// Which questionnaire follows the interview.
    pub questionnaire: QuestionnaireDef,
    /// The safety path's message.
    pub safety: Safety,
    /// The closing screen.
    pub closing: Closing,
    /// How long each screen waits for the patient.
    pub timeouts: Timeouts,
    /// What the screen shows.
    #[serde(default)]
    pub screen: ScreenDef,
}

/// The consent screen.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Consent {
    /// What the session does and does not do.
    pub text: String,
    /// The optional research box: keep the raw recording on the device.
    pub research: String,
}

/// Order of the prompts.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Order {
    /// As listed.
    Fixed,
    /// The first prompt first, the rest in an order drawn per session.
    Shuffled,
}

/// The interview's timing.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Interview {
    /// Seconds a prompt is shown before its answer window opens.
    pub lead_s: f32,
    /// Default longest answer.
    pub answer_limit_s: f32,
    /// Silence that ends an answer once the patient has spoken.
    pub silence_timeout_s: f32,
    /// An answer without any speech ends after this, marked empty.
    pub no_answer_s: f32,
    /// Empty answers in a row after which the patient has left.
    pub empty_answers_to_leave: u32,
    /// Prompt order.
    pub order: Order,
}

/// One prompt.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Prompt {
    /// A name for logs and the screen.
    pub id: String,
    /// What is shown and said.
    pub text: String,
    /// This answer's limit (else the interview's).
    #[serde(default)]
    pub answer_limit_s: Option<f32>,
}

/// Which questionnaire.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum InstrumentDef {
    /// No questionnaire.
    None,
    /// PHQ-8.
    Phq8,
    /// PHQ-9 (with item 9 and its safety path).
    Phq9,
}

/// The questionnaire section.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct QuestionnaireDef {
    /// Which one.
    pub instrument: InstrumentDef,
}

/// The safety path.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Safety {
    /// Shown at once when PHQ-9 item 9 is answered above 0.
    pub crisis: String,
}

/// The closing screen.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Closing {
    /// Shown when the session is over.
    pub text: String,
}

/// Seconds each screen waits for the patient.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Timeouts {
    /// Consent screen unanswered: back to idle.
    pub consent_s: f32,
    /// One questionnaire item unanswered: the result is made without the questionnaire.
    pub questionnaire_item_s: f32,
    /// The result not ready: the closing screen says it will be ready later.
    pub processing_s: f32,
    /// The closing screen, then idle (an urgent session's stays until staff reset it).
    pub done_s: f32,
}

/// What the screen shows.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ScreenDef {
    /// Research units only: the model's result on the closing screen.
    #[serde(default)]
    pub show_result: bool,
}

fn secs(s: f32) -> Duration {
    Duration::from_secs_f32(s.max(0.0))
}

impl Script {
    /// The script shipped with the device.
    pub fn default_script() -> Script {
        // The shipped script is checked by a test: it parses.
        Script::from_toml(DEFAULT, "interview.toml (built in)").unwrap_or_else(|e| panic!("{e}"))
    }

    /// Parses and checks a script; `origin` names it in errors.
    pub fn from_toml(text: &str, origin: &str) -> Result<Script, ScriptError> {
        let script: Script =
            toml::from_str(text).map_err(|source| ScriptError::Toml { origin: origin.to_owned(), source })?;
        script.check(origin)?;
        Ok(script)
    }

    /// Reads a script file.
    pub fn read(path: &Path) -> Result<Script, ScriptError> {
        let text = std::fs::read_to_string(path).map_err(|source| ScriptError::Io { path: path.to_owned(), source })?;
        Script::from_toml(&text, &path.display().to_string())
    }

    fn check(&self, origin: &str) -> Result<(), ScriptError> {
        let fail = |field: String, detail: String| Err(ScriptError::Field { origin: origin.to_owned(), field, detail });
        if self.prompts.is_empty() || self.prompts.len() > 64 {
            return fail("prompt".into(), format!("{} prompts; 1 to 64 make an interview", self.prompts.len()));
        }
        let i = &self.interview;
        let ranges: [(&str, f32, f32, f32); 8] = [
            ("interview.lead_s", i.lead_s, 0.0, 60.0),
            ("interview.answer_limit_s", i.answer_limit_s, 5.0, 600.0),
            ("interview.silence_timeout_s", i.silence_timeout_s, 1.0, 120.0),
            ("interview.no_answer_s", i.no_answer_s, 1.0, 600.0),
            ("timeouts.consent_s", self.timeouts.consent_s, 5.0, 3600.0),
            ("timeouts.questionnaire_item_s", self.timeouts.questionnaire_item_s, 5.0, 3600.0),
            ("timeouts.processing_s", self.timeouts.processing_s, 5.0, 3600.0),
            ("timeouts.done_s", self.timeouts.done_s, 1.0, 3600.0),
        ];
        for (field, v, lo, hi) in ranges {
            if !(lo..=hi).contains(&v) {
                return fail(field.into(), format!("{v} is not {lo}..={hi} seconds"));
            }
        }
        if i.empty_answers_to_leave == 0 {
            return fail("interview.empty_answers_to_leave".into(), "must be at least 1".into());
        }
        for (n, p) in self.prompts.iter().enumerate() {
            if p.text.trim().is_empty() {
                return fail(format!("prompt[{n}].text"), "empty".into());
            }
            if let Some(l) = p.answer_limit_s
                && !(5.0..=600.0).contains(&l)
            {
                return fail(format!("prompt[{n}].answer_limit_s"), format!("{l} is not 5..=600 seconds"));
            }
        }
        Ok(())
    }

    /// The questionnaire the script asks for.
    pub fn instrument(&self) -> Option<protocol::Instrument> {
        match self.questionnaire.instrument {
            InstrumentDef::None => None,
            InstrumentDef::Phq8 => Some(protocol::Instrument::Phq8),
            InstrumentDef::Phq9 => Some(protocol::Instrument::Phq9),
        }
    }

    /// The prompts' order for session `session`: as listed, or the first first and the rest
    /// permuted by a generator seeded with the session number (reproducible from the log).
    pub fn order(&self, session: u32) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.prompts.len()).collect();
        if self.interview.order == Order::Shuffled && order.len() > 2 {
            // SplitMix64: a few lines, and the order can be recomputed from the session number.
            let mut state = u64::from(session) ^ 0x9E37_79B9_7F4A_7C15;
            let mut next = || {
                state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
                let mut z = state;
                z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
                z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
                z ^ (z >> 31)
            };
            for i in (2..order.len()).rev() {
                let j = 1 + (next() % i as u64) as usize;
                order.swap(i, j);
            }
        }
        order
    }

    /// Durations, typed.
    pub fn lead(&self) -> Duration {
        secs(self.interview.lead_s)
    }
    /// The answer limit of prompt `i`.
    pub fn answer_limit(&self, i: usize) -> Duration {
        secs(self.prompts.get(i).and_then(|p| p.answer_limit_s).unwrap_or(self.interview.answer_limit_s))
    }
    /// Silence that ends an answer.
    pub fn silence_timeout(&self) -> Duration {
        secs(self.interview.silence_timeout_s)
    }
    /// No speech at all: the answer ends, empty.
    pub fn no_answer(&self) -> Duration {
        secs(self.interview.no_answer_s)
    }
    /// Consent timeout.
    pub fn consent_timeout(&self) -> Duration {
        secs(self.timeouts.consent_s)
    }
    /// Questionnaire item timeout.
    pub fn item_timeout(&self) -> Duration {
        secs(self.timeouts.questionnaire_item_s)
    }
    /// Processing timeout.
    pub fn processing_timeout(&self) -> Duration {
        secs(self.timeouts.processing_s)
    }
    /// Closing screen time.
    pub fn done_time(&self) -> Duration {
        secs(self.timeouts.done_s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_script_has_six_to_eight_open_questions_and_a_phq() {
        let s = Script::default_script();
        assert!((6..=8).contains(&s.prompts.len()), "{}", s.prompts.len());
        assert!(s.prompts.iter().all(|p| p.text.ends_with('?') || p.text.ends_with('.')));
        assert_eq!(s.instrument(), Some(protocol::Instrument::Phq8));
        assert!(s.consent.text.contains("not a diagnosis"));
        assert!(!s.screen.show_result, "the patient never sees the model's risk by default");
    }

    #[test]
    fn a_bad_script_is_an_error_naming_the_field() {
        let err = Script::from_toml(&DEFAULT.replace("lead_s = 2", "lead_s = 99"), "k.toml").unwrap_err();
        assert!(err.to_string().contains("interview.lead_s") && err.to_string().contains("k.toml"), "{err}");
        let err = Script::from_toml(&DEFAULT.replace("instrument = \"phq8\"", "instrument = \"gad7\""), "k.toml")
            .unwrap_err();
        assert!(runtime::chain(&err).contains("gad7"), "{}", runtime::chain(&err));
        let err = Script::from_toml(&DEFAULT.replace("[closing]", "[closing]\ncolour = 1"), "k.toml").unwrap_err();
        assert!(runtime::chain(&err).contains("colour"), "{}", runtime::chain(&err));
        let no_prompts: String = DEFAULT.split("[[prompt]]").next().map(str::to_owned).unwrap_or_default()
            + &DEFAULT[DEFAULT.find("[questionnaire]").unwrap_or(0)..];
        let err = Script::from_toml(&no_prompts, "k.toml").unwrap_err();
        assert!(runtime::chain(&err).contains("prompt"), "{}", runtime::chain(&err));
    }

    #[test]
    fn a_shuffled_order_keeps_the_first_prompt_first_and_is_a_permutation() {
        let mut s = Script::default_script();
        assert_eq!(s.order(5), (0..s.prompts.len()).collect::<Vec<_>>());
        s.interview.order = Order::Shuffled;
        let a = s.order(5);
        assert_eq!(a[0], 0);
        let mut sorted = a.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..s.prompts.len()).collect::<Vec<_>>());
        assert_eq!(a, s.order(5), "reproducible from the session number");
        assert!((1..20).any(|n| s.order(n) != a), "the order varies between sessions");
    }
}
