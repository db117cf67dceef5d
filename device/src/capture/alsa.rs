//! Microphone capture through ALSA (feature `alsa`): 16-bit mono at 16 kHz (or the nearest rate
//! the device grants, resampled by the audio front-end), recorded on a thread from `start` to
//! `stop`. Tested for real with ALSA's `file` plugin, which captures PCM from a file without a
//! sound card.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use alsa::pcm::{Access, Format, HwParams, PCM};
use alsa::{Direction, ValueOr};

use super::{AudioSink, CaptureError};

const CHUNK: usize = 1600; // 100 ms at 16 kHz

fn err(pcm: &str, source: impl Into<super::BoxError>) -> CaptureError {
    CaptureError::Microphone { device: format!("ALSA PCM {pcm}"), source: source.into() }
}

/// A recording in progress.
#[derive(Debug)]
pub struct AlsaRecorder {
    pcm: String,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Result<AudioSink, alsa::Error>>>,
}

impl AlsaRecorder {
    /// Opens `pcm` (e.g. `default`, `hw:1,0`, `plughw:1,0`) and starts recording, until
    /// [`stop`](Self::stop) or, with a `limit`, until that much audio is recorded. A PCM that
    /// cannot be opened or configured is an error here, before the session starts.
    pub fn start(
        pcm: &str,
        limit: Option<std::time::Duration>,
        mut sink: AudioSink,
    ) -> Result<AlsaRecorder, CaptureError> {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<u32, alsa::Error>>();
        let stop = Arc::new(AtomicBool::new(false));
        let (name, flag) = (pcm.to_owned(), Arc::clone(&stop));
        let thread = std::thread::spawn(move || -> Result<AudioSink, alsa::Error> {
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
            sink.set_rate(rate);
            let max = limit.map_or(usize::MAX, |d| (d.as_secs_f64() * f64::from(rate)).round() as usize);
            let io = p.io_i16()?;
            let mut taken = 0usize;
            let mut buf = [0i16; CHUNK];
            let mut chunk = Vec::with_capacity(CHUNK);
            let started = std::time::Instant::now();
            while !flag.load(Ordering::Relaxed) && taken < max {
                let want = CHUNK.min(max - taken);
                match io.readi(&mut buf[..want]) {
                    Ok(0) => break,
                    Ok(n) => {
                        chunk.clear();
                        chunk.extend(buf[..n].iter().map(|&v| f32::from(v) / 32768.0));
                        sink.push(&chunk);
                        taken += n;
                        // A microphone cannot deliver faster than its clock. A PCM that does (a
                        // broken driver, or ALSA's null and file plugins, which tests use) is held
                        // to real time, so a session never records hours in seconds.
                        let ahead = taken as f64 / f64::from(rate) - started.elapsed().as_secs_f64();
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
            Ok(sink)
        });
        match ready_rx.recv() {
            Ok(Ok(rate)) => {
                tracing::info!(pcm, rate, "microphone recording");
                Ok(AlsaRecorder { pcm: pcm.to_owned(), stop, thread: Some(thread) })
            }
            Ok(Err(e)) => Err(err(pcm, e)),
            Err(_) => Err(CaptureError::Thread("microphone")),
        }
    }

    /// Stops and returns the sink with the recording.
    pub fn stop(self) -> Result<AudioSink, CaptureError> {
        self.stop.store(true, Ordering::Relaxed);
        self.finish()
    }

    /// Waits until the recording reaches its limit (or the PCM ends) and returns the sink.
    pub fn wait(self) -> Result<AudioSink, CaptureError> {
        self.finish()
    }

    fn finish(mut self) -> Result<AudioSink, CaptureError> {
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(Ok(sink))) => Ok(sink),
            Some(Ok(Err(e))) => Err(err(&self.pcm, e)),
            _ => Err(CaptureError::Thread("microphone")),
        }
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
    fn start(&mut self, sink: AudioSink) -> Result<(), CaptureError> {
        // A recording left over from an aborted session is dropped (its thread stops).
        self.recording = Some(AlsaRecorder::start(&self.pcm, None, sink)?);
        Ok(())
    }

    fn stop(&mut self) -> Result<AudioSink, CaptureError> {
        self.recording.take().ok_or_else(|| err(&self.pcm, "not recording"))?.stop()
    }
}
