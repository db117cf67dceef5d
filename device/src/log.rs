//! The durable result log: an append-only file of protocol frames, one [`ResultRecord`] each.
//!
//! Reusing the wire framing (COBS + CRC-32) for storage makes the log self-synchronising: a
//! record damaged in the middle of the file is reported and skipped, and every record after it
//! still reads. An append is acknowledged only after `fsync`, so the only damage a power cut can
//! leave is a torn last frame, which was never acknowledged; opening the log cuts it off.
//!
//! Sequence numbers start at 1, strictly increase and are never reused, even across damaged
//! records (the next number skips one per unreadable frame after the last good record).

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use protocol::{FrameDecoder, FrameError, MAX_FRAME, ResultRecord, encode_frame};

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("result log {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("result record does not fit in a frame")]
    TooLarge,
}

#[derive(Debug)]
pub struct ResultLog {
    path: PathBuf,
    file: File,
    records: Vec<ResultRecord>,
    next_seq: u64,
    /// Frames that could not be read when the log was opened.
    pub damaged: usize,
}

impl ResultLog {
    /// Opens (or creates) the log, reading every record. `high_water` is the highest sequence
    /// number ever handed out, kept apart from the log (the device state): numbers up to it are
    /// never handed out again, whatever happened to the log's tail. `acked` is the host's
    /// acknowledgement, so that a message about missing records can say which were synced.
    pub fn open(path: &Path, high_water: u64, acked: u64) -> Result<ResultLog, LogError> {
        let io = |source| LogError::Io { path: path.to_owned(), source };
        let mut file = OpenOptions::new().read(true).append(true).create(true).open(path).map_err(io)?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(io)?;

        // Everything after the last delimiter is not a closed frame.
        let mut complete = bytes.iter().rposition(|&b| b == 0).map_or(0, |i| i + 1);
        let tail = &bytes[complete..];
        // A whole record whose closing delimiter alone was damaged or lost is kept: the
        // longest prefix of the tail that decodes (CRC included) is that record.
        let whole = (1..=tail.len().min(MAX_FRAME)).rev().find_map(|n| decode_one(&tail[..n]).map(|r| (n, r)));
        let mut repaired = None;
        if let Some((n, record)) = whole {
            tracing::warn!(
                path = %path.display(),
                seq = record.seq,
                damaged_bytes = tail.len() - n,
                "the result log's last record had lost its closing delimiter; the record is whole and kept, \
                 the delimiter restored"
            );
            complete += n;
            repaired = Some(record);
        } else {
            // A torn frame may leave its leading delimiter behind: keep a single closing one.
            while complete >= 2 && bytes[complete - 2] == 0 {
                complete -= 1;
            }
        }
        if complete < bytes.len() || repaired.is_some() {
            file.set_len(complete as u64).map_err(io)?;
            file.seek(SeekFrom::End(0)).map_err(io)?;
            if repaired.is_some() {
                file.write_all(&[0]).map_err(io)?;
            }
            file.sync_all().map_err(io)?;
        }

        let mut records = Vec::new();
        let (mut damaged, mut damaged_after_last) = (0usize, 0usize);
        // Closed frames only: a repaired last record (no delimiter yet in `bytes`) was decoded
        // when it was found.
        let closed = bytes[..complete].iter().rposition(|&b| b == 0).map_or(0, |i| i + 1);
        for frame in bytes[..closed].split(|&b| b == 0).filter(|f| !f.is_empty()) {
            match decode_frame(frame) {
                Ok(r) => {
                    damaged_after_last = 0;
                    records.push(r);
                }
                Err(e) => {
                    damaged += 1;
                    damaged_after_last += 1;
                    tracing::error!(path = %path.display(), "unreadable record in result log ({e}); skipping it");
                }
            }
        }
        let was_repaired = repaired.is_some();
        records.extend(repaired);
        let last_intact = records.iter().map(|r| r.seq).max().unwrap_or(0);
        let cut = bytes.len() > complete && !was_repaired;
        let lost_from = last_intact + damaged_after_last as u64 + 1;
        let cut_bytes = bytes.len() - complete;
        if let Some(what) = missing_records(lost_from, high_water, acked) {
            if high_water <= acked && !cut {
                // Every record up to the mark was synced: retention may have deleted them.
                tracing::info!(path = %path.display(), "{what}");
            } else {
                tracing::error!(path = %path.display(), cut_bytes, "{what}");
            }
        } else if cut {
            tracing::warn!(
                path = %path.display(),
                cut_bytes,
                "the result log ends in a torn record (a write interrupted before it was reported stored); cutting it off"
            );
        }
        let next_seq = (last_intact + 1 + damaged_after_last as u64).max(high_water + 1);
        Ok(ResultLog { path: path.to_owned(), file, records, next_seq, damaged })
    }

    /// The sequence number the next [`append`](Self::append) gives.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Appends `record` under the next sequence number, durably; returns that number.
    pub fn append(&mut self, mut record: ResultRecord) -> Result<u64, LogError> {
        record.seq = self.next_seq;
        let mut buf = vec![0u8; MAX_FRAME];
        let n = encode_frame(&record, &mut buf).map_err(|_| LogError::TooLarge)?;
        let io = |source| LogError::Io { path: self.path.clone(), source };
        self.file.write_all(&buf[..n]).map_err(io)?;
        self.file.sync_data().map_err(io)?;
        self.next_seq += 1;
        self.records.push(record);
        Ok(self.next_seq - 1)
    }

    /// Deletes the records numbered up to `upto` (those the host acknowledged) for which
    /// `forget` holds; returns how many. The log is rewritten whole into a new file that is
    /// synced and renamed over the old one (and the folder synced), so a power cut leaves the
    /// old log or the new one, never a mix. Numbers are never reused: the device state's
    /// high-water mark outlives the records.
    pub fn forget_acked(
        &mut self,
        upto: u64,
        mut forget: impl FnMut(&ResultRecord) -> bool,
    ) -> Result<usize, LogError> {
        // One pass decides every record (the log may hold tens of thousands); the in-memory list
        // changes only once the new file is in place.
        let (gone, kept): (Vec<&ResultRecord>, Vec<&ResultRecord>) =
            self.records.iter().partition(|r| r.seq <= upto && forget(r));
        if gone.is_empty() {
            return Ok(0);
        }
        let (gone, kept) = (gone.len(), kept.into_iter().cloned().collect::<Vec<ResultRecord>>());
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| LogError::Io { path, source }
        };
        let mut bytes = Vec::new();
        let mut buf = vec![0u8; MAX_FRAME];
        for r in &kept {
            let n = encode_frame(r, &mut buf).map_err(|_| LogError::TooLarge)?;
            bytes.extend_from_slice(&buf[..n]);
        }
        let fresh = self.path.with_extension("log.new");
        {
            let mut f = File::create(&fresh).map_err(io(&fresh))?;
            f.write_all(&bytes).map_err(io(&fresh))?;
            f.sync_all().map_err(io(&fresh))?;
        }
        std::fs::rename(&fresh, &self.path).map_err(io(&self.path))?;
        if let Some(dir) = self.path.parent() {
            File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))?;
        }
        self.file = OpenOptions::new().read(true).append(true).open(&self.path).map_err(io(&self.path))?;
        self.records = kept;
        Ok(gone)
    }

    /// Records with a sequence number above `after`, oldest first, at most `max`.
    pub fn after(&self, after: u64, max: usize) -> impl Iterator<Item = &ResultRecord> {
        self.records.iter().filter(move |r| r.seq > after).take(max)
    }

    /// The result of session `session`, if the log holds it (the newest, should ids repeat).
    pub fn find_session(&self, session: protocol::SessionId) -> Option<&ResultRecord> {
        self.records.iter().rev().find(|r| r.session == session)
    }

    pub fn get(&self, seq: u64) -> Option<&ResultRecord> {
        self.records.iter().find(|r| r.seq == seq)
    }

    /// Highest sequence number handed out so far (0 = none).
    pub fn last_seq(&self) -> u64 {
        self.next_seq - 1
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }
}

/// What the log says when records `lost_from..=high_water` are missing from its end (`None`
/// when none are). Every number below the high-water mark was handed out only after the record
/// before it was stored, so only the last may be a write the device never finished.
fn missing_records(lost_from: u64, high_water: u64, acked: u64) -> Option<String> {
    if high_water < lost_from {
        return None;
    }
    let how = if high_water <= acked {
        "all were stored and synced to a host, which holds them".to_owned()
    } else if lost_from == high_water {
        format!("#{high_water} was being written when the device stopped, or was lost from the log's end")
    } else {
        format!(
            "#{lost_from}..=#{} were stored (those up to #{acked} synced to a host, which holds them); #{high_water} \
             was being written when the device stopped, or was lost with them",
            high_water - 1
        )
    };
    Some(format!(
        "the result log lacks records #{lost_from}..=#{high_water} at its end: {how}; their numbers are not reused"
    ))
}

/// `body` (a frame without its delimiters, so without zero bytes) decoded as a record, if it
/// is one.
/// One record from one frame's bytes (without delimiters): today's layout, or the layout of
/// protocol version 3 (logs written before the questionnaire existed). The error is today's.
fn decode_frame(body: &[u8]) -> Result<ResultRecord, FrameError> {
    fn decode<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, FrameError> {
        let mut decoder = FrameDecoder::new();
        let _ = decoder.feed::<T>(body);
        decoder.feed::<T>(&[0]).frame.unwrap_or(Err(FrameError::Truncated))
    }
    decode::<ResultRecord>(body)
        .or_else(|e| decode::<protocol::ResultRecordV3>(body).map(ResultRecord::from).map_err(|_| e))
}

fn decode_one(body: &[u8]) -> Option<ResultRecord> {
    decode_frame(body).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::{Modalities, SchemaHash, truncated};

    #[test]
    fn a_log_written_by_protocol_version_3_still_reads() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("results.log");
        let old = |seq| {
            let mut r = rec(seq as u32);
            r.seq = seq;
            r.label = truncated("old");
            r.as_v3()
        };
        let mut bytes = Vec::new();
        for seq in [1, 2] {
            let mut buf = [0u8; MAX_FRAME];
            let n = encode_frame(&old(seq), &mut buf).expect("fits");
            bytes.extend_from_slice(&buf[..n]);
        }
        std::fs::write(&path, &bytes).expect("write");
        let mut log = ResultLog::open(&path, 2, 0).expect("opens");
        assert_eq!((log.len(), log.damaged), (2, 0));
        assert_eq!(log.after(0, 8).nth(1).expect("second").label.as_str(), "old");
        let seq = log.append(rec(9)).expect("appends in today's layout");
        assert_eq!(seq, 3);
        let log = ResultLog::open(&path, 3, 0).expect("reopens");
        assert_eq!((log.len(), log.damaged), (3, 0));
    }

    fn rec(session: u32) -> ResultRecord {
        ResultRecord {
            seq: 0,
            session,
            label: truncated("t"),
            started_ms: 1,
            finished_ms: 2,
            compute_ms: 3,
            p_depressed: 0.25,
            phq8: 6.0,
            gates: [0.5, 0.25, 0.25],
            modalities: Modalities::ALL,
            model_version: truncated("m"),
            feature_schema: SchemaHash([1; 8]),
            flags: protocol::ResultFlags::empty(),
            questionnaire: None,
        }
    }

    #[test]
    fn records_survive_reopen_with_increasing_seq() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("results.log");
        let mut log = ResultLog::open(&p, 0, 0).expect("open");
        assert_eq!(log.append(rec(1)).expect("append"), 1);
        assert_eq!(log.append(rec(2)).expect("append"), 2);
        drop(log);
        let mut log = ResultLog::open(&p, 0, 0).expect("reopen");
        assert_eq!(log.len(), 2);
        assert_eq!(log.after(1, 10).map(|r| r.session).collect::<Vec<_>>(), vec![2]);
        assert_eq!(log.append(rec(3)).expect("append"), 3);
    }

    #[test]
    fn torn_tail_is_cut_and_nothing_acknowledged_is_lost() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("results.log");
        let mut log = ResultLog::open(&p, 0, 0).expect("open");
        log.append(rec(1)).expect("append");
        log.append(rec(2)).expect("append");
        drop(log);
        let good_len = std::fs::metadata(&p).expect("meta").len();
        // A power cut in the middle of the third append.
        let mut buf = vec![0u8; MAX_FRAME];
        let n = encode_frame(&rec(3), &mut buf).expect("encode");
        let mut f = OpenOptions::new().append(true).open(&p).expect("open");
        f.write_all(&buf[..n / 2]).expect("write");
        drop(f);
        let mut log = ResultLog::open(&p, 0, 0).expect("reopen");
        assert_eq!((log.len(), log.damaged), (2, 0));
        assert_eq!(std::fs::metadata(&p).expect("meta").len(), good_len);
        assert_eq!(log.append(rec(3)).expect("append"), 3);
        assert_eq!(ResultLog::open(&p, 0, 0).expect("reopen").len(), 3);
    }

    #[test]
    fn a_damaged_record_is_skipped_and_its_number_never_reused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("results.log");
        let mut log = ResultLog::open(&p, 0, 0).expect("open");
        for s in 1..=3 {
            log.append(rec(s)).expect("append");
        }
        drop(log);
        // Flip a byte inside the last record.
        let mut bytes = std::fs::read(&p).expect("read");
        let len = bytes.len();
        bytes[len - 5] ^= 0x40;
        std::fs::write(&p, &bytes).expect("write");
        let mut log = ResultLog::open(&p, 0, 0).expect("reopen");
        assert_eq!((log.len(), log.damaged), (2, 1));
        assert_eq!(log.get(3), None);
        // The damaged record had number 3: the next one is 4, not 3.
        assert_eq!(log.append(rec(4)).expect("append"), 4);
        // The damaged bytes are still in the file, not overwritten.
        assert_eq!(&std::fs::read(&p).expect("read")[..len], &bytes[..]);
    }

    fn three_records(p: &Path) -> Vec<u8> {
        let mut log = ResultLog::open(p, 0, 0).expect("open");
        for s in 1..=3 {
            log.append(rec(s)).expect("append");
        }
        drop(log);
        std::fs::read(p).expect("read")
    }

    #[test]
    fn a_cut_through_the_last_stored_record_never_frees_its_number() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("results.log");
        let bytes = three_records(&p);
        // Cut the file in the middle of record 3, which the host had already synced.
        std::fs::write(&p, &bytes[..bytes.len() - 20]).expect("write");
        let mut log = ResultLog::open(&p, 3, 3).expect("reopen");
        assert_eq!(log.len(), 2);
        assert_eq!(log.last_seq(), 3, "the high-water mark, not the last readable record");
        assert_eq!(log.append(rec(4)).expect("append"), 4);
        // The whole end of the log gone: still no reuse.
        std::fs::write(&p, b"").expect("write");
        let mut log = ResultLog::open(&p, 4, 4).expect("reopen");
        assert_eq!((log.len(), log.append(rec(5)).expect("append")), (0, 5));
    }

    #[test]
    fn missing_records_are_described_as_what_they_were() {
        assert_eq!(missing_records(4, 3, 3), None);
        let synced = missing_records(3, 3, 3).expect("one missing");
        assert!(synced.contains("#3..=#3") && synced.contains("synced to a host"), "{synced}");
        let unfinished = missing_records(3, 3, 2).expect("one missing");
        assert!(unfinished.contains("#3 was being written"), "{unfinished}");
        let mixed = missing_records(2, 5, 3).expect("four missing");
        assert!(
            mixed.contains("#2..=#4 were stored") && mixed.contains("up to #3") && mixed.contains("#5 was"),
            "{mixed}"
        );
    }

    #[test]
    fn a_whole_last_record_without_its_closing_delimiter_is_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("results.log");
        let mut bytes = three_records(&p);
        let len = bytes.len();
        for replacement in [0x41u8, 0xff] {
            bytes[len - 1] = replacement;
            std::fs::write(&p, &bytes).expect("write");
            let log = ResultLog::open(&p, 3, 3).expect("reopen");
            assert_eq!(log.len(), 3, "record 3 is whole and stays");
            assert_eq!(log.get(3).map(|r| r.session), Some(3));
            let repaired = std::fs::read(&p).expect("read");
            assert_eq!((repaired.len(), repaired[len - 1]), (len, 0), "delimiter restored in place");
        }
        // Only the delimiter missing (file one byte short).
        std::fs::write(&p, &bytes[..len - 1]).expect("write");
        let mut log = ResultLog::open(&p, 0, 0).expect("reopen");
        assert_eq!(log.len(), 3);
        assert_eq!(log.append(rec(4)).expect("append"), 4);
        assert_eq!(ResultLog::open(&p, 4, 4).expect("reopen").len(), 4);
    }
}
