//! The viewer's state machine: which screen is shown, the prompt being typed, live mode, and
//! what each key does. Keys come in as [`Key`] values and every effect goes through the
//! `&dyn EventStore` handed in, so the whole behaviour is tested on a `MemoryStore` without a
//! terminal. This module never draws and never touches the terminal.

use std::time::{Duration, Instant};

use eventfile::{EventStore, Query, Subscription};
use eventfile_connect::AnyStore;

use super::events::{EventsPane, Scope};
use super::filter::Filter;
use super::meter::Meter;
use super::streams::StreamsPane;

/// A key, as the viewer understands it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    Up,
    Down,
    PageUp,
    PageDown,
    Home,
    End,
    Enter,
    Esc,
    Backspace,
    Char(char),
    /// Ctrl-C: quits, as `q` does.
    Interrupt,
}

/// What the caller does after a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Continue,
    Quit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Screen {
    Streams,
    Events,
}

/// What a prompt asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ask {
    /// The streams' prefix.
    Prefix,
    /// The events' filter.
    Filter,
    /// A seq to jump to.
    Seq,
    /// An event id to jump to.
    Id,
}

impl Ask {
    pub fn label(self) -> &'static str {
        match self {
            Ask::Prefix => "stream prefix",
            Ask::Filter => "filter (type= tag= since= until= actor= correlation= causation=)",
            Ask::Seq => "go to seq",
            Ask::Id => "go to event id",
        }
    }
}

/// A line being typed in place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prompt {
    pub ask: Ask,
    pub text: String,
}

/// Events read from a live subscription per tick at most, so a burst cannot stall the keys.
const LIVE_PER_TICK: usize = 2000;

pub struct App {
    pub screen: Screen,
    pub streams: StreamsPane,
    pub events: EventsPane,
    pub prompt: Option<Prompt>,
    pub help: bool,
    /// The first line of the JSON shown.
    pub json_scroll: usize,
    /// The selected event's JSON lines, kept while it stays selected.
    pub json: super::json::Lines,
    /// What the last action said (an error, where a jump landed).
    pub status: String,
    /// Rows of the list on screen (set by the drawing), the step of PageUp and PageDown.
    pub page_rows: usize,
    /// The store's name, for the title bar.
    pub location: String,
    live: Option<Subscription>,
    /// Live mode is on (the subscription may be missing after an error, then retried).
    pub live_on: bool,
    /// New events were seen on the streams screen: its page is read again.
    streams_dirty: bool,
    /// The head seq and live rate of the status line.
    pub meter: Meter,
    /// The store handle's own counters, as last read with the head.
    pub metrics: eventfile::Metrics,
    /// The file store's handle, refreshed before each load and head reading: a read-only
    /// handle otherwise keeps the log as it was when opened, and never shows another process's
    /// appends (live mode aside: its subscription refreshes it). `None` for other backends,
    /// which read the store afresh on every query.
    file: Option<eventfile::Store>,
    /// Why the store is no longer there (its directory or file removed or replaced while
    /// viewing): said on the status line whenever nothing else is, and live mode stays off.
    pub gone: Option<String>,
}

impl App {
    /// [`App::on_store`] on a store of no backend in particular, refreshing nothing: for the
    /// tests, on a `MemoryStore`.
    #[cfg(test)]
    pub fn new(
        store: &dyn EventStore,
        location: String,
        scope: Scope,
        filter: Filter,
        live: bool,
    ) -> App {
        App::start(store, None, location, scope, filter, live)
    }

    /// The viewer on `store`, named `location` in the title: the streams list, or the events
    /// of `scope` and `filter` if they narrow anything; following new events if `live`. A file
    /// store's read-only handle is refreshed as it goes, to show other processes' appends.
    pub fn on_store(
        store: &AnyStore,
        location: String,
        scope: Scope,
        filter: Filter,
        live: bool,
    ) -> App {
        let file = match store {
            AnyStore::File(s) => Some(s.clone()),
            _ => None,
        };
        App::start(store.as_dyn(), file, location, scope, filter, live)
    }

    fn start(
        store: &dyn EventStore,
        file: Option<eventfile::Store>,
        location: String,
        scope: Scope,
        filter: Filter,
        live: bool,
    ) -> App {
        let on_events = scope != Scope::All || !filter.is_empty();
        let mut app = App {
            screen: if on_events {
                Screen::Events
            } else {
                Screen::Streams
            },
            streams: StreamsPane::new(String::new()),
            events: EventsPane::new(scope, filter),
            prompt: None,
            help: false,
            json_scroll: 0,
            json: super::json::Lines::default(),
            status: String::new(),
            page_rows: 10,
            location,
            live: None,
            live_on: false,
            streams_dirty: false,
            meter: Meter::default(),
            metrics: eventfile::Metrics::default(),
            file,
            gone: None,
        };
        app.read_meter(store, true);
        let r = if on_events {
            app.events.first(store)
        } else {
            app.streams.first(store)
        };
        app.report(r);
        if live {
            app.set_live(store, true);
        }
        app
    }

    fn report<T>(&mut self, r: eventfile::Result<T>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(e) => {
                self.status = format!("error: {e}");
                None
            }
        }
    }

    /// Brings a file store's read-only handle up to the writer's appends (nothing for other
    /// backends).
    fn catch_up(&self) -> eventfile::Result<()> {
        match &self.file {
            Some(file) => file.refresh().map(drop),
            None => Ok(()),
        }
    }

    /// Handles one key.
    pub fn key(&mut self, store: &dyn EventStore, key: Key) -> Outcome {
        if key == Key::Interrupt {
            return Outcome::Quit;
        }
        if self.prompt.is_some() {
            self.prompt_key(store, key);
            return Outcome::Continue;
        }
        if self.help {
            self.help = false;
            return if key == Key::Char('q') {
                Outcome::Quit
            } else {
                Outcome::Continue
            };
        }
        self.status.clear();
        // Most keys load something: they show what other processes appended until now. And
        // `l` then counts as live only what comes after it, not what the handle had not seen.
        let r = self.catch_up();
        self.report(r);
        let page = self.page_rows.max(1);
        let before = self.events.selected().map(|e| e.seq);
        match (self.screen, key) {
            (_, Key::Char('q')) => return Outcome::Quit,
            (_, Key::Char('?')) => self.help = true,
            (_, Key::Char('l')) => self.set_live(store, !self.live_on),
            (_, Key::Char('s' | ':')) => self.ask(Ask::Seq, String::new()),
            (_, Key::Char('i')) => self.ask(Ask::Id, String::new()),
            (_, Key::Char('a')) => self.open(store, Scope::All),
            (Screen::Streams, Key::Char('/' | 'f')) => {
                let text = self.streams.prefix.clone();
                self.ask(Ask::Prefix, text)
            }
            (Screen::Events, Key::Char('/' | 'f')) => {
                let text = self.events.filter.to_string();
                self.ask(Ask::Filter, text)
            }
            (Screen::Streams, Key::Enter) => {
                if let Some(s) = self.streams.selected().map(|s| s.stream.clone()) {
                    self.open(store, Scope::Stream(s));
                }
            }
            (Screen::Events, Key::Esc | Key::Backspace) => {
                self.screen = Screen::Streams;
                let r = self.streams.reload(store);
                self.report(r);
                self.resubscribe(store);
            }
            (Screen::Streams, k) => {
                let r = match k {
                    Key::Down | Key::Char('j') => self.streams.down(store, 1),
                    Key::Up | Key::Char('k') => self.streams.up(store, 1),
                    Key::PageDown => self.streams.down(store, page),
                    Key::PageUp => self.streams.up(store, page),
                    Key::Home | Key::Char('g') => self.streams.first(store),
                    Key::End | Key::Char('G') => {
                        self.streams.end();
                        Ok(())
                    }
                    other => {
                        self.unknown(other);
                        Ok(())
                    }
                };
                self.report(r);
            }
            (Screen::Events, k) => {
                let r = match k {
                    Key::Down | Key::Char('j') => self.events.down(store, 1),
                    Key::Up | Key::Char('k') => self.events.up(store, 1),
                    Key::PageDown => self.events.down(store, page),
                    Key::PageUp => self.events.up(store, page),
                    Key::Home | Key::Char('g') => self.events.first(store),
                    Key::End | Key::Char('G') => self.events.last(store),
                    Key::Char('J') => {
                        self.json_scroll = self.json_scroll.saturating_add(1);
                        Ok(())
                    }
                    Key::Char('K') => {
                        self.json_scroll = self.json_scroll.saturating_sub(1);
                        Ok(())
                    }
                    other => {
                        self.unknown(other);
                        Ok(())
                    }
                };
                self.report(r);
            }
        }
        if self.events.selected().map(|e| e.seq) != before {
            self.json_scroll = 0;
        }
        Outcome::Continue
    }

    /// A key that does nothing on this screen: a letter is named on the status line, so that a
    /// mistyped key is not mistaken for a viewer that stopped answering.
    fn unknown(&mut self, key: Key) {
        if let Key::Char(c) = key {
            self.status = format!("`{c}` does nothing here: ? shows the keys");
        }
    }

    fn ask(&mut self, ask: Ask, text: String) {
        self.prompt = Some(Prompt { ask, text });
    }

    fn prompt_key(&mut self, store: &dyn EventStore, key: Key) {
        let Some(prompt) = &mut self.prompt else {
            return;
        };
        match key {
            Key::Char(c) => prompt.text.push(c),
            Key::Backspace => {
                prompt.text.pop();
            }
            Key::Esc => self.prompt = None,
            Key::Enter => {
                let Prompt { ask, text } = self.prompt.take().expect("a prompt");
                let r = self.catch_up();
                self.report(r);
                self.answer(store, ask, text.trim());
            }
            _ => {}
        }
    }

    fn answer(&mut self, store: &dyn EventStore, ask: Ask, text: &str) {
        match ask {
            Ask::Prefix => {
                let r = self.streams.set_prefix(store, text.to_owned());
                self.report(r);
            }
            Ask::Filter => match Filter::parse(text) {
                Ok(filter) => {
                    self.events.filter = filter;
                    let r = self.events.first(store);
                    self.report(r);
                    self.resubscribe(store);
                }
                Err(why) => {
                    self.status = format!("filter not applied: {why}");
                    self.ask(Ask::Filter, text.to_owned());
                }
            },
            Ask::Seq => match text.parse::<u64>() {
                Ok(seq) => self.goto_seq(store, seq),
                Err(_) => self.status = format!("`{text}` is not a seq (a whole number)"),
            },
            Ask::Id => match store.get_event(text) {
                Ok(Some(e)) => {
                    self.goto_seq(store, e.seq);
                    if self.events.selected().map(|s| s.seq) != Some(e.seq) {
                        // Not in this view: the whole log, unfiltered, holds it.
                        self.events = EventsPane::new(Scope::All, Filter::default());
                        self.goto_seq(store, e.seq);
                        self.resubscribe(store);
                    }
                    self.status = format!(
                        "event {} is seq {} ({} v{})",
                        e.id, e.seq, e.stream, e.version
                    );
                }
                Ok(None) => self.status = format!("no event with id `{text}`"),
                Err(e) => self.status = format!("error: {e}"),
            },
        }
    }

    fn goto_seq(&mut self, store: &dyn EventStore, seq: u64) {
        if self.screen == Screen::Streams {
            self.open(store, Scope::All);
        }
        self.json_scroll = 0;
        match self.events.goto_seq(store, seq) {
            Ok(true) => self.status = format!("seq {seq}"),
            Ok(false) => match self.events.selected() {
                Some(e) => {
                    self.status = format!("no match at seq {seq}: the next is seq {}", e.seq)
                }
                None => self.status = "no events match".into(),
            },
            Err(e) => self.status = format!("error: {e}"),
        }
    }

    /// Shows the events of `scope`, keeping the typed filter.
    fn open(&mut self, store: &dyn EventStore, scope: Scope) {
        let filter = self.events.filter.clone();
        self.events = EventsPane::new(scope, filter);
        self.screen = Screen::Events;
        self.json_scroll = 0;
        let r = self.events.first(store);
        self.report(r);
        self.resubscribe(store);
    }

    /// The store was removed or replaced (`why`): live mode ends, and what was read stays on
    /// screen to be looked at.
    pub fn store_gone(&mut self, store: &dyn EventStore, why: String) {
        self.set_live(store, false);
        self.status = format!("error: {why}");
        self.gone = Some(why);
    }

    fn set_live(&mut self, store: &dyn EventStore, on: bool) {
        if on && let Some(why) = &self.gone {
            self.status = format!("error: no live mode: {why}");
            return;
        }
        self.live_on = on;
        self.live = None;
        self.meter.set_live(store, on, Instant::now());
        if on {
            self.resubscribe(store);
            if self.screen == Screen::Events && self.live.is_some() {
                // Follow: to the end, where new events arrive.
                let r = self.events.last(store);
                self.report(r);
                self.resubscribe(store);
            }
        }
    }

    /// A subscription for what the screen shows, from where the screen ends.
    fn resubscribe(&mut self, store: &dyn EventStore) {
        self.live = None;
        if !self.live_on {
            return;
        }
        let r = store.head_seq().and_then(|head| match self.screen {
            Screen::Events => store.subscribe(&self.events.query(), self.events.live_from(head)),
            Screen::Streams => store.subscribe(&Query::new(), head),
        });
        self.live = self.report(r);
    }

    /// Reads the head seq for the status line (at most once a second unless `force`), and the
    /// handle's counters when it moved (an append of this handle moves it); whether either
    /// changed.
    fn read_meter(&mut self, store: &dyn EventStore, force: bool) -> bool {
        let now = Instant::now();
        if !force && !self.meter.due(now) {
            return false;
        }
        // A failed refresh keeps the last reading; the next load says the error.
        let _ = self.catch_up();
        let moved = self.meter.read(store, now, true);
        if moved || force {
            self.metrics = store.metrics();
        }
        moved || force
    }

    /// Takes what came live since the last tick, and reads the status line's figures once a
    /// second; whether anything changed.
    pub fn tick(&mut self, store: &dyn EventStore) -> bool {
        let metered = self.read_meter(store, false);
        if !self.live_on {
            return metered;
        }
        if self.live.is_none() {
            self.resubscribe(store);
        }
        let Some(sub) = &mut self.live else {
            return false;
        };
        let mut changed = false;
        let mut failed = None;
        for _ in 0..LIVE_PER_TICK {
            match sub.next_timeout(Duration::ZERO) {
                Ok(Some(e)) => {
                    changed = true;
                    match self.screen {
                        Screen::Events => self.events.push_live(e),
                        Screen::Streams => self.streams_dirty = true,
                    }
                }
                Ok(None) => break,
                Err(eventfile::Error::Gap { first, last }) => {
                    self.status = format!("events {first} to {last} were removed by retention");
                }
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        if let Some(e) = failed {
            self.status = format!("live: {e}");
            self.live = None;
        }
        if self.streams_dirty && self.screen == Screen::Streams {
            self.streams_dirty = false;
            let r = self.streams.reload(store);
            self.report(r);
        }
        changed || metered
    }

    /// The keys of the current screen, for the bottom line.
    pub fn keys(&self) -> &'static str {
        if let Some(p) = &self.prompt {
            return if p.ask == Ask::Filter {
                "Enter apply (empty: none)  Esc cancel  e.g. type=OrderPlaced tag=region=eu"
            } else {
                "Enter go  Esc cancel"
            };
        }
        match self.screen {
            Screen::Streams => {
                "jk move  Enter open  / prefix  a all  s seq  i id  l live  ? help  q quit"
            }
            Screen::Events => {
                "jk move  J/K json  f filter  s seq  i id  l live  Esc back  ? help  q quit"
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use eventfile::{ExpectedVersion, MemoryStore, NewEvent};

    fn store() -> MemoryStore {
        let store = MemoryStore::new();
        for i in 1..=300u64 {
            let (s, t) = match i % 3 {
                0 => ("order-1", "Paid"),
                1 => ("order-2", "Placed"),
                _ => ("customer-1", "Registered"),
            };
            let e =
                NewEvent::new(t, serde_json::json!({ "n": i })).with_tag(format!("n={}", i % 2));
            store.append(s, ExpectedVersion::Any, vec![e]).unwrap();
        }
        store
    }

    fn typed(app: &mut App, store: &dyn EventStore, text: &str) {
        for c in text.chars() {
            app.key(store, Key::Char(c));
        }
        app.key(store, Key::Enter);
    }

    #[test]
    fn a_key_that_does_nothing_is_named() {
        let store = store();
        let mut app = App::new(
            &store,
            "memory:".into(),
            Scope::All,
            Filter::default(),
            false,
        );
        app.key(&store, Key::Char('z'));
        assert_eq!(app.status, "`z` does nothing here: ? shows the keys");
        app.key(&store, Key::Down);
        assert_eq!(app.status, "", "a key that does something clears it");
        app.key(&store, Key::Enter);
        app.key(&store, Key::Char('x'));
        assert!(
            app.status.starts_with("`x` does nothing here"),
            "{}",
            app.status
        );
    }

    #[test]
    fn streams_open_into_their_events_and_back() {
        let store = store();
        let mut app = App::new(
            &store,
            "memory:".into(),
            Scope::All,
            Filter::default(),
            false,
        );
        assert_eq!(app.screen, Screen::Streams);
        assert_eq!(app.streams.rows().len(), 3);
        app.key(&store, Key::Down);
        app.key(&store, Key::Enter);
        assert_eq!(app.screen, Screen::Events);
        assert_eq!(app.events.scope, Scope::Stream("order-1".into()));
        assert_eq!(app.events.selected().unwrap().seq, 3);
        app.key(&store, Key::End);
        assert_eq!(app.events.selected().unwrap().seq, 300);
        app.key(&store, Key::Esc);
        assert_eq!(app.screen, Screen::Streams);
        app.key(&store, Key::Char('/'));
        typed(&mut app, &store, "cust");
        assert_eq!(app.streams.rows().len(), 1);
        assert_eq!(app.key(&store, Key::Char('q')), Outcome::Quit);
    }

    #[test]
    fn a_filter_typed_in_place_and_jumps() {
        let store = store();
        let mut app = App::new(
            &store,
            "memory:".into(),
            Scope::All,
            Filter::default(),
            false,
        );
        app.key(&store, Key::Char('a'));
        app.key(&store, Key::Char('f'));
        typed(&mut app, &store, "type=Placed tag=n=0");
        assert_eq!(app.prompt, None);
        // Placed events are seq 1, 4, 7...; n=0 tags even seqs: 4, 10, 16...
        assert_eq!(app.events.selected().unwrap().seq, 4);
        app.key(&store, Key::Down);
        assert_eq!(app.events.selected().unwrap().seq, 10);
        app.key(&store, Key::Char('s'));
        typed(&mut app, &store, "100");
        assert_eq!(app.events.selected().unwrap().seq, 100);
        app.key(&store, Key::Char('f'));
        typed(&mut app, &store, " colour=red");
        assert!(app.status.contains("unknown filter"), "{}", app.status);
        assert!(app.prompt.is_some(), "the prompt stays for a fix");
        app.key(&store, Key::Esc);
        let id = store
            .query(&Query::new().from_seq(299).limit(1))
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .id;
        app.key(&store, Key::Char('i'));
        typed(&mut app, &store, &id);
        // Seq 299 is not a Placed event: the whole log is shown to reach it.
        assert_eq!(app.events.selected().unwrap().seq, 299);
        assert_eq!(app.events.scope, Scope::All);
        assert!(app.events.filter.is_empty());
        app.key(&store, Key::Char('i'));
        typed(&mut app, &store, "nope");
        assert!(app.status.contains("no event with id"));
    }

    #[test]
    fn a_file_store_shows_what_another_handle_appended() {
        use eventfile::OpenOptions;
        let dir = tempfile::tempdir().unwrap();
        let writer = OpenOptions::new().open(dir.path()).unwrap();
        let append = |n: usize| {
            let events: Vec<NewEvent> = (0..n)
                .map(|_| NewEvent::new("T", serde_json::json!({})))
                .collect();
            writer.append("s", ExpectedVersion::Any, events).unwrap();
        };
        append(5);
        let any = AnyStore::File(eventfile::Store::open_read_only(dir.path()).unwrap());
        let store = any.as_dyn();
        let mut app = App::on_store(
            &any,
            "file:x".into(),
            Scope::Stream("s".into()),
            Filter::default(),
            false,
        );
        assert_eq!(app.meter.head, 5);
        append(3);
        assert!(app.read_meter(store, true));
        assert_eq!(app.meter.text(&app.metrics), "head 8");
        app.key(store, Key::End);
        assert_eq!(app.events.selected().unwrap().seq, 8);
        // Live mode counts from the head when it comes on, not as the handle last saw it.
        append(2);
        app.key(store, Key::Char('l'));
        app.read_meter(store, true);
        assert_eq!(app.meter.text(&app.metrics), "head 10  live +0");
        assert_eq!(app.events.selected().unwrap().seq, 10);
    }

    #[test]
    fn live_mode_follows_new_events() {
        let store = store();
        let mut app = App::new(
            &store,
            "memory:".into(),
            Scope::All,
            Filter::default(),
            false,
        );
        app.key(&store, Key::Char('a'));
        app.key(&store, Key::Char('l'));
        assert!(app.live_on);
        assert_eq!(app.events.selected().unwrap().seq, 300);
        store
            .append(
                "order-9",
                ExpectedVersion::Any,
                vec![NewEvent::new("Placed", serde_json::json!({}))],
            )
            .unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while app.events.selected().unwrap().seq != 301 {
            assert!(
                std::time::Instant::now() < deadline,
                "the new event never came"
            );
            app.tick(&store);
            store.wait_for(301, Duration::from_millis(50)).unwrap();
        }
        app.key(&store, Key::Esc);
        store
            .append(
                "order-10",
                ExpectedVersion::Any,
                vec![NewEvent::new("Placed", serde_json::json!({}))],
            )
            .unwrap();
        while app.streams.rows().len() != 5 {
            assert!(
                std::time::Instant::now() < deadline,
                "the new stream never came"
            );
            app.tick(&store);
            store.wait_for(302, Duration::from_millis(50)).unwrap();
        }
    }
}
