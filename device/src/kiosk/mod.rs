//! The kiosk: a screening session run on the device alone — button, LEDs, (screen), guided
//! interview, questionnaire — with no host needed.
//!
//! * [`script::Script`]: the interview script (TOML): consent, prompts and timing,
//!   questionnaire, safety message, timeouts.
//! * [`machine::Machine`]: the state machine, pure (inputs and time in, actions out).
//! * [`Kiosk`]: drives the machine from the events the device's loop hands it (screen taps,
//!   debounced button presses, its session's end, clock ticks) and carries its actions out on
//!   [`Sessions`] — the same lifecycle a host drives, so a kiosk session's result goes through the
//!   same pipeline into the same log and is synced later. Its answer windows become participant
//!   turns with exact times ([`Sessions::add_turn`]); the interviewer's prompts are never text
//!   features.
//!
//! A host connecting or disconnecting changes nothing: a kiosk session is `Origin::Local`,
//! never abandoned for host silence. A host may watch (`DeviceInfo.active_session`,
//! `SessionStatus`) and may abort it; the kiosk then shows the session as ended.

pub mod machine;
pub mod screen;
pub mod script;

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Instant;

use boards::Indicator;
use protocol::{SessionState, SessionStatus, truncated};

use crate::session::{Origin, Sessions, StartRequest};
pub use machine::{Action, Input, Machine, Outcome, State};
pub use screen::{Screen, Showing, View};
pub use script::Script;

/// Text of a script as the screen shows it: lines of a paragraph joined (the TOML wraps them),
/// paragraphs kept apart.
fn reflow(text: &str) -> String {
    text.split("\n\n")
        .map(|p| p.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join("\n\n")
}

/// The model's result in words, for a research unit's closing screen.
fn research_result(r: &protocol::ResultRecord) -> String {
    use protocol::ResultFlags;
    if r.flags.contains(ResultFlags::INSUFFICIENT_DATA) {
        return "Research unit: not enough data for a screen (screening aid, not a diagnosis).".into();
    }
    let screen = if r.flags.contains(ResultFlags::SCREEN_POSITIVE) { "positive" } else { "negative" };
    format!(
        "Research unit: model {} — P(depressed) {:.2}, {screen} screen (screening aid, not a diagnosis).",
        r.model_version.as_str(),
        r.p_depressed
    )
}

/// The level ([`crate::capture::level_of`]) above which the microphone hears the patient
/// speaking: −40 dBFS, above a quiet room and below conversational speech at arm's length.
pub const VOICE_LEVEL: f32 = 1.0 / 3.0;

/// Says interview prompts aloud.
pub trait Speaker: Send {
    /// Starts saying `text`, cutting off anything still being said; never blocks.
    fn say(&mut self, text: &str);
}

/// No speaker: prompts are shown only.
#[derive(Debug, Default)]
pub struct Silent;

impl Speaker for Silent {
    fn say(&mut self, _: &str) {}
}

/// espeak-ng (offline TTS) played through `aplay` on an ALSA PCM. A missing program is logged
/// once and the kiosk goes on showing prompts only.
#[derive(Debug)]
pub struct Espeak {
    pcm: String,
    playing: Option<Child>,
    broken: bool,
}

impl Espeak {
    /// Speech on the ALSA PCM `pcm`.
    pub fn new(pcm: &str) -> Espeak {
        Espeak { pcm: pcm.to_owned(), playing: None, broken: false }
    }
}

impl Speaker for Espeak {
    fn say(&mut self, text: &str) {
        if self.broken {
            return;
        }
        self.hush();
        // espeak-ng writes a WAV to stdout; aplay plays it on the board's speaker.
        let line = "espeak-ng --stdout -s 150 -- \"$1\" | aplay -q -D \"$2\"";
        match Command::new("sh")
            .args(["-c", line, "speak", text, &self.pcm])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
        {
            Ok(child) => self.playing = Some(child),
            Err(e) => {
                tracing::warn!("speaking prompts needs espeak-ng and aplay: {e}; prompts are shown only");
                self.broken = true;
            }
        }
    }
}

impl Espeak {
    /// Cuts off the prompt being said, if any.
    fn hush(&mut self) {
        if let Some(mut c) = self.playing.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Espeak {
    fn drop(&mut self) {
        self.hush();
    }
}

/// The kiosk on a device: the machine and the session it runs. The device's loop hands it its
/// events: taps and button presses ([`input`](Self::input)), its session's end
/// ([`finished`](Self::finished)), host requests ([`after_request`](Self::after_request)) and
/// clock ticks ([`tick`](Self::tick)).
pub struct Kiosk {
    machine: Machine,
    speaker: Box<dyn Speaker>,
    /// Where the open answer window started on the session's clock, ms.
    answer_start: Option<u32>,
    /// Indicator last shown by the kiosk.
    shown: Option<Indicator>,
    /// The touch screen's page, where the unit has one.
    screen: Option<Screen>,
    /// The microphone's level at the last tick (0 when unknown).
    level: f32,
}

impl std::fmt::Debug for Kiosk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kiosk").field("state", self.machine.state()).finish_non_exhaustive()
    }
}

impl Kiosk {
    /// A kiosk running `script`; `screen`: the unit has a touch screen.
    pub fn new(script: Script, screen: bool, speaker: Box<dyn Speaker>) -> Kiosk {
        Kiosk {
            machine: Machine::new(Arc::new(script), screen, false),
            speaker,
            answer_start: None,
            shown: None,
            screen: None,
            level: 0.0,
        }
    }

    /// Shows the kiosk on `screen` and takes its taps.
    pub fn with_screen(mut self, screen: Screen) -> Kiosk {
        self.screen = Some(screen);
        self
    }

    /// The screen's page, if the kiosk has one.
    pub fn screen(&self) -> Option<&Screen> {
        self.screen.as_ref()
    }

    /// What the screen shows at `now`.
    pub fn view(&self, sessions: &Sessions, now: Instant) -> View {
        let m = &self.machine;
        let script = m.script();
        let mut v = View::default();
        match m.state() {
            State::Idle => {
                v.screen = Showing::Idle;
                v.text = "Welcome. This station asks you a few questions about how you have been feeling. \
                          It takes about ten minutes.\n\nPress Start (or the button) when you are ready."
                    .into();
            }
            State::Consent { .. } => {
                v.screen = Showing::Consent;
                v.text = reflow(&script.consent.text);
                v.research = Some(reflow(&script.consent.research));
            }
            State::Interview { index, step } => {
                v.screen = Showing::Prompt;
                v.step = Some(format!("Question {} of {}", index + 1, script.prompts.len()));
                v.text = m.prompt().and_then(|i| script.prompts.get(i)).map(|p| p.text.clone()).unwrap_or_default();
                v.recording = matches!(step, machine::Step::Answer { .. });
                v.level = self.level;
                v.seconds_left = m.answer_left(now).map(|d| d.as_secs_f32().ceil() as u32);
            }
            State::Questionnaire { item, .. } => {
                let n = script.instrument().map_or(0, protocol::Instrument::items);
                v.screen = Showing::Questionnaire;
                v.step = Some(format!("{} — item {} of {n}", script.instrument().map_or("", |i| i.name()), item + 1));
                v.stem = Some(protocol::PHQ_STEM.to_owned());
                v.text = protocol::PHQ_ITEMS.get(*item).map(|t| (*t).to_owned()).unwrap_or_default();
                v.options = protocol::PHQ_OPTIONS.iter().map(|(l, s)| ((*l).to_owned(), *s)).collect();
                v.source = Some(protocol::PHQ_SOURCE.to_owned());
            }
            State::Processing { .. } => {
                v.screen = Showing::Processing;
                v.text = "Thank you. Please wait a moment…".into();
                // The safety message shows at once, not after the result.
                v.crisis = m.urgent().then(|| reflow(&script.safety.crisis));
            }
            State::Done { outcome, .. } => {
                v.screen = Showing::Done;
                v.text = match outcome {
                    Outcome::Stored(_) | Outcome::Pending => reflow(&script.closing.text),
                    Outcome::Aborted(_) => "The session has ended. Nothing from it was kept.".into(),
                    Outcome::Failed(_) => "Something went wrong. Please tell a member of staff.".into(),
                };
                v.crisis = m.urgent().then(|| reflow(&script.safety.crisis));
                if script.screen.show_result
                    && let Outcome::Stored(seq) = outcome
                    && let Some(r) = sessions.log().get(*seq)
                {
                    v.result = Some(research_result(r));
                }
            }
        }
        v
    }

    /// The state machine (what the screen shows).
    pub fn machine(&self) -> &Machine {
        &self.machine
    }

    /// Takes an input (a tap on the screen, a debounced button press) at `now`.
    pub fn input(&mut self, sessions: &mut Sessions, input: Input, now: Instant) {
        let actions = self.machine.handle(input, now);
        self.run(sessions, actions, now);
    }

    /// Advances timeouts, follows the microphone's level while an answer is open, and shows the
    /// state on the LEDs and the screen. The device's loop calls it on every clock tick.
    pub fn tick(&mut self, sessions: &mut Sessions, now: Instant) {
        let level = sessions.level();
        if matches!(self.machine.state(), State::Interview { step: machine::Step::Answer { .. }, .. }) {
            self.machine.set_voice(level.is_some());
            if let Some(l) = level {
                self.input(sessions, Input::Voice(l >= VOICE_LEVEL), now);
            }
        }
        self.level = level.unwrap_or(0.0);
        let actions = self.machine.tick(now);
        self.run(sessions, actions, now);
        self.show(sessions, now);
        if let Some(screen) = &self.screen {
            screen.publish(self.view(sessions, now));
        }
    }

    /// A session finished (`status`: its result stored, or its failure): when it is the
    /// kiosk's, the kiosk shows it.
    pub fn finished(&mut self, sessions: &mut Sessions, status: SessionStatus, now: Instant) {
        if self.machine.session() != Some(status.session) {
            return;
        }
        if matches!(self.machine.state(), State::Interview { .. } | State::Questionnaire { .. }) {
            // Stopped by a host, then computed before the kiosk heard of the stop.
            self.input(sessions, Input::StoppedElsewhere, now);
        }
        match status.state {
            SessionState::Done { seq } => self.input(sessions, Input::Stored(seq), now),
            SessionState::Failed(code) => self.input(sessions, Input::Failed(format!("{code:?}")), now),
            SessionState::Capturing | SessionState::Processing => {}
        }
    }

    /// After a host's request: a host may have stopped or aborted the kiosk's session, which
    /// then no longer captures. The kiosk waits for its result, or shows it ended.
    pub fn after_request(&mut self, sessions: &mut Sessions, now: Instant) {
        let Some(id) = self.machine.session() else { return };
        let capturing = matches!(self.machine.state(), State::Interview { .. } | State::Questionnaire { .. });
        if !capturing || sessions.active().is_some_and(|s| s.session == id) {
            return;
        }
        tracing::warn!(session = id, "the kiosk's session stopped capturing without the kiosk");
        let input = match sessions.status(id).map(|s| s.state) {
            Ok(SessionState::Processing | SessionState::Done { .. }) => Input::StoppedElsewhere,
            _ => Input::SessionGone,
        };
        self.input(sessions, input, now);
    }

    fn show(&mut self, sessions: &mut Sessions, now: Instant) {
        let own = !matches!(self.machine.state(), State::Idle);
        // Shown on every tick while the kiosk runs a session (the panel drives only changes),
        // so what the sessions show for their own steps never stays; once idle, the LEDs are
        // the sessions' again (a host may run one), after one last "idle".
        if own || self.shown.take().is_some() {
            let indicator = self.machine.indicator();
            if let Err(e) = sessions.panel().show(indicator) {
                tracing::warn!("kiosk LEDs: {e}");
            }
            if own {
                self.shown = Some(indicator);
            }
        }
        if let Err(e) = sessions.panel().tick(now) {
            tracing::warn!("kiosk LEDs: {e}");
        }
    }

    fn run(&mut self, sessions: &mut Sessions, actions: Vec<Action>, now: Instant) {
        for action in actions {
            let follow_up = self.act(sessions, action);
            if let Some(input) = follow_up {
                let more = self.machine.handle(input, now);
                self.run(sessions, more, now);
            }
        }
    }

    /// Carries out one action; returns what it tells the machine.
    fn act(&mut self, sessions: &mut Sessions, action: Action) -> Option<Input> {
        let id = self.machine.session();
        let captured_ms =
            |sessions: &Sessions| sessions.active().filter(|s| Some(s.session) == id).map(|s| s.captured_ms);
        match action {
            Action::StartSession { research } => {
                let req = StartRequest {
                    modalities: sessions.available(),
                    label: truncated("kiosk"),
                    host_time_ms: 0,
                    origin: Origin::Local,
                };
                Some(match sessions.start_with(req, research) {
                    Ok(status) => {
                        tracing::info!(session = status.session, research, "kiosk session started");
                        Input::Started(status.session)
                    }
                    Err(e) => {
                        tracing::error!("the kiosk cannot start a session: {}", runtime::chain(&e));
                        Input::StartFailed(runtime::chain(&e))
                    }
                })
            }
            Action::Speak(text) => {
                self.speaker.say(&text);
                None
            }
            Action::OpenAnswer => {
                self.answer_start = captured_ms(sessions);
                sessions.mark_answer(true);
                None
            }
            Action::CloseAnswer { empty } => {
                sessions.mark_answer(false);
                let (Some(id), Some(start), Some(end)) = (id, self.answer_start.take(), captured_ms(sessions)) else {
                    return None;
                };
                if empty {
                    tracing::info!(session = id, start_ms = start, end_ms = end, "answer window empty (no speech)");
                    return None;
                }
                match sessions.add_turn(id, start, end) {
                    Ok(_) => None,
                    Err(e) => {
                        tracing::warn!(session = id, "answer window not kept: {}", runtime::chain(&e));
                        None
                    }
                }
            }
            Action::Stop(extra) => {
                let id = id?;
                match sessions.stop_with(id, extra) {
                    Ok(s) => match s.state {
                        SessionState::Done { seq } => Some(Input::Stored(seq)),
                        SessionState::Failed(code) => Some(Input::Failed(format!("{code:?}"))),
                        _ => None,
                    },
                    Err(e) => Some(Input::Failed(runtime::chain(&e))),
                }
            }
            Action::Abort(why) => {
                let id = id?;
                tracing::warn!(session = id, "kiosk session ended without a result: {why}");
                if let Err(e) = sessions.abort(id) {
                    tracing::warn!(session = id, "abort: {}", runtime::chain(&e));
                }
                None
            }
            Action::Alert(on) => {
                if on {
                    tracing::error!(
                        session = ?id,
                        "SAFETY: PHQ-9 item 9 answered above 0 — staff alert raised; a same-day safety assessment is needed"
                    );
                }
                if let Err(e) = sessions.panel().alert(on) {
                    tracing::error!("the staff alert output failed: {e}");
                }
                None
            }
        }
    }
}
