//! Updating a model in the field, end to end over a pty: keys, signing, pairing, flashing the
//! committed int8 bundle, `mimml info` naming it, a forged bundle refused with the int8 model
//! still serving; and a flash interrupted by a pulled cable or a device restart resuming where
//! it stopped.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use host::client::DeviceClient;
use link::SerialPort;

fn assets() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../assets")
}

fn mimml(key: &Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_mimml")).args(args).env("MIMML_HOST_KEY", key).output().expect("runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn copy_int8(to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for f in ["manifest.toml", "model.onnx", "golden.json"] {
        std::fs::copy(assets().join("model/mimml-synth-int8").join(f), to.join(f)).expect("copy");
    }
}

/// A simulated device taking bundles signed by the keys in `trusted`, with `data`.
fn device(data: &Path, trusted: &Path) -> device::Device {
    let trusted = runtime::signing::TrustedKeys::read(trusted).expect("trusted keys");
    device::simulated_with(
        data,
        &assets().join("sample/session-001"),
        device::ModelSetup::new(Some(device::bundled_model_dir()), trusted),
    )
    .expect("device")
}

#[test]
fn pair_flash_the_int8_bundle_and_refuse_a_forged_one_over_a_pty() {
    let dir = tempfile::tempdir().expect("tempdir");
    let host_key = dir.path().join("host/host.key");
    let keys = dir.path().join("keys");
    let p = |p: &Path| p.to_str().expect("utf8").to_owned();

    // The clinic's signing key.
    let (ok, out, err) = mimml(&host_key, &["keys", "generate", "--out", &p(&keys)]);
    assert!(ok, "{err}");
    let secret = std::fs::read_to_string(keys.join("mimml-signing.key")).expect("secret");
    let secret_hex = secret.split_whitespace().nth(1).expect("hex");
    assert!(!out.contains(secret_hex) && !err.contains(secret_hex), "the secret key is never printed");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(keys.join("mimml-signing.key")).expect("meta").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);

    // The device trusts it; it serves the f32 factory model.
    let (device_end, keep_open) = link::pty_pair().expect("pty");
    let port = keep_open.name().expect("pty path");
    let data = dir.path().join("device");
    let rig = device::DeviceThread::serve(device(&data, &keys.join("mimml-signing.pub")), device_end).expect("serves");

    let (ok, out, err) = mimml(&host_key, &["info", "--port", &port]);
    assert!(ok && out.contains("paired          no"), "{out}{err}");
    let (ok, _, err) = mimml(&host_key, &["flash", "--port", &port, &p(&assets().join("model/mimml-synth-int8"))]);
    assert!(!ok && err.contains("not signed"), "an unsigned bundle is refused on the host: {err}");

    // Pairing: the code the device shows, typed in on the host.
    let mut pair = Command::new(env!("CARGO_BIN_EXE_mimml"))
        .args(["pair", "--port", &port, "--name", "clinic laptop"])
        .env("MIMML_HOST_KEY", &host_key)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("pair runs");
    let code_file = data.join("pairing.code");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !code_file.exists() {
        assert!(Instant::now() < deadline, "no code shown");
        std::thread::sleep(Duration::from_millis(20));
    }
    let code = std::fs::read_to_string(&code_file).expect("code")[..6].to_owned();
    writeln!(pair.stdin.take().expect("stdin"), "{code}").expect("type the code");
    let out = pair.wait_with_output().expect("pair ends");
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && stdout.contains("paired with"), "{stdout}{stderr}");

    // Sign the committed int8 bundle and flash it.
    let int8 = dir.path().join("int8");
    copy_int8(&int8);
    let (ok, out, err) = mimml(
        &host_key,
        &["bundle", "sign", "--key", &p(&keys.join("mimml-signing.key")), "--version", "2", &p(&int8)],
    );
    assert!(ok && out.contains("version 2"), "{out}{err}");
    let (ok, out, err) =
        mimml(&host_key, &["bundle", "verify", "--trusted-keys", &p(&keys.join("mimml-signing.pub")), &p(&int8)]);
    assert!(ok && out.contains("self-test passed"), "{out}{err}");
    let (ok, out, err) = mimml(&host_key, &["flash", "--port", &port, &p(&int8)]);
    assert!(ok && out.contains("on trial"), "{out}{err}");
    let (ok, out, err) = mimml(&host_key, &["--json", "info", "--port", &port]);
    assert!(ok, "{err}");
    let info: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(info["model_version"], "mimml-494712533331d5b9-s1-int8", "{info}");
    assert!(info["slots"].as_array().expect("slots").iter().any(|s| s["state"] == "Trial" && s["version"] == 2));
    let (ok, out, err) = mimml(&host_key, &["model", "confirm", "--port", &port]);
    assert!(ok && out.contains("confirmed"), "{out}{err}");
    let (ok, out, _) = mimml(&host_key, &["info", "--port", &port]);
    assert!(ok && out.contains("Active mimml-494712533331d5b9-s1-int8 version 2"), "{out}");

    // A forged bundle: the manifest raised to version 9 after signing.
    let forged = dir.path().join("forged");
    copy_int8(&forged);
    mimml(&host_key, &["bundle", "sign", "--key", &p(&keys.join("mimml-signing.key")), "--version", "3", &p(&forged)]);
    let manifest = forged.join("manifest.toml");
    let text = std::fs::read_to_string(&manifest).expect("manifest");
    std::fs::write(&manifest, text.replace("version = 3", "version = 9")).expect("forge");
    let (ok, _, err) = mimml(&host_key, &["flash", "--port", &port, &p(&forged)]);
    assert!(!ok && err.contains("BadSignature"), "{err}");
    // And one signed by a key the device does not trust.
    let (ok, _, err) = mimml(&host_key, &["keys", "generate", "--out", &p(&dir.path().join("rogue"))]);
    assert!(ok, "{err}");
    let rogue = dir.path().join("rogue-bundle");
    copy_int8(&rogue);
    mimml(
        &host_key,
        &["bundle", "sign", "--key", &p(&dir.path().join("rogue/mimml-signing.key")), "--version", "4", &p(&rogue)],
    );
    let (ok, _, err) = mimml(&host_key, &["flash", "--port", &port, &p(&rogue)]);
    assert!(!ok && err.contains("not trusted"), "{err}");
    let (ok, out, _) = mimml(&host_key, &["info", "--port", &port]);
    assert!(ok && out.contains("model           mimml-494712533331d5b9-s1-int8"), "the int8 model still serves: {out}");

    // A session runs on the new model.
    let transcript = assets().join("sample/session-001/transcript.tsv");
    let (ok, out, err) =
        mimml(&host_key, &["--json", "session", "run", "--port", &port, "--transcript", &p(&transcript)]);
    assert!(ok, "{err}");
    let record: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(record["model_version"], "mimml-494712533331d5b9-s1-int8");

    // Unpaired again, the host can read what the device is and nothing else.
    let (ok, _, err) = mimml(&host_key, &["unpair", "--port", &port]);
    assert!(ok, "{err}");
    let (ok, _, err) = mimml(&host_key, &["model", "confirm", "--port", &port]);
    assert!(!ok && err.contains("Unauthorized"), "{err}");
    drop(rig);
}

/// A port that fails every write after `frames` frames: a cable pulled mid-flash.
struct Pulled<P> {
    inner: P,
    frames: usize,
}

impl<P: std::io::Read> std::io::Read for Pulled<P> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.inner.read(buf)
    }
}

impl<P: std::io::Write> std::io::Write for Pulled<P> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.frames == 0 {
            return Err(std::io::Error::new(std::io::ErrorKind::BrokenPipe, "cable pulled"));
        }
        self.frames -= 1;
        self.inner.write_all(buf)?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

#[test]
fn an_interrupted_flash_resumes_where_the_device_copy_ends() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clinic = runtime::signing::generate().expect("key");
    let trusted = dir.path().join("trusted.pub");
    std::fs::write(&trusted, runtime::signing::public_line(&clinic.verifying_key(), "clinic")).expect("write");
    let bundle = dir.path().join("b");
    copy_int8(&bundle);
    runtime::bundle::sign_bundle(&bundle, &clinic, Some(2)).expect("signs");
    let t = host::flash::Transfer::of(&bundle).expect("packs");
    let total = t.archive.len() as u64;
    let data = dir.path().join("device");

    // The cable is pulled after a few chunks.
    let (host_end, device_end) = link::pty_pair().expect("pty");
    let rig = device::DeviceThread::serve(device(&data, &trusted), device_end).expect("serves");
    let key = rig.host_key();
    let mut client = DeviceClient::new(Pulled { inner: host_end, frames: 2 + 6 }).with_key(key.clone());
    client.hello().expect("hello");
    let cut = host::flash::flash(&mut client, &t, false, |_, _| {});
    assert!(cut.is_err(), "the pulled cable ends the flash");
    drop(client);
    // The device restarts too (its process killed): what it synced stays.
    drop(rig);

    let (host_end, device_end) = link::pty_pair().expect("pty");
    let rig = device::DeviceThread::serve_with_key(device(&data, &trusted), device_end, key).expect("serves again");
    let mut client = DeviceClient::new(host_end).with_key(rig.host_key());
    client.hello().expect("hello");
    let mut seen = Vec::new();
    let done = host::flash::flash(&mut client, &t, false, |at, _| seen.push(at)).expect("the flash completes");
    assert!(done.resumed_at > 0, "it resumed: {done:?}");
    assert_eq!(u64::from(done.resumed_at) + done.sent, total, "no byte sent twice, none skipped");
    assert_eq!(done.status.slot.state, protocol::SlotState::Trial);
    let info = client.hello().expect("hello");
    assert_eq!(info.active_model_version.as_str(), "mimml-494712533331d5b9-s1-int8");
    // Running it once more sends nothing: the device has it.
    let again = host::flash::flash(&mut client, &t, false, |_, _| {}).expect("nothing to do");
    assert!(again.already && again.sent == 0, "{again:?}");
    println!("resumed at byte {} of {total}", done.resumed_at);
}
