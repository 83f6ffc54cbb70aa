//! `shop demo`: a scripted run that shows both sides. Orders are placed, filled and paid
//! through the write side, a command the order refuses is shown, the projections catch up, and
//! both read models are printed beside one order's raw events.
//!
//! Its order ids are new in the store (`1001`..., `2001`... on a second run), so that the demo
//! runs again on a store it ran on before.

use std::io::Write;

use eventfile::projection::ProjectionError;
use eventfile_shop::ShopError;
use eventfile_shop::order::Cents;

use crate::args::Command;
use crate::{AnyShop, Failure, commands};

/// Runs the demo, printing each command before what it printed.
pub fn run(shop: &AnyShop, out: &mut dyn Write) -> Result<(), Failure> {
    let run_no = (1u64..)
        .find(|r| matches!(shop.show(&format!("{r}001")), Err(ShopError::NotFound(_))))
        .unwrap_or(1);
    let id = |n: u64| format!("{run_no}{n:03}");
    let (a, b, c) = (id(1), id(2), id(3));
    let cents = |s: &str| s.parse::<Cents>().map_err(Failure::Other);
    writeln!(out, "# the write side: commands on order aggregates")?;
    let script = [
        Command::Place {
            order: a.clone(),
            customer: "ann".into(),
        },
        add(&a, "tea", 2, cents("3.50")?),
        add(&a, "cup", 1, cents("12.00")?),
        Command::Place {
            order: b.clone(),
            customer: "bob".into(),
        },
        add(&b, "coffee", 3, cents("4.20")?),
        Command::Pay {
            order: a.clone(),
            amount: cents("10.00")?,
        },
        Command::Pay {
            order: a.clone(),
            amount: cents("9.00")?,
        },
        Command::Place {
            order: c.clone(),
            customer: "cy".into(),
        },
        add(&c, "teapot", 1, cents("25.00")?),
        Command::Pay {
            order: c.clone(),
            amount: cents("5.00")?,
        },
    ];
    for command in &script {
        step(shop, command, out)?;
    }
    writeln!(out, "\n# commands the orders refuse (nothing is written)")?;
    let refused = [
        Command::Pay {
            order: b.clone(),
            amount: cents("50.00")?,
        },
        add(&c, "spoon", 2, cents("1.00")?),
        Command::Place {
            order: a.clone(),
            customer: "dan".into(),
        },
    ];
    for command in &refused {
        match step(shop, command, out) {
            Err(Failure::Shop(e @ ShopError::Refused { .. })) => writeln!(out, "refused: {e}")?,
            Err(e) => return Err(e),
            Ok(()) => {
                return Err(Failure::Other(
                    "the demo's refused command was accepted".into(),
                ));
            }
        }
    }
    writeln!(out, "\n# the write side loads an order from its events")?;
    step(shop, &Command::Show { order: a.clone() }, out)?;

    writeln!(
        out,
        "\n# the read side: both projections caught up into {}",
        shop.read_db().display()
    )?;
    writeln!(out, "$ shop project")?;
    match shop.catch_up() {
        Ok(_) => {}
        Err(
            e @ (ShopError::Foreign { .. }
            | ShopError::Projection(ProjectionError::AheadOfHead { .. })),
        ) => {
            writeln!(out, "({e}; rebuilding it for the demo)")?;
            commands::rebuild(shop)?;
        }
        Err(e) => return Err(e.into()),
    }
    step(shop, &Command::Orders, out)?;
    step(shop, &Command::Order { order: a.clone() }, out)?;
    writeln!(out, "\n# the raw events of order {a}")?;
    step(shop, &Command::Events { order: Some(a) }, out)?;
    writeln!(out, "\n# where the projections are")?;
    step(shop, &Command::Status, out)?;
    Ok(())
}

fn add(order: &str, sku: &str, qty: u32, price: Cents) -> Command {
    Command::Add {
        order: order.to_owned(),
        sku: sku.to_owned(),
        qty,
        price,
    }
}

/// Prints the command as it would be typed, then runs it.
fn step(shop: &AnyShop, command: &Command, out: &mut dyn Write) -> Result<(), Failure> {
    let line = match command {
        Command::Place { order, customer } => format!("place {order} {customer}"),
        Command::Add {
            order,
            sku,
            qty,
            price,
        } => format!("add {order} {sku} {qty} {price}"),
        Command::Pay { order, amount } => format!("pay {order} {amount}"),
        Command::Show { order } => format!("show {order}"),
        Command::Orders => "orders".into(),
        Command::Order { order } => format!("order {order}"),
        Command::Events { order } => format!("events {}", order.as_deref().unwrap_or("")),
        Command::Status => "status".into(),
        other => format!("{other:?}"),
    };
    writeln!(out, "$ shop {}", line.trim_end())?;
    commands::run(shop, command, out)
}
