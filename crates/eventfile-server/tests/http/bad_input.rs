//! Hostile and malformed input: a 4xx with a clear message or a clean close, and the server
//! keeps serving everyone else.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use eventfile::EventStore;
use eventfile_server::ServeOptions;
use serde_json::json;

use crate::common::{TestServer, append_n, error, event, eventually, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_bodies_are_refused_with_a_reason() {
    let (s, store) = TestServer::memory(Default::default()).await;
    let cases: [(&str, &str, &str); 9] = [
        ("/streams/a", "{\"events\": [", "invalid JSON body"),
        ("/streams/a", "", "empty"),
        (
            "/streams/a",
            "{\"events\": [{\"type\": \"A\"}], \"colour\": 1}",
            "unknown field `colour`",
        ),
        (
            "/streams/a",
            "{\"events\": [{\"type\": \"A\", \"dat\": 1}]}",
            "unknown field `dat`",
        ),
        (
            "/streams/a",
            "{\"events\": [{\"type\": 5}]}",
            "invalid type",
        ),
        ("/streams/a", "{\"events\": []}", "at least one event"),
        (
            "/streams/a",
            "{\"events\": [{\"type\": \"A\"}], \"expect\": \"maybe\"}",
            "maybe",
        ),
        (
            "/append",
            "[{\"stream\": \"a\", \"events\": [{\"type\": \"A\"}], \"key\": 1}]",
            "unknown field `key`",
        ),
        (
            "/streams/a",
            "{\"events\": [{\"type\": \"A\", \"meta\": {\"n\": 1e400}}]}",
            "invalid",
        ),
    ];
    for (path, body, says) in cases {
        let msg = error(
            s.post_raw(path, body.to_owned()).await,
            400,
            "invalid_input",
        )
        .await;
        assert!(msg.contains(says), "{body}: {msg}");
    }
    // A name the library refuses, in the path.
    error(
        s.post_raw("/streams/%01bad", r#"{"events":[{"type":"A"}]}"#.to_owned())
            .await,
        400,
        "invalid_input",
    )
    .await;
    assert_eq!(store.head_seq().unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_parameters_cursors_and_limits() {
    let (s, _store) = TestServer::memory(Default::default()).await;
    append_n(&s, "a", "A", 3).await;
    for (path, says) in [
        ("/events?colour=red", "colour"),
        ("/events?limit=lots", "limit"),
        ("/events?limit=10000000000", "maximum"),
        ("/streams/a?limit=99999999", "maximum"),
        ("/events?after=c1.2.f.00000000", "cursor"),
        ("/events?after=ef1.abc.2.f.deadbeef", "cursor"),
        ("/events?since=yesterday", "RFC 3339"),
        ("/events?from-seq=5&to-seq=2", "seq"),
        ("/events?from=2", "from"),
        ("/subscribe?limit=2", "limit"),
        ("/types?prefix=x", "prefix"),
        // Bytes that are not UTF-8 once percent-decoded: the form decoder turned them into
        // U+FFFD, and the filter silently matched nothing (a feed that never delivers).
        ("/events?stream=%FF", "UTF-8"),
        ("/subscribe?type=a%C3", "UTF-8"),
        ("/events?str%FFeam=a", "UTF-8"),
        // In the path: axum's own plain-text 400 before.
        ("/streams/%FF", "UTF-8"),
        ("/events/%FF%FE", "UTF-8"),
    ] {
        let msg = error(s.get(path).await, 400, "invalid_input").await;
        assert!(msg.contains(says), "{path}: {msg}");
    }
    error(s.get("/nowhere").await, 404, "not_found").await;
    let r = s.client.delete(s.url("/events")).send().await.unwrap();
    error(r, 405, "method_not_allowed").await;
    let r = s
        .client
        .get(s.url("/subscribe"))
        .header("last-event-id", "x")
        .send()
        .await
        .unwrap();
    error(r, 400, "invalid_input").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_bodies_are_413() {
    let (s, store) = TestServer::memory(ServeOptions::new().body_limit(64 << 10)).await;
    let big = "x".repeat(100 << 10);
    let body = json!({"events": [event("A", json!({"big": big}))]}).to_string();
    // Sent chunked, with no length: refused once it grows past the limit.
    let chunks: Vec<Result<String, std::io::Error>> = body
        .as_bytes()
        .chunks(8 << 10)
        .map(|c| Ok(String::from_utf8(c.to_vec()).unwrap()))
        .collect();
    let r = s
        .post_raw(
            "/streams/a",
            reqwest::Body::wrap_stream(futures_util::stream::iter(chunks)),
        )
        .await;
    error(r, 413, "payload_too_large").await;
    // Declared with a length over the limit: answered before a byte of the body is sent, so
    // the server never reads it (the client here sends none).
    let (d, _) = TestServer::memory(Default::default()).await;
    for (addr, len) in [(s.addr, 64u64 << 10 | 1), (d.addr, 8 << 20 | 1)] {
        let head = format!(
            "POST /streams/a HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {len}\r\n\r\n"
        );
        let answer = tokio::task::spawn_blocking(move || raw(addr, head.as_bytes()))
            .await
            .unwrap();
        assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
        assert!(
            answer.contains(r#"{"error":{"kind":"payload_too_large","message":"#),
            "{answer}"
        );
    }
    // Just under the default limit of 8 MiB is taken.
    let under = json!({"events": [event("A", json!("y".repeat(900 << 10)))]}).to_string();
    assert_eq!(d.post_raw("/streams/a", under).await.status(), 200);
    assert_eq!(store.head_seq().unwrap(), 0);
    assert_eq!(s.get("/health").await.status(), 200);
}

/// Sends raw bytes and reads the whole answer (the server closes it).
fn raw(addr: std::net::SocketAddr, bytes: &[u8]) -> String {
    let mut c = TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c.write_all(bytes).unwrap();
    let mut out = Vec::new();
    let _ = c.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_that_hang_up_mid_append_or_mid_stream() {
    let (s, store) =
        TestServer::memory(ServeOptions::new().heartbeat(Duration::from_millis(20))).await;
    let addr = s.addr;
    // Mid-append: half the declared body, then the client goes. Nothing is written.
    let body = r#"{"events":[{"type":"A","id":"half-1"}]}"#;
    let head = format!(
        "POST /streams/a HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    tokio::task::spawn_blocking(move || {
        let mut c = TcpStream::connect(addr).unwrap();
        c.write_all(head.as_bytes()).unwrap();
        c.write_all(&body.as_bytes()[..10]).unwrap();
        drop(c);
    })
    .await
    .unwrap();
    // The whole retry, same id: written once.
    let full = json!({"events": [{"type": "A", "id": "half-1"}]});
    assert_eq!(
        json(s.post("/streams/a", full.clone()).await).await.1["first_seq"],
        1
    );
    assert_eq!(
        json(s.post("/streams/a", full).await).await.1["replayed"],
        true
    );
    assert_eq!(store.head_seq().unwrap(), 1);

    // A header flood: refused by the HTTP layer, not served.
    let flood = format!(
        "GET /head HTTP/1.1\r\nhost: x\r\n{}\r\n",
        (0..200)
            .map(|i| format!("x-h{i}: v\r\n"))
            .collect::<String>()
    );
    let answer = tokio::task::spawn_blocking(move || raw(addr, flood.as_bytes()))
        .await
        .unwrap();
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 431"),
        "{answer}"
    );

    // Mid-stream: a read and a feed, dropped after their first bytes.
    append_n(&s, "b", "B", 600).await;
    for path in ["/events", "/subscribe"] {
        let mut r = s.get(path).await;
        assert_eq!(r.status(), 200);
        assert!(r.chunk().await.unwrap().is_some());
        drop(r);
    }
    let metrics = || async { s.get("/metrics").await.text().await.unwrap() };
    eventually("the dropped feed's slot freed", async || {
        metrics().await.contains("eventfile_subscribers 0")
    })
    .await;
    assert_eq!(json(s.get("/head").await).await.1["head"], 601);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_never_arrives_is_408() {
    let options = ServeOptions::new().request_timeout(Duration::from_millis(300));
    let (s, store) = TestServer::memory(options).await;
    let addr = s.addr;
    let head = "POST /streams/a HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 40\r\n\r\n{\"events\"";
    let answer = tokio::task::spawn_blocking(move || raw(addr, head.as_bytes()))
        .await
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains(r#""kind":"timeout""#), "{answer}");
    assert_eq!(store.head_seq().unwrap(), 0);
}

/// `null` where a member is optional is not "absent": `"data": null` is stored as null (it was
/// stored as `{}`), and `"expect": null` is refused (it appended with no check at all), as are
/// a version given as a string and a null key or metadata.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn null_is_a_value_not_an_absent_member() {
    let (s, store) = TestServer::memory(ServeOptions::new()).await;
    let r = s
        .post(
            "/streams/s",
            json!({"events": [{"type": "T", "data": null}]}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let read = store.read_stream("s", eventfile::Read::forward()).unwrap();
    let events: Vec<_> = read.collect::<Result<_, _>>().unwrap();
    assert_eq!(events[0].data.get(), "null");
    for body in [
        json!({"events": [event("T", json!({}))], "expect": null}),
        json!({"events": [event("T", json!({}))], "expect": "1"}),
        json!({"events": [event("T", json!({}))], "key": null}),
        json!({"events": [{"type": "T", "meta": null}]}),
        json!({"events": [{"type": "T", "id": null}]}),
    ] {
        let r = s.post("/streams/s", body.clone()).await;
        error(r, 400, "invalid_input").await;
    }
    assert_eq!(store.head_seq().unwrap(), 1, "nothing else was written");
}

/// A query parameter with no value (`limit=`) was read as absent: a page asked for read the
/// whole log, and a feed `from=` replayed it from 0. A signed or out-of-range number is
/// refused too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_and_signed_query_values_are_refused() {
    let (s, _store) = TestServer::memory(ServeOptions::new()).await;
    append_n(&s, "s", "T", 3).await;
    for path in [
        "/events?limit=",
        "/events?limit",
        "/subscribe?from=",
        "/events?limit=%2B2",
        "/events?from-seq=9223372036854775808",
        "/streams/s?from=-1",
    ] {
        let msg = error(s.get(path).await, 400, "invalid_input").await;
        assert!(!msg.is_empty(), "{path}");
    }
    let r = s
        .client
        .get(s.url("/subscribe"))
        .header("last-event-id", "+2")
        .send()
        .await
        .unwrap();
    error(r, 400, "invalid_input").await;
}
