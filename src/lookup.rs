//! Point lookups under the state lock: which seq carries a term (an event id, an idempotency
//! key), and the record at a seq. Used by the writer's retry checks and by the lifecycle code;
//! reads that return many events go through `reader.rs`.

use crate::error::{Error, Result};
use crate::event::AppendResult;
use crate::index::Kind;
use crate::query::IndexRef;
use crate::record;
use crate::segment::Lines;
use crate::state::State;

/// What a batch append did.
pub(crate) struct Batch {
    pub results: Vec<AppendResult>,
    pub first_seq: u64,
    pub last_seq: u64,
    pub replayed: bool,
}

/// The seq of the newest record carrying `term`, searching segments newest first (retries are
/// usually of recent appends). Each sealed segment costs one binary search of its mapped index,
/// or for an event id outside the segment's id range, a comparison with it.
pub(crate) fn find_term(st: &State, kind: Kind, term: &str) -> Result<Option<u64>> {
    for seg in st.log.segments.iter().rev() {
        let ix;
        let r = match &seg.sealed {
            Some(s) if kind == Kind::Id && !s.may_hold_id(term)? => continue,
            Some(s) => {
                ix = s.index()?;
                IndexRef::Sealed(&ix)
            }
            None => IndexRef::Mem(&st.log.active_index),
        };
        if let Some(ord) = r.last_posting(kind, term)? {
            return Ok(Some(seg.base + u64::from(ord)));
        }
    }
    Ok(None)
}

/// The fields of a record the lookups need.
pub(crate) struct Found {
    pub event: crate::event::RecordedEvent,
    /// Whether more records of its batch follow.
    pub more: bool,
}

/// Reads and checks the record `seq`; `None` if no loaded segment holds it.
pub(crate) fn record_at(st: &mut State, seq: u64, max_line: usize) -> Result<Option<Found>> {
    let Some(i) = st
        .log
        .segments
        .partition_point(|s| s.base <= seq)
        .checked_sub(1)
    else {
        return Ok(None);
    };
    let seg = st.log.segments[i].clone();
    let ord = seq - seg.base;
    let Ok(ord) = u32::try_from(ord) else {
        return Ok(None);
    };
    let ix;
    let (r, data_end, data) = match &seg.sealed {
        Some(s) => {
            ix = s.index()?;
            (IndexRef::Sealed(&ix), seg.len, s.data()?)
        }
        None => {
            let Some(data) = st.log.active_data() else {
                return Ok(None);
            };
            (IndexRef::Mem(&st.log.active_index), st.log.active_len, data)
        }
    };
    let Some(at) = r.position(ord)? else {
        return Ok(None);
    };
    let end = r.position(ord + 1)?.unwrap_or(data_end);
    // Positions past the data come from an index whose sums match but whose positions are
    // someone else's: a read of them would allocate up to 4 GiB before it failed.
    let Some(len) = end
        .checked_sub(at)
        .filter(|_| end <= data_end)
        .and_then(|l| usize::try_from(l).ok())
    else {
        return Err(Error::corrupt(
            &seg.path,
            at,
            "index positions out of order or past the segment's end",
        ));
    };
    let mut lines = Lines::new(data, end, max_line.max(len));
    let bytes = lines
        .window(at, len)
        .map_err(|e| Error::io("read", &seg.path, e))?;
    let line = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    let m = record::decode_record(line).map_err(|r| Error::corrupt(&seg.path, at, r))?;
    if m.rec.seq != seq {
        return Err(Error::corrupt(
            &seg.path,
            at,
            format!("record holds seq {} where the index says {seq}", m.rec.seq),
        ));
    }
    let more = m.rec.more;
    let event = record::decode_event(line).map_err(|r| Error::corrupt(&seg.path, at, r))?;
    Ok(Some(Found { event, more }))
}
