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
    stream: String,
    name: String,
    region: usize,
    /// Its `CustomerRegistered` event id, once it has registered.
    registered: Option<String>,
}

/// The shop: an iterator of the events a [`Plan`] names, in order.
pub struct Shop {
    plan: Plan,
    rng: Rng,
    made: u64,
    time: Micros,
    next_number: u64,
    customers: Vec<Customer>,
    orders: Vec<Order>,
}

impl Shop {
    pub fn new(plan: Plan) -> Shop {
        // The run's stream numbering is mixed into the seed, so a second run with the same seed
        // into the same store makes new ids rather than ones the store would skip as imported.
        let mut rng = Rng::new(plan.seed ^ plan.first_number.wrapping_mul(0xa076_1d64_78bd_642f));
        let n = plan.customers.max(1);
        let customers = (0..n)
            .map(|i| Customer {
                stream: format!("customer-{}", plan.first_number + 1 + i),
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
        }
    }

    /// A UUIDv7-shaped id (the time's milliseconds, then random bits from the seed).
    fn id(&mut self) -> String {
        let ms = (self.time / 1000).max(0) as u64 & 0xffff_ffff_ffff;
        let a = self.rng.next_u64();
        let b = self.rng.next_u64();
        format!(
            "{:08x}-{:04x}-7{:03x}-{:04x}-{:012x}",
            ms >> 16,
            ms & 0xffff,
            a & 0xfff,
            0x8000 | ((a >> 12) & 0x3fff),
            b & 0xffff_ffff_ffff
        )
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

    fn event(
        &mut self,
        (stream, version): (String, u64),
        event_type: &str,
        data: String,
        meta: (&str, Option<&str>, &str),
        tags: Vec<String>,
        id: String,
    ) -> RecordedEvent {
        let (correlation, causation, actor) = meta;
        let mut m = Map::new();
        m.insert("correlation_id".into(), Value::String(correlation.into()));
        if let Some(c) = causation {
            m.insert("causation_id".into(), Value::String(c.into()));
        }
        m.insert("actor".into(), Value::String(actor.into()));
        RecordedEvent {
            seq: 0,
            id,
            stream,
            version,
            event_type: event_type.into(),
            time: self.time,
            data: RawValue::from_string(data).expect("the shop writes valid JSON"),
            meta: m,
            tags,
        }
    }

    fn customer_tags(&self, c: usize) -> Vec<String> {
        let c = &self.customers[c];
        vec![
            format!("customer={}", c.stream),
            format!("region={}", REGIONS[c.region].0),
        ]
    }

    fn register(&mut self, c: usize) -> RecordedEvent {
        let id = self.id();
        let tags = self.customer_tags(c);
        let cust = &self.customers[c];
        let email = format!(
            "{}.{}@example.com",
            cust.name.replace(' ', ".").to_lowercase(),
            &cust.stream["customer-".len()..]
        );
        let data = format!(
            r#"{{"name":"{}","email":"{}","region":"{}"}}"#,
            cust.name, email, REGIONS[cust.region].0
        );
        let stream = cust.stream.clone();
        self.customers[c].registered = Some(id.clone());
        let actor = stream.clone();
        self.event(
            (stream, 1),
            "CustomerRegistered",
            data,
            (&id, None, &actor),
            tags,
            id.clone(),
        )
    }

    fn place(&mut self) -> RecordedEvent {
        let c = self.rng.below(self.customers.len() as u64) as usize;
        if self.customers[c].registered.is_none() {
            return self.register(c);
        }
        let id = self.id();
        let stream = format!("order-{}", self.next_number);
        self.next_number += 1;
        let cust = &self.customers[c];
        let cause = cust.registered.clone();
        let actor = cust.stream.clone();
        let data = format!(
            r#"{{"customer":"{}","currency":"{}"}}"#,
            cust.stream, REGIONS[cust.region].1
        );
        let tags = self.customer_tags(c);
        self.orders.push(Order {
            stream: stream.clone(),
            version: 1,
            customer: c,
            correlation: id.clone(),
            last_id: id.clone(),
            items: Vec::new(),
            paid: false,
        });
        self.event(
            (stream, 1),
            "OrderPlaced",
            data,
            (&id, cause.as_deref(), &actor),
            tags,
            id.clone(),
        )
    }

    /// The next event of order `o` (an index into the open orders), which is removed once
    /// shipped or cancelled.
    fn advance(&mut self, o: usize) -> RecordedEvent {
        let id = self.id();
        let roll = self.rng.below(100);
        let order = &self.orders[o];
        let customer = &self.customers[order.customer];
        let currency = REGIONS[customer.region].1;
        let mut tags = self.customer_tags(order.customer);
        let (event_type, data, actor, done) = if order.paid {
            let carrier = *self.rng.pick(CARRIERS);
            let tracking = self.rng.next_u64() % 1_000_000_000_000;
            let data = format!(
                r#"{{"carrier":"{carrier}","tracking":"{}-{tracking:012}","items":{}}}"#,
                carrier.to_uppercase(),
                order.items.iter().map(|i| i.1).sum::<u64>()
            );
            ("OrderShipped", data, "warehouse".to_string(), true)
        } else if roll < 4 {
            let reason = *self.rng.pick(CANCEL_REASONS);
            let actor = if reason == "customer-request" {
                customer.stream.clone()
            } else {
                "support".to_string()
            };
            (
                "OrderCancelled",
                format!(r#"{{"reason":"{reason}"}}"#),
                actor,
                true,
            )
        } else if roll < 14 && !order.items.is_empty() {
            let i = self.rng.below(order.items.len() as u64) as usize;
            let (p, qty) = self.orders[o].items.remove(i);
            let order = &self.orders[o];
            let customer = &self.customers[order.customer];
            tags.push(format!("sku={}", PRODUCTS[p].0));
            let data = format!(r#"{{"sku":"{}","qty":{qty}}}"#, PRODUCTS[p].0);
            ("ItemRemoved", data, customer.stream.clone(), false)
        } else if roll < 30 && !order.items.is_empty() {
            let total: u64 = order.items.iter().map(|&(p, q)| PRODUCTS[p].2 * q).sum();
            let method = *self.rng.pick(METHODS);
            let data = format!(
                r#"{{"amount_cents":{total},"currency":"{currency}","method":"{method}"}}"#
            );
            self.orders[o].paid = true;
            ("PaymentReceived", data, "payments".to_string(), false)
        } else {
            let p = self.rng.below(PRODUCTS.len() as u64) as usize;
            let qty = 1 + self.rng.below(3);
            let (sku, name, price) = PRODUCTS[p];
            self.orders[o].items.push((p, qty));
            tags.push(format!("sku={sku}"));
            let data = format!(
                r#"{{"sku":"{sku}","name":"{name}","qty":{qty},"price_cents":{price},"currency":"{currency}"}}"#
            );
            let actor = self.customers[self.orders[o].customer].stream.clone();
            ("ItemAdded", data, actor, false)
        };
        let order = &mut self.orders[o];
        order.version += 1;
        let (stream, version) = (order.stream.clone(), order.version);
        let correlation = order.correlation.clone();
        let cause = std::mem::replace(&mut order.last_id, id.clone());
        if done {
            self.orders.swap_remove(o);
        }
        self.event(
            (stream, version),
            event_type,
            data,
            (&correlation, Some(&cause), &actor),
            tags,
            id,
        )
    }
}

impl Iterator for Shop {
    type Item = RecordedEvent;

    fn next(&mut self) -> Option<RecordedEvent> {
        if self.made >= self.plan.events {
            return None;
        }
        self.tick();
        let open = self.orders.len();
        let event = if open == 0 || (open < MAX_OPEN_ORDERS && self.rng.chance(18)) {
            self.place()
        } else {
            let o = self.rng.below(open as u64) as usize;
            self.advance(o)
        };
        self.made += 1;
        Some(event)
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
