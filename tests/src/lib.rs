//! Helpers for the end-to-end tests in `tests/tests/`.
//!
//! * [`FaultyPort`]: wraps a port and damages chosen outgoing frames — garbage before them,
//!   a truncated copy before them, a flipped bit, or the frame dropped — the faults a real
//!   serial line (loose cable, USB re-enumeration, EMI) produces.
//! * [`Rig`]: a simulated device on one end of a pty pair, served on a thread.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;

/// What to do to one outgoing frame.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// Write these bytes first (they may contain delimiters).
    GarbageBefore(Vec<u8>),
    /// Write the first half of this frame first, with no end delimiter, as if the line dropped.
    TruncatedCopyBefore,
    /// Flip one bit in the frame body: the receiver's CRC check must reject it.
    FlipBit,
    /// Do not send the frame at all.
    Drop,
}

/// A port that applies [`Fault`]s to chosen frames (counted from 0 in write order; the framed
/// link writes each frame with one `write_all`).
#[derive(Debug)]
pub struct FaultyPort<P> {
    inner: P,
    plan: HashMap<usize, Fault>,
    frames: usize,
    applied: Arc<AtomicUsize>,
}

impl<P> FaultyPort<P> {
    pub fn new(inner: P, plan: impl IntoIterator<Item = (usize, Fault)>) -> Self {
        FaultyPort { inner, plan: plan.into_iter().collect(), frames: 0, applied: Arc::new(AtomicUsize::new(0)) }
    }

    /// Counts faults applied so far (shared, readable after the port moved to a thread).
    pub fn applied(&self) -> Arc<AtomicUsize> {
        Arc::clone(&self.applied)
    }
}

impl<P: Read> Read for FaultyPort<P> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.inner.read(buf)
    }
}

impl<P: Write> Write for FaultyPort<P> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.frames;
        self.frames += 1;
        let Some(fault) = self.plan.get(&n) else {
            self.inner.write_all(buf)?;
            return Ok(buf.len());
        };
        self.applied.fetch_add(1, Ordering::Relaxed);
        match fault {
            Fault::GarbageBefore(junk) => {
                self.inner.write_all(junk)?;
                self.inner.write_all(buf)?;
            }
            Fault::TruncatedCopyBefore => {
                // The frame starts with a delimiter; its first half has no closing one.
                self.inner.write_all(&buf[..buf.len() / 2])?;
                self.inner.write_all(buf)?;
            }
            Fault::FlipBit => {
                let mut b = buf.to_vec();
                let mid = b.len() / 2;
                b[mid] ^= if b[mid] == 0x01 { 0x02 } else { 0x01 };
                self.inner.write_all(&b)?;
            }
            Fault::Drop => {}
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// A small synthetic corpus (40 participants × 12 s, `seed`) and its feature cache, in `dir`.
pub fn small_feature_cache(dir: &Path, seed: u64) -> anyhow::Result<models::corpus::cache::FeatureCache> {
    small_feature_cache_with(dir, seed, None)
}

/// [`small_feature_cache`] with the text features of `encoder`.
pub fn small_feature_cache_with(
    dir: &Path,
    seed: u64,
    encoder: Option<&dyn features::text::SentenceEncoder>,
) -> anyhow::Result<models::corpus::cache::FeatureCache> {
    use models::corpus::cache::{CacheOptions, FeatureCache, build};
    use models::corpus::synth::{SynthConfig, write_corpus};
    let cfg = SynthConfig { participants: 40, seed, seconds: 12.0, ..SynthConfig::default() };
    write_corpus(&cfg, &dir.join("corpus"), || {})?;
    let text_embedding = encoder.map_or(features::text::TextEmbedding::Hashed, |e| e.embedding());
    build(
        &models::corpus::daic::Corpus::open(&dir.join("corpus"))?,
        &dir.join("cache"),
        CacheOptions { text_embedding, ..CacheOptions::default() },
        encoder,
        || {},
    )?;
    Ok(FeatureCache::open(&dir.join("cache"))?)
}

/// The bundled sample session.
pub fn sample_session() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../assets/sample/session-001")
}

/// A simulated device served on a thread, on one end of a pty pair.
#[derive(Debug)]
pub struct Rig {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Result<device::Device, device::DeviceError>>>,
}

impl Rig {
    /// Starts a device with data in `data_dir`, serving `port` (wrapped by `wrap`).
    pub fn start<P: Read + Write + Send + 'static>(data_dir: &Path, port: P) -> anyhow::Result<Rig> {
        Self::serve(device::simulated(data_dir, &sample_session())?, port)
    }

    /// Serves `port` with a device of the caller's making.
    pub fn serve<P: Read + Write + Send + 'static>(mut device: device::Device, port: P) -> anyhow::Result<Rig> {
        let stop = Arc::new(AtomicBool::new(false));
        let s = Arc::clone(&stop);
        let thread = std::thread::spawn(move || device::serve_port(&mut device, port, &s).map(|()| device));
        Ok(Rig { stop, thread: Some(thread) })
    }

    /// Stops the device and hands it back for inspection.
    pub fn stop(mut self) -> anyhow::Result<device::Device> {
        self.stop.store(true, Ordering::Relaxed);
        let t = self.thread.take().ok_or_else(|| anyhow::anyhow!("already stopped"))?;
        let device = t.join().map_err(|_| anyhow::anyhow!("device thread panicked"))??;
        Ok(device)
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
