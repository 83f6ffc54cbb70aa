//! The order aggregate: its events, the commands it takes, the rules that refuse them, and
//! money as whole cents.
//!
//! An order is kept in stream `order-{id}`. It is placed for a customer, takes items while
//! nothing has been paid, and is paid in one or more payments that never exceed what is owed;
//! the payment that settles it is followed by `OrderPaid`. This module decides; it never
//! touches a store (the [`crate::Shop`] runs commands through a repository).

use std::fmt;

use eventfile::aggregate::{Aggregate, VariantEvents};
use serde::{Deserialize, Serialize};

/// An amount of money in cents. Printed and parsed as `12.50`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Cents(pub u64);

impl fmt::Display for Cents {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:02}", self.0 / 100, self.0 % 100)
    }
}

impl std::str::FromStr for Cents {
    type Err = String;

    /// `12`, `12.5` or `12.50`: at most two decimals, no sign.
    fn from_str(s: &str) -> Result<Cents, String> {
        let bad = || format!("`{s}` is not an amount such as 12 or 12.50");
        let (units, cents) = s.split_once('.').unwrap_or((s, ""));
        let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
        if !digits(units) || (s.contains('.') && !digits(cents)) || cents.len() > 2 {
            return Err(bad());
        }
        let units: u64 = units.parse().map_err(|_| bad())?;
        let cents: u64 = match cents.len() {
            0 => 0,
            1 => cents.parse::<u64>().map_err(|_| bad())? * 10,
            _ => cents.parse().map_err(|_| bad())?,
        };
        units
            .checked_mul(100)
            .and_then(|c| c.checked_add(cents))
            .map(Cents)
            .ok_or_else(|| format!("`{s}` is too large"))
    }
}

/// One line of an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Line {
    /// The product.
    pub sku: String,
    /// How many.
    pub quantity: u32,
    /// The price of one.
    pub unit_price: Cents,
}

/// What happened to an order. The variant's name is the event type in the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum OrderEvent {
    /// The order was placed for a customer.
    OrderPlaced {
        /// Who ordered.
        customer: String,
    },
    /// An item was added.
    ItemAdded {
        /// The product.
        sku: String,
        /// How many.
        quantity: u32,
        /// The price of one.
        unit_price: Cents,
    },
    /// A payment was received.
    PaymentReceived {
        /// How much.
        amount: Cents,
    },
    /// The order is paid in full.
    OrderPaid,
}

impl VariantEvents for OrderEvent {}

/// What an order is asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrderCommand {
    /// Place the order for a customer.
    Place {
        /// Who orders.
        customer: String,
    },
    /// Add an item.
    AddItem(Line),
    /// Pay an amount.
    Pay {
        /// How much.
        amount: Cents,
    },
}

/// Why an order refused a command (or cannot take an event of its history).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The order was placed already.
    #[error("the order was placed already")]
    AlreadyPlaced,
    /// The order has not been placed.
    #[error("the order has not been placed")]
    NotPlaced,
    /// A customer's name must not be empty.
    #[error("the customer's name is empty")]
    NoCustomer,
    /// A quantity of 0.
    #[error("the quantity must be at least 1")]
    NoQuantity,
    /// Items cannot be added once payment has started.
    #[error("items cannot be added: {paid} has been paid")]
    PaymentStarted {
        /// Paid so far.
        paid: Cents,
    },
    /// Nothing is owed.
    #[error("nothing is owed (total {total}, paid {paid})")]
    NothingOwed {
        /// The order's total.
        total: Cents,
        /// Paid so far.
        paid: Cents,
    },
    /// A payment of 0.
    #[error("a payment must be more than 0.00")]
    NoAmount,
    /// A payment larger than what is owed.
    #[error("{amount} is more than the {owed} owed")]
    Overpaid {
        /// The payment.
        amount: Cents,
        /// What is owed.
        owed: Cents,
    },
    /// An amount past what cents in 64 bits hold.
    #[error("the amount is too large")]
    TooLarge,
}

/// Where an order is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// Not placed (no such order).
    #[default]
    New,
    /// Placed, nothing paid.
    Placed,
    /// Partly paid.
    PartPaid,
    /// Paid in full.
    Paid,
}

impl Status {
    /// Its name, as the read model keeps it.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::New => "new",
            Status::Placed => "placed",
            Status::PartPaid => "part-paid",
            Status::Paid => "paid",
        }
    }
}

/// An order's state, as the write side rebuilds it from its events (and snapshots keep it).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    /// Who ordered (`None`: not placed).
    pub customer: Option<String>,
    /// Its lines, in the order they were added.
    pub lines: Vec<Line>,
    /// The sum of the lines.
    pub total: Cents,
    /// Paid so far.
    pub paid: Cents,
    /// Where it is.
    pub status: Status,
}

impl Order {
    /// What is still owed.
    pub fn owed(&self) -> Cents {
        Cents(self.total.0 - self.paid.0)
    }
}

/// `quantity × unit_price`, or [`Refusal::TooLarge`].
pub fn line_amount(quantity: u32, unit_price: Cents) -> Result<Cents, Refusal> {
    unit_price
        .0
        .checked_mul(u64::from(quantity))
        .map(Cents)
        .ok_or(Refusal::TooLarge)
}

impl Aggregate for Order {
    const CATEGORY: &'static str = "order";
    type Event = OrderEvent;
    type Command = OrderCommand;
    type Error = Refusal;

    fn apply(&mut self, event: &OrderEvent) -> Result<(), Refusal> {
        match event {
            OrderEvent::OrderPlaced { customer } => {
                if self.customer.is_some() {
                    return Err(Refusal::AlreadyPlaced);
                }
                self.customer = Some(customer.clone());
                self.status = Status::Placed;
            }
            OrderEvent::ItemAdded {
                sku,
                quantity,
                unit_price,
            } => {
                self.placed()?;
                let amount = line_amount(*quantity, *unit_price)?;
                self.total = Cents(
                    self.total
                        .0
                        .checked_add(amount.0)
                        .ok_or(Refusal::TooLarge)?,
                );
                self.lines.push(Line {
                    sku: sku.clone(),
                    quantity: *quantity,
                    unit_price: *unit_price,
                });
            }
            OrderEvent::PaymentReceived { amount } => {
                self.placed()?;
                if *amount > self.owed() {
                    return Err(Refusal::Overpaid {
                        amount: *amount,
                        owed: self.owed(),
                    });
                }
                self.paid = Cents(self.paid.0 + amount.0);
                self.status = Status::PartPaid;
            }
            OrderEvent::OrderPaid => {
                self.placed()?;
                if self.owed() != Cents(0) {
                    return Err(Refusal::Overpaid {
                        amount: Cents(0),
                        owed: self.owed(),
                    });
                }
                self.status = Status::Paid;
            }
        }
        Ok(())
    }

    fn decide(&self, command: &OrderCommand) -> Result<Vec<OrderEvent>, Refusal> {
        match command {
            OrderCommand::Place { customer } => {
                if self.customer.is_some() {
                    return Err(Refusal::AlreadyPlaced);
                }
                if customer.trim().is_empty() {
                    return Err(Refusal::NoCustomer);
                }
                Ok(vec![OrderEvent::OrderPlaced {
                    customer: customer.clone(),
                }])
            }
            OrderCommand::AddItem(line) => {
                self.placed()?;
                if self.paid > Cents(0) {
                    return Err(Refusal::PaymentStarted { paid: self.paid });
                }
                if line.quantity == 0 {
                    return Err(Refusal::NoQuantity);
                }
                let amount = line_amount(line.quantity, line.unit_price)?;
                self.total
                    .0
                    .checked_add(amount.0)
                    .ok_or(Refusal::TooLarge)?;
                Ok(vec![OrderEvent::ItemAdded {
                    sku: line.sku.clone(),
                    quantity: line.quantity,
                    unit_price: line.unit_price,
                }])
            }
            OrderCommand::Pay { amount } => {
                self.placed()?;
                let owed = self.owed();
                if owed == Cents(0) {
                    return Err(Refusal::NothingOwed {
                        total: self.total,
                        paid: self.paid,
                    });
                }
                if *amount == Cents(0) {
                    return Err(Refusal::NoAmount);
                }
                if *amount > owed {
                    return Err(Refusal::Overpaid {
                        amount: *amount,
                        owed,
                    });
                }
                let mut events = vec![OrderEvent::PaymentReceived { amount: *amount }];
                if *amount == owed {
                    events.push(OrderEvent::OrderPaid);
                }
                Ok(events)
            }
        }
    }
}

impl Order {
    fn placed(&self) -> Result<(), Refusal> {
        match self.customer {
            Some(_) => Ok(()),
            None => Err(Refusal::NotPlaced),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(order: &mut Order, command: OrderCommand) -> Result<Vec<OrderEvent>, Refusal> {
        let events = order.decide(&command)?;
        for e in &events {
            order.apply(e).unwrap();
        }
        Ok(events)
    }

    fn add(sku: &str, quantity: u32, cents: u64) -> OrderCommand {
        OrderCommand::AddItem(Line {
            sku: sku.into(),
            quantity,
            unit_price: Cents(cents),
        })
    }

    #[test]
    fn an_order_is_placed_filled_and_paid_in_parts() {
        let mut o = Order::default();
        let pay = |n| OrderCommand::Pay { amount: Cents(n) };
        assert_eq!(run(&mut o, pay(1)), Err(Refusal::NotPlaced));
        assert_eq!(run(&mut o, add("x", 1, 1)), Err(Refusal::NotPlaced));
        let place = OrderCommand::Place {
            customer: "ann".into(),
        };
        run(&mut o, place.clone()).unwrap();
        assert_eq!(run(&mut o, place), Err(Refusal::AlreadyPlaced));
        assert!(matches!(
            run(&mut o, pay(1)),
            Err(Refusal::NothingOwed { .. })
        ));
        assert_eq!(run(&mut o, add("x", 0, 1)), Err(Refusal::NoQuantity));
        run(&mut o, add("tea", 2, 350)).unwrap();
        run(&mut o, add("cup", 1, 1200)).unwrap();
        assert_eq!(o.total, Cents(1900));
        assert_eq!(
            run(&mut o, pay(2000)),
            Err(Refusal::Overpaid {
                amount: Cents(2000),
                owed: Cents(1900)
            })
        );
        assert_eq!(run(&mut o, pay(0)), Err(Refusal::NoAmount));
        assert_eq!(run(&mut o, pay(900)).unwrap().len(), 1);
        assert_eq!(o.status, Status::PartPaid);
        assert_eq!(
            run(&mut o, add("x", 1, 1)),
            Err(Refusal::PaymentStarted { paid: Cents(900) })
        );
        assert_eq!(
            run(&mut o, pay(1000)).unwrap(),
            [
                OrderEvent::PaymentReceived {
                    amount: Cents(1000)
                },
                OrderEvent::OrderPaid
            ]
        );
        assert_eq!((o.status, o.owed()), (Status::Paid, Cents(0)));
        assert!(matches!(
            run(&mut o, pay(1)),
            Err(Refusal::NothingOwed { .. })
        ));
        assert_eq!(
            run(&mut o, add("x", u32::MAX, u64::MAX / 2)),
            Err(Refusal::PaymentStarted { paid: Cents(1900) })
        );
    }

    #[test]
    fn amounts_parse_as_units_and_cents() {
        for (text, cents) in [("12", 1200), ("12.5", 1250), ("12.05", 1205), ("0.99", 99)] {
            assert_eq!(text.parse::<Cents>(), Ok(Cents(cents)), "{text}");
            assert_eq!(Cents(cents).to_string().parse::<Cents>(), Ok(Cents(cents)));
        }
        for bad in [
            "",
            ".5",
            "1.",
            "1.234",
            "-1",
            "1e3",
            "x",
            "99999999999999999999",
        ] {
            assert!(bad.parse::<Cents>().is_err(), "{bad}");
        }
        assert_eq!(Cents(1205).to_string(), "12.05");
    }
}
