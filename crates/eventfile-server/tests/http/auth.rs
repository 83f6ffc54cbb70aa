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
