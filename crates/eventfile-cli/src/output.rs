//! How listings are printed: a table for a person at a terminal, JSON lines for a program.
//!
//! `streams`, `types` and `tags` print an aligned table when stdout is a terminal, and the
//! JSON lines they always printed when it is not (a pipe, a file) or with `--json`. Colour is
//! used only on a terminal, and never when `NO_COLOR` is set to anything but the empty string
//! (no-color.org). Commands that print events always print JSON lines: they are for jq.
//!
//! This module owns the choice and the table layout; what the rows hold is the command's.

use std::io::{IsTerminal, Write};

use crate::terminal::columns;

/// The `--json` flag of the commands that print a table on a terminal.
#[derive(Debug, Clone, Copy, Default, clap::Args)]
pub struct OutputArgs {
    /// Print JSON lines even on a terminal (they are printed when stdout is not one).
    #[arg(long)]
    pub json: bool,
}

/// How a listing is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One JSON object per line.
    Lines,
    /// An aligned table, its header bold if `color`.
    Table { color: bool },
}

impl Format {
    /// JSON lines with `--json` or when stdout is not a terminal; a table otherwise.
    pub fn detect(args: OutputArgs) -> Format {
        Format::choose(args.json, std::io::stdout().is_terminal(), no_color())
    }

    /// The choice itself, for a given `--json`, terminal and `NO_COLOR`.
    pub fn choose(json: bool, terminal: bool, no_color: bool) -> Format {
        if json || !terminal {
            Format::Lines
        } else {
            Format::Table { color: !no_color }
        }
    }
}

/// Whether `NO_COLOR` asks for no colour: set, and not empty.
pub fn no_color() -> bool {
    std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty())
}

/// A two-column table: a name and a number, printed a page at a time (the name column as wide
/// as the widest name of the first page, at most 64, so a long listing starts printing at
/// once and holds one page in memory).
pub struct Table {
    headers: [&'static str; 2],
    color: bool,
    width: Option<usize>,
}

impl Table {
    pub fn new(headers: [&'static str; 2], color: bool) -> Table {
        Table {
            headers,
            color,
            width: None,
        }
    }

    /// Prints `rows` (the header first, before the first page). Names are written with the
    /// characters a terminal acts on escaped (`terminal.rs`), and padded by the columns they
    /// take on screen (a CJK character takes two).
    pub fn page(&mut self, rows: &[(&str, u64)], out: &mut impl Write) -> std::io::Result<()> {
        let rows: Vec<(std::borrow::Cow<'_, str>, u64)> = rows
            .iter()
            .map(|&(name, n)| (crate::terminal::printable(name, false), n))
            .collect();
        let width = match self.width {
            Some(w) => w,
            None => {
                let w = rows
                    .iter()
                    .map(|r| columns(&r.0))
                    .chain([self.headers[0].len()])
                    .max()
                    .unwrap_or(0)
                    .min(64);
                self.width = Some(w);
                let (on, off) = if self.color {
                    ("\x1b[1m", "\x1b[0m")
                } else {
                    ("", "")
                };
                writeln!(
                    out,
                    "{on}{:<w$}  {:>10}{off}",
                    self.headers[0], self.headers[1]
                )?;
                w
            }
        };
        for (name, n) in rows {
            let pad = width.saturating_sub(columns(&name));
            writeln!(out, "{name}{:pad$}  {n:>10}", "")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_lines_unless_a_terminal_and_no_json_flag() {
        assert_eq!(Format::choose(false, false, false), Format::Lines);
        assert_eq!(Format::choose(true, true, false), Format::Lines);
        assert_eq!(
            Format::choose(false, true, false),
            Format::Table { color: true }
        );
        assert_eq!(
            Format::choose(false, true, true),
            Format::Table { color: false }
        );
    }

    #[test]
    fn a_table_aligns_its_columns() {
        let mut out = Vec::new();
        let mut t = Table::new(["STREAM", "VERSION"], false);
        t.page(&[("order-1", 3), ("customer-12", 1)], &mut out)
            .unwrap();
        t.page(&[("x", 12345)], &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text,
            "STREAM          VERSION\norder-1               3\ncustomer-12           1\nx                 12345\n"
        );
    }

    /// Before, a name's control characters reached the terminal raw (an OSC 52 clipboard
    /// write through a stream name), and wide characters were counted as one column each.
    #[test]
    fn a_table_escapes_names_and_aligns_wide_ones() {
        let mut out = Vec::new();
        let mut t = Table::new(["STREAM", "VERSION"], false);
        t.page(
            &[("注文-1", 3), ("x\u{1b}]52;c;aGk=\u{7}\u{202e}", 1)],
            &mut out,
        )
        .unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            !text
                .chars()
                .any(|c| c != '\n' && crate::terminal::acts_on(c)),
            "{text:?}"
        );
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[2], "x\\u{1b}]52;c;aGk=\\u{7}\\u{202e}           1");
        // Every row ends in the same column.
        let widths: Vec<usize> = lines.iter().map(|l| columns(l)).collect();
        assert!(widths.windows(2).all(|w| w[0] == w[1]), "{widths:?} {text}");
    }
}
