//! What is appended reads back identical: data byte for byte (numbers and escapes as given, not
//! as `jsonb` would rewrite them), metadata as the same map, tags with any characters.

use eventfile::{EventStore, ExpectedVersion, NewEvent, Query, Read};
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
