//! What each command does and prints: the write side's commands and `show`, the read model's
//! queries (caught up first), the raw events, and the projector's catch-up, live following,
//! rebuild and status.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use eventfile::aggregate::Loaded;
use eventfile::projection::Stop;
use eventfile_shop::order::{Line, Order, OrderCommand, line_amount};
use eventfile_shop::read_model::{LineRow, SummaryRow};

use crate::args::Command;
use crate::{AnyShop, Failure};

/// Runs one command (all but `project --follow`, `demo` and `menu`), writing to `out`.
pub fn run(shop: &AnyShop, command: &Command, out: &mut dyn Write) -> Result<(), Failure> {
    match command {
        Command::Place { order, customer } => {
            let o = shop.execute(
                order,
                &OrderCommand::Place {
                    customer: customer.clone(),
                },
            )?;
            writeln!(out, "order {order} placed for {customer} (v{})", o.version)?;
        }
        Command::Add {
            order,
            sku,
            qty,
            price,
        } => {
            let line = Line {
                sku: sku.clone(),
                quantity: *qty,
                unit_price: *price,
            };
            let o = shop.execute(order, &OrderCommand::AddItem(line))?;
            writeln!(
                out,
                "order {order}: added {qty} x {sku} at {price}; total {} (v{})",
                o.state.total, o.version
            )?;
        }
        Command::Pay { order, amount } => {
            let o = shop.execute(order, &OrderCommand::Pay { amount: *amount })?;
            writeln!(
                out,
                "order {order}: paid {amount}; {} of {} paid, {} (v{})",
                o.state.paid,
                o.state.total,
                o.state.status.as_str(),
                o.version
            )?;
        }
        Command::Show { order } => print_loaded(out, &shop.show(order)?)?,
        Command::Orders => {
            catch_up(shop)?;
            print_orders(out, &shop.read_model()?.orders()?)?;
        }
        Command::Order { order } => {
            catch_up(shop)?;
            let Some((summary, lines)) = shop.read_model()?.order(order)? else {
                return Err(Failure::Other(format!(
                    "no order {order} in the read model {}",
                    shop.read_db().display()
                )));
            };
            print_order(out, &summary, &lines)?;
        }
        Command::Events { order } => {
            for event in shop.events(order.as_deref())? {
                writeln!(out, "{}", event?.to_json())?;
            }
        }
        Command::Project { .. } => {
            catch_up(shop)?;
            for s in shop.status()? {
                eprintln!("shop: {} at seq {}", s.name, s.position);
            }
        }
        Command::Rebuild => rebuild(shop)?,
        Command::Status => {
            for s in shop.status()? {
                writeln!(
                    out,
                    "{}",
                    serde_json::to_string(&s).map_err(|e| Failure::Other(e.to_string()))?
                )?;
            }
        }
        Command::Demo | Command::Menu => {
            return Err(Failure::Usage(
                "demo and menu do not run inside the menu".into(),
            ));
        }
    }
    Ok(())
}

/// Catches the projections up, or waits for the projector that holds the read model.
pub fn catch_up(shop: &AnyShop) -> Result<(), Failure> {
    if !shop.catch_up()? {
        eprintln!(
            "shop: warning: the projector running on {} has not reached the store's head yet; \
             showing the read model as it is",
            shop.read_db().display()
        );
    }
    Ok(())
}

/// Rebuilds both projections, with progress on stderr.
pub fn rebuild(shop: &AnyShop) -> Result<(), Failure> {
    shop.rebuild(|name, p| {
        eprintln!(
            "shop: rebuilding {name}: seq {} of {} ({} events)",
            p.position, p.head, p.handled
        );
    })?;
    eprintln!("shop: rebuilt {}", shop.read_db().display());
    Ok(())
}

/// `project --follow`: both projections follow the log until a signal raises `signalled`
/// (or a projection fails), then stop cleanly through [`Stop`].
pub fn follow(shop: &AnyShop, batch: u64, signalled: &AtomicBool) -> Result<(), Failure> {
    let stop = Stop::new();
    let batch = usize::try_from(batch).unwrap_or(usize::MAX);
    eprintln!(
        "shop: projecting into {}; Ctrl-C to stop",
        shop.read_db().display()
    );
    let result = std::thread::scope(|s| {
        s.spawn(|| {
            while !stop.is_stopped() {
                if signalled.load(Ordering::Relaxed) {
                    stop.stop();
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        });
        let result = shop.follow(&stop, batch);
        stop.stop();
        result
    });
    result?;
    for s in shop.status()? {
        eprintln!("shop: stopped; {} at seq {}", s.name, s.position);
    }
    Ok(())
}

/// A flag set by the first SIGINT or SIGTERM; a second one ends the process as the signal's
/// default action does.
pub fn stop_on_signals() -> Result<Arc<AtomicBool>, Failure> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    use signal_hook::flag;
    let stop = Arc::new(AtomicBool::new(false));
    let failed = |e: std::io::Error| Failure::Other(format!("installing a signal handler: {e}"));
    for signal in [SIGINT, SIGTERM] {
        // In this order: the default action is armed only by a signal that came before.
        flag::register_conditional_default(signal, Arc::clone(&stop)).map_err(failed)?;
        flag::register(signal, Arc::clone(&stop)).map_err(failed)?;
    }
    Ok(stop)
}

fn print_loaded(out: &mut dyn Write, o: &Loaded<Order>) -> std::io::Result<()> {
    let from = match o.snapshot {
        Some(v) => format!("snapshot at v{v} + {} events", o.replayed),
        None => format!("{} events", o.replayed),
    };
    writeln!(
        out,
        "order {} (write side: stream order-{} at v{}, loaded from {from})",
        o.id, o.id, o.version
    )?;
    let s = &o.state;
    writeln!(out, "  customer  {}", s.customer.as_deref().unwrap_or("-"))?;
    writeln!(out, "  status    {}", s.status.as_str())?;
    for (i, l) in s.lines.iter().enumerate() {
        let amount =
            line_amount(l.quantity, l.unit_price).map_or_else(|e| e.to_string(), |a| a.to_string());
        writeln!(
            out,
            "  line {:<3}  {} x {} at {} = {amount}",
            i + 1,
            l.quantity,
            l.sku,
            l.unit_price
        )?;
    }
    writeln!(out, "  total     {}", s.total)?;
    writeln!(out, "  paid      {}", s.paid)?;
    writeln!(out, "  owed      {}", s.owed())
}

/// The summary table.
pub fn print_orders(out: &mut dyn Write, rows: &[SummaryRow]) -> std::io::Result<()> {
    writeln!(
        out,
        "{:<12} {:<12} {:>5} {:>10} {:>10}  STATUS",
        "ORDER", "CUSTOMER", "ITEMS", "TOTAL", "PAID"
    )?;
    for r in rows {
        writeln!(
            out,
            "{:<12} {:<12} {:>5} {:>10} {:>10}  {}",
            r.order_id,
            r.customer,
            r.items,
            r.total.to_string(),
            r.paid.to_string(),
            r.status
        )?;
    }
    if rows.is_empty() {
        writeln!(out, "(no orders)")?;
    }
    Ok(())
}

/// One order and its lines.
pub fn print_order(out: &mut dyn Write, s: &SummaryRow, lines: &[LineRow]) -> std::io::Result<()> {
    writeln!(
        out,
        "order {} for {}: {} items, total {}, paid {}, {}",
        s.order_id, s.customer, s.items, s.total, s.paid, s.status
    )?;
    writeln!(
        out,
        "{:>4}  {:<16} {:>5} {:>10} {:>10}",
        "LINE", "SKU", "QTY", "PRICE", "AMOUNT"
    )?;
    for l in lines {
        writeln!(
            out,
            "{:>4}  {:<16} {:>5} {:>10} {:>10}",
            l.line,
            l.sku,
            l.quantity,
            l.unit_price.to_string(),
            l.amount.to_string()
        )?;
    }
    Ok(())
}
