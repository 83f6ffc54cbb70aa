//! `eventfile serve`: the real binary over a file store, driven through plain HTTP/1.1 on
//! loopback: the address it prints, auth from --token and EVENTFILE_TOKEN, exit 0 on SIGTERM
//! and SIGINT with the store closed cleanly, and a feed resumed with Last-Event-ID in a second
//! server process. Every wait is on output, never a sleep; a deadline fails a hung test.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::Duration;

use rustix::process::Signal;
use serde_json::{Value, json};

/// A running `eventfile serve`, killed if the test fails before it exits.
struct Serve {
    child: Child,
    addr: SocketAddr,
}

impl Serve {
    fn start(dir: &Path, args: &[&str], token_env: Option<&str>) -> Serve {
        let mut c = common::command();
        c.env_remove("EVENTFILE_TOKEN");
        if let Some(t) = token_env {
            c.env("EVENTFILE_TOKEN", t);
        }
        let mut child = c
            .arg("--dir")
            .arg(dir)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("run eventfile serve");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert_eq!(v["backend"], "file");
        let addr = v["listening"]
            .as_str()
            .unwrap()
            .strip_prefix("http://")
            .unwrap()
            .parse()
            .unwrap();
        Serve { child, addr }
    }

    /// Sends `signal` and waits for the exit status.
    fn stop(mut self, signal: Signal) -> Option<i32> {
        let pid = rustix::process::Pid::from_child(&self.child);
        rustix::process::kill_process(pid, signal).unwrap();
        let status = self.child.wait().unwrap();
        std::mem::forget(self);
        status.code()
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One request with `Connection: close`: the status and the body.
fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[&str],
    body: Option<&Value>,
) -> (u16, String) {
    try_request(addr, method, path, headers, body).expect("a whole response")
}

/// [`request`], or `None` if the connection failed or closed before a whole response (a
/// server killed meanwhile).
fn try_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[&str],
    body: Option<&Value>,
) -> Option<(u16, String)> {
    let mut c = TcpStream::connect(addr).ok()?;
    c.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let body = body.map(Value::to_string).unwrap_or_default();
    let mut head = format!("{method} {path} HTTP/1.1\r\nhost: test\r\nconnection: close\r\n");
    for h in headers {
        head.push_str(h);
        head.push_str("\r\n");
    }
    if !body.is_empty() {
        head.push_str(&format!(
            "content-type: application/json\r\ncontent-length: {}\r\n",
            body.len()
        ));
    }
    head.push_str("\r\n");
    c.write_all(head.as_bytes()).ok()?;
    c.write_all(body.as_bytes()).ok()?;
    let mut out = String::new();
    c.read_to_string(&mut out).ok()?;
    let (head, body) = out.split_once("\r\n\r\n")?;
    let status = head.get(9..12)?.parse().ok()?;
    Some((status, body.to_owned()))
}

fn append(addr: SocketAddr, auth: &[&str], n: u64) {
    let body = json!({"events": [{"type": "E", "data": {"n": n}}]});
    let (status, text) = request(addr, "POST", "/streams/s", auth, Some(&body));
    assert_eq!(status, 200, "{text}");
}

#[test]
fn serve_appends_then_exits_cleanly_and_a_feed_resumes_in_the_next_process() {
    let dir = tempfile::tempdir().unwrap();
    let s = Serve::start(dir.path(), &[], None);
    for n in 1..=3 {
        append(s.addr, &[], n);
    }
    let (status, text) = request(s.addr, "GET", "/events?limit=10", &[], None);
    assert_eq!(status, 200);
    assert_eq!(
        serde_json::from_str::<Value>(&text)
            .unwrap()
            .as_array()
            .unwrap()
            .len(),
        3
    );
    assert_eq!(s.stop(Signal::TERM), Some(0));
    // The store closed cleanly: the CLI reads it as any other.
    let out = common::eventfile(dir.path(), &["cat"]);
    assert_eq!(String::from_utf8(out.stdout).unwrap().lines().count(), 3);

    let s = Serve::start(dir.path(), &[], None);
    append(s.addr, &[], 4);
    append(s.addr, &[], 5);
    // A reconnect after seq 2: 3, 4, 5, nothing before.
    let mut c = TcpStream::connect(s.addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    c.write_all(b"GET /subscribe HTTP/1.1\r\nhost: test\r\nlast-event-id: 2\r\n\r\n")
        .unwrap();
    let mut seen = String::new();
    let mut buf = [0u8; 4096];
    while !seen.contains("id: 5\n") {
        let n = c.read(&mut buf).unwrap();
        assert!(n > 0, "the feed ended early: {seen}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    let ids: Vec<&str> = seen
        .lines()
        .filter_map(|l| l.strip_prefix("id: "))
        .collect();
    assert_eq!(ids, ["3", "4", "5"]);
    assert!(seen.starts_with("HTTP/1.1 200"));
    assert!(seen.contains("content-type: text/event-stream"));
    // SIGINT with a feed open: the feed ends, the server exits 0.
    assert_eq!(s.stop(Signal::INT), Some(0));
    let mut rest = Vec::new();
    let _ = c.read_to_end(&mut rest);
}

#[test]
fn serve_needs_the_token_from_the_flag_or_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    for (args, env) in [
        (&["--token", "flag-secret"][..], None),
        (&[][..], Some("flag-secret")),
    ] {
        let s = Serve::start(dir.path(), args, env);
        let (status, body) = request(s.addr, "GET", "/head", &[], None);
        assert_eq!(status, 401);
        assert_eq!(
            serde_json::from_str::<Value>(&body).unwrap()["error"]["kind"],
            "unauthorized"
        );
        assert_eq!(request(s.addr, "GET", "/health", &[], None).0, 200);
        let auth = ["authorization: Bearer flag-secret"];
        assert_eq!(request(s.addr, "GET", "/head", &auth, None).0, 200);
        append(s.addr, &auth, 1);
        assert_eq!(s.stop(Signal::TERM), Some(0));
    }
}

/// SIGTERM sent the moment `serve` says it listens, with no request first: the handler is
/// installed before that line is printed, so the signal ends it cleanly (exit 0) rather than
/// by the default action (no exit code). Several rounds, as the window it closes was narrow.
#[test]
fn serve_handles_a_signal_sent_as_soon_as_it_listens() {
    let dir = tempfile::tempdir().unwrap();
    for _ in 0..5 {
        let s = Serve::start(dir.path(), &[], None);
        assert_eq!(s.stop(Signal::TERM), Some(0));
    }
}

#[test]
fn serve_refuses_a_bad_listen_address_as_usage() {
    let dir = tempfile::tempdir().unwrap();
    let out = common::eventfile(dir.path(), &["serve", "--listen", "nowhere"]);
    assert_eq!(out.status.code(), Some(2));
}

/// SIGKILL of `eventfile serve` while eight clients append over HTTP (one to three events per
/// request, so the server's workers hand the store groups of requests): every append the
/// server answered 200 is in the store after the kill, at the seqs and versions it was told,
/// with the data sent, and the log is gapless. Three kills, each at a different count of
/// answered appends, each followed by a restart on the same store. A process kill leaves the
/// page cache to the kernel, so this proves the answers and their positions, not the sync;
/// that the shared sync covers every answered request is the power-loss workload's part
/// (`tests/scenarios/power_loss.rs`, groups of `append_requests`).
#[test]
fn serve_killed_with_sigkill_keeps_every_acknowledged_append() {
    use std::sync::mpsc;
    let dir = tempfile::tempdir().unwrap();
    // (id, seq, stream, version, n) of every acknowledged event.
    let mut acked: Vec<(String, u64, String, u64, u64)> = Vec::new();
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64;
    for round in 0..3u64 {
        let s = Serve::start(dir.path(), &[], None);
        let (tx, rx) = mpsc::channel();
        let clients: Vec<_> = (0..8u64)
            .map(|t| {
                let tx = tx.clone();
                let addr = s.addr;
                std::thread::spawn(move || {
                    for k in 0.. {
                        let len = 1 + (k + t) % 3;
                        let stream = format!("r{round}-t{t}");
                        let events: Vec<Value> = (0..len)
                            .map(|i| {
                                let n = k * 10 + i;
                                json!({"type": "E", "id": format!("{stream}-{n}"), "data": {"n": n}})
                            })
                            .collect();
                        let body = json!({"events": events});
                        let path = format!("/streams/{stream}");
                        let Some((status, text)) = try_request(addr, "POST", &path, &[], Some(&body))
                        else {
                            return;
                        };
                        assert_eq!(status, 200, "{text}");
                        let r: Value = serde_json::from_str(&text).unwrap();
                        let (first_seq, last_seq, version) = (
                            r["first_seq"].as_u64().unwrap(),
                            r["last_seq"].as_u64().unwrap(),
                            r["version"].as_u64().unwrap(),
                        );
                        assert_eq!(last_seq + 1 - first_seq, len, "{text}");
                        for i in 0..len {
                            let n = k * 10 + i;
                            let ack = (
                                format!("{stream}-{n}"),
                                first_seq + i,
                                stream.clone(),
                                version + 1 + i - len,
                                n,
                            );
                            if tx.send(ack).is_err() {
                                return;
                            }
                        }
                    }
                })
            })
            .collect();
        drop(tx);
        // Kill after a count of acknowledged events that differs between rounds and runs.
        let kill_after = 150 + ((seed >> (round * 8)) % 400) as usize;
        let mut got = 0;
        for ack in rx.iter() {
            acked.push(ack);
            got += 1;
            if got == kill_after {
                break;
            }
        }
        assert_eq!(got, kill_after, "the clients stopped early");
        let pid = rustix::process::Pid::from_child(&s.child);
        rustix::process::kill_process(pid, Signal::KILL).unwrap();
        // The clients end at their first failed request; acks already answered still count.
        acked.extend(rx.iter());
        for c in clients {
            c.join().unwrap();
        }
        drop(s);

        let out = common::eventfile(dir.path(), &["cat"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let log: Vec<Value> = String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        for (i, e) in log.iter().enumerate() {
            assert_eq!(e["seq"].as_u64(), Some(i as u64 + 1), "a gap at {e}");
        }
        for (id, seq, stream, version, n) in &acked {
            let e = &log[(*seq - 1) as usize];
            assert_eq!(
                e["id"],
                id.as_str(),
                "acknowledged {id} is not at seq {seq}: {e}"
            );
            assert_eq!(e["stream"], stream.as_str(), "{e}");
            assert_eq!(e["version"].as_u64(), Some(*version), "{e}");
            assert_eq!(e["data"], json!({"n": n}), "{e}");
        }
    }
    assert!(acked.len() >= 450);
}

/// An empty EVENTFILE_TOKEN (a secret that was not filled in) is a usage error, never a
/// server without authentication, though the store variables pass an empty value over.
#[test]
fn an_empty_token_variable_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let out = common::command()
        .env("EVENTFILE_TOKEN", "")
        .arg("--dir")
        .arg(tmp.path())
        .args(["serve", "--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--token"),
        "{out:?}"
    );
}
