//! The stores every case runs on, and an order aggregate to run them with.

use eventfile::aggregate::{Aggregate, DomainEvent, VariantEvents};
use eventfile::{EventStore, MemoryStore, Store};
use serde::{Deserialize, Serialize};

/// A store of each kind, with what it needs kept alive.
pub struct Backend {
    pub name: &'static str,
    pub store: Box<dyn EventStore>,
    pub dir: Option<tempfile::TempDir>,
}

impl Backend {
    /// The file store reopened (the memory store has nothing to reopen: `None`).
    pub fn reopen(&mut self) -> bool {
        let Some(dir) = &self.dir else {
            return false;
        };
        // The writer's lock goes with the old handle, before the new one takes it.
        self.store = Box::new(MemoryStore::new());
        self.store = Box::new(Store::open(dir.path()).expect("reopen"));
        true
    }
}

/// A fresh, empty store of each kind.
pub fn backends() -> Vec<Backend> {
    let dir = tempfile::tempdir().expect("temp dir");
    vec![
        Backend {
            name: "memory",
            store: Box::new(MemoryStore::new()),
            dir: None,
        },
        Backend {
            name: "file",
            store: Box::new(Store::open(dir.path()).expect("open")),
            dir: Some(dir),
        },
    ]
}

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct Order {
    pub customer: Option<String>,
    pub items: Vec<(String, u32)>,
    pub paid: u64,
    pub cancelled: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum OrderEvent {
    Placed { customer: String },
    ItemAdded { sku: String, quantity: u32 },
    Paid { amount: u64 },
    Cancelled,
}

impl VariantEvents for OrderEvent {}

/// `ItemAdded` is at schema 2 (`qty` became `quantity`); the others at 1.
pub fn item_added_schema(event_type: &str) -> u32 {
    if event_type == "ItemAdded" { 2 } else { 1 }
}

pub enum Command {
    Place(String),
    Add(String, u32),
    Pay(u64),
    Cancel,
    /// Pays after calling the hook (which may change the order behind the decision's back).
    PayRacing(u64, std::rc::Rc<dyn Fn()>),
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum Refused {
    #[error("the order is already placed")]
    AlreadyPlaced,
    #[error("the order is not placed")]
    NotPlaced,
    #[error("the order is cancelled")]
    Cancelled,
}

impl Aggregate for Order {
    const CATEGORY: &'static str = "order";
    type Event = Versioned;
    type Command = Command;
    type Error = Refused;

    fn apply(&mut self, event: &Versioned) -> Result<(), Refused> {
        match &event.0 {
            OrderEvent::Placed { customer } => {
                if self.customer.is_some() {
                    return Err(Refused::AlreadyPlaced);
                }
                self.customer = Some(customer.clone());
            }
            other => {
                if self.customer.is_none() {
                    return Err(Refused::NotPlaced);
                }
                match other {
                    OrderEvent::ItemAdded { sku, quantity } => {
                        self.items.push((sku.clone(), *quantity))
                    }
                    OrderEvent::Paid { amount } => self.paid += amount,
                    OrderEvent::Cancelled => self.cancelled = true,
                    OrderEvent::Placed { .. } => unreachable!("matched above"),
                }
            }
        }
        Ok(())
    }

    fn decide(&self, command: &Command) -> Result<Vec<Versioned>, Refused> {
        if self.cancelled {
            return Err(Refused::Cancelled);
        }
        let event = match command {
            Command::Place(_) if self.customer.is_some() => return Err(Refused::AlreadyPlaced),
            Command::Place(c) => OrderEvent::Placed {
                customer: c.clone(),
            },
            _ if self.customer.is_none() => return Err(Refused::NotPlaced),
            Command::Add(sku, quantity) => OrderEvent::ItemAdded {
                sku: sku.clone(),
                quantity: *quantity,
            },
            Command::Pay(amount) => OrderEvent::Paid { amount: *amount },
            Command::PayRacing(amount, hook) => {
                hook();
                OrderEvent::Paid { amount: *amount }
            }
            Command::Cancel => OrderEvent::Cancelled,
        };
        Ok(vec![Versioned(event)])
    }
}

/// The order's events with `ItemAdded` at schema 2: the variant convention, plus a schema
/// version.
#[derive(Debug, Clone, PartialEq)]
pub struct Versioned(pub OrderEvent);

impl DomainEvent for Versioned {
    fn encode(&self) -> eventfile::Result<eventfile::NewEvent> {
        self.0.encode()
    }
    fn decode(event_type: &str, data: &serde_json::value::RawValue) -> eventfile::Result<Self> {
        OrderEvent::decode(event_type, data).map(Versioned)
    }
    fn schema_version(event_type: &str) -> u32 {
        item_added_schema(event_type)
    }
}
