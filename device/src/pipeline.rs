//! A finished session's media and words → the screening result.
//!
//! [`SessionPipeline`] is the one place a result is computed: face tracking over captured frames
//! (when capture left frames rather than landmarks), [`features::extract_session`] with the
//! device's voice-activity detector and sentence encoder, the quality flags, and the model. It
//! knows nothing of the wire or of how the session was started (host or kiosk): it takes a
//! [`Job`] and gives a [`ResultRecord`] whose sequence number the log assigns.
//!
//! [`Pipeline`] is the seam the session logic runs it through, on a worker thread
//! ([`crate::session::Sessions`]); tests of the session state machine use a fake.

use std::time::Instant;

use features::SessionInputs;
use features::text::Utterance;
use protocol::{Modalities, ResultFlags, ResultRecord, SchemaHash, SessionId, ShortStr, truncated};
use runtime::Model;

use crate::capture::{Captured, Video};

/// Everything a stopped session hands to the pipeline.
#[derive(Debug)]
pub struct Job {
    /// The session.
    pub session: SessionId,
    /// The operator's label.
    pub label: ShortStr,
    /// Session start, Unix ms.
    pub started_ms: u64,
    /// How long the session ran on the device's clock, ms.
    pub captured_ms: u32,
    /// What capture produced.
    pub captured: Captured,
    /// The complete utterances pushed (or transcribed), or the kiosk's answer windows.
    pub utterances: Vec<Utterance>,
    /// What the session's starter adds to the result: the kiosk's questionnaire and flags.
    pub extra: Extra,
    /// Keep the raw media for research (the patient consented and the device keeps media).
    pub keep: Option<KeepMedia>,
}

/// Where one session's research media go: written into `spool` (a tmpfs) while the session is
/// captured and computed, moved to `media` (the data directory) once its features exist.
#[derive(Debug, Clone, PartialEq)]
pub struct KeepMedia {
    /// The session's folder in the spool.
    pub spool: std::path::PathBuf,
    /// The session's folder among the kept media.
    pub media: std::path::PathBuf,
}

impl KeepMedia {
    /// Deletes what the session wrote so far (it ended without a result: nothing is kept).
    pub fn discard(&self) {
        let _ = std::fs::remove_dir_all(&self.spool);
    }

    /// Writes the recording (when the capture handed over samples; a live microphone wrote
    /// its own as it recorded) and moves the session's folder from the spool to the kept media;
    /// true when the media are kept. On failure nothing is left behind (logged).
    fn commit(&self, audio: Option<&crate::capture::Audio>) -> bool {
        let kept = std::fs::create_dir_all(&self.spool)
            .map_err(failed("creating", &self.spool))
            .and_then(|()| match audio {
                Some(crate::capture::Audio::Clip(clip)) => {
                    let path = self.spool.join("audio.wav");
                    crate::capture::write_wav(&path, clip).map_err(failed("writing", &path))
                }
                _ => Ok(()),
            })
            .and_then(|()| {
                let parent = self.media.parent().unwrap_or(&self.media);
                std::fs::create_dir_all(parent).map_err(failed("creating", parent))?;
                move_dir(&self.spool, &self.media)
            });
        if let Err(e) = &kept {
            tracing::error!("research media not kept: {}", runtime::chain(e));
            for dir in [&self.spool, &self.media] {
                let _ = std::fs::remove_dir_all(dir);
            }
        }
        kept.is_ok()
    }
}

/// A step of keeping research media that failed.
#[derive(Debug, thiserror::Error)]
#[error("{what} {}", path.display())]
struct MediaError {
    what: &'static str,
    path: std::path::PathBuf,
    #[source]
    source: crate::BoxError,
}

fn failed<E: Into<crate::BoxError>>(what: &'static str, path: &std::path::Path) -> impl FnOnce(E) -> MediaError {
    let path = path.to_owned();
    move |e| MediaError { what, path, source: e.into() }
}

/// Moves a folder: a rename, or (the spool is another file system) a copy and delete.
fn move_dir(from: &std::path::Path, to: &std::path::Path) -> Result<(), MediaError> {
    if std::fs::rename(from, to).is_ok() {
        return Ok(());
    }
    let err =
        |e: std::io::Error| MediaError { what: "moving the spooled media to", path: to.to_owned(), source: e.into() };
    std::fs::create_dir_all(to).map_err(err)?;
    for entry in std::fs::read_dir(from).map_err(err)? {
        let entry = entry.map_err(err)?;
        std::fs::copy(entry.path(), to.join(entry.file_name())).map_err(err)?;
    }
    std::fs::remove_dir_all(from).map_err(err)
}

/// What the starter of a session adds to its result.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Extra {
    /// The questionnaire the patient answered.
    pub questionnaire: Option<protocol::Questionnaire>,
    /// Flags of the session's making ([`ResultFlags::KIOSK`], [`ResultFlags::URGENT`],
    /// [`ResultFlags::ENDED_EARLY`], [`ResultFlags::MEDIA_KEPT`]).
    pub flags: ResultFlags,
}

/// Why a session has no result.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// The model could not score the features.
    #[error("the model could not score session {session}")]
    Model {
        /// The session.
        session: SessionId,
        #[source]
        source: runtime::ModelError,
    },
    /// The pipeline panicked (a defect); the worker survives it.
    #[error("computing session {session} panicked: {message}")]
    Panicked {
        /// The session.
        session: SessionId,
        /// The panic message.
        message: String,
    },
}

/// Computes a session's result. Runs on the session worker.
pub trait Pipeline: Send {
    /// The version of the model behind the results.
    fn model_version(&self) -> &str;
    /// The feature schema the results are computed with.
    fn feature_schema(&self) -> SchemaHash;
    /// The session's result, with `seq` 0 (the log assigns it).
    fn process(&mut self, job: Job) -> Result<ResultRecord, PipelineError>;
    /// Computes later sessions with `loaded` (a flashed model, or the one a rollback returns to).
    fn replace_model(&mut self, loaded: crate::LoadedModel) -> Result<(), TextEncoderMismatch>;
}

/// How much usable signal makes a modality present. Below a threshold the modality is left out
/// of the result (absent, flagged); a session below every threshold gets no screen at all
/// (`INSUFFICIENT_DATA`). A dead microphone or a camera that saw a face for a moment must not
/// produce a confident screen.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Presence {
    /// Seconds of speech (audio above the session's speech floor) for audio (default 5 s).
    pub min_speech_s: f32,
    /// Seconds of video with a tracked face for video (default 5 s).
    pub min_face_s: f32,
    /// Participant words for text (default 10).
    pub min_words: u32,
}

impl Default for Presence {
    fn default() -> Presence {
        Presence { min_speech_s: 5.0, min_face_s: 5.0, min_words: 10 }
    }
}

impl Presence {
    /// Leaves out each modality with too little signal, flagging why.
    fn apply(&self, f: &mut features::SessionFeatures) {
        if f.audio.is_some() && f.usable.speech_s < self.min_speech_s {
            tracing::info!(speech_s = f.usable.speech_s, min = self.min_speech_s, "too little speech: audio absent");
            f.audio = None;
            f.flags |= ResultFlags::TOO_LITTLE_SPEECH;
        }
        if f.video.is_some() && f.usable.face_s < self.min_face_s {
            tracing::info!(face_s = f.usable.face_s, min = self.min_face_s, "too little face: video absent");
            f.video = None;
            f.flags |= ResultFlags::NO_FACE;
        }
        if f.text.is_some() && f.usable.words < self.min_words {
            tracing::info!(words = f.usable.words, min = self.min_words, "too few participant words: text absent");
            f.text = None;
            f.flags |= ResultFlags::SHORT_TRANSCRIPT;
        }
    }
}

/// The device's pipeline: front-ends and model.
pub struct SessionPipeline {
    model: Box<dyn Model>,
    /// Segments audio into utterances when the transcript has no timing (energy when `None`).
    vad: Option<Box<dyn features::vad::VoiceActivity>>,
    /// The text features' sentence encoder when the model was trained with one.
    text_encoder: Option<Box<dyn features::text::SentenceEncoder>>,
    /// Frames → landmarks; without it video is reported absent.
    face: Option<vision::face::FaceFrontEnd>,
    /// Transcribes recorded speech when no transcript was pushed; text is absent without it.
    transcriber: Option<Box<dyn features::text::Transcriber>>,
    /// Inputs come from files: results are flagged as simulated.
    simulated: bool,
    presence: Presence,
}

impl std::fmt::Debug for SessionPipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionPipeline")
            .field("model", &self.model.version())
            .field("vad", &self.vad.as_ref().map(|v| v.name()))
            .field("text_encoder", &self.text_encoder.as_ref().map(|e| e.embedding()))
            .field("face", &self.face.is_some())
            .field("transcriber", &self.transcriber.as_ref().map(|t| t.name()))
            .field("simulated", &self.simulated)
            .finish()
    }
}

/// Whether `encoder` computes the text embedding `model` was trained on (none: the hashed one),
/// and whether the device can give it the transcripts it was trained on.
fn fits(
    model: &dyn Model,
    encoder: Option<&dyn features::text::SentenceEncoder>,
    transcribes: bool,
) -> Result<(), TextEncoderMismatch> {
    let has = encoder.map_or(features::text::TextEmbedding::Hashed, |e| e.embedding());
    let needs = model.text_embedding();
    if has != needs {
        return Err(TextEncoderMismatch::Embedding { needs, has });
    }
    if model.transcript_source() == features::text::TranscriptSource::Asr && !transcribes {
        return Err(TextEncoderMismatch::NoTranscriber);
    }
    Ok(())
}

/// The model needs text front-ends the device does not have.
#[derive(Debug, thiserror::Error)]
pub enum TextEncoderMismatch {
    /// It needs another sentence encoder than the device has (or none where it has one).
    #[error("the model needs the {needs} text embedding, the device has {has}")]
    Embedding {
        /// What the model was trained with.
        needs: features::text::TextEmbedding,
        /// What the device would compute.
        has: features::text::TextEmbedding,
    },
    /// It was trained on machine transcripts and the device does not transcribe.
    #[error("the model was trained on machine transcripts (asr); this device does not transcribe (run with --asr)")]
    NoTranscriber,
}

impl SessionPipeline {
    /// A pipeline running `model`; `simulated` flags every result as computed from files.
    pub fn new(model: Box<dyn Model>, simulated: bool) -> SessionPipeline {
        SessionPipeline {
            model,
            vad: None,
            text_encoder: None,
            face: None,
            transcriber: None,
            simulated,
            presence: Presence::default(),
        }
    }

    /// Uses `face` to turn captured frames into landmarks (video is absent without one).
    pub fn with_face(mut self, face: Option<vision::face::FaceFrontEnd>) -> Self {
        self.face = face;
        self
    }

    /// Uses `encoder` for the text features. It must be the embedding the model was trained
    /// with (none = the built-in hashed one); anything else is refused before any session runs.
    pub fn with_text_encoder(
        mut self,
        encoder: Option<Box<dyn features::text::SentenceEncoder>>,
    ) -> Result<Self, TextEncoderMismatch> {
        fits(self.model.as_ref(), encoder.as_deref(), self.transcriber.is_some())?;
        self.text_encoder = encoder;
        Ok(self)
    }

    /// Uses `transcriber` for the text of sessions whose transcript has no participant words.
    /// Call it before [`with_text_encoder`](Self::with_text_encoder), which refuses a model
    /// trained on machine transcripts when there is none.
    pub fn with_transcriber(mut self, transcriber: Option<Box<dyn features::text::Transcriber>>) -> Self {
        self.transcriber = transcriber;
        self
    }

    /// Uses `presence` to decide which modalities have enough signal.
    pub fn with_presence(mut self, presence: Presence) -> Self {
        self.presence = presence;
        self
    }

    /// Uses `vad` to segment audio whose transcript has no timing.
    pub fn with_vad(mut self, vad: Option<Box<dyn features::vad::VoiceActivity>>) -> Self {
        self.vad = vad;
        self
    }
}

/// The modalities with at least one segment of features.
fn present(f: &features::SessionFeatures) -> Modalities {
    let mut m = Modalities::empty();
    m.set(Modalities::AUDIO, f.audio.as_ref().is_some_and(|s| !s.is_empty()));
    m.set(Modalities::VIDEO, f.video.as_ref().is_some_and(|s| !s.is_empty()));
    m.set(Modalities::TEXT, f.text.as_ref().is_some_and(|s| !s.is_empty()));
    m
}

impl Pipeline for SessionPipeline {
    fn model_version(&self) -> &str {
        self.model.version()
    }

    fn replace_model(&mut self, loaded: crate::LoadedModel) -> Result<(), TextEncoderMismatch> {
        fits(loaded.model.as_ref(), loaded.text_encoder.as_deref(), self.transcriber.is_some())?;
        self.model = loaded.model;
        self.text_encoder = loaded.text_encoder;
        Ok(())
    }

    fn feature_schema(&self) -> SchemaHash {
        self.model.feature_schema()
    }

    fn process(&mut self, job: Job) -> Result<ResultRecord, PipelineError> {
        let compute = Instant::now();
        let Job { session, label, started_ms, captured_ms, captured, utterances, extra, keep } = job;
        let tracked = match captured.video {
            Some(Video::Frames(mut frames)) => match self.face.as_mut() {
                Some(face) => {
                    let started = Instant::now();
                    let video = keep.as_ref().map(|k| k.spool.join("video.mjpeg"));
                    let (track, stats) = crate::capture::track_keeping(face, frames.as_mut(), video.as_deref());
                    tracing::debug!(seconds = started.elapsed().as_secs_f32(), "frames tracked");
                    Some((track, stats))
                }
                None => {
                    tracing::info!("video captured, but no face landmarker is loaded: video absent from the result");
                    None
                }
            },
            Some(Video::Tracked { track, stats }) => Some((track, stats)),
            None => None,
        };
        let mut flags = ResultFlags::empty();
        let landmarks = tracked.map(|(track, stats)| {
            tracing::info!(
                frames = stats.frames,
                with_face = stats.with_face,
                detections = stats.detections,
                several_faces = stats.several_faces,
                decode_errors = stats.decode_errors,
                "video front-end"
            );
            flags.set(ResultFlags::SEVERAL_FACES, stats.several_faces_in_view());
            flags.set(ResultFlags::DAMAGED_VIDEO, stats.damaged());
            flags.set(ResultFlags::CAMERA_LOST, stats.camera_lost);
            track
        });
        let mut feats = features::extract_session(&SessionInputs {
            audio: match &captured.audio {
                Some(crate::capture::Audio::Clip(c)) => Some(c),
                _ => None,
            },
            analysed_audio: match &captured.audio {
                Some(crate::capture::Audio::Analysed(a)) => Some(a),
                _ => None,
            },
            answer_audio: captured.answers.as_ref(),
            landmarks: landmarks.as_ref(),
            transcript: Some(&utterances),
            include_interviewer_text: false,
            vad: self.vad.as_deref(),
            text_encoder: self.text_encoder.as_deref(),
            transcriber: self.transcriber.as_deref(),
            transcripts: self.model.transcript_source(),
        });
        self.presence.apply(&mut feats);
        flags |= feats.flags;
        flags.set(ResultFlags::SIMULATED, self.simulated);
        flags.set(ResultFlags::PLACEHOLDER_MODEL, self.model.is_placeholder());
        flags |= extra.flags;
        if captured.failed.contains(Modalities::VIDEO) {
            flags |= ResultFlags::CAMERA_LOST | ResultFlags::NO_FACE;
        }
        if captured.failed.contains(Modalities::AUDIO) {
            flags |= ResultFlags::MIC_LOST;
        }
        flags.set(ResultFlags::MEDIA_KEPT, keep.is_some_and(|k| k.commit(captured.audio.as_ref())));
        let modalities = present(&feats);
        let prediction = if modalities.is_empty() {
            // Nothing to screen on: the record says so instead of carrying a number.
            tracing::warn!(session, usable = ?feats.usable, "insufficient data in every modality: no screen");
            flags |= ResultFlags::INSUFFICIENT_DATA;
            runtime::Prediction { p_depressed: 0.0, phq8: 0.0, gates: [0.0; 3] }
        } else {
            let p = self.model.predict(&feats).map_err(|source| PipelineError::Model { session, source })?;
            flags.set(ResultFlags::SCREEN_POSITIVE, p.p_depressed >= self.model.decision_threshold());
            p
        };
        Ok(ResultRecord {
            seq: 0,
            session,
            label,
            started_ms,
            finished_ms: started_ms.saturating_add(u64::from(captured.duration_ms.max(captured_ms))),
            compute_ms: u32::try_from(compute.elapsed().as_millis()).unwrap_or(u32::MAX),
            p_depressed: prediction.p_depressed,
            phq8: prediction.phq8,
            gates: prediction.gates,
            modalities,
            model_version: truncated(self.model.version()),
            feature_schema: self.model.feature_schema(),
            flags,
            questionnaire: extra.questionnaire,
        })
    }
}
