//! `shop menu`: the same commands from a small menu on the terminal. Reads choices and their
//! fields line by line from stdin (so it also runs from a pipe); a refused command or a bad
//! field is reported and the menu shown again; end of input or `q` ends it.

use std::io::{BufRead, Write};

use eventfile_shop::order::Cents;

use crate::args::{self, Command};
use crate::{AnyShop, Failure, commands};

const MENU: &str = "\
 1  place an order            6  one order (read model)
 2  add an item               7  raw events
 3  pay                       8  catch the projections up
 4  show an order (write)     9  rebuild the read model
 5  list orders (read model) 10  projection status
 q  quit";

/// Runs the menu until `q` or the end of `input`.
pub fn run(shop: &AnyShop, input: &mut dyn BufRead, out: &mut dyn Write) -> Result<(), Failure> {
    writeln!(out, "shop menu (read model {})", shop.read_db().display())?;
    loop {
        writeln!(out, "\n{MENU}")?;
        let Some(choice) = ask(input, out, "choice")? else {
            return Ok(());
        };
        let command = match read_command(choice.as_str(), input, out) {
            Ok(Some(c)) => c,
            Ok(None) => return Ok(()),
            Err(Failure::Usage(msg)) => {
                writeln!(out, "! {msg}")?;
                continue;
            }
            Err(e) => return Err(e),
        };
        let result = match command {
            Command::Rebuild => commands::rebuild(shop),
            c => commands::run(shop, &c, out),
        };
        match result {
            Ok(()) => {}
            Err(Failure::Shop(e)) => writeln!(out, "! {e}")?,
            Err(Failure::Other(msg) | Failure::Usage(msg)) => writeln!(out, "! {msg}")?,
            Err(Failure::ClosedPipe) => return Err(Failure::ClosedPipe),
        }
    }
}

/// The command a choice names, with its fields asked for; `None` at the end of input or on `q`.
fn read_command(
    choice: &str,
    input: &mut dyn BufRead,
    out: &mut dyn Write,
) -> Result<Option<Command>, Failure> {
    macro_rules! field {
        ($prompt:expr, $parse:expr) => {
            match ask(input, out, $prompt)? {
                None => return Ok(None),
                Some(text) => $parse(text.as_str()).map_err(Failure::Usage)?,
            }
        };
    }
    let order = |s: &str| args::order_id(s);
    let text = |s: &str| Ok::<_, String>(s.to_owned());
    let qty = |s: &str| {
        s.parse::<u32>()
            .map_err(|_| format!("`{s}` is not a quantity"))
    };
    let money = |s: &str| s.parse::<Cents>();
    Ok(Some(match choice {
        "1" => Command::Place {
            order: field!("order id", order),
            customer: field!("customer", text),
        },
        "2" => Command::Add {
            order: field!("order id", order),
            sku: field!("sku", args::sku),
            qty: field!("quantity", qty),
            price: field!("unit price", money),
        },
        "3" => Command::Pay {
            order: field!("order id", order),
            amount: field!("amount", money),
        },
        "4" => Command::Show {
            order: field!("order id", order),
        },
        "5" => Command::Orders,
        "6" => Command::Order {
            order: field!("order id", order),
        },
        "7" => {
            let id = field!("order id (empty: all)", text);
            Command::Events {
                order: if id.is_empty() {
                    None
                } else {
                    Some(order(&id).map_err(Failure::Usage)?)
                },
            }
        }
        "8" => Command::Project {
            follow: false,
            batch: 100,
        },
        "9" => Command::Rebuild,
        "10" => Command::Status,
        "q" | "quit" => return Ok(None),
        other => return Err(Failure::Usage(format!("no choice `{other}`"))),
    }))
}

/// Prints `prompt`, reads a line; `None` at the end of input.
fn ask(
    input: &mut dyn BufRead,
    out: &mut dyn Write,
    prompt: &str,
) -> Result<Option<String>, Failure> {
    write!(out, "{prompt}> ")?;
    out.flush()?;
    let mut line = String::new();
    if input.read_line(&mut line)? == 0 {
        writeln!(out)?;
        return Ok(None);
    }
    Ok(Some(line.trim().to_owned()))
}
