//! `shop`: the command line of the example shop. Parses (args.rs), names the store the way the
//! eventfile tool does (`eventfile_connect`), runs the command (commands.rs), and turns the
//! outcome into an exit status: 0 done, 1 refused or failed, 2 a usage error. A closed stdout
//! (`shop events | head`) is success.

mod args;
mod commands;
mod demo;
mod menu;

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use clap::Parser;
use eventfile::EventStore;
use eventfile_connect::{Access, Location};
use eventfile_shop::{Shop, ShopError};

use crate::args::{Cli, Command};

/// The store when nothing names one: a file store in `./shop-data`.
const DEFAULT_STORE: &str = "./shop-data";

/// The shop of a command: any store, behind the trait.
pub type AnyShop = Shop<Box<dyn EventStore>>;

/// Why a command did not succeed.
#[derive(Debug)]
pub enum Failure {
    /// A malformed argument, URL or configuration file: exit 2.
    Usage(String),
    /// A refused command, a missing order, a store or read-model error: exit 1.
    Shop(ShopError),
    /// Anything else that went wrong: exit 1.
    Other(String),
    /// stdout's reader has gone: success.
    ClosedPipe,
}

impl From<ShopError> for Failure {
    fn from(e: ShopError) -> Failure {
        Failure::Shop(e)
    }
}

impl From<eventfile_shop::read_model::ReadModelError> for Failure {
    fn from(e: eventfile_shop::read_model::ReadModelError) -> Failure {
        Failure::Shop(e.into())
    }
}

impl From<eventfile::Error> for Failure {
    fn from(e: eventfile::Error) -> Failure {
        Failure::Shop(e.into())
    }
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Failure {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            Failure::ClosedPipe
        } else {
            Failure::Other(format!("writing output: {e}"))
        }
    }
}

/// Prints the library's warnings (e.g. a damaged snapshot skipped) on stderr.
struct StderrLog;

impl log::Log for StderrLog {
    fn enabled(&self, m: &log::Metadata<'_>) -> bool {
        m.level() <= log::Level::Warn
    }

    fn log(&self, r: &log::Record<'_>) {
        if self.enabled(r.metadata()) {
            eprintln!("shop: {}: {}", r.level().as_str().to_lowercase(), r.args());
        }
    }

    fn flush(&self) {}
}

fn main() -> ExitCode {
    static LOG: StderrLog = StderrLog;
    if log::set_logger(&LOG).is_ok() {
        log::set_max_level(log::LevelFilter::Warn);
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // --help and --version print on stdout and exit 0; usage errors exit 2.
            let _ = e.print();
            return ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2));
        }
    };
    match run(cli) {
        Ok(()) | Err(Failure::ClosedPipe) => ExitCode::SUCCESS,
        Err(Failure::Usage(msg)) => {
            eprintln!("shop: {msg}");
            ExitCode::from(2)
        }
        Err(Failure::Shop(e)) => {
            eprintln!("shop: {e}");
            ExitCode::from(1)
        }
        Err(Failure::Other(msg)) => {
            eprintln!("shop: {msg}");
            ExitCode::from(1)
        }
    }
}

fn run(cli: Cli) -> Result<(), Failure> {
    // Before the store is opened, so that a signal during a long catch-up is not lost.
    let signalled = match cli.command {
        Command::Project { follow: true, .. } => Some(commands::stop_on_signals()?),
        _ => None,
    };
    let shop = open(&cli)?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    match cli.command {
        Command::Project {
            follow: true,
            batch,
        } => {
            let signalled = signalled.unwrap_or_else(|| Arc::new(AtomicBool::new(false)));
            commands::follow(&shop, batch, &signalled)
        }
        Command::Demo => demo::run(&shop, &mut out),
        Command::Menu => menu::run(&shop, &mut std::io::stdin().lock(), &mut out),
        command => commands::run(&shop, &command, &mut out),
    }?;
    std::io::Write::flush(&mut out)?;
    Ok(())
}

/// Opens the store the command line names, and the shop over it. Commands that only read
/// open a file store read-only, so that they run beside a process writing it.
fn open(cli: &Cli) -> Result<AnyShop, Failure> {
    let usage = |e: eventfile::Error| match e.kind() {
        eventfile::ErrorKind::InvalidInput => Failure::Usage(e.to_string()),
        _ => Failure::Shop(e.into()),
    };
    let config = eventfile_connect::load_config(cli.config.as_deref()).map_err(usage)?;
    let location =
        eventfile_connect::resolve(cli.url.as_deref(), &config, Some(Path::new(DEFAULT_STORE)))
            .map_err(usage)?;
    let writes = matches!(
        cli.command,
        Command::Place { .. }
            | Command::Add { .. }
            | Command::Pay { .. }
            | Command::Demo
            | Command::Menu
    );
    let access = if writes {
        Access::ReadWrite
    } else {
        Access::ReadOnly
    };
    if let Location::File(dir) = &location
        && access == Access::ReadOnly
        && !dir.join("eventfile.json").exists()
    {
        // Create the store, then let go of it: a reader must not hold the writer's lock.
        drop(eventfile_connect::open_with(
            &location,
            &config,
            Access::ReadWrite,
        )?);
    }
    let store = eventfile_connect::open_with(&location, &config, access)?;
    Ok(Shop::new(store.boxed(), &cli.read_db, cli.snapshot_every))
}
