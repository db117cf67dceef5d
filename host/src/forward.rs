//! Forwarding results from one database to another: a field laptop's SQLite, synced from units
//! carried offline for weeks, into a fleet's central PostgreSQL, exactly once.
//!
//! Stateless and exact: for each device of the source, the destination is asked which of the
//! source's sequence numbers it already holds, and only the others are sent, in sequence order,
//! through the destination's own [`ResultsDb::store`] (the same idempotent insert a sync uses).
//! The destination's cursor alone would not do: a unit's later results may reach the central
//! database directly from a site while its earlier ones are still on the laptop only.

use crate::db::{Conflict, DbError, ResultsDb};

/// Records sent to the destination in one transaction.
pub const CHUNK: usize = 500;

/// What a forward did, per device.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Forwarded {
    /// (device id, records the source has, records newly stored in the destination).
    pub devices: Vec<(String, usize, usize)>,
    /// Records the destination holds under the same key with other content: kept aside there.
    pub conflicts: Vec<Conflict>,
    /// Records the source itself keeps aside as conflicts: not forwarded (resolve them there).
    pub source_conflicts: usize,
}

impl Forwarded {
    pub fn inserted(&self) -> usize {
        self.devices.iter().map(|d| d.2).sum()
    }
}

/// Copies every result of `from` that `to` lacks. `on_chunk` sees (device, records sent so far
/// for it, records to send for it).
pub fn forward(
    from: &mut ResultsDb,
    to: &mut ResultsDb,
    mut on_chunk: impl FnMut(&str, usize, usize),
) -> Result<Forwarded, DbError> {
    let mut out = Forwarded { source_conflicts: from.conflicts()?.len(), ..Forwarded::default() };
    for (device, last) in from.cursors()? {
        let have = from.stored_seqs(&device, 1, last)?;
        let there = to.stored_seqs(&device, 1, last)?;
        let missing: Vec<u64> = have.iter().copied().filter(|s| there.binary_search(s).is_err()).collect();
        let mut inserted = 0;
        for chunk in missing.chunks(CHUNK) {
            let (first, end) = (chunk[0], chunk[chunk.len() - 1]);
            let records: Vec<_> = from
                .range(&device, first, end)?
                .into_iter()
                .filter(|r| chunk.binary_search(&r.record.seq).is_ok())
                .map(|r| r.record)
                .collect();
            let stored = to.store(&device, &records)?;
            inserted += stored.inserted;
            out.conflicts.extend(stored.conflicts);
            on_chunk(&device, inserted, missing.len());
        }
        out.devices.push((device, have.len(), inserted));
    }
    Ok(out)
}
