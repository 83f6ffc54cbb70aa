//! `POST /streams/{stream}` and `POST /append`: results, conflicts, retries, tombstones.

use eventfile::{EventStore, ExpectedVersion};
use serde_json::json;

use crate::common::{TestServer, error, event, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn append_answers_positions_and_conflicts() {
    let (s, _store) = TestServer::memory(Default::default()).await;
    let body = json!({
        "events": [
            {"type": "OrderPlaced", "data": {"total": 1.50}, "id": "a1", "meta": {"actor": "ann"}, "tags": ["region=eu"]},
            {"type": "ItemAdded", "id": "a2"}
        ],
        "expect": "no-stream"
    });
    let (status, v) = json(s.post("/streams/order-1", body.clone()).await).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        v,
        json!({"stream": "order-1", "version": 2, "first_seq": 1, "last_seq": 2})
    );

    // The same ids again: a retry, answered with the first result and nothing written.
    let (status, v) = json(s.post("/streams/order-1", body).await).await;
    assert_eq!(status, 200);
    assert_eq!(v["replayed"], true);
    assert_eq!(v["last_seq"], 2);

    // A stale expectation: 409, kind conflict, nothing written.
    let r = s
        .post(
            "/streams/order-1",
            json!({"events": [event("X", json!({}))], "expect": 1}),
        )
        .await;
    let msg = error(r, 409, "conflict").await;
    assert!(msg.contains("order-1"), "{msg}");
    let r = s
        .post(
            "/streams/order-1",
            json!({"events": [event("X", json!({}))], "expect": "exists"}),
        )
        .await;
    assert_eq!(json(r).await.1["version"], 3);

    // A key: the second append with it replays.
    let keyed = json!({"events": [event("Paid", json!({}))], "key": "pay-1"});
    assert_eq!(
        json(s.post("/streams/order-2", keyed.clone()).await)
            .await
            .1["first_seq"],
        4
    );
    let (_, v) = json(s.post("/streams/order-2", keyed).await).await;
    assert_eq!(
        (v["first_seq"].clone(), v["replayed"].clone()),
        (json!(4), json!(true))
    );

    // A DCB condition: fails once a matching event exists after `after`.
    let cond = |after: u64| {
        json!({"events": [event("Shipped", json!({}))],
               "condition": {"types": ["OrderPlaced"], "tags": ["region=eu"], "after": after}})
    };
    let msg = error(
        s.post("/streams/order-3", cond(0)).await,
        409,
        "condition_failed",
    )
    .await;
    assert!(msg.contains("event 1"), "{msg}");
    assert_eq!(s.post("/streams/order-3", cond(1)).await.status(), 200);

    // An id used by another append.
    let dup = json!({"events": [{"type": "Y", "id": "a1"}]});
    error(s.post("/streams/other", dup).await, 409, "duplicate_id").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn append_to_several_streams_atomically() {
    let (s, store) = TestServer::memory(Default::default()).await;
    let (status, v) = json(
        s.post(
            "/append",
            json!([
                {"stream": "a", "events": [event("A", json!(1))], "expect": "no-stream"},
                {"stream": "b", "events": [event("B", json!(2)), event("B", json!(3))]}
            ]),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        v,
        json!({"streams": [
            {"stream": "a", "version": 1, "first_seq": 1, "last_seq": 1},
            {"stream": "b", "version": 2, "first_seq": 2, "last_seq": 3}
        ], "first_seq": 1, "last_seq": 3})
    );
    // One part's expectation fails: nothing of the other part is written.
    let r = s
        .post(
            "/append",
            json!({"streams": [
                {"stream": "c", "events": [event("C", json!({}))]},
                {"stream": "a", "events": [event("A", json!({}))], "expect": "no-stream"}
            ], "key": "k1"}),
        )
        .await;
    error(r, 409, "conflict").await;
    assert_eq!(store.stream_version("c").unwrap(), 0);
    assert_eq!(store.head_seq().unwrap(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tombstoned_stream_is_gone() {
    let (s, store) = TestServer::memory(Default::default()).await;
    crate::common::append_n(&s, "closed", "E", 2).await;
    store
        .tombstone_stream("closed", ExpectedVersion::Any)
        .unwrap();
    let r = s
        .post(
            "/streams/closed",
            json!({"events": [event("E", json!({}))]}),
        )
        .await;
    error(r, 410, "stream_deleted").await;
    error(s.get("/streams/closed").await, 410, "stream_deleted").await;
}
