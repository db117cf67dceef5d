//! Where a session's audio and video come from.
//!
//! [`Capture`] is the seam between the session logic and the hardware. [`SimulatedCapture`] takes
//! files (a WAV and a folder of frames — `--simulate DIR`); the frames go through the face
//! front-end after the session. [`live::LiveCapture`] records a [`live::Microphone`] and runs a
//! [`live::Camera`]'s frames through the face front-end during the session. The hardware behind
//! them: [`alsa::AlsaMicrophone`] (feature `alsa`) and [`v4l::V4lCamera`] (feature `v4l`);
//! `mimml-device mic` and `mimml-device camera` check each on its own.

#[cfg(feature = "alsa")]
pub mod alsa;
pub mod live;
#[cfg(feature = "v4l")]
pub mod v4l;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use features::FeatureError;
use features::audio::{Analyser, Analysis, AnswerAudio, AudioClip, read_audio};
use features::landmarks::LandmarkTrack;
use protocol::Modalities;
use vision::face::VideoStats;
use vision::video::{FrameDir, FrameSource, VideoError};

/// A cause carried across threads (ALSA, V4L2 and thread errors).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why capture could not start or stop. Per-frame camera failures are not errors here: the
/// face front-end counts them and the session goes on.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// The microphone could not be opened, configured or read.
    #[error("microphone {device}")]
    Microphone {
        /// The ALSA PCM.
        device: String,
        #[source]
        source: BoxError,
    },
    /// The camera could not be opened.
    #[error("camera {device}")]
    Camera {
        /// The camera as the log names it.
        device: String,
        #[source]
        source: BoxError,
    },
    /// The recorded audio could not be brought to the front-end's rate.
    #[error("recorded audio")]
    Audio(#[source] FeatureError),
    /// A simulated session's recording could not be read.
    #[error("simulated session {path}: audio.wav")]
    Wav {
        /// The simulation folder.
        path: PathBuf,
        #[source]
        source: FeatureError,
    },
    /// A simulated session's frames could not be read.
    #[error("simulated session {path}: frames")]
    Frames {
        /// The simulation folder.
        path: PathBuf,
        #[source]
        source: Box<VideoError>,
    },
    /// The simulation folder does not exist.
    #[error("simulation folder {0} does not exist")]
    NoSimulationFolder(PathBuf),
    /// A capture thread could not be started or ended before reporting.
    #[error("the {0} capture thread could not start or ended early")]
    Thread(&'static str),
}

/// A session's video as the capture hands it over.
pub enum Video {
    /// Frames still to go through the face front-end (file sources).
    Frames(Box<dyn FrameSource + Send>),
    /// Landmarks tracked while the session ran (cameras: frames are never stored).
    Tracked { track: LandmarkTrack, stats: VideoStats },
}

impl std::fmt::Debug for Video {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Video::Frames(_) => f.write_str("Frames"),
            Video::Tracked { stats, .. } => f.debug_struct("Tracked").field("stats", stats).finish_non_exhaustive(),
        }
    }
}

/// A session's audio as the capture hands it over.
#[derive(Debug)]
pub enum Audio {
    /// The samples, at the front-end's rate (file sources; microphones at another rate).
    Clip(AudioClip),
    /// Analysed by the audio front-end as it was recorded: only its frames were kept.
    Analysed(Analysis),
}

impl Audio {
    /// Length, ms.
    pub fn duration_ms(&self) -> u32 {
        match self {
            Audio::Clip(c) => (c.duration_s() * 1000.0) as u32,
            Audio::Analysed(a) => a.duration_ms,
        }
    }
}

/// Where a microphone's samples go as they arrive: the level meter (the last 100 ms), then
/// either the audio front-end (at 16 kHz only its frames are kept: a 10-minute session is 6 MB
/// of frames instead of 38 MB of samples) or, at another rate or for a recording wanted whole,
/// the samples; and, when research media are kept, a WAV file of exactly what was recorded.
pub struct AudioSink {
    rate: u32,
    analyser: Option<Analyser>,
    samples: Vec<f32>,
    keep_samples: bool,
    tail: std::collections::VecDeque<f32>,
    level: Arc<AtomicU32>,
    wav: Option<(PathBuf, hound::WavWriter<std::io::BufWriter<std::fs::File>>)>,
    wav_path: Option<PathBuf>,
    /// The answer windows' samples, kept while the gate is open (for transcription).
    answers: Option<AnswerKeeper>,
}

/// Keeps the samples that arrive while an answer window is open ([`Capture::mark_answer`]).
#[derive(Debug)]
struct AnswerKeeper {
    gate: Arc<AtomicBool>,
    kept: AnswerAudio,
    open: bool,
    /// Samples seen so far: the recording's clock.
    seen: u64,
}

/// The most answer samples a session keeps: 10 minutes at 16 kHz (38 MB). A kiosk's answers
/// are a few minutes together; what comes beyond this is not transcribed (logged).
pub const MAX_ANSWER_SAMPLES: usize = 10 * 60 * features::audio::SAMPLE_RATE as usize;

impl AnswerKeeper {
    fn push(&mut self, chunk: &[f32]) {
        let open = self.gate.load(Ordering::Relaxed);
        if open && !self.open {
            let start_ms =
                u32::try_from(self.seen * 1000 / u64::from(features::audio::SAMPLE_RATE)).unwrap_or(u32::MAX);
            self.kept.windows.push((start_ms, Vec::new()));
        }
        self.open = open;
        self.seen += chunk.len() as u64;
        if !open {
            return;
        }
        let room = MAX_ANSWER_SAMPLES.saturating_sub(self.kept.samples());
        if room < chunk.len() && room > 0 {
            tracing::warn!(
                max_s = MAX_ANSWER_SAMPLES / features::audio::SAMPLE_RATE as usize,
                "answer samples full: later answers are not transcribed"
            );
        }
        if let Some((_, w)) = self.kept.windows.last_mut() {
            w.extend_from_slice(&chunk[..room.min(chunk.len())]);
        }
    }
}

impl std::fmt::Debug for AudioSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AudioSink")
            .field("rate", &self.rate)
            .field("keep_samples", &self.keep_samples)
            .field("wav", &self.wav.as_ref().map(|(p, _)| p).or(self.wav_path.as_ref()))
            .finish_non_exhaustive()
    }
}

impl AudioSink {
    /// A session's sink: analysed as it arrives, the meter in `level`, the recording also
    /// written to `wav` (research media) when given.
    pub fn analysing(level: Arc<AtomicU32>, wav: Option<PathBuf>) -> AudioSink {
        AudioSink {
            rate: features::audio::SAMPLE_RATE,
            analyser: None,
            samples: Vec::new(),
            keep_samples: false,
            tail: std::collections::VecDeque::new(),
            level,
            wav: None,
            wav_path: wav,
            answers: None,
        }
    }

    /// Also keeps the samples that arrive while `gate` is open (answer windows), at 16 kHz; at
    /// another rate every sample is kept anyway.
    pub fn keeping_answers(mut self, gate: Arc<AtomicBool>) -> AudioSink {
        self.answers = Some(AnswerKeeper { gate, kept: AnswerAudio::default(), open: false, seen: 0 });
        self
    }

    /// The answer windows' samples kept so far (none unless [`keeping_answers`](Self::keeping_answers)
    /// at 16 kHz).
    pub fn take_answers(&mut self) -> Option<AnswerAudio> {
        self.analyses().then(|| self.answers.take().map(|a| a.kept)).flatten()
    }

    /// Whether the samples go to the audio front-end as they arrive (16 kHz, not kept whole)
    /// rather than being kept.
    fn analyses(&self) -> bool {
        !self.keep_samples && self.rate == features::audio::SAMPLE_RATE
    }

    /// A sink that keeps every sample (a microphone check: `mimml-device mic`).
    pub fn recording(level: Arc<AtomicU32>) -> AudioSink {
        AudioSink { keep_samples: true, ..AudioSink::analysing(level, None) }
    }

    /// The rate the device granted; before the first samples.
    pub fn set_rate(&mut self, rate: u32) {
        self.rate = rate;
    }

    /// Takes the next samples (−1…1).
    pub fn push(&mut self, chunk: &[f32]) {
        let window = (self.rate / 10) as usize;
        self.tail.extend(chunk.iter().copied());
        let extra = self.tail.len().saturating_sub(window);
        self.tail.drain(..extra);
        self.level.store(level_of(self.tail.make_contiguous()).to_bits(), Ordering::Relaxed);
        if let Some(path) = self.wav_path.take() {
            let created = path.parent().map_or(Ok(()), std::fs::create_dir_all).map_err(hound::Error::from);
            match created.and_then(|()| hound::WavWriter::create(&path, mono16(self.rate))) {
                Ok(w) => self.wav = Some((path, w)),
                Err(e) => tracing::error!(path = %path.display(), "research media: recording not kept: {e}"),
            }
        }
        if let Some((path, w)) = &mut self.wav
            && let Err(e) = chunk.iter().try_for_each(|&v| w.write_sample(to_i16(v)))
        {
            tracing::error!(path = %path.display(), "research media: recording no longer kept: {e}");
            self.wav = None;
        }
        if !self.analyses() {
            self.samples.extend_from_slice(chunk);
        } else {
            self.analyser.get_or_insert_with(Analyser::default).push(chunk);
            if let Some(a) = &mut self.answers {
                a.push(chunk);
            }
        }
    }

    /// What was recorded; the WAV file, if any, is complete.
    pub fn finish(mut self) -> Result<Audio, CaptureError> {
        if let Some((path, w)) = self.wav.take()
            && let Err(e) = w.finalize()
        {
            tracing::error!(path = %path.display(), "research media: recording not kept whole: {e}");
        }
        if let Some(a) = self.analyser.take() {
            return Ok(Audio::Analysed(a.finish()));
        }
        let clip = AudioClip { rate: self.rate, samples: std::mem::take(&mut self.samples) };
        Ok(Audio::Clip(clip.to_frontend_rate().map_err(CaptureError::Audio)?))
    }
}

/// The recordings' WAV format: 16-bit mono at `rate`.
fn mono16(rate: u32) -> hound::WavSpec {
    hound::WavSpec { channels: 1, sample_rate: rate, bits_per_sample: 16, sample_format: hound::SampleFormat::Int }
}

/// A sample as 16-bit PCM (the inverse of reading `v / 32768`).
fn to_i16(v: f32) -> i16 {
    (v * 32768.0).round().clamp(-32768.0, 32767.0) as i16
}

/// Writes `clip` as 16-bit mono WAV.
pub fn write_wav(path: &Path, clip: &AudioClip) -> Result<(), hound::Error> {
    let mut w = hound::WavWriter::create(path, mono16(clip.rate))?;
    for &v in &clip.samples {
        w.write_sample(to_i16(v))?;
    }
    w.finalize()
}

/// What one session captured.
pub struct Captured {
    /// The recording.
    pub audio: Option<Audio>,
    /// Frames or tracked landmarks.
    pub video: Option<Video>,
    /// How long capture ran (or the files last), ms.
    pub duration_ms: u32,
    /// Requested modalities whose device would not open or failed: the session went on without
    /// them (a frozen camera is in the video's statistics instead).
    pub failed: Modalities,
    /// The answer windows' samples, where the audio was analysed as it arrived and the device
    /// transcribes ([`Capture::mark_answer`]).
    pub answers: Option<AnswerAudio>,
}

impl std::fmt::Debug for Captured {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Captured")
            .field("audio_ms", &self.audio.as_ref().map(Audio::duration_ms))
            .field("video", &self.video.is_some())
            .field("duration_ms", &self.duration_ms)
            .field("failed", &self.failed)
            .field("answer_samples", &self.answers.as_ref().map(AnswerAudio::samples))
            .finish()
    }
}

/// The seam between the session logic and the capture hardware.
pub trait Capture: Send {
    /// Modalities this backend can deliver.
    fn available(&self) -> Modalities;
    /// Starts capturing the requested modalities. Checks inputs up front: a session goes on
    /// without a device that does not open as long as another requested one works (the result
    /// says which failed: [`Captured::failed`]); with none working it is an error here, before
    /// the session starts.
    fn start(&mut self, want: Modalities) -> Result<(), CaptureError>;
    /// Ends capture and hands over what was captured.
    fn stop(&mut self) -> Result<Captured, CaptureError>;
    /// The microphone's level now, while capturing ([`level_of`] the last 100 ms); `None` when
    /// this capture cannot tell (no microphone, not capturing).
    fn level(&self) -> Option<f32> {
        None
    }
    /// Keeps the next session's raw media in `dir` (research media; `None`: keep nothing):
    /// `audio.wav` and `video.mjpeg`. A capture that hands over samples and frames rather than
    /// frames' landmarks and an analysed recording keeps nothing itself: the pipeline keeps
    /// those.
    fn keep_media(&mut self, dir: Option<PathBuf>) {
        let _ = dir;
    }
    /// Keeps the samples of the answer windows ([`mark_answer`](Self::mark_answer)) for the
    /// device's transcription, where the recording is analysed as it arrives and its samples
    /// are not kept. A capture that hands over the samples ignores it.
    fn keep_answers(&mut self, keep: bool) {
        let _ = keep;
    }
    /// An answer window opens (`true`) or closes, now.
    fn mark_answer(&self, open: bool) {
        let _ = open;
    }
}

/// Tracks `source` through `face`, keeping its frames as Motion-JPEG in `keep` when given (research
/// media).
pub fn track_keeping(
    face: &mut vision::face::FaceFrontEnd,
    source: &mut dyn FrameSource,
    keep: Option<&Path>,
) -> (features::landmarks::LandmarkTrack, VideoStats) {
    match keep {
        Some(path) => {
            let mut kept = KeepFrames::new(source, path);
            let tracked = face.track(&mut kept);
            kept.finish();
            tracked
        }
        None => face.track(source),
    }
}

/// Research media: a session's frames written on as Motion-JPEG (greyscale, as the face
/// front-end sees them) while they pass to the front-end. A frame that cannot be written stops
/// the keeping (logged), never the session.
pub struct KeepFrames<'a> {
    inner: &'a mut dyn FrameSource,
    out: Option<std::io::BufWriter<std::fs::File>>,
    path: PathBuf,
}

impl std::fmt::Debug for KeepFrames<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeepFrames").field("path", &self.path).field("keeping", &self.out.is_some()).finish()
    }
}

impl<'a> KeepFrames<'a> {
    /// Tees `inner` into `path` (created, with its folder).
    pub fn new(inner: &'a mut dyn FrameSource, path: &Path) -> KeepFrames<'a> {
        let out = path
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| std::fs::File::create(path))
            .map(std::io::BufWriter::new)
            .inspect_err(|e| tracing::error!(path = %path.display(), "research media: frames not kept: {e}"))
            .ok();
        KeepFrames { inner, out, path: path.to_owned() }
    }

    /// Flushes the file; false when the frames were not all kept.
    pub fn finish(mut self) -> bool {
        use std::io::Write;
        self.out.take().is_some_and(|mut o| {
            o.flush().inspect_err(|e| tracing::error!(path = %self.path.display(), "research media: {e}")).is_ok()
        })
    }
}

impl FrameSource for KeepFrames<'_> {
    fn fps(&self) -> f32 {
        self.inner.fps()
    }

    fn next_frame(&mut self) -> Option<Result<image::GrayImage, VideoError>> {
        let frame = self.inner.next_frame()?;
        if let (Ok(img), Some(out)) = (&frame, self.out.as_mut()) {
            let written = image::codecs::jpeg::JpegEncoder::new_with_quality(out, 90).encode_image(img);
            if let Err(e) = written {
                tracing::error!(path = %self.path.display(), "research media: frames no longer kept: {e}");
                self.out = None;
            }
        }
        Some(frame)
    }

    fn timestamp_ms(&self) -> Option<u32> {
        self.inner.timestamp_ms()
    }
}

/// A level for a meter and a voice-activity gate: the RMS of `samples` in dBFS, mapped from
/// −60 dBFS (and below) = 0 to 0 dBFS = 1.
pub fn level_of(samples: &[f32]) -> f32 {
    if samples.is_empty() {
        return 0.0;
    }
    let power = samples.iter().map(|s| f64::from(*s).powi(2)).sum::<f64>() / samples.len() as f64;
    let db = 10.0 * power.max(1e-12).log10();
    ((db + 60.0) / 60.0).clamp(0.0, 1.0) as f32
}

/// File sources standing in for microphone and camera: `DIR/audio.wav` (16 kHz) and
/// `DIR/frames/` (with `video.toml`). Either may be missing; the modality is then absent. A
/// `frames/` folder without a single frame counts as missing (one rule for "no video").
#[derive(Debug)]
pub struct SimulatedCapture {
    dir: PathBuf,
    want: Modalities,
    audio: Option<AudioClip>,
    /// When capture started: the file plays from then on, in real time, for [`Capture::level`].
    started: Option<std::time::Instant>,
}

impl SimulatedCapture {
    /// File sources in `dir`, which must exist.
    pub fn new(dir: &Path) -> Result<Self, CaptureError> {
        if !dir.is_dir() {
            return Err(CaptureError::NoSimulationFolder(dir.to_owned()));
        }
        Ok(SimulatedCapture { dir: dir.to_owned(), want: Modalities::default(), audio: None, started: None })
    }

    fn wav(&self) -> PathBuf {
        self.dir.join("audio.wav")
    }

    fn frames(&self) -> PathBuf {
        self.dir.join("frames")
    }

    /// `frames/` holds at least one frame image.
    fn has_frames(&self) -> bool {
        std::fs::read_dir(self.frames()).is_ok_and(|entries| {
            entries.flatten().any(|e| {
                let p = e.path();
                p.extension()
                    .and_then(|x| x.to_str())
                    .is_some_and(|x| ["jpg", "jpeg", "png"].iter().any(|want| x.eq_ignore_ascii_case(want)))
            })
        })
    }

    fn wav_error(&self, source: FeatureError) -> CaptureError {
        CaptureError::Wav { path: self.dir.clone(), source }
    }

    fn frames_error(&self, source: VideoError) -> CaptureError {
        CaptureError::Frames { path: self.dir.clone(), source: Box::new(source) }
    }
}

impl Capture for SimulatedCapture {
    fn available(&self) -> Modalities {
        let mut m = Modalities::TEXT;
        if self.wav().exists() {
            m |= Modalities::AUDIO;
        }
        if self.has_frames() {
            m |= Modalities::VIDEO;
        }
        m
    }

    fn start(&mut self, want: Modalities) -> Result<(), CaptureError> {
        let have = self.available();
        self.want = want & have;
        self.audio = if self.want.contains(Modalities::AUDIO) {
            Some(read_audio(&self.wav()).map_err(|e| self.wav_error(e))?)
        } else {
            None
        };
        if self.want.contains(Modalities::VIDEO) {
            FrameDir::open(&self.frames()).map_err(|e| self.frames_error(e))?;
        }
        self.started = Some(std::time::Instant::now());
        Ok(())
    }

    fn stop(&mut self) -> Result<Captured, CaptureError> {
        self.started = None;
        let audio = self.audio.take().map(Audio::Clip);
        let video = if self.want.contains(Modalities::VIDEO) {
            Some(Video::Frames(Box::new(FrameDir::open(&self.frames()).map_err(|e| self.frames_error(e))?)))
        } else {
            None
        };
        let duration_ms = audio.as_ref().map_or(0, Audio::duration_ms);
        Ok(Captured { audio, video, duration_ms, failed: Modalities::empty(), answers: None })
    }

    /// The file's level at the time since start, as if it played live (silence past its end).
    fn level(&self) -> Option<f32> {
        let (audio, started) = (self.audio.as_ref()?, self.started?);
        let end = (started.elapsed().as_secs_f64() * f64::from(audio.rate)) as usize;
        let window = audio.rate as usize / 10;
        let end = end.min(audio.samples.len());
        Some(level_of(&audio.samples[end.saturating_sub(window)..end]))
    }
}

#[cfg(test)]
mod level_tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_level_maps_dbfs_to_a_meter() {
        assert_eq!(level_of(&[]), 0.0);
        assert_eq!(level_of(&[0.0; 160]), 0.0);
        let full = level_of(&[1.0, -1.0, 1.0, -1.0]);
        assert!((full - 1.0).abs() < 1e-6, "{full}");
        // A sine at −20 dBFS RMS.
        let sine: Vec<f32> = (0..1600).map(|i| 0.1 * 2f32.sqrt() * (i as f32 * 0.2).sin()).collect();
        assert!((level_of(&sine) - 40.0 / 60.0).abs() < 0.01, "{}", level_of(&sine));
    }

    #[test]
    fn a_sink_keeps_the_samples_of_open_answer_windows_only_at_16_khz() {
        let gate = Arc::new(AtomicBool::new(false));
        let mut sink = AudioSink::analysing(Arc::default(), None).keeping_answers(Arc::clone(&gate));
        let ramp: Vec<f32> = (0..80_000).map(|i| (i as f32 / 80_000.0) - 0.5).collect();
        // 1 s closed, 2 s open, 1 s closed, 1 s open (in 10-ms periods, as a microphone gives them).
        for (k, period) in ramp.chunks(160).enumerate() {
            gate.store((100..300).contains(&k) || k >= 400, Ordering::Relaxed);
            sink.push(period);
        }
        let kept = sink.take_answers().expect("answers kept");
        assert_eq!(kept.windows.len(), 2);
        assert_eq!((kept.windows[0].0, &kept.windows[0].1[..]), (1_000, &ramp[16_000..48_000]));
        assert_eq!((kept.windows[1].0, &kept.windows[1].1[..]), (4_000, &ramp[64_000..]));
        assert!(matches!(sink.finish(), Ok(Audio::Analysed(_))), "the recording is still analysed, not kept");
        // At another rate every sample is kept anyway: no separate answers.
        let mut sink = AudioSink::analysing(Arc::default(), None).keeping_answers(Arc::new(AtomicBool::new(true)));
        sink.set_rate(44_100);
        sink.push(&ramp[..4_410]);
        assert!(sink.take_answers().is_none());
        assert!(matches!(sink.finish(), Ok(Audio::Clip(_))));
    }

    #[test]
    fn a_simulated_microphone_plays_its_file_in_real_time() {
        let dir = tempfile::tempdir().expect("tempdir");
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: 16_000,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::create(dir.path().join("audio.wav"), spec).expect("wav");
        // 0.6 s of silence, then 0.6 s of a loud tone.
        for i in 0..19_200 {
            let v = if i < 9_600 { 0.0 } else { 0.5 * (i as f32 * 0.3).sin() };
            w.write_sample((v * 32767.0) as i16).expect("sample");
        }
        w.finalize().expect("wav");
        let mut c = SimulatedCapture::new(dir.path()).expect("folder");
        assert_eq!(c.level(), None, "not capturing");
        c.start(Modalities::AUDIO).expect("starts");
        std::thread::sleep(Duration::from_millis(400));
        let quiet = c.level().expect("a level while capturing");
        std::thread::sleep(Duration::from_millis(500));
        let loud = c.level().expect("a level while capturing");
        assert!(quiet < 0.1 && loud > 0.8, "quiet {quiet}, loud {loud}");
        c.stop().expect("stops");
        assert_eq!(c.level(), None);
    }
}
