//! Result sync: device log → host database, exactly once.
//!
//! Loop: read the cursor from the database, ask for records after it, store them (records and
//! cursor in one transaction), and every [`ACK_EVERY`] batches (and at the end) acknowledge to
//! the device. The database, not the device, is the authority on what the host has: a lost ack
//! only means the device keeps a record longer.

use std::io::{Read, Write};

use crate::client::{ClientError, DeviceClient};
use crate::db::{Conflict, DbError, ResultsDb};

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(
        "device {device_id} has results up to #{device_last} but this database already holds up to #{host_cursor}: \
         the device's log was replaced or reset; not syncing so nothing is mixed up"
    )]
    DeviceBehind { device_id: String, device_last: u64, host_cursor: u64 },
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct SyncReport {
    pub fetched: usize,
    pub inserted: usize,
    pub cursor: u64,
    /// Records that arrived under a key the database holds with other content (two devices
    /// sharing an id): kept aside in the database, never dropped silently.
    pub conflicts: Vec<Conflict>,
}

/// Records before the cursor fetched again on every sync and compared with the stored ones: a
/// device under an id another device already used (an imaged card on a board without a serial
/// number) shows up as records whose content differs, and the whole log is then read again so
/// that each of its records is stored or kept aside as a conflict, none skipped.
pub const OVERLAP: u64 = protocol::MAX_RECORDS_PER_BATCH as u64;

/// Batches stored between acknowledgements. The database, not the acknowledgement, says what
/// the host has; an acknowledgement only lets the device delete what it holds (retention), so
/// one per 64 records (and one once the device has no more) loses nothing and saves a round
/// trip and a device fsync per batch.
pub const ACK_EVERY: usize = 8;

/// Syncs every result the device has that the database lacks. `on_batch` sees progress
/// (records fetched so far, device's last sequence number).
pub fn sync<P: Read + Write>(
    client: &mut DeviceClient<P>,
    db: &mut ResultsDb,
    device_id: &str,
    mut on_batch: impl FnMut(u64, u64),
) -> Result<SyncReport, SyncError> {
    let cursor = db.cursor(device_id)?;
    let mut report = SyncReport { cursor, ..SyncReport::default() };
    let mut after = cursor.saturating_sub(OVERLAP);
    let mut rescanned = after == 0;
    let mut unacked = 0;
    loop {
        let batch = client.records_after(after, protocol::MAX_RECORDS_PER_BATCH as u8)?;
        if batch.last_seq < report.cursor {
            return Err(SyncError::DeviceBehind {
                device_id: device_id.to_owned(),
                device_last: batch.last_seq,
                host_cursor: report.cursor,
            });
        }
        let Some(last) = batch.records.iter().map(|r| r.seq).max() else {
            if unacked > 0 {
                client.ack(report.cursor)?;
            }
            break;
        };
        report.fetched += batch.records.iter().filter(|r| r.seq > cursor).count();
        let stored = db.store(device_id, &batch.records)?;
        report.inserted += stored.inserted;
        let diverged = !stored.conflicts.is_empty();
        report.conflicts.extend(stored.conflicts);
        report.cursor = db.cursor(device_id)?;
        unacked += 1;
        // Acknowledged every few batches, and once the device has no more.
        if unacked >= ACK_EVERY || last >= batch.last_seq {
            client.ack(report.cursor)?;
            unacked = 0;
        }
        on_batch(report.cursor, batch.last_seq);
        after = last;
        if diverged && !rescanned {
            // Another device's records under this id: read this one's whole log.
            rescanned = true;
            after = 0;
        }
    }
    Ok(report)
}
