//! The right-hand side of the viewer's status line: the store's head seq, and in live mode the
//! events appended since it came on and their rate, with the handle's own counters
//! ([`eventfile::Metrics`]) where it has any.
//!
//! The head is read at most once a second (a database backend answers it with a query), and
//! the rate is the head's growth over the last ten seconds of those readings: the appends of
//! every writer, also another process's, which the viewer's own handle (read-only) never
//! counts in its metrics. This module owns the readings and their text; it never draws.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use eventfile::{EventStore, Metrics};

/// How often the head is read.
const EVERY: Duration = Duration::from_secs(1);
/// The span the rate is measured over.
const WINDOW: Duration = Duration::from_secs(10);

#[derive(Debug, Default)]
pub struct Meter {
    /// The head seq last read.
    pub head: u64,
    /// Readings of the head while live, oldest first, spanning at most [`WINDOW`].
    samples: VecDeque<(Instant, u64)>,
    /// The head when live mode came on (`None`: not live).
    live_from: Option<u64>,
    /// When the head was last read.
    read_at: Option<Instant>,
}

impl Meter {
    /// Reads the head if a second has passed since the last reading (or `force`); whether the
    /// text changed.
    pub fn read(&mut self, store: &dyn EventStore, now: Instant, force: bool) -> bool {
        if !force && !self.due(now) {
            return false;
        }
        self.read_at = Some(now);
        match store.head_seq() {
            Ok(head) => self.record(now, head),
            Err(_) => false, // the status line keeps the last reading; the panes say the error
        }
    }

    /// Whether a second has passed since the last reading (so that [`Meter::read`] reads).
    pub fn due(&self, now: Instant) -> bool {
        self.read_at.is_none_or(|t| now.duration_since(t) >= EVERY)
    }

    /// Notes a reading of the head.
    fn record(&mut self, now: Instant, head: u64) -> bool {
        let changed = head != self.head;
        self.head = head;
        if self.live_from.is_some() {
            self.samples.push_back((now, head));
            while self
                .samples
                .front()
                .is_some_and(|&(t, _)| now.duration_since(t) > WINDOW)
            {
                self.samples.pop_front();
            }
        }
        changed
    }

    /// Live mode came on (counting from the head now) or went off.
    pub fn set_live(&mut self, store: &dyn EventStore, on: bool, now: Instant) {
        self.samples.clear();
        self.live_from = None;
        self.read(store, now, true);
        if on {
            self.live_from = Some(self.head);
            self.samples.push_back((now, self.head));
        }
    }

    /// Appended events per second over the readings kept; `None` before a second of them.
    fn rate(&self) -> Option<f64> {
        let (&(t0, h0), &(t1, h1)) = (self.samples.front()?, self.samples.back()?);
        let secs = t1.duration_since(t0).as_secs_f64();
        (secs >= 1.0).then(|| h1.saturating_sub(h0) as f64 / secs)
    }

    /// The text: `head 2000`, and live `head 2003  live +3 0.6/s`, then the handle's appends
    /// and syncs if it made any. At most about 45 columns, so that a message fits beside it on
    /// an 80-column line.
    pub fn text(&self, metrics: &Metrics) -> String {
        let mut t = format!("head {}", self.head);
        if let Some(from) = self.live_from {
            t.push_str(&format!("  live +{}", self.head.saturating_sub(from)));
            match self.rate() {
                Some(r) if r < 10.0 => t.push_str(&format!(" {r:.1}/s")),
                Some(r) => t.push_str(&format!(" {r:.0}/s")),
                None => {}
            }
        }
        if metrics.appends > 0 {
            t.push_str(&format!(
                "  this handle: {} appends {} syncs",
                metrics.appends, metrics.syncs
            ));
        }
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use eventfile::{ExpectedVersion, MemoryStore, NewEvent};

    fn append(store: &MemoryStore, n: usize) {
        for _ in 0..n {
            store
                .append(
                    "s",
                    ExpectedVersion::Any,
                    vec![NewEvent::new("T", serde_json::json!({}))],
                )
                .unwrap();
        }
    }

    #[test]
    fn the_head_then_live_growth_and_rate_over_the_window() {
        let store = MemoryStore::new();
        append(&store, 5);
        let t0 = Instant::now();
        let mut m = Meter::default();
        assert!(m.read(&store, t0, true));
        assert_eq!(m.text(&Metrics::default()), "head 5");
        m.set_live(&store, true, t0);
        assert_eq!(m.text(&Metrics::default()), "head 5  live +0");
        append(&store, 4);
        // Not a second yet: not read again.
        assert!(!m.read(&store, t0 + Duration::from_millis(500), false));
        assert!(m.read(&store, t0 + Duration::from_secs(2), false));
        assert_eq!(m.text(&Metrics::default()), "head 9  live +4 2.0/s");
        append(&store, 40);
        assert!(m.read(&store, t0 + Duration::from_secs(4), false));
        assert_eq!(m.text(&Metrics::default()), "head 49  live +44 11/s");
        // The window keeps ten seconds: the readings before t0 + 3 s leave it.
        m.read(&store, t0 + Duration::from_secs(13), false);
        assert_eq!(m.text(&Metrics::default()), "head 49  live +44 0.0/s");
        m.set_live(&store, false, t0 + Duration::from_secs(16));
        let text = m.text(&store.metrics());
        assert!(
            text.starts_with("head 49  this handle: 49 appends"),
            "{text}"
        );
        assert!(text.len() <= 50, "{text}");
    }
}
