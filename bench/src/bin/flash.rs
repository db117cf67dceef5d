//! `bench/run flash`: flashing the committed int8 bundle.
//!
//! * efficiency: bytes of bundle data / bytes on the wire of the upload-chunk frames (goal
//!   ≥ 0.95), and of the whole flash (every frame both ways: hello, auth, begin, chunks and
//!   their answers, commit);
//! * throughput of a whole flash to a simulated device over a pty (the device writes and syncs
//!   every chunk, then verifies and installs the bundle), against the reference measured in the
//!   same run: the same chunk frames over the same kind of pty, each answered at once by a
//!   device that stores nothing;
//! * the time the flash takes at 115,200 baud, computed from its wire bytes (10 bits a byte);
//! * the fault harness's figures (`a_flash_cut_...` in `device/tests/it/models.rs`, run by
//!   `bench/run flash` before this binary): injected cuts, and bricked = 0 (the run fails
//!   otherwise).

use std::time::Instant;

use anyhow::Context;
use protocol::*;

fn main() -> anyhow::Result<()> {
    let harness = std::env::args().nth(1).unwrap_or_default();
    let cuts: u64 = harness
        .split_whitespace()
        .zip(harness.split_whitespace().skip(1))
        .find(|(_, next)| *next == "injected")
        .and_then(|(n, _)| n.parse().ok())
        .context("pass the fault harness's line (`fault injection: N injected cuts, 0 bricked`)")?;
    let bricked: u64 = harness
        .split(", ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .context("the harness line names no bricked count")?;

    let repo = bench::repo();
    let dir = tempfile::tempdir()?;
    let bundle = dir.path().join("int8");
    std::fs::create_dir_all(&bundle)?;
    for f in ["manifest.toml", "model.onnx", "golden.json"] {
        std::fs::copy(repo.join("assets/model/mimml-synth-int8").join(f), bundle.join(f))?;
    }
    let key = runtime::signing::generate()?;
    runtime::bundle::sign_bundle(&bundle, &key, Some(2))?;
    let files: u64 = ["manifest.toml", "manifest.sig", "model.onnx", "golden.json"]
        .iter()
        .map(|f| std::fs::metadata(bundle.join(f)).map(|m| m.len()))
        .sum::<std::io::Result<u64>>()?;
    let t = host::flash::Transfer::of(&bundle)?;
    let total = t.archive.len();

    // Wire bytes of the chunk frames, exactly as the link encodes them.
    let mut wire = vec![0u8; MAX_FRAME];
    let mut chunk_wire = 0usize;
    for (i, piece) in t.archive.chunks(MAX_CHUNK).enumerate() {
        let frame = HostFrame {
            id: i as u32,
            req: Request::UploadChunk(UploadChunk {
                offset: (i * MAX_CHUNK) as u32,
                data: heapless::Vec::from_slice(piece).unwrap_or_default(),
            }),
        };
        chunk_wire += encode_frame(&frame, &mut wire).map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    let efficiency = total as f64 / chunk_wire as f64;

    // A whole flash over a pty.
    let trusted = runtime::signing::TrustedKeys::single(key.verifying_key(), "bench");
    let server = device::simulated_with(
        &dir.path().join("device"),
        &repo.join("assets/sample/session-001"),
        device::ModelSetup::new(Some(device::bundled_model_dir()), trusted),
    )?;
    let (host_end, device_end) = link::pty_pair()?;
    let rig = device::DeviceThread::serve(server, device_end)?;
    let mut client = host::client::DeviceClient::new(host_end).with_key(rig.host_key());
    client.hello()?;
    let before = client.stats();
    let started = Instant::now();
    let mut transfer_s = 0.0;
    let flashed = host::flash::flash(&mut client, &t, false, |at, all| {
        if at == all {
            transfer_s = started.elapsed().as_secs_f64();
        }
    })?;
    let flash_s = started.elapsed().as_secs_f64();
    anyhow::ensure!(flashed.status.slot.state == SlotState::Trial, "the flash did not end on trial");
    let after = client.stats();
    let flash_wire = (after.bytes_sent - before.bytes_sent) + (after.bytes_received - before.bytes_received);
    let info = client.hello()?;
    anyhow::ensure!(info.active_model_version.ends_with("-int8"), "the int8 model does not serve");
    drop(rig);

    // Reference: the same frames over a pty, each answered at once by a device that stores
    // nothing and checks nothing.
    let (host_end, device_end) = link::pty_pair()?;
    let echo = std::thread::spawn(move || -> anyhow::Result<()> {
        let mut link = link::FramedLink::new(device_end);
        loop {
            let deadline = Instant::now() + std::time::Duration::from_secs(5);
            let Some(HostFrame { id, req }) = link.recv::<HostFrame>(deadline)? else { return Ok(()) };
            let Request::UploadChunk(c) = req else { return Ok(()) };
            let next = c.offset + c.data.len() as u32;
            let status = UploadStatus {
                next_offset: next,
                total_size: 0,
                slot: ModelSlot { slot: 1, state: SlotState::Staged, model_version: ShortStr::new(), version: 0 },
            };
            link.send(&DeviceFrame { id, resp: Response::Upload(status) })?;
        }
    });
    let mut link = link::FramedLink::new(host_end);
    let started = Instant::now();
    for (i, piece) in t.archive.chunks(MAX_CHUNK).enumerate() {
        let id = i as u32;
        let data = heapless::Vec::from_slice(piece).unwrap_or_default();
        link.send(&HostFrame { id, req: Request::UploadChunk(UploadChunk { offset: (i * MAX_CHUNK) as u32, data }) })?;
        let deadline = Instant::now() + std::time::Duration::from_secs(5);
        link.recv::<DeviceFrame>(deadline)?.context("the reference echo stalled")?;
    }
    let reference_s = started.elapsed().as_secs_f64();
    link.send(&HostFrame { id: u32::MAX, req: Request::Ping(0) })?;
    echo.join().map_err(|_| anyhow::anyhow!("echo thread panicked"))??;

    let mb = |s: f64| total as f64 / s / 1e6;
    let (pty_mb_s, ref_mb_s) = (mb(transfer_s), mb(reference_s));
    let t115200_s = flash_wire as f64 * 10.0 / 115_200.0;
    println!("committed int8 bundle: {files} bytes in 4 files, {total}-byte transfer archive (ustar)");
    println!(
        "upload chunks: {total} data bytes in {chunk_wire} wire bytes → efficiency {efficiency:.4}; whole flash \
         (both ways, every frame): {flash_wire} wire bytes → {:.4}",
        total as f64 / flash_wire as f64
    );
    println!(
        "over a pty: transfer {:.1} ms ({pty_mb_s:.2} MB/s, every chunk written and fsynced), commit {:.1} ms \
         (SHA-256, unpack, signature, hashes, golden self-test, install)",
        transfer_s * 1000.0,
        (flash_s - transfer_s) * 1000.0
    );
    println!(
        "reference (same frames, answered by a device that stores nothing): {:.1} ms ({ref_mb_s:.2} MB/s) → ratio {:.2}",
        reference_s * 1000.0,
        pty_mb_s / ref_mb_s
    );
    println!("at 115,200 baud: {t115200_s:.1} s for the whole flash");
    println!("fault harness: {cuts} injected cuts, {bricked} bricked");
    println!(
        "RESULT flash efficiency={efficiency:.4} flash_efficiency={:.4} pty_mb_s={pty_mb_s:.2} ref_pty_mb_s={ref_mb_s:.2} \
         ratio_vs_ref={:.2} t115200_s={t115200_s:.1} cuts={cuts} bricked={bricked}",
        total as f64 / flash_wire as f64,
        pty_mb_s / ref_mb_s
    );
    Ok(())
}
