//! The append path: validation, the concurrency check, encoding, the write, segment roll, and
//! group commit.
//!
//! An append validates everything it can before taking the state lock, then (under the lock)
//! checks expectations, encodes the batch, writes it with one `pwrite` at the end of the active
//! segment, and updates the in-memory state. It releases the lock before waiting for
//! durability, so concurrent appenders' batches pile up behind one `fdatasync` (group commit).
//! A failed write or sync poisons the handle: nothing is ever retried.

use std::sync::atomic::Ordering;

use crate::config::Durability;
use crate::error::{Error, Result};
use crate::event::{
    AppendResult, ExpectedVersion, MultiAppendResult, NewEvent, StreamAppend, event_terms,
    validate_event, validate_stream,
};
use crate::record::{self, RecordOut};
use crate::recovery;
use crate::segment::SegmentData;
use crate::store::{Inner, State, Store, StreamEntry};

/// One stream's part of a batch, borrowed.
struct Part<'a> {
    stream: &'a str,
    expected: ExpectedVersion,
    events: &'a [NewEvent],
}

impl Store {
    /// Appends `events` to `stream` as one all-or-nothing batch, if the stream's version
    /// satisfies `expected`. Returns once the batch is durable (with the default
    /// [`Durability::Fsync`]).
    ///
    /// Fails with [`Error::WrongExpectedVersion`] (nothing written) on a version mismatch,
    /// [`Error::InvalidInput`] or [`Error::EventTooLarge`] on bad input, [`Error::ReadOnly`] or
    /// [`Error::Poisoned`] when the handle cannot write. If it fails with [`Error::Io`], the
    /// batch may or may not be in the log after the store is reopened.
    ///
    /// ```
    /// use eventfile::{Error, ExpectedVersion, NewEvent, Store};
    /// # let dir = tempfile::tempdir().unwrap();
    /// let store = Store::open(dir.path())?;
    /// let placed = NewEvent::new("OrderPlaced", serde_json::json!({"total": 12}));
    /// let r = store.append("order-7", ExpectedVersion::NoStream, [placed.clone()])?;
    /// assert_eq!((r.version, r.first_seq), (1, 1));
    /// match store.append("order-7", ExpectedVersion::NoStream, [placed]) {
    ///     Err(Error::WrongExpectedVersion { actual, .. }) => assert_eq!(actual, 1),
    ///     other => panic!("expected a conflict, got {other:?}"),
    /// }
    /// # Ok::<(), eventfile::Error>(())
    /// ```
    pub fn append(
        &self,
        stream: &str,
        expected: ExpectedVersion,
        events: impl IntoIterator<Item = NewEvent>,
    ) -> Result<AppendResult> {
        let events: Vec<NewEvent> = events.into_iter().collect();
        let parts = [Part {
            stream,
            expected,
            events: &events,
        }];
        let (results, _, _) = self.inner.append_batch(&parts)?;
        Ok(results[0])
    }

    /// Appends to several streams atomically: every stream's expectation must hold, and then all
    /// events are written as one batch, or none is. A stream may appear only once.
    pub fn append_multi(&self, appends: &[StreamAppend]) -> Result<MultiAppendResult> {
        let parts: Vec<Part<'_>> = appends
            .iter()
            .map(|a| Part {
                stream: &a.stream,
                expected: a.expected,
                events: &a.events,
            })
            .collect();
        let (results, first_seq, last_seq) = self.inner.append_batch(&parts)?;
        Ok(MultiAppendResult {
            streams: appends
                .iter()
                .map(|a| a.stream.clone())
                .zip(results)
                .collect(),
            first_seq,
            last_seq,
        })
    }
}

impl Inner {
    fn append_batch(&self, parts: &[Part<'_>]) -> Result<(Vec<AppendResult>, u64, u64)> {
        if self.read_only {
            return Err(Error::ReadOnly);
        }
        validate(parts)?;
        let ids: Vec<Vec<String>> = parts
            .iter()
            .map(|p| {
                p.events
                    .iter()
                    .map(|e| {
                        e.id.clone()
                            .unwrap_or_else(|| uuid::Uuid::now_v7().to_string())
                    })
                    .collect()
            })
            .collect();

        let mut guard = self.lock_state();
        let st = &mut *guard;
        if let Some(cause) = &st.poisoned {
            return Err(Error::Poisoned {
                cause: cause.clone(),
            });
        }
        for p in parts {
            let actual = st.version(p.stream);
            if !p.expected.matches(actual) {
                return Err(Error::WrongExpectedVersion {
                    stream: p.stream.to_owned(),
                    expected: p.expected,
                    actual,
                });
            }
        }

        // Encode the whole batch before touching the file, so a too-large event writes nothing.
        let time = (self.clock)().max(st.last_time);
        let time_text = record::record_time(time);
        let total: usize = parts.iter().map(|p| p.events.len()).sum();
        let first_seq = st.next_seq;
        let mut buf = std::mem::take(&mut st.buf);
        buf.clear();
        let mut rel_offsets = Vec::with_capacity(total);
        let mut results = Vec::with_capacity(parts.len());
        let mut seq = first_seq;
        let mut written = 0;
        for (p, ids) in parts.iter().zip(&ids) {
            let base_version = st.version(p.stream);
            for (i, (e, id)) in p.events.iter().zip(ids).enumerate() {
                let start = buf.len();
                written += 1;
                record::encode_record(
                    &mut buf,
                    &RecordOut {
                        seq,
                        id,
                        stream: p.stream,
                        version: base_version + 1 + i as u64,
                        event_type: &e.event_type,
                        time: &time_text,
                        data: &e.data,
                        meta: &e.meta,
                        tags: &e.tags,
                        more: written < total,
                    },
                );
                let size = buf.len() - start;
                if size > self.config.max_event_bytes {
                    st.buf = buf;
                    return Err(Error::EventTooLarge {
                        event_type: e.event_type.clone(),
                        size,
                        max: self.config.max_event_bytes,
                    });
                }
                rel_offsets.push(start as u64);
                seq += 1;
            }
            let n = p.events.len() as u64;
            results.push(AppendResult {
                version: base_version + n,
                first_seq: seq - n,
                last_seq: seq - 1,
            });
        }
        let last_seq = seq - 1;

        if buf.len() as u64 > self.config.segment_bytes {
            st.buf = buf;
            return Err(Error::invalid(
                "append",
                format!(
                    "the batch encodes to {} bytes, more than the segment size of {} bytes",
                    st.buf.len(),
                    self.config.segment_bytes
                ),
            ));
        }
        let r = self.write_locked(st, &buf, parts, &ids, &rel_offsets, time);
        st.buf = buf;
        r?;
        drop(guard);

        self.wait_durable(last_seq, false)?;
        Ok((results, first_seq, last_seq))
    }

    /// Rolls the segment if it is full, writes the encoded batch, and updates the state.
    fn write_locked(
        &self,
        st: &mut State,
        buf: &[u8],
        parts: &[Part<'_>],
        ids: &[Vec<String>],
        rel_offsets: &[u64],
        time: i64,
    ) -> Result<()> {
        let has_events = st.active_len > st.active().data_start;
        if has_events && st.active_len + buf.len() as u64 > self.config.segment_bytes {
            self.roll(st)?;
        }
        let file = st
            .active_file
            .clone()
            .expect("writer has an active segment");
        let at = st.active_len;
        if let Err(e) = file.write_all_at(buf, at) {
            let err = Error::io("write", &st.active().path, e);
            self.poison(st, &err);
            return Err(err);
        }
        let mut seq = st.next_seq;
        let mut offsets = rel_offsets.iter().map(|o| at + o);
        for (p, ids) in parts.iter().zip(ids) {
            match st.streams.get_mut(p.stream) {
                Some(e) => e.version += p.events.len() as u64,
                None => {
                    let version = p.events.len() as u64;
                    st.streams.insert(
                        p.stream.to_owned(),
                        StreamEntry {
                            version,
                            sealed: Vec::new(),
                        },
                    );
                }
            }
            for (e, id) in p.events.iter().zip(ids) {
                let off = offsets.next().expect("one offset per event");
                st.active_index
                    .add(off, time, &event_terms(p.stream, id, e));
                seq += 1;
            }
        }
        st.next_seq = seq;
        st.active_len = at + buf.len() as u64;
        st.last_time = time;
        if self.durability != Durability::Fsync {
            self.visible.fetch_max(seq - 1, Ordering::AcqRel);
        }
        Ok(())
    }

    /// Seals the active segment and starts the next: sync it, write its index sidecar, create
    /// the new segment (header, fsync, directory fsync).
    fn roll(&self, st: &mut State) -> Result<()> {
        let r = (|| {
            let file = st
                .active_file
                .clone()
                .expect("writer has an active segment");
            let (base, path, len) = (st.active().base, st.active().path.clone(), st.active_len);
            file.sync_data()
                .map_err(|e| Error::io("fdatasync", &path, e))?;
            self.mark_durable(st.next_seq - 1);
            let index = recovery::write_index(
                self.storage.as_ref(),
                &self.dir,
                base,
                len,
                &st.active_index,
            )?;
            let data = match file.map().map_err(|e| Error::io("map", &path, e))? {
                Some(m) => SegmentData::Sealed(std::sync::Arc::new(m)),
                None => SegmentData::File(file),
            };
            recovery::seal_active_in_memory(st, data, index);
            recovery::create_segment(self.storage.as_ref(), &self.dir, st.next_seq, st)
        })();
        if let Err(e) = &r {
            self.poison(st, e);
        }
        r
    }

    fn poison(&self, st: &mut State, err: &Error) {
        let cause = err.to_string();
        st.poisoned.get_or_insert_with(|| cause.clone());
        let mut s = self.lock_sync();
        s.poisoned.get_or_insert(cause);
        self.sync_cv.notify_all();
    }

    fn mark_durable(&self, seq: u64) {
        let mut s = self.lock_sync();
        s.durable = s.durable.max(seq);
        self.visible.fetch_max(seq, Ordering::AcqRel);
        self.sync_cv.notify_all();
    }

    /// Waits until every event up to `target` is durable, running the fdatasync itself if no
    /// other thread is. With `force`, syncs even in the weaker durability modes.
    pub(crate) fn wait_durable(&self, target: u64, force: bool) -> Result<()> {
        if self.durability != Durability::Fsync && !force {
            return Ok(());
        }
        let mut s = self.lock_sync();
        loop {
            if let Some(cause) = &s.poisoned {
                return Err(Error::Poisoned {
                    cause: cause.clone(),
                });
            }
            if s.durable >= target {
                return Ok(());
            }
            if s.syncing {
                s = self.sync_cv.wait(s).unwrap_or_else(|p| p.into_inner());
                continue;
            }
            s.syncing = true;
            drop(s);
            // Let appenders that are ready to run write first, so this sync covers them too. A
            // scheduling hint, not a timed delay: with nothing else runnable it returns at once.
            std::thread::yield_now();
            // Everything written so far goes into this sync, whoever wrote it.
            let (upto, file, path) = {
                let st = self.lock_state();
                (
                    st.next_seq - 1,
                    st.active_file
                        .clone()
                        .expect("writer has an active segment"),
                    st.active().path.clone(),
                )
            };
            let r = file.sync_data();
            s = self.lock_sync();
            s.syncing = false;
            match r {
                Ok(()) => {
                    s.durable = s.durable.max(upto);
                    self.visible.fetch_max(upto, Ordering::AcqRel);
                    self.sync_cv.notify_all();
                }
                Err(e) => {
                    let err = Error::io("fdatasync", path, e);
                    s.poisoned.get_or_insert_with(|| err.to_string());
                    self.sync_cv.notify_all();
                    drop(s);
                    self.lock_state()
                        .poisoned
                        .get_or_insert_with(|| err.to_string());
                    return Err(err);
                }
            }
        }
    }
}

fn validate(parts: &[Part<'_>]) -> Result<()> {
    if parts.is_empty() {
        return Err(Error::invalid("append", "no streams given"));
    }
    for (i, p) in parts.iter().enumerate() {
        validate_stream(p.stream)?;
        if p.events.is_empty() {
            return Err(Error::invalid(
                "append",
                format!("no events given for stream `{}`", p.stream),
            ));
        }
        if parts[..i].iter().any(|q| q.stream == p.stream) {
            return Err(Error::invalid(
                "append",
                format!(
                    "stream `{}` appears twice in one multi-stream append",
                    p.stream
                ),
            ));
        }
        p.events.iter().try_for_each(validate_event)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    //! Write and sync failures poison the handle; a reopen recovers every acknowledged event.

    use std::sync::Arc;

    use serde_json::json;

    use crate::storage::FaultyStorage;
    use crate::{Error, ExpectedVersion, NewEvent, OpenOptions, Read, Store};

    fn open(dir: &std::path::Path, storage: &Arc<FaultyStorage>, segment_bytes: u64) -> Store {
        let mut opts = OpenOptions::new().segment_bytes(segment_bytes);
        opts.storage = Arc::new(Arc::clone(storage));
        opts.open(dir).unwrap()
    }

    fn ev(n: u64) -> NewEvent {
        NewEvent::new("T", json!({ "n": n }))
    }

    fn versions(store: &Store) -> Vec<u64> {
        store
            .read_stream("s", Read::forward())
            .unwrap()
            .map(|e| e.unwrap().version)
            .collect()
    }

    /// Checks the poisoned handle, then reopens on the real file system and checks recovery.
    fn assert_poisoned_then_recovers(dir: &std::path::Path, store: Store, acked: u64) {
        let err = store
            .append("s", ExpectedVersion::Any, [ev(99)])
            .unwrap_err();
        assert!(matches!(err, Error::Poisoned { .. }), "{err}");
        assert!(err.to_string().contains("reopen"), "{err}");
        assert!(matches!(store.sync(), Err(Error::Poisoned { .. })));
        // Readers keep working on what was acknowledged.
        assert_eq!(versions(&store), (1..=acked).collect::<Vec<_>>());
        drop(store);

        let store = Store::open(dir).unwrap();
        let got = versions(&store);
        // The failed append's outcome is unknown; every acknowledged one is there.
        assert!(
            got.len() as u64 >= acked && got.len() as u64 <= acked + 1,
            "{got:?}"
        );
        assert_eq!(got, (1..=got.len() as u64).collect::<Vec<_>>());
        let r = store.append("s", ExpectedVersion::Any, [ev(100)]).unwrap();
        assert_eq!(r.version, got.len() as u64 + 1);
        drop(store);
        assert!(crate::verify(dir).unwrap().is_sound());
    }

    #[test]
    fn a_failed_fsync_poisons_and_is_never_retried() {
        let dir = tempfile::tempdir().unwrap();
        let storage = FaultyStorage::new();
        let store = open(dir.path(), &storage, 1 << 20);
        for i in 0..5 {
            store.append("s", ExpectedVersion::Any, [ev(i)]).unwrap();
        }
        storage.fail_next_sync();
        let err = store
            .append("s", ExpectedVersion::Any, [ev(5)])
            .unwrap_err();
        assert!(
            matches!(
                err,
                Error::Io {
                    op: "fdatasync",
                    ..
                }
            ),
            "{err}"
        );
        assert_eq!(store.head_seq(), 5, "an unsynced event became visible");
        assert_poisoned_then_recovers(dir.path(), store, 5);
    }

    #[test]
    fn a_short_write_poisons_and_recovery_cuts_the_torn_batch() {
        let dir = tempfile::tempdir().unwrap();
        let storage = FaultyStorage::new();
        let store = open(dir.path(), &storage, 1 << 20);
        for i in 0..5 {
            store.append("s", ExpectedVersion::Any, [ev(i)]).unwrap();
        }
        storage.fail_next_write();
        let err = store
            .append("s", ExpectedVersion::Any, [ev(5), ev(6), ev(7)])
            .unwrap_err();
        assert!(matches!(err, Error::Io { op: "write", .. }), "{err}");
        assert_eq!(store.head_seq(), 5);
        assert_poisoned_then_recovers(dir.path(), store, 5);
        // The half-written batch was cut: exactly the five acknowledged events plus the probe.
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(versions(&store), (1..=6).collect::<Vec<_>>());
    }

    #[test]
    fn a_failure_while_rolling_a_segment_poisons() {
        let dir = tempfile::tempdir().unwrap();
        let storage = FaultyStorage::new();
        let store = open(dir.path(), &storage, 4096);
        let mut acked = 0;
        // Fill the first segment, then make creating the next one fail.
        while std::fs::metadata(dir.path().join("00000000000000000001.jsonl"))
            .unwrap()
            .len()
            < 4096 - 200
        {
            store
                .append("s", ExpectedVersion::Any, [ev(acked)])
                .unwrap();
            acked += 1;
        }
        storage.fail_next_create();
        let err = loop {
            match store.append("s", ExpectedVersion::Any, [ev(acked)]) {
                Ok(_) => acked += 1,
                Err(e) => break e,
            }
        };
        assert!(matches!(err, Error::Io { op: "create", .. }), "{err}");
        assert_poisoned_then_recovers(dir.path(), store, acked);
    }
}
