//! Result sync: device log → host database, exactly once.
//!
//! Loop: read the cursor from the database, ask for records after it, store them (records and
//! cursor in one transaction), then acknowledge to the device. The database, not the device, is
//! the authority on what the host has: a lost ack only means the device keeps a record longer.

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

/// Syncs every result the device has that the database lacks. `on_batch` sees progress
/// (records fetched so far, device's last sequence number).
pub fn sync<P: Read + Write>(
    client: &mut DeviceClient<P>,
    db: &mut ResultsDb,
    device_id: &str,
    mut on_batch: impl FnMut(u64, u64),
) -> Result<SyncReport, SyncError> {
    let mut report = SyncReport { cursor: db.cursor(device_id)?, ..SyncReport::default() };
    loop {
        let batch = client.records_after(report.cursor, protocol::MAX_RECORDS_PER_BATCH as u8)?;
        if batch.last_seq < report.cursor {
            return Err(SyncError::DeviceBehind {
                device_id: device_id.to_owned(),
                device_last: batch.last_seq,
                host_cursor: report.cursor,
            });
        }
        if batch.records.is_empty() {
            break;
        }
        report.fetched += batch.records.len();
        let stored = db.store(device_id, &batch.records)?;
        report.inserted += stored.inserted;
        report.conflicts.extend(stored.conflicts);
        report.cursor = db.cursor(device_id)?;
        client.ack(report.cursor)?;
        on_batch(report.cursor, batch.last_seq);
    }
    Ok(report)
}
