//! One scenario of commands, refusals, queries, events, rebuild and status, run by `backends`
//! on each store.

use crate::support::{Shop, dump, json_lines};

/// Runs the scenario on `shop`'s store (an empty one).
pub fn commands_refusals_and_read_models(shop: &Shop) {
    // The write side.
    assert_eq!(
        shop.ok(&["place", "A1", "ann"]),
        "order A1 placed for ann (v1)\n"
    );
    shop.ok(&["add", "A1", "tea", "2", "3.50"]);
    let added = shop.ok(&["add", "A1", "cup", "1", "12"]);
    assert_eq!(
        added,
        "order A1: added 1 x cup at 12.00; total 19.00 (v3)\n"
    );
    shop.ok(&["place", "B2", "bob"]);
    shop.ok(&["add", "B2", "coffee", "3", "4.2"]);
    shop.ok(&["pay", "A1", "10"]);
    let paid = shop.ok(&["pay", "A1", "9.00"]);
    assert_eq!(
        paid,
        "order A1: paid 9.00; 19.00 of 19.00 paid, paid (v6)\n"
    );

    // Refusals: exit 1, a message, nothing written.
    let refusals: [(&[&str], &str); 6] = [
        (
            &["pay", "C3", "1"],
            "order C3: the order has not been placed",
        ),
        (
            &["add", "C3", "x", "1", "1"],
            "the order has not been placed",
        ),
        (&["pay", "B2", "12.61"], "12.61 is more than the 12.60 owed"),
        (&["pay", "A1", "1"], "nothing is owed"),
        (
            &["add", "A1", "spoon", "1", "1"],
            "items cannot be added: 19.00 has been paid",
        ),
        (&["place", "A1", "cy"], "the order was placed already"),
    ];
    for (args, says) in refusals {
        let err = shop.fails(1, args);
        assert!(err.contains(says), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
    assert!(shop.fails(1, &["show", "C3"]).contains("no order C3"));
    // Usage errors: exit 2, before anything runs.
    for args in [
        &["pay", "A1", "1.234"][..],
        &["pay", "A1", "-1"],
        &["place", "a b", "ann"],
        &["add", "A1", "x", "many", "1"],
        &["place", "A1"],
        &["nonsense"],
    ] {
        shop.fails(2, args);
    }

    // The write side's view of an order.
    let show = shop.ok(&["show", "A1"]);
    assert!(
        show.starts_with("order A1 (write side: stream order-A1 at v6"),
        "{show}"
    );
    for part in [
        "customer  ann",
        "status    paid",
        "2 x tea at 3.50 = 7.00",
        "owed      0.00",
    ] {
        assert!(show.contains(part), "{part}: {show}");
    }

    // The read side, caught up by the query.
    let orders = shop.ok(&["orders"]);
    let rows: Vec<Vec<&str>> = orders
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        rows,
        [
            vec!["ORDER", "CUSTOMER", "ITEMS", "TOTAL", "PAID", "STATUS"],
            vec!["A1", "ann", "3", "19.00", "19.00", "paid"],
            vec!["B2", "bob", "3", "12.60", "0.00", "placed"],
        ]
    );
    let order = shop.ok(&["order", "A1"]);
    assert_eq!(
        order
            .lines()
            .map(str::split_whitespace)
            .map(Iterator::collect)
            .collect::<Vec<Vec<&str>>>()[1..],
        [
            vec!["LINE", "SKU", "QTY", "PRICE", "AMOUNT"],
            vec!["1", "tea", "2", "3.50", "7.00"],
            vec!["2", "cup", "1", "12.00", "12.00"],
        ]
    );
    assert!(shop.fails(1, &["order", "C3"]).contains("no order C3"));

    // The raw events: one JSON object a line, every order's or one order's.
    let all = json_lines(&shop.ok(&["events"]));
    let types: Vec<&str> = all.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        [
            "OrderPlaced",
            "ItemAdded",
            "ItemAdded",
            "OrderPlaced",
            "ItemAdded",
            "PaymentReceived",
            "PaymentReceived",
            "OrderPaid"
        ]
    );
    assert_eq!(
        all[1]["data"],
        serde_json::json!({"sku": "tea", "quantity": 2, "unit_price": 350})
    );
    let b2 = json_lines(&shop.ok(&["events", "B2"]));
    assert_eq!(b2.len(), 2);
    assert!(b2.iter().all(|e| e["stream"] == "order-B2"));

    // A payment after the read model caught up: the next query sees it.
    shop.ok(&["pay", "B2", "2.60"]);
    assert!(shop.ok(&["order", "B2"]).contains("paid 2.60, part-paid"));

    // Status: both projections at the head, in the read model and in the store.
    let status = json_lines(&shop.ok(&["status"]));
    assert_eq!(status.len(), 2);
    for (s, name) in status.iter().zip(["order-summary", "order-details"]) {
        assert_eq!(s["name"], name);
        assert_eq!(
            (
                s["position"].as_u64(),
                s["head"].as_u64(),
                s["lag"].as_u64()
            ),
            (Some(9), Some(9), Some(0))
        );
        assert_eq!(s["store_checkpoint"].as_u64(), Some(9));
        assert!(s["error"].is_null());
    }
    // A new event: status shows the lag until the projections catch up.
    shop.ok(&["place", "C3", "cy"]);
    let status = json_lines(&shop.ok(&["status"]));
    assert_eq!(status[0]["lag"], 1);
    shop.ok(&["project"]);
    assert_eq!(json_lines(&shop.ok(&["status"]))[0]["lag"], 0);

    // A rebuild gives the same rows, row for row.
    let before = dump(&shop.read_db);
    assert_eq!(before.summary.len(), 3);
    assert_eq!(before.lines.len(), 3);
    let out = shop.run(&["rebuild"]);
    let progress = crate::support::ok(&out, &["rebuild"]);
    assert!(progress.is_empty());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("rebuilding order-summary: seq 10 of 10"),
        "{err}"
    );
    assert_eq!(dump(&shop.read_db), before);
}
