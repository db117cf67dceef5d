//! The message set. One enum per direction; every request gets exactly one response with the
//! same [`RequestId`]. Which response answers which request is stated in code by
//! [`crate::endpoints`]; any request may instead be answered by [`Response::Error`].

use heapless::{String, Vec};
use serde::{Deserialize, Serialize};

use crate::{MAX_CHUNK, MAX_MANIFEST, MAX_RECORDS_PER_BATCH, MAX_TEXT};

/// Matches a response to its request. The host picks it; the device echoes it. A request that
/// is re-sent after a timeout keeps its id, so the device can answer a duplicate from its reply
/// cache instead of executing it twice.
pub type RequestId = u32;

/// Identifies a screening session on one device. Assigned by the device.
pub type SessionId = u32;

/// Short identifier strings (device id, board name, model version).
pub type ShortStr = String<32>;

/// A frame from host to device.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct HostFrame {
    /// Chosen by the host; the same for every retry of one request.
    pub id: RequestId,
    /// The request.
    pub req: Request,
}

/// A frame from device to host.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct DeviceFrame {
    /// The id of the request this answers.
    pub id: RequestId,
    /// The answer.
    pub resp: Response,
}

/// Host → device.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
// No allocator: messages are fixed-size values, so variants cannot be boxed.
#[allow(clippy::large_enum_variant)]
pub enum Request {
    /// First message of every connection: the host states the protocol version it speaks.
    Hello(Hello),
    /// Liveness check; the device echoes the nonce.
    Ping(u32),
    /// Start capturing a session.
    SessionStart(SessionStart),
    /// One piece of the interview transcript of the running session.
    TranscriptChunk(TranscriptChunk),
    /// End capture and compute the result. Answered at once with [`SessionState::Processing`]
    /// while the device computes; [`Request::SessionStatus`] then reports the outcome.
    SessionStop(SessionId),
    /// Where a session stands (capturing, processing, done with its result's sequence number,
    /// failed).
    SessionStatus(SessionId),
    /// Ask for result records with a sequence number greater than `after`.
    Sync(SyncCursor),
    /// The host has durably stored every record up to and including `upto`.
    SyncAck(Ack),
    /// Start (or resume) uploading a model bundle.
    UploadBegin(UploadBegin),
    /// One piece of the bundle, at its offset.
    UploadChunk(UploadChunk),
    /// Where the upload stands (the offset the device expects next).
    UploadStatus,
    /// The whole bundle is sent: check it and stage it for trial.
    UploadCommit,
    /// The model on trial works: keep it.
    UploadConfirm,
    /// Go back to the previous model.
    UploadRollback,
    /// End a session without a result: capture stops and nothing is computed. Any paired host
    /// may abort any session (one whose host has gone).
    SessionAbort(SessionId),
    /// Proves that this connection's host holds a paired key: a signature over the challenge
    /// of this connection's [`DeviceInfo`]. Answered with the full [`DeviceInfo`].
    Auth(Auth),
    /// Asks to pair a host key; someone at the device must then confirm (code or button).
    PairBegin(PairBegin),
    /// Completes pairing with the code the device shows (or the kiosk button held).
    PairConfirm(PairConfirm),
    /// Forgets this connection's (authorised) host key.
    Unpair,
}

/// Device → host.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
// No allocator: messages are fixed-size values, so variants cannot be boxed.
#[allow(clippy::large_enum_variant)]
pub enum Response {
    /// What the device is (answers [`Request::Hello`]).
    DeviceInfo(DeviceInfo),
    /// The nonce of a [`Request::Ping`].
    Pong(u32),
    /// A session's state (answers start, stop and status).
    Session(SessionStatus),
    /// A transcript chunk was taken.
    TranscriptAccepted(TranscriptAccepted),
    /// Result records after the host's cursor.
    Records(RecordBatch),
    /// The acknowledgement the device now holds.
    Acked(Ack),
    /// Where a model upload stands.
    Upload(UploadStatus),
    /// The request was refused or failed. Its place (variant 7) never changes, so a host of
    /// another protocol version still reads the `UnsupportedVersion` answer to its hello.
    Error(Error),
    /// A pairing was begun: how someone at the device confirms it.
    Pairing(PairChallenge),
    /// Paired hosts after a pairing or unpairing.
    Paired(Pairings),
}

impl Request {
    /// The name of the endpoint this request belongs to (for logs and errors).
    pub const fn name(&self) -> &'static str {
        use crate::endpoints::{self as e, Endpoint};
        match self {
            Request::Hello(_) => e::Hello::NAME,
            Request::Ping(_) => e::Ping::NAME,
            Request::SessionStart(_) => e::SessionStart::NAME,
            Request::TranscriptChunk(_) => e::Transcript::NAME,
            Request::SessionStop(_) => e::SessionStop::NAME,
            Request::SessionStatus(_) => e::SessionStatus::NAME,
            Request::Sync(_) => e::Sync::NAME,
            Request::SyncAck(_) => e::SyncAck::NAME,
            Request::UploadBegin(_) => e::UploadBegin::NAME,
            Request::UploadChunk(_) => e::UploadChunk::NAME,
            Request::UploadStatus => e::UploadStatus::NAME,
            Request::UploadCommit => e::UploadCommit::NAME,
            Request::UploadConfirm => e::UploadConfirm::NAME,
            Request::UploadRollback => e::UploadRollback::NAME,
            Request::SessionAbort(_) => e::SessionAbort::NAME,
            Request::Auth(_) => e::Auth::NAME,
            Request::PairBegin(_) => e::PairBegin::NAME,
            Request::PairConfirm(_) => e::PairConfirm::NAME,
            Request::Unpair => e::Unpair::NAME,
        }
    }
}

impl Response {
    /// The variant's name (for errors about an unexpected answer).
    pub const fn name(&self) -> &'static str {
        match self {
            Response::DeviceInfo(_) => "DeviceInfo",
            Response::Pong(_) => "Pong",
            Response::Session(_) => "Session",
            Response::TranscriptAccepted(_) => "TranscriptAccepted",
            Response::Records(_) => "Records",
            Response::Acked(_) => "Acked",
            Response::Upload(_) => "Upload",
            Response::Error(_) => "Error",
            Response::Pairing(_) => "Pairing",
            Response::Paired(_) => "Paired",
        }
    }
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
/// The first message of a connection.
pub struct Hello {
    /// [`crate::PROTOCOL_VERSION`] of the host.
    pub protocol_version: u16,
    /// Free text naming the host software, for the device's log.
    pub host: ShortStr,
}

/// Truncated SHA-256 of a feature schema: the names, order and parameters of every feature the
/// front-ends compute. A model is only valid for the schema it was trained on.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct SchemaHash(pub [u8; 8]);

impl core::fmt::Display for SchemaHash {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

bitflags::bitflags! {
    /// What a device can do.
    #[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
    pub struct Capabilities: u32 {
        /// A microphone (or simulated audio).
        const AUDIO = 1 << 0;
        /// A camera with a face landmarker (or simulated video).
        const VIDEO = 1 << 1;
        /// Transcripts.
        const TEXT = 1 << 2;
        /// Inputs come from files, not capture hardware.
        const SIMULATED = 1 << 3;
        /// Inference runs on a GPU.
        const GPU = 1 << 4;
        /// Takes model uploads.
        const MODEL_UPLOAD = 1 << 5;
        /// A kiosk board (button, LEDs).
        const KIOSK = 1 << 6;
    }
}

impl Capabilities {
    /// Each capability's name, in bit order.
    pub const NAMES: [(Capabilities, &'static str); 7] = [
        (Capabilities::AUDIO, "audio"),
        (Capabilities::VIDEO, "video"),
        (Capabilities::TEXT, "text"),
        (Capabilities::SIMULATED, "simulated"),
        (Capabilities::GPU, "gpu"),
        (Capabilities::MODEL_UPLOAD, "model-upload"),
        (Capabilities::KIOSK, "kiosk"),
    ];
}

impl From<Modalities> for Capabilities {
    /// The capture capabilities that deliver these modalities.
    fn from(m: Modalities) -> Capabilities {
        let mut c = Capabilities::empty();
        c.set(Capabilities::AUDIO, m.contains(Modalities::AUDIO));
        c.set(Capabilities::VIDEO, m.contains(Modalities::VIDEO));
        c.set(Capabilities::TEXT, m.contains(Modalities::TEXT));
        c
    }
}

impl core::fmt::Display for Capabilities {
    /// The names of the set capabilities, comma-separated.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write_names(f, *self, &Capabilities::NAMES)
    }
}

/// Writes the names of the flags of `set` found in `names`, comma-separated.
fn write_names<F: bitflags::Flags + Copy>(
    f: &mut core::fmt::Formatter<'_>,
    set: F,
    names: &[(F, &str)],
) -> core::fmt::Result {
    let mut first = true;
    for (flag, name) in names {
        if set.contains(*flag) {
            if !first {
                f.write_str(", ")?;
            }
            f.write_str(name)?;
            first = false;
        }
    }
    Ok(())
}

#[cfg(feature = "defmt")]
impl defmt::Format for Capabilities {
    fn format(&self, f: defmt::Formatter<'_>) {
        defmt::write!(f, "Capabilities({=u32:#x})", self.bits());
    }
}

/// The state of a model slot.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum SlotState {
    /// No model.
    Empty,
    /// Running and confirmed.
    Active,
    /// Uploaded and committed, on trial until confirmed.
    Trial,
    /// Uploaded, not yet committed.
    Staged,
    /// Confirmed, but a model on trial serves instead (the trial's fallback).
    Confirmed,
    /// Holds a model that does not serve (the one before, or one rolled back).
    Inactive,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
/// One of the device's two model slots.
pub struct ModelSlot {
    /// Slot number (0 or 1).
    pub slot: u8,
    /// What the slot holds.
    pub state: SlotState,
    /// The model's version string (empty for an empty slot).
    pub model_version: ShortStr,
    /// The bundle's monotonic version (anti-rollback; 0 for an empty slot).
    pub version: u64,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
/// What a device is; the answer to [`Request::Hello`].
pub struct DeviceInfo {
    /// [`crate::PROTOCOL_VERSION`] of the device.
    pub protocol_version: u16,
    /// Stable identifier of the device: the key of its results in a host database.
    pub device_id: ShortStr,
    /// Board name (`rpi4`, `jetson-orin-nano`, `sim`, ...).
    pub board: ShortStr,
    /// Version of `mimml-device`.
    pub firmware_version: ShortStr,
    /// The model slots.
    pub slots: Vec<ModelSlot, 2>,
    /// Version of the model that computes results.
    pub active_model_version: ShortStr,
    /// Feature schema of the device's front-ends.
    pub feature_schema: SchemaHash,
    /// What the device can do.
    pub capabilities: Capabilities,
    /// Highest sequence number the device has handed out (0 = none).
    pub last_result_seq: u64,
    /// The session capturing now, whoever started it (`None` before [`Request::Auth`]).
    pub active_session: Option<SessionStatus>,
    /// Fresh for every connection: an [`Auth`] signs it, so a recorded exchange cannot be
    /// replayed.
    pub challenge: [u8; 32],
    /// This connection's host has proven a paired key. Before that, the device tells only what
    /// it is: no results, sessions or counts.
    pub authorized: bool,
}

/// An ed25519 public key.
pub type PublicKey = [u8; 32];

/// An ed25519 signature (64 bytes; serde derives arrays up to 32 only).
pub type Signature = Vec<u8, 64>;

/// What an [`Auth`] signs: this prefix, the device id, a zero byte, the connection's challenge
/// and the host key.
pub const AUTH_CONTEXT: &[u8] = b"mimml-auth-v3\0";

/// What a [`PairConfirm`] signs: this prefix, the device id, a zero byte, the challenge of the
/// connection, the code (little-endian u32) and the host key.
pub const PAIR_CONTEXT: &[u8] = b"mimml-pair-v3\0";

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
/// A host proves a paired key on this connection.
pub struct Auth {
    /// The host's public key.
    pub host_key: PublicKey,
    /// Its signature over [`AUTH_CONTEXT`] ‖ device id ‖ 0 ‖ challenge ‖ host key.
    pub signature: Signature,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
/// A host asks to be paired.
pub struct PairBegin {
    /// The host's public key.
    pub host_key: PublicKey,
    /// The host's name, shown beside the code at the device.
    pub name: ShortStr,
}

#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
/// How a pairing is confirmed at the device.
pub enum PairMethod {
    /// Enter the one-time code the device shows on its screen or log.
    Code,
    /// Hold the kiosk button while the host confirms (the code works too).
    Button,
}

#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
/// A pairing was begun.
pub struct PairChallenge {
    /// How to confirm it.
    pub method: PairMethod,
    /// Seconds the code stays valid.
    pub expires_s: u16,
    /// Wrong codes still allowed for this code.
    pub attempts: u8,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
/// Completes a pairing.
pub struct PairConfirm {
    /// The code the device shows (ignored while the kiosk button is held).
    pub code: u32,
    /// The host's signature over [`PAIR_CONTEXT`] ‖ device id ‖ 0 ‖ challenge ‖ code ‖ host
    /// key: proves it holds the key it asked to pair.
    pub signature: Signature,
}

#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
/// Paired hosts.
pub struct Pairings {
    /// How many host keys the device trusts now.
    pub hosts: u8,
}

bitflags::bitflags! {
    /// Which modalities a session uses or a result saw.
    #[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
    pub struct Modalities: u8 {
        /// Speech.
        const AUDIO = 1 << 0;
        /// Face landmarks.
        const VIDEO = 1 << 1;
        /// The transcript.
        const TEXT = 1 << 2;
    }
}

impl Modalities {
    /// All three.
    pub const ALL: Modalities = Modalities::all();
    /// Each modality's name, in the order of [`PerModality`].
    pub const NAMES: [(Modalities, &'static str); 3] =
        [(Modalities::AUDIO, "audio"), (Modalities::VIDEO, "video"), (Modalities::TEXT, "text")];
}

impl core::fmt::Display for Modalities {
    /// The names of the modalities present, comma-separated.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write_names(f, *self, &Modalities::NAMES)
    }
}

#[cfg(feature = "defmt")]
impl defmt::Format for Modalities {
    fn format(&self, f: defmt::Formatter<'_>) {
        defmt::write!(f, "Modalities({=u8:#x})", self.bits());
    }
}

/// Start capturing a session.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct SessionStart {
    /// Modalities the host wants captured.
    pub modalities: Modalities,
    /// Opaque label chosen by the operator (no personal data), stored with the result.
    pub label: ShortStr,
    /// Host wall clock (Unix ms): boards without an RTC take it as their time base.
    pub host_time_ms: u64,
}

#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
/// Who spoke an utterance.
pub enum Speaker {
    /// The person screened: their words are the text features.
    Participant,
    /// The interviewer (or the kiosk's voice).
    Interviewer,
}

/// One piece of one utterance. Utterances are numbered from 0 within a session; an utterance
/// longer than [`MAX_TEXT`] bytes is sent as several parts, numbered from 0, the last with
/// `last_part` set. Re-sending a part that was already accepted is harmless.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct TranscriptChunk {
    /// The running session.
    pub session: SessionId,
    /// Utterance number, from 0.
    pub utterance: u32,
    /// Part number within the utterance, from 0.
    pub part: u16,
    /// This part ends the utterance.
    pub last_part: bool,
    /// Start of the utterance in the recording, ms (0 with `end_ms` 0: no timing).
    pub start_ms: u32,
    /// End of the utterance in the recording, ms.
    pub end_ms: u32,
    /// Who spoke.
    pub speaker: Speaker,
    /// The part's text.
    pub text: String<MAX_TEXT>,
}

#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
/// The answer to a [`TranscriptChunk`].
pub struct TranscriptAccepted {
    /// The session.
    pub session: SessionId,
    /// Complete utterances the device holds for this session.
    pub utterances: u32,
}

#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
/// Where a session stands.
pub enum SessionState {
    /// Recording; transcript chunks are taken.
    Capturing,
    /// Stopped; the device is computing features and the result.
    Processing,
    /// The result is in the device's log under this sequence number.
    Done {
        /// The result's sequence number.
        seq: u64,
    },
    /// No result: why, in one code (the device's log has the detail).
    Failed(ErrorCode),
}

#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
/// A session and where it stands.
pub struct SessionStatus {
    /// The session.
    pub session: SessionId,
    /// Where it stands.
    pub state: SessionState,
    /// Capture time so far (or in total, once stopped), ms.
    pub captured_ms: u32,
}

/// Per-modality numbers, in the order audio, video, text.
pub type PerModality = [f32; 3];

/// One screening result as stored in the device log and in the host database.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ResultRecord {
    /// Position in the device's log, from 1, strictly increasing, never reused.
    pub seq: u64,
    /// The session it came from.
    pub session: SessionId,
    /// The operator's label (no personal data).
    pub label: ShortStr,
    /// Session start, Unix ms (the host's clock when it started the session).
    pub started_ms: u64,
    /// End of the captured media, Unix ms.
    pub finished_ms: u64,
    /// Time spent on features + inference, ms.
    pub compute_ms: u32,
    /// Probability of depression (PHQ-8 ≥ 10) the model gives.
    pub p_depressed: f32,
    /// PHQ-8 estimate, 0–24.
    pub phq8: f32,
    /// Fusion gate weight of each modality (audio, video, text); absent modalities weigh 0.
    pub gates: PerModality,
    /// The modalities the result saw.
    pub modalities: Modalities,
    /// Version of the model that computed it.
    pub model_version: ShortStr,
    /// Feature schema of the features it was computed from.
    pub feature_schema: SchemaHash,
    /// Quality and provenance flags.
    pub flags: ResultFlags,
    /// The PHQ the patient answered at the kiosk, beside the model's output (none for a
    /// host-driven session, or when the kiosk skipped it).
    pub questionnaire: Option<Questionnaire>,
}

/// A [`ResultRecord`] as protocol version 3 wrote it (before the questionnaire): result logs and
/// databases written then are still read.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[allow(missing_docs)]
pub struct ResultRecordV3 {
    pub seq: u64,
    pub session: SessionId,
    pub label: ShortStr,
    pub started_ms: u64,
    pub finished_ms: u64,
    pub compute_ms: u32,
    pub p_depressed: f32,
    pub phq8: f32,
    pub gates: PerModality,
    pub modalities: Modalities,
    pub model_version: ShortStr,
    pub feature_schema: SchemaHash,
    pub flags: ResultFlags,
}

impl ResultRecord {
    /// This record as protocol version 3 wrote it (the questionnaire dropped): what tests and
    /// tools use to write data of that version.
    pub fn as_v3(&self) -> ResultRecordV3 {
        ResultRecordV3 {
            seq: self.seq,
            session: self.session,
            label: self.label.clone(),
            started_ms: self.started_ms,
            finished_ms: self.finished_ms,
            compute_ms: self.compute_ms,
            p_depressed: self.p_depressed,
            phq8: self.phq8,
            gates: self.gates,
            modalities: self.modalities,
            model_version: self.model_version.clone(),
            feature_schema: self.feature_schema,
            flags: self.flags,
        }
    }
}

impl From<ResultRecordV3> for ResultRecord {
    fn from(r: ResultRecordV3) -> ResultRecord {
        ResultRecord {
            seq: r.seq,
            session: r.session,
            label: r.label,
            started_ms: r.started_ms,
            finished_ms: r.finished_ms,
            compute_ms: r.compute_ms,
            p_depressed: r.p_depressed,
            phq8: r.phq8,
            gates: r.gates,
            modalities: r.modalities,
            model_version: r.model_version,
            feature_schema: r.feature_schema,
            flags: r.flags,
            questionnaire: None,
        }
    }
}

/// Which Patient Health Questionnaire was asked.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Instrument {
    /// PHQ-8: items 1–8, total 0–24 (DAIC-WOZ's label).
    Phq8,
    /// PHQ-9: items 1–9, total 0–27; item 9 asks about thoughts of death or self-harm.
    Phq9,
}

impl Instrument {
    /// Items asked.
    pub const fn items(self) -> usize {
        match self {
            Instrument::Phq8 => 8,
            Instrument::Phq9 => 9,
        }
    }

    /// Highest total.
    pub const fn max_score(self) -> u8 {
        3 * self.items() as u8
    }

    /// The name as the publications write it.
    pub const fn name(self) -> &'static str {
        match self {
            Instrument::Phq8 => "PHQ-8",
            Instrument::Phq9 => "PHQ-9",
        }
    }
}

/// Severity bands of the PHQ-8 and PHQ-9 total (Kroenke, Spitzer & Williams 2001; Kroenke et al.
/// 2009): 0–4, 5–9, 10–14, 15–19, 20 and above.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Severity {
    /// 0–4.
    Minimal,
    /// 5–9.
    Mild,
    /// 10–14.
    Moderate,
    /// 15–19.
    ModeratelySevere,
    /// 20–24 (PHQ-8) or 20–27 (PHQ-9).
    Severe,
}

impl Severity {
    /// The band of a total score.
    pub const fn of(score: u8) -> Severity {
        match score {
            0..=4 => Severity::Minimal,
            5..=9 => Severity::Mild,
            10..=14 => Severity::Moderate,
            15..=19 => Severity::ModeratelySevere,
            _ => Severity::Severe,
        }
    }

    /// The band's name as the publications write it.
    pub const fn name(self) -> &'static str {
        match self {
            Severity::Minimal => "minimal",
            Severity::Mild => "mild",
            Severity::Moderate => "moderate",
            Severity::ModeratelySevere => "moderately severe",
            Severity::Severe => "severe",
        }
    }
}

/// The PHQ's question, as published.
pub const PHQ_STEM: &str = "Over the last 2 weeks, how often have you been bothered by any of the following problems?";

/// The PHQ-9's items in the official wording; the PHQ-8 is the first eight.
pub const PHQ_ITEMS: [&str; 9] = [
    "Little interest or pleasure in doing things",
    "Feeling down, depressed, or hopeless",
    "Trouble falling or staying asleep, or sleeping too much",
    "Feeling tired or having little energy",
    "Poor appetite or overeating",
    "Feeling bad about yourself \u{2014} or that you are a failure or have let yourself or your family down",
    "Trouble concentrating on things, such as reading the newspaper or watching television",
    "Moving or speaking so slowly that other people could have noticed? Or the opposite \u{2014} being so fidgety \
     or restless that you have been moving around a lot more than usual",
    "Thoughts that you would be better off dead or of hurting yourself in some way",
];

/// The answers and their scores.
pub const PHQ_OPTIONS: [(&str, u8); 4] =
    [("Not at all", 0), ("Several days", 1), ("More than half the days", 2), ("Nearly every day", 3)];

/// Where the wording comes from; shown with it.
pub const PHQ_SOURCE: &str = "PHQ-9 developed by Drs. Robert L. Spitzer, Janet B.W. Williams, Kurt Kroenke and \
     colleagues, with an educational grant from Pfizer Inc. No permission required to reproduce, translate, display \
     or distribute.";

/// A score of 10 or more: the usual screening cut-off (and DAIC-WOZ's binary label).
pub const PHQ_CUTOFF: u8 = 10;

/// A questionnaire's answers: one per item, each 0 "Not at all", 1 "Several days", 2 "More than
/// half the days", 3 "Nearly every day".
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Questionnaire {
    /// PHQ-8 or PHQ-9.
    pub instrument: Instrument,
    /// The answers, item 1 first; as many as the instrument has items.
    pub answers: Vec<u8, 9>,
}

/// Answers that do not make a questionnaire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuestionnaireError {
    /// Not as many answers as the instrument has items.
    Count {
        /// Items the instrument has.
        expected: usize,
        /// Answers given.
        got: usize,
    },
    /// An answer outside 0–3.
    Answer {
        /// The item, from 1.
        item: usize,
        /// The answer.
        value: u8,
    },
}

impl core::fmt::Display for QuestionnaireError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            QuestionnaireError::Count { expected, got } => write!(f, "{got} answers, expected {expected}"),
            QuestionnaireError::Answer { item, value } => write!(f, "item {item}: answer {value} is not 0–3"),
        }
    }
}

impl Questionnaire {
    /// The answers to `instrument`, checked: one per item, each 0–3.
    pub fn new(instrument: Instrument, answers: &[u8]) -> Result<Questionnaire, QuestionnaireError> {
        if answers.len() != instrument.items() {
            return Err(QuestionnaireError::Count { expected: instrument.items(), got: answers.len() });
        }
        if let Some((i, &value)) = answers.iter().enumerate().find(|(_, a)| **a > 3) {
            return Err(QuestionnaireError::Answer { item: i + 1, value });
        }
        let mut v = Vec::new();
        for &a in answers {
            // Cannot fail: at most 9 answers.
            let _ = v.push(a);
        }
        Ok(Questionnaire { instrument, answers: v })
    }

    /// The total: the sum of the item scores (0–24 or 0–27).
    pub fn score(&self) -> u8 {
        self.answers.iter().map(|&a| a.min(3)).sum()
    }

    /// The severity band of the total.
    pub fn severity(&self) -> Severity {
        Severity::of(self.score())
    }

    /// Whether item 9 (thoughts of being better off dead or of self-harm) was answered above 0:
    /// a same-day safety assessment by a clinician is needed, whatever the total.
    pub fn needs_safety_assessment(&self) -> bool {
        self.instrument == Instrument::Phq9 && self.answers.get(8).is_some_and(|&a| a > 0)
    }
}

bitflags::bitflags! {
    /// What a reader of a [`ResultRecord`] must know about how it was made.
    #[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
    pub struct ResultFlags: u32 {
        /// The audio was silent, too quiet or clipped.
        const LOW_QUALITY_AUDIO = 1 << 0;
        /// No face was found: video is absent.
        const NO_FACE = 1 << 1;
        /// Too few participant words for the text features.
        const SHORT_TRANSCRIPT = 1 << 2;
        /// The result was computed by a placeholder model (no trained MIMML bundle installed).
        const PLACEHOLDER_MODEL = 1 << 3;
        /// Inputs came from files, not capture hardware.
        const SIMULATED = 1 << 4;
        /// `p_depressed` reached the model's decision threshold: refer for clinical assessment.
        const SCREEN_POSITIVE = 1 << 5;
        /// The camera saw more than one face; the tracked one, or else the largest (then most
        /// central), was measured.
        const SEVERAL_FACES = 1 << 6;
        /// Some video frames could not be decoded (corrupt JPEG, short camera buffer) and were
        /// skipped; the face measures come from the others.
        const DAMAGED_VIDEO = 1 << 7;
        /// Too little speech for the audio features: audio is absent.
        const TOO_LITTLE_SPEECH = 1 << 8;
        /// Too little usable signal in every modality: no screen was made (the probability,
        /// PHQ-8 and gates are 0 and mean nothing).
        const INSUFFICIENT_DATA = 1 << 9;
        /// URGENT: PHQ-9 item 9 (thoughts of death or self-harm) was answered above 0: a
        /// same-day safety assessment by a clinician is needed. Listed first everywhere.
        const URGENT = 1 << 10;
        /// The session ran at the kiosk: its segments are the interview's answer windows.
        const KIOSK = 1 << 11;
        /// The raw audio and video were kept on the device for research (the patient ticked the
        /// consent screen's research box and the device runs with `--keep-media`); otherwise
        /// they were deleted once the features existed.
        const MEDIA_KEPT = 1 << 12;
        /// The session ended early (the patient stopped it or walked away) after enough was
        /// recorded for a result.
        const ENDED_EARLY = 1 << 13;
        /// The camera froze (the same image for a second), failed mid-session or did not open:
        /// the face measures come from the video before it, if any.
        const CAMERA_LOST = 1 << 14;
        /// The microphone could not be opened or failed: audio is absent, the other modalities
        /// were captured.
        const MIC_LOST = 1 << 15;
        /// The audio was segmented without a transcript or answer windows (by voice activity or
        /// fixed windows): utterances may hold the interviewer's voice as well as the
        /// participant's.
        const SPEAKERS_NOT_SEPARATED = 1 << 16;
        /// The text features come from the device's own speech recognition (no transcript was
        /// pushed): machine-made words. The transcript itself stays on the device.
        const MACHINE_TRANSCRIPT = 1 << 17;
        /// The device's speech recognition doubted some of the words it gave (low confidence,
        /// or a repetition loop left out): the text features rest on uncertain words.
        const UNRELIABLE_TRANSCRIPT = 1 << 18;
    }
}

impl ResultFlags {
    /// Each flag's name for a report, in bit order.
    pub const NAMES: [(ResultFlags, &'static str); 19] = [
        (ResultFlags::LOW_QUALITY_AUDIO, "low-quality audio"),
        (ResultFlags::NO_FACE, "no usable video"),
        (ResultFlags::SHORT_TRANSCRIPT, "short transcript"),
        (ResultFlags::PLACEHOLDER_MODEL, "PLACEHOLDER MODEL (not a screening result)"),
        (ResultFlags::SIMULATED, "simulated inputs"),
        (ResultFlags::SCREEN_POSITIVE, "positive screen"),
        (ResultFlags::SEVERAL_FACES, "several faces in view"),
        (ResultFlags::DAMAGED_VIDEO, "damaged video frames skipped"),
        (ResultFlags::TOO_LITTLE_SPEECH, "too little speech (audio absent)"),
        (ResultFlags::INSUFFICIENT_DATA, "INSUFFICIENT DATA (no screen)"),
        (ResultFlags::URGENT, "URGENT: PHQ-9 item 9 answered above 0, same-day safety assessment"),
        (ResultFlags::KIOSK, "kiosk session (answer windows)"),
        (ResultFlags::MEDIA_KEPT, "raw media kept for research (consented)"),
        (ResultFlags::ENDED_EARLY, "ended early"),
        (ResultFlags::CAMERA_LOST, "camera froze or failed (video from before, if any)"),
        (ResultFlags::MIC_LOST, "microphone failed (audio absent)"),
        (
            ResultFlags::SPEAKERS_NOT_SEPARATED,
            "speakers not separated (no transcript: the interviewer's voice may be in the audio)",
        ),
        (ResultFlags::MACHINE_TRANSCRIPT, "machine transcript (on-device speech recognition)"),
        (ResultFlags::UNRELIABLE_TRANSCRIPT, "machine transcript unreliable (low confidence or repetition)"),
    ];
}

impl core::fmt::Display for ResultFlags {
    /// The names of the set flags, comma-separated.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write_names(f, *self, &ResultFlags::NAMES)
    }
}

#[cfg(feature = "defmt")]
impl defmt::Format for ResultFlags {
    fn format(&self, f: defmt::Formatter<'_>) {
        defmt::write!(f, "ResultFlags({=u32:#x})", self.bits());
    }
}

/// Which records the host asks for.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct SyncCursor {
    /// The highest sequence number the host already holds.
    pub after: u64,
    /// At most this many records (capped at [`MAX_RECORDS_PER_BATCH`]).
    pub max: u8,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
/// Result records, in sequence order.
pub struct RecordBatch {
    /// The records.
    pub records: Vec<ResultRecord, MAX_RECORDS_PER_BATCH>,
    /// Highest sequence number in the log: more to fetch while it exceeds the last record sent.
    pub last_seq: u64,
}

#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
/// An acknowledgement of every record up to and including `upto`.
pub struct Ack {
    /// Highest sequence number acknowledged.
    pub upto: u64,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
/// Start (or resume) a model upload.
pub struct UploadBegin {
    /// The bundle's `manifest.toml`, byte for byte as signed: checked (signature, version,
    /// schema, size) before any byte of the transfer is written.
    pub manifest: Vec<u8, MAX_MANIFEST>,
    /// The ed25519 signature over `manifest`.
    pub signature: Signature,
    /// Bytes in the whole transfer.
    pub total_size: u32,
    /// SHA-256 of the whole transfer, checked at commit; with the manifest, it names the
    /// transfer, so a begin with the same pair resumes instead of starting again.
    pub sha256: [u8; 32],
    /// The operator allows a version at or below the confirmed one (the device must allow it
    /// too).
    pub allow_downgrade: bool,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
/// One piece of an upload.
pub struct UploadChunk {
    /// Where `data` starts in the transfer.
    pub offset: u32,
    /// The bytes.
    pub data: Vec<u8, MAX_CHUNK>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
/// Where an upload stands.
pub struct UploadStatus {
    /// The offset the device expects next (mcumgr style: an interrupted upload resumes here).
    pub next_offset: u32,
    /// Bytes in the whole transfer.
    pub total_size: u32,
    /// The slot being written.
    pub slot: ModelSlot,
}

/// Typed error codes. A response error carries one plus a short human-readable detail.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum ErrorCode {
    /// The host's protocol version is not spoken; `supported` is the device's.
    UnsupportedVersion {
        /// The version the device speaks.
        supported: u16,
    },
    /// A request other than Hello arrived before Hello.
    HelloFirst,
    /// No session with that id (running or remembered).
    UnknownSession,
    /// A session is already running; stop it first.
    SessionActive,
    /// The session is not capturing any more (e.g. transcript pushed after stop).
    SessionNotCapturing,
    /// A transcript part came before the part it follows.
    TranscriptOutOfOrder,
    /// A required input (audio, video, transcript) could not be read or is unusable.
    BadInput,
    /// The front-ends could not compute features from the inputs.
    FeatureFailure,
    /// The model could not score the features.
    ModelFailure,
    /// The device could not write its log or state (disk full, read-only, failing card).
    Storage,
    /// An upload chunk was not at the offset the device expects.
    UploadOutOfOrder {
        /// The offset the device expects.
        expected: u32,
    },
    /// An upload's SHA-256 does not match.
    UploadChecksum,
    /// This firmware does not handle the request.
    NotImplemented,
    /// The device failed in a way no other code describes (its log has the detail).
    Internal,
    /// The session was aborted (by a host, or abandoned after its host went silent): no result.
    SessionAborted,
    /// A transcript limit was reached (utterances, bytes per utterance or per session).
    TranscriptTooLarge {
        /// The limit that was reached.
        limit: u32,
    },
    /// A request field is out of its range (a clock past [`crate::MAX_HOST_TIME_MS`], a part
    /// number past [`crate::MAX_PARTS`]).
    BadRequest,
    /// This host has not proven a paired key on this connection ([`Request::Auth`]); pair it
    /// first (`mimml pair`).
    Unauthorized,
    /// A pairing failed: no pairing begun, it expired, or the code was wrong.
    PairingFailed,
    /// A bundle's signature does not verify, or its key is not trusted by the device.
    BadSignature,
    /// A bundle's version is not above the confirmed one (anti-rollback).
    Downgrade {
        /// The confirmed version.
        confirmed: u64,
    },
    /// A bundle was refused: manifest, file hashes, feature schema, text encoder or golden
    /// self-test (the detail says which).
    BundleRejected,
    /// The transfer is larger than the device takes or has room for.
    UploadTooLarge {
        /// The most bytes the device takes now.
        limit: u32,
    },
    /// No upload in progress, or nothing on trial to confirm or roll back.
    NoUpload,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
/// A refused or failed request.
pub struct Error {
    /// What went wrong, for code to act on.
    pub code: ErrorCode,
    /// What went wrong, for a person.
    pub detail: String<96>,
}

impl Error {
    /// An error whose detail is `detail`, cut at a character boundary to fit.
    pub fn new(code: ErrorCode, detail: &str) -> Self {
        Error { code, detail: truncated(detail) }
    }
}

/// `s` cut at a character boundary to fit `N` bytes.
pub fn truncated<const N: usize>(s: &str) -> String<N> {
    let mut end = s.len().min(N);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    let mut out = String::new();
    // Cannot fail: `end <= N`.
    let _ = out.push_str(&s[..end]);
    out
}
