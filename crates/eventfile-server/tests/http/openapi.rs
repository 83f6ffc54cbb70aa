//! The served OpenAPI document is true: every answer of a set of requests that covers each
//! operation and its statuses is validated against the schema the document gives for that
//! path, method and status (a small JSON Schema checker below: the subset the document uses).
//!
//! Schemathesis (PyPI), a property-based tester, generates requests from the document too:
//! `schemathesis_agrees_with_the_server` below, ignored by default because CI installs no
//! Python package yet (`pip install schemathesis`, then run it with `--ignored`).

use std::time::Duration;

use eventfile_server::ServeOptions;
use serde_json::{Value, json};

use crate::common::{TestServer, append_n};

/// Checks `v` against `schema`, resolving `$ref`s in `doc`; the first mismatch as an error.
fn check(doc: &Value, schema: &Value, v: &Value, at: &str) -> Result<(), String> {
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        let name = r
            .strip_prefix("#/components/schemas/")
            .expect("a local ref");
        return check(doc, &doc["components"]["schemas"][name], v, at);
    }
    if let Some(any) = schema.get("oneOf").and_then(Value::as_array) {
        let ok = any.iter().filter(|s| check(doc, s, v, at).is_ok()).count();
        return if ok == 1 {
            Ok(())
        } else {
            Err(format!("{at}: {ok} of oneOf match {v}"))
        };
    }
    let fail = |why: &str| Err(format!("{at}: {why}: {v}"));
    if let Some(t) = schema.get("type").and_then(Value::as_str) {
        let ok = match t {
            "object" => v.is_object(),
            "array" => v.is_array(),
            "string" => v.is_string(),
            "integer" => v.is_i64() || v.is_u64(),
            "number" => v.is_number(),
            "boolean" => v.is_boolean(),
            _ => false,
        };
        if !ok {
            return fail(&format!("not of type {t}"));
        }
    }
    if let Some(e) = schema.get("enum").and_then(Value::as_array)
        && !e.contains(v)
    {
        return fail("not in the enum");
    }
    if let Some(min) = schema.get("minimum").and_then(Value::as_i64)
        && v.as_i64().is_some_and(|n| n < min)
    {
        return fail("below the minimum");
    }
    if let Some(o) = v.as_object() {
        let props = schema.get("properties").and_then(Value::as_object);
        for r in schema
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if !o.contains_key(r.as_str().unwrap()) {
                return fail(&format!("missing {r}"));
            }
        }
        for (k, val) in o {
            match props.and_then(|p| p.get(k)) {
                Some(s) => check(doc, s, val, &format!("{at}.{k}"))?,
                None if schema.get("additionalProperties") == Some(&json!(false)) => {
                    return fail(&format!("undocumented member {k}"));
                }
                None => {}
            }
        }
    }
    if let (Some(items), Some(a)) = (schema.get("items"), v.as_array()) {
        for (i, item) in a.iter().enumerate() {
            check(doc, items, item, &format!("{at}[{i}]"))?;
        }
    }
    Ok(())
}

/// Sends a request and validates the answer against the document.
async fn conforms(
    s: &TestServer,
    doc: &Value,
    method: &str,
    path: &str,
    template: &str,
    body: Option<Value>,
) -> u16 {
    let mut req = s.client.request(method.parse().unwrap(), s.url(path));
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let ctype = r
        .headers()
        .get("content-type")
        .map(|c| c.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let op = &doc["paths"][template][method.to_lowercase()];
    assert!(op.is_object(), "{method} {template} is not in the document");
    let answer = &op["responses"][status.to_string()];
    assert!(
        answer.is_object(),
        "{method} {path}: status {status} is not documented"
    );
    let media = ctype.split(';').next().unwrap().trim().to_owned();
    let content = &answer["content"][&media];
    assert!(
        content.is_object(),
        "{method} {path}: {status} {media} is not documented"
    );
    if media == "application/json" {
        let v: Value = r.json().await.unwrap();
        if let Err(e) = check(doc, &content["schema"], &v, "body") {
            panic!("{method} {path} -> {status}: {e}");
        }
    }
    status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answer_matches_the_document() {
    let (s, _store) =
        TestServer::memory(ServeOptions::new().heartbeat(Duration::from_millis(50))).await;
    let doc: Value = s.get("/openapi.json").await.json().await.unwrap();
    append_n(&s, "a", "A", 3).await;
    let one = json!({"events": [{"type": "T", "id": "x-1", "tags": ["k=v"], "meta": {"actor": "ann"}}], "expect": "no-stream"});
    let cases: Vec<(&str, &str, &str, Option<Value>, u16)> = vec![
        (
            "POST",
            "/streams/b",
            "/streams/{stream}",
            Some(one.clone()),
            200,
        ),
        (
            "POST",
            "/streams/b",
            "/streams/{stream}",
            Some(one.clone()),
            200,
        ), // replayed
        (
            "POST",
            "/streams/b",
            "/streams/{stream}",
            Some(json!({"events": [{"type": "T"}], "expect": "no-stream"})),
            409,
        ),
        (
            "POST",
            "/streams/b",
            "/streams/{stream}",
            Some(json!({"events": [{"type": "T"}], "extra": 1})),
            400,
        ),
        (
            "POST",
            "/append",
            "/append",
            Some(json!([{"stream": "c", "events": [{"type": "T"}]}])),
            200,
        ),
        (
            "POST",
            "/append",
            "/append",
            Some(json!({"streams": [{"stream": "d", "events": [{"type": "T"}]}], "key": "k"})),
            200,
        ),
        (
            "POST",
            "/append",
            "/append",
            Some(json!({"streams": []})),
            400,
        ),
        ("GET", "/streams/a?limit=2", "/streams/{stream}", None, 200),
        ("GET", "/streams/a?bad=1", "/streams/{stream}", None, 400),
        ("GET", "/events?type=A&limit=2", "/events", None, 200),
        ("GET", "/events?count=true", "/events", None, 200),
        ("GET", "/events?after=nope", "/events", None, 400),
        ("GET", "/events/x-1", "/events/{id}", None, 200),
        ("GET", "/events/none", "/events/{id}", None, 404),
        ("GET", "/streams", "/streams", None, 200),
        ("GET", "/types", "/types", None, 200),
        ("GET", "/tags", "/tags", None, 200),
        ("GET", "/head", "/head", None, 200),
        ("GET", "/health", "/health", None, 200),
        ("GET", "/metrics", "/metrics", None, 200),
        ("GET", "/openapi.json", "/openapi.json", None, 200),
        ("GET", "/subscribe?limit=1", "/subscribe", None, 400),
    ];
    for (method, path, template, body, expected) in cases {
        let got = conforms(&s, &doc, method, path, template, body).await;
        assert_eq!(got, expected, "{method} {path}");
    }
    // The feed's answer head (its body is a stream, not JSON).
    let r = s.get("/subscribe").await;
    assert_eq!(r.status(), 200);
    assert!(
        doc["paths"]["/subscribe"]["get"]["responses"]["200"]["content"]["text/event-stream"]
            .is_object()
    );
    // With a token, the 401s conform too.
    let (t, _store) = TestServer::memory(ServeOptions::new().token("t")).await;
    assert_eq!(conforms(&t, &doc, "GET", "/head", "/head", None).await, 401);
    assert_eq!(
        conforms(&t, &doc, "POST", "/append", "/append", Some(json!([]))).await,
        401
    );
}

/// Schemathesis against a running server with a token: every generated request's answer must
/// have a documented status, content type, headers and body, no 5xx, auth enforced. Two checks
/// are left out, each for a rule the document cannot state: `positive_data_acceptance` (a
/// cursor's checksum, an id used twice in one append, a key reused for another append are
/// refused though each value is well formed) and `negative_data_rejection` (names are limited
/// in bytes, 256, which JSON Schema cannot count; the document states a safe 64 characters).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs schemathesis from PyPI: pip install schemathesis, then run with --ignored"]
async fn schemathesis_agrees_with_the_server() {
    let (s, _store) = TestServer::memory(ServeOptions::new().token("st-token")).await;
    let url = s.url("/openapi.json");
    // Its cache (.schemathesis/) goes to a scratch directory, not into the repository.
    let scratch = tempfile::tempdir().unwrap();
    let cwd = scratch.path().to_owned();
    let status = tokio::task::spawn_blocking(move || {
        std::process::Command::new("st")
            .current_dir(cwd)
            .args(["run", &url, "--checks", "all"])
            .args([
                "--exclude-checks",
                "positive_data_acceptance,negative_data_rejection",
            ])
            .args(["--exclude-path", "/subscribe", "--max-examples", "25"])
            // The same cases every run: CI must not turn red on a new random draw (a draw that
            // finds a mismatch is found by running with another seed on purpose).
            .args(["--seed", "7464", "--generation-deterministic"])
            .args([
                "--request-timeout",
                "10",
                "-H",
                "Authorization: Bearer st-token",
            ])
            .status()
            .expect("schemathesis (`st`) on PATH: pip install schemathesis")
    })
    .await
    .unwrap();
    assert!(status.success(), "schemathesis found failures (above)");
}
