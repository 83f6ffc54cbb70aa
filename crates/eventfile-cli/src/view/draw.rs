//! Drawing the viewer with ratatui: the title bar, the list (streams or events), the selected
//! event's JSON, the status or prompt line and the keys. Side by side from 120 columns, one
//! above the other below that; 80x24 shows ten rows of the list and the JSON below it.
//!
//! This module owns the layout and the styles; it changes nothing but where the lists are
//! scrolled to (the first row shown), and reads no store.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Wrap};

use super::state::{App, Screen};
use super::text::{fit, safe, width};

/// The smallest terminal the viewer draws in.
pub const MIN_WIDTH: u16 = 60;
pub const MIN_HEIGHT: u16 = 12;

/// The styles: colours, or only bold and reverse video under `NO_COLOR`.
#[derive(Debug, Clone, Copy)]
pub struct Theme {
    pub color: bool,
}

impl Theme {
    fn bar(self) -> Style {
        if self.color {
            Style::new().fg(Color::Black).bg(Color::Cyan)
        } else {
            Style::new().add_modifier(Modifier::REVERSED)
        }
    }

    fn selected(self) -> Style {
        if self.color {
            Style::new().fg(Color::Black).bg(Color::Yellow)
        } else {
            Style::new().add_modifier(Modifier::REVERSED)
        }
    }

    fn accent(self) -> Style {
        if self.color {
            Style::new().fg(Color::Cyan)
        } else {
            Style::new()
        }
    }

    fn dim(self) -> Style {
        if self.color {
            Style::new().fg(Color::DarkGray)
        } else {
            Style::new()
        }
    }

    fn error(self) -> Style {
        if self.color {
            Style::new().fg(Color::Red)
        } else {
            Style::new().add_modifier(Modifier::BOLD)
        }
    }
}

pub fn draw(frame: &mut Frame<'_>, app: &mut App, theme: Theme) {
    let area = frame.area();
    if area.width < MIN_WIDTH || area.height < MIN_HEIGHT {
        let text = format!(
            "The terminal is {}x{}: eventfile view needs {MIN_WIDTH}x{MIN_HEIGHT}. Make it larger, or press q to quit.",
            area.width, area.height
        );
        frame.render_widget(Paragraph::new(text).wrap(Wrap { trim: true }), area);
        return;
    }
    let [title, body, status, keys] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(4),
        Constraint::Length(1),
        Constraint::Length(1),
    ])
    .areas(area);
    draw_title(frame, app, theme, title);
    let (list, detail) = if body.width >= 120 {
        let [l, d] = Layout::horizontal([Constraint::Percentage(55), Constraint::Percentage(45)])
            .areas(body);
        (l, d)
    } else {
        let [l, d] =
            Layout::vertical([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(body);
        (l, d)
    };
    match app.screen {
        Screen::Streams => draw_streams(frame, app, theme, list),
        Screen::Events => draw_events(frame, app, theme, list),
    }
    draw_detail(frame, app, theme, detail);
    draw_status(frame, app, theme, status);
    // While a prompt is open, a refused answer's reason takes the keys' line.
    let bottom = if app.prompt.is_some() && !app.status.is_empty() {
        Paragraph::new(safe(&app.status)).style(theme.error())
    } else {
        Paragraph::new(app.keys()).style(theme.bar())
    };
    frame.render_widget(bottom, keys);
    if app.help {
        draw_help(frame, theme, body);
    }
}

fn draw_title(frame: &mut Frame<'_>, app: &App, theme: Theme, area: Rect) {
    let what = match app.screen {
        Screen::Streams if app.streams.prefix.is_empty() => "streams".to_string(),
        Screen::Streams => format!("streams {}*", app.streams.prefix),
        Screen::Events => app.events.scope.label(),
    };
    let mut text = format!(" eventfile view  {}  {what}", app.location);
    if app.screen == Screen::Events && !app.events.filter.is_empty() {
        text.push_str(&format!("  [{}]", app.events.filter));
    }
    if app.live_on {
        text.push_str("  LIVE");
    }
    // The scope and filter quote stream names and values from the store.
    frame.render_widget(Paragraph::new(safe(&text)).style(theme.bar()), area);
}

/// The first row to show so that `selected` is on screen, moving `top` as little as can be.
fn scroll(top: &mut usize, selected: usize, rows: usize) -> usize {
    if selected < *top {
        *top = selected;
    } else if rows > 0 && selected >= *top + rows {
        *top = selected + 1 - rows;
    }
    *top
}

fn draw_streams(frame: &mut Frame<'_>, app: &mut App, theme: Theme, area: Rect) {
    let block = Block::new()
        .borders(Borders::BOTTOM)
        .border_style(theme.dim())
        .title_bottom(Line::from(format!(" page {} ", app.streams.page_number())).right_aligned());
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let rows = inner.height as usize;
    app.page_rows = rows.saturating_sub(1).max(1);
    let [head, list] = Layout::vertical([Constraint::Length(1), Constraint::Min(0)]).areas(inner);
    frame.render_widget(
        Paragraph::new(format!(
            "{:<w$} {:>9}",
            "STREAM",
            "VERSION",
            w = inner.width.saturating_sub(11) as usize
        ))
        .style(Style::new().add_modifier(Modifier::BOLD)),
        head,
    );
    let selected = app.streams.selected_index();
    let top = scroll(&mut app.streams.top, selected, list.height as usize);
    let w = list.width.saturating_sub(11) as usize;
    let lines: Vec<Line<'_>> = app
        .streams
        .rows()
        .iter()
        .enumerate()
        .skip(top)
        .take(list.height as usize)
        .map(|(i, s)| {
            let line = Line::from(format!("{} {:>9}", fit(&safe(&s.stream), w), s.version));
            if i == selected {
                line.style(theme.selected())
            } else {
                line
            }
        })
        .collect();
    if lines.is_empty() {
        frame.render_widget(Paragraph::new("no streams").style(theme.dim()), list);
    } else {
        frame.render_widget(Paragraph::new(lines), list);
    }
}

fn draw_events(frame: &mut Frame<'_>, app: &mut App, theme: Theme, area: Rect) {
    let more = if app.events.at_end() {
        ""
    } else {
        " more below "
    };
    let block = Block::new()
        .borders(Borders::BOTTOM)
        .border_style(theme.dim())
        .title_bottom(Line::from(more).right_aligned());
    let inner = block.inner(area);
    frame.render_widget(block, area);
    app.page_rows = (inner.height as usize).saturating_sub(1).max(1);
    let [head, list] = Layout::vertical([Constraint::Length(1), Constraint::Min(0)]).areas(inner);
    frame.render_widget(
        Paragraph::new(format!(
            "{:>9}  {:<19}  {:<18} {:>5}  TYPE",
            "SEQ", "TIME (UTC)", "STREAM", "VER"
        ))
        .style(Style::new().add_modifier(Modifier::BOLD)),
        head,
    );
    let selected = app.events.selected_index();
    let top = scroll(&mut app.events.top, selected, list.height as usize);
    let lines: Vec<Line<'_>> = app
        .events
        .rows()
        .iter()
        .enumerate()
        .skip(top)
        .take(list.height as usize)
        .map(|(i, e)| {
            let time = e.time_rfc3339();
            let time = time.get(..19).unwrap_or(&time).replace('T', " ");
            let line = Line::from(vec![
                Span::raw(format!(
                    "{:>9}  {time}  {} {:>5}  ",
                    e.seq,
                    fit(&safe(&e.stream), 18),
                    e.version
                )),
                Span::styled(
                    safe(&e.event_type).into_owned(),
                    if i == selected {
                        Style::new()
                    } else {
                        theme.accent()
                    },
                ),
            ]);
            if i == selected {
                line.style(theme.selected())
            } else {
                line
            }
        })
        .collect();
    if lines.is_empty() {
        frame.render_widget(Paragraph::new("no events match").style(theme.dim()), list);
    } else {
        frame.render_widget(Paragraph::new(lines), list);
    }
}

fn draw_detail(frame: &mut Frame<'_>, app: &mut App, theme: Theme, area: Rect) {
    let about_stream: Vec<String>;
    let lines: &[String] = match app.screen {
        Screen::Events => match app.events.selected() {
            Some(e) => app.json.of(e),
            None => &[],
        },
        Screen::Streams => {
            let text = match app.streams.selected() {
                Some(s) => format!(
                    "{}\nversion {}\n\nEnter shows its events; a shows every event.",
                    safe(&s.stream),
                    s.version
                ),
                None => "The store holds no streams (with this prefix).".into(),
            };
            about_stream = text.lines().map(str::to_owned).collect();
            &about_stream
        }
    };
    // The title takes the top row. The lines are counted and cut here, not by
    // `Paragraph::scroll`, whose offset is a u16: past 65,535 lines the end was out of reach.
    let rows = area.height.saturating_sub(1) as usize;
    let total = lines.len();
    app.json_scroll = app.json_scroll.min(total.saturating_sub(rows));
    let title = if app.screen == Screen::Events && total > rows {
        format!(" line {}/{} ", app.json_scroll + 1, total)
    } else {
        String::new()
    };
    let block = Block::new()
        .title(Line::from(title).right_aligned())
        .style(Style::new());
    let shown: Vec<Line<'_>> = lines
        .iter()
        .skip(app.json_scroll)
        .take(rows)
        .map(|l| Line::raw(l.as_str()))
        .collect();
    frame.render_widget(Paragraph::new(shown).block(block), area);
    let _ = theme;
}

fn draw_status(frame: &mut Frame<'_>, app: &App, theme: Theme, area: Rect) {
    if let Some(p) = &app.prompt {
        let line = Line::from(vec![
            Span::styled(format!("{}: ", p.ask.label()), theme.accent()),
            Span::raw(safe(&p.text).into_owned()),
            Span::styled("_", Style::new().add_modifier(Modifier::SLOW_BLINK)),
        ]);
        // The end of a long line stays in sight.
        let width = line.width() as u16;
        let skip = width.saturating_sub(area.width);
        frame.render_widget(Paragraph::new(line).scroll((0, skip)), area);
        return;
    }
    let gone = app.gone.as_ref().map(|why| format!("error: {why}"));
    let status = match &gone {
        Some(g) if app.status.is_empty() => g.as_str(),
        _ => app.status.as_str(),
    };
    let style = if status.starts_with("error") || status.starts_with("live:") {
        theme.error()
    } else {
        Style::new()
    };
    // The message on the left, the head seq (and live rate) on the right; a long message is
    // cut rather than the figures.
    let meter = format!("{} ", app.meter.text(&app.metrics));
    let cols = (width(&meter) as u16).min(area.width);
    let [left, right] =
        Layout::horizontal([Constraint::Min(0), Constraint::Length(cols)]).areas(area);
    // Messages quote ids, streams and errors that carry the store's text.
    frame.render_widget(Paragraph::new(safe(status)).style(style), left);
    frame.render_widget(
        Paragraph::new(meter)
            .alignment(ratatui::layout::Alignment::Right)
            .style(theme.accent()),
        right,
    );
}

fn draw_help(frame: &mut Frame<'_>, theme: Theme, area: Rect) {
    let text = "\
 Up/Down j/k    move the selection       PgUp/PgDn   a screen at a time
 Home/g End/G   first / last             Enter       open the selected stream
 a              every event (the log)    Esc         back to the streams
 / or f         streams: prefix; events: filter, e.g.
                type=OrderPlaced tag=region=eu since=2026-11-01T00:00:00Z
                until=... actor=... correlation=... causation=...
                (a value with spaces in quotes: type=\"Order Placed\")
 s or :         go to a seq              i           go to an event id
 J / K          scroll the JSON          l           live: follow new events
 ?              this help                q, Ctrl-C   quit

 Any key closes this help.";
    let h = (text.lines().count() as u16 + 2).min(area.height);
    let w = 78.min(area.width);
    let rect = Rect::new(area.x + (area.width - w) / 2, area.y, w, h);
    frame.render_widget(Clear, rect);
    frame.render_widget(
        Paragraph::new(text).block(
            Block::bordered()
                .title(" keys ")
                .border_style(theme.accent()),
        ),
        rect,
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::view::events::Scope;
    use crate::view::filter::Filter;
    use crate::view::state::Key;
    use eventfile::{EventStore, ExpectedVersion, MemoryStore, NewEvent};
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;

    /// The viewer on every event of `store`, as `eventfile view` opens it.
    fn all_events(store: &MemoryStore) -> App {
        App::new(
            store,
            "file:./shop".into(),
            Scope::All,
            Filter::default(),
            false,
        )
    }

    fn screen(app: &mut App, w: u16, h: u16) -> String {
        let mut term = Terminal::new(TestBackend::new(w, h)).unwrap();
        term.draw(|f| draw(f, app, Theme { color: false })).unwrap();
        let buf = term.backend().buffer().clone();
        (0..h)
            .map(|y| {
                (0..w)
                    .map(|x| buf[(x, y)].symbol().to_string())
                    .collect::<String>()
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The screen's rows, each cell's text in turn (a wide character's cell, then an empty one).
    fn rows(app: &mut App, w: u16, h: u16) -> Vec<String> {
        screen(app, w, h).split('\n').map(str::to_owned).collect()
    }

    fn assert_no_controls(app: &mut App, what: &str) {
        for (w, h) in [(80, 24), (140, 40)] {
            for (y, row) in rows(app, w, h).iter().enumerate() {
                if let Some(c) = row.chars().find(|&c| crate::terminal::acts_on(c)) {
                    panic!("{what}: {c:?} on row {y} at {w}x{h}: {row:?}");
                }
            }
        }
    }

    #[test]
    fn no_control_or_bidi_character_from_the_store_reaches_the_terminal() {
        // What the store's checks let in: bidirectional formats in names, types, ids and tags;
        // DEL and the C1 controls inside JSON strings (JSON escapes only the C0 ones).
        let store = MemoryStore::new();
        let sneaky = "x\u{7f}\u{85}\u{9b}31m\u{202e}\u{2066}\u{200f}\u{61c}\u{1b}]52;c;eA==\u{7}";
        let mut meta = serde_json::Map::new();
        meta.insert("actor".into(), "bob\u{202e}\u{2069}".into());
        store
            .append(
                "order-\u{202e}1",
                ExpectedVersion::Any,
                vec![
                    NewEvent::new("Placed\u{2067}", serde_json::json!({ "note": sneaky }))
                        .with_id("id-\u{200e}1")
                        .with_meta(meta)
                        .with_tag("k=\u{202d}v"),
                ],
            )
            .unwrap();
        let mut app = all_events(&store);
        assert_no_controls(&mut app, "the streams");
        app.key(&store, Key::Enter);
        assert_eq!(app.screen, Screen::Events);
        let s = screen(&mut app, 140, 40);
        assert!(s.contains(r"Placed\u{2067}"), "{s}");
        assert!(s.contains(r"x\u{7f}\u{85}\u{9b}31m\u{202e}"), "{s}");
        assert_no_controls(&mut app, "a stream's events, with the JSON");
        // Older stores and other writers may hold C0 controls in names too: an event and a
        // stream read as they came, the title naming the stream, a message quoting it and a
        // prompt holding one.
        let evil = "a\u{1b}]52;c;eA==\u{7}\u{8}\r\u{9f}\u{202e}";
        let mut e = app.events.selected().unwrap().clone();
        e.seq += 1;
        e.stream = evil.into();
        e.event_type = evil.into();
        e.id = evil.into();
        e.meta.insert("actor".into(), evil.into());
        app.events.push_live(e);
        assert_eq!(app.events.selected().unwrap().seq, 2);
        app.events.scope = Scope::Stream(evil.into());
        app.status = format!("event {evil} is seq 2 ({evil} v1)");
        assert_no_controls(&mut app, "an event with controls in its names");
        let s = screen(&mut app, 140, 40);
        assert!(
            s.contains(r"a\u{1b}]52;c;eA==\u{7}\u{8}\u{d}\u{9f}\u{202e}"),
            "{s}"
        );
        app.key(&store, Key::Char('f'));
        app.key(&store, Key::Char('\u{1b}'));
        app.status = format!("filter not applied: `{evil}`");
        assert_no_controls(&mut app, "a prompt");
        app.key(&store, Key::Esc);
        app.key(&store, Key::Esc);
        assert_eq!(app.screen, Screen::Streams);
        app.streams.show(vec![eventfile::StreamInfo {
            stream: evil.into(),
            version: 1,
        }]);
        assert_no_controls(&mut app, "a stream named with controls");
    }

    #[test]
    fn wide_names_keep_the_columns_in_line() {
        let store = MemoryStore::new();
        let name = "注".repeat(30);
        for s in [name.as_str(), "order-1"] {
            store
                .append(
                    s,
                    ExpectedVersion::Any,
                    vec![NewEvent::new("Placed", serde_json::json!({}))],
                )
                .unwrap();
        }
        let mut app = all_events(&store);
        // Each row as the terminal shows it, a wide character's two cells as it and a blank:
        // one char a column. The right column stays in line on every row, and no wide
        // character is cut in half at the edge of the stream's column.
        let col = |row: &str, pat: &str| row.find(pat).map(|i| row[..i].chars().count());
        let rows = rows(&mut app, 80, 24);
        let (head, plain, cjk) = (&rows[1], &rows[2], &rows[3]);
        assert!(plain.starts_with("order-1 "), "{rows:#?}");
        assert!(
            cjk.starts_with(&"注 ".repeat(30)),
            "30 of them fit: {rows:#?}"
        );
        let end = |row: &str| row.trim_end().chars().count();
        assert_eq!(end(head), 79, "{rows:#?}");
        assert_eq!(end(cjk), 79, "{rows:#?}");
        assert_eq!(end(plain), 79, "{rows:#?}");
        app.key(&store, Key::Char('a'));
        let rows = self::rows(&mut app, 80, 24);
        // The events: 18 columns for the stream, then the version.
        let (head, cjk, plain) = (&rows[1], &rows[2], &rows[3]);
        assert!(
            cjk.contains(&("  ".to_owned() + &"注 ".repeat(8) + "~      1  Placed")),
            "eight wide characters, the cut, a blank column: {rows:#?}"
        );
        let ver = col(head, "VER").unwrap();
        assert_eq!(col(cjk, "1  Placed"), Some(ver + 2), "{rows:#?}");
        assert_eq!(col(plain, "1  Placed"), Some(ver + 2), "{rows:#?}");
    }

    #[test]
    fn a_json_of_100000_lines_is_counted_and_its_end_reached() {
        let store = MemoryStore::new();
        let big: Vec<u32> = (0..100_000).collect();
        store
            .append(
                "s",
                ExpectedVersion::Any,
                vec![NewEvent::new("Big", serde_json::json!({ "a": big })).with_tag("k=v")],
            )
            .unwrap();
        let mut app = App::new(
            &store,
            "file:./shop".into(),
            Scope::Stream("s".into()),
            Filter::default(),
            false,
        );
        // `{`, six members, `"data": {`, `"a": [`, the elements, `]`, `}`, `"meta": {}`,
        // `"tags": [`, the tag, `]`, `}`.
        let total = 100_016;
        let s = screen(&mut app, 80, 24);
        assert!(s.contains(&format!(" line 1/{total} ")), "{s}");
        app.key(&store, Key::Char('J'));
        assert!(screen(&mut app, 80, 24).contains(&format!(" line 2/{total} ")));
        // To the end (as J held down would): the last lines, the tags among them.
        app.json_scroll = usize::MAX;
        let s = screen(&mut app, 80, 24);
        assert!(s.contains("\"tags\": ["), "{s}");
        assert!(s.contains("\"k=v\""), "{s}");
        let rows = app.json_scroll;
        assert!(
            s.contains(&format!(" line {}/{total} ", rows + 1)),
            "{rows}: {s}"
        );
        app.key(&store, Key::Char('K'));
        assert_eq!(app.json_scroll, rows - 1);
    }

    #[test]
    fn fits_80_by_24_with_the_keys_shown() {
        let store = MemoryStore::new();
        for i in 0..50 {
            store
                .append(
                    &format!("order-{i}"),
                    ExpectedVersion::Any,
                    vec![NewEvent::new(
                        "OrderPlaced",
                        serde_json::json!({"customer": "ann", "n": i}),
                    )],
                )
                .unwrap();
        }
        let mut app = all_events(&store);
        let s = screen(&mut app, 80, 24);
        assert!(s.contains("order-0"), "{s}");
        assert!(s.contains("Enter open"), "{s}");
        // The status line (the row above the keys) ends with the head seq and this handle's
        // counters (it wrote the 50 events).
        let status_row = s.lines().nth(22).unwrap();
        assert!(
            status_row
                .trim_end()
                .ends_with("head 50  this handle: 50 appends 0 syncs"),
            "{s}"
        );
        assert!(s.contains("q quit"), "{s}");
        app.key(&store, Key::Enter);
        let s = screen(&mut app, 80, 24);
        assert!(s.contains("OrderPlaced"), "{s}");
        assert!(s.contains("\"customer\": \"ann\""), "{s}");
        assert!(s.contains("f filter"), "{s}");
        app.key(&store, Key::Char('?'));
        let s = screen(&mut app, 80, 24);
        assert!(s.contains("go to a seq"), "{s}");
        let s = screen(&mut app, 40, 10);
        assert!(s.contains("needs 60x12"), "{s}");
    }
}
