//! A browser's own `EventSource` against the server: headless Chromium (Debian's `chromium`
//! package) loads a page that subscribes, reports when the feed is open and which event ids it
//! received, by appending to the store through the same server.
//!
//! Ignored by default: CI's machine has no Chromium and installing it (about 300 MB) is no step
//! of `.ci/run` yet. Run it with
//! `apt-get install chromium && cargo test -p eventfile-server --test http browser -- --ignored`.

use std::process::{Command, Stdio};

use eventfile_server::ServeOptions;
use serde_json::json;

use crate::common::{Sse, TestServer, event};

fn chromium() -> Option<&'static str> {
    ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|b| {
            Command::new(b)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
}

/// Kills the browser however the test ends.
struct Browser(std::process::Child);

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Debian's chromium package: apt-get install chromium, then run with --ignored"]
async fn a_browser_event_source_receives_history_and_live_events() {
    let bin = chromium().expect("no chromium on PATH: apt-get install chromium");
    let (s, _store) = TestServer::memory(ServeOptions::new()).await;
    for i in 1..=2 {
        let r = s
            .post(
                "/streams/page",
                json!({"events": [event("History", json!(i))]}),
            )
            .await;
        assert_eq!(r.status(), 200);
    }
    // The reports the page appends, read back through a feed of their own.
    let mut reports = Sse::new(s.get("/subscribe?stream=browser-report").await);
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("page.html");
    let base = format!("http://{}", s.addr);
    std::fs::write(
        &page,
        format!(
            r#"<!doctype html><script>
const base = "{base}";
const report = (type, data) => fetch(base + "/streams/browser-report", {{
  method: "POST", headers: {{"content-type": "application/json"}},
  body: JSON.stringify({{events: [{{type, data}}]}})
}});
const seen = [];
const es = new EventSource(base + "/subscribe?stream=page&from=0");
es.onopen = () => report("Opened", {{}});
es.onmessage = (m) => {{
  seen.push([Number(m.lastEventId), JSON.parse(m.data).type]);
  if (seen.length === 5) report("Seen", seen);
}};
</script>"#
        ),
    )
    .unwrap();
    let profile = tempfile::tempdir().unwrap();
    let _browser = Browser(
        Command::new(bin)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                // The page is a file: its origin differs from the server's, and the server
                // sends no CORS headers.
                "--disable-web-security",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg(format!("file://{}", page.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromium"),
    );
    let (_, opened) = reports.next_event().await.expect("the page's feed opened");
    assert_eq!(opened["type"], "Opened");
    // Live: appended once the browser's feed is open.
    for i in 1..=3 {
        let r = s
            .post(
                "/streams/page",
                json!({"events": [event("Live", json!(i))]}),
            )
            .await;
        assert_eq!(r.status(), 200);
    }
    let (_, seen) = reports.next_event().await.expect("the page's report");
    assert_eq!(seen["type"], "Seen");
    assert_eq!(
        seen["data"],
        json!([
            [1, "History"],
            [2, "History"],
            [4, "Live"],
            [5, "Live"],
            [6, "Live"]
        ])
    );
}
