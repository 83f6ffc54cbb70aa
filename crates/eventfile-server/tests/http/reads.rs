//! The reads: a stream, the query filters with cursor paging, NDJSON, one event, the listings,
//! the head, health, metrics and the OpenAPI document.

use serde_json::{Value, json};

use crate::common::{TestServer, append_n, error, event, json};

async fn seqs(s: &TestServer, path: &str) -> (Vec<u64>, Option<String>) {
    let r = s.get(path).await;
    let next = r
        .headers()
        .get("eventfile-next")
        .map(|v| v.to_str().unwrap().to_owned());
    let (status, v) = json(r).await;
    assert_eq!(status, 200, "{path}: {v}");
    let seqs = v
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    (seqs, next)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_reads_and_queries() {
    let (s, _store) = TestServer::memory(Default::default()).await;
    append_n(&s, "order-1", "Placed", 3).await; // seqs 1..=3
    append_n(&s, "order-2", "Paid", 2).await; // 4, 5
    let r = s
        .post(
            "/streams/cart-1",
            json!({"events": [{"type": "Paid", "tags": ["region=eu"], "meta": {"actor": "ann"}}]}),
        )
        .await;
    assert_eq!(r.status(), 200); // 6

    // A stream, forward and backward, from a version, limited.
    let r = s.get("/streams/order-1").await;
    let (_, v) = json(r).await;
    let first = &v[0];
    assert_eq!(
        first
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect::<Vec<_>>(),
        [
            "data", "id", "meta", "seq", "stream", "tags", "time", "type", "version"
        ]
    );
    assert_eq!(first["data"], json!({"i": 0}));
    assert_eq!(seqs(&s, "/streams/order-1?from=2").await.0, [2, 3]);
    assert_eq!(
        seqs(&s, "/streams/order-1?backward=true&limit=2").await.0,
        [3, 2]
    );
    assert_eq!(seqs(&s, "/streams/nothing-here").await.0, Vec::<u64>::new());

    // The query filters, under eventfile query's names.
    assert_eq!(seqs(&s, "/events?type=Paid").await.0, [4, 5, 6]);
    assert_eq!(seqs(&s, "/events?type=Paid&tag=region%3Deu").await.0, [6]);
    assert_eq!(
        seqs(
            &s,
            "/events?stream=order-1&stream=order-2&from-seq=3&to-seq=4"
        )
        .await
        .0,
        [3, 4]
    );
    assert_eq!(
        seqs(&s, "/events?prefix=order-&backward=true").await.0,
        [5, 4, 3, 2, 1]
    );
    assert_eq!(seqs(&s, "/events?actor=ann").await.0, [6]);
    assert_eq!(
        seqs(&s, "/events?since=2000-01-01T00:00:00Z").await.0.len(),
        6
    );
    assert_eq!(
        json(s.get("/events?type=Paid&count=true").await).await.1,
        json!({"count": 3})
    );

    // Pages: every event once, in order, forward and backward.
    for (dir, expected) in [
        ("false", vec![1, 2, 3, 4, 5, 6]),
        ("true", vec![6, 5, 4, 3, 2, 1]),
    ] {
        let mut all = Vec::new();
        let mut path = format!("/events?limit=4&backward={dir}");
        loop {
            let (page, next) = seqs(&s, &path).await;
            all.extend(page);
            match next {
                Some(c) => path = format!("/events?limit=4&backward={dir}&after={c}"),
                None => break,
            }
        }
        assert_eq!(all, expected);
    }
    // A cursor for the other direction is refused.
    let (_, next) = seqs(&s, "/events?limit=1").await;
    let r = s
        .get(&format!(
            "/events?limit=1&backward=true&after={}",
            next.unwrap()
        ))
        .await;
    error(r, 400, "invalid_input").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ndjson_is_one_event_a_line() {
    let (s, _store) = TestServer::memory(Default::default()).await;
    append_n(&s, "s", "E", 700).await;
    for path in ["/events", "/streams/s", "/events?limit=700"] {
        let r = s
            .client
            .get(s.url(path))
            .header("accept", "application/x-ndjson")
            .send()
            .await
            .unwrap();
        assert_eq!(r.headers()["content-type"], "application/x-ndjson");
        let text = r.text().await.unwrap();
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 700, "{path}");
        assert!(
            lines
                .iter()
                .enumerate()
                .all(|(i, e)| e["seq"] == i as u64 + 1)
        );
    }
    // The JSON array of a streamed read, over several batches, is one valid array.
    let (_, v) = json(s.get("/events").await).await;
    assert_eq!(v.as_array().unwrap().len(), 700);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_event_listings_head_health_metrics() {
    let (s, _store) = TestServer::memory(Default::default()).await;
    let r = s
        .post(
            "/streams/order-1",
            json!({"events": [{"type": "Placed", "id": "e-1", "tags": ["k=v"]}, event("Paid", json!({}))]}),
        )
        .await;
    assert_eq!(r.status(), 200);
    append_n(&s, "order-2", "Paid", 1).await;
    append_n(&s, "user-1", "Joined", 1).await;

    let (status, v) = json(s.get("/events/e-1").await).await;
    assert_eq!(
        (status, v["stream"].clone(), v["seq"].clone()),
        (200, json!("order-1"), json!(1))
    );
    error(s.get("/events/missing").await, 404, "not_found").await;

    let (_, v) = json(s.get("/streams?prefix=order-").await).await;
    assert_eq!(
        v,
        json!([{"stream": "order-1", "version": 2}, {"stream": "order-2", "version": 1}])
    );
    let r = s.get("/streams?limit=1").await;
    assert_eq!(r.headers()["eventfile-next"], "order-1");
    let (_, v) = json(s.get("/streams?after=order-1&limit=1").await).await;
    assert_eq!(v, json!([{"stream": "order-2", "version": 1}]));

    let (_, v) = json(s.get("/types").await).await;
    assert_eq!(
        v,
        json!([{"type": "Joined", "count": 1}, {"type": "Paid", "count": 2}, {"type": "Placed", "count": 1}])
    );
    let (_, v) = json(s.get("/tags").await).await;
    assert_eq!(v, json!([{"tag": "k=v", "count": 1}]));
    assert_eq!(
        json(s.get("/head").await).await.1,
        json!({"head": 4, "log_start": 1})
    );
    assert_eq!(
        json(s.get("/health").await).await.1,
        json!({"status": "ok"})
    );

    let r = s.get("/metrics").await;
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = r.text().await.unwrap();
    for name in [
        "eventfile_appends_total 3",
        "eventfile_events_appended_total 4",
        "eventfile_append_bytes_total ",
        "eventfile_subscribers 0",
        "eventfile_store_appends_total 3",
        "eventfile_store_events_total 4",
        "eventfile_store_syncs_total ",
        "eventfile_store_sync_seconds_total ",
        "eventfile_append_duration_seconds_count 3",
        "eventfile_http_request_duration_seconds_count{method=\"POST\",route=\"/streams/{stream}\",status=\"200\"} 3",
    ] {
        assert!(text.contains(name), "{name} missing from\n{text}");
    }
    let (status, doc) = json(s.get("/openapi.json").await).await;
    assert_eq!((status, doc["openapi"].clone()), (200, json!("3.0.3")));
}

/// A page with a limit is built whole before it is sent: it ends once it holds 16 MiB of
/// events, with a next cursor, where `max_limit` events of the largest size held tens of
/// gibibytes for one request. Following the cursors reads every event once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_ends_early_past_its_bytes_with_a_next_cursor() {
    let (s, store) = TestServer::memory(Default::default()).await;
    let big = "x".repeat(1 << 20);
    for _ in 0..20 {
        eventfile::EventStore::append(
            &*store,
            "s",
            eventfile::ExpectedVersion::Any,
            vec![eventfile::NewEvent::new("Big", json!({ "pad": big }))],
        )
        .unwrap();
    }
    let (first, next) = seqs(&s, "/events?limit=20").await;
    assert!(first.len() < 20, "{} events in one page", first.len());
    assert_eq!(first, (1..=first.len() as u64).collect::<Vec<_>>());
    let mut all = first;
    let mut next = next.expect("a next cursor after a page cut short");
    loop {
        let (page, more) = seqs(&s, &format!("/events?limit=20&after={next}")).await;
        all.extend(page);
        match more {
            Some(n) => next = n,
            None => break,
        }
    }
    assert_eq!(all, (1..=20).collect::<Vec<_>>());
}
