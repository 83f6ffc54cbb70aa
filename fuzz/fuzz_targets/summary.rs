//! The stream-table summary (format 2) on hostile bytes that pass its CRCs: the summary a real
//! store wrote at its close (several segments, a truncated and a deleted stream) is edited where
//! the input says, then, unless the input's first bit says not to, every CRC is made to match
//! again (the blocks', the head's, the header's), so the fuzzer gets past them to the parser's
//! structural checks and to what the store does with what they accept. Opening never panics; a
//! store that opens reads, lists and counts its streams, takes appends and closes, and `verify`
//! runs, all without panicking (debug assertions on, as cargo-fuzz builds).
//!
//! Input: one byte of flags, then edits of three bytes each: an offset (u16, little-endian,
//! modulo the file's length) and the byte written there.
#![no_main]

use eventfile::{Durability, ExpectedVersion, NewEvent, OpenOptions, Read};
use libfuzzer_sys::fuzz_target;

const STREAMS: usize = 12;

fn opts() -> OpenOptions {
    OpenOptions::new()
        .segment_bytes(4096)
        .durability(Durability::None)
}

fn event(i: u64) -> NewEvent {
    NewEvent::new("T", serde_json::json!({ "i": i })).with_tag(format!("k={}", i % 3))
}

/// The little-endian u64 at `at`, if the file holds it.
fn u64_at(b: &[u8], at: usize) -> Option<usize> {
    let v = u64::from_le_bytes(b.get(at..at.checked_add(8)?)?.try_into().ok()?);
    usize::try_from(v).ok()
}

fn put_crc(b: &mut [u8], at: usize, crc: u32) -> Option<()> {
    b.get_mut(at..at.checked_add(4)?)?
        .copy_from_slice(&crc.to_le_bytes());
    Some(())
}

/// Makes the summary's CRCs match its bytes again, as far as its counts can be followed (the
/// layout of `docs/format.md`: counts at 64 to 96, the header's CRC at 108, the head from 112,
/// the block directory after the removed ranges, segments and bases).
fn recrc(b: &mut [u8]) -> Option<()> {
    let (r, s, p) = (u64_at(b, 64)?, u64_at(b, 72)?, u64_at(b, 80)?);
    let (blocks, head_len) = (u64_at(b, 88)?, u64_at(b, 96)?);
    let directory = 112usize
        .checked_add(r.checked_mul(16)?)?
        .checked_add(s.checked_mul(40)?)?
        .checked_add(p.checked_mul(8)?)?;
    for i in 0..blocks.min(b.len() / 16) {
        let at = directory.checked_add(i.checked_mul(16)?)?;
        let offset = u64_at(b, at)?;
        let len = u32::from_le_bytes(b.get(at + 8..at + 12)?.try_into().ok()?) as usize;
        let crc = crc32fast::hash(b.get(offset..offset.checked_add(len)?)?);
        put_crc(b, at + 12, crc)?;
    }
    let end = 112usize.checked_add(head_len)?.checked_sub(4)?;
    let crc = crc32fast::hash(b.get(112..end)?);
    put_crc(b, end, crc)?;
    let crc = crc32fast::hash(b.get(..108)?);
    put_crc(b, 108, crc)
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, edits)) = data.split_first() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let names: Vec<String> = (0..STREAMS).map(|i| format!("s{i:02}")).collect();
    {
        let store = opts().open(dir.path()).unwrap();
        for i in 0..180u64 {
            let s = &names[(i as usize * 7) % STREAMS];
            store.append(s, ExpectedVersion::Any, [event(i)]).unwrap();
        }
        store.truncate_stream(&names[3], 5).unwrap();
        store
            .delete_stream(&names[7], ExpectedVersion::Any)
            .unwrap();
        store.close().unwrap();
    }
    let path = dir.path().join("summary");
    let mut bytes = std::fs::read(&path).unwrap();
    if bytes.is_empty() {
        return;
    }
    for e in edits.chunks_exact(3) {
        let at = usize::from(u16::from_le_bytes([e[0], e[1]])) % bytes.len();
        bytes[at] = e[2];
    }
    if flags & 1 == 0 {
        let _ = recrc(&mut bytes);
    }
    std::fs::write(&path, &bytes).unwrap();
    // A reader first: the writer's close rewrites the summary.
    if let Ok(reader) = eventfile::Store::open_read_only(dir.path()) {
        for s in &names {
            let _ = reader.read_stream(s, Read::forward()).map(|e| e.count());
            let _ = reader.stream_version(s);
        }
        let _ = reader.streams("", None, 100);
        let _ = reader.streams("s0", Some("s03"), 3);
        let _ = reader.stream_count();
    }
    let _ = eventfile::verify(dir.path());
    if let Ok(store) = opts().open(dir.path()) {
        for s in [&names[1], &names[3], &names[7], &"new".to_owned()] {
            let _ = store.append(s, ExpectedVersion::Any, [event(1)]);
        }
        let _ = store.streams("", None, 100);
        let _ = store.close();
    }
});
