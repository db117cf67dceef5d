//! `mimml-device`: the device daemon.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use anyhow::{Context, bail};
use boards::{Board, LogPanel, Panel};
use clap::{Parser, Subcommand};
use device::DeviceConfig;
use device::capture::live::{Camera, FileCamera, LiveCapture, Microphone};
use device::capture::{Capture, SimulatedCapture};

/// The MIMML screening device: captures a session, computes features and the screening result
/// on the device, keeps results in a durable log and serves the host over a serial link.
#[derive(Parser, Debug)]
#[command(name = "mimml-device", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

// Parsed once at start-up: the size of the largest variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand, Debug)]
enum Cmd {
    /// Serve the protocol on a serial port.
    Run {
        /// Serial device: USB gadget `/dev/ttyGS0`, UART, or a pty. Defaults to the board's port.
        #[arg(long)]
        port: Option<String>,
        /// Serve hosts over TCP on this address instead of a serial port (one host at a time):
        /// hardware-in-the-loop rigs, emulators without serial ioctls (qemu-user). Loopback
        /// unless you mean it: the link is authenticated, not encrypted.
        #[arg(long, value_name = "ADDR", conflicts_with = "port")]
        listen: Option<std::net::SocketAddr>,
        /// Built-in board name (rpi4, rpi5, jetson-orin-nano, sim).
        #[arg(long, default_value = "sim")]
        board: String,
        /// A board definition file instead of a built-in board.
        #[arg(long, conflicts_with = "board")]
        board_file: Option<PathBuf>,
        /// Where the result log and device state live.
        #[arg(long)]
        data_dir: PathBuf,
        /// The factory model bundle (manifest.toml, model.onnx, golden.json), verified before
        /// serving; it serves until a flashed model is confirmed. Without it the device runs
        /// the placeholder model and flags every result.
        #[arg(long, value_name = "DIR")]
        model: Option<PathBuf>,
        /// Public keys (`mimml keys generate`'s .pub lines) whose signed bundles the device
        /// takes. Without it no bundle can be flashed.
        #[arg(long, value_name = "FILE")]
        trusted_keys: Option<PathBuf>,
        /// Allow a flashed bundle at or below the confirmed version when the host asks for it
        /// (`mimml flash --allow-downgrade`).
        #[arg(long)]
        allow_downgrade: bool,
        /// Confirm a model on trial after this many sessions with a result (0: only the host
        /// confirms, `mimml model confirm`).
        #[arg(long, value_name = "SESSIONS", default_value_t = 0)]
        confirm_after: u32,
        /// Take audio and video from files in DIR (audio.wav, frames/ with video.toml) instead of
        /// capture hardware. Results are flagged as simulated.
        #[arg(long, value_name = "DIR", conflicts_with_all = ["mic", "camera"])]
        simulate: Option<PathBuf>,
        /// Record sessions from this ALSA capture PCM (`default`, `plughw:1,0`, ...); needs a
        /// build with the `alsa` feature.
        #[arg(long, value_name = "PCM")]
        mic: Option<String>,
        /// Film sessions with this camera: a V4L2 device (`/dev/video0`; needs the `v4l`
        /// feature) or a video file played as a camera (`.y4m`, `.mjpeg`, a folder of frames;
        /// results are then flagged as simulated). Frames go through the face front-end while the
        /// session runs; only landmarks are kept.
        #[arg(long, value_name = "DEVICE|FILE")]
        camera: Option<PathBuf>,
        /// Frame size asked of a V4L2 camera (the driver grants the nearest it has).
        #[arg(long, value_name = "WxH", default_value = "640x480", value_parser = parse_size)]
        camera_size: (u32, u32),
        /// silero-vad ONNX model for segmenting audio whose transcript has no timing. Default:
        /// where scripts/install_silero_vad.sh installs it, else energy-based detection.
        #[arg(long, value_name = "FILE")]
        vad: Option<PathBuf>,
        /// dlib 68-point shape predictor. Default: where scripts/install_landmark_model.sh
        /// installs it; without one, video is reported absent.
        #[arg(long, value_name = "FILE")]
        landmarks: Option<PathBuf>,
        /// all-MiniLM-L6-v2 folder (config.json, model.safetensors, tokenizer.json), for a model
        /// trained on MiniLM text features. Default: where scripts/install_minilm.sh installs it.
        #[arg(long, value_name = "DIR")]
        text_encoder: Option<PathBuf>,
        /// Transcribe the participant's speech on the device (Whisper tiny.en) when no transcript
        /// is pushed, so sessions have text features of their own; the transcript stays here.
        #[arg(long)]
        asr: bool,
        /// Whisper tiny.en folder (model.bin, config.json, tokenizer.json) for --asr. Default:
        /// where scripts/install_whisper.sh installs it.
        #[arg(long, value_name = "DIR", requires = "asr")]
        asr_model: Option<PathBuf>,
        /// Face detector: a dlib HOG detector file, or an OpenCV cascade (Haar or LBP `.xml`).
        /// Default: dlib's frontal face detector shipped in vision/assets.
        #[arg(long, value_name = "FILE", alias = "cascade")]
        face_detector: Option<PathBuf>,
        /// A host-started session with no request about it for this long is abandoned (recorded
        /// as aborted, no result): its host crashed or was unplugged, and the device is free again.
        #[arg(long, value_name = "SECONDS", default_value_t = device::session::ABANDON_AFTER.as_secs())]
        abandon_after: u64,
        /// Seconds of speech a session needs for audio to count (below: audio absent, flagged).
        #[arg(long, value_name = "SECONDS", default_value_t = device::pipeline::Presence::default().min_speech_s)]
        min_speech: f32,
        /// Seconds of video with a face a session needs for video to count.
        #[arg(long, value_name = "SECONDS", default_value_t = device::pipeline::Presence::default().min_face_s)]
        min_face: f32,
        /// Participant words a session needs for text to count.
        #[arg(long, value_name = "WORDS", default_value_t = device::pipeline::Presence::default().min_words)]
        min_words: u32,
        /// Run the kiosk: sessions started at the device (button, screen) with the guided
        /// interview and questionnaire of the kiosk script; results wait in the log for a host.
        #[arg(long)]
        kiosk: bool,
        /// The kiosk script (TOML). Default: the one built in (device/kiosk/interview.toml).
        #[arg(long, value_name = "FILE", requires = "kiosk")]
        kiosk_script: Option<PathBuf>,
        /// Serve the kiosk screen on this loopback port (default: the board's `[screen] port`;
        /// a board without a screen runs the kiosk by button alone).
        #[arg(long, value_name = "PORT", requires = "kiosk")]
        screen_port: Option<u16>,
        /// Keep the raw audio and frames of kiosk sessions whose patient ticked the consent
        /// screen's research box, in DATA_DIR/media/session-N (their results say so). Without
        /// this flag raw media are deleted once the features exist, whatever was ticked.
        #[arg(long, requires = "kiosk")]
        keep_media: bool,
        /// Where raw media wait for their features when they are kept (default: the board's
        /// `[storage] spool`, a tmpfs).
        #[arg(long, value_name = "DIR", requires = "keep_media")]
        spool: Option<PathBuf>,
        /// Delete results a host has acknowledged (stored in its database) once they are this
        /// many days old; 0 keeps them. Unacknowledged results are never deleted.
        #[arg(long, value_name = "DAYS", default_value_t = 30)]
        keep_acked_days: u32,
        /// Free space (MiB) the data folder's file system must have for a session to start;
        /// below it acknowledged results are deleted first, then sessions are refused.
        #[arg(long, value_name = "MIB", default_value_t = 64)]
        min_free_mb: u64,
    },
    /// List the built-in boards.
    Boards,
    /// Paired hosts, managed at the device (someone with the data folder in hand).
    Pairings {
        /// The device's data folder.
        #[arg(long)]
        data_dir: PathBuf,
        #[command(subcommand)]
        cmd: PairingsCmd,
    },
    /// Record from an ALSA microphone, write the WAV and print its level and quality (feature
    /// `alsa`): a field check of the microphone before sessions.
    #[cfg(feature = "alsa")]
    Mic {
        #[arg(long, default_value = "default")]
        pcm: String,
        #[arg(long, default_value_t = 3.0)]
        seconds: f32,
        #[arg(long)]
        out: PathBuf,
    },
    /// Run the face front-end live on a V4L2 camera and print what it sees (feature `v4l`):
    /// frames, faces, detections and the frame rate. Nothing is stored.
    #[cfg(feature = "v4l")]
    Camera {
        #[arg(long, default_value = "/dev/video0")]
        device: PathBuf,
        #[arg(long, default_value_t = 150)]
        frames: u32,
        #[arg(long, default_value_t = 640)]
        width: u32,
        #[arg(long, default_value_t = 480)]
        height: u32,
        #[arg(long, value_name = "FILE")]
        landmarks: Option<PathBuf>,
    },
}

#[derive(Subcommand, Debug)]
enum PairingsCmd {
    /// List the paired hosts.
    List,
    /// Pair a host key (a `.pub` line of `mimml keys generate`, or `mimml pair --print-key`).
    Add {
        /// The host's public key file.
        #[arg(long)]
        key: PathBuf,
        /// A name for the host.
        #[arg(long, default_value = "added at the device")]
        name: String,
    },
    /// Forget every paired host (each must pair again).
    Reset,
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match Cli::parse().cmd {
        Cmd::Pairings { data_dir, cmd } => {
            std::fs::create_dir_all(&data_dir)
                .with_context(|| format!("cannot create data directory {}", data_dir.display()))?;
            // The daemon must not be running: it holds the list in memory.
            let _lock = device::state::DataDir::lock(&data_dir)?;
            let mut p = device::pairing::Pairings::open(&data_dir)?;
            match cmd {
                PairingsCmd::List => {
                    for (name, key) in p.list() {
                        println!("{key}  {name}");
                    }
                }
                PairingsCmd::Add { key, name } => {
                    let keys = runtime::signing::TrustedKeys::read(&key)?;
                    for (k, _) in keys.iter() {
                        let n = p.add(k.to_bytes(), &name)?;
                        println!("paired {} ({n} hosts paired)", runtime::signing::key_id(k));
                    }
                }
                PairingsCmd::Reset => println!("{} paired hosts forgotten", p.reset()?),
            }
            Ok(())
        }
        Cmd::Boards => {
            for b in Board::builtin()? {
                println!("{:<18} {}", b.name, b.description);
            }
            Ok(())
        }
        #[cfg(feature = "alsa")]
        Cmd::Mic { pcm, seconds, out } => {
            let limit = Duration::from_secs_f32(seconds.clamp(0.1, 3600.0));
            let sink = device::capture::AudioSink::recording(Default::default());
            let recorded = device::capture::alsa::AlsaRecorder::start(&pcm, Some(limit), sink)?.wait()?.finish()?;
            let device::capture::Audio::Clip(clip) = recorded else {
                anyhow::bail!("the microphone check keeps every sample; the recording came back analysed")
            };
            device::capture::write_wav(&out, &clip)?;
            let peak = clip.samples.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            let quality =
                if features::audio::low_quality(&clip) { "LOW (silence, too quiet or clipped)" } else { "ok" };
            println!(
                "{:.2} s recorded from {pcm} to {}: peak {:.1} dBFS, quality {quality}",
                clip.duration_s(),
                out.display(),
                20.0 * peak.max(1e-6).log10()
            );
            Ok(())
        }
        #[cfg(feature = "v4l")]
        Cmd::Camera { device: path, frames, width, height, landmarks } => {
            let mut face = device::load_face(None, landmarks.as_deref())?
                .context("no landmark model: run scripts/install_landmark_model.sh or pass --landmarks")?;
            let source = device::capture::v4l::V4lSource::open(&path, width, height)?;
            let mut limited = vision::video::Take::new(source, frames);
            let started = std::time::Instant::now();
            let (track, stats) = face.track(&mut limited);
            let secs = started.elapsed().as_secs_f32();
            println!(
                "{} frames in {secs:.1} s ({:.1} fps): {} with a face, {} detections, {} with several faces, {} bad frames",
                stats.frames,
                stats.frames as f32 / secs.max(1e-3),
                stats.with_face,
                stats.detections,
                stats.several_faces,
                stats.decode_errors
            );
            let segments = features::segment::fixed_windows(track.duration_ms().max(1));
            if let Some(f) = features::landmarks::segment_features(&track, &segments) {
                for (name, v) in features::landmarks::FEATURE_NAMES.iter().zip(f.mean()) {
                    println!("  {name:<18} {v:.3}");
                }
            }
            Ok(())
        }
        Cmd::Run {
            port,
            listen,
            board,
            board_file,
            data_dir,
            model,
            trusted_keys,
            allow_downgrade,
            confirm_after,
            simulate,
            mic,
            camera,
            camera_size,
            vad,
            landmarks,
            text_encoder,
            asr,
            asr_model,
            face_detector,
            abandon_after,
            min_speech,
            min_face,
            min_words,
            kiosk,
            kiosk_script,
            screen_port,
            keep_media,
            spool,
            keep_acked_days,
            min_free_mb,
        } => {
            let board = match board_file {
                Some(f) => Board::from_file(&f)?,
                None => Board::by_name(&board)?,
            };
            if simulate.is_none() && mic.is_none() && camera.is_none() {
                bail!(
                    "no capture backend chosen: pass --mic PCM and/or --camera DEVICE for capture hardware, \
                     or --simulate DIR to take audio and video from files"
                );
            }
            let port = match listen {
                Some(_) => String::new(),
                None => port
                    .or_else(|| board.link.port.clone())
                    .with_context(|| format!("board {} names no serial port; pass --port or --listen", board.name))?,
            };
            let baud = board.link.baud;
            let panel = panel_for(&board);
            let trusted = match &trusted_keys {
                Some(f) => runtime::signing::TrustedKeys::read(f)?,
                None => {
                    tracing::info!("no --trusted-keys: model bundles cannot be flashed to this device");
                    runtime::signing::TrustedKeys::default()
                }
            };
            let minilm_dir = text_encoder.clone().unwrap_or_else(runtime::minilm::default_dir);
            let transcriber = if asr { device::load_transcriber(asr_model.as_deref()) } else { None };
            let models = device::ModelSetup {
                policy: device::models::StorePolicy {
                    trusted,
                    allow_downgrade,
                    confirm_after,
                    minilm_available: minilm_dir.join("tokenizer.json").exists(),
                    transcribes: transcriber.is_some(),
                },
                loader: device::model_loader(model, text_encoder),
            };
            let vad = device::load_vad(vad.as_deref())?;
            let face = device::load_face(face_detector.as_deref(), landmarks.as_deref())?;
            // Files under --simulate leave their frames for the pipeline's face front-end; live
            // capture takes the face front-end along to its video thread.
            let (capture, pipeline_face, simulated): (Box<dyn Capture>, _, bool) = match simulate {
                Some(dir) => (Box::new(SimulatedCapture::new(&dir)?), face, true),
                None => {
                    let (camera, from_file) = match camera {
                        Some(path) => {
                            let (cam, file) = open_camera(&path, camera_size)?;
                            (Some(cam), file)
                        }
                        None => (None, false),
                    };
                    let mic = mic.map(|pcm| open_mic(&pcm)).transpose()?;
                    (Box::new(LiveCapture::new(mic, camera, face)), None, from_file)
                }
            };
            let kiosk = if kiosk { Some(open_kiosk(&board, kiosk_script.as_deref(), screen_port)?) } else { None };
            let rules = device::SessionRules {
                abandon_after: Duration::from_secs(abandon_after.max(1)),
                retention: Some((
                    device::retention::Retention {
                        acked_max_age: (keep_acked_days > 0)
                            .then(|| Duration::from_secs(u64::from(keep_acked_days) * 86_400)),
                        min_free_bytes: min_free_mb << 20,
                    },
                    Box::new(device::retention::Statvfs),
                )),
                media: keep_media
                    .then(|| (spool.unwrap_or_else(|| board.storage.spool.clone()), data_dir.join("media"))),
            };
            let mut device = device::Setup {
                config: DeviceConfig { data_dir, board, simulated },
                capture,
                panel,
                models,
                front_ends: device::FrontEnds {
                    vad,
                    face: pipeline_face,
                    transcriber,
                    presence: device::pipeline::Presence {
                        min_speech_s: min_speech.max(0.0),
                        min_face_s: min_face.max(0.0),
                        min_words,
                    },
                },
                rules,
                kiosk,
            }
            .open()?;
            device.ready();
            let stop = AtomicBool::new(false);
            if let Some(addr) = listen {
                return serve_tcp(&mut device, addr, &stop);
            }
            // A kiosk must outlive host disconnects: reopen the port after a link error.
            loop {
                match link::open_port(&port, baud) {
                    Ok(p) => {
                        tracing::info!(%port, "serving");
                        if let Err(e) = device::serve_port(&mut device, p, &stop) {
                            tracing::warn!("link lost: {e}; reopening");
                        }
                    }
                    Err(e) => tracing::warn!("{e}; retrying"),
                }
                // The device's own work (results, the kiosk) goes on while no host is there.
                device.idle(Duration::from_secs(1), &stop);
            }
        }
    }
}

/// Serves hosts over TCP, one connection at a time; between connections the device's own work
/// (results, the kiosk) goes on.
fn serve_tcp(device: &mut device::Device, addr: std::net::SocketAddr, stop: &AtomicBool) -> anyhow::Result<()> {
    let listener = std::net::TcpListener::bind(addr).with_context(|| format!("cannot listen on {addr}"))?;
    listener.set_nonblocking(true)?;
    tracing::info!(%addr, "serving over TCP");
    loop {
        match listener.accept() {
            Ok((stream, peer)) => {
                stream.set_nonblocking(false)?;
                tracing::info!(%peer, "host connected");
                let port = link::TcpPort::new(stream)?;
                if let Err(e) = device::serve_port(device, port, stop) {
                    tracing::info!(%peer, "host gone: {e}");
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => device.idle(Duration::from_millis(200), stop),
            Err(e) => return Err(e).context("accepting a host"),
        }
    }
}

/// The kiosk of `board`: the script (the built-in one unless `script`), the board's speaker, and
/// the screen served on `screen_port` (else the board's screen port; none: by button alone).
fn open_kiosk(
    board: &Board,
    script: Option<&std::path::Path>,
    screen_port: Option<u16>,
) -> anyhow::Result<device::kiosk::Kiosk> {
    let script = match script {
        Some(f) => device::kiosk::Script::read(f)?,
        None => device::kiosk::Script::default_script(),
    };
    let speaker: Box<dyn device::kiosk::Speaker> = match &board.speaker {
        Some(s) => Box::new(device::kiosk::Espeak::new(&s.pcm)),
        None => Box::new(device::kiosk::Silent),
    };
    let port = screen_port.or(board.screen.as_ref().map(|s| s.port));
    tracing::info!(prompts = script.prompts.len(), screen = port.is_some(), "kiosk on");
    let kiosk = device::kiosk::Kiosk::new(script, port.is_some(), speaker);
    let Some(port) = port else { return Ok(kiosk) };
    let screen = device::kiosk::Screen::serve(port)
        .with_context(|| format!("cannot serve the kiosk screen on 127.0.0.1:{port}"))?;
    Ok(kiosk.with_screen(screen))
}

fn parse_size(s: &str) -> Result<(u32, u32), String> {
    let (w, h) = s.split_once(['x', 'X']).ok_or("expected WxH, e.g. 640x480")?;
    let w: u32 = w.trim().parse().map_err(|e| format!("width: {e}"))?;
    let h: u32 = h.trim().parse().map_err(|e| format!("height: {e}"))?;
    if !(16..=8192).contains(&w) || !(16..=8192).contains(&h) {
        return Err(format!("{w}x{h} is not a camera size"));
    }
    Ok((w, h))
}

/// A camera: a V4L2 character device, or a file played as one (second value: it is a file).
fn open_camera(path: &std::path::Path, (width, height): (u32, u32)) -> anyhow::Result<(Arc<dyn Camera>, bool)> {
    use std::os::unix::fs::FileTypeExt;
    let is_device = std::fs::metadata(path).is_ok_and(|m| m.file_type().is_char_device()) || path.starts_with("/dev");
    if !is_device {
        return Ok((Arc::new(FileCamera::new(path)), true));
    }
    #[cfg(feature = "v4l")]
    {
        let cam = device::capture::v4l::V4lCamera { path: path.to_owned(), width, height };
        Ok((Arc::new(cam), false))
    }
    #[cfg(not(feature = "v4l"))]
    {
        let _ = (width, height);
        bail!("{} is a camera device, but this build has no V4L2 support (build with --features v4l)", path.display())
    }
}

fn open_mic(pcm: &str) -> anyhow::Result<Box<dyn Microphone>> {
    #[cfg(feature = "alsa")]
    {
        Ok(Box::new(device::capture::alsa::AlsaMicrophone::new(pcm)))
    }
    #[cfg(not(feature = "alsa"))]
    {
        bail!("--mic {pcm}: this build has no ALSA support (build with --features alsa)")
    }
}

/// The board's button and LEDs: rppal on a Raspberry Pi build (`rpi`), else the GPIO character
/// device (`gpio`); the log when the board has none, the build cannot drive them, or they fail
/// to open (the kiosk then runs without them, said loudly).
fn panel_for(board: &Board) -> Box<dyn Panel> {
    let Some(def) = &board.gpio else { return Box::new(LogPanel::default()) };
    #[cfg(feature = "rpi")]
    match boards::GpioPanel::open_rppal(def) {
        Ok(p) => return Box::new(p),
        Err(e) => tracing::warn!("kiosk GPIO (rppal) unavailable: {e}"),
    }
    #[cfg(feature = "gpio")]
    match boards::GpioPanel::open_cdev(def) {
        Ok(p) => return Box::new(p),
        Err(e) => tracing::warn!("kiosk GPIO unavailable, LEDs go to the log: {e}"),
    }
    #[cfg(not(any(feature = "gpio", feature = "rpi")))]
    tracing::warn!(chip = %def.chip, "{}; LEDs go to the log", boards::GpioError::NotCompiled);
    Box::new(LogPanel::default())
}
