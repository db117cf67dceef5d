//! `bench/run live`: a whole kiosk session of the device's live pipeline, fed in real time.
//!
//! A 640×480 Motion-JPEG camera at 30 fps (the sample interview's frames, scaled up and looped;
//! each frame is decoded as a V4L2 MJPEG buffer is, and frames the consumer is too late for are
//! dropped, as a driver drops them) and a 16 kHz microphone (the sample's speech, looped,
//! delivered in 10 ms periods) feed a device assembled as `mimml-device run` assembles it: the
//! live capture with the face front-end (compact landmark model), the session logic, the
//! pipeline with the shipped model. The session runs as the kiosk runs one: answer windows of
//! 40 s with 5 s prompts between them, the level meter read ten times a second, a stop with the
//! kiosk's flags, and the result stored in the log.
//!
//! `bench/run live` pins the process to one core (`taskset -c 0`) and passes the landmark
//! model's change against dlib (from `vision/tests/it/dlib.rs`). Figures: the share of that core
//! the session used while capturing (goal ≤ 0.25), frames processed per second (30 when the
//! pipeline keeps up), the time from the last answer to the stored result (goal ≤ 3 s), the
//! process's peak RSS (goal ≤ 64 MiB), and the peak RSS of loading the landmark model with
//! exact leaves instead (the reference: a child process that loads it and exits).
//!
//! `MIMML_LIVE_MINUTES` shortens the session for a quick look (default 10).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use device::capture::live::{Camera, LiveCapture, Microphone};
use device::capture::{AudioSink, CaptureError};
use device::pipeline::Extra;
use device::session::{Origin, StartRequest};
use protocol::{ResultFlags, SessionState, truncated};
use vision::video::{FrameSource, VideoError};

const FPS: f64 = 30.0;
const RATE: u32 = 16_000;

/// Frames the camera delivered (each one went through the face front-end).
static FRAMES: AtomicU32 = AtomicU32::new(0);
/// Frames dropped because the consumer was late.
static DROPPED: AtomicU64 = AtomicU64::new(0);

/// JPEG buffers played in a loop at 30 fps of wall clock, decoded as a V4L2 MJPEG buffer is.
/// They are read from a file as each is due (a driver's buffers are not the process's heap).
struct PacedCamera {
    file: Arc<std::fs::File>,
    /// (offset, length) of each frame in the file.
    frames: Arc<Vec<(u64, usize)>>,
}

impl Camera for PacedCamera {
    fn open(&self) -> Result<Box<dyn FrameSource>, CaptureError> {
        struct Source {
            file: Arc<std::fs::File>,
            frames: Arc<Vec<(u64, usize)>>,
            buf: Vec<u8>,
            started: Instant,
            next: u64,
        }
        impl FrameSource for Source {
            fn fps(&self) -> f32 {
                FPS as f32
            }
            fn next_frame(&mut self) -> Option<Result<image::GrayImage, VideoError>> {
                // The frame due now: wait for it, or skip those already past (a driver drops them).
                let due = |i: u64| self.started + Duration::from_secs_f64(i as f64 / FPS);
                let now = Instant::now();
                let current = (now.duration_since(self.started).as_secs_f64() * FPS) as u64;
                if current > self.next {
                    DROPPED.fetch_add(current - self.next, Ordering::Relaxed);
                    self.next = current;
                }
                std::thread::sleep(due(self.next).saturating_duration_since(Instant::now()));
                let (at, len) = self.frames[(self.next % self.frames.len() as u64) as usize];
                self.next += 1;
                FRAMES.fetch_add(1, Ordering::Relaxed);
                self.buf.resize(len, 0);
                let camera_err = |e: String| VideoError::Camera { device: "paced".into(), source: e.into() };
                if let Err(e) = std::os::unix::fs::FileExt::read_exact_at(&*self.file, &mut self.buf, at) {
                    return Some(Err(camera_err(e.to_string())));
                }
                Some(vision::video::decode_jpeg(&self.buf).map_err(|e| camera_err(e.to_string())))
            }
            fn timestamp_ms(&self) -> Option<u32> {
                Some((self.next.saturating_sub(1) as f64 * 1000.0 / FPS) as u32)
            }
        }
        Ok(Box::new(Source {
            file: Arc::clone(&self.file),
            frames: Arc::clone(&self.frames),
            buf: Vec::new(),
            started: Instant::now(),
            next: 0,
        }))
    }

    fn describe(&self) -> String {
        "paced MJPEG 640x480 at 30 fps".into()
    }
}

/// 16-bit samples delivered in 10 ms periods of wall clock into the capture's sink, as the ALSA
/// microphone delivers them.
struct PacedMic {
    speech: Arc<Vec<i16>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<AudioSink>>,
}

impl Microphone for PacedMic {
    fn start(&mut self, mut sink: AudioSink) -> Result<(), CaptureError> {
        self.stop.store(false, Ordering::Relaxed);
        let (speech, stop) = (Arc::clone(&self.speech), Arc::clone(&self.stop));
        self.thread = Some(std::thread::spawn(move || {
            let period = RATE as usize / 100;
            let started = Instant::now();
            let mut at = 0usize;
            let mut chunk = Vec::with_capacity(period);
            while !stop.load(Ordering::Relaxed) {
                let due = started + Duration::from_secs_f64((at + period) as f64 / f64::from(RATE));
                std::thread::sleep(due.saturating_duration_since(Instant::now()));
                chunk.clear();
                chunk.extend((at..at + period).map(|i| f32::from(speech[i % speech.len()]) / 32768.0));
                sink.push(&chunk);
                at += period;
            }
            sink
        }));
        Ok(())
    }

    fn stop(&mut self) -> Result<AudioSink, CaptureError> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().ok_or(CaptureError::Thread("audio"))?.join().map_err(|_| CaptureError::Thread("audio"))
    }
}

/// This process's CPU time (user + system), seconds.
fn cpu_s() -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    // Fields after the command name (which may hold spaces) start at field 3.
    let rest = stat.rsplit_once(')').context("/proc/self/stat")?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f[11].parse::<f64>()? + f[12].parse::<f64>()?;
    Ok(ticks / 100.0)
}

/// A `/proc/self/status` field, MiB.
fn status_mib(field: &str) -> anyhow::Result<f64> {
    match bench::proc_status_kb(field) {
        0 => anyhow::bail!("/proc/self/status has no {field}"),
        kb => Ok(kb as f64 / 1024.0),
    }
}

/// The sample interview's frames scaled to 640×480 and encoded as a camera's MJPEG buffers, in
/// a file in `dir`.
fn camera_frames(dir: &std::path::Path) -> anyhow::Result<PacedCamera> {
    let sample = bench::repo().join("assets/sample/session-001/frames");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&sample)?.map(|e| e.map(|e| e.path())).collect::<Result<_, _>>()?;
    paths.retain(|p| p.extension().is_some_and(|x| x == "jpg"));
    paths.sort();
    let mut stream = Vec::new();
    let mut frames = Vec::new();
    for p in &paths {
        let rgb = image::open(p)?.to_rgb8();
        let big = image::imageops::resize(&rgb, 640, 480, image::imageops::FilterType::Triangle);
        let at = stream.len();
        let mut end = std::io::Cursor::new(&mut stream);
        end.set_position(at as u64);
        big.write_to(&mut end, image::ImageFormat::Jpeg)?;
        frames.push((at as u64, stream.len() - at));
    }
    let path = dir.join("camera.mjpeg");
    std::fs::write(&path, &stream)?;
    Ok(PacedCamera { file: Arc::new(std::fs::File::open(&path)?), frames: Arc::new(frames) })
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    if args.next().as_deref() == Some("--load-exact") {
        // The reference: the landmark model with dlib's f32 leaves, loaded and nothing else.
        let cfg = vision::face::FaceConfig { leaves: vision::shape::LeafPrecision::Exact, ..Default::default() };
        let _face = vision::face::FaceFrontEnd::load(&vision::default_detector(), &vision::default_predictor(), cfg)?;
        println!("{:.1}", status_mib("VmHWM:")?);
        return Ok(());
    }
    let landmark_line = std::env::args().nth(1).unwrap_or_default();
    let minutes: f64 = std::env::var("MIMML_LIVE_MINUTES").ok().and_then(|v| v.parse().ok()).unwrap_or(10.0);

    let tmp = tempfile::tempdir()?;
    let camera = camera_frames(tmp.path())?;
    let speech = features::audio::read_wav(&bench::repo().join("assets/sample/session-001/audio.wav"))?;
    anyhow::ensure!(speech.rate == RATE, "the sample speech is not at 16 kHz");
    let speech: Vec<i16> = speech.samples.iter().map(|&v| (v * 32767.0) as i16).collect();
    let rss_inputs = status_mib("VmRSS:")?;

    let face = device::load_face(None, None)?.context("the landmark model is not installed")?;
    let rss_face = status_mib("VmRSS:")?;
    let mic = PacedMic { speech: Arc::new(speech), stop: Arc::default(), thread: None };
    let capture = LiveCapture::new(Some(Box::new(mic)), Some(Arc::new(camera)), Some(face));
    let vad = device::load_vad(None)?;
    let rss_vad = status_mib("VmRSS:")?;
    let models = device::ModelSetup::new(Some(device::bundled_model_dir()), runtime::signing::TrustedKeys::default());
    let mut server = device::open(
        device::DeviceConfig {
            data_dir: tmp.path().join("data"),
            board: boards::Board::by_name("sim")?,
            simulated: true,
        },
        Box::new(capture),
        Box::new(boards::LogPanel::default()),
        models,
        |loaded| {
            let pipeline =
                device::SessionPipeline::new(loaded.model, true).with_text_encoder(loaded.text_encoder)?.with_vad(vad);
            Ok(Box::new(pipeline))
        },
    )?;
    let sessions = server.sessions();
    let rss_ready = status_mib("VmRSS:")?;

    let length = Duration::from_secs_f64(minutes * 60.0);
    let (answer, prompt) = (Duration::from_secs(40), Duration::from_secs(5));
    let modalities = sessions.available();
    let cpu0 = cpu_s()?;
    let t0 = Instant::now();
    let id = sessions
        .start(StartRequest { modalities, label: truncated("bench live"), host_time_ms: 0, origin: Origin::Local })?
        .session;
    let ms = |d: Duration| u32::try_from(d.as_millis()).unwrap_or(u32::MAX);
    let mut window_start = t0 + prompt;
    let mut turns = 0;
    let mut level_reads = 0u32;
    // Anonymous memory (heap, stacks), sampled: peak RSS also counts the code pages read in.
    let mut anon_peak = status_mib("RssAnon:")?;
    while t0.elapsed() < length {
        std::thread::sleep(Duration::from_millis(100));
        anon_peak = anon_peak.max(status_mib("RssAnon:")?);
        level_reads += u32::from(sessions.level().is_some());
        let end = (window_start + answer).min(t0 + length);
        if Instant::now() >= end {
            sessions.add_turn(id, ms(window_start - t0), ms(end - t0))?;
            turns += 1;
            window_start = end + prompt;
        }
    }
    let captured_s = t0.elapsed().as_secs_f64();
    let cpu_capture = cpu_s()? - cpu0;
    let stopped = Instant::now();
    sessions.stop_with(id, Extra { questionnaire: None, flags: ResultFlags::KIOSK })?;
    let seq = loop {
        sessions.poll();
        match sessions.status(id)?.state {
            SessionState::Done { seq } => break seq,
            SessionState::Processing => {
                anon_peak = anon_peak.max(status_mib("RssAnon:")?);
                std::thread::sleep(Duration::from_millis(2));
            }
            other => anyhow::bail!("session {id} ended {other:?}"),
        }
    };
    let stop_to_result_ms = stopped.elapsed().as_secs_f64() * 1e3;
    let record = sessions.log().find_session(id).context("the result is not in the log")?;
    anyhow::ensure!(record.seq == seq);
    let rss_peak = status_mib("VmHWM:")?;

    let exact = std::process::Command::new(std::env::current_exe()?).arg("--load-exact").output()?;
    anyhow::ensure!(exact.status.success(), "the reference load failed: {}", String::from_utf8_lossy(&exact.stderr));
    let rss_exact_load: f64 = String::from_utf8(exact.stdout)?.trim().parse()?;

    let frames = FRAMES.load(Ordering::Relaxed);
    let fps = f64::from(frames) / captured_s;
    let cpu_share = cpu_capture / captured_s;
    println!(
        "session: {captured_s:.0} s captured, {turns} answer windows, {level_reads} meter reads; result #{seq}: \
         p={:.3}, modalities {}, flags {}",
        record.p_depressed, record.modalities, record.flags
    );
    println!(
        "camera: {frames} frames processed ({fps:.1}/s), {} dropped while the front-end was busy",
        DROPPED.load(Ordering::Relaxed)
    );
    println!("CPU while capturing: {cpu_capture:.1} s of {captured_s:.0} s = {cpu_share:.3} of one core (goal ≤ 0.25)");
    println!("last answer → stored result: {stop_to_result_ms:.0} ms (goal ≤ 3000)");
    println!(
        "RSS: {rss_inputs:.1} MiB with the bench's inputs loaded, {rss_face:.1} with the face front-end, \
         {rss_vad:.1} with the VAD, {rss_ready:.1} with the device ready (model, log), peak {rss_peak:.1} MiB \
         (goal ≤ 64), of which anonymous (heap, stacks; sampled) at most {anon_peak:.1} MiB; loading the landmark model with exact leaves alone peaks at {rss_exact_load:.1} MiB"
    );
    let landmark = landmark_line
        .split_whitespace()
        .skip_while(|w| *w != "mean")
        .nth(1)
        .map_or_else(|| "n/a".to_owned(), str::to_owned);
    println!("{landmark_line}");
    println!(
        "RESULT live cpu_share={cpu_share:.3} fps={fps:.1} stop_to_result_ms={stop_to_result_ms:.0} \
         rss_mb={rss_peak:.1} anon_mb={anon_peak:.1} rss_exact_load_mb={rss_exact_load:.1} landmark_mean_px_vs_dlib={landmark} minutes={minutes}"
    );
    Ok(())
}
