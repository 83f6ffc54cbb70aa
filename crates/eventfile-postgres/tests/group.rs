//! The set-based append of an independent group (`append_group`) decides and writes exactly
//! what appending its requests one after the other (`append_batch`) does: the same results,
//! the same rows, whichever requests are refused among them.

use eventfile::{EventStore, ExpectedVersion, NewEvent};
use eventfile_postgres::testing::{fresh_schema, server};

/// The same history in a store: stream `x` at version 2, key `k1` used, id `id-old` taken,
/// stream `dead` tombstoned.
fn history(store: &dyn EventStore) {
    let e = |t: &str| NewEvent::new(t, serde_json::json!({"n": 1})).with_id(format!("h-{t}"));
    store
        .append("x", ExpectedVersion::Any, vec![e("A"), e("B")])
        .unwrap();
    store
        .append_request(
            eventfile::AppendRequest::new("y", ExpectedVersion::Any, [e("C")]).key("k1"),
        )
        .unwrap();
    store
        .append("z", ExpectedVersion::Any, vec![e("D").with_id("id-old")])
        .unwrap();
    store
        .append("dead", ExpectedVersion::Any, vec![e("E")])
        .unwrap();
    store
        .tombstone_stream("dead", ExpectedVersion::Any)
        .unwrap();
}

type Row = (
    i64,
    String,
    String,
    i64,
    String,
    String,
    String,
    Vec<String>,
    bool,
    Option<String>,
);

/// Events, stream versions and keys of a schema.
type Tables = (Vec<Row>, Vec<(String, i64)>, Vec<(String, i64)>);

/// A request: its key and its parts (stream, expected version code, event ids).
type Request<'a> = (Option<&'a str>, Vec<(&'a str, i64, Vec<&'a str>)>);

fn rows(c: &mut postgres::Client, schema: &str) -> Tables {
    let events = c
        .query(
            &format!(
                "SELECT seq, id, stream, version, type, data::text, meta::text, tags, more, key
                 FROM \"{schema}\".events ORDER BY seq"
            ),
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| {
            (
                r.get(0),
                r.get(1),
                r.get(2),
                r.get(3),
                r.get(4),
                r.get(5),
                r.get(6),
                r.get(7),
                r.get(8),
                r.get(9),
            )
        })
        .filter(|r: &Row| r.2 != "$lifecycle")
        .collect();
    let streams = c
        .query(
            &format!("SELECT stream, version FROM \"{schema}\".streams ORDER BY stream"),
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let keys = c
        .query(
            &format!("SELECT key, first_seq FROM \"{schema}\".keys ORDER BY key"),
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    (events, streams, keys)
}

#[test]
fn a_set_based_group_decides_as_one_by_one() {
    let (a, ga) = fresh_schema();
    let (b, gb) = fresh_schema();
    history(&a);
    history(&b);
    // Requests: (key, [(stream, expected, ids)]); ids name the events.
    let requests: Vec<Request<'_>> = vec![
        (None, vec![("a", -2, vec!["r1-1", "r1-2"])]),
        (None, vec![("x", 1, vec!["r2-1"])]),
        (
            None,
            vec![("b", -1, vec!["r3-1"]), ("c", -1, vec!["r3-2", "r3-3"])],
        ),
        (Some("k1"), vec![("d", -1, vec!["r4-1"])]),
        (None, vec![("e", -1, vec!["r5-1", "id-old"])]),
        (None, vec![("dead", -1, vec!["r6-1"])]),
        (None, vec![("f", -3, vec!["r7-1"])]),
        (Some("k2"), vec![("x", 2, vec!["r8-1", "r8-2"])]),
        (None, vec![("g", -2, vec!["r9-1"]), ("h", 0, vec!["r9-2"])]),
    ];
    let mut c = postgres::Client::connect(server().url(), postgres::NoTls).unwrap();
    // One call of `function` with `requests`; its answer.
    let mut call = |schema: &str, function: &str, requests: &[Request<'_>]| -> Vec<i64> {
        let mut r_key: Vec<Option<&str>> = Vec::new();
        let (mut p_req, mut p_stream, mut p_expected, mut p_count) = (
            Vec::<i32>::new(),
            Vec::<&str>::new(),
            Vec::<i64>::new(),
            Vec::<i32>::new(),
        );
        let (mut e_id, mut e_type, mut e_data, mut e_meta, mut e_tags) = (
            Vec::<&str>::new(),
            Vec::<&str>::new(),
            Vec::<String>::new(),
            Vec::<&str>::new(),
            Vec::<&str>::new(),
        );
        for (r, (key, parts)) in requests.iter().enumerate() {
            r_key.push(*key);
            for (stream, expected, ids) in parts {
                p_req.push(r as i32 + 1);
                p_stream.push(stream);
                p_expected.push(*expected);
                p_count.push(ids.len() as i32);
                for id in ids {
                    e_id.push(id);
                    e_type.push("T");
                    e_data.push(format!("{{\"id\":\"{id}\",\"x\":1.50}}"));
                    e_meta.push(r#"{"actor":"me"}"#);
                    e_tags.push(r#"{"t=1","u=\"q\""}"#);
                }
            }
        }
        c.query_one(
            &format!("SELECT \"{schema}\".{function}($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"),
            &[
                &r_key,
                &p_req,
                &p_stream,
                &p_expected,
                &p_count,
                &e_id,
                &e_type,
                &e_data,
                &e_meta,
                &e_tags,
            ],
        )
        .unwrap()
        .get(0)
    };
    // One after the other: `append_batch` with one request per call (it stops at a refusal).
    let one_by_one: Vec<i64> = requests
        .iter()
        .flat_map(|r| call(ga.schema(), "append_batch", std::slice::from_ref(r)))
        .collect();
    let set_based = call(gb.schema(), "append_group", &requests);
    assert_eq!(one_by_one, set_based);
    // Requests 1, 3, 8 and 9 pass; the others are refused.
    let firsts: Vec<i64> = {
        let mut at = one_by_one.iter();
        requests
            .iter()
            .map(|(_, parts)| {
                let first = *at.next().unwrap();
                for _ in parts {
                    at.next();
                }
                first
            })
            .collect()
    };
    assert_eq!(firsts, [7, 0, 9, 0, 0, 0, 0, 12, 14]);
    let mut c = postgres::Client::connect(server().url(), postgres::NoTls).unwrap();
    let (ra, rb) = (rows(&mut c, ga.schema()), rows(&mut c, gb.schema()));
    assert_eq!(ra, rb);
    assert_eq!(a.head_seq().unwrap(), b.head_seq().unwrap());
    drop((a, b));
}

/// `append_requests` queues every request at once: they are committed as one group (one
/// commit, counted as one sync), a request refused before queueing (no events) or inside the
/// group (a conflict) disturbs no other, and the outcomes come back in order.
#[test]
fn independent_requests_share_one_group_commit() {
    use eventfile::{AppendRequest, ErrorKind};
    let (store, _guard) = fresh_schema();
    let requests = (0..10u64)
        .map(|i| {
            let stream = format!("s-{}", i % 5);
            let events = if i == 7 {
                Vec::new()
            } else {
                vec![NewEvent::new("E", serde_json::json!({ "i": i }))]
            };
            AppendRequest::new(stream, ExpectedVersion::NoStream, events)
        })
        .collect();
    let out = store.append_requests(requests);
    assert_eq!(out.len(), 10);
    for (i, r) in out.iter().enumerate() {
        match (i, r) {
            (0..5, Ok(r)) => assert_eq!(r.first_seq, i as u64 + 1),
            (7, Err(e)) => assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}"),
            (5..10, Err(e)) => assert_eq!(e.kind(), ErrorKind::Conflict, "{e}"),
            other => panic!("unexpected outcome {other:?}"),
        }
    }
    let m = store.metrics();
    assert_eq!((m.appends, m.events, m.syncs), (5, 5, 1));
    assert_eq!(store.head_seq().unwrap(), 5);
}

/// A group retried whole (every request keyed, one stream) is refused request after request
/// by the group call, whose size the appender cuts after each refusal: each request is still
/// answered as a replay of its original, in order.
#[test]
fn a_retried_group_replays_each_request_in_order() {
    let (store, _guard) = fresh_schema();
    let requests = || {
        (0..40)
            .map(|i| {
                eventfile::AppendRequest::new(
                    "s",
                    ExpectedVersion::Any,
                    [NewEvent::new("T", serde_json::json!(i))],
                )
                .key(format!("k{i}"))
            })
            .collect::<Vec<_>>()
    };
    // Each request's first seq and whether it was replayed.
    let append = || -> Vec<(u64, bool)> {
        store
            .append_requests(requests())
            .into_iter()
            .map(|r| r.map(|r| (r.first_seq, r.replayed)).unwrap())
            .collect()
    };
    assert_eq!(append(), (1..=40).map(|s| (s, false)).collect::<Vec<_>>());
    assert_eq!(append(), (1..=40).map(|s| (s, true)).collect::<Vec<_>>());
    assert_eq!(store.head_seq().unwrap(), 40);
}
