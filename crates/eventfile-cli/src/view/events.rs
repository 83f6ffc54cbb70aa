//! The events pane: a window of at most [`MAX_ROWS`] events of a query, loaded a page at a time
//! as the selection moves, so a log of ten million events is browsed holding a few hundred.
//!
//! Every load is a query bounded by seq and limit (`from_seq` forwards, `to_seq` backwards):
//! the top of the log, its end, or the page around a seq, on any backend. This module owns the
//! window and the selection; it never draws, and never follows the store (live events are
//! handed to [`EventsPane::push_live`]).

use std::collections::VecDeque;

use eventfile::{EventStore, Query, RecordedEvent};

use super::filter::Filter;

/// Events one load reads.
pub const PAGE: usize = 200;
/// The most events the window keeps: loads past it drop the far end.
pub const MAX_ROWS: usize = 4 * PAGE;

/// Where the events come from, before the typed filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// The whole log.
    All,
    /// One stream.
    Stream(String),
    /// The streams and prefix given on the command line.
    Query {
        streams: Vec<String>,
        prefix: Option<String>,
    },
}

impl Scope {
    fn query(&self) -> Query {
        match self {
            Scope::All => Query::new(),
            Scope::Stream(s) => Query::new().stream(s.clone()),
            Scope::Query { streams, prefix } => {
                let q = Query::new().streams(streams.clone());
                match prefix {
                    Some(p) => q.prefix(p.clone()),
                    None => q,
                }
            }
        }
    }

    /// How the title bar names it.
    pub fn label(&self) -> String {
        match self {
            Scope::All => "all events".into(),
            Scope::Stream(s) => format!("stream {s}"),
            Scope::Query { streams, prefix } => {
                let mut parts: Vec<String> = streams.clone();
                if let Some(p) = prefix {
                    parts.push(format!("{p}*"));
                }
                parts.join(", ")
            }
        }
    }
}

/// A window of the events a scope and filter select, in seq order, with a selected one.
#[derive(Debug)]
pub struct EventsPane {
    pub scope: Scope,
    pub filter: Filter,
    rows: VecDeque<RecordedEvent>,
    selected: usize,
    /// The first row shown (kept by the drawing, moved here when rows come or go above it).
    pub top: usize,
    /// Nothing matches before the first row.
    at_start: bool,
    /// Nothing matched after the last row when it was loaded.
    at_end: bool,
}

impl EventsPane {
    /// An empty pane; [`EventsPane::first`] or another load fills it.
    pub fn new(scope: Scope, filter: Filter) -> EventsPane {
        EventsPane {
            scope,
            filter,
            rows: VecDeque::new(),
            selected: 0,
            top: 0,
            at_start: true,
            at_end: true,
        }
    }

    /// The query of the scope and filter, unbounded.
    pub fn query(&self) -> Query {
        self.filter.apply(self.scope.query())
    }

    fn load(&self, store: &dyn EventStore, q: Query) -> eventfile::Result<Vec<RecordedEvent>> {
        q.validate()?;
        store.query(&q)?.collect()
    }

    fn replace(&mut self, rows: Vec<RecordedEvent>, selected: usize) {
        self.rows = rows.into();
        self.selected = selected.min(self.rows.len().saturating_sub(1));
        self.top = 0;
    }

    /// The first page.
    pub fn first(&mut self, store: &dyn EventStore) -> eventfile::Result<()> {
        let rows = self.load(store, self.query().limit(PAGE))?;
        self.at_start = true;
        self.at_end = rows.len() < PAGE;
        self.replace(rows, 0);
        Ok(())
    }

    /// The last page, its last event selected.
    pub fn last(&mut self, store: &dyn EventStore) -> eventfile::Result<()> {
        let mut rows = self.load(store, self.query().backward().limit(PAGE))?;
        rows.reverse();
        self.at_end = true;
        self.at_start = rows.len() < PAGE;
        let n = rows.len();
        self.replace(rows, n.saturating_sub(1));
        Ok(())
    }

    /// The page from the first matching event at or after `seq`, that event selected (the
    /// last page if none is); whether the selected event is at `seq`.
    pub fn goto_seq(&mut self, store: &dyn EventStore, seq: u64) -> eventfile::Result<bool> {
        // Below what retention kept, the query would be refused: the oldest kept is next.
        let from = seq.max(store.log_start()?);
        let rows = self.load(store, self.query().from_seq(from).limit(PAGE))?;
        if rows.is_empty() {
            self.last(store)?;
            return Ok(false);
        }
        let exact = rows[0].seq == seq;
        self.at_start = false;
        self.at_end = rows.len() < PAGE;
        self.replace(rows, 0);
        // What comes before it is read now, so that the page above is there at once.
        self.fetch_before(store)?;
        Ok(exact)
    }

    fn fetch_after(&mut self, store: &dyn EventStore) -> eventfile::Result<()> {
        // An empty window reads from the oldest event, wherever retention left it.
        let q = match self.rows.back() {
            Some(e) => self.query().from_seq(e.seq + 1),
            None => self.query(),
        };
        let rows = self.load(store, q.limit(PAGE))?;
        self.at_end = rows.len() < PAGE;
        self.rows.extend(rows);
        self.trim_front();
        Ok(())
    }

    fn fetch_before(&mut self, store: &dyn EventStore) -> eventfile::Result<()> {
        let Some(first) = self.rows.front().map(|e| e.seq) else {
            return Ok(());
        };
        // Nothing is before the oldest event retention kept, and asking is an error
        // (`Expired`), not an empty answer.
        if first <= store.log_start()? {
            self.at_start = true;
            return Ok(());
        }
        let rows = self.load(store, self.query().to_seq(first - 1).backward().limit(PAGE))?;
        self.at_start = rows.len() < PAGE;
        let n = rows.len();
        for e in rows {
            self.rows.push_front(e);
        }
        self.selected += n;
        self.top += n;
        while self.rows.len() > MAX_ROWS && self.selected + PAGE < self.rows.len() {
            self.rows.pop_back();
            self.at_end = false;
        }
        Ok(())
    }

    fn trim_front(&mut self) {
        while self.rows.len() > MAX_ROWS && self.selected > PAGE {
            self.rows.pop_front();
            self.selected -= 1;
            self.top = self.top.saturating_sub(1);
            self.at_start = false;
        }
    }

    /// Moves the selection `n` rows down, loading the next page when it reaches the end.
    pub fn down(&mut self, store: &dyn EventStore, n: usize) -> eventfile::Result<()> {
        if self.selected + n >= self.rows.len() && !self.at_end {
            self.fetch_after(store)?;
        }
        self.selected = (self.selected + n).min(self.rows.len().saturating_sub(1));
        Ok(())
    }

    /// Moves the selection `n` rows up, loading the page before when it reaches the start.
    pub fn up(&mut self, store: &dyn EventStore, n: usize) -> eventfile::Result<()> {
        if self.selected < n && !self.at_start {
            self.fetch_before(store)?;
        }
        self.selected = self.selected.saturating_sub(n);
        Ok(())
    }

    /// An event that came live: added if the window reaches the end of the matches (and
    /// selected if the last row was), else noted as there being more below.
    pub fn push_live(&mut self, event: RecordedEvent) {
        if self.rows.back().is_some_and(|e| e.seq >= event.seq) {
            return;
        }
        if !self.at_end {
            return;
        }
        let follow = self.rows.is_empty() || self.selected + 1 == self.rows.len();
        // Not following, the front cannot be dropped (the selection may be there), so the
        // window stops growing at its bound: what comes later is read by moving down to it.
        if !follow && self.rows.len() >= MAX_ROWS {
            self.at_end = false;
            return;
        }
        self.rows.push_back(event);
        if follow {
            self.selected = self.rows.len() - 1;
        }
        self.trim_front();
    }

    /// Where a live subscription starts: after the last row if the window reaches the end of
    /// the matches, else `head` (what lies between is read by moving down).
    pub fn live_from(&self, head: u64) -> u64 {
        match self.rows.back() {
            Some(e) if self.at_end => e.seq,
            _ => head,
        }
    }

    /// The window reaches the end of the matches.
    pub fn at_end(&self) -> bool {
        self.at_end
    }

    pub fn rows(&self) -> &VecDeque<RecordedEvent> {
        &self.rows
    }

    pub fn selected_index(&self) -> usize {
        self.selected
    }

    pub fn selected(&self) -> Option<&RecordedEvent> {
        self.rows.get(self.selected)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use eventfile::{ExpectedVersion, MemoryStore, NewEvent};

    /// 2,000 events: even ones in stream `even` of type `E`, odd ones in `odd` of type `O`.
    fn store() -> MemoryStore {
        let store = MemoryStore::new();
        for i in 1..=2000u64 {
            let (s, t) = if i % 2 == 0 {
                ("even", "E")
            } else {
                ("odd", "O")
            };
            store
                .append(
                    s,
                    ExpectedVersion::Any,
                    vec![NewEvent::new(t, serde_json::json!(i))],
                )
                .unwrap();
        }
        store
    }

    #[test]
    fn moving_down_loads_pages_and_keeps_a_bounded_window() {
        let store = store();
        let mut pane = EventsPane::new(Scope::All, Filter::default());
        pane.first(&store).unwrap();
        assert_eq!(pane.rows().len(), PAGE);
        for _ in 0..1999 {
            pane.down(&store, 1).unwrap();
            assert!(pane.rows().len() <= MAX_ROWS + PAGE);
        }
        assert_eq!(pane.selected().unwrap().seq, 2000);
        pane.down(&store, 1).unwrap();
        assert_eq!(pane.selected().unwrap().seq, 2000);
        for _ in 0..1999 {
            pane.up(&store, 1).unwrap();
        }
        assert_eq!(pane.selected().unwrap().seq, 1);
    }

    #[test]
    fn the_end_a_seq_and_a_filter() {
        let store = store();
        let mut pane = EventsPane::new(Scope::Stream("odd".into()), Filter::default());
        pane.last(&store).unwrap();
        assert_eq!(pane.selected().unwrap().seq, 1999);
        assert!(!pane.goto_seq(&store, 1000).unwrap());
        assert_eq!(pane.selected().unwrap().seq, 1001);
        pane.up(&store, 1).unwrap();
        assert_eq!(pane.selected().unwrap().seq, 999);
        let filter = Filter::parse("type=E").unwrap();
        let mut pane = EventsPane::new(Scope::All, filter);
        assert!(pane.goto_seq(&store, 1000).unwrap());
        pane.down(&store, 3).unwrap();
        assert_eq!(pane.selected().unwrap().seq, 1006);
    }

    #[test]
    fn live_events_are_added_at_the_end_only() {
        let store = store();
        let mut pane = EventsPane::new(Scope::All, Filter::default());
        pane.last(&store).unwrap();
        assert_eq!(pane.live_from(5000), 2000);
        store
            .append(
                "odd",
                ExpectedVersion::Any,
                vec![NewEvent::new("O", serde_json::json!(0))],
            )
            .unwrap();
        let new = store.get_event_by_seq(2001);
        pane.push_live(new.clone());
        pane.push_live(new);
        assert_eq!(pane.selected().unwrap().seq, 2001);
        assert_eq!(pane.rows().iter().filter(|e| e.seq == 2001).count(), 1);
    }

    #[test]
    fn live_events_stop_at_the_bound_unless_followed() {
        let store = MemoryStore::new();
        let append = |n: usize| {
            let events: Vec<NewEvent> = (0..n)
                .map(|i| NewEvent::new("T", serde_json::json!(i)))
                .collect();
            store.append("s", ExpectedVersion::Any, events).unwrap();
        };
        append(10);
        let mut pane = EventsPane::new(Scope::All, Filter::default());
        pane.first(&store).unwrap();
        // The selection at the top, not following: 20,000 events come live.
        append(20_000);
        for e in store.query(&Query::new().from_seq(11)).unwrap() {
            pane.push_live(e.unwrap());
        }
        assert_eq!(pane.rows().len(), MAX_ROWS);
        assert_eq!(pane.selected().unwrap().seq, 1);
        assert!(!pane.at_end(), "the rest is there to be read");
        // Moving down reads them, the window bounded as ever.
        let mut moves = 0;
        while pane.selected().unwrap().seq < 20_010 {
            pane.down(&store, PAGE).unwrap();
            assert!(pane.rows().len() <= MAX_ROWS + PAGE);
            moves += 1;
            assert!(moves < 200, "the end was never reached");
        }
        assert!(pane.at_end());
        // Followed (the last row selected), the window moves with the events.
        append(2_000);
        for e in store.query(&Query::new().from_seq(20_011)).unwrap() {
            pane.push_live(e.unwrap());
        }
        assert_eq!(pane.selected().unwrap().seq, 22_010);
        assert!(pane.rows().len() <= MAX_ROWS + 1, "{}", pane.rows().len());
    }

    #[test]
    fn jumps_and_paging_stop_at_what_retention_kept() {
        use eventfile::{OpenOptions, RetentionPolicy};
        let dir = tempfile::tempdir().unwrap();
        let store = OpenOptions::new()
            .segment_bytes(65536)
            .open(dir.path())
            .unwrap();
        let pad = "x".repeat(100);
        for _ in 0..30 {
            let events: Vec<NewEvent> = (0..100)
                .map(|i| NewEvent::new("T", serde_json::json!({ "i": i, "pad": pad })))
                .collect();
            store.append("s", ExpectedVersion::Any, events).unwrap();
        }
        store
            .set_retention_policy(RetentionPolicy::keep_all().max_events(1000))
            .unwrap();
        store.run_retention(false).unwrap();
        let start = store.log_start();
        assert!(start > PAGE as u64, "retention removed segments: {start}");
        let mut pane = EventsPane::new(Scope::All, Filter::default());
        assert!(pane.goto_seq(&store, start).unwrap());
        assert_eq!(pane.selected().unwrap().seq, start);
        pane.up(&store, 1).unwrap();
        assert_eq!(pane.selected().unwrap().seq, start);
        // Below the log start: the oldest kept is the next.
        assert!(!pane.goto_seq(&store, 1).unwrap());
        assert_eq!(pane.selected().unwrap().seq, start);
        // Paging up from the end reaches it.
        pane.last(&store).unwrap();
        for _ in 0..30 {
            pane.up(&store, PAGE).unwrap();
        }
        assert_eq!(pane.selected().unwrap().seq, start);
        pane.first(&store).unwrap();
        assert_eq!(pane.selected().unwrap().seq, start);
    }

    trait BySeq {
        fn get_event_by_seq(&self, seq: u64) -> RecordedEvent;
    }

    impl BySeq for MemoryStore {
        fn get_event_by_seq(&self, seq: u64) -> RecordedEvent {
            self.query(&Query::new().from_seq(seq).limit(1))
                .unwrap()
                .next()
                .unwrap()
                .unwrap()
        }
    }
}
