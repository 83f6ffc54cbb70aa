//! `GET /metrics`: counters and histograms in the Prometheus text format (version 0.0.4),
//! kept in atomics so that recording never takes a lock.
//!
//! This module owns the metric names and their meaning. It measures what the server sees from
//! outside the store (an append's latency includes its share of the group commit's fsync), and
//! renders the store's own counters (`EventStore::metrics`: appends, events, bytes, and the
//! syncs that made them durable, with their time) as `eventfile_store_*`.

use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// A latency histogram: a count per bucket, the sum in microseconds.
#[derive(Default)]
pub(crate) struct Histogram {
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|b| secs <= *b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add(d.as_micros() as u64, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let mut cumulative = 0;
        let sep = if labels.is_empty() { "" } else { "," };
        for (b, n) in BUCKETS.iter().zip(&self.buckets) {
            cumulative += n.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{b}\"}} {cumulative}");
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {count}");
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let braces = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let _ = writeln!(out, "{name}_sum{braces} {sum}");
        let _ = writeln!(out, "{name}_count{braces} {count}");
    }
}

/// Everything the server counts.
#[derive(Default)]
pub(crate) struct Metrics {
    /// Appends that wrote (or replayed) events.
    pub appends: AtomicU64,
    /// Appends refused or failed.
    pub append_errors: AtomicU64,
    /// Appends not made because their handler had given up (timed out, or its client hung up)
    /// before a worker took them from the queue.
    pub appends_abandoned: AtomicU64,
    /// Events written by appends.
    pub events: AtomicU64,
    /// Request body bytes of successful appends.
    pub bytes: AtomicU64,
    /// How long successful appends took, durable (fsync included).
    pub append_latency: Histogram,
    /// Events read by live feeds and handed to their connections.
    pub feed_events: AtomicU64,
    /// Live feeds whose last chunk their connection has not taken yet.
    pub feeds_blocked: AtomicU64,
    /// Per route and method: request latency (until the response head for streams).
    routes: Mutex<Vec<(String, u16, Histogram)>>,
}

impl Metrics {
    pub fn request(&self, route: &str, method: &str, status: u16, took: Duration) {
        let key = format!("method=\"{method}\",route=\"{}\"", escape(route));
        let mut routes = self.routes.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, _, h)) = routes.iter().find(|(k, s, _)| *k == key && *s == status) {
            h.observe(took);
            return;
        }
        let h = Histogram::default();
        h.observe(took);
        routes.push((key, status, h));
    }

    /// The Prometheus text.
    pub fn render(
        &self,
        subscribers: usize,
        head: u64,
        pending_bytes: usize,
        store: eventfile::Metrics,
    ) -> String {
        let mut out = String::new();
        let counter = |out: &mut String, name: &str, help: &str, v: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}"
            );
        };
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        counter(
            &mut out,
            "eventfile_appends_total",
            "Appends that succeeded (replays included).",
            load(&self.appends),
        );
        counter(
            &mut out,
            "eventfile_append_errors_total",
            "Appends refused or failed.",
            load(&self.append_errors),
        );
        counter(
            &mut out,
            "eventfile_appends_abandoned_total",
            "Appends not made: their request timed out, or their client hung up, while they waited in the queue.",
            load(&self.appends_abandoned),
        );
        counter(
            &mut out,
            "eventfile_events_appended_total",
            "Events written by appends.",
            load(&self.events),
        );
        counter(
            &mut out,
            "eventfile_append_bytes_total",
            "Request body bytes of successful appends.",
            load(&self.bytes),
        );
        counter(
            &mut out,
            "eventfile_feed_events_total",
            "Events read by live feeds (SSE and NDJSON) and handed to their connections.",
            load(&self.feed_events),
        );
        counter(
            &mut out,
            "eventfile_store_appends_total",
            "Appends the store wrote (retries that replayed not counted).",
            store.appends,
        );
        counter(
            &mut out,
            "eventfile_store_events_total",
            "Events the store wrote.",
            store.events,
        );
        counter(
            &mut out,
            "eventfile_store_bytes_total",
            "Bytes the store wrote to its log (the file store's framed records; 0 where the backend cannot tell).",
            store.bytes,
        );
        counter(
            &mut out,
            "eventfile_store_syncs_total",
            "Syncs that made the store's writes durable (fdatasync; a database's commit).",
            store.syncs,
        );
        let _ = writeln!(
            out,
            "# HELP eventfile_store_sync_seconds_total Time spent in those syncs.\n# TYPE eventfile_store_sync_seconds_total counter\neventfile_store_sync_seconds_total {}",
            store.sync_nanos as f64 / 1e9
        );
        let _ = writeln!(
            out,
            "# HELP eventfile_store_sync_max_seconds The longest sync so far.\n# TYPE eventfile_store_sync_max_seconds gauge\neventfile_store_sync_max_seconds {}",
            store.sync_max_nanos as f64 / 1e9
        );
        let _ = writeln!(
            out,
            "# HELP eventfile_subscribers Live feeds open now.\n# TYPE eventfile_subscribers gauge\neventfile_subscribers {subscribers}"
        );
        let _ = writeln!(
            out,
            "# HELP eventfile_feeds_blocked Live feeds whose last chunk their connection has not taken yet. One that stays so has a client reading slower than its feed could send, and reads nothing more from the log until its client catches up.\n# TYPE eventfile_feeds_blocked gauge\neventfile_feeds_blocked {}",
            load(&self.feeds_blocked)
        );
        let _ = writeln!(
            out,
            "# HELP eventfile_append_pending_bytes Bytes of append bodies held now, each from when it is read until its append ends (bounded by the server's max_pending_bytes).\n# TYPE eventfile_append_pending_bytes gauge\neventfile_append_pending_bytes {pending_bytes}"
        );
        let _ = writeln!(
            out,
            "# HELP eventfile_head_seq The newest visible seq.\n# TYPE eventfile_head_seq gauge\neventfile_head_seq {head}"
        );
        let _ = writeln!(
            out,
            "# HELP eventfile_append_duration_seconds Durable append latency, its share of the group commit's fsync included.\n# TYPE eventfile_append_duration_seconds histogram"
        );
        self.append_latency
            .render(&mut out, "eventfile_append_duration_seconds", "");
        let _ = writeln!(
            out,
            "# HELP eventfile_http_request_duration_seconds Request latency by route, method and status (streams: until the response head).\n# TYPE eventfile_http_request_duration_seconds histogram"
        );
        let routes = self.routes.lock().unwrap_or_else(|p| p.into_inner());
        for (key, status, h) in routes.iter() {
            h.render(
                &mut out,
                "eventfile_http_request_duration_seconds",
                &format!("{key},status=\"{status}\""),
            );
        }
        out
    }
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
