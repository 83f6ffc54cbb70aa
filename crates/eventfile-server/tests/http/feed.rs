//! `GET /subscribe`: history then live as SSE, Last-Event-ID resume, filters, heartbeats, the
//! NDJSON form and the subscriber cap.

use std::time::Duration;

use eventfile_server::ServeOptions;
use futures_util::StreamExt;
use serde_json::{Value, json};

use crate::common::{Sse, TestServer, append_n, error, event};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_then_live_then_resume() {
    let (s, _store) =
        TestServer::memory(ServeOptions::new().heartbeat(Duration::from_millis(50))).await;
    append_n(&s, "a", "A", 3).await;
    let mut feed = Sse::new(s.get("/subscribe").await);
    for seq in 1..=3 {
        let (id, e) = feed.next_event().await.unwrap();
        assert_eq!((id, e["seq"].as_u64().unwrap()), (seq, seq));
    }
    // Live: appended after the feed caught up.
    append_n(&s, "b", "B", 2).await;
    assert_eq!(feed.next_event().await.unwrap().0, 4);
    assert_eq!(feed.next_event().await.unwrap().1["stream"], "b");
    // Idle: a heartbeat comment.
    assert!(feed.next().await.unwrap().comment);
    drop(feed);

    // A reconnect with Last-Event-ID: after that seq, nothing skipped or repeated; it wins over
    // `from`, as a browser reconnects to the same URL.
    let r = s
        .client
        .get(s.url("/subscribe?from=0"))
        .header("last-event-id", "3")
        .send()
        .await
        .unwrap();
    let mut feed = Sse::new(r);
    assert_eq!(feed.next_event().await.unwrap().0, 4);
    assert_eq!(feed.next_event().await.unwrap().0, 5);

    // Filters: only the matching events, positions still gapless underneath.
    let mut only_b = Sse::new(s.get("/subscribe?type=B&from=0").await);
    assert_eq!(only_b.next_event().await.unwrap().0, 4);
    assert_eq!(only_b.next_event().await.unwrap().0, 5);
    append_n(&s, "a", "A", 1).await;
    append_n(&s, "b", "B", 1).await;
    assert_eq!(only_b.next_event().await.unwrap().0, 7);
    assert_eq!(feed.next_event().await.unwrap().0, 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_events_in_order_and_ndjson() {
    let (s, store) =
        TestServer::memory(ServeOptions::new().heartbeat(Duration::from_millis(50))).await;
    let mut feed = Sse::new(s.get("/subscribe?from=0").await);
    // More than a batch, appended while the feed runs, through the store directly too.
    let appender = {
        let store = store.clone();
        tokio::task::spawn_blocking(move || {
            use eventfile::{EventStore, ExpectedVersion, NewEvent};
            for i in 0..1000 {
                store
                    .append(
                        "s",
                        ExpectedVersion::Any,
                        vec![NewEvent::new("E", json!(i))],
                    )
                    .unwrap();
            }
        })
    };
    for seq in 1..=1000 {
        assert_eq!(feed.next_event().await.unwrap().0, seq);
    }
    appender.await.unwrap();

    let r = s
        .client
        .get(s.url("/subscribe?from=998"))
        .header("accept", "application/x-ndjson")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["content-type"], "application/x-ndjson");
    let mut body = r.bytes_stream();
    let mut text = String::new();
    let mut lines: Vec<Value> = Vec::new();
    while lines.len() < 3 {
        text.push_str(std::str::from_utf8(&body.next().await.unwrap().unwrap()).unwrap());
        while let Some(end) = text.find('\n') {
            let line: String = text.drain(..=end).collect();
            lines.push(serde_json::from_str(&line).unwrap());
        }
    }
    assert_eq!(lines[0]["seq"], 999);
    assert_eq!(lines[1]["seq"], 1000);
    assert!(lines[2]["heartbeat"].is_u64(), "{}", lines[2]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriber_cap_is_503() {
    let (s, _store) = TestServer::memory(ServeOptions::new().max_subscribers(2)).await;
    let a = s.get("/subscribe").await;
    let b = s.get("/subscribe").await;
    assert_eq!((a.status().as_u16(), b.status().as_u16()), (200, 200));
    error(s.get("/subscribe").await, 503, "unavailable").await;
    // Appends and reads are not capped.
    let r = s
        .post("/streams/x", json!({"events": [event("E", json!({}))]}))
        .await;
    assert_eq!(r.status(), 200);
}

/// A filtered feed whose filter selects none of the events appended meanwhile still sends its
/// heartbeat: each unrelated append used to restart the wait, so a feed on a busy log with a
/// rare type sent nothing for good (and a proxy's idle timeout cut it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_filtered_feed_sends_heartbeats_while_other_events_arrive() {
    let (s, _store) =
        TestServer::memory(ServeOptions::new().heartbeat(Duration::from_millis(200))).await;
    let mut feed = Sse::new(s.get("/subscribe?type=B").await);
    let appender = {
        let s_url = s.url("/streams/a");
        let client = s.client.clone();
        tokio::spawn(async move {
            // Appends every 20 ms, ten times the heartbeat: well past its interval.
            for i in 0..100 {
                let body = json!({"events": [event("A", json!({"i": i}))]});
                let r = client.post(&s_url).json(&body).send().await.unwrap();
                assert_eq!(r.status(), 200);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let m = tokio::time::timeout(Duration::from_secs(1), feed.next())
        .await
        .expect("no heartbeat while unrelated events arrived")
        .unwrap();
    assert!(m.comment, "{m:?}");
    appender.abort();
}

/// A gap carries the id of its last seq: a client that reconnects after it (naming the last
/// id it saw) is not told of the same gap again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gap_has_an_id_and_is_reported_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = eventfile::OpenOptions::new()
        .segment_bytes(4096)
        .open(dir.path())
        .unwrap();
    let pad = "x".repeat(400);
    for i in 0..40 {
        store
            .append(
                "a",
                eventfile::ExpectedVersion::Any,
                vec![eventfile::NewEvent::new("A", json!({ "i": i, "pad": pad }))],
            )
            .unwrap();
    }
    store
        .set_retention_policy(eventfile::RetentionPolicy::keep_all().max_events(10))
        .unwrap();
    store.run_retention(false).unwrap();
    let start = eventfile::EventStore::log_start(&store).unwrap();
    assert!(start > 1, "retention removed nothing");
    let s = TestServer::start(std::sync::Arc::new(store), ServeOptions::new()).await;
    let mut feed = Sse::new(s.get("/subscribe?type=B").await);
    let gap = feed.next().await.unwrap();
    assert_eq!(gap.event.as_deref(), Some("gap"));
    let last = start - 1;
    assert_eq!(gap.id, Some(last.to_string()));
    drop(feed);
    let r = s
        .client
        .get(s.url("/subscribe?type=B"))
        .header("last-event-id", last.to_string())
        .timeout(Duration::from_millis(500))
        .send()
        .await
        .unwrap();
    let mut again = Sse::new(r);
    // Nothing to say until an event of type B comes: no second gap.
    let next = tokio::time::timeout(Duration::from_millis(300), again.next()).await;
    if let Ok(Some(m)) = next {
        assert_ne!(m.event.as_deref(), Some("gap"), "the gap again: {m:?}");
    }
}
