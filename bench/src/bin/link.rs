//! `bench/run link`: framing efficiency and speed.
//!
//! * efficiency: payload bytes / wire bytes for model-upload frames carrying 4 KiB chunks
//!   (goal ≥ 0.95), and for the other large messages;
//! * encode + decode throughput of our framing (postcard + CRC-32 + COBS, both delimiters),
//!   against the reference: postcard's own COBS framing (`to_slice_cobs` + `CobsAccumulator`,
//!   no CRC) measured in the same run;
//! * end-to-end over a real pty pair (kernel tty layer included).

use std::hint::black_box;
use std::time::{Duration, Instant};

use bench::rate;
use postcard::accumulator::{CobsAccumulator, FeedResult};
use protocol::*;

fn chunk_frame(i: u32) -> HostFrame {
    let data: Vec<u8> = (0..MAX_CHUNK as u32).map(|k| (k.wrapping_mul(31).wrapping_add(i * 7)) as u8).collect();
    HostFrame {
        id: i,
        req: Request::UploadChunk(UploadChunk {
            offset: i * MAX_CHUNK as u32,
            data: heapless::Vec::from_slice(&data).unwrap_or_default(),
        }),
    }
}

fn main() -> anyhow::Result<()> {
    let budget = Duration::from_millis(1500);
    let mut wire = vec![0u8; MAX_FRAME];

    // Efficiency.
    let frame = chunk_frame(3);
    let n = encode_frame(&frame, &mut wire).map_err(|e| anyhow::anyhow!("{e}"))?;
    let efficiency = MAX_CHUNK as f64 / n as f64;
    println!("4 KiB upload chunk: {MAX_CHUNK} payload bytes in a {n}-byte frame → efficiency {efficiency:.4}");
    // The worst case for COBS: no zero bytes at all in the payload.
    let mut worst = frame.clone();
    if let Request::UploadChunk(c) = &mut worst.req {
        c.data.iter_mut().for_each(|b| *b = 0x55);
    }
    let n_worst = encode_frame(&worst, &mut wire).map_err(|e| anyhow::anyhow!("{e}"))?;
    let eff_worst = MAX_CHUNK as f64 / n_worst as f64;
    println!("  worst case (no zero bytes): {n_worst}-byte frame → efficiency {eff_worst:.4}");

    // Throughput, ours.
    let frame_len = n;
    let ours_encode = rate(budget, || {
        black_box(encode_frame(black_box(&frame), &mut wire).ok());
    });
    let encoded = wire[..frame_len].to_vec();
    let mut dec = FrameDecoder::new();
    let ours_decode = rate(budget, || {
        let fed = dec.feed::<HostFrame>(black_box(&encoded));
        black_box(fed.frame.map(|f| f.is_ok()));
    });
    let ours_rt = 1.0 / (1.0 / ours_encode + 1.0 / ours_decode);

    // Reference: postcard COBS framing without CRC.
    let mut ref_wire = vec![0u8; MAX_FRAME];
    let ref_len = postcard::to_slice_cobs(&frame, &mut ref_wire).map_err(|e| anyhow::anyhow!("{e}"))?.len();
    let ref_encode = rate(budget, || {
        black_box(postcard::to_slice_cobs(black_box(&frame), &mut ref_wire).ok().map(|s| s.len()));
    });
    let ref_encoded = {
        let mut v = vec![0u8; MAX_FRAME];
        let l = postcard::to_slice_cobs(&frame, &mut v).map_err(|e| anyhow::anyhow!("{e}"))?.len();
        v.truncate(l);
        v
    };
    let mut acc: Box<CobsAccumulator<{ MAX_FRAME }>> = Box::new(CobsAccumulator::new());
    let ref_decode = rate(budget, || {
        let ok = matches!(acc.feed::<HostFrame>(black_box(&ref_encoded)), FeedResult::Success { .. });
        black_box(ok);
    });
    let ref_rt = 1.0 / (1.0 / ref_encode + 1.0 / ref_decode);

    let mb = |frames_per_s: f64| frames_per_s * MAX_CHUNK as f64 / 1e6;
    println!(
        "ours (postcard+CRC32+COBS):  encode {:>8.0} frames/s, decode {:>8.0} frames/s, encode+decode {:>7.1} MB/s payload",
        ours_encode,
        ours_decode,
        mb(ours_rt)
    );
    println!(
        "reference (postcard COBS):   encode {:>8.0} frames/s, decode {:>8.0} frames/s, encode+decode {:>7.1} MB/s payload ({ref_len}-byte frame, no CRC)",
        ref_encode,
        ref_decode,
        mb(ref_rt)
    );

    // End to end over a pty: one thread writes frames, this one decodes them.
    let (a, b) = link::pty_pair()?;
    let frames = 2000u32;
    let writer = std::thread::spawn(move || -> anyhow::Result<()> {
        let mut tx = link::FramedLink::new(a);
        for i in 0..frames {
            tx.send(&chunk_frame(i))?;
        }
        // Keep the writer end open until the reader is done.
        std::thread::sleep(Duration::from_secs(2));
        Ok(())
    });
    let mut rx = link::FramedLink::new(b);
    let start = Instant::now();
    let mut got = 0u32;
    while got < frames {
        match rx.recv::<HostFrame>(Instant::now() + Duration::from_secs(5))? {
            Some(_) => got += 1,
            None => anyhow::bail!("pty stalled after {got} frames"),
        }
    }
    let pty_mb_s = mb(f64::from(frames) / start.elapsed().as_secs_f64());
    writer.join().map_err(|_| anyhow::anyhow!("writer panicked"))??;
    println!(
        "over a pty pair: {frames} chunk frames, {pty_mb_s:.1} MB/s payload, {} bad frames",
        rx.stats().bad_frames
    );

    println!(
        "RESULT link efficiency_4k={efficiency:.4} efficiency_4k_worst={eff_worst:.4} encode_decode_mb_s={:.1} \
         ref_postcard_cobs_mb_s={:.1} ratio_vs_ref={:.2} pty_mb_s={pty_mb_s:.1}",
        mb(ours_rt),
        mb(ref_rt),
        ours_rt / ref_rt
    );
    Ok(())
}
