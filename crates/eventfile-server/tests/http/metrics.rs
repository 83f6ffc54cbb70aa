//! `GET /metrics` over the file store: every family the server promises (appends, events, bytes,
//! fsyncs and their latency, subscribers, request latencies) follows what was done, and the
//! OpenAPI document names each family the server exports.

use std::collections::BTreeMap;
use std::sync::Arc;

use eventfile::Store;
use eventfile_server::ServeOptions;
use serde_json::json;

use crate::common::{Sse, TestServer, append_n, error, event};

/// Every sample of a Prometheus text, by its name and labels as written.
fn samples(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (key, value) = l.rsplit_once(' ').unwrap();
            (key.to_owned(), value.parse().unwrap())
        })
        .collect()
}

/// Checks one histogram series: cumulative buckets, `+Inf` equal to the count; its count.
fn histogram(m: &BTreeMap<String, f64>, name: &str, labels: &str) -> f64 {
    let sep = if labels.is_empty() { "" } else { "," };
    let braces = if labels.is_empty() {
        String::new()
    } else {
        format!("{{{labels}}}")
    };
    let count = m[&format!("{name}_count{braces}")];
    let sum = m[&format!("{name}_sum{braces}")];
    let buckets: Vec<f64> = m
        .iter()
        .filter(|(k, _)| k.starts_with(&format!("{name}_bucket{{{labels}{sep}le=")))
        .map(|(_, v)| *v)
        .collect();
    assert_eq!(buckets.len(), 15, "{name}{braces}");
    // The map orders `le` as text; cumulative counts are still each at most the +Inf one.
    assert!(buckets.iter().all(|b| *b <= count), "{name}{braces}");
    assert_eq!(
        m[&format!("{name}_bucket{{{labels}{sep}le=\"+Inf\"}}")],
        count
    );
    assert!(count == 0.0 || sum > 0.0, "{name}{braces}: sum {sum}");
    count
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_follow_appends_syncs_feeds_and_requests() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path()).unwrap());
    let s = TestServer::start(store.clone(), ServeOptions::new()).await;
    append_n(&s, "a", "A", 5).await;
    let r = s
        .post(
            "/streams/a",
            json!({"events": [event("A", json!({}))], "expect": 1}),
        )
        .await;
    error(r, 409, "conflict").await;
    let mut feed = Sse::new(s.get("/subscribe").await);
    for seq in 1..=5 {
        assert_eq!(feed.next_event().await.unwrap().0, seq);
    }
    for _ in 0..3 {
        assert_eq!(s.get("/head").await.status(), 200);
    }
    error(s.get("/events/no-such-id-42").await, 404, "not_found").await;
    error(s.get("/no/such/route").await, 404, "not_found").await;

    let text = s.get("/metrics").await.text().await.unwrap();
    let m = samples(&text);
    for (name, want) in [
        ("eventfile_appends_total", 5.0),
        ("eventfile_append_errors_total", 1.0),
        ("eventfile_events_appended_total", 5.0),
        ("eventfile_store_appends_total", 5.0),
        ("eventfile_store_events_total", 5.0),
        ("eventfile_feed_events_total", 5.0),
        ("eventfile_subscribers", 1.0),
        ("eventfile_head_seq", 5.0),
    ] {
        assert_eq!(m[name], want, "{name} in\n{text}");
    }
    assert!(m["eventfile_append_bytes_total"] > 0.0);
    assert!(m["eventfile_store_bytes_total"] > 0.0);
    // Each append through the file store waited for an fsync (some may have shared one).
    let syncs = m["eventfile_store_syncs_total"];
    assert!((1.0..=5.0).contains(&syncs), "{syncs} syncs");
    let (sync_time, sync_max) = (
        m["eventfile_store_sync_seconds_total"],
        m["eventfile_store_sync_max_seconds"],
    );
    assert!(
        sync_max > 0.0 && sync_max <= sync_time,
        "sync max {sync_max} s, total {sync_time} s"
    );
    assert_eq!(histogram(&m, "eventfile_append_duration_seconds", ""), 5.0);

    // Request latencies by route template, method and status.
    let requests = "eventfile_http_request_duration_seconds";
    for (labels, count) in [
        (
            r#"method="POST",route="/streams/{stream}",status="200""#,
            5.0,
        ),
        (
            r#"method="POST",route="/streams/{stream}",status="409""#,
            1.0,
        ),
        (r#"method="GET",route="/subscribe",status="200""#, 1.0),
        (r#"method="GET",route="/head",status="200""#, 3.0),
        (r#"method="GET",route="/events/{id}",status="404""#, 1.0),
        (r#"method="GET",route="unmatched",status="404""#, 1.0),
    ] {
        assert_eq!(histogram(&m, requests, labels), count, "{labels}");
    }
    // Never the raw path: its cardinality is the client's.
    assert!(!text.contains("/no/such/route") && !text.contains("no-such-id"));

    // The OpenAPI document names every family, and only those.
    let doc: serde_json::Value = serde_json::from_str(eventfile_server::OPENAPI).unwrap();
    let described = doc["paths"]["/metrics"]["get"]["description"]
        .as_str()
        .unwrap();
    let exported: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .map(|l| l.split(' ').next().unwrap())
        .collect();
    let named: Vec<&str> = described
        .split('`')
        .filter(|w| w.starts_with("eventfile_"))
        .collect();
    let mut a = exported.clone();
    let mut b = named.clone();
    a.sort_unstable();
    b.sort_unstable();
    assert_eq!(a, b, "exported vs named in openapi.json");

    drop(feed);
    s.stop().await;
    let store = Arc::try_unwrap(store).expect("the server gave the store back");
    store.close().unwrap();
}

/// Request methods are the client's: any token is one. Counted by name, they grew `/metrics`
/// by a series for each new one (and by its length, up to the header buffer, on every scrape);
/// any method outside RFC 9110's is counted as `other`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn methods_of_the_clients_choosing_are_counted_as_other() {
    let (s, _store) = TestServer::memory(ServeOptions::new()).await;
    for i in 0..50 {
        let method = reqwest::Method::from_bytes(format!("M{i}").as_bytes()).unwrap();
        let _ = s
            .client
            .request(method, s.url("/health"))
            .send()
            .await
            .unwrap();
    }
    let text = s.get("/metrics").await.text().await.unwrap();
    assert!(
        !text.contains("method=\"M1\""),
        "a client's method is a label"
    );
    assert!(text.contains("method=\"other\""), "{text}");
}
