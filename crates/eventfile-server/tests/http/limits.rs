//! Clients that hold the server's resources without using them: a request whose headers never
//! end, more connections than the server serves at once, and a feed whose client takes nothing.
//! Each is bounded (the request timeout, `max_connections`), so that no client can keep others
//! from being served.

use std::time::Duration;

use eventfile::{EventStore, ExpectedVersion, NewEvent};
use eventfile_server::ServeOptions;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::backpressure::{RawFeed, bound};
use crate::common::{TestServer, eventually, metric};

/// Longer than any wait below should take: a watchdog, not a synchronisation.
const WATCHDOG: Duration = Duration::from_secs(20);

/// Reads until the server closes the connection; what it sent.
async fn until_closed(sock: &mut TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    tokio::time::timeout(WATCHDOG, sock.read_to_end(&mut got))
        .await
        .expect("the server never closed the connection")
        .ok();
    got
}

/// A client that starts a request and never finishes its headers is closed after the request
/// timeout (before, the connection stayed open, holding its slot, for as long as the client
/// liked); so is a connection that sends nothing at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_whose_headers_never_end_is_closed() {
    let options = ServeOptions::new().request_timeout(Duration::from_millis(300));
    let (s, _store) = TestServer::memory(options).await;
    let mut partial = TcpStream::connect(s.addr).await.unwrap();
    partial
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let mut silent = TcpStream::connect(s.addr).await.unwrap();
    let answer = until_closed(&mut partial).await;
    assert!(
        answer.is_empty() || answer.starts_with(b"HTTP/1.1 408"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    until_closed(&mut silent).await;
    // The server goes on serving.
    assert_eq!(s.get("/health").await.status(), 200);
}

/// Beyond `max_connections`, a connection waits unanswered until one closes, then is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_cap_wait_for_a_slot() {
    let options = ServeOptions::new().max_connections(2);
    let (s, _store) = TestServer::memory(options).await;
    let first = TcpStream::connect(s.addr).await.unwrap();
    let _second = TcpStream::connect(s.addr).await.unwrap();
    let mut third = TcpStream::connect(s.addr).await.unwrap();
    third
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut byte = [0u8; 1];
    let early = tokio::time::timeout(Duration::from_millis(300), third.read(&mut byte)).await;
    assert!(
        early.is_err(),
        "a third connection was served while two held both slots"
    );
    drop(first);
    let answer = until_closed(&mut third).await;
    assert!(
        answer.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
}

/// A feed whose client takes nothing of it is cut once a write has waited for the request
/// timeout, freeing its subscriber slot (before, it held the slot until the server stopped:
/// `max_subscribers` such clients locked every other subscriber out).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_feed_whose_client_takes_nothing_is_cut() {
    let options = ServeOptions::new().request_timeout(Duration::from_secs(1));
    let (s, store) = TestServer::memory(options).await;
    let (feed, rcvbuf) = RawFeed::open(s.addr, true).await;
    assert_eq!(metric(&s, "eventfile_subscribers").await, 1.0);
    // Twice what the connection can hold, so that the feed's writes wait for the client.
    let events = 2 * bound(rcvbuf);
    tokio::task::spawn_blocking(move || {
        let pad = "x".repeat(1000);
        for first in (0..events).step_by(500) {
            let batch = (first..first + 500)
                .map(|i| NewEvent::new("E", json!({"i": i, "pad": pad})))
                .collect();
            store.append("s", ExpectedVersion::Any, batch).unwrap();
        }
    })
    .await
    .unwrap();
    eventually("the stalled feed cut", async || {
        metric(&s, "eventfile_subscribers").await == 0.0
    })
    .await;
    drop(feed);
}

/// The status line of the answer to `request` sent on a fresh connection, after `body`.
async fn status_of(addr: std::net::SocketAddr, head: &str, body: &[u8]) -> String {
    let mut sock = TcpStream::connect(addr).await.unwrap();
    sock.write_all(head.as_bytes()).await.unwrap();
    // The server may answer and stop reading before the whole body is sent.
    let _ = sock.write_all(body).await;
    let answer = until_closed(&mut sock).await;
    let answer = String::from_utf8_lossy(&answer);
    answer.lines().next().unwrap_or("").to_owned()
}

/// The bytes of append bodies held at once are bounded: while one client holds most of the
/// budget with a body it has sent all but the end of, another append that would pass it is
/// answered 503 with nothing written, declared or chunked, and one that fits is served. A
/// declared length alone takes nothing (60,000 declared, 59,900 counted). Once
/// the first append ends, its bytes are given back (before, nothing bounded the bodies held
/// but the connection cap times the body limit: 64 GiB by default).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn append_bodies_past_the_pending_budget_wait_their_turn() {
    let options = ServeOptions::new()
        .body_limit(64 << 10)
        .max_pending_bytes(100 << 10)
        .request_timeout(Duration::from_secs(15));
    let (s, store) = TestServer::memory(options).await;
    let body = |pad: usize| {
        json!({"events": [{"type": "Big", "data": {"pad": "x".repeat(pad)}}]}).to_string()
    };
    // A body of 60,000 bytes, declared and sent but for its last 100.
    let held = body(60_000 - body(0).len());
    assert_eq!(held.len(), 60_000);
    let mut slow = TcpStream::connect(s.addr).await.unwrap();
    let head = |len: usize| {
        format!(
            "POST /streams/held HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
             Content-Length: {len}\r\nConnection: close\r\n\r\n"
        )
    };
    slow.write_all(head(held.len()).as_bytes()).await.unwrap();
    slow.write_all(&held.as_bytes()[..59_900]).await.unwrap();
    eventually("the bytes sent counted", async || {
        metric(&s, "eventfile_append_pending_bytes").await == 59_900.0
    })
    .await;

    // 50,000 more would pass 100 KiB: refused, declared or chunked.
    let big = body(50_000);
    let declared = head(big.len()).replace("/held", "/refused");
    assert!(
        status_of(s.addr, &declared, big.as_bytes())
            .await
            .contains(" 503 ")
    );
    let chunked = format!(
        "POST /streams/refused HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n{:x}\r\n{big}\r\n0\r\n\r\n",
        big.len()
    );
    assert!(status_of(s.addr, &chunked, b"").await.contains(" 503 "));
    // A small one fits.
    let small = body(100);
    assert!(
        status_of(
            s.addr,
            &head(small.len()).replace("/held", "/small"),
            small.as_bytes()
        )
        .await
        .contains(" 200 ")
    );
    assert_eq!(store.stream_version("refused").unwrap(), 0);

    // The held append ends; its bytes are given back, and the big one is served.
    slow.write_all(&held.as_bytes()[59_900..]).await.unwrap();
    let answer = String::from_utf8_lossy(&until_closed(&mut slow).await).into_owned();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    eventually("the budget given back", async || {
        metric(&s, "eventfile_append_pending_bytes").await == 0.0
    })
    .await;
    assert!(
        status_of(s.addr, &declared, big.as_bytes())
            .await
            .contains(" 200 ")
    );
    assert_eq!(store.stream_version("refused").unwrap(), 1);
}
