//! Microphone capture through ALSA (feature `alsa`): 16-bit mono at 16 kHz (or the nearest rate
//! the device grants, resampled by the audio front-end), recorded on a thread from `start` to
//! `stop`. Tested for real with ALSA's `file` plugin, which captures PCM from a file without a
//! sound card.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::thread::JoinHandle;

use alsa::pcm::{Access, Format, HwParams, PCM};
use alsa::{Direction, ValueOr};
use features::audio::AudioClip;

use super::CaptureError;

const CHUNK: usize = 1600; // 100 ms at 16 kHz

fn err(pcm: &str, source: impl Into<super::BoxError>) -> CaptureError {
    CaptureError::Microphone { device: format!("ALSA PCM {pcm}"), source: source.into() }
}

/// A recording in progress.
#[derive(Debug)]
pub struct AlsaRecorder {
    pcm: String,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Result<Vec<i16>, alsa::Error>>>,
    rate: u32,
    /// The level of the last chunk read (f32 bits; see [`super::level_of`]).
    level: Arc<AtomicU32>,
}

impl AlsaRecorder {
    /// Opens `pcm` (e.g. `default`, `hw:1,0`, `plughw:1,0`) and starts recording, until
    /// [`stop`](Self::stop) or, with a `limit`, until that much audio is recorded. A PCM that
    /// cannot be opened or configured is an error here, before the session starts.
    pub fn start(pcm: &str, limit: Option<std::time::Duration>) -> Result<AlsaRecorder, CaptureError> {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<u32, alsa::Error>>();
        let stop = Arc::new(AtomicBool::new(false));
        let (name, flag) = (pcm.to_owned(), Arc::clone(&stop));
        let level = Arc::new(AtomicU32::new(0));
        let meter = Arc::clone(&level);
        let thread = std::thread::spawn(move || -> Result<Vec<i16>, alsa::Error> {
            let open = || -> alsa::Result<(PCM, u32)> {
                let p = PCM::new(&name, Direction::Capture, false)?;
                let rate = {
                    let hw = HwParams::any(&p)?;
                    hw.set_access(Access::RWInterleaved)?;
                    hw.set_format(Format::s16())?;
                    hw.set_channels(1)?;
                    let rate = hw.set_rate_near(features::audio::SAMPLE_RATE, ValueOr::Nearest)?;
                    p.hw_params(&hw)?;
                    rate
                };
                p.prepare()?;
                Ok((p, rate))
            };
            let (p, rate) = match open() {
                Ok(v) => v,
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return Err(e);
                }
            };
            let _ = ready_tx.send(Ok(rate));
            let max = limit.map_or(usize::MAX, |d| (d.as_secs_f64() * f64::from(rate)).round() as usize);
            let io = p.io_i16()?;
            let mut samples = Vec::new();
            let mut buf = [0i16; CHUNK];
            let started = std::time::Instant::now();
            while !flag.load(Ordering::Relaxed) && samples.len() < max {
                let want = CHUNK.min(max - samples.len());
                match io.readi(&mut buf[..want]) {
                    Ok(0) => break,
                    Ok(n) => {
                        samples.extend_from_slice(&buf[..n]);
                        let tail = &samples[samples.len().saturating_sub(rate as usize / 10)..];
                        let tail: Vec<f32> = tail.iter().map(|&v| f32::from(v) / 32768.0).collect();
                        meter.store(super::level_of(&tail).to_bits(), Ordering::Relaxed);
                        // A microphone cannot deliver faster than its clock. A PCM that does (a
                        // broken driver, or ALSA's null and file plugins, which tests use) is held
                        // to real time, so a session never records hours in seconds.
                        let ahead = samples.len() as f64 / f64::from(rate) - started.elapsed().as_secs_f64();
                        if ahead > 0.05 {
                            std::thread::sleep(std::time::Duration::from_secs_f64(ahead));
                        }
                    }
                    // An overrun loses a chunk; recover and go on (logged).
                    Err(e) => {
                        tracing::warn!("ALSA read: {e}; recovering");
                        p.try_recover(e, true)?;
                    }
                }
            }
            let _ = p.drop();
            Ok(samples)
        });
        match ready_rx.recv() {
            Ok(Ok(rate)) => {
                tracing::info!(pcm, rate, "microphone recording");
                Ok(AlsaRecorder { pcm: pcm.to_owned(), stop, thread: Some(thread), rate, level })
            }
            Ok(Err(e)) => Err(err(pcm, e)),
            Err(_) => Err(CaptureError::Thread("microphone")),
        }
    }

    /// Stops and returns the recording.
    pub fn stop(self) -> Result<AudioClip, CaptureError> {
        self.stop.store(true, Ordering::Relaxed);
        self.finish()
    }

    /// Waits until the recording reaches its limit (or the PCM ends) and returns it.
    pub fn wait(self) -> Result<AudioClip, CaptureError> {
        self.finish()
    }

    fn finish(mut self) -> Result<AudioClip, CaptureError> {
        let samples = match self.thread.take().map(JoinHandle::join) {
            Some(Ok(Ok(s))) => s,
            Some(Ok(Err(e))) => return Err(err(&self.pcm, e)),
            _ => return Err(CaptureError::Thread("microphone")),
        };
        let clip = AudioClip { rate: self.rate, samples: samples.iter().map(|&v| f32::from(v) / 32768.0).collect() };
        clip.to_frontend_rate().map_err(CaptureError::Audio)
    }
}

impl Drop for AlsaRecorder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// An ALSA capture PCM as the session's [`Microphone`](super::live::Microphone).
#[derive(Debug)]
pub struct AlsaMicrophone {
    pcm: String,
    recording: Option<AlsaRecorder>,
}

impl AlsaMicrophone {
    /// The capture PCM `pcm` (`default`, `plughw:1,0`, ...), opened at each session.
    pub fn new(pcm: &str) -> AlsaMicrophone {
        AlsaMicrophone { pcm: pcm.to_owned(), recording: None }
    }
}

impl super::live::Microphone for AlsaMicrophone {
    fn start(&mut self) -> Result<(), CaptureError> {
        // A recording left over from an aborted session is dropped (its thread stops).
        self.recording = Some(AlsaRecorder::start(&self.pcm, None)?);
        Ok(())
    }

    fn stop(&mut self) -> Result<AudioClip, CaptureError> {
        self.recording.take().ok_or_else(|| err(&self.pcm, "not recording"))?.stop()
    }

    fn level(&self) -> Option<f32> {
        self.recording.as_ref().map(|r| f32::from_bits(r.level.load(Ordering::Relaxed)))
    }
}
