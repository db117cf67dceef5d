//! Capture from hardware during a session: a [`Microphone`] records from start to stop, and a
//! [`Camera`]'s frames go through the face front-end *while* the session runs, on a thread of
//! their own, so that only landmarks are kept (a 10-minute session of raw 640×480 frames would
//! be 5 GB; its landmarks are 10 MB). The session logic sees the same [`Capture`] seam as with
//! files; video arrives as [`Video::Tracked`].
//!
//! Real backends: [`super::alsa::AlsaMicrophone`] (feature `alsa`) and [`super::v4l::V4lCamera`]
//! (feature `v4l`). [`FileCamera`] plays a video file as a camera (rehearsals, and tests of
//! this module).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Instant;

use features::landmarks::LandmarkTrack;
use protocol::Modalities;
use vision::face::{FaceFrontEnd, VideoStats};
use vision::video::VideoError;
use vision::video::{FrameDir, FrameSource, MjpegFile, Y4mFile};

use super::{AudioSink, Capture, CaptureError, Captured, Video};

/// A microphone: records into an [`AudioSink`] from `start` to `stop`.
pub trait Microphone: Send {
    /// Opens the device and starts recording into `sink` (after [`AudioSink::set_rate`] with
    /// the rate the device grants); an unusable device is an error here.
    fn start(&mut self, sink: AudioSink) -> Result<(), CaptureError>;
    /// Stops and hands the sink back with everything recorded.
    fn stop(&mut self) -> Result<AudioSink, CaptureError>;
}

/// A camera. It is opened on the capture thread (V4L2 streams cannot move between threads).
pub trait Camera: Send + Sync {
    /// Opens the camera and starts streaming.
    fn open(&self) -> Result<Box<dyn FrameSource>, CaptureError>;
    /// For logs.
    fn describe(&self) -> String;
}

/// A video file played as a camera: `.y4m`, `.mjpeg`/`.mjpg` (at `fps`), or a folder of frames
/// with `video.toml`.
#[derive(Debug, Clone)]
pub struct FileCamera {
    path: PathBuf,
    fps: f32,
}

impl FileCamera {
    /// Plays `path` as a camera.
    pub fn new(path: &Path) -> FileCamera {
        FileCamera { path: path.to_owned(), fps: 30.0 }
    }
}

impl Camera for FileCamera {
    fn open(&self) -> Result<Box<dyn FrameSource>, CaptureError> {
        let ext = self.path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
        let opened: Result<Box<dyn FrameSource>, VideoError> = match ext.as_deref() {
            _ if self.path.is_dir() => FrameDir::open(&self.path).map(|s| Box::new(s) as _),
            Some("y4m") => Y4mFile::open(&self.path).map(|s| Box::new(s) as _),
            Some("mjpeg" | "mjpg") => MjpegFile::open(&self.path, self.fps).map(|s| Box::new(s) as _),
            _ => Err(VideoError::Format {
                path: self.path.clone(),
                detail: "not a camera file: expected .y4m, .mjpeg or a folder of frames".into(),
            }),
        };
        opened.map_err(|e| CaptureError::Camera { device: self.describe(), source: e.into() })
    }

    fn describe(&self) -> String {
        format!("file {}", self.path.display())
    }
}

/// A camera that shows the very same image (byte for byte: a live sensor's noise changes some
/// pixel of every frame) or delivers nothing but errors for this long is taken as frozen or
/// gone, and the session's video ends there. V4L2 reads time out after this long too, so a
/// camera that stops delivering frames is caught by the same clock.
pub const FROZEN_AFTER_MS: u32 = 1000;

/// Why a camera's video ended before the session did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CameraLost {
    /// The same image for [`FROZEN_AFTER_MS`].
    Frozen,
    /// Only errors (or nothing) for [`FROZEN_AFTER_MS`].
    Failing,
}

/// A camera's frames until the session stops, or the camera freezes or fails for good.
struct UntilStopped {
    inner: Box<dyn FrameSource>,
    stop: Arc<AtomicBool>,
    /// Frames handed on so far (their source time, where the source gives none).
    n: u32,
    /// The last good frame, and the source time (ms) at which it first appeared.
    last: Option<(image::GrayImage, u32)>,
    /// When the last good frame arrived (wall clock) and how many errors came since.
    last_good_at: Instant,
    failed_in_a_row: u32,
    lost: Option<CameraLost>,
}

impl UntilStopped {
    fn new(inner: Box<dyn FrameSource>, stop: Arc<AtomicBool>) -> UntilStopped {
        UntilStopped { inner, stop, n: 0, last: None, last_good_at: Instant::now(), failed_in_a_row: 0, lost: None }
    }

    /// The source's time of the frame just read, ms.
    fn now_ms(&self) -> u32 {
        self.inner
            .timestamp_ms()
            .unwrap_or_else(|| (f64::from(self.n) * 1000.0 / f64::from(self.inner.fps().max(1.0))) as u32)
    }

    fn lose(&mut self, why: CameraLost) {
        tracing::error!(?why, after_ms = FROZEN_AFTER_MS, "camera frozen or failing: video ends here");
        self.lost = Some(why);
    }
}

impl FrameSource for UntilStopped {
    fn fps(&self) -> f32 {
        self.inner.fps()
    }

    fn next_frame(&mut self) -> Option<Result<image::GrayImage, VideoError>> {
        if self.stop.load(Ordering::Relaxed) || self.lost.is_some() {
            return None;
        }
        let frame = self.inner.next_frame()?;
        let now = self.now_ms();
        self.n += 1;
        match &frame {
            Ok(img) => {
                self.failed_in_a_row = 0;
                self.last_good_at = Instant::now();
                match &self.last {
                    Some((prev, since)) if prev.as_raw() == img.as_raw() => {
                        if now.saturating_sub(*since) >= FROZEN_AFTER_MS {
                            self.lose(CameraLost::Frozen);
                            return None;
                        }
                    }
                    _ => self.last = Some((img.clone(), now)),
                }
            }
            Err(_) => {
                self.failed_in_a_row += 1;
                // Wall clock for a live camera (errors after read timeouts), frame count for a
                // file played as fast as it decodes.
                let wall = self.last_good_at.elapsed().as_millis() >= u128::from(FROZEN_AFTER_MS);
                let frames = f64::from(self.failed_in_a_row) * 1000.0 / f64::from(self.inner.fps().max(1.0))
                    >= f64::from(FROZEN_AFTER_MS);
                if wall || frames {
                    self.lose(CameraLost::Failing);
                    return None;
                }
            }
        }
        Some(frame)
    }

    fn timestamp_ms(&self) -> Option<u32> {
        self.inner.timestamp_ms()
    }
}

type Tracked = (FaceFrontEnd, LandmarkTrack, VideoStats);

struct Running {
    started: Instant,
    stop: Arc<AtomicBool>,
    audio: bool,
    video: Option<JoinHandle<Tracked>>,
    /// Requested modalities whose device did not open.
    failed: Modalities,
}

/// Microphone and camera during a session. Either may be absent; video also needs the face
/// front-end, which this capture owns while no session runs and lends to its thread while one
/// does.
pub struct LiveCapture {
    mic: Option<Box<dyn Microphone>>,
    camera: Option<Arc<dyn Camera>>,
    face: Option<FaceFrontEnd>,
    running: Option<Running>,
    /// Where the next session's raw media are kept (research), if anywhere.
    keep: Option<PathBuf>,
    /// The microphone's level (f32 bits), written by its sink.
    level: Arc<std::sync::atomic::AtomicU32>,
    /// Open while an answer window is; `None`: answer samples are not kept.
    answer_gate: Option<Arc<AtomicBool>>,
}

impl std::fmt::Debug for LiveCapture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveCapture")
            .field("mic", &self.mic.is_some())
            .field("camera", &self.camera.as_ref().map(|c| c.describe()))
            .field("face", &self.face.is_some())
            .field("running", &self.running.is_some())
            .finish()
    }
}

impl LiveCapture {
    pub fn new(
        mic: Option<Box<dyn Microphone>>,
        camera: Option<Arc<dyn Camera>>,
        face: Option<FaceFrontEnd>,
    ) -> LiveCapture {
        if camera.is_some() && face.is_none() {
            tracing::warn!("a camera but no face landmarker: video will be reported absent");
        }
        LiveCapture { mic, camera, face, running: None, keep: None, level: Arc::default(), answer_gate: None }
    }

    /// Ends a running capture and returns what it got (the face front-end comes back home).
    fn finish(&mut self) -> Result<Captured, CaptureError> {
        let Some(run) = self.running.take() else {
            return Ok(Captured {
                audio: None,
                video: None,
                duration_ms: 0,
                failed: Modalities::empty(),
                answers: None,
            });
        };
        run.stop.store(true, Ordering::Relaxed);
        let duration_ms = u32::try_from(run.started.elapsed().as_millis()).unwrap_or(u32::MAX);
        let video = match run.video.map(JoinHandle::join) {
            Some(Ok((face, track, stats))) => {
                self.face = Some(face);
                Some(Video::Tracked { track, stats })
            }
            Some(Err(_)) => {
                tracing::error!("the video thread panicked: video is absent from now on");
                None
            }
            None => None,
        };
        let mut failed = run.failed;
        let mut answers = None;
        if let Some(gate) = &self.answer_gate {
            gate.store(false, Ordering::Relaxed);
        }
        let audio = match (run.audio, self.mic.as_mut()) {
            (true, Some(mic)) => match mic.stop().and_then(|mut sink| {
                answers = sink.take_answers();
                sink.finish()
            }) {
                Ok(a) => Some(a),
                Err(e) => {
                    tracing::error!("the microphone failed: the session's audio is absent: {}", runtime::chain(&e));
                    failed |= Modalities::AUDIO;
                    None
                }
            },
            _ => None,
        };
        if let Some(a) = &answers {
            let seconds = a.samples() as f32 / features::audio::SAMPLE_RATE as f32;
            tracing::info!(windows = a.windows.len(), seconds, "answer windows' samples kept for transcription");
        }
        Ok(Captured { audio, video, duration_ms, failed, answers })
    }
}

impl Drop for LiveCapture {
    fn drop(&mut self) {
        if let Some(run) = &self.running {
            run.stop.store(true, Ordering::Relaxed);
        }
    }
}

impl Capture for LiveCapture {
    fn available(&self) -> Modalities {
        let mut m = Modalities::TEXT;
        if self.mic.is_some() {
            m |= Modalities::AUDIO;
        }
        if self.camera.is_some() && (self.face.is_some() || self.running.is_some()) {
            m |= Modalities::VIDEO;
        }
        m
    }

    fn start(&mut self, want: Modalities) -> Result<(), CaptureError> {
        if self.running.is_some() {
            tracing::warn!("capture started while running: the earlier capture is dropped");
            self.finish()?;
        }
        let stop = Arc::new(AtomicBool::new(false));
        let mut video = None;
        let mut failed = Modalities::empty();
        let audio = want.contains(Modalities::AUDIO) && self.mic.is_some();
        if want.contains(Modalities::VIDEO)
            && let (Some(camera), Some(mut face)) = (self.camera.clone(), self.face.take())
        {
            let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<(), CaptureError>>();
            let flag = Arc::clone(&stop);
            let keep = self.keep.as_ref().map(|d| d.join("video.mjpeg"));
            let thread = std::thread::Builder::new()
                .name("video".into())
                .spawn(move || {
                    let source = match camera.open() {
                        Ok(s) => {
                            let _ = ready_tx.send(Ok(()));
                            s
                        }
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                            let empty = LandmarkTrack { fps: 30.0, frames: Vec::new() };
                            return (face, empty, VideoStats::default());
                        }
                    };
                    tracing::info!(camera = camera.describe(), "camera capturing");
                    let mut frames = UntilStopped::new(source, flag);
                    let (track, mut stats) = super::track_keeping(&mut face, &mut frames, keep.as_deref());
                    stats.camera_lost = frames.lost.is_some();
                    (face, track, stats)
                })
                .map_err(|_| CaptureError::Thread("video"))?;
            let opened = ready_rx.recv().unwrap_or(Err(CaptureError::Thread("video")));
            match opened {
                Ok(()) => video = Some(thread),
                Err(e) => {
                    if let Ok((face, _, _)) = thread.join() {
                        self.face = Some(face);
                    }
                    if !audio {
                        return Err(e);
                    }
                    tracing::error!(
                        "the camera did not open: the session goes on without video: {}",
                        runtime::chain(&e)
                    );
                    failed |= Modalities::VIDEO;
                }
            }
        }
        self.running = Some(Running { started: Instant::now(), stop, audio: false, video, failed });
        let wav = self.keep.take().map(|d| d.join("audio.wav"));
        if audio {
            let mut sink = AudioSink::analysing(Arc::clone(&self.level), wav);
            if let Some(gate) = &self.answer_gate {
                gate.store(false, Ordering::Relaxed);
                sink = sink.keeping_answers(Arc::clone(gate));
            }
            if let Some(mic) = self.mic.as_mut()
                && let Err(e) = mic.start(sink)
            {
                let video_runs = self.running.as_ref().is_some_and(|r| r.video.is_some());
                if !video_runs {
                    self.finish()?;
                    return Err(e);
                }
                tracing::error!(
                    "the microphone did not start: the session goes on without audio: {}",
                    runtime::chain(&e)
                );
                if let Some(run) = self.running.as_mut() {
                    run.failed |= Modalities::AUDIO;
                }
                return Ok(());
            }
            if let Some(run) = self.running.as_mut() {
                run.audio = true;
            }
        }
        Ok(())
    }

    fn level(&self) -> Option<f32> {
        self.running
            .as_ref()
            .filter(|r| r.audio)
            .map(|_| f32::from_bits(self.level.load(std::sync::atomic::Ordering::Relaxed)))
    }

    fn keep_media(&mut self, dir: Option<PathBuf>) {
        self.keep = dir;
    }

    fn keep_answers(&mut self, keep: bool) {
        self.answer_gate = keep.then(Arc::default);
    }

    fn mark_answer(&self, open: bool) {
        if let Some(gate) = &self.answer_gate {
            gate.store(open, Ordering::Relaxed);
        }
    }

    fn stop(&mut self) -> Result<Captured, CaptureError> {
        self.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake microphone: a fixed clip, delivered in 10 ms periods at stop, or an error at start.
    struct FakeMic {
        clip: Option<features::audio::AudioClip>,
        sink: Option<AudioSink>,
    }

    impl Microphone for FakeMic {
        fn start(&mut self, sink: AudioSink) -> Result<(), CaptureError> {
            if self.clip.is_none() {
                return Err(CaptureError::Microphone { device: "fake".into(), source: "unplugged".into() });
            }
            self.sink = Some(sink);
            Ok(())
        }

        fn stop(&mut self) -> Result<AudioSink, CaptureError> {
            let mut sink = self.sink.take().expect("stop before start");
            for period in self.clip.as_ref().expect("clip").samples.chunks(160) {
                sink.push(period);
            }
            Ok(sink)
        }
    }

    /// A microphone that records `clip` in real time on a thread of its own, as ALSA's does.
    struct PacedMic {
        clip: features::audio::AudioClip,
        run: Option<(Arc<AtomicBool>, JoinHandle<AudioSink>)>,
    }

    impl Microphone for PacedMic {
        fn start(&mut self, mut sink: AudioSink) -> Result<(), CaptureError> {
            let (stop, clip) = (Arc::new(AtomicBool::new(false)), self.clip.clone());
            let flag = Arc::clone(&stop);
            let thread = std::thread::spawn(move || {
                let started = Instant::now();
                for (k, period) in clip.samples.chunks(160).enumerate() {
                    let due = std::time::Duration::from_millis(10 * k as u64);
                    std::thread::sleep(due.saturating_sub(started.elapsed()));
                    if flag.load(Ordering::Relaxed) {
                        break;
                    }
                    sink.push(period);
                }
                sink
            });
            self.run = Some((stop, thread));
            Ok(())
        }

        fn stop(&mut self) -> Result<AudioSink, CaptureError> {
            let (stop, thread) = self.run.take().expect("stop before start");
            stop.store(true, Ordering::Relaxed);
            thread.join().map_err(|_| CaptureError::Thread("audio"))
        }
    }

    #[test]
    fn a_live_session_keeps_the_samples_of_its_answer_windows_when_asked() {
        let clip = features::audio::read_wav(&sample().join("audio.wav")).expect("wav");
        for keep in [true, false] {
            let mut cap = LiveCapture::new(Some(Box::new(PacedMic { clip: clip.clone(), run: None })), None, None);
            cap.keep_answers(keep);
            cap.start(Modalities::AUDIO).expect("starts");
            std::thread::sleep(std::time::Duration::from_millis(300));
            cap.mark_answer(true);
            std::thread::sleep(std::time::Duration::from_millis(600));
            cap.mark_answer(false);
            std::thread::sleep(std::time::Duration::from_millis(200));
            let got = cap.stop().expect("stops");
            assert!(matches!(got.audio, Some(super::super::Audio::Analysed(_))), "samples kept whole");
            let Some(answers) = got.answers else {
                assert!(!keep, "no answers kept");
                continue;
            };
            assert!(keep, "answers kept unasked");
            // One window: exactly the recording's samples from where it opened.
            let [(start_ms, samples)] = &answers.windows[..] else { panic!("{} windows", answers.windows.len()) };
            let at = *start_ms as usize * 16;
            assert!(!samples.is_empty() && *start_ms >= 250, "{start_ms} ms, {} samples", samples.len());
            assert_eq!(&samples[..], &clip.samples[at..at + samples.len()]);
        }
    }

    /// A scripted camera, as fast as asked: `live` frames that differ (one pixel counts the
    /// frame), then `then` for ever: the last frame again, errors, or errors that each take
    /// `stall` of wall clock (a V4L2 read that times out).
    struct ScriptedCamera {
        frame: image::GrayImage,
        live: u32,
        then: Then,
    }

    #[derive(Clone, Copy)]
    enum Then {
        Live,
        Frozen,
        Errors,
        Stall(std::time::Duration),
    }

    impl Camera for ScriptedCamera {
        fn open(&self) -> Result<Box<dyn FrameSource>, CaptureError> {
            struct Source(image::GrayImage, u32, u32, Then);
            impl FrameSource for Source {
                fn fps(&self) -> f32 {
                    30.0
                }
                fn next_frame(&mut self) -> Option<Result<image::GrayImage, VideoError>> {
                    let Source(frame, live, i, then) = self;
                    *i += 1;
                    if *i > *live {
                        let gone =
                            || Some(Err(VideoError::Camera { device: "scripted".into(), source: "gone".into() }));
                        match then {
                            Then::Live => {}
                            Then::Frozen => return Some(Ok(frame.clone())),
                            Then::Errors => return gone(),
                            Then::Stall(d) => {
                                std::thread::sleep(*d);
                                return gone();
                            }
                        }
                    }
                    frame.put_pixel(0, 0, image::Luma([(*i % 251) as u8]));
                    Some(Ok(frame.clone()))
                }
            }
            Ok(Box::new(Source(self.frame.clone(), self.live, 0, self.then)))
        }
        fn describe(&self) -> String {
            "scripted".into()
        }
    }

    fn scripted(w: u32, h: u32, live: u32, then: Then) -> Arc<dyn Camera> {
        Arc::new(ScriptedCamera { frame: image::GrayImage::from_pixel(w, h, image::Luma([128])), live, then })
    }

    fn sample() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../assets/sample/session-001")
    }

    fn face() -> Option<FaceFrontEnd> {
        crate::load_face(None, None).expect("face front-end")
    }

    #[test]
    fn camera_frames_become_landmarks_during_the_session_and_audio_comes_from_the_mic() {
        let Some(face) = face() else {
            panic!("landmark model missing: run scripts/install_landmark_model.sh");
        };
        let clip = features::audio::read_wav(&sample().join("audio.wav")).expect("wav");
        let mic = FakeMic { clip: Some(clip.clone()), sink: None };
        let camera = FileCamera::new(&sample().join("frames"));
        let n_frames = std::fs::read_dir(sample().join("frames"))
            .expect("frames")
            .filter(|e| e.as_ref().is_ok_and(|e| e.path().extension().is_some_and(|x| x == "png" || x == "jpg")))
            .count() as u32;
        let mut cap = LiveCapture::new(Some(Box::new(mic)), Some(Arc::new(camera)), Some(face));
        assert_eq!(cap.available(), Modalities::ALL);
        for _ in 0..2 {
            // Twice: the face front-end must come back after a session.
            cap.start(Modalities::ALL).expect("starts");
            // A file camera ends by itself; wait for it, as a session lasts minutes.
            while cap.running.as_ref().is_some_and(|r| r.video.as_ref().is_some_and(|v| !v.is_finished())) {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            let got = cap.stop().expect("stops");
            // Analysed as it arrived: the front-end's frames of the whole clip, no samples kept.
            let Some(super::super::Audio::Analysed(a)) = got.audio else { panic!("audio not analysed live") };
            assert_eq!(a.frames, features::audio::analyse(&clip).expect("analyses").frames);
            let Some(Video::Tracked { track, stats }) = got.video else { panic!("no tracked video") };
            assert_eq!(stats.frames, n_frames);
            assert_eq!(track.frames.len() as u32, n_frames);
            assert!(stats.with_face * 10 >= n_frames * 9, "{stats:?}");
            assert_eq!(cap.available(), Modalities::ALL);
        }
    }

    #[test]
    fn research_media_are_written_as_they_are_captured_for_one_session_only() {
        let clip = features::audio::read_wav(&sample().join("audio.wav")).expect("wav");
        let mic = FakeMic { clip: Some(clip.clone()), sink: None };
        let camera = scripted(64, 48, 45, Then::Frozen);
        let mut cap = LiveCapture::new(Some(Box::new(mic)), Some(camera), face());
        let dir = tempfile::tempdir().expect("tempdir");
        let kept = dir.path().join("session-7");
        cap.keep_media(Some(kept.clone()));
        cap.start(Modalities::ALL).expect("starts");
        std::thread::sleep(std::time::Duration::from_millis(300));
        let got = cap.stop().expect("stops");
        assert!(matches!(got.audio, Some(super::super::Audio::Analysed(_))), "samples kept in memory");
        let wav = features::audio::read_wav(&kept.join("audio.wav")).expect("the kept recording");
        assert_eq!(wav.samples.len(), clip.samples.len());
        assert!(wav.samples.iter().zip(&clip.samples).all(|(a, b)| (a - b).abs() < 1e-4), "the recording differs");
        let mut frames = vision::video::MjpegFile::open(&kept.join("video.mjpeg"), 30.0).expect("the kept frames");
        let mut n = 0;
        while let Some(f) = frames.next_frame() {
            assert_eq!(f.expect("decodes").dimensions(), (64, 48));
            n += 1;
        }
        let Some(Video::Tracked { stats, .. }) = got.video else { panic!("no tracked video") };
        assert_eq!(n, stats.frames);
        // The next session keeps nothing unless asked again.
        std::fs::remove_dir_all(&kept).expect("clean");
        cap.start(Modalities::ALL).expect("starts");
        cap.stop().expect("stops");
        assert!(!kept.exists());
    }

    #[test]
    fn an_endless_camera_stops_with_the_session() {
        let Some(face) = face() else {
            panic!("landmark model missing: run scripts/install_landmark_model.sh");
        };
        let mut cap = LiveCapture::new(None, Some(scripted(320, 240, u32::MAX, Then::Live)), Some(face));
        assert_eq!(cap.available(), Modalities::TEXT | Modalities::VIDEO);
        cap.start(Modalities::ALL).expect("starts");
        std::thread::sleep(std::time::Duration::from_millis(300));
        let got = cap.stop().expect("stops");
        assert!(got.audio.is_none());
        let Some(Video::Tracked { stats, .. }) = got.video else { panic!("no tracked video") };
        assert!(stats.frames > 0);
        assert_eq!(stats.with_face, 0, "a flat grey frame has no face");
        assert!(!stats.camera_lost, "{stats:?}");
        assert!(got.duration_ms >= 300);
    }

    /// Runs a scripted camera until its video thread ends by itself (or a minute passes: the
    /// frozen and failing rules count source time, and an emulated aarch64 build under load
    /// takes several seconds of wall clock for the 90 frames they need).
    fn run_until_lost(camera: Arc<dyn Camera>) -> (VideoStats, std::time::Duration) {
        let mut cap = LiveCapture::new(None, Some(camera), face());
        let started = Instant::now();
        cap.start(Modalities::ALL).expect("starts");
        while cap.running.as_ref().is_some_and(|r| r.video.as_ref().is_some_and(|v| !v.is_finished()))
            && started.elapsed().as_secs() < 60
        {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let took = started.elapsed();
        let got = cap.stop().expect("stops");
        let Some(Video::Tracked { stats, .. }) = got.video else { panic!("no tracked video") };
        (stats, took)
    }

    #[test]
    fn a_frozen_camera_is_caught_within_a_second_of_video() {
        // 2 s of live frames at 30 fps, then the same image: the video ends once it has stood
        // still for a second, and the result will say so.
        let (stats, _) = run_until_lost(scripted(64, 48, 60, Then::Frozen));
        assert!(stats.camera_lost, "{stats:?}");
        assert!((60 + 29..=60 + 31).contains(&stats.frames), "{stats:?}");
    }

    #[test]
    fn a_camera_that_only_fails_is_caught_within_a_second() {
        let (stats, _) = run_until_lost(scripted(64, 48, 10, Then::Errors));
        assert!(stats.camera_lost, "{stats:?}");
        assert!((10 + 28..=10 + 30).contains(&stats.frames), "{stats:?}");
        assert!((28..=30).contains(&stats.decode_errors), "{stats:?}");
        // A live camera that stops delivering: its read times out after a second (V4L2), and
        // that one error is enough.
        let (stats, took) = run_until_lost(scripted(64, 48, 10, Then::Stall(std::time::Duration::from_millis(1_050))));
        assert!(stats.camera_lost && stats.decode_errors <= 1, "{stats:?}");
        assert!(took < std::time::Duration::from_millis(2_000), "{took:?}");
    }

    #[test]
    fn a_camera_that_does_not_open_fails_the_start_and_keeps_the_face_front_end() {
        let Some(face) = face() else {
            panic!("landmark model missing: run scripts/install_landmark_model.sh");
        };
        let mut cap =
            LiveCapture::new(None, Some(Arc::new(FileCamera::new(Path::new("/nonexistent.y4m")))), Some(face));
        let e = cap.start(Modalities::ALL).unwrap_err();
        let chain = format!("{e}: {}", std::error::Error::source(&e).map(ToString::to_string).unwrap_or_default());
        assert!(matches!(e, CaptureError::Camera { .. }) && chain.contains("/nonexistent.y4m"), "{chain}");
        assert!(cap.face.is_some(), "the face front-end was lost");
        assert!(cap.running.is_none());
        let e = LiveCapture::new(None, Some(Arc::new(FileCamera::new(Path::new("notes.txt")))), None);
        assert_eq!(e.available(), Modalities::TEXT, "no landmarker, no video");
    }

    #[test]
    fn a_session_goes_on_without_the_device_that_does_not_open_and_says_which() {
        // The microphone does not start: video only, audio marked failed.
        let mic = FakeMic { clip: None, sink: None };
        let mut cap = LiveCapture::new(Some(Box::new(mic)), Some(scripted(64, 48, u32::MAX, Then::Live)), face());
        cap.start(Modalities::ALL).expect("the camera works: the session starts");
        assert_eq!(cap.level(), None, "no microphone, no meter");
        std::thread::sleep(std::time::Duration::from_millis(100));
        let got = cap.stop().expect("stops");
        assert!(got.audio.is_none() && matches!(got.video, Some(Video::Tracked { .. })), "{got:?}");
        assert_eq!(got.failed, Modalities::AUDIO);
        // The camera does not open: audio only, video marked failed, the front-end kept.
        let clip = features::audio::read_wav(&sample().join("audio.wav")).expect("wav");
        let mic = FakeMic { clip: Some(clip), sink: None };
        let camera = Arc::new(FileCamera::new(Path::new("/nonexistent.y4m")));
        let mut cap = LiveCapture::new(Some(Box::new(mic)), Some(camera), face());
        cap.start(Modalities::ALL).expect("the microphone works: the session starts");
        let got = cap.stop().expect("stops");
        assert!(got.audio.is_some() && got.video.is_none(), "{got:?}");
        assert_eq!(got.failed, Modalities::VIDEO);
        assert!(cap.face.is_some(), "the face front-end was lost");
        // Nothing works: the start fails, saying why.
        let mic = FakeMic { clip: None, sink: None };
        let mut cap = LiveCapture::new(Some(Box::new(mic)), None, face());
        let e = cap.start(Modalities::ALL).unwrap_err();
        assert!(matches!(&e, CaptureError::Microphone { source, .. } if source.to_string() == "unplugged"), "{e:?}");
        assert!(cap.running.is_none());
    }
}
