//! The bearer token: every route but `GET /health` needs it.

use eventfile_server::ServeOptions;
use serde_json::json;

use crate::common::{TestServer, error, event};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_is_required_everywhere_but_health() {
    let (s, _store) = TestServer::memory(ServeOptions::new().token("s3cret")).await;
    for path in [
        "/head",
        "/events",
        "/subscribe",
        "/metrics",
        "/openapi.json",
        "/nowhere",
    ] {
        let r = s.get(path).await;
        assert_eq!(r.headers()["www-authenticate"], "Bearer");
        error(r, 401, "unauthorized").await;
        let r = s
            .client
            .get(s.url(path))
            .bearer_auth("s3cre")
            .send()
            .await
            .unwrap();
        error(r, 401, "unauthorized").await;
        let r = s
            .client
            .get(s.url(path))
            .header("authorization", "Basic s3cret")
            .send()
            .await
            .unwrap();
        error(r, 401, "unauthorized").await;
    }
    let r = s
        .post("/streams/a", json!({"events": [event("A", json!({}))]}))
        .await;
    error(r, 401, "unauthorized").await;
    assert_eq!(s.get("/health").await.status(), 200);
    let r = s
        .client
        .post(s.url("/streams/a"))
        .bearer_auth("s3cret")
        .json(&json!({"events": [event("A", json!({}))]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = s
        .client
        .get(s.url("/head"))
        .bearer_auth("s3cret")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

/// An empty token is refused at bind: it used to be taken as no token, so a secret that was
/// never filled in served the store to anyone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_token_is_refused_not_taken_as_none() {
    let store: std::sync::Arc<dyn eventfile::EventStore> =
        std::sync::Arc::new(eventfile::MemoryStore::new());
    let options = ServeOptions::new()
        .listen("127.0.0.1:0".parse().unwrap())
        .token("");
    let err = eventfile_server::Server::bind(store, options)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    assert!(err.to_string().contains("token is empty"), "{err}");
}
