//! Helpers for the end-to-end tests in `tests/tests/`.
//!
//! * [`FaultyPort`]: wraps a port and damages chosen outgoing frames — garbage before them,
//!   a truncated copy before them, a flipped bit, or the frame dropped — the faults a real
//!   serial line (loose cable, USB re-enumeration, EMI) produces. Frames are chosen by message
//!   kind and occurrence ("the first `session stop`"), and every frame sent is counted by kind,
//!   so a test can tell a retry happened.
//! * The device itself runs as [`device::DeviceThread`], the helper the demo uses too.

pub mod pg;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use protocol::{DeviceFrame, FrameDecoder, HostFrame, Response, SessionState};

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

/// Names the message a frame carries: the endpoint of a host frame; a device frame's response
/// (a session status with its state, e.g. `session processing`).
pub trait Kind: serde::de::DeserializeOwned {
    /// The kind's name.
    fn kind(&self) -> String;
}

impl Kind for HostFrame {
    fn kind(&self) -> String {
        self.req.name().to_owned()
    }
}

impl Kind for DeviceFrame {
    fn kind(&self) -> String {
        match &self.resp {
            Response::Session(s) => match s.state {
                SessionState::Capturing => "session capturing".into(),
                SessionState::Processing => "session processing".into(),
                SessionState::Done { .. } => "session done".into(),
                SessionState::Failed(_) => "session failed".into(),
            },
            other => other.name().to_owned(),
        }
    }
}

/// Frames written so far, by kind (shared, readable after the port moved to a thread).
pub type Sent = Arc<Mutex<HashMap<String, usize>>>;

/// A port that applies [`Fault`]s to the `n`-th frame (from 0) of a kind of message `M`. The
/// framed link writes each frame with one `write_all`.
#[derive(Debug)]
pub struct FaultyPort<P, M> {
    inner: P,
    plan: HashMap<(String, usize), Fault>,
    sent: Sent,
    applied: Arc<Mutex<Vec<(String, usize)>>>,
    _message: std::marker::PhantomData<fn() -> M>,
}

impl<P, M: Kind> FaultyPort<P, M> {
    /// `inner` with `fault` applied to the `n`-th frame of each `(kind, n, fault)`.
    pub fn new(inner: P, plan: impl IntoIterator<Item = (&'static str, usize, Fault)>) -> Self {
        FaultyPort {
            inner,
            plan: plan.into_iter().map(|(k, n, f)| ((k.to_owned(), n), f)).collect(),
            sent: Sent::default(),
            applied: Arc::default(),
            _message: std::marker::PhantomData,
        }
    }

    /// Frames written, by kind.
    pub fn sent(&self) -> Sent {
        Arc::clone(&self.sent)
    }

    /// The faults applied so far, as (kind, occurrence).
    pub fn applied(&self) -> Arc<Mutex<Vec<(String, usize)>>> {
        Arc::clone(&self.applied)
    }
}

impl<P: Read, M> Read for FaultyPort<P, M> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.inner.read(buf)
    }
}

impl<P: Write, M: Kind> Write for FaultyPort<P, M> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let kind = match FrameDecoder::new().feed::<M>(buf).frame {
            Some(Ok(m)) => m.kind(),
            _ => "undecodable".to_owned(),
        };
        let n = {
            let mut sent = self.sent.lock().map_err(|_| std::io::Error::other("poisoned"))?;
            let count = sent.entry(kind.clone()).or_default();
            *count += 1;
            *count - 1
        };
        let Some(fault) = self.plan.get(&(kind.clone(), n)) else {
            self.inner.write_all(buf)?;
            return Ok(buf.len());
        };
        self.applied.lock().map_err(|_| std::io::Error::other("poisoned"))?.push((kind, n));
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
pub fn small_feature_cache(dir: &Path, seed: u64) -> anyhow::Result<corpus::cache::FeatureCache> {
    small_feature_cache_with(dir, seed, corpus::cache::TextFrontEnds::default())
}

/// [`small_feature_cache`] with the text front-ends `text`: the encoder's embedding, machine
/// transcripts when a transcriber is given.
pub fn small_feature_cache_with(
    dir: &Path,
    seed: u64,
    text: corpus::cache::TextFrontEnds<'_>,
) -> anyhow::Result<corpus::cache::FeatureCache> {
    use corpus::cache::{CacheOptions, FeatureCache, build};
    use corpus::synth::{SynthConfig, write_corpus};
    use features::text::{TextEmbedding, TranscriptSource};
    let cfg = SynthConfig { participants: 40, seed, seconds: 12.0, ..SynthConfig::default() };
    write_corpus(&cfg, &dir.join("corpus"), || {})?;
    let options = CacheOptions {
        text_embedding: text.encoder.map_or(TextEmbedding::Hashed, |e| e.embedding()),
        transcripts: if text.transcriber.is_some() { TranscriptSource::Asr } else { TranscriptSource::Pushed },
        ..CacheOptions::default()
    };
    build(&corpus::daic::Corpus::open(&dir.join("corpus"))?, &dir.join("cache"), options, text, || {})?;
    Ok(FeatureCache::open(&dir.join("cache"))?)
}

/// The bundled sample session.
pub fn sample_session() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../assets/sample/session-001")
}

/// A simulated device whose data live in `data`, on hardware with the serial number in `serial`
/// (none: a board without one), taking text-only sessions from the bundled sample.
pub fn open_device(data: &Path, serial: Option<&Path>) -> Result<device::Device, device::DeviceError> {
    let mut board = boards::Board::by_name("sim").expect("sim");
    board.serial = serial.map(Path::to_owned);
    device::open(
        device::DeviceConfig { data_dir: data.to_owned(), board, simulated: true },
        Box::new(device::capture::SimulatedCapture::new(&sample_session()).expect("sample")),
        Box::new(boards::LogPanel::default()),
        device::ModelSetup::new(Some(device::bundled_model_dir()), Default::default()),
        |loaded| Ok(Box::new(device::SessionPipeline::new(loaded.model, true))),
    )
}

/// A device served on a pty pair, greeted by a host that holds its key.
#[derive(Debug)]
pub struct Served {
    pub device: device::DeviceThread,
    pub client: host::client::DeviceClient<link::TTYPort>,
    pub id: String,
}

/// Serves the device of [`open_device`] on a pty pair.
pub fn serve(data: &Path, serial: Option<&Path>) -> Served {
    let server = open_device(data, serial).expect("device opens");
    let (host_end, device_end) = link::pty_pair().expect("pty");
    let device = device::DeviceThread::serve(server, device_end).expect("serves");
    let mut client = host::client::DeviceClient::new(host_end).with_key(device.host_key());
    let id = client.hello().expect("hello").device_id.as_str().to_owned();
    Served { device, client, id }
}

impl Served {
    /// Stops the device, then closes the host's end (the other order looks like a hang-up).
    pub fn stop(self) -> device::Device {
        let Served { device, client, .. } = self;
        let server = device.stop().expect("device stops");
        drop(client);
        server
    }
}

/// A result as a device would log it; `i` varies its content.
pub fn synthetic_result(i: u64) -> protocol::ResultRecord {
    use protocol::{Modalities, ResultFlags, SchemaHash, truncated};
    let p = (i % 97) as f32 / 97.0;
    let mut flags = ResultFlags::SIMULATED;
    flags.set(ResultFlags::SCREEN_POSITIVE, p >= 0.5);
    protocol::ResultRecord {
        seq: 0,
        session: i as u32,
        label: truncated(&format!("s{i}")),
        started_ms: 1_780_000_000_000 + i * 600_000,
        finished_ms: 1_780_000_000_000 + i * 600_000 + 420_000,
        compute_ms: 900 + (i % 50) as u32,
        p_depressed: p,
        phq8: 24.0 * p,
        gates: [0.3, 0.3, 0.4],
        modalities: Modalities::ALL,
        model_version: truncated("mimml-synth-1"),
        feature_schema: SchemaHash([7, 1, 2, 3, 4, 5, 6, 8]),
        flags,
        questionnaire: None,
    }
}

/// A device data folder (opened once, so it has its id and state) whose log then gets `n`
/// synthetic results appended, as if it had run `n` sessions.
pub fn device_with_results(data: &Path, serial: Option<&Path>, n: u64) {
    if !data.join("state.toml").exists() {
        drop(open_device(data, serial).expect("device opens"));
    }
    let mut log = device::log::ResultLog::open(&data.join("results.log"), 0, 0).expect("log");
    let first = log.next_seq();
    for i in 0..n {
        log.append(synthetic_result(first + i)).expect("append");
    }
}

/// Copies a folder tree (a device's data: what imaging a card does).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("ls") {
        let p = e.expect("entry").path();
        let target = to.join(p.file_name().expect("name"));
        if p.is_dir() {
            copy_dir(&p, &target);
        } else {
            std::fs::copy(&p, target).expect("copy");
        }
    }
}

/// Results of every kind a report must show, as a database returns them: a kiosk screening
/// with a PHQ-9 whose item 9 was answered (urgent), a positive and a negative screen, one
/// without usable video, one with too little data, and a label that tries to be a spreadsheet
/// formula. The report tests and `cargo run -p tests --example report_samples` use them.
pub fn report_samples() -> Vec<host::db::StoredResult> {
    use protocol::{Instrument, Modalities, Questionnaire, ResultFlags, truncated};
    let model = "mimml-494712533331d5b9-s1";
    let base = |seq: u64, p: f32, flags: ResultFlags| {
        let mut r = synthetic_result(seq);
        r.seq = seq;
        r.p_depressed = p;
        r.phq8 = (24.0 * p * 10.0).round() / 10.0;
        r.flags = flags;
        r.model_version = truncated(model);
        r.feature_schema = protocol::SchemaHash([0xc5, 0xcd, 0x2b, 0xa1, 0x48, 0xad, 0xf8, 0x96]);
        r
    };
    let stored = |device: &str, record: protocol::ResultRecord| host::db::StoredResult {
        device_id: device.to_owned(),
        synced_at_ms: record.finished_ms + 3_600_000,
        record,
    };
    let mut negative = base(1, 0.21, ResultFlags::empty());
    negative.label = truncated("P-0412");
    negative.gates = [0.41, 0.33, 0.26];
    let mut positive = base(2, 0.74, ResultFlags::SCREEN_POSITIVE);
    positive.label = truncated("P-0413");
    positive.gates = [0.37, 0.36, 0.27];
    let mut no_video = base(3, 0.38, ResultFlags::NO_FACE | ResultFlags::CAMERA_LOST);
    no_video.label = truncated("=HYPERLINK(\"x\")");
    no_video.modalities = Modalities::AUDIO | Modalities::TEXT;
    no_video.gates = [0.58, 0.0, 0.42];
    let mut little = base(4, 0.0, ResultFlags::INSUFFICIENT_DATA | ResultFlags::TOO_LITTLE_SPEECH);
    little.label = truncated("P-0415");
    little.modalities = Modalities::VIDEO;
    little.gates = [0.0, 1.0, 0.0];
    let mut urgent = base(7, 0.66, ResultFlags::SCREEN_POSITIVE | ResultFlags::URGENT | ResultFlags::KIOSK);
    urgent.label = truncated("P-0420");
    urgent.gates = [0.31, 0.29, 0.40];
    urgent.questionnaire = Some(Questionnaire::new(Instrument::Phq9, &[2, 2, 1, 2, 1, 2, 1, 0, 1]).expect("valid"));
    let mut kiosk = base(8, 0.29, ResultFlags::KIOSK);
    kiosk.label = truncated("P-0421");
    kiosk.questionnaire = Some(Questionnaire::new(Instrument::Phq8, &[1, 0, 1, 1, 0, 0, 1, 0]).expect("valid"));
    vec![
        stored("clinic-a-kiosk1", negative),
        stored("clinic-a-kiosk1", positive),
        stored("clinic-a-kiosk1", no_video),
        stored("field-unit-07", little),
        stored("field-unit-07", urgent),
        stored("field-unit-07", kiosk),
    ]
}
