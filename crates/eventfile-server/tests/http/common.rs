//! A server running on loopback for each test, and the client helpers the tests share.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use eventfile::{EventStore, MemoryStore};
use eventfile_server::{ServeOptions, Server};
use futures_util::StreamExt;
use serde_json::Value;
use tokio::sync::oneshot;

/// A server listening on a free loopback port.
pub struct TestServer {
    pub addr: SocketAddr,
    pub client: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

pub fn loopback(options: ServeOptions) -> ServeOptions {
    options.listen("127.0.0.1:0".parse().unwrap())
}

impl TestServer {
    pub async fn start(store: Arc<dyn EventStore>, options: ServeOptions) -> TestServer {
        let server = Server::bind(store, loopback(options)).await.unwrap();
        let addr = server.local_addr();
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(server.run_until(async {
            let _ = stopped.await;
        }));
        TestServer {
            addr,
            client: reqwest::Client::new(),
            stop: Some(stop),
            task,
        }
    }

    /// A server over a fresh in-memory store.
    pub async fn memory(options: ServeOptions) -> (TestServer, Arc<MemoryStore>) {
        let store = Arc::new(MemoryStore::new());
        (TestServer::start(store.clone(), options).await, store)
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.unwrap()
    }

    pub async fn post(&self, path: &str, body: Value) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    pub async fn post_raw(&self, path: &str, body: impl Into<reqwest::Body>) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap()
    }

    /// Shuts the server down gracefully and waits until it has.
    pub async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.task.await.unwrap().unwrap();
    }
}

/// Polls `check` until it holds (a state the server reaches on its own, e.g. after noticing a
/// closed socket), failing after 10 s.
pub async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check().await {
        assert!(
            Instant::now() < deadline,
            "{what} did not happen within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The value of an unlabelled counter or gauge in `GET /metrics`.
pub async fn metric(s: &TestServer, name: &str) -> f64 {
    let r = s.get("/metrics").await;
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    let prefix = format!("{name} ");
    let line = text
        .lines()
        .find(|l| l.starts_with(&prefix))
        .unwrap_or_else(|| panic!("{name} missing from\n{text}"));
    line[prefix.len()..].parse().unwrap()
}

/// The status and JSON body of a response.
pub async fn json(r: reqwest::Response) -> (u16, Value) {
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    let v = serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
    (status, v)
}

/// Checks an error answer: the status, `{"error":{"kind","message"}}` and nothing else.
pub async fn error(r: reqwest::Response, status: u16, kind: &str) -> String {
    let (got, v) = json(r).await;
    assert_eq!(got, status, "{v}");
    let e = v.as_object().unwrap();
    assert_eq!(e.len(), 1, "{v}");
    let inner = e["error"].as_object().unwrap();
    assert_eq!(inner.len(), 2, "{v}");
    assert_eq!(inner["kind"], kind, "{v}");
    inner["message"].as_str().unwrap().to_owned()
}

pub fn event(t: &str, data: Value) -> Value {
    serde_json::json!({ "type": t, "data": data })
}

/// Appends `n` events of type `t` to `stream`, one request each.
pub async fn append_n(s: &TestServer, stream: &str, t: &str, n: usize) {
    for i in 0..n {
        let r = s
            .post(
                &format!("/streams/{stream}"),
                serde_json::json!({ "events": [event(t, serde_json::json!({ "i": i }))] }),
            )
            .await;
        assert_eq!(r.status(), 200);
    }
}

/// One message of an SSE stream: its fields as sent.
#[derive(Debug, Default, Clone)]
pub struct Message {
    pub id: Option<String>,
    pub event: Option<String>,
    pub data: String,
    pub comment: bool,
}

/// Reads an SSE body message by message (comments included, as heartbeats).
pub struct Sse {
    body: futures_util::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    buf: String,
}

impl Sse {
    pub fn new(r: reqwest::Response) -> Sse {
        assert_eq!(r.status(), 200);
        assert_eq!(
            r.headers()["content-type"].to_str().unwrap(),
            "text/event-stream"
        );
        Sse {
            body: r.bytes_stream().boxed(),
            buf: String::new(),
        }
    }

    /// The next message, or `None` when the server ended the stream.
    pub async fn next(&mut self) -> Option<Message> {
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                let mut m = Message::default();
                let mut any = false;
                for line in block.lines() {
                    if let Some(c) = line.strip_prefix(':') {
                        let _ = c;
                        m.comment = true;
                        any = true;
                    } else if let Some(v) = line.strip_prefix("id: ") {
                        m.id = Some(v.to_owned());
                        any = true;
                    } else if let Some(v) = line.strip_prefix("event: ") {
                        m.event = Some(v.to_owned());
                        any = true;
                    } else if let Some(v) = line.strip_prefix("data: ") {
                        m.data.push_str(v);
                        any = true;
                    } else if line.starts_with("retry: ") {
                        // The reconnection hint: not a message.
                    }
                }
                if any {
                    return Some(m);
                }
                continue;
            }
            match self.body.next().await {
                Some(Ok(chunk)) => self.buf.push_str(std::str::from_utf8(&chunk).unwrap()),
                Some(Err(e)) => panic!("the feed failed: {e}"),
                None => return None,
            }
        }
    }

    /// The next event message (heartbeats skipped): its seq and its JSON.
    pub async fn next_event(&mut self) -> Option<(u64, Value)> {
        loop {
            let m = self.next().await?;
            if m.comment {
                continue;
            }
            let id = m.id.expect("an event message has an id").parse().unwrap();
            return Some((id, serde_json::from_str(&m.data).unwrap()));
        }
    }
}
