//! The server's load test: a client process against a server process over loopback.
//!
//! ```text
//! cargo run --release -p eventfile-server --example load
//! cargo run --release -p eventfile-server --example load -- --appends 20000 --subscribers 1000 --burst 10000
//! cargo run --release -p eventfile-server --example load -- --append-workers 64   # the server's append workers
//! ```
//!
//! 1. The in-process figure: 16 threads appending one event at a time to a file store of their
//!    own (the engine's group commit, no HTTP).
//! 2. The same work from 64 HTTP connections to `eventfile-server` running in a child process
//!    (this program re-run with `--serve DIR`) over a fresh file store: appends/s, p50 and p99.
//! 3. 1,000 SSE subscribers connected to that server, then a burst of 10,000 events appended
//!    in batches of 100: every subscriber must receive every event, in seq order, once.
//!
//! It prints one JSON object per measurement and exits non-zero if a subscriber missed an
//! event. Every loop is bounded in count and time; traffic goes to 127.0.0.1 only.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use eventfile::{EventStore, ExpectedVersion, NewEvent, Store};
use futures_util::StreamExt;
use serde_json::json;

/// Bounds every wait of the run.
const DEADLINE: Duration = Duration::from_secs(600);

struct Args {
    appends: usize,
    subscribers: usize,
    burst: usize,
}

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map_or(default, |v| v.parse().expect("a number"))
}

fn main() {
    let argv: Vec<String> = std::env::args().collect();
    if let Some(i) = argv.iter().position(|a| a == "--serve") {
        serve(&argv[i + 1]);
        return;
    }
    let args = Args {
        appends: arg("--appends", 16_000),
        subscribers: arg("--subscribers", 1000),
        burst: arg("--burst", 10_000),
    };
    let scratch = tempfile::tempdir().expect("a scratch directory");

    let before = in_process(&scratch.path().join("in-process"), args.appends);
    println!(
        "{}",
        json!({"measure": format!("in-process appends, {} threads", arg("--threads", 16)), "appends": args.appends, "per_sec": before.round()})
    );

    // The server: a process of its own.
    let mut child = Command::new(std::env::current_exe().expect("this program"))
        .arg("--serve")
        .arg(scratch.path().join("served"))
        .arg("--append-workers")
        .arg(arg("--append-workers", 2).to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the server process");
    // The server exits when this pipe closes: when this process ends, however it ends.
    let lifeline = child.stdin.take();
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("its stdout"))
        .read_line(&mut line)
        .expect("its address");
    let base = format!("http://{}", line.trim());

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let ok = runtime.block_on(async {
        tokio::time::timeout(DEADLINE, async {
            let (per_sec, p50, p99) = http_appends(&base, args.appends).await;
            // Measured again after, on a machine shared with other work: the ratio is to the
            // mean of the two, so that drift in the background load weighs on both sides.
            let dir = scratch.path().join("in-process-after");
            let after = tokio::task::spawn_blocking(move || in_process(&dir, args.appends))
                .await
                .expect("the second in-process run");
            println!(
                "{}",
                json!({"measure": "in-process appends, again after the HTTP run", "per_sec": after.round()})
            );
            let in_process = (before + after) / 2.0;
            println!(
                "{}",
                json!({"measure": "HTTP appends, 64 connections", "append_workers": arg("--append-workers", 2), "appends": args.appends,
                       "per_sec": per_sec.round(), "p50_ms": p50, "p99_ms": p99,
                       "ratio_to_in_process": (per_sec / in_process * 100.0).round() / 100.0})
            );
            subscribers(&base, args.subscribers, args.burst).await
        })
        .await
        .expect("the load test finished within its deadline")
    });
    drop(lifeline);
    let _ = child.kill();
    let _ = child.wait();
    if !ok {
        std::process::exit(1);
    }
}

/// The server process: a file store in `dir`, served on a free loopback port, the address on
/// stdout; it ends when its parent closes its stdin (or kills it).
fn serve(dir: &str) {
    std::thread::spawn(|| {
        let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
        std::process::exit(0);
    });
    let store = Store::open(dir).expect("open the store");
    let options = eventfile_server::ServeOptions::new()
        .listen("127.0.0.1:0".parse().expect("an address"))
        .max_subscribers(10_000)
        .append_workers(arg("--append-workers", 2));
    eventfile_server::serve_blocking(Arc::new(store), options, |addr| {
        println!("{addr}");
    })
    .expect("serve");
}

fn in_process(dir: &std::path::Path, appends: usize) -> f64 {
    let store = Arc::new(Store::open(dir).expect("open the store"));
    let threads = arg("--threads", 16);
    let per_thread = appends / threads;
    let started = Instant::now();
    std::thread::scope(|s| {
        for t in 0..threads {
            let store = Arc::clone(&store);
            s.spawn(move || {
                for i in 0..per_thread {
                    let e = NewEvent::new("Load", json!({"thread": t, "i": i}));
                    EventStore::append(
                        &*store,
                        &format!("load-{t}"),
                        ExpectedVersion::Any,
                        vec![e],
                    )
                    .expect("append");
                }
            });
        }
    });
    (per_thread * threads) as f64 / started.elapsed().as_secs_f64()
}

/// 64 connections, each appending one event per request to a stream of its own. The client is
/// a minimal HTTP/1.1 keep-alive loop (as wrk's is), so that the client process spends little
/// of the two cores it shares with the server.
async fn http_appends(base: &str, appends: usize) -> (f64, f64, f64) {
    let addr = base
        .strip_prefix("http://")
        .expect("an http URL")
        .to_owned();
    let per_conn = appends / 64;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..64 {
        let addr = addr.clone();
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::connect(&addr).await;
            let mut lat = Vec::with_capacity(per_conn);
            for i in 0..per_conn {
                let body =
                    json!({"events": [{"type": "Load", "data": {"conn": c, "i": i}}]}).to_string();
                let t = Instant::now();
                let (status, _) = conn.post(&format!("/streams/http-{c}"), &body).await;
                assert_eq!(status, 200, "append answered {status}");
                lat.push(t.elapsed().as_secs_f64() * 1e3);
            }
            lat
        }));
    }
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await.expect("a connection's task"));
    }
    let per_sec = (per_conn * 64) as f64 / started.elapsed().as_secs_f64();
    lat.sort_by(f64::total_cmp);
    let pct = |p: f64| {
        (lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)] * 100.0).round() / 100.0
    };
    (per_sec, pct(0.50), pct(0.99))
}

/// One keep-alive HTTP/1.1 connection: a request out, a `Content-Length` answer in.
struct Conn {
    stream: tokio::net::TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    async fn connect(addr: &str) -> Conn {
        let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        Conn {
            stream,
            buf: Vec::with_capacity(4096),
        }
    }

    async fn post(&mut self, path: &str, body: &str) -> (u16, Vec<u8>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let req = format!(
            "POST {path} HTTP/1.1\r\nhost: load\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        self.stream.write_all(req.as_bytes()).await.expect("send");
        loop {
            if let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = std::str::from_utf8(&self.buf[..end]).expect("an ASCII head");
                let status = head[9..12].parse().expect("a status");
                let len: usize = head
                    .lines()
                    .find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case("content-length")
                            .then(|| v.trim().parse().ok())?
                    })
                    .expect("a content-length");
                if self.buf.len() >= end + 4 + len {
                    let body = self.buf[end + 4..end + 4 + len].to_vec();
                    self.buf.drain(..end + 4 + len);
                    return (status, body);
                }
            }
            let mut chunk = [0u8; 4096];
            let n = self.stream.read(&mut chunk).await.expect("receive");
            assert!(n > 0, "the server closed the connection");
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

/// `n` SSE subscribers from the current head, then a burst of `burst` events: each subscriber
/// must see every one, in order.
async fn subscribers(base: &str, n: usize, burst: usize) -> bool {
    let client = reqwest::Client::new();
    let head: serde_json::Value = client
        .get(format!("{base}/head"))
        .send()
        .await
        .expect("head")
        .json()
        .await
        .expect("head JSON");
    let from = head["head"].as_u64().expect("a head");
    let mut feeds = Vec::new();
    for _ in 0..n {
        // A client each, so each feed has a connection of its own.
        let r = reqwest::Client::new()
            .get(format!("{base}/subscribe?from={from}"))
            .send()
            .await
            .expect("subscribe");
        assert_eq!(r.status(), 200);
        feeds.push(r);
    }
    let started = Instant::now();
    let mut tasks = Vec::new();
    for r in feeds {
        let last = from + burst as u64;
        tasks.push(tokio::spawn(async move {
            let mut body = r.bytes_stream();
            let mut pending = String::new();
            let mut expected = from + 1;
            while expected <= last {
                let Some(chunk) = body.next().await else {
                    return false;
                };
                pending.push_str(std::str::from_utf8(&chunk.expect("feed bytes")).expect("UTF-8"));
                let mut consumed = 0;
                while let Some(end) = pending[consumed..].find('\n') {
                    let line = &pending[consumed..consumed + end];
                    if let Some(id) = line.strip_prefix("id: ") {
                        if id.parse::<u64>() != Ok(expected) {
                            return false;
                        }
                        expected += 1;
                    }
                    consumed += end + 1;
                }
                pending.drain(..consumed);
            }
            true
        }));
    }
    // The burst: batches of 100 events, from 8 connections.
    let batches = burst / 100;
    let appended = Instant::now();
    let mut writers = Vec::new();
    for w in 0..8 {
        let url = format!("{base}/streams/burst-{w}");
        writers.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            for _ in (w..batches).step_by(8) {
                let events: Vec<_> = (0..100)
                    .map(|i| json!({"type": "Burst", "data": {"i": i}}))
                    .collect();
                let r = client
                    .post(&url)
                    .json(&json!({"events": events}))
                    .send()
                    .await
                    .expect("append");
                assert_eq!(r.status(), 200);
            }
        }));
    }
    for w in writers {
        w.await.expect("a writer");
    }
    let append_secs = appended.elapsed().as_secs_f64();
    let mut complete = 0;
    for t in tasks {
        if t.await.expect("a subscriber") {
            complete += 1;
        }
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{}",
        json!({"measure": "SSE fan-out", "subscribers": n, "burst": batches * 100,
               "complete": complete, "burst_append_secs": (append_secs * 100.0).round() / 100.0,
               "all_delivered_secs": (secs * 100.0).round() / 100.0,
               "deliveries_per_sec": ((n * batches * 100) as f64 / secs).round()})
    );
    complete == n
}
