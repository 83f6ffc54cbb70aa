//! `eventfile demo`: a small shop, end to end, in a fresh temporary store.

use std::collections::BTreeMap;
use std::io::Write;

use eventfile::{ExpectedVersion, NewEvent, Read, Store, StreamAppend};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::Failure;

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "kind")]
enum ShopEvent {
    OrderPlaced {
        customer: String,
    },
    ItemAdded {
        sku: String,
        qty: u32,
        price_cents: u64,
    },
    OrderPaid {
        amount_cents: u64,
    },
}

/// The state of one order, rebuilt from its events.
#[derive(Debug, Default)]
struct Order {
    customer: String,
    items: BTreeMap<String, u32>,
    total_cents: u64,
    paid: bool,
}

impl Order {
    fn apply(&mut self, e: ShopEvent) {
        match e {
            ShopEvent::OrderPlaced { customer } => self.customer = customer,
            ShopEvent::ItemAdded {
                sku,
                qty,
                price_cents,
            } => {
                *self.items.entry(sku).or_default() += qty;
                self.total_cents += u64::from(qty) * price_cents;
            }
            ShopEvent::OrderPaid { .. } => self.paid = true,
        }
    }
}

fn event(e: &ShopEvent) -> Result<NewEvent, Failure> {
    let kind = match e {
        ShopEvent::OrderPlaced { .. } => "OrderPlaced",
        ShopEvent::ItemAdded { .. } => "ItemAdded",
        ShopEvent::OrderPaid { .. } => "OrderPaid",
    };
    Ok(NewEvent::serialize(kind, e)?.with_meta_entry("actor", "demo"))
}

pub fn run(out: &mut impl Write) -> Result<(), Failure> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let dir = std::env::temp_dir().join(format!("eventfile-demo-{}-{nanos}", std::process::id()));
    let store = Store::open(&dir)?;
    writeln!(out, "eventfile demo: a small shop in {}", dir.display())?;
    writeln!(out)?;

    let placed = |c: &str| ShopEvent::OrderPlaced { customer: c.into() };
    let item = |sku: &str, qty, price_cents| ShopEvent::ItemAdded {
        sku: sku.into(),
        qty,
        price_cents,
    };
    let r = store.append(
        "order-1001",
        ExpectedVersion::NoStream,
        [
            event(&placed("ann"))?,
            event(&item("mug", 2, 1250))?,
            event(&item("tea", 1, 899))?,
        ],
    )?;
    writeln!(
        out,
        "1. order-1001 placed with two items, one durable batch: seq {}..{}, version {}",
        r.first_seq, r.last_seq, r.version
    )?;
    let r = store.append(
        "order-1002",
        ExpectedVersion::NoStream,
        [event(&placed("bob"))?],
    )?;
    writeln!(
        out,
        "2. order-1002 placed: seq {}, version {}",
        r.first_seq, r.version
    )?;

    // Two clerks load order-1002 at version 1 and both try to add an item.
    let seen = eventfile::EventStore::stream_version(&store, "order-1002")?;
    let first = store.append(
        "order-1002",
        ExpectedVersion::Exact(seen),
        [event(&item("pen", 3, 150))?],
    )?;
    writeln!(
        out,
        "3. clerk A adds pens expecting version {seen}: ok, now version {}",
        first.version
    )?;
    match store.append(
        "order-1002",
        ExpectedVersion::Exact(seen),
        [event(&item("ink", 1, 500))?],
    ) {
        Err(e) if e.is_conflict() => writeln!(
            out,
            "4. clerk B adds ink expecting version {seen}: refused, nothing written:\n   {e}"
        )?,
        other => writeln!(out, "4. clerk B: unexpected outcome {other:?}")?,
    }

    // Payment and a ledger entry, atomically across two streams.
    let pay = ShopEvent::OrderPaid { amount_cents: 3399 };
    let m = store.append_multi(&[
        StreamAppend::new("order-1001", ExpectedVersion::Exact(3), [event(&pay)?]),
        StreamAppend::new(
            "ledger",
            ExpectedVersion::Any,
            [NewEvent::new(
                "PaymentReceived",
                json!({"order": "order-1001", "amount_cents": 3399}),
            )],
        ),
    ])?;
    writeln!(
        out,
        "5. order-1001 paid and ledger updated in one atomic batch: seq {}..{}",
        m.first_seq, m.last_seq
    )?;

    writeln!(out)?;
    for stream in ["order-1001", "order-1002"] {
        let mut order = Order::default();
        for e in store.read_stream(stream, Read::forward())? {
            order.apply(e?.decode()?);
        }
        writeln!(
            out,
            "state of {stream}, rebuilt from its events: customer {}, items {:?}, total {}.{:02}, paid {}",
            order.customer,
            order.items,
            order.total_cents / 100,
            order.total_cents % 100,
            order.paid
        )?;
    }
    writeln!(out)?;
    writeln!(
        out,
        "the global log, as `eventfile --dir {} cat` prints it:",
        dir.display()
    )?;
    for e in store.read_all(Read::forward())? {
        let e = e?;
        writeln!(
            out,
            "  seq {:>2}  {:<11} v{}  {}",
            e.seq, e.stream, e.version, e.event_type
        )?;
    }
    store.close()?;
    let report = eventfile::verify(&dir)?;
    writeln!(out)?;
    writeln!(
        out,
        "verify: {} ({} events, every CRC checked)",
        if report.is_sound() {
            "sound"
        } else {
            "UNSOUND"
        },
        report.events
    )?;
    writeln!(
        out,
        "the segment is plain JSON lines: try `jq -c 'select(.seq) | .data' {}/*.jsonl`",
        dir.display()
    )?;
    Ok(())
}
