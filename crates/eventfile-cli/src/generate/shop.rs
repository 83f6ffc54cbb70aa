//! The shop `eventfile generate` writes: customers register, place orders, add and remove
//! items, pay, cancel, and have their orders shipped. Every event carries the metadata an
//! application would give it (`correlation_id`: the order's conversation, `causation_id`: the
//! event it follows from, `actor`: who did it) and tags (`customer=`, `region=`, `sku=`).
//!
//! This module owns the model and its randomness only: it makes events, in memory, one at a
//! time, and never touches a store. Everything it makes follows from the seed, the first
//! stream number and the time span, so two runs with the same ones make the same events, ids
//! and times included.

use eventfile::{Micros, RecordedEvent};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

/// A small, fast, seedable generator (SplitMix64): the same seed gives the same sequence on
/// every platform and in every version of this tool, which a crate's generator does not promise.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    /// True with probability `percent` / 100.
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// What the shop is asked to make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Events to make.
    pub events: u64,
    /// The seed of every random choice.
    pub seed: u64,
    /// How many customers there are (each registers before its first order).
    pub customers: u64,
    /// Streams are numbered from this one on (`customer-N`, `order-N`): the store's head seq
    /// when the run starts, so a run into a store that holds events never reuses a stream of an
    /// earlier run (each stream a run makes takes at least one of its events).
    pub first_number: u64,
    /// The time of the first event, microseconds since the epoch.
    pub start: Micros,
    /// The time span the events are spread over, in microseconds.
    pub span: Micros,
}

const FIRST_NAMES: &[&str] = &[
    "Ann", "Bo", "Chen", "Dara", "Emil", "Fatima", "Goran", "Hana", "Ivo", "Jun", "Kofi", "Lena",
    "Mateo", "Nora", "Omar", "Priya", "Quinn", "Rosa", "Sven", "Tariq", "Uma", "Vera", "Wen",
    "Yusuf", "Zoe",
];
const LAST_NAMES: &[&str] = &[
    "Andersen", "Baptiste", "Costa", "Dubois", "Eriksen", "Fischer", "Garcia", "Haddad", "Ito",
    "Jansen", "Kowalski", "Lopez", "Moreau", "Novak", "Okafor", "Petrov", "Rossi", "Silva",
    "Tanaka", "Weber",
];
const REGIONS: &[(&str, &str)] = &[
    ("eu", "EUR"),
    ("eu", "EUR"),
    ("uk", "GBP"),
    ("us", "USD"),
    ("us", "USD"),
    ("apac", "JPY"),
];
const PRODUCTS: &[(&str, &str, u64)] = &[
    ("SKU-1001", "Espresso beans 1kg", 2490),
    ("SKU-1002", "Pour-over kettle", 5900),
    ("SKU-1003", "Ceramic mug", 1450),
    ("SKU-1004", "Hand grinder", 8900),
    ("SKU-1005", "Paper filters x100", 690),
    ("SKU-1006", "Milk jug", 1990),
    ("SKU-1007", "Digital scale", 3490),
    ("SKU-1008", "Travel tumbler", 2290),
    ("SKU-1009", "Green tea 250g", 1190),
    ("SKU-1010", "Cold brew bottle", 2790),
];
const METHODS: &[&str] = &[
    "card",
    "card",
    "card",
    "paypal",
    "bank-transfer",
    "gift-card",
];
const CARRIERS: &[&str] = &["dhl", "ups", "postnl", "royal-mail", "fedex"];
const CANCEL_REASONS: &[&str] = &[
    "customer-request",
    "payment-failed",
    "out-of-stock",
    "duplicate-order",
];

/// Most orders open at once: an order is finished (paid and shipped, or cancelled) before the
/// shop opens more, so memory stays small whatever the number of events.
const MAX_OPEN_ORDERS: usize = 512;

#[derive(Debug)]
struct Order {
    stream: String,
    version: u64,
    customer: usize,
    correlation: String,
    last_id: String,
    /// (product index, quantity) of the items in it.
    items: Vec<(usize, u64)>,
    paid: bool,
}

#[derive(Debug)]
struct Customer {
    /// `customer-N`, numbered when it registers (empty before): a number is taken only by an
    /// event written, so every number a run takes lies within its head + 1 and its last seq,
    /// and a later run into the same store, numbered from the head on, never reuses one.
    stream: String,
    name: String,
    region: usize,
    /// Its `CustomerRegistered` event id, once it has registered.
    registered: Option<String>,
}

/// The shop: the events a [`Plan`] names, in order.
///
/// [`Shop::next_into`] writes each event over one made before, reusing its strings, maps and
/// vectors: `generate` writes millions, and an allocation per field (a `format!` per string,
/// a fresh metadata map and tag vector per event) cost more than the rest of the model. The
/// [`Iterator`] gives owned events, for tests and small runs.
pub struct Shop {
    plan: Plan,
    rng: Rng,
    made: u64,
    time: Micros,
    next_number: u64,
    customers: Vec<Customer>,
    orders: Vec<Order>,
    /// The data of the event being made (its JSON text), reused.
    data: String,
}

/// An event with empty fields, for [`Shop::next_into`] to fill.
pub fn blank_event() -> RecordedEvent {
    RecordedEvent {
        seq: 0,
        id: String::new(),
        stream: String::new(),
        version: 0,
        event_type: String::new(),
        time: 0,
        data: RawValue::NULL.to_owned(),
        meta: Map::new(),
        tags: Vec::new(),
    }
}

impl Shop {
    pub fn new(plan: Plan) -> Shop {
        // The run's stream numbering is mixed into the seed, so a second run with the same seed
        // into the same store makes new ids rather than ones the store would skip as imported.
        let mut rng = Rng::new(plan.seed ^ plan.first_number.wrapping_mul(0xa076_1d64_78bd_642f));
        let n = plan.customers.max(1);
        let customers = (0..n)
            .map(|_| Customer {
                stream: String::new(),
                name: format!("{} {}", rng.pick(FIRST_NAMES), rng.pick(LAST_NAMES)),
                region: rng.below(REGIONS.len() as u64) as usize,
                registered: None,
            })
            .collect();
        Shop {
            next_number: plan.first_number + 1,
            time: plan.start,
            plan,
            rng,
            made: 0,
            customers,
            orders: Vec::new(),
            data: String::with_capacity(256),
        }
    }

    /// Makes the next event over `e` (any event: every field is written); false, leaving `e`
    /// as it was, once the plan's events are all made.
    pub fn next_into(&mut self, e: &mut RecordedEvent) -> bool {
        if self.made >= self.plan.events {
            return false;
        }
        self.tick();
        let open = self.orders.len();
        if open == 0 || (open < MAX_OPEN_ORDERS && self.rng.chance(18)) {
            self.place(e);
        } else {
            let o = self.rng.below(open as u64) as usize;
            self.advance(o, e);
        }
        e.seq = 0;
        e.time = self.time;
        e.data = RawValue::from_string(self.data.clone()).expect("the shop writes valid JSON");
        self.made += 1;
        true
    }

    /// A UUIDv7-shaped id (the time's milliseconds, then random bits from the seed), written
    /// over `out`.
    fn id_into(&mut self, out: &mut String) {
        let ms = (self.time / 1000).max(0) as u64 & 0xffff_ffff_ffff;
        let a = self.rng.next_u64();
        let b = self.rng.next_u64();
        out.clear();
        push_hex(out, ms >> 16, 8);
        out.push('-');
        push_hex(out, ms & 0xffff, 4);
        out.push_str("-7");
        push_hex(out, a & 0xfff, 3);
        out.push('-');
        push_hex(out, 0x8000 | ((a >> 12) & 0x3fff), 4);
        out.push('-');
        push_hex(out, b & 0xffff_ffff_ffff, 12);
    }

    /// Moves the clock to the time of the next event: spread evenly over the span with some
    /// jitter, never backwards.
    fn tick(&mut self) {
        let n = self.plan.events.max(1) as i128;
        let span = i128::from(self.plan.span.max(0));
        let step = (span / n).max(1);
        let base = i128::from(self.plan.start) + span * i128::from(self.made) / n;
        let at = base + i128::from(self.rng.below(step as u64));
        self.time = self.time.max(at as Micros);
    }

    fn register(&mut self, c: usize, e: &mut RecordedEvent) {
        self.id_into(&mut e.id);
        let number = self.next_number;
        self.next_number += 1;
        let cust = &mut self.customers[c];
        cust.stream.push_str("customer-");
        push_u64(&mut cust.stream, number);
        let cust = &self.customers[c];
        let region = REGIONS[cust.region].0;
        let d = &mut self.data;
        d.clear();
        d.push_str(r#"{"name":""#);
        d.push_str(&cust.name);
        d.push_str(r#"","email":""#);
        d.extend(cust.name.chars().map(|ch| match ch {
            ' ' => '.',
            ch => ch.to_ascii_lowercase(),
        }));
        d.push('.');
        d.push_str(&cust.stream["customer-".len()..]);
        d.push_str(r#"@example.com","region":""#);
        d.push_str(region);
        d.push_str(r#""}"#);
        set(&mut e.stream, &cust.stream);
        e.version = 1;
        set(&mut e.event_type, "CustomerRegistered");
        set_meta(&mut e.meta, &e.id, None, &cust.stream);
        set_tags(
            &mut e.tags,
            &[("customer=", &cust.stream), ("region=", region)],
        );
        self.customers[c].registered = Some(e.id.clone());
    }

    fn place(&mut self, e: &mut RecordedEvent) {
        let c = self.rng.below(self.customers.len() as u64) as usize;
        let Some(cause) = self.customers[c].registered.clone() else {
            return self.register(c, e);
        };
        self.id_into(&mut e.id);
        e.stream.clear();
        e.stream.push_str("order-");
        push_u64(&mut e.stream, self.next_number);
        self.next_number += 1;
        let cust = &self.customers[c];
        let (region, currency) = REGIONS[cust.region];
        let d = &mut self.data;
        d.clear();
        d.push_str(r#"{"customer":""#);
        d.push_str(&cust.stream);
        d.push_str(r#"","currency":""#);
        d.push_str(currency);
        d.push_str(r#""}"#);
        e.version = 1;
        set(&mut e.event_type, "OrderPlaced");
        set_meta(&mut e.meta, &e.id, Some(&cause), &cust.stream);
        set_tags(
            &mut e.tags,
            &[("customer=", &cust.stream), ("region=", region)],
        );
        self.orders.push(Order {
            stream: e.stream.clone(),
            version: 1,
            customer: c,
            correlation: e.id.clone(),
            last_id: e.id.clone(),
            items: Vec::new(),
            paid: false,
        });
    }

    /// The next event of order `o` (an index into the open orders), which is removed once
    /// shipped or cancelled.
    fn advance(&mut self, o: usize, e: &mut RecordedEvent) {
        self.id_into(&mut e.id);
        let roll = self.rng.below(100);
        let Shop {
            rng,
            orders,
            customers,
            data: d,
            ..
        } = self;
        let order = &mut orders[o];
        let customer = &customers[order.customer];
        let (region, currency) = REGIONS[customer.region];
        d.clear();
        let (event_type, actor, sku, done) = if order.paid {
            let carrier = *rng.pick(CARRIERS);
            let tracking = rng.next_u64() % 1_000_000_000_000;
            d.push_str(r#"{"carrier":""#);
            d.push_str(carrier);
            d.push_str(r#"","tracking":""#);
            d.extend(carrier.chars().map(|ch| ch.to_ascii_uppercase()));
            d.push('-');
            push_padded(d, tracking, 12);
            d.push_str(r#"","items":"#);
            push_u64(d, order.items.iter().map(|i| i.1).sum::<u64>());
            d.push('}');
            ("OrderShipped", "warehouse", None, true)
        } else if roll < 4 {
            let reason = *rng.pick(CANCEL_REASONS);
            let actor = if reason == "customer-request" {
                customer.stream.as_str()
            } else {
                "support"
            };
            d.push_str(r#"{"reason":""#);
            d.push_str(reason);
            d.push_str(r#""}"#);
            ("OrderCancelled", actor, None, true)
        } else if roll < 14 && !order.items.is_empty() {
            let i = rng.below(order.items.len() as u64) as usize;
            let (p, qty) = order.items.remove(i);
            let sku = PRODUCTS[p].0;
            d.push_str(r#"{"sku":""#);
            d.push_str(sku);
            d.push_str(r#"","qty":"#);
            push_u64(d, qty);
            d.push('}');
            ("ItemRemoved", customer.stream.as_str(), Some(sku), false)
        } else if roll < 30 && !order.items.is_empty() {
            let total: u64 = order.items.iter().map(|&(p, q)| PRODUCTS[p].2 * q).sum();
            let method = *rng.pick(METHODS);
            d.push_str(r#"{"amount_cents":"#);
            push_u64(d, total);
            d.push_str(r#","currency":""#);
            d.push_str(currency);
            d.push_str(r#"","method":""#);
            d.push_str(method);
            d.push_str(r#""}"#);
            order.paid = true;
            ("PaymentReceived", "payments", None, false)
        } else {
            let p = rng.below(PRODUCTS.len() as u64) as usize;
            let qty = 1 + rng.below(3);
            let (sku, name, price) = PRODUCTS[p];
            order.items.push((p, qty));
            d.push_str(r#"{"sku":""#);
            d.push_str(sku);
            d.push_str(r#"","name":""#);
            d.push_str(name);
            d.push_str(r#"","qty":"#);
            push_u64(d, qty);
            d.push_str(r#","price_cents":"#);
            push_u64(d, price);
            d.push_str(r#","currency":""#);
            d.push_str(currency);
            d.push_str(r#""}"#);
            ("ItemAdded", customer.stream.as_str(), Some(sku), false)
        };
        order.version += 1;
        set(&mut e.stream, &order.stream);
        e.version = order.version;
        set(&mut e.event_type, event_type);
        set_meta(&mut e.meta, &order.correlation, Some(&order.last_id), actor);
        let tags = [
            ("customer=", customer.stream.as_str()),
            ("region=", region),
            ("sku=", sku.unwrap_or_default()),
        ];
        set_tags(&mut e.tags, &tags[..if sku.is_some() { 3 } else { 2 }]);
        set(&mut order.last_id, &e.id);
        if done {
            orders.swap_remove(o);
        }
    }
}

/// Writes `text` over `out`, keeping its buffer.
fn set(out: &mut String, text: &str) {
    out.clear();
    out.push_str(text);
}

/// Writes `value` in decimal.
fn push_u64(out: &mut String, value: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    let mut v = value;
    loop {
        i -= 1;
        digits[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.extend(digits[i..].iter().map(|&d| char::from(d)));
}

/// Writes `value` in decimal, zero-padded to `width` digits.
fn push_padded(out: &mut String, value: u64, width: usize) {
    let mut n = 1;
    let mut v = value / 10;
    while v > 0 {
        n += 1;
        v /= 10;
    }
    out.extend(std::iter::repeat_n('0', width.saturating_sub(n)));
    push_u64(out, value);
}

/// Writes the low `digits` hex digits of `value`, lowercase.
fn push_hex(out: &mut String, value: u64, digits: u32) {
    for i in (0..digits).rev() {
        let nibble = (value >> (4 * i)) & 0xf;
        out.push(char::from(b"0123456789abcdef"[nibble as usize]));
    }
}

/// Writes the metadata every event carries over `meta`, reusing its keys and values.
fn set_meta(
    meta: &mut Map<String, Value>,
    correlation: &str,
    causation: Option<&str>,
    actor: &str,
) {
    fn put(meta: &mut Map<String, Value>, key: &str, text: &str) {
        match meta.get_mut(key) {
            Some(Value::String(s)) => set(s, text),
            _ => {
                meta.insert(key.to_owned(), Value::String(text.to_owned()));
            }
        }
    }
    put(meta, "correlation_id", correlation);
    match causation {
        Some(c) => put(meta, "causation_id", c),
        None => {
            meta.remove("causation_id");
        }
    }
    put(meta, "actor", actor);
}

/// Writes the tags `prefix + value` over `tags`, reusing its strings.
fn set_tags(tags: &mut Vec<String>, parts: &[(&str, &str)]) {
    tags.resize_with(parts.len(), String::new);
    for (tag, (prefix, value)) in tags.iter_mut().zip(parts) {
        tag.clear();
        tag.push_str(prefix);
        tag.push_str(value);
    }
}

impl Iterator for Shop {
    type Item = RecordedEvent;

    fn next(&mut self) -> Option<RecordedEvent> {
        let mut e = blank_event();
        self.next_into(&mut e).then_some(e)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = usize::try_from(self.plan.events - self.made).unwrap_or(usize::MAX);
        (left, Some(left))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(seed: u64) -> Plan {
        Plan {
            events: 5000,
            seed,
            customers: 100,
            first_number: 0,
            start: 1_767_225_600_000_000,
            span: 30 * 86_400_000_000,
        }
    }

    #[test]
    fn the_same_seed_makes_the_same_events() {
        let a: Vec<String> = Shop::new(plan(7)).map(|e| e.to_json()).collect();
        let b: Vec<String> = Shop::new(plan(7)).map(|e| e.to_json()).collect();
        let c: Vec<String> = Shop::new(plan(8)).map(|e| e.to_json()).collect();
        assert_eq!(a.len(), 5000);
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn an_event_made_over_another_is_the_event_made_fresh() {
        let fresh: Vec<String> = Shop::new(plan(9)).map(|e| e.to_json()).collect();
        let mut shop = Shop::new(plan(9));
        let mut e = blank_event();
        let mut reused = Vec::new();
        while shop.next_into(&mut e) {
            reused.push(e.to_json());
        }
        assert_eq!(reused.len(), fresh.len());
        // Nothing of the event before stays behind: a registration after an order has no
        // causation_id, an event without a sku tag after one with has two tags.
        for (i, (a, b)) in reused.iter().zip(&fresh).enumerate() {
            assert_eq!(a, b, "event {i}");
        }
        assert!(!shop.next_into(&mut e), "the plan's events are all made");
        let follows = |prev: &str, next: &str| {
            reused
                .windows(2)
                .any(|w| w[0].contains(prev) && w[1].contains(next))
        };
        assert!(follows("causation_id", r#""type":"CustomerRegistered""#));
        assert!(follows("sku=", r#""type":"OrderPlaced""#));
    }

    #[test]
    fn events_are_importable_and_span_the_period() {
        let events: Vec<RecordedEvent> = Shop::new(plan(1)).collect();
        eventfile::backend::check_import(&events).expect("a valid import");
        let p = plan(1);
        assert!(events[0].time >= p.start);
        let last = events.last().unwrap().time;
        assert!(last <= p.start + p.span && last > p.start + p.span * 9 / 10);
        let types: std::collections::BTreeSet<&str> =
            events.iter().map(|e| e.event_type.as_str()).collect();
        for t in [
            "CustomerRegistered",
            "OrderPlaced",
            "ItemAdded",
            "ItemRemoved",
            "PaymentReceived",
            "OrderCancelled",
            "OrderShipped",
        ] {
            assert!(types.contains(t), "no {t} in {types:?}");
        }
        // Every event but a registration names the event it follows from.
        let ids: std::collections::HashSet<&str> = events.iter().map(|e| e.id.as_str()).collect();
        for e in &events {
            if let Some(c) = e.meta.get("causation_id").and_then(Value::as_str) {
                assert!(ids.contains(c), "{} is caused by an unknown {c}", e.id);
            } else {
                assert_eq!(e.event_type, "CustomerRegistered");
            }
        }
    }

    /// Before, customers were numbered up front, `--customers` of them from the head on: with
    /// more customers than events written, the next run's numbers (from the new head) named
    /// customers the first had registered, and its import was refused at their version 1.
    #[test]
    fn a_run_with_more_customers_than_events_leaves_the_next_run_new_names() {
        let mut first = plan(7);
        first.events = 1000;
        first.customers = 2000;
        let first: Vec<RecordedEvent> = Shop::new(first).collect();
        let mut later = plan(8);
        later.events = 1000;
        later.customers = 2000;
        later.first_number = first.len() as u64;
        let streams: std::collections::HashSet<&str> =
            first.iter().map(|e| e.stream.as_str()).collect();
        let second: Vec<RecordedEvent> = Shop::new(later).collect();
        let reused: Vec<&str> = second
            .iter()
            .map(|e| e.stream.as_str())
            .filter(|s| streams.contains(s))
            .collect();
        assert!(reused.is_empty(), "named again: {reused:?}");
    }

    #[test]
    fn a_later_run_uses_new_streams_and_ids() {
        let first: Vec<RecordedEvent> = Shop::new(plan(7)).collect();
        let mut later = plan(7);
        later.first_number = 5000;
        let second: Vec<RecordedEvent> = Shop::new(later).collect();
        let streams: std::collections::HashSet<&str> =
            first.iter().map(|e| e.stream.as_str()).collect();
        assert!(second.iter().all(|e| !streams.contains(e.stream.as_str())));
        assert_ne!(first[0].id, second[0].id);
    }
}
