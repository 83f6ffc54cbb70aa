//! Back-pressure on slow feed clients: a feed whose client reads nothing reads the log no further
//! than what fits in the connection's buffers, the server keeps serving everyone else meanwhile,
//! and once the client reads, it receives every seq once, in order.
//!
//! The slow client is a raw socket with a small receive buffer that the test does not read
//! until it says so: an HTTP client library would read ahead into buffers of its own.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use eventfile::{EventStore, ExpectedVersion, NewEvent};
use eventfile_server::ServeOptions;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::common::{TestServer, event, eventually, json, metric};

/// Events appended while the slow client reads nothing: about 50 MiB of feed, and at least ten
/// times what the connection can hold.
const EVENTS: u64 = 50_000;
/// Each event's data holds this many bytes of padding, so its encoding is at least this long.
const PAD: usize = 1000;
/// The feed's batch (`BATCH` in src/feed.rs).
const BATCH: u64 = 256;
/// hyper's default write buffer limit: it asks the body for the next chunk only below it.
const HYPER_WRITE_BUFFER: u64 = 8192 + 4096 * 100;

/// The most events a feed can have read for a client that reads nothing: what fits in the
/// server's socket send buffer (grown by the kernel up to `tcp_wmem`'s maximum), the client's
/// receive buffer and hyper's write buffer, plus the one batch that took hyper's buffer over its
/// limit. Anything more would be a backlog the server buffers for the client.
pub fn bound(client_rcvbuf: u64) -> u64 {
    let send_max = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_wmem")
        .ok()
        .and_then(|t| t.split_whitespace().nth(2)?.parse().ok())
        .unwrap_or(16 << 20);
    (send_max + client_rcvbuf + HYPER_WRITE_BUFFER) / PAD as u64 + BATCH
}

/// A feed on a raw socket: the HTTP/1.1 chunked body decoded, then split into events.
pub struct RawFeed {
    sock: TcpStream,
    ndjson: bool,
    /// Bytes read from the socket, not yet decoded.
    wire: Vec<u8>,
    /// Bytes left of the current chunk's data, or `None` before a chunk's size line.
    chunk_left: Option<usize>,
    /// Decoded body not yet split into messages.
    body: String,
    ended: bool,
}

impl RawFeed {
    /// Opens `GET /subscribe` and reads the response head, a few bytes at a time, so that no
    /// more of the body is read than the head's last read took.
    pub async fn open(addr: SocketAddr, ndjson: bool) -> (RawFeed, u64) {
        let socket = TcpSocket::new_v4().unwrap();
        // Before connecting, so that the window it advertises is small from the start (and
        // the kernel's receive autotuning stays off).
        socket.set_recv_buffer_size(64 << 10).unwrap();
        let rcvbuf = socket.recv_buffer_size().unwrap() as u64;
        let mut sock = socket.connect(addr).await.unwrap();
        let accept = if ndjson {
            "application/x-ndjson"
        } else {
            "text/event-stream"
        };
        let request = format!("GET /subscribe HTTP/1.1\r\nhost: x\r\naccept: {accept}\r\n\r\n");
        sock.write_all(request.as_bytes()).await.unwrap();
        let mut wire = Vec::new();
        let end = loop {
            if let Some(i) = wire.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let mut b = [0u8; 128];
            let n = sock.read(&mut b).await.unwrap();
            assert!(n > 0, "the server closed before the response head");
            wire.extend_from_slice(&b[..n]);
        };
        let head = String::from_utf8(wire[..end].to_vec())
            .unwrap()
            .to_lowercase();
        assert!(head.starts_with("http/1.1 200"), "{head}");
        assert!(head.contains(&format!("content-type: {accept}")), "{head}");
        assert!(head.contains("transfer-encoding: chunked"), "{head}");
        wire.drain(..end);
        let feed = RawFeed {
            sock,
            ndjson,
            wire,
            chunk_left: None,
            body: String::new(),
            ended: false,
        };
        (feed, rcvbuf)
    }

    /// Moves what `wire` holds of the chunked body into `body`.
    fn dechunk(&mut self) {
        let mut at = 0;
        loop {
            match self.chunk_left {
                None => {
                    let Some(eol) = self.wire[at..].windows(2).position(|w| w == b"\r\n") else {
                        break;
                    };
                    let line = std::str::from_utf8(&self.wire[at..at + eol]).unwrap();
                    let size = usize::from_str_radix(line.split(';').next().unwrap(), 16)
                        .unwrap_or_else(|_| panic!("not a chunk size: {line:?}"));
                    at += eol + 2;
                    if size == 0 {
                        self.ended = true;
                        break;
                    }
                    self.chunk_left = Some(size);
                }
                Some(left) => {
                    // The data, then its CRLF.
                    if self.wire.len() - at < left + 2 {
                        break;
                    }
                    self.body
                        .push_str(std::str::from_utf8(&self.wire[at..at + left]).unwrap());
                    assert_eq!(&self.wire[at + left..at + left + 2], b"\r\n");
                    at += left + 2;
                    self.chunk_left = None;
                }
            }
        }
        self.wire.drain(..at);
    }

    /// Reads on until the body holds whole messages, and returns the events among them (SSE:
    /// the `id:` and the `data:`; NDJSON: the line's `seq` twice). Heartbeats and the retry
    /// hint are skipped.
    pub async fn next_events(&mut self) -> Vec<(u64, Value)> {
        let sep = if self.ndjson { "\n" } else { "\n\n" };
        loop {
            let mut out = Vec::new();
            let mut at = 0;
            while let Some(end) = self.body[at..].find(sep) {
                if let Some(e) = self.parse(&self.body[at..at + end]) {
                    out.push(e);
                }
                at += end + sep.len();
            }
            self.body.drain(..at);
            if !out.is_empty() {
                return out;
            }
            assert!(!self.ended, "the feed ended");
            let mut b = vec![0u8; 64 << 10];
            let n = self.sock.read(&mut b).await.unwrap();
            assert!(n > 0, "the server closed the feed");
            self.wire.extend_from_slice(&b[..n]);
            self.dechunk();
        }
    }

    fn parse(&self, message: &str) -> Option<(u64, Value)> {
        if self.ndjson {
            let v: Value = serde_json::from_str(message).unwrap();
            if v.get("heartbeat").is_some() {
                return None;
            }
            return Some((v["seq"].as_u64().unwrap(), v));
        }
        let mut id = None;
        let mut data = None;
        for line in message.lines() {
            if let Some(v) = line.strip_prefix("id: ") {
                id = Some(v.parse().unwrap());
            } else if let Some(v) = line.strip_prefix("data: ") {
                data = Some(serde_json::from_str(v).unwrap());
            } else {
                assert!(
                    line.starts_with("retry: ") || line.starts_with(':'),
                    "{message}"
                );
            }
        }
        Some((id?, data.expect("an event message has data")))
    }
}

/// Waits until the feeds have stopped reading the log: `blocked` feeds wait for their
/// connections and the count of events they read holds still over consecutive looks (each a
/// `GET /metrics` on another connection). On every look, the feed opened last has read at most
/// `bound` events (those read before it opened were `before`). Returns the count.
pub async fn stalled(s: &TestServer, blocked: f64, before: u64, bound: u64) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(60);
    let (mut last, mut same) = (u64::MAX, 0);
    loop {
        let sent = metric(s, "eventfile_feed_events_total").await as u64;
        assert!(
            sent - before <= bound,
            "a feed read {} events for a client that reads nothing; its connection holds at \
             most {bound}",
            sent - before
        );
        if metric(s, "eventfile_feeds_blocked").await == blocked && sent == last {
            same += 1;
            if same == 3 {
                return sent;
            }
        } else {
            same = 0;
        }
        last = sent;
        assert!(
            Instant::now() < deadline,
            "the feeds did not stall within 60 s ({sent} events read)"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn slow_client(ndjson: bool) {
    // The feeds stall on purpose here, for longer than a loaded machine may take to fill them:
    // a stall limit (the request timeout) far beyond that.
    let options = ServeOptions::new().request_timeout(Duration::from_secs(600));
    let (s, store) = TestServer::memory(options).await;
    let (mut feed, rcvbuf) = RawFeed::open(s.addr, ndjson).await;
    let bound = bound(rcvbuf);
    let events = EVENTS.max(bound * 10);

    // About 50 MiB of events, appended while the client reads nothing.
    let appender = {
        let store = store.clone();
        tokio::task::spawn_blocking(move || {
            let pad = "x".repeat(PAD);
            for first in (0..events).step_by(500) {
                let events = (first..first + 500)
                    .map(|i| NewEvent::new("E", json!({"i": i, "pad": pad})))
                    .collect();
                store.append("s", ExpectedVersion::Any, events).unwrap();
            }
        })
    };
    appender.await.unwrap();
    eventually("the server sees every append", async || {
        metric(&s, "eventfile_head_seq").await == events as f64
    })
    .await;
    let sent = stalled(&s, 1.0, 0, bound).await;
    assert!(sent > 0);

    // Everyone else is served meanwhile: reads, and appends, which the feed does not hold up.
    let (status, head) = json(s.get("/head").await).await;
    assert_eq!((status, head["head"].as_u64()), (200, Some(events)));
    let (status, r) = json(
        s.post("/streams/t", json!({"events": [event("Live", json!({}))]}))
            .await,
    )
    .await;
    assert_eq!((status, r["last_seq"].as_u64()), (200, Some(events + 1)));
    // A second slow client stalls too, within its own bound, and frees its slot when it hangs
    // up with its connection full (the first feed reads nothing meanwhile).
    let (quitter, _) = RawFeed::open(s.addr, ndjson).await;
    assert_eq!(metric(&s, "eventfile_subscribers").await, 2.0);
    let both = stalled(&s, 2.0, sent, bound).await;
    drop(quitter);
    eventually("the hung-up feed's slot freed", async || {
        metric(&s, "eventfile_subscribers").await == 1.0
            && metric(&s, "eventfile_feeds_blocked").await == 1.0
    })
    .await;
    let total = events + 1;

    // The client reads at last: every seq once, in order, nothing skipped.
    let mut next = 1;
    while next <= total {
        for (seq, e) in feed.next_events().await {
            assert_eq!((seq, e["seq"].as_u64()), (next, Some(next)), "{e}");
            if seq <= events {
                assert_eq!(e["data"]["i"], next - 1);
                assert_eq!(e["data"]["pad"].as_str().map(str::len), Some(PAD));
            } else {
                assert_eq!(e["type"], "Live");
            }
            next += 1;
        }
    }
    // The first feed read each event once; caught up, it waits on the head, not its client.
    eventually("the caught-up feed unblocked", async || {
        metric(&s, "eventfile_feeds_blocked").await == 0.0
    })
    .await;
    assert_eq!(
        metric(&s, "eventfile_feed_events_total").await as u64 - both + sent,
        total
    );
    drop(feed);
    eventually("the last slot freed", async || {
        metric(&s, "eventfile_subscribers").await == 0.0
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_sse_client_is_fed_at_its_own_pace() {
    slow_client(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_ndjson_client_is_fed_at_its_own_pace() {
    slow_client(true).await;
}
