//! `bench/run sync`: results stored per second by `mimml sync`'s code path (device over a pty,
//! host client, `host::sync`, the database), into SQLite and into PostgreSQL; and over a link
//! paced at 115,200 baud (a UART), against the limit the wire itself sets for the frames one
//! batch of records needs (its request and its records, and a share of the acknowledgement
//! every `host::sync::ACK_EVERY` batches: the protocol waits for each answer, so their bytes
//! add up), computed in the same run.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use host::client::DeviceClient;
use host::db::{ResultsDb, Target};
use protocol::{Ack, DeviceFrame, HostFrame, RecordBatch, Request, Response, SyncCursor};

/// Bits per byte on a UART (start, 8 data, stop).
const BITS_PER_BYTE: f64 = 10.0;

/// Writes paced to a baud rate, as a UART sends them.
struct Paced<P> {
    inner: P,
    bytes_per_s: f64,
    free_at: Instant,
}

impl<P> Paced<P> {
    fn new(inner: P, baud: u32) -> Self {
        Paced { inner, bytes_per_s: f64::from(baud) / BITS_PER_BYTE, free_at: Instant::now() }
    }
}

impl<P: Read> Read for Paced<P> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.inner.read(buf)
    }
}

impl<P: Write> Write for Paced<P> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let now = Instant::now();
        let start = self.free_at.max(now);
        self.free_at = start + Duration::from_secs_f64(buf.len() as f64 / self.bytes_per_s);
        // The bytes are on the other side once the last one has been shifted out.
        std::thread::sleep(self.free_at.saturating_duration_since(now));
        self.inner.write_all(buf)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// A device data folder holding `n` results.
fn device(dir: &std::path::Path, n: u64) -> std::path::PathBuf {
    let data = dir.join(format!("unit-{n}"));
    tests::device_with_results(&data, None, n);
    data
}

/// Syncs every result of the device at `data` into `target` over `host_end`/`device_end`;
/// (records stored, seconds).
fn sync_all<H, D>(data: &std::path::Path, target: &Target, host_end: H, device_end: D) -> anyhow::Result<(usize, f64)>
where
    H: Read + Write,
    D: Read + Write + Send + 'static,
{
    let server = tests::open_device(data, None)?;
    let d = device::DeviceThread::serve(server, device_end)?;
    let mut client = DeviceClient::new(host_end).with_key(d.host_key());
    let id = client.hello()?.device_id.as_str().to_owned();
    let mut db = ResultsDb::open(target)?;
    let t = Instant::now();
    let r = host::sync::sync(&mut client, &mut db, &id, |_, _| {})?;
    let secs = t.elapsed().as_secs_f64();
    d.stop()?;
    drop(client);
    Ok((r.inserted, secs))
}

fn frame_len<T: serde::Serialize>(msg: &T) -> usize {
    let mut buf = vec![0u8; protocol::MAX_FRAME];
    protocol::encode_frame(msg, &mut buf).unwrap_or(0)
}

fn main() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let n = 4000;
    let data = device(dir.path(), n);

    // SQLite on a pty (the tty layer's own speed).
    let (h, d) = link::pty_pair()?;
    let (stored, secs) = sync_all(&data, &Target::Sqlite(dir.path().join("r.db")), h, d)?;
    let sqlite = stored as f64 / secs;
    println!("SQLite:     {stored} results in {secs:.2} s → {sqlite:.0}/s (goal ≥ 2000/s)");

    // PostgreSQL: the server `bench/run sync` started (scripts/pg_test_cluster.sh).
    let url = std::env::var("MIMML_TEST_POSTGRES").map_err(|_| anyhow::anyhow!("MIMML_TEST_POSTGRES is not set"))?;
    let mut admin = postgres::Client::connect(&url, postgres::NoTls)?;
    let name = format!("bench_sync_{}", std::process::id());
    // Two statements: CREATE DATABASE cannot run inside the transaction a batch would be.
    admin.batch_execute(&format!("DROP DATABASE IF EXISTS {name}"))?;
    admin.batch_execute(&format!("CREATE DATABASE {name}"))?;
    let pg_url = format!("{}/{name}", url.rsplit_once('/').map_or(url.as_str(), |(b, _)| b));
    let (h, d) = link::pty_pair()?;
    let (stored, secs) = sync_all(&data, &Target::Postgres(pg_url), h, d)?;
    let postgres = stored as f64 / secs;
    println!("PostgreSQL: {stored} results in {secs:.2} s → {postgres:.0}/s (goal ≥ 1000/s)");
    admin.batch_execute(&format!("DROP DATABASE {name}"))?;

    // 115,200 baud, both directions paced, into SQLite.
    let baud = 115_200;
    let slow = device(dir.path(), 320);
    let (h, d) = link::pty_pair()?;
    let (stored, secs) =
        sync_all(&slow, &Target::Sqlite(dir.path().join("uart.db")), Paced::new(h, baud), Paced::new(d, baud))?;
    let uart = stored as f64 / secs;
    // The wire's own limit: a batch's request and records, and the acknowledgement and its
    // answer that every `ACK_EVERY` batches share, at 10 bits a byte.
    let server = tests::open_device(&slow, None)?;
    let records: Vec<_> = server.log().after(0, protocol::MAX_RECORDS_PER_BATCH).cloned().collect();
    drop(server);
    let per_batch = records.len();
    let batch = RecordBatch { records: heapless::Vec::from_slice(&records).unwrap_or_default(), last_seq: 320 };
    let ack = frame_len(&HostFrame { id: 8, req: Request::SyncAck(Ack { upto: 16 }) })
        + frame_len(&DeviceFrame { id: 8, resp: Response::Acked(Ack { upto: 16 }) });
    let bytes = frame_len(&HostFrame { id: 7, req: Request::Sync(SyncCursor { after: 8, max: 8 }) })
        + frame_len(&DeviceFrame { id: 7, resp: Response::Records(batch) })
        + ack.div_ceil(host::sync::ACK_EVERY);
    let wire = per_batch as f64 / (bytes as f64 * BITS_PER_BYTE / f64::from(baud));
    println!(
        "115200 baud: {stored} results in {secs:.2} s → {uart:.1}/s; the wire allows {wire:.1}/s ({bytes} bytes a batch of \
         {per_batch}) → {:.1} % of it (goal ≥ 90 %)",
        100.0 * uart / wire
    );
    println!(
        "RESULT sync sqlite_per_s={sqlite:.0} postgres_per_s={postgres:.0} t115200_per_s={uart:.1} wire_limit_per_s={wire:.1} \
         wire_share={:.3}",
        uart / wire
    );
    Ok(())
}
