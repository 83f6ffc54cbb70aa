//! Graceful shutdown and restart over the file store: in-flight appends finish, feeds end, the
//! store closes cleanly, and a feed resumes across the restart with Last-Event-ID.

use std::sync::Arc;
use std::time::Duration;

use eventfile::{EventStore, Store};
use eventfile_server::ServeOptions;
use serde_json::json;

use crate::common::{Sse, TestServer, append_n, event};

fn close(store: Arc<Store>) {
    let store = Arc::try_unwrap(store).expect("the server gave the store back");
    store.close().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feed_resumes_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let options = ServeOptions::new().heartbeat(Duration::from_millis(100));

    let store = Arc::new(Store::open(dir.path()).unwrap());
    let s = TestServer::start(store.clone(), options.clone()).await;
    append_n(&s, "a", "A", 5).await;
    let mut feed = Sse::new(s.get("/subscribe?stream=a").await);
    let mut last = 0;
    for seq in 1..=3 {
        let (id, _) = feed.next_event().await.unwrap();
        assert_eq!(id, seq);
        last = id;
    }
    // Shutdown ends the feed (after what was already sent), and the server returns.
    let stopping = tokio::spawn(s.stop());
    while let Some(m) = feed.next().await {
        assert!(
            m.comment || m.id.as_deref().is_some_and(|id| id == "4" || id == "5"),
            "{m:?}"
        );
    }
    stopping.await.unwrap();
    close(store);

    let store = Arc::new(Store::open(dir.path()).unwrap());
    let s = TestServer::start(store.clone(), options).await;
    append_n(&s, "a", "A", 5).await;
    let r = s
        .client
        .get(s.url("/subscribe?stream=a"))
        .header("last-event-id", last.to_string())
        .send()
        .await
        .unwrap();
    let mut feed = Sse::new(r);
    for seq in 4..=10 {
        assert_eq!(feed.next_event().await.unwrap().0, seq);
    }
    drop(feed);
    s.stop().await;
    close(store);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_in_flight_appends_finish() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path()).unwrap());
    let s = TestServer::start(store.clone(), ServeOptions::new()).await;
    let url = s.url("/streams/busy");
    let client = s.client.clone();
    // 16 appenders keep appending; shutdown comes once some have succeeded.
    let (ok_tx, mut ok_rx) = tokio::sync::mpsc::unbounded_channel();
    let mut tasks = Vec::new();
    for t in 0..16 {
        let (client, url, ok) = (client.clone(), url.clone(), ok_tx.clone());
        tasks.push(tokio::spawn(async move {
            let mut acked = 0u64;
            for i in 0..1000 {
                let body = json!({"events": [{"type": "E", "id": format!("t{t}-{i}")}]});
                match client.post(&url).json(&body).send().await {
                    Ok(r) if r.status() == 200 => {
                        acked += 1;
                        let _ = ok.send(());
                    }
                    // Refused or cut while the server stops: not acknowledged.
                    _ => break,
                }
            }
            acked
        }));
    }
    drop(ok_tx);
    for _ in 0..50 {
        ok_rx.recv().await.unwrap();
    }
    s.stop().await;
    let mut acked = 0;
    for t in tasks {
        acked += t.await.unwrap();
    }
    close(store);
    // Every acknowledged append is there after reopening; an append cut by the shutdown either
    // happened whole (its client saw no answer) or not at all.
    let store = Store::open(dir.path()).unwrap();
    let head = store.head_seq();
    assert!(
        head >= acked && head <= acked + 16,
        "head {head}, acknowledged {acked}"
    );
    let n = EventStore::read_stream(&store, "busy", eventfile::Read::forward())
        .unwrap()
        .count() as u64;
    assert_eq!(n, head);
    let _ = event("E", json!({}));
}
