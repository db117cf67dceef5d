//! Model updates on the device: signed bundles through the protocol server, A/B slots with a
//! trial, and the store under injected faults.
//!
//! * Bad input, one test each: every refusal is a typed error and the model that served before
//!   still serves.
//! * Trial: the new model serves from the next session; confirm, rollback, a failed self-test
//!   at load and a crash loop revert as they should.
//! * Fault injection (the MCUboot simulator's idea): a flash is cut at every storage operation
//!   in turn — the process killed there, or the operation failing with ENOSPC or EIO — then the
//!   device restarts; it must serve a whole signed model (old or new), its metadata must be
//!   consistent, and running the flash again must complete.
//! * Link faults: chunks dropped, duplicated, reordered or replaced by garbage; the committed
//!   bundle is byte-identical to the source or the upload is refused.

use std::path::{Path, PathBuf};

use device::models::{ModelStore, Serving, StoreError, StorePolicy};
use device::storage::{Fault, FaultyStorage, FsStorage};
use ed25519_dalek::{Signer, SigningKey};
use protocol::*;
use runtime::bundle;
use runtime::signing::{self, TrustedKeys};
use sha2::{Digest, Sha256};

fn assets() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../assets/model")
}

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

/// A copy of the committed int8 bundle, changed by `edit` (file name → bytes), signed by `k`
/// as `version`.
fn bundle_with(k: &SigningKey, version: u64, edit: impl FnOnce(&Path)) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    for f in ["manifest.toml", "model.onnx", "golden.json"] {
        std::fs::copy(assets().join("mimml-synth-int8").join(f), dir.path().join(f)).expect("copy");
    }
    edit(dir.path());
    bundle::sign_bundle(dir.path(), k, Some(version)).expect("signs");
    dir
}

fn bundle(k: &SigningKey, version: u64) -> tempfile::TempDir {
    bundle_with(k, version, |_| {})
}

/// Recomputes the manifest's hash of `file` after an edit.
fn rehash(dir: &Path, file: &str) {
    let path = dir.join("manifest.toml");
    let mut m: runtime::bundle::Manifest =
        toml::from_str(&std::fs::read_to_string(&path).expect("read")).expect("toml");
    let bytes = std::fs::read(dir.join(file)).expect("read");
    m.files.insert(file.into(), hex::encode(Sha256::digest(&bytes)));
    std::fs::write(&path, toml::to_string(&m).expect("toml")).expect("write");
}

/// An upload of a packed bundle.
struct Upload {
    archive: Vec<u8>,
    begin: UploadBegin,
}

fn upload_of(dir: &Path) -> Upload {
    let (archive, manifest) = bundle::pack(dir).expect("packs");
    let sig = signing::parse_signature(&std::fs::read_to_string(dir.join("manifest.sig")).expect("sig")).expect("sig");
    let begin = UploadBegin {
        manifest: heapless::Vec::from_slice(&manifest).expect("fits"),
        signature: heapless::Vec::from_slice(&sig.to_bytes()).expect("64"),
        total_size: archive.len() as u32,
        sha256: Sha256::digest(&archive).into(),
        allow_downgrade: false,
    };
    Upload { archive, begin }
}

fn chunk(archive: &[u8], offset: usize, len: usize) -> UploadChunk {
    let end = (offset + len).min(archive.len());
    UploadChunk { offset: offset as u32, data: heapless::Vec::from_slice(&archive[offset..end]).expect("chunk") }
}

// ---------------------------------------------------------------------------------------------
// Through the protocol server, with the real model loader (hashes, schema, golden self-test).

struct Rig {
    server: device::Device,
    id: u32,
    _data: tempfile::TempDir,
}

fn rig_with(trusted: TrustedKeys, allow_downgrade: bool, minilm_available: bool) -> Rig {
    rig_of(StorePolicy { trusted, allow_downgrade, confirm_after: 0, minilm_available, transcribes: true })
}

fn rig_of(policy: StorePolicy) -> Rig {
    let data = tempfile::tempdir().expect("tempdir");
    rig_in(data, policy)
}

/// A simulated device on `data` taking models as `setup` says.
fn open_device(data: &Path, setup: device::ModelSetup) -> device::Device {
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("../assets/sample/session-001");
    device::open(
        device::DeviceConfig {
            data_dir: data.to_owned(),
            board: boards::Board::by_name("sim").expect("sim"),
            simulated: true,
        },
        Box::new(device::capture::SimulatedCapture::new(&sample).expect("sample")),
        Box::new(boards::LogPanel::default()),
        setup,
        |loaded| Ok(Box::new(device::SessionPipeline::new(loaded.model, true))),
    )
    .expect("device opens")
}

fn rig_in(data: tempfile::TempDir, policy: StorePolicy) -> Rig {
    let mut server = open_device(
        data.path(),
        device::ModelSetup { policy, loader: device::model_loader(Some(assets().join("mimml-synth")), None) },
    );
    let host = key(200);
    server.pairings().add(host.verifying_key().to_bytes(), "test").expect("pairs");
    let mut rig = Rig { server, id: 0, _data: data };
    rig.connect();
    rig
}

fn rig(trusted: &SigningKey) -> Rig {
    rig_with(TrustedKeys::single(trusted.verifying_key(), "clinic"), false, true)
}

impl Rig {
    fn call(&mut self, req: Request) -> Response {
        self.id += 1;
        self.server.request(HostFrame { id: self.id, req }).resp
    }

    fn connect(&mut self) -> DeviceInfo {
        let Response::DeviceInfo(info) =
            self.call(Request::Hello(Hello { protocol_version: PROTOCOL_VERSION, host: truncated("t") }))
        else {
            panic!("hello")
        };
        let host = key(200);
        let host_key = host.verifying_key().to_bytes();
        let msg = protocol::signed::auth_message(&info.device_id, &info.challenge, &host_key);
        let sig = heapless::Vec::from_slice(&host.sign(&msg).to_bytes()).expect("64");
        match self.call(Request::Auth(Auth { host_key, signature: sig })) {
            Response::DeviceInfo(i) => i,
            other => panic!("{other:?}"),
        }
    }

    fn serving(&mut self) -> String {
        self.server.sessions().wait_idle(std::time::Duration::from_secs(5));
        self.server.info().active_model_version.to_string()
    }

    /// Begins, sends every chunk and commits; the first refusal's code.
    fn flash(&mut self, u: &Upload) -> Result<UploadStatus, ErrorCode> {
        let ok = |r: Response| match r {
            Response::Upload(s) => Ok(s),
            Response::Error(e) => Err(e.code),
            other => panic!("{other:?}"),
        };
        let s = ok(self.call(Request::UploadBegin(u.begin.clone())))?;
        if s.next_offset as usize == u.archive.len() && matches!(s.slot.state, SlotState::Trial | SlotState::Active) {
            return Ok(s);
        }
        let mut off = s.next_offset as usize;
        while off < u.archive.len() {
            off = ok(self.call(Request::UploadChunk(chunk(&u.archive, off, MAX_CHUNK))))?.next_offset as usize;
        }
        ok(self.call(Request::UploadCommit))
    }
}

fn code(r: &Response) -> Option<ErrorCode> {
    match r {
        Response::Error(e) => Some(e.code),
        _ => None,
    }
}

const FACTORY: &str = "mimml-494712533331d5b9-s1";
const INT8: &str = "mimml-494712533331d5b9-s1-int8";

#[test]
fn a_signed_bundle_goes_on_trial_serves_from_the_next_session_and_is_confirmed() {
    let clinic = key(1);
    let mut r = rig(&clinic);
    assert_eq!(r.serving(), FACTORY);
    let b = bundle(&clinic, 2);
    let s = r.flash(&upload_of(b.path())).expect("flashes");
    assert_eq!((s.slot.state, s.slot.version, s.slot.model_version.as_str()), (SlotState::Trial, 2, INT8));
    assert_eq!(r.serving(), INT8);
    // The installed slot is byte for byte the bundle.
    let slot = r.server.model_store().serving().dir().expect("a slot").to_owned();
    for f in ["manifest.toml", "manifest.sig", "model.onnx", "golden.json"] {
        assert_eq!(std::fs::read(slot.join(f)).expect("slot"), std::fs::read(b.path().join(f)).expect("src"), "{f}");
    }
    // Flashing it again sends nothing: it is there.
    let again = r.flash(&upload_of(b.path())).expect("already there");
    assert_eq!(again.slot.state, SlotState::Trial);
    assert!(matches!(r.call(Request::UploadConfirm), Response::Upload(s) if s.slot.version == 2));
    assert_eq!(code(&r.call(Request::UploadConfirm)), Some(ErrorCode::NoUpload));
    let info = r.connect();
    assert_eq!(info.active_model_version.as_str(), INT8);
    assert!(info.slots.iter().any(|s| s.state == SlotState::Active && s.version == 2));
}

/// Runs one text session on the rig, flashing `during` while it captures; the model version its
/// result carries.
fn session_on(r: &mut Rig, during: Option<&Upload>) -> String {
    let Response::Session(s) = r.call(Request::SessionStart(SessionStart {
        modalities: Modalities::TEXT,
        label: truncated("t"),
        host_time_ms: 0,
    })) else {
        panic!("start")
    };
    r.call(Request::TranscriptChunk(TranscriptChunk {
        session: s.session,
        utterance: 0,
        part: 0,
        last_part: true,
        start_ms: 0,
        end_ms: 0,
        speaker: Speaker::Participant,
        text: truncated("I have been sleeping badly and I feel tired most days of the week"),
    }));
    if let Some(u) = during {
        assert_eq!(r.flash(u).map(|s| s.slot.state), Ok(SlotState::Trial));
        assert_eq!(r.server.info().active_model_version.as_str(), FACTORY, "not while a session captures");
    }
    r.call(Request::SessionStop(s.session));
    assert!(r.server.sessions().wait_idle(std::time::Duration::from_secs(60)));
    match r.call(Request::SessionStatus(s.session)) {
        Response::Session(SessionStatus { state: SessionState::Done { seq }, .. }) => {
            r.server.log().get(seq).expect("logged").model_version.to_string()
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_session_running_at_commit_finishes_on_the_model_it_started_with() {
    let clinic = key(1);
    let mut r = rig(&clinic);
    let u = upload_of(bundle(&clinic, 2).path());
    assert_eq!(session_on(&mut r, Some(&u)), FACTORY);
    assert_eq!(session_on(&mut r, None), INT8);
    assert_eq!(r.serving(), INT8);
}

#[test]
fn a_rollback_returns_to_the_confirmed_model_and_a_crash_loop_reverts_the_trial() {
    let clinic = key(1);
    let mut r =
        rig_in(tempfile::tempdir().expect("tempdir"), StorePolicy { minilm_available: true, ..policy_of(&clinic) });
    let path = r._data.path().to_owned();
    r.flash(&upload_of(bundle(&clinic, 2).path())).expect("flashes");
    assert_eq!(r.serving(), INT8);
    assert!(matches!(r.call(Request::UploadRollback), Response::Upload(_)));
    assert_eq!(r.serving(), FACTORY);
    // On trial again; the device then restarts without a confirmation, again and again.
    r.flash(&upload_of(bundle(&clinic, 3).path())).expect("flashes");
    let Rig { server, _data: data, .. } = r;
    drop(server);
    let policy = || StorePolicy { trusted: TrustedKeys::single(clinic.verifying_key(), "c"), ..Default::default() };
    for start in 1..=device::models::MAX_TRIAL_STARTS {
        let s = ModelStore::open(&path.join("models"), policy(), Box::new(FsStorage)).expect("opens");
        assert!(
            matches!(s.serving(), Serving::Trial(_)),
            "start {start} still on trial: {:?} {:?}",
            s.serving(),
            s.slots()
        );
    }
    let s = ModelStore::open(&path.join("models"), policy(), Box::new(FsStorage)).expect("opens");
    assert_eq!(s.serving(), Serving::Factory, "a crash loop reverts to the confirmed (factory) model");
    drop(data);
}

#[test]
fn a_trial_model_that_fails_its_self_test_at_load_is_rolled_back() {
    let clinic = key(1);
    let mut r = rig(&clinic);
    r.flash(&upload_of(bundle(&clinic, 2).path())).expect("flashes");
    assert_eq!(r.serving(), INT8);
    let Rig { server, _data: data, .. } = r;
    drop(server);
    // The device restarts with firmware whose arithmetic no longer passes the new model's golden
    // test: the factory model loads, the flashed one does not.
    let factory = device::model_loader(Some(assets().join("mimml-synth")), None);
    let setup = device::ModelSetup {
        policy: StorePolicy { trusted: TrustedKeys::single(clinic.verifying_key(), "c"), ..Default::default() },
        loader: Box::new(move |dir| match dir {
            Some(_) => Err(runtime::ModelError::SelfTest { worst: 0.3, tolerance: 1e-4 }),
            None => factory(None),
        }),
    };
    let mut server = open_device(data.path(), setup);
    assert_eq!(server.info().active_model_version.as_str(), FACTORY);
    assert_eq!(server.model_store().serving(), Serving::Factory);
    assert!(server.info().slots.iter().any(|s| s.state == SlotState::Inactive && s.version == 2));
    assert!(server.sessions().wait_idle(std::time::Duration::from_secs(1)));
}

#[test]
fn the_device_confirms_a_trial_itself_after_good_sessions_when_configured() {
    let clinic = key(1);
    let dir = tempfile::tempdir().expect("tempdir");
    let policy = StorePolicy {
        trusted: TrustedKeys::single(clinic.verifying_key(), "c"),
        confirm_after: 2,
        ..Default::default()
    };
    let mut s = ModelStore::open(dir.path(), policy, Box::new(FsStorage)).expect("opens");
    let u = upload_of(bundle(&clinic, 4).path());
    s.begin(&u.begin).expect("begins");
    s.chunk(&chunk(&u.archive, 0, u.archive.len().min(MAX_CHUNK))).expect("chunk");
    let mut off = MAX_CHUNK.min(u.archive.len());
    while off < u.archive.len() {
        off = s.chunk(&chunk(&u.archive, off, MAX_CHUNK)).expect("chunk").next_offset as usize;
    }
    s.commit(|_| Ok(())).expect("commits");
    assert!(!s.session_ok().expect("counts"));
    assert!(s.session_ok().expect("counts"), "confirmed after the second");
    assert!(matches!(s.serving(), Serving::Confirmed(_)));
    assert_eq!(s.floor(), 4);
}

#[test]
fn a_forged_signature_is_refused_and_the_old_model_serves() {
    let clinic = key(1);
    let mut r = rig(&clinic);
    let mut u = upload_of(bundle(&clinic, 2).path());
    u.begin.signature[10] ^= 1;
    assert_eq!(r.flash(&u), Err(ErrorCode::BadSignature));
    assert_eq!(r.serving(), FACTORY);
}

#[test]
fn an_unknown_key_is_refused() {
    let clinic = key(1);
    let mut r = rig(&clinic);
    assert_eq!(r.flash(&upload_of(bundle(&key(66), 2).path())), Err(ErrorCode::BadSignature));
    assert_eq!(r.serving(), FACTORY);
}

#[test]
fn a_file_changed_after_signing_is_refused_at_commit() {
    let clinic = key(1);
    let mut r = rig(&clinic);
    let b = bundle(&clinic, 2);
    let mut golden = std::fs::read(b.path().join("golden.json")).expect("read");
    golden.push(b' ');
    std::fs::write(b.path().join("golden.json"), golden).expect("write");
    assert_eq!(r.flash(&upload_of(b.path())), Err(ErrorCode::BundleRejected));
    assert_eq!(r.serving(), FACTORY);
    assert!(!r._data.path().join("models/upload").exists(), "the refused upload is gone");
}

#[test]
fn a_truncated_last_chunk_leaves_the_upload_incomplete() {
    let clinic = key(1);
    let mut r = rig(&clinic);
    let u = upload_of(bundle(&clinic, 2).path());
    assert!(matches!(r.call(Request::UploadBegin(u.begin.clone())), Response::Upload(_)));
    let mut off = 0;
    while off + MAX_CHUNK < u.archive.len() {
        r.call(Request::UploadChunk(chunk(&u.archive, off, MAX_CHUNK)));
        off += MAX_CHUNK;
    }
    // The last piece arrives cut short.
    r.call(Request::UploadChunk(chunk(&u.archive, off, (u.archive.len() - off) / 2)));
    assert_eq!(code(&r.call(Request::UploadCommit)), Some(ErrorCode::BadRequest));
    assert_eq!(r.serving(), FACTORY);
    // The rest then completes it.
    let Response::Upload(s) = r.call(Request::UploadStatus) else { panic!("status") };
    r.call(Request::UploadChunk(chunk(&u.archive, s.next_offset as usize, MAX_CHUNK)));
    assert!(matches!(r.call(Request::UploadCommit), Response::Upload(_)));
    assert_eq!(r.serving(), INT8);
}

#[test]
fn a_chunk_at_the_wrong_offset_is_told_the_offset_expected() {
    let clinic = key(1);
    let mut r = rig(&clinic);
    let u = upload_of(bundle(&clinic, 2).path());
    r.call(Request::UploadBegin(u.begin.clone()));
    r.call(Request::UploadChunk(chunk(&u.archive, 0, 100)));
    assert_eq!(
        code(&r.call(Request::UploadChunk(chunk(&u.archive, 300, 100)))),
        Some(ErrorCode::UploadOutOfOrder { expected: 100 })
    );
    assert_eq!(
        code(&r.call(Request::UploadChunk(chunk(&u.archive, 0, 100)))),
        Some(ErrorCode::UploadOutOfOrder { expected: 100 })
    );
    assert_eq!(r.serving(), FACTORY);
}

#[test]
fn a_chunk_past_the_announced_size_is_refused() {
    let clinic = key(1);
    let mut r = rig(&clinic);
    let mut u = upload_of(bundle(&clinic, 2).path());
    u.begin.total_size = 1000;
    r.call(Request::UploadBegin(u.begin.clone()));
    r.call(Request::UploadChunk(chunk(&u.archive, 0, 900)));
    assert_eq!(code(&r.call(Request::UploadChunk(chunk(&u.archive, 900, 200)))), Some(ErrorCode::BadRequest));
    let part = std::fs::metadata(r._data.path().join("models/upload/data.part")).expect("part").len();
    assert_eq!(part, 900, "nothing past the announced size was written");
}

#[test]
fn a_whole_transfer_checksum_mismatch_discards_the_upload() {
    let clinic = key(1);
    let mut r = rig(&clinic);
    let mut u = upload_of(bundle(&clinic, 2).path());
    u.begin.sha256[0] ^= 0xFF;
    assert_eq!(r.flash(&u), Err(ErrorCode::UploadChecksum));
    assert_eq!(r.serving(), FACTORY);
    assert_eq!(code(&r.call(Request::UploadStatus)), Some(ErrorCode::NoUpload));
}

#[test]
fn an_incompatible_feature_schema_is_refused_before_any_byte() {
    let clinic = key(1);
    let mut r = rig(&clinic);
    let b = bundle_with(&clinic, 2, |d| {
        let p = d.join("manifest.toml");
        let text = std::fs::read_to_string(&p)
            .expect("read")
            .replace("494712533331d5b9\"\nquant", "0123456789abcdef\"\nquant");
        std::fs::write(p, text).expect("write");
    });
    assert!(std::fs::read_to_string(b.path().join("manifest.toml")).expect("m").contains("feature_schema = \"0123"));
    assert_eq!(r.flash(&upload_of(b.path())), Err(ErrorCode::BundleRejected));
    assert!(!r._data.path().join("models/upload").exists());
    assert_eq!(r.serving(), FACTORY);
}

/// `bundle(clinic, version)` with its manifest's feature schema made `schema`.
fn bundle_for_schema(clinic: &SigningKey, version: u64, schema: features::SchemaHash) -> tempfile::TempDir {
    bundle_with(clinic, version, |d| {
        let p = d.join("manifest.toml");
        let text = std::fs::read_to_string(&p)
            .expect("read")
            .replace("feature_schema = \"494712533331d5b9\"", &format!("feature_schema = \"{schema}\""));
        std::fs::write(p, text).expect("write");
    })
}

fn policy_of(clinic: &SigningKey) -> StorePolicy {
    StorePolicy { trusted: TrustedKeys::single(clinic.verifying_key(), "c"), ..Default::default() }
}

#[test]
fn a_bundle_needing_an_encoder_or_transcripts_the_device_lacks_is_refused() {
    use features::schema::schema_hash_with;
    use features::text::{TextEmbedding, TranscriptSource};
    let clinic = key(1);
    let minilm = schema_hash_with(TextEmbedding::MiniLm, TranscriptSource::Pushed);
    let asr = schema_hash_with(TextEmbedding::Hashed, TranscriptSource::Asr);
    for (policy, schema, refused) in [
        (StorePolicy { transcribes: true, ..policy_of(&clinic) }, minilm, true),
        (StorePolicy { minilm_available: true, ..policy_of(&clinic) }, asr, true),
        (StorePolicy { transcribes: true, ..policy_of(&clinic) }, asr, false),
    ] {
        let mut r = rig_of(policy);
        let b = bundle_for_schema(&clinic, 2, schema);
        let got = r.call(Request::UploadBegin(upload_of(b.path()).begin));
        if refused {
            let Response::Error(e) = got else { panic!("{schema} not refused: {got:?}") };
            assert_eq!(e.code, ErrorCode::BundleRejected);
            assert!(e.detail.contains("bundle refused"), "{}", e.detail);
            assert_eq!(r.serving(), FACTORY);
        } else {
            assert!(matches!(got, Response::Upload(_)), "{got:?}");
        }
    }
}

#[test]
fn a_downgrade_needs_both_host_and_device_to_allow_it() {
    let clinic = key(1);
    for device_allows in [false, true] {
        let mut r = rig_with(TrustedKeys::single(clinic.verifying_key(), "c"), device_allows, true);
        r.flash(&upload_of(bundle(&clinic, 5).path())).expect("v5");
        assert!(matches!(r.call(Request::UploadConfirm), Response::Upload(_)));
        let older = bundle(&clinic, 4);
        assert_eq!(r.flash(&upload_of(older.path())), Err(ErrorCode::Downgrade { confirmed: 5 }));
        let same = bundle_with(&clinic, 5, |d| {
            let p = d.join("manifest.toml");
            let t = std::fs::read_to_string(&p).expect("r").replace("created = ", "created = 1");
            std::fs::write(p, t).expect("w");
        });
        assert_eq!(r.flash(&upload_of(same.path())), Err(ErrorCode::Downgrade { confirmed: 5 }));
        let mut asked = upload_of(older.path());
        asked.begin.allow_downgrade = true;
        let got = r.flash(&asked);
        if device_allows {
            assert_eq!(got.map(|s| s.slot.version), Ok(4));
        } else {
            assert_eq!(got, Err(ErrorCode::Downgrade { confirmed: 5 }));
        }
        assert_eq!(r.serving(), INT8);
    }
}

#[test]
fn a_bundle_whose_self_test_fails_after_install_is_refused() {
    let clinic = key(1);
    let mut r = rig(&clinic);
    let b = bundle_with(&clinic, 2, |d| {
        let p = d.join("golden.json");
        let mut g: serde_json::Value = serde_json::from_slice(&std::fs::read(&p).expect("r")).expect("json");
        let v = g["p_depressed"].as_f64().expect("p");
        g["p_depressed"] = serde_json::json!(1.0 - v);
        std::fs::write(&p, serde_json::to_vec(&g).expect("json")).expect("w");
        rehash(d, "golden.json");
    });
    let got = r.flash(&upload_of(b.path()));
    assert_eq!(got, Err(ErrorCode::BundleRejected));
    assert_eq!(r.serving(), FACTORY);
    let slots = r.connect().slots;
    assert!(slots.iter().all(|s| s.state == SlotState::Empty), "{slots:?}");
}

#[test]
fn a_manifest_with_non_ascii_or_wrong_length_hex_is_refused() {
    let clinic = key(1);
    let mut r = rig(&clinic);
    let base = std::fs::read_to_string(assets().join("mimml-synth-int8/manifest.toml")).expect("read");
    let id = signing::key_id(&clinic.verifying_key());
    let good_hash = base.split("\"model.onnx\" = \"").nth(1).expect("hash")[..64].to_owned();
    for bad in ["é".repeat(32), good_hash[..63].to_owned(), format!("{good_hash}0")] {
        let text = base.replace(&good_hash, &bad).replace("version = 0", &format!("version = 2\nkey_id = \"{id}\""));
        let sig = clinic.sign(text.as_bytes());
        let begin = UploadBegin {
            manifest: heapless::Vec::from_slice(text.as_bytes()).expect("fits"),
            signature: heapless::Vec::from_slice(&sig.to_bytes()).expect("64"),
            total_size: 1000,
            sha256: [0; 32],
            allow_downgrade: false,
        };
        let resp = r.call(Request::UploadBegin(begin));
        assert_eq!(code(&resp), Some(ErrorCode::BundleRejected), "{bad}: {resp:?}");
    }
    assert_eq!(r.serving(), FACTORY);
}

#[test]
fn a_two_gigabyte_announcement_is_refused_before_any_byte_is_written() {
    let clinic = key(1);
    let mut r = rig(&clinic);
    let mut u = upload_of(bundle(&clinic, 2).path());
    u.begin.total_size = 2 * 1024 * 1024 * 1024;
    let resp = r.call(Request::UploadBegin(u.begin));
    assert!(
        matches!(code(&resp), Some(ErrorCode::UploadTooLarge { limit }) if limit < 2 * 1024 * 1024 * 1024),
        "{resp:?}"
    );
    assert!(!r._data.path().join("models/upload").exists(), "nothing written");
    assert_eq!(r.serving(), FACTORY);
}

#[test]
fn an_unpaired_connection_cannot_flash() {
    let clinic = key(1);
    let mut r = rig(&clinic);
    r.call(Request::Hello(Hello { protocol_version: PROTOCOL_VERSION, host: truncated("stranger") }));
    let u = upload_of(bundle(&clinic, 2).path());
    for req in [
        Request::UploadBegin(u.begin.clone()),
        Request::UploadChunk(chunk(&u.archive, 0, 10)),
        Request::UploadStatus,
        Request::UploadCommit,
        Request::UploadConfirm,
        Request::UploadRollback,
    ] {
        assert_eq!(code(&r.call(req)), Some(ErrorCode::Unauthorized));
    }
    assert_eq!(r.serving(), FACTORY);
}

/// Link faults: each chunk may be dropped, sent twice, sent out of order or replaced by one of
/// garbage at the right offset. The host follows the device's expected offset, as `mimml
/// flash` does. Either the committed slot is byte-identical to the source or the upload is
/// refused; nothing half-written ever serves.
#[test]
fn randomised_link_faults_never_serve_a_damaged_bundle() {
    use rand::{Rng, SeedableRng};
    let clinic = key(1);
    let src = bundle(&clinic, 2);
    let u = upload_of(src.path());
    let (mut identical, mut refused) = (0, 0);
    for seed in 0..12u64 {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let mut r = rig(&clinic);
        r.call(Request::UploadBegin(u.begin.clone()));
        let mut expected = 0usize;
        let mut sends = 0;
        while expected < u.archive.len() && sends < 10_000 {
            sends += 1;
            let size = rng.random_range(1..=MAX_CHUNK);
            let roll = rng.random_range(0..10);
            let c = match roll {
                0 => continue,                                                            // dropped
                1 => chunk(&u.archive, expected.saturating_sub(size), size), // a duplicate of an earlier one
                2 => chunk(&u.archive, (expected + size).min(u.archive.len() - 1), size), // ahead of its turn
                3 if seed % 2 == 1 => {
                    // Garbage at the right offset: the link delivered a valid frame of wrong bytes.
                    let mut c = chunk(&u.archive, expected, size);
                    for b in c.data.iter_mut() {
                        *b = rng.random();
                    }
                    c
                }
                _ => chunk(&u.archive, expected, size),
            };
            match r.call(Request::UploadChunk(c)) {
                Response::Upload(s) => expected = s.next_offset as usize,
                Response::Error(Error { code: ErrorCode::UploadOutOfOrder { expected: e }, .. }) => {
                    expected = e as usize
                }
                Response::Error(e) => panic!("{e:?}"),
                other => panic!("{other:?}"),
            }
        }
        match r.call(Request::UploadCommit) {
            Response::Upload(_) => {
                identical += 1;
                let slot = r.server.model_store().serving().dir().expect("slot").to_owned();
                for f in ["manifest.toml", "manifest.sig", "model.onnx", "golden.json"] {
                    assert_eq!(
                        std::fs::read(slot.join(f)).expect("slot"),
                        std::fs::read(src.path().join(f)).expect("src")
                    );
                }
                assert_eq!(r.serving(), INT8);
            }
            Response::Error(e) => {
                assert!(matches!(e.code, ErrorCode::UploadChecksum), "{e:?}");
                refused += 1;
                assert_eq!(r.serving(), FACTORY);
            }
            other => panic!("{other:?}"),
        }
    }
    println!("link faults: {identical} uploads committed byte-identical, {refused} refused (garbage)");
    assert!(identical >= 6 && refused >= 1, "{identical} / {refused}");
}

// ---------------------------------------------------------------------------------------------
// The store under injected faults.

/// What the harness flashes, at small chunks so that a flash has many writes to cut.
const HARNESS_CHUNK: usize = 1024;

/// One step of a scenario against a store; `Ok(())` when done.
fn flash_to_trial(s: &mut ModelStore, u: &Upload) -> Result<(), StoreError> {
    let st = s.begin(&u.begin)?;
    if st.next_offset as usize == u.archive.len() && st.slot.state == SlotState::Trial {
        return Ok(());
    }
    let mut off = st.next_offset as usize;
    while off < u.archive.len() {
        off = s.chunk(&chunk(&u.archive, off, HARNESS_CHUNK))?.next_offset as usize;
    }
    // The harness checks hashes and signature (in the store); the golden self-test is not
    // what a cut can damage.
    s.commit(|_| Ok(())).map(|_| ())
}

fn flash_and_confirm(s: &mut ModelStore, u: &Upload) -> Result<(), StoreError> {
    match s.serving() {
        Serving::Confirmed(d)
            if bundle::parse_manifest(&std::fs::read(d.join("manifest.toml")).unwrap_or_default())
                .ok()
                .map(|m| m.version)
                == Some(version_of(u)) =>
        {
            return Ok(());
        }
        _ => {}
    }
    flash_to_trial(s, u)?;
    s.confirm().map(|_| ())
}

fn version_of(u: &Upload) -> u64 {
    bundle::parse_manifest(&u.begin.manifest).expect("manifest").version
}

/// The version the store serves (0: the factory model), after checking the bundle is whole and
/// signed.
fn serving_version(s: &ModelStore, trusted: &TrustedKeys) -> u64 {
    match s.serving() {
        Serving::Factory => 0,
        Serving::Confirmed(d) | Serving::Trial(d) => {
            let m = bundle::verify_bundle_signature(&d, trusted).expect("the serving slot is signed");
            runtime::bundle::check_file_hashes(&d, &m).expect("the serving slot is whole");
            m.version
        }
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read dir") {
        let e = e.expect("entry");
        let target = to.join(e.file_name());
        if e.file_type().expect("type").is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).expect("copy");
        }
    }
}

/// A scratch folder on tmpfs where there is one (fsync costs nothing there; what a cut
/// leaves behind is the same).
fn scratch() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() { tempfile::tempdir_in(shm) } else { tempfile::tempdir() }.expect("tempdir")
}

type Step = fn(&mut ModelStore, &Upload) -> Result<(), StoreError>;

/// Cuts `step` (from the store state in `before`) at every operation, with each fault kind.
/// Returns the number of cuts.
fn cut_everywhere(name: &str, before: &Path, u: &Upload, step: Step, old: u64, new: u64, trusted: &TrustedKeys) -> u64 {
    let policy = || StorePolicy { trusted: trusted.clone(), ..Default::default() };
    // How many operations the step takes (opening the store included).
    let dry = FaultyStorage::new(u64::MAX, Fault::Kill);
    {
        let work = scratch();
        copy_dir(before, work.path());
        let mut s = ModelStore::open(work.path(), policy(), Box::new(dry.clone())).expect("opens");
        step(&mut s, u).expect("the step works without faults");
    }
    let ops = dry.ops();
    let mut cuts = 0;
    for fault in
        [Fault::Kill, Fault::Error(nix::errno::Errno::ENOSPC as i32), Fault::Error(nix::errno::Errno::EIO as i32)]
    {
        for at in 0..ops {
            let work = scratch();
            copy_dir(before, work.path());
            let faulty = FaultyStorage::new(at, fault);
            let outcome = ModelStore::open(work.path(), policy(), Box::new(faulty.clone())).map(|mut s| {
                let first = step(&mut s, u);
                // An I/O error leaves the process running: trying again in the same process
                // must work (the fault is spent).
                if matches!(fault, Fault::Error(_)) && first.is_err() {
                    step(&mut s, u).unwrap_or_else(|e| panic!("{name}: retry after {fault:?} at op {at}: {e}"));
                }
            });
            if matches!(fault, Fault::Error(_)) && outcome.is_err() {
                // The store did not open: a restart follows, as after a kill.
            }
            assert!(faulty.fired(), "{name}: op {at} of {ops} was not reached");
            cuts += 1;
            // Restart: whatever the cut left, the store opens and serves a whole signed model,
            // the old one or the new one.
            let restarted = ModelStore::open(work.path(), policy(), Box::new(FsStorage))
                .unwrap_or_else(|e| panic!("{name}: {fault:?} at op {at}: the store does not open: {e}"));
            let v = serving_version(&restarted, trusted);
            assert!(v == old || v == new, "{name}: {fault:?} at op {at}: serves version {v}, not {old} or {new}");
            let slots = restarted.slots();
            assert!(slots.iter().filter(|s| s.state == SlotState::Trial).count() <= 1, "{name}: {slots:?}");
            assert!(slots.iter().filter(|s| s.state == SlotState::Active).count() <= 1, "{name}: {slots:?}");
            drop(restarted);
            // Running the step again completes it.
            let mut again = ModelStore::open(work.path(), policy(), Box::new(FsStorage)).expect("opens");
            step(&mut again, u).unwrap_or_else(|e| panic!("{name}: {fault:?} at op {at}: the re-run fails: {e}"));
            assert_eq!(serving_version(&again, trusted), new, "{name}: {fault:?} at op {at}");
        }
    }
    println!("{name}: {ops} storage operations, {cuts} cuts");
    cuts
}

#[test]
fn a_flash_cut_at_any_storage_operation_leaves_a_whole_signed_model_and_completes_when_run_again() {
    let clinic = key(1);
    let trusted = TrustedKeys::single(clinic.verifying_key(), "c");
    let (b2, b3) = (bundle(&clinic, 2), bundle(&clinic, 3));
    let (u2, u3) = (upload_of(b2.path()), upload_of(b3.path()));
    let policy = || StorePolicy { trusted: trusted.clone(), ..Default::default() };

    // 1. A first flash over the factory model, confirmed.
    let empty = scratch();
    let mut cuts = cut_everywhere("first flash", empty.path(), &u2, flash_and_confirm, 0, 2, &trusted);

    // 2. A second flash over a confirmed one (the other slot), confirmed.
    let with_v2 = scratch();
    flash_and_confirm(&mut ModelStore::open(with_v2.path(), policy(), Box::new(FsStorage)).expect("opens"), &u2)
        .expect("v2");
    cuts += cut_everywhere("second flash", with_v2.path(), &u3, flash_and_confirm, 2, 3, &trusted);

    // 3. A rollback of a trial.
    let trial_v3 = scratch();
    copy_dir(with_v2.path(), trial_v3.path());
    flash_to_trial(&mut ModelStore::open(trial_v3.path(), policy(), Box::new(FsStorage)).expect("opens"), &u3)
        .expect("v3 on trial");
    let rollback: Step = |s, _| match s.rollback("test") {
        Ok(_) | Err(StoreError::Nothing(_)) => Ok(()),
        Err(e) => Err(e),
    };
    cuts += cut_everywhere("rollback", trial_v3.path(), &u3, rollback, 3, 2, &trusted);

    println!("fault injection: {cuts} injected cuts, 0 bricked");
    assert!(cuts >= 1000, "only {cuts} cuts");
}
