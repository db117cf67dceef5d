//! Where a session's audio and video come from.
//!
//! [`Capture`] is the seam between the session logic and the hardware. This build has
//! [`SimulatedCapture`] (files: a WAV and a folder of frames — `--simulate DIR`). The ALSA and
//! V4L2 backends arrive with the audio and video front-end issues, behind the `alsa` and `v4l`
//! cargo features; without them, `mimml-device run` requires `--simulate`.

use std::path::{Path, PathBuf};

use features::FeatureError;
use features::audio::{AudioClip, read_wav};
use features::video::{FrameDir, FrameSource};
use protocol::Modalities;

/// What one session captured.
pub struct Captured {
    pub audio: Option<AudioClip>,
    pub video: Option<Box<dyn FrameSource + Send>>,
    pub duration_ms: u32,
}

impl std::fmt::Debug for Captured {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Captured")
            .field("audio_s", &self.audio.as_ref().map(AudioClip::duration_s))
            .field("video", &self.video.is_some())
            .field("duration_ms", &self.duration_ms)
            .finish()
    }
}

pub trait Capture: Send {
    /// Modalities this backend can deliver.
    fn available(&self) -> Modalities;
    /// Starts capturing the requested modalities. Checks inputs up front: a missing or
    /// unreadable source is reported here, before the session starts.
    fn start(&mut self, want: Modalities) -> Result<(), FeatureError>;
    /// Ends capture and hands over what was captured.
    fn stop(&mut self) -> Result<Captured, FeatureError>;
}

/// File sources standing in for microphone and camera: `DIR/audio.wav` (16 kHz) and
/// `DIR/frames/` (with `video.toml`). Either may be missing; the modality is then absent.
#[derive(Debug)]
pub struct SimulatedCapture {
    dir: PathBuf,
    want: Modalities,
    audio: Option<AudioClip>,
}

impl SimulatedCapture {
    pub fn new(dir: &Path) -> Result<Self, FeatureError> {
        if !dir.is_dir() {
            return Err(FeatureError::Video {
                path: dir.display().to_string(),
                detail: "simulation folder does not exist".into(),
            });
        }
        Ok(SimulatedCapture { dir: dir.to_owned(), want: Modalities::default(), audio: None })
    }

    fn wav(&self) -> PathBuf {
        self.dir.join("audio.wav")
    }

    fn frames(&self) -> PathBuf {
        self.dir.join("frames")
    }
}

impl Capture for SimulatedCapture {
    fn available(&self) -> Modalities {
        let mut m = Modalities::TEXT;
        if self.wav().exists() {
            m |= Modalities::AUDIO;
        }
        if self.frames().is_dir() {
            m |= Modalities::VIDEO;
        }
        Modalities(m)
    }

    fn start(&mut self, want: Modalities) -> Result<(), FeatureError> {
        let have = self.available();
        self.want = Modalities(want.0 & have.0);
        self.audio = if self.want.has(Modalities::AUDIO) { Some(read_wav(&self.wav())?) } else { None };
        if self.want.has(Modalities::VIDEO) {
            FrameDir::open(&self.frames())?;
        }
        Ok(())
    }

    fn stop(&mut self) -> Result<Captured, FeatureError> {
        let audio = self.audio.take();
        let video: Option<Box<dyn FrameSource + Send>> =
            if self.want.has(Modalities::VIDEO) { Some(Box::new(FrameDir::open(&self.frames())?)) } else { None };
        let duration_ms = audio.as_ref().map_or(0, |a| (a.duration_s() * 1000.0) as u32);
        Ok(Captured { audio, video, duration_ms })
    }
}
