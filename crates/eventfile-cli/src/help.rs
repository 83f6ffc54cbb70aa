//! What the tool says about itself beyond its flags: an example under every command's
//! `--help`, shell completions and the man page, all made from the one clap definition.
//!
//! This module owns the examples (one table, so a new command without one fails a test) and
//! the generators; it never runs a command.

use std::io::Write;

use clap::CommandFactory;

use crate::Failure;
use crate::args::{Cli, CompletionShell};

/// Each command's example, shown after its `--help` as "Example:".
const EXAMPLES: &[(&str, &str)] = &[
    (
        "init",
        "eventfile --dir ./events init --segment-bytes 67108864",
    ),
    (
        "append",
        "eventfile append order-42 OrderPlaced '{\"customer\":\"ann\"}' --expect no-stream --tag region=eu",
    ),
    ("read", "eventfile read order-42 --from 3 --limit 10"),
    ("cat", "eventfile cat --from 1000 --limit 20 | jq .type"),
    (
        "query",
        "eventfile query --prefix order- --type OrderPaid --since 2026-11-01T00:00:00Z --limit 50",
    ),
    ("tail", "eventfile tail -f --type OrderPaid | jq ."),
    ("get", "eventfile get 0192e3c4-7b1a-7c00-8000-000000000001"),
    ("streams", "eventfile streams --prefix order- --limit 20"),
    ("types", "eventfile types --json | jq -r .type"),
    ("tags", "eventfile tags"),
    ("stats", "eventfile stats | jq '.events, .bytes'"),
    (
        "projections",
        "eventfile projections | jq 'select(.lag > 1000)'",
    ),
    ("reindex", "eventfile --dir ./events reindex"),
    ("verify", "eventfile --dir ./events verify || echo damaged"),
    (
        "snapshot",
        "eventfile snapshot save order-42 --version 12 '{\"paid\":true}'",
    ),
    ("delete", "eventfile delete order-42 --hard --expect 12"),
    ("truncate", "eventfile truncate order-42 --before 12"),
    (
        "retention",
        "eventfile retention --max-age 90d --max-events 1000000 --dry-run",
    ),
    ("compact", "eventfile compact --dry-run"),
    (
        "bench",
        "eventfile --dir /mnt/disk/scratch bench --threads 4 --batch 100",
    ),
    ("demo", "eventfile demo"),
    (
        "export",
        "eventfile --url sqlite:old.db export | eventfile --url postgres://me@db/shop import",
    ),
    (
        "import",
        "eventfile --dir ./copy import events.jsonl --batch 5000",
    ),
    (
        "serve",
        "eventfile serve --listen 127.0.0.1:8080 --token s3cret",
    ),
    (
        "view",
        "eventfile view --prefix order- --type OrderPlaced -f",
    ),
    (
        "generate",
        "eventfile --dir ./shop generate --events 1000000 --seed 7 --start 2026-01-01T00:00:00Z",
    ),
    (
        "completions",
        "eventfile completions bash > ~/.local/share/bash-completion/completions/eventfile",
    ),
    ("man", "eventfile man > eventfile.1 && man -l eventfile.1"),
    ("migrate", "eventfile --url sqlite:shop.db migrate status"),
];

/// The tool's clap command with every example attached.
pub fn command() -> clap::Command {
    let mut cmd = Cli::command();
    for (name, example) in EXAMPLES {
        if cmd.find_subcommand(name).is_some() {
            cmd = cmd.mut_subcommand(name, |c| c.after_help(format!("Example:\n  {example}")));
        }
    }
    cmd
}

/// `eventfile completions SHELL`.
pub fn completions(shell: CompletionShell, out: &mut impl Write) -> Result<(), Failure> {
    use clap_complete::Shell;
    let shell = match shell {
        CompletionShell::Bash => Shell::Bash,
        CompletionShell::Zsh => Shell::Zsh,
        CompletionShell::Fish => Shell::Fish,
    };
    let mut buf = Vec::new();
    clap_complete::generate(shell, &mut command(), "eventfile", &mut buf);
    out.write_all(&buf)?;
    Ok(())
}

/// `eventfile man`: the page of the tool, then one section per command.
pub fn man(out: &mut impl Write) -> Result<(), Failure> {
    let cmd = command();
    let mut buf = Vec::new();
    let failed = |e: std::io::Error| Failure::Other(format!("writing the man page: {e}"));
    clap_mangen::Man::new(cmd.clone())
        .render(&mut buf)
        .map_err(failed)?;
    for sub in cmd.get_subcommands() {
        if sub.is_hide_set() {
            continue;
        }
        writeln!(buf, ".SH \"EVENTFILE {}\"", sub.get_name().to_uppercase()).map_err(failed)?;
        let man = clap_mangen::Man::new(sub.clone());
        man.render_description_section(&mut buf).map_err(failed)?;
        man.render_options_section(&mut buf).map_err(failed)?;
        if let Some(after) = sub.get_after_help() {
            writeln!(buf, ".PP\n{}", after.to_string().replace('\n', "\n.br\n")).map_err(failed)?;
        }
    }
    out.write_all(&buf)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_command_has_an_example() {
        let cmd = command();
        for sub in cmd.get_subcommands() {
            if sub.get_name() == "help" {
                continue;
            }
            let after = sub
                .get_after_help()
                .map(|s| s.to_string())
                .unwrap_or_default();
            assert!(
                after.starts_with("Example:\n  eventfile"),
                "`eventfile {} --help` shows no example",
                sub.get_name()
            );
        }
        // And no example names a command that does not exist.
        for (name, _) in EXAMPLES {
            assert!(cmd.find_subcommand(name).is_some(), "no command {name}");
        }
    }

    #[test]
    fn the_definition_is_consistent() {
        command().debug_assert();
    }
}
