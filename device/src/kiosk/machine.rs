//! The kiosk's state machine, apart from any hardware or clock: inputs (button, screen taps,
//! voice activity, what the session did) and the time in, actions out.
//!
//! ```text
//!  Idle ─start─▶ Consent ─agree─▶ Interview ─last answer─▶ (Questionnaire) ─▶ Processing ─▶ Done ─▶ Idle
//!                  │ decline,        │ lead → answer → … per prompt   │ item timeout:       │ result or   │ done_s;
//!                  │ timeout         │ stop / long press / left:      │ result without it   │ failure     │ urgent: until
//!                  ▼                 ▼ abort                          ▼ stop: abort         ▼             ▼ staff reset
//!                 Idle              Done (aborted)                   Done (aborted)
//! ```
//!
//! A unit without a screen skips the consent screen (consent is taken on paper) and the
//! questionnaire (nothing to tap), and runs the interview by button and LEDs alone.

use std::sync::Arc;
use std::time::{Duration, Instant};

use boards::{ButtonEvent, Indicator};
use protocol::{Questionnaire, ResultFlags, SessionId};

use super::script::Script;
use crate::pipeline::Extra;

/// What happens to the kiosk.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// The button, debounced.
    Button(ButtonEvent),
    /// "Start" tapped on the idle screen.
    Start,
    /// "I agree" tapped; `research`: the research box was ticked.
    Agree {
        /// Keep the raw recording for research.
        research: bool,
    },
    /// "No thanks" tapped on the consent screen.
    Decline,
    /// "Stop" tapped: the patient ends the session; nothing is kept.
    Stop,
    /// "Done" tapped: this answer is over.
    AnswerDone,
    /// A questionnaire answer tapped (0–3).
    Answer(u8),
    /// Voice activity now (from the microphone's level).
    Voice(bool),
    /// The session started with this id.
    Started(SessionId),
    /// The session could not start (camera and microphone both failed, storage full, …).
    StartFailed(String),
    /// The session stopped capturing without the kiosk asking (a host aborted it).
    SessionGone,
    /// A host stopped the session: its result is being computed.
    StoppedElsewhere,
    /// The session's result is in the log.
    Stored(u64),
    /// The session's result could not be made.
    Failed(String),
    /// Staff reset the kiosk (long press on the closing screen of an urgent session).
    StaffReset,
}

/// What the kiosk does, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Start a session (capture starts).
    StartSession {
        /// The research box was ticked.
        research: bool,
    },
    /// Say this prompt (where the board has a speaker).
    Speak(String),
    /// An answer window opens now.
    OpenAnswer,
    /// The answer window closes now; `empty`: no speech was heard in it.
    CloseAnswer {
        /// Nothing said.
        empty: bool,
    },
    /// Stop capture and compute the result with this questionnaire and these flags.
    Stop(Extra),
    /// End the session without a result.
    Abort(String),
    /// Raise or clear the staff alert.
    Alert(bool),
}

/// How a session ended, for the closing screen.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The result is stored under this sequence number.
    Stored(u64),
    /// Still computing when the closing screen came: the result lands in the log later.
    Pending,
    /// Ended without a result.
    Aborted(String),
    /// The result could not be made.
    Failed(String),
}

/// Where the interview stands within one prompt.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Step {
    /// The prompt is shown (and spoken); the answer window opens after the lead.
    Lead {
        /// Since when.
        since: Instant,
    },
    /// The answer window is open.
    Answer {
        /// Opened at.
        since: Instant,
        /// Speech was heard in it.
        spoke: bool,
        /// Last speech.
        last_voice: Instant,
    },
}

/// The kiosk's state.
#[derive(Debug, Clone, PartialEq)]
pub enum State {
    /// Waiting for a patient.
    Idle,
    /// The consent screen.
    Consent {
        /// Shown since.
        since: Instant,
    },
    /// The guided interview: prompt `index` of the session's order.
    Interview {
        /// Position in the order.
        index: usize,
        /// Lead or answer.
        step: Step,
    },
    /// The questionnaire: item `item` (from 0) is shown.
    Questionnaire {
        /// The item shown.
        item: usize,
        /// Shown since.
        since: Instant,
        /// Answers so far.
        answers: Vec<u8>,
    },
    /// The result is being computed.
    Processing {
        /// Since.
        since: Instant,
    },
    /// The closing screen.
    Done {
        /// Shown since.
        since: Instant,
        /// How the session ended.
        outcome: Outcome,
    },
}

/// The kiosk's state machine.
#[derive(Debug)]
pub struct Machine {
    script: Arc<Script>,
    screen: bool,
    /// Voice activity is known (a live microphone level); without it answers end by button or
    /// limit only and are never marked empty.
    voice: bool,
    state: State,
    order: Vec<usize>,
    session: Option<SessionId>,
    research: bool,
    urgent: bool,
    empty_in_row: u32,
    answers_given: u32,
    questionnaire: Option<Questionnaire>,
}

impl Machine {
    /// A machine running `script`; `screen`: the unit has a touch screen; `voice`: voice
    /// activity inputs will come.
    pub fn new(script: Arc<Script>, screen: bool, voice: bool) -> Machine {
        let order = (0..script.prompts.len()).collect();
        Machine {
            script,
            screen,
            voice,
            state: State::Idle,
            order,
            session: None,
            research: false,
            urgent: false,
            empty_in_row: 0,
            answers_given: 0,
            questionnaire: None,
        }
    }

    /// Whether voice activity inputs come (the capture reports a level): only then do silence
    /// and "nothing said" end answers.
    pub fn set_voice(&mut self, voice: bool) {
        self.voice = voice;
    }

    /// The state now.
    pub fn state(&self) -> &State {
        &self.state
    }

    /// The script.
    pub fn script(&self) -> &Script {
        &self.script
    }

    /// The session the kiosk runs, if any.
    pub fn session(&self) -> Option<SessionId> {
        self.session
    }

    /// Whether the safety path fired in this session.
    pub fn urgent(&self) -> bool {
        self.urgent
    }

    /// Whether the patient ticked the research box.
    pub fn research(&self) -> bool {
        self.research
    }

    /// The prompt shown now (script index), if any.
    pub fn prompt(&self) -> Option<usize> {
        match self.state {
            State::Interview { index, .. } => self.order.get(index).copied(),
            _ => None,
        }
    }

    /// What the LEDs show.
    pub fn indicator(&self) -> Indicator {
        match &self.state {
            State::Idle | State::Consent { .. } => Indicator::Idle,
            _ if self.urgent => Indicator::Attention,
            State::Interview { .. } | State::Questionnaire { .. } => Indicator::Recording,
            State::Processing { .. } => Indicator::Processing,
            State::Done { outcome: Outcome::Failed(_), .. } => Indicator::Error,
            State::Done { .. } => Indicator::Done,
        }
    }

    /// Takes one input at `now`; returns what to do.
    pub fn handle(&mut self, input: Input, now: Instant) -> Vec<Action> {
        use ButtonEvent::{LongPress, Press};
        let mut out = Vec::new();
        match (&mut self.state, input) {
            (State::Idle, Input::Button(Press) | Input::Start) => {
                if self.screen {
                    self.state = State::Consent { since: now };
                } else {
                    self.begin(false, now, &mut out);
                }
            }
            (State::Consent { .. }, Input::Agree { research }) => self.begin(research, now, &mut out),
            (State::Consent { .. }, Input::Button(Press)) => self.begin(false, now, &mut out),
            (State::Consent { .. }, Input::Decline | Input::Stop | Input::Button(LongPress)) => {
                self.state = State::Idle
            }
            (State::Interview { .. } | State::Questionnaire { .. }, Input::Started(id)) => {
                self.session = Some(id);
                self.order = self.script.order(id);
            }
            (State::Interview { .. }, Input::StartFailed(why)) => {
                self.session = None;
                self.state = State::Done { since: now, outcome: Outcome::Failed(why) };
            }
            (State::Interview { step: Step::Answer { spoke, last_voice, .. }, .. }, Input::Voice(v)) => {
                if v {
                    *spoke = true;
                    *last_voice = now;
                }
            }
            (State::Interview { step: Step::Answer { spoke, .. }, .. }, Input::Button(Press) | Input::AnswerDone) => {
                let empty = self.voice && !*spoke;
                self.close_answer(empty, now, &mut out);
            }
            (State::Interview { .. } | State::Questionnaire { .. }, Input::Stop | Input::Button(LongPress)) => {
                self.abort("stopped by the patient".into(), now, &mut out)
            }
            (State::Interview { .. } | State::Questionnaire { .. }, Input::SessionGone) => {
                self.session = None;
                self.state = State::Done { since: now, outcome: Outcome::Aborted("ended by a host".into()) };
            }
            (State::Interview { .. } | State::Questionnaire { .. }, Input::StoppedElsewhere) => {
                self.state = State::Processing { since: now };
            }
            (State::Questionnaire { item, since, answers }, Input::Answer(v)) if v <= 3 => {
                answers.push(v);
                if *item == 8 && v > 0 && !self.urgent {
                    self.urgent = true;
                    out.push(Action::Alert(true));
                }
                *item += 1;
                *since = now;
                let instrument = self.script.instrument();
                if instrument.is_none_or(|i| answers.len() >= i.items()) {
                    self.questionnaire = instrument.and_then(|i| Questionnaire::new(i, answers).ok());
                    self.stop(ResultFlags::empty(), now, &mut out);
                }
            }
            (State::Processing { .. }, Input::Stored(seq)) => {
                self.state = State::Done { since: now, outcome: Outcome::Stored(seq) };
            }
            (State::Processing { .. }, Input::Failed(why)) => {
                self.state = State::Done { since: now, outcome: Outcome::Failed(why) };
            }
            (State::Done { .. }, Input::StaffReset | Input::Button(LongPress)) => self.reset(&mut out),
            (State::Done { .. }, Input::Button(Press) | Input::Start) if !self.urgent => self.reset(&mut out),
            (_, input) => tracing::debug!(?input, state = ?self.state, "kiosk input ignored here"),
        }
        out
    }

    /// Advances timeouts to `now`; returns what to do.
    pub fn tick(&mut self, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        let s = &self.script;
        match self.state.clone() {
            State::Consent { since } if now.duration_since(since) >= s.consent_timeout() => self.state = State::Idle,
            State::Interview { index, step: Step::Lead { since } } if now.duration_since(since) >= s.lead() => {
                self.state =
                    State::Interview { index, step: Step::Answer { since: now, spoke: false, last_voice: now } };
                out.push(Action::OpenAnswer);
            }
            State::Interview { index, step: Step::Answer { since, spoke, last_voice } } => {
                let prompt = self.order.get(index).copied().unwrap_or(0);
                let open = now.duration_since(since);
                let limit = open >= s.answer_limit(prompt);
                let silent = self.voice && spoke && now.duration_since(last_voice) >= s.silence_timeout();
                let nothing = self.voice && !spoke && open >= s.no_answer();
                if limit || silent || nothing {
                    self.close_answer(nothing, now, &mut out);
                }
            }
            State::Questionnaire { since, .. } if now.duration_since(since) >= s.item_timeout() => {
                // The interview stands; the questionnaire is left out, and the result says so.
                tracing::info!("questionnaire not finished: the result is made without it");
                self.questionnaire = None;
                self.stop(ResultFlags::ENDED_EARLY, now, &mut out);
            }
            State::Processing { since } if now.duration_since(since) >= s.processing_timeout() => {
                self.state = State::Done { since: now, outcome: Outcome::Pending };
            }
            State::Done { since, .. } if !self.urgent && now.duration_since(since) >= s.done_time() => {
                self.reset(&mut out);
            }
            _ => {}
        }
        out
    }

    /// How long the open answer window has left, if one is open.
    pub fn answer_left(&self, now: Instant) -> Option<Duration> {
        match self.state {
            State::Interview { index, step: Step::Answer { since, .. } } => {
                let prompt = self.order.get(index).copied().unwrap_or(0);
                Some(self.script.answer_limit(prompt).saturating_sub(now.duration_since(since)))
            }
            _ => None,
        }
    }

    fn begin(&mut self, research: bool, now: Instant, out: &mut Vec<Action>) {
        self.research = research;
        self.urgent = false;
        self.empty_in_row = 0;
        self.answers_given = 0;
        self.questionnaire = None;
        self.order = (0..self.script.prompts.len()).collect();
        out.push(Action::StartSession { research });
        self.state = State::Interview { index: 0, step: Step::Lead { since: now } };
        self.speak_prompt(out);
    }

    fn speak_prompt(&self, out: &mut Vec<Action>) {
        if let Some(p) = self.prompt().and_then(|i| self.script.prompts.get(i)) {
            out.push(Action::Speak(p.text.clone()));
        }
    }

    fn close_answer(&mut self, empty: bool, now: Instant, out: &mut Vec<Action>) {
        let State::Interview { index, .. } = self.state else { return };
        out.push(Action::CloseAnswer { empty });
        if empty {
            self.empty_in_row += 1;
        } else {
            self.empty_in_row = 0;
            self.answers_given += 1;
        }
        if self.empty_in_row >= self.script.interview.empty_answers_to_leave {
            let n = self.empty_in_row;
            return self.abort(format!("the patient left ({n} answers in a row without speech)"), now, out);
        }
        if index + 1 < self.order.len() {
            self.state = State::Interview { index: index + 1, step: Step::Lead { since: now } };
            self.speak_prompt(out);
        } else if self.screen && self.script.instrument().is_some() {
            self.state = State::Questionnaire { item: 0, since: now, answers: Vec::new() };
        } else {
            self.stop(ResultFlags::empty(), now, out);
        }
    }

    fn stop(&mut self, flags: ResultFlags, now: Instant, out: &mut Vec<Action>) {
        let mut flags = flags | ResultFlags::KIOSK;
        flags.set(ResultFlags::URGENT, self.urgent);
        out.push(Action::Stop(Extra { questionnaire: self.questionnaire.clone(), flags }));
        self.state = State::Processing { since: now };
    }

    fn abort(&mut self, why: String, now: Instant, out: &mut Vec<Action>) {
        out.push(Action::Abort(why.clone()));
        self.state = State::Done { since: now, outcome: Outcome::Aborted(why) };
    }

    fn reset(&mut self, out: &mut Vec<Action>) {
        if self.urgent {
            out.push(Action::Alert(false));
        }
        self.urgent = false;
        self.session = None;
        self.questionnaire = None;
        self.state = State::Idle;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn script(f: impl FnOnce(&mut Script)) -> Arc<Script> {
        let mut s = Script::default_script();
        f(&mut s);
        Arc::new(s)
    }

    fn secs(t0: Instant, s: f32) -> Instant {
        t0 + Duration::from_secs_f32(s)
    }

    /// Runs the interview to its end with every answer spoken and closed by the button.
    fn answer_all(m: &mut Machine, t0: Instant, mut t: f32) -> (Vec<Action>, f32) {
        let mut actions = Vec::new();
        while matches!(m.state(), State::Interview { .. }) {
            t += 2.0;
            actions.extend(m.tick(secs(t0, t)));
            t += 1.0;
            actions.extend(m.handle(Input::Voice(true), secs(t0, t)));
            t += 5.0;
            actions.extend(m.handle(Input::Button(ButtonEvent::Press), secs(t0, t)));
        }
        (actions, t)
    }

    #[test]
    fn a_whole_session_goes_idle_consent_interview_questionnaire_processing_done_idle() {
        let s = script(|_| {});
        let n = s.prompts.len();
        let mut m = Machine::new(Arc::clone(&s), true, true);
        let t0 = Instant::now();
        assert_eq!(m.indicator(), Indicator::Idle);
        assert!(m.handle(Input::Start, t0).is_empty());
        assert!(matches!(m.state(), State::Consent { .. }));
        let a = m.handle(Input::Agree { research: true }, t0);
        assert_eq!(a[0], Action::StartSession { research: true });
        assert_eq!(a[1], Action::Speak(s.prompts[0].text.clone()));
        m.handle(Input::Started(4), t0);
        assert_eq!(m.indicator(), Indicator::Recording);
        let (actions, t) = answer_all(&mut m, t0, 0.0);
        assert_eq!(actions.iter().filter(|a| **a == Action::OpenAnswer).count(), n);
        assert_eq!(actions.iter().filter(|a| **a == Action::CloseAnswer { empty: false }).count(), n);
        assert_eq!(actions.iter().filter(|a| matches!(a, Action::Speak(_))).count(), n - 1);
        assert!(matches!(m.state(), State::Questionnaire { item: 0, .. }));
        let mut stop = Vec::new();
        for v in [1, 2, 0, 3, 1, 0, 2, 1] {
            stop = m.handle(Input::Answer(v), secs(t0, t));
        }
        let Some(Action::Stop(extra)) = stop.first() else { panic!("{stop:?}") };
        let q = extra.questionnaire.as_ref().expect("questionnaire");
        assert_eq!((q.instrument, q.score()), (protocol::Instrument::Phq8, 10));
        assert_eq!(extra.flags, ResultFlags::KIOSK);
        assert_eq!(m.indicator(), Indicator::Processing);
        m.handle(Input::Stored(12), secs(t0, t + 1.0));
        assert_eq!(m.state(), &State::Done { since: secs(t0, t + 1.0), outcome: Outcome::Stored(12) });
        assert_eq!(m.indicator(), Indicator::Done);
        assert!(m.tick(secs(t0, t + 5.0)).is_empty());
        assert!(matches!(m.state(), State::Done { .. }), "the closing screen stays done_s");
        m.tick(secs(t0, t + 1.0 + s.timeouts.done_s));
        assert_eq!(m.state(), &State::Idle);
    }

    #[test]
    fn phq9_item_9_above_0_raises_the_alert_marks_urgent_and_waits_for_staff() {
        let s = script(|s| s.questionnaire.instrument = super::super::script::InstrumentDef::Phq9);
        let mut m = Machine::new(s, true, true);
        let t0 = Instant::now();
        m.handle(Input::Start, t0);
        m.handle(Input::Agree { research: false }, t0);
        let (_, t) = answer_all(&mut m, t0, 0.0);
        let mut actions = Vec::new();
        for v in [0, 0, 0, 0, 0, 0, 0, 0, 1] {
            actions.extend(m.handle(Input::Answer(v), secs(t0, t)));
        }
        assert_eq!(actions[0], Action::Alert(true), "the alert fires at the answer, before the result");
        let Action::Stop(extra) = &actions[1] else { panic!("{actions:?}") };
        assert_eq!(extra.flags, ResultFlags::KIOSK | ResultFlags::URGENT);
        assert!(extra.questionnaire.as_ref().is_some_and(|q| q.needs_safety_assessment() && q.score() == 1));
        assert_eq!(m.indicator(), Indicator::Attention);
        m.handle(Input::Stored(1), secs(t0, t));
        m.tick(secs(t0, t + 3600.0));
        assert!(matches!(m.state(), State::Done { .. }), "an urgent closing screen never times out");
        assert!(m.handle(Input::Button(ButtonEvent::Press), secs(t0, t + 3601.0)).is_empty(), "a patient's press");
        assert_eq!(m.handle(Input::StaffReset, secs(t0, t + 3602.0)), vec![Action::Alert(false)]);
        assert_eq!((m.state(), m.indicator()), (&State::Idle, Indicator::Idle));
    }

    #[test]
    fn every_state_times_out_or_aborts() {
        let s = script(|_| {});
        let t0 = Instant::now();
        // Consent: declined, long press, timeout.
        for input in [Some(Input::Decline), Some(Input::Button(ButtonEvent::LongPress)), Some(Input::Stop), None] {
            let mut m = Machine::new(Arc::clone(&s), true, true);
            m.handle(Input::Start, t0);
            match input {
                Some(i) => assert!(m.handle(i, t0).is_empty()),
                None => assert!(m.tick(secs(t0, s.timeouts.consent_s)).is_empty()),
            }
            assert_eq!(m.state(), &State::Idle);
        }
        // Interview: stop tapped, long press, a host aborting the session.
        for input in [Input::Stop, Input::Button(ButtonEvent::LongPress)] {
            let mut m = Machine::new(Arc::clone(&s), true, true);
            m.handle(Input::Start, t0);
            m.handle(Input::Agree { research: false }, t0);
            let a = m.handle(input, secs(t0, 1.0));
            assert_eq!(a, vec![Action::Abort("stopped by the patient".into())]);
            assert!(matches!(m.state(), State::Done { outcome: Outcome::Aborted(_), .. }));
            m.tick(secs(t0, 1.0 + s.timeouts.done_s));
            assert_eq!(m.state(), &State::Idle);
        }
        let mut m = Machine::new(Arc::clone(&s), true, true);
        m.handle(Input::Start, t0);
        m.handle(Input::Agree { research: false }, t0);
        assert!(m.handle(Input::SessionGone, t0).is_empty());
        assert!(matches!(m.state(), State::Done { outcome: Outcome::Aborted(_), .. }));
        // Questionnaire: an item left unanswered makes the result without it, flagged.
        let mut m = Machine::new(Arc::clone(&s), true, true);
        m.handle(Input::Start, t0);
        m.handle(Input::Agree { research: false }, t0);
        let (_, t) = answer_all(&mut m, t0, 0.0);
        m.handle(Input::Answer(2), secs(t0, t));
        let a = m.tick(secs(t0, t + s.timeouts.questionnaire_item_s));
        assert_eq!(
            a,
            vec![Action::Stop(Extra { questionnaire: None, flags: ResultFlags::KIOSK | ResultFlags::ENDED_EARLY })]
        );
        // Processing: too slow, the closing screen says the result comes later.
        let t = t + s.timeouts.questionnaire_item_s;
        m.tick(secs(t0, t + s.timeouts.processing_s));
        assert!(matches!(m.state(), State::Done { outcome: Outcome::Pending, .. }));
        // A failed start.
        let mut m = Machine::new(Arc::clone(&s), false, true);
        m.handle(Input::Button(ButtonEvent::Press), t0);
        m.handle(Input::StartFailed("no camera and no microphone".into()), t0);
        assert_eq!(m.indicator(), Indicator::Error);
    }

    #[test]
    fn answers_end_by_limit_silence_or_nothing_said_and_a_patient_who_left_aborts() {
        let s = script(|s| s.interview.empty_answers_to_leave = 2);
        let t0 = Instant::now();
        let mut m = Machine::new(Arc::clone(&s), true, true);
        m.handle(Input::Start, t0);
        m.handle(Input::Agree { research: false }, t0);
        assert_eq!(m.tick(secs(t0, 2.0)), vec![Action::OpenAnswer]);
        assert_eq!(m.answer_left(secs(t0, 12.0)), Some(s.answer_limit(0) - Duration::from_secs(10)));
        // Speech, then silence_timeout_s of silence ends it.
        m.handle(Input::Voice(true), secs(t0, 3.0));
        assert!(m.tick(secs(t0, 3.0 + s.interview.silence_timeout_s - 0.5)).is_empty());
        let a = m.tick(secs(t0, 3.0 + s.interview.silence_timeout_s));
        assert_eq!(a[0], Action::CloseAnswer { empty: false });
        // Prompt 2: endless speech stops at its limit.
        let t = 3.0 + s.interview.silence_timeout_s + s.interview.lead_s;
        m.tick(secs(t0, t));
        let mut closed = Vec::new();
        let mut x = t;
        while closed.is_empty() {
            x += 1.0;
            m.handle(Input::Voice(true), secs(t0, x));
            closed = m.tick(secs(t0, x));
        }
        assert_eq!(closed[0], Action::CloseAnswer { empty: false });
        assert!((x - t - s.interview.answer_limit_s).abs() <= 1.0, "closed after {} s", x - t);
        // Two answers without a word: the patient has left.
        let t = x + s.interview.lead_s;
        m.tick(secs(t0, t));
        let a = m.tick(secs(t0, t + s.interview.no_answer_s));
        assert_eq!(a[0], Action::CloseAnswer { empty: true });
        let t = t + s.interview.no_answer_s + s.interview.lead_s;
        m.tick(secs(t0, t));
        let a = m.tick(secs(t0, t + s.interview.no_answer_s));
        assert_eq!(a[0], Action::CloseAnswer { empty: true });
        assert!(matches!(&a[1], Action::Abort(why) if why.contains("left")), "{a:?}");
    }

    #[test]
    fn a_unit_without_a_screen_runs_by_button_alone() {
        let s = script(|_| {});
        let t0 = Instant::now();
        // No screen, no voice level: the button starts, each press ends an answer.
        let mut m = Machine::new(Arc::clone(&s), false, false);
        let a = m.handle(Input::Button(ButtonEvent::Press), t0);
        assert_eq!(a[0], Action::StartSession { research: false }, "no consent screen: consent is on paper");
        let (actions, _) = answer_all(&mut m, t0, 0.0);
        assert!(actions.iter().all(|a| *a != Action::CloseAnswer { empty: true }), "unknown voice is never empty");
        let Some(Action::Stop(extra)) = actions.last() else { panic!("{actions:?}") };
        assert_eq!(extra.questionnaire, None, "no screen: no questionnaire");
        assert_eq!(m.indicator(), Indicator::Processing);
    }
}
