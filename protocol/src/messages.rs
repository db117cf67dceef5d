//! The message set. One enum per direction; every request gets exactly one response with the
//! same [`RequestId`].
//!
//! | request                        | response                                   | handled since |
//! |--------------------------------|--------------------------------------------|---------------|
//! | [`Request::Hello`]             | [`Response::DeviceInfo`]                   | foundation    |
//! | [`Request::Ping`]              | [`Response::Pong`]                         | foundation    |
//! | [`Request::SessionStart`]      | [`Response::Session`]                      | foundation    |
//! | [`Request::TranscriptChunk`]   | [`Response::TranscriptAccepted`]           | foundation    |
//! | [`Request::SessionStop`]       | [`Response::Session`] (after the result)   | foundation    |
//! | [`Request::SessionStatus`]     | [`Response::Session`]                      | foundation    |
//! | [`Request::Sync`]              | [`Response::Records`]                      | foundation    |
//! | [`Request::SyncAck`]           | [`Response::Acked`]                        | foundation    |
//! | [`Request::UploadBegin`] … [`Request::UploadRollback`] | [`Response::Upload`] | model-flashing issue |
//!
//! Any request may instead be answered by [`Response::Error`].

use heapless::{String, Vec};
use serde::{Deserialize, Serialize};

use crate::{MAX_CHUNK, MAX_RECORDS_PER_BATCH, MAX_TEXT};

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
    pub id: RequestId,
    pub req: Request,
}

/// A frame from device to host.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct DeviceFrame {
    pub id: RequestId,
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
    SessionStart(SessionStart),
    TranscriptChunk(TranscriptChunk),
    /// End capture and compute the result. Answered once the result is in the durable log.
    SessionStop(SessionId),
    SessionStatus(SessionId),
    /// Ask for result records with a sequence number greater than `after`.
    Sync(SyncCursor),
    /// The host has durably stored every record up to and including `upto`.
    SyncAck(Ack),
    UploadBegin(UploadBegin),
    UploadChunk(UploadChunk),
    UploadStatus,
    UploadCommit,
    UploadConfirm,
    UploadRollback,
}

/// Device → host.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
// No allocator: messages are fixed-size values, so variants cannot be boxed.
#[allow(clippy::large_enum_variant)]
pub enum Response {
    DeviceInfo(DeviceInfo),
    Pong(u32),
    Session(SessionStatus),
    TranscriptAccepted(TranscriptAccepted),
    Records(RecordBatch),
    Acked(Ack),
    Upload(UploadStatus),
    Error(Error),
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Hello {
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

/// What a device can do, as bit flags.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Capabilities(pub u32);

impl Capabilities {
    pub const AUDIO: u32 = 1 << 0;
    pub const VIDEO: u32 = 1 << 1;
    pub const TEXT: u32 = 1 << 2;
    /// Inputs come from files, not capture hardware.
    pub const SIMULATED: u32 = 1 << 3;
    pub const GPU: u32 = 1 << 4;
    pub const MODEL_UPLOAD: u32 = 1 << 5;
    pub const KIOSK: u32 = 1 << 6;

    pub const fn has(self, flag: u32) -> bool {
        self.0 & flag == flag
    }
}

#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum SlotState {
    Empty,
    /// Running and confirmed.
    Active,
    /// Uploaded and committed, on trial until confirmed.
    Trial,
    /// Uploaded, not yet committed.
    Staged,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ModelSlot {
    pub slot: u8,
    pub state: SlotState,
    pub model_version: ShortStr,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct DeviceInfo {
    pub protocol_version: u16,
    pub device_id: ShortStr,
    pub board: ShortStr,
    pub firmware_version: ShortStr,
    pub slots: Vec<ModelSlot, 2>,
    pub active_model_version: ShortStr,
    pub feature_schema: SchemaHash,
    pub capabilities: Capabilities,
    /// Highest sequence number in the device's result log (0 = empty).
    pub last_result_seq: u64,
}

/// Which modalities a session uses or a result saw.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Modalities(pub u8);

impl Modalities {
    pub const AUDIO: u8 = 1 << 0;
    pub const VIDEO: u8 = 1 << 1;
    pub const TEXT: u8 = 1 << 2;
    pub const ALL: Modalities = Modalities(Self::AUDIO | Self::VIDEO | Self::TEXT);

    pub const fn has(self, flag: u8) -> bool {
        self.0 & flag == flag
    }
}

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
pub enum Speaker {
    Participant,
    Interviewer,
}

/// One piece of one utterance. Utterances are numbered from 0 within a session; an utterance
/// longer than [`MAX_TEXT`] bytes is sent as several parts, numbered from 0, the last with
/// `last_part` set. Re-sending a part that was already accepted is harmless.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct TranscriptChunk {
    pub session: SessionId,
    pub utterance: u32,
    pub part: u16,
    pub last_part: bool,
    pub start_ms: u32,
    pub end_ms: u32,
    pub speaker: Speaker,
    pub text: String<MAX_TEXT>,
}

#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct TranscriptAccepted {
    pub session: SessionId,
    /// Complete utterances the device holds for this session.
    pub utterances: u32,
}

#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum SessionState {
    Capturing,
    Processing,
    /// The result is in the device's log under this sequence number.
    Done {
        seq: u64,
    },
    Failed(ErrorCode),
}

#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct SessionStatus {
    pub session: SessionId,
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
    pub session: SessionId,
    pub label: ShortStr,
    pub started_ms: u64,
    pub finished_ms: u64,
    /// Time spent on features + inference, ms.
    pub compute_ms: u32,
    pub p_depressed: f32,
    /// PHQ-8 estimate, 0–24.
    pub phq8: f32,
    /// Fusion gate weight of each modality (audio, video, text); absent modalities weigh 0.
    pub gates: PerModality,
    pub modalities: Modalities,
    pub model_version: ShortStr,
    pub feature_schema: SchemaHash,
    /// Quality flags, see [`ResultRecord::FLAG_LOW_QUALITY_AUDIO`] and friends.
    pub flags: u16,
}

impl ResultRecord {
    pub const FLAG_LOW_QUALITY_AUDIO: u16 = 1 << 0;
    pub const FLAG_NO_FACE: u16 = 1 << 1;
    pub const FLAG_SHORT_TRANSCRIPT: u16 = 1 << 2;
    /// The result was computed by a placeholder model (no trained MIMML bundle installed).
    pub const FLAG_PLACEHOLDER_MODEL: u16 = 1 << 3;
    pub const FLAG_SIMULATED: u16 = 1 << 4;
    /// `p_depressed` reached the model's decision threshold: refer for clinical assessment.
    pub const FLAG_SCREEN_POSITIVE: u16 = 1 << 5;
    /// The camera saw more than one face; the tracked one, or else the largest (then most
    /// central), was measured.
    pub const FLAG_SEVERAL_FACES: u16 = 1 << 6;
    /// Some video frames could not be decoded (corrupt JPEG, short camera buffer) and were
    /// skipped; the face measures come from the others.
    pub const FLAG_DAMAGED_VIDEO: u16 = 1 << 7;
}

#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct SyncCursor {
    pub after: u64,
    /// At most this many records (capped at [`MAX_RECORDS_PER_BATCH`]).
    pub max: u8,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct RecordBatch {
    pub records: Vec<ResultRecord, MAX_RECORDS_PER_BATCH>,
    /// Highest sequence number in the log: more to fetch while it exceeds the last record sent.
    pub last_seq: u64,
}

#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Ack {
    pub upto: u64,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct UploadBegin {
    /// The bundle manifest (TOML), as signed by the flashing tool.
    pub manifest: Vec<u8, 1024>,
    pub total_size: u32,
    pub sha256: [u8; 32],
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct UploadChunk {
    pub offset: u32,
    pub data: Vec<u8, MAX_CHUNK>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct UploadStatus {
    /// The offset the device expects next (mcumgr style: an interrupted upload resumes here).
    pub next_offset: u32,
    pub total_size: u32,
    pub slot: ModelSlot,
}

/// Typed error codes. A response error carries one plus a short human-readable detail.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum ErrorCode {
    /// The host's protocol version is not spoken; `supported` is the device's.
    UnsupportedVersion {
        supported: u16,
    },
    /// A request other than Hello arrived before Hello.
    HelloFirst,
    UnknownSession,
    /// A session is already running; stop it first.
    SessionActive,
    /// The session is not capturing any more (e.g. transcript pushed after stop).
    SessionNotCapturing,
    TranscriptOutOfOrder,
    /// A required input (audio, video, transcript) could not be read or is unusable.
    BadInput,
    FeatureFailure,
    ModelFailure,
    Storage,
    UploadOutOfOrder {
        expected: u32,
    },
    UploadChecksum,
    NotImplemented,
    Internal,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Error {
    pub code: ErrorCode,
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
