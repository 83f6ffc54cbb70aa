//! The published head: the file `HEAD`, where the writer tells other processes up to which seq
//! its events are visible, so that a read-only handle never shows an event the writer has not
//! made durable (docs/format.md, "HEAD").
//!
//! The file holds two slots, each the magic, a seq and a CRC of both; the writer overwrites
//! them in turn, so a torn write spoils one slot at most and the other still holds the previous
//! value. A reader takes the greater valid slot. The writer writes the file after the events it
//! names are durable (in every [`crate::Durability`] mode), never syncs it after creating it,
//! and rewrites it when it opens: a value lost to a crash is only lower, and a lower value only
//! hides events for a moment.
//!
//! This module owns the file's layout and its writes; it never decides what is durable (the
//! caller, `commit.rs`, does) and never reads a segment.

use std::path::Path;
use std::sync::{Arc, Mutex};

use crate::error::{Error, Result};
use crate::storage::{Storage, StorageFile};

/// The file's name in the store's directory.
pub(crate) const HEAD_FILE: &str = "HEAD";

/// Each slot starts with this (its last byte is the layout's version).
const MAGIC: &[u8; 8] = b"EFHEAD\x00\x01";
/// A slot: magic, seq (u64 LE), CRC32 of the 16 bytes before it (u32 LE), 4 zero bytes.
const SLOT: usize = 24;
/// Where the second slot starts.
const SECOND: u64 = 32;
/// The file's length.
const LEN: usize = 64;

fn encode(seq: u64) -> [u8; SLOT] {
    let mut b = [0u8; SLOT];
    b[..8].copy_from_slice(MAGIC);
    b[8..16].copy_from_slice(&seq.to_le_bytes());
    let crc = crc32fast::hash(&b[..16]);
    b[16..20].copy_from_slice(&crc.to_le_bytes());
    b
}

fn decode(b: &[u8]) -> Option<u64> {
    let b = b.get(..SLOT)?;
    if &b[..8] != MAGIC {
        return None;
    }
    let crc = u32::from_le_bytes(b[16..20].try_into().ok()?);
    let seq = u64::from_le_bytes(b[8..16].try_into().ok()?);
    (crc32fast::hash(&b[..16]) == crc).then_some(seq)
}

/// A whole file whose slots name `a` and `b` (the tests' and the fuzzer's forgeries).
#[cfg(feature = "internals")]
pub(crate) fn file_bytes(a: u64, b: u64) -> Vec<u8> {
    let mut bytes = vec![0u8; LEN];
    bytes[..SLOT].copy_from_slice(&encode(a));
    bytes[SECOND as usize..SECOND as usize + SLOT].copy_from_slice(&encode(b));
    bytes
}

/// The seq the file names: the greater of its valid slots. `None` if there is no file (a store
/// no writer of this version has opened) or it is empty (being created). A file with no valid
/// slot is damaged.
pub(crate) fn read_head(storage: &dyn Storage, dir: &Path) -> Result<Option<u64>> {
    let path = dir.join(HEAD_FILE);
    let bytes = match storage.read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io("read", path, e)),
    };
    // A writer creates the file, then writes it: an empty one is being created (by a writer
    // that synced its log first), and limits nothing yet.
    if bytes.is_empty() {
        return Ok(None);
    }
    let a = decode(&bytes);
    let b = bytes.get(SECOND as usize..).and_then(decode);
    match a.max(b) {
        Some(seq) => Ok(Some(seq)),
        None => Err(Error::corrupt(
            path,
            0,
            "neither slot of the published head is valid (opening the store for writing rewrites it)",
        )),
    }
}

/// The writer's side: the open file and what it last wrote.
pub(crate) struct HeadFile {
    file: Arc<dyn StorageFile>,
    path: std::path::PathBuf,
    /// The seq last written, and which slot the next write takes.
    last: Mutex<(u64, bool)>,
}

impl HeadFile {
    /// Opens (creating it durably if missing) and rewrites the file with `head`, the writer's
    /// recovered head, whose events the caller has made durable.
    pub(crate) fn create(storage: &dyn Storage, dir: &Path, head: u64) -> Result<HeadFile> {
        let path = dir.join(HEAD_FILE);
        let io = |op, e| Error::io(op, &path, e);
        let (file, created) = match storage.open(&path, true) {
            Ok(f) => (f, false),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (
                storage.create_new(&path).map_err(|e| io("create", e))?,
                true,
            ),
            Err(e) => return Err(io("open", e)),
        };
        // One slot at a time: a crash tears one write at most, so one slot stays valid.
        for at in [0, SECOND] {
            file.write_all_at(&encode(head), at)
                .map_err(|e| io("write", e))?;
        }
        if created {
            file.set_len(LEN as u64).map_err(|e| io("truncate", e))?;
            file.sync_data().map_err(|e| io("fdatasync", e))?;
            storage
                .sync_dir(dir)
                .map_err(|e| Error::io("fsync directory", dir, e))?;
        }
        Ok(HeadFile {
            file,
            path,
            last: Mutex::new((head, false)),
        })
    }

    /// Names `seq` as durable, if it is above what the file names. A failed write is an error
    /// like any other write's (the caller poisons the handle): the events are durable, but
    /// other processes would wait for them for ever.
    pub(crate) fn publish(&self, seq: u64) -> Result<()> {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        if seq <= last.0 {
            return Ok(());
        }
        let at = if last.1 { SECOND } else { 0 };
        self.file
            .write_all_at(&encode(seq), at)
            .map_err(|e| Error::io("write", &self.path, e))?;
        *last = (seq, !last.1);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slot_round_trips_and_any_flipped_byte_spoils_it() {
        let b = encode(0x0102_0304_0506_0708);
        assert_eq!(decode(&b), Some(0x0102_0304_0506_0708));
        for i in 0..20 {
            let mut c = b;
            c[i] ^= 0x10;
            assert_eq!(decode(&c), None, "byte {i}");
        }
        assert_eq!(decode(&b[..SLOT - 1]), None);
    }

    #[test]
    fn the_greater_valid_slot_wins_and_a_torn_slot_falls_back() {
        let dir = tempfile::tempdir().unwrap();
        let storage: Arc<dyn Storage> = Arc::new(crate::storage::OsStorage);
        assert_eq!(read_head(storage.as_ref(), dir.path()).unwrap(), None);
        let h = HeadFile::create(storage.as_ref(), dir.path(), 5).unwrap();
        assert_eq!(read_head(storage.as_ref(), dir.path()).unwrap(), Some(5));
        h.publish(9).unwrap();
        h.publish(7).unwrap();
        assert_eq!(read_head(storage.as_ref(), dir.path()).unwrap(), Some(9));
        h.publish(12).unwrap();
        // Tear the slot just written (the second): the first still names 9.
        let path = dir.path().join(HEAD_FILE);
        let mut bytes = std::fs::read(&path).unwrap();
        assert_eq!(decode(&bytes[SECOND as usize..]), Some(12));
        bytes[SECOND as usize + 9] ^= 0xff;
        std::fs::write(&path, &bytes).unwrap();
        assert_eq!(read_head(storage.as_ref(), dir.path()).unwrap(), Some(9));
        bytes[3] ^= 0xff;
        std::fs::write(&path, &bytes).unwrap();
        let err = read_head(storage.as_ref(), dir.path()).unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::Corrupt);
    }
}
