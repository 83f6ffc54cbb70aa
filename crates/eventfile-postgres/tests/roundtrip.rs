//! What is appended reads back identical: data byte for byte (numbers and escapes as given, not
//! as `jsonb` would rewrite them), metadata as the same map, tags with any characters.

use eventfile::{AppendRequest, ErrorKind, EventStore, ExpectedVersion, NewEvent, Query, Read};
use eventfile_postgres::testing::fresh_schema;

#[test]
fn data_meta_and_tags_read_back_identical() {
    let (store, _guard) = fresh_schema();
    let data =
        r#"{"b":1.50,"a":1e3,"big":12345678901234567890123,"s":"\u00e9\"\\","z":[0.1,-0.0]}"#;
    let tags = [
        "k=plain",
        "q=\"quoted\"",
        "b=back\\slash",
        "c={braces},commas",
        "u=ünïcødé space",
        "n=NULL",
        "e=",
    ];
    let mut e = NewEvent::from_json_str("Odd", data)
        .unwrap()
        .with_meta_json(
            r#"{"correlation_id":"c-1","f":0.1,"n":18446744073709551615,"o":{"x":[1,2]}}"#,
        )
        .unwrap();
    for t in tags {
        e = e.with_tag(t);
    }
    let meta = e.meta().clone();
    store.append("s", ExpectedVersion::Any, vec![e]).unwrap();
    let read = store
        .read_stream("s", Read::forward())
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    assert_eq!(read.data.get(), data);
    assert_eq!(read.meta, meta);
    assert_eq!(read.tags, tags);
    for t in tags {
        assert_eq!(store.count(&Query::new().tag(t)).unwrap(), 1, "{t}");
    }
    assert_eq!(store.count(&Query::new().correlation("c-1")).unwrap(), 1);
}

/// A NUL (U+0000) in the data reads back as given; in a metadata string or key, which the
/// metadata indexes read as text (and PostgreSQL's text holds no NUL), it is refused as bad
/// input naming the event, before anything is sent: a request of `append_requests` alone, in
/// its place, and an import whole.
#[test]
fn a_nul_is_stored_in_data_and_refused_in_metadata() {
    let (store, _guard) = fresh_schema();
    let data = r#"{"raw":"a\u0000b"}"#;
    let with_data = NewEvent::from_json_str("T", data).unwrap();
    store
        .append("s", ExpectedVersion::Any, vec![with_data])
        .unwrap();
    let read: Vec<_> = store
        .read_stream("s", Read::forward())
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(read[0].data.get(), data);

    let nul_meta = |key: &str, value: serde_json::Value| {
        NewEvent::new("T", serde_json::json!({})).with_meta_entry(key, value)
    };
    for e in [
        nul_meta("note", serde_json::json!({"raw": ["x", "a\u{0}b"]})),
        nul_meta("a\u{0}b", serde_json::json!(1)),
    ] {
        let err = store
            .append("s", ExpectedVersion::Any, vec![e])
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
        assert!(err.to_string().contains("U+0000"), "{err}");
    }
    let out = store.append_requests(vec![
        AppendRequest::new(
            "s",
            ExpectedVersion::Any,
            [NewEvent::new("A", serde_json::json!(1))],
        ),
        AppendRequest::new(
            "s",
            ExpectedVersion::Any,
            [nul_meta("n", serde_json::json!("\u{0}"))],
        ),
        AppendRequest::new(
            "s",
            ExpectedVersion::Any,
            [NewEvent::new("B", serde_json::json!(2))],
        ),
    ]);
    let kinds: Vec<_> = out
        .iter()
        .map(|r| r.as_ref().map(|r| r.first_seq).map_err(|e| e.kind()))
        .collect();
    assert_eq!(kinds, [Ok(2), Err(ErrorKind::InvalidInput), Ok(3)]);

    let mut recorded = read[0].clone();
    recorded.id = "imported".into();
    recorded.stream = "t".into();
    recorded.version = 1;
    recorded.meta.insert("n".into(), serde_json::json!("\u{0}"));
    let err = store.import(&[recorded]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    assert_eq!(store.head_seq().unwrap(), 3);
}

fn admin() -> postgres::Client {
    let url = eventfile_postgres::testing::server().url();
    postgres::Client::connect(url, postgres::NoTls).expect("connect")
}

/// Checkpoints list in byte order, as on every other backend, whatever the collation of the
/// database (the test server's is C, so the column is given another one here): before, the
/// list followed the column's collation, which puts `audit` before `Billing`.
#[test]
fn checkpoints_list_in_byte_order_whatever_the_collation() {
    let (store, guard) = fresh_schema();
    let mut admin = admin();
    let collation: String = admin
        .query_opt(
            "SELECT collname::text FROM pg_collation
             WHERE collname IN ('und-x-icu', 'en_US.utf8', 'en_US') ORDER BY collname DESC LIMIT 1",
            &[],
        )
        .unwrap()
        .expect("the server has a collation other than C")
        .get(0);
    admin
        .batch_execute(&format!(
            "ALTER TABLE {}.checkpoints ALTER COLUMN name TYPE text COLLATE \"{collation}\"",
            guard.schema()
        ))
        .unwrap();
    for name in ["audit", "Billing", "orders2", "orders-v2"] {
        store.checkpoints().save(name, 1).unwrap();
    }
    let names: Vec<String> = store
        .checkpoints()
        .list()
        .unwrap()
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert_eq!(names, ["Billing", "audit", "orders-v2", "orders2"]);
}

/// A row written by something else with a NULL inside its tags array is an error of the
/// database kind when the tags are listed, not a panic.
#[test]
fn a_null_tag_written_by_another_tool_is_an_error_not_a_panic() {
    let (store, guard) = fresh_schema();
    store
        .append(
            "s",
            ExpectedVersion::Any,
            vec![NewEvent::new("T", serde_json::json!({})).with_tag("k=a")],
        )
        .unwrap();
    admin()
        .batch_execute(&format!(
            "UPDATE {}.events SET tags = ARRAY['k=a', NULL]::text[]",
            guard.schema()
        ))
        .unwrap();
    let err = store.tags(None, 10).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Io, "{err}");
}

/// Seqs and versions edited below 0 outside eventfile (the tables have no checks) are errors
/// naming the column, never read as 0: a snapshot at version 0 would have every event
/// replayed on top of it.
#[test]
fn negative_numbers_written_by_another_tool_are_errors_not_zeros() {
    let (store, guard) = fresh_schema();
    for _ in 0..3 {
        store
            .append(
                "s",
                ExpectedVersion::Any,
                vec![NewEvent::new("T", serde_json::json!({}))],
            )
            .unwrap();
    }
    store
        .save_snapshot("s", 2, &serde_json::value::to_raw_value(&2).unwrap())
        .unwrap();
    store.checkpoints().save("reader", 2).unwrap();
    let s = guard.schema();
    let edit = |sql: String| admin().batch_execute(&sql).unwrap();

    edit(format!("UPDATE {s}.snapshots SET version = -1"));
    let err = store.load_snapshot("s").unwrap_err();
    assert!(err.to_string().contains("-1"), "{err}");

    // The checkpoints table checks its positions itself.
    assert!(
        admin()
            .batch_execute(&format!("UPDATE {s}.checkpoints SET position = -5"))
            .is_err()
    );

    edit(format!("UPDATE {s}.events SET version = -3 WHERE seq = 1"));
    let err = store
        .read_all(Read::forward())
        .and_then(|events| events.collect::<Result<Vec<_>, _>>())
        .unwrap_err();
    assert!(err.to_string().contains("-3"), "{err}");
    assert_eq!(err.kind(), ErrorKind::Io, "{err}");
}

/// A column whose type was changed outside eventfile gives values the client cannot convert:
/// a database error (the same on any connection), not `Unreachable`, which tells a caller to
/// wait and retry.
#[test]
fn a_value_the_client_cannot_convert_is_a_database_error() {
    let (store, guard) = fresh_schema();
    store
        .append(
            "s",
            ExpectedVersion::Any,
            vec![NewEvent::new("T", serde_json::json!({}))],
        )
        .unwrap();
    admin()
        .batch_execute(&format!(
            "ALTER TABLE {}.events ALTER COLUMN version TYPE numeric",
            guard.schema()
        ))
        .unwrap();
    let err = store.stream_version("s").unwrap_err();
    assert!(matches!(err, eventfile::Error::Database { .. }), "{err:?}");
}
