//! The journal file, `latch.journal`: a sequence of frames
//!
//! ```text
//! [u32 LE payload length][u32 LE crc32 of the payload][payload]
//! ```
//!
//! One frame per write: everything one `write_all` + one `sync_data` made durable. The
//! payload is JSON (credential data and policies are arbitrary JSON values), either
//!
//! - an array of batches, `[{"seq": 7, "changes": [...]}, ...]`: one group commit, each
//!   batch one [`Store::commit`](crate::Store::commit) or one usage flush; or
//! - a checkpoint, `{"checkpoint": 9, "files": {"auth": "<sha-256 hex>" | null, ...}}`,
//!   written by compaction before it renames the first snapshot: the files are about to
//!   hold the state after batch 9. On open, a file whose digest matches a checkpoint
//!   replays only the batches after it, so no batch is ever applied twice even when a
//!   crash interrupts compaction between two renames.
//!
//! Because a frame is exactly one write, a crash can only tear the last frame. A frame
//! that is short or fails its checksum and has nothing but zeros after it is such a torn
//! tail: it was never acknowledged, and is dropped. A bad frame followed by more data is
//! corruption, and opening fails without touching anything.

use std::path::Path;

use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::change::Change;
use crate::error::StoreError;
use crate::file::StoreFile;
use crate::load::FileDigest;

/// Bytes before each payload.
pub(crate) const HEADER: usize = 8;

/// A batch read back from the journal.
#[derive(Debug, Deserialize)]
pub(crate) struct BatchIn {
    pub(crate) seq: u64,
    pub(crate) changes: Vec<Change>,
}

/// Builds one frame from batches given as `(seq, JSON array of changes)`.
pub(crate) fn encode_frame<'a>(
    batches: impl IntoIterator<Item = (u64, &'a [u8])>,
) -> Result<Vec<u8>, String> {
    let mut buf = vec![0u8; HEADER];
    buf.push(b'[');
    for (i, (seq, changes)) in batches.into_iter().enumerate() {
        if i > 0 {
            buf.push(b',');
        }
        buf.extend_from_slice(format!("{{\"seq\":{seq},\"changes\":").as_bytes());
        buf.extend_from_slice(changes);
        buf.push(b'}');
    }
    buf.push(b']');
    finish_frame(buf)
}

/// Compaction is about to make the snapshot files hold the state after batch `seq`;
/// `files` are their digests then (`None`: the file does not exist).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Checkpoint {
    pub(crate) seq: u64,
    pub(crate) files: [Option<FileDigest>; 4],
}

/// Builds the frame of a checkpoint.
pub(crate) fn encode_checkpoint(cp: &Checkpoint) -> Result<Vec<u8>, String> {
    let files: Map<String, Value> = StoreFile::ALL
        .into_iter()
        .map(|f| {
            (
                f.name().to_owned(),
                cp.files[f.index()].map(hex::encode).into(),
            )
        })
        .collect();
    let mut buf = vec![0u8; HEADER];
    serde_json::to_writer(&mut buf, &json!({"checkpoint": cp.seq, "files": files}))
        .map_err(|e| e.to_string())?;
    finish_frame(buf)
}

/// Fills in the header of `buf`, whose first `HEADER` bytes are reserved for it.
fn finish_frame(mut buf: Vec<u8>) -> Result<Vec<u8>, String> {
    let len = u32::try_from(buf.len() - HEADER)
        .map_err(|_| format!("a journal frame of {} bytes is too large", buf.len()))?;
    let crc = crc32fast::hash(&buf[HEADER..]);
    buf[0..4].copy_from_slice(&len.to_le_bytes());
    buf[4..8].copy_from_slice(&crc.to_le_bytes());
    Ok(buf)
}

#[derive(Deserialize)]
struct CheckpointIn {
    checkpoint: u64,
    files: Map<String, Value>,
}

fn decode_checkpoint(payload: &[u8]) -> Result<Checkpoint, String> {
    let raw: CheckpointIn = serde_json::from_slice(payload).map_err(|e| e.to_string())?;
    let mut files = [None; 4];
    for f in StoreFile::ALL {
        files[f.index()] = match raw.files.get(f.name()) {
            Some(Value::Null) => None,
            Some(Value::String(h)) => {
                let mut d = [0u8; 32];
                hex::decode_to_slice(h, &mut d).map_err(|e| format!("digest of {f}: {e}"))?;
                Some(d)
            }
            _ => return Err(format!("no digest of {f}")),
        };
    }
    Ok(Checkpoint {
        seq: raw.checkpoint,
        files,
    })
}

/// What a journal holds.
#[derive(Debug)]
pub(crate) struct Scan {
    pub(crate) batches: Vec<BatchIn>,
    /// In journal order.
    pub(crate) checkpoints: Vec<Checkpoint>,
    /// Length of the valid prefix; shorter than the file if a torn tail was found.
    pub(crate) valid_len: u64,
}

/// Reads every frame of a journal.
pub(crate) fn scan(bytes: &[u8], path: &Path) -> Result<Scan, StoreError> {
    let mut batches = Vec::new();
    let mut checkpoints = Vec::new();
    let mut off = 0usize;
    let mut last_seq: Option<u64> = None;
    let corrupt = |offset: usize, reason: String| StoreError::CorruptJournal {
        path: path.to_owned(),
        offset: offset as u64,
        reason,
    };
    // A damaged frame is a torn tail if nothing but zeros follows its extent.
    let torn = |off: usize, end: usize| end >= bytes.len() || bytes[off..].iter().all(|&b| b == 0);
    while off < bytes.len() {
        let rest = &bytes[off..];
        let Some(header) = rest.get(..HEADER) else {
            break; // a short header: torn
        };
        let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        let end = off.saturating_add(HEADER).saturating_add(len);
        if end > bytes.len() {
            break; // a short record: torn
        }
        let payload = &bytes[off + HEADER..end];
        if len == 0 || crc32fast::hash(payload) != crc {
            if torn(off, end) {
                break;
            }
            let what = if len == 0 {
                "an empty record"
            } else {
                "a checksum mismatch"
            };
            return Err(corrupt(off, format!("{what}, followed by more data")));
        }
        if payload.first() == Some(&b'{') {
            let cp = decode_checkpoint(payload)
                .map_err(|e| corrupt(off, format!("a checkpoint that does not decode: {e}")))?;
            checkpoints.push(cp);
            off = end;
            continue;
        }
        let frame: Vec<BatchIn> = serde_json::from_slice(payload)
            .map_err(|e| corrupt(off, format!("a record that does not decode: {e}")))?;
        for b in frame {
            if last_seq.is_some_and(|s| b.seq <= s) {
                return Err(corrupt(
                    off,
                    format!("sequence number {} does not increase", b.seq),
                ));
            }
            last_seq = Some(b.seq);
            batches.push(b);
        }
        off = end;
    }
    Ok(Scan {
        batches,
        checkpoints,
        valid_len: off as u64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use latch_models::UserId;

    fn frame(seq: u64, user: &str) -> Vec<u8> {
        let changes = serde_json::to_vec(&vec![Change::RemoveUser(UserId::from(user))]).unwrap();
        encode_frame([(seq, changes.as_slice())]).unwrap()
    }

    #[test]
    fn frames_round_trip() {
        let mut bytes = frame(1, "a");
        bytes.extend(frame(2, "b"));
        let scan = scan(&bytes, Path::new("j")).unwrap();
        assert_eq!(scan.valid_len, bytes.len() as u64);
        let seqs: Vec<u64> = scan.batches.iter().map(|b| b.seq).collect();
        assert_eq!(seqs, [1, 2]);
        assert_eq!(
            scan.batches[1].changes,
            [Change::RemoveUser(UserId::from("b"))]
        );
    }

    #[test]
    fn one_frame_holds_many_batches() {
        let a = serde_json::to_vec(&vec![Change::RemoveUser(UserId::from("a"))]).unwrap();
        let b = serde_json::to_vec(&Vec::<Change>::new()).unwrap();
        let bytes = encode_frame([(5, a.as_slice()), (6, b.as_slice())]).unwrap();
        let scan = scan(&bytes, Path::new("j")).unwrap();
        assert_eq!(scan.batches.len(), 2);
        assert_eq!(scan.batches[1].seq, 6);
    }

    #[test]
    fn every_cut_of_the_last_frame_is_a_torn_tail() {
        let first = frame(1, "a");
        let mut bytes = first.clone();
        bytes.extend(frame(2, "b"));
        for cut in first.len()..bytes.len() {
            let scan = scan(&bytes[..cut], Path::new("j")).unwrap();
            assert_eq!(scan.valid_len, first.len() as u64, "cut at {cut}");
            assert_eq!(scan.batches.len(), 1);
        }
    }

    #[test]
    fn a_bad_frame_followed_by_data_is_corruption() {
        let mut bytes = frame(1, "a");
        let second_at = bytes.len();
        bytes.extend(frame(2, "b"));
        bytes[HEADER + 3] ^= 0x40;
        let e = scan(&bytes, Path::new("/s/latch.journal")).unwrap_err();
        assert!(
            matches!(e, StoreError::CorruptJournal { offset: 0, .. }),
            "{e}"
        );
        assert!(e.to_string().contains("/s/latch.journal"));
        // The same damage in the last frame is a torn tail.
        let mut bytes2 = frame(1, "a");
        bytes2.extend(frame(2, "b"));
        bytes2[second_at + HEADER + 3] ^= 0x40;
        assert_eq!(
            scan(&bytes2, Path::new("j")).unwrap().valid_len,
            second_at as u64
        );
    }

    #[test]
    fn checkpoints_round_trip_between_frames() {
        let cp = Checkpoint {
            seq: 1,
            files: [Some([7; 32]), None, Some([0; 32]), None],
        };
        let mut bytes = frame(1, "a");
        bytes.extend(encode_checkpoint(&cp).unwrap());
        bytes.extend(frame(2, "b"));
        let scan = scan(&bytes, Path::new("j")).unwrap();
        assert_eq!(scan.checkpoints, [cp]);
        assert_eq!(scan.batches.len(), 2);
        assert_eq!(scan.valid_len, bytes.len() as u64);
    }

    #[test]
    fn zero_filled_tail_is_torn() {
        let mut bytes = frame(1, "a");
        let good = bytes.len();
        bytes.extend([0u8; 100]);
        assert_eq!(scan(&bytes, Path::new("j")).unwrap().valid_len, good as u64);
    }

    #[test]
    fn sequence_numbers_must_increase() {
        let mut bytes = frame(3, "a");
        bytes.extend(frame(3, "b"));
        assert!(matches!(
            scan(&bytes, Path::new("j")),
            Err(StoreError::CorruptJournal { .. })
        ));
    }
}
