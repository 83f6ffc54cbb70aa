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
        Paragraph::new(app.status.as_str()).style(theme.error())
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
    frame.render_widget(Paragraph::new(text).style(theme.bar()), area);
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
            let line = Line::from(format!("{:<w$} {:>9}", clip(&s.stream, w), s.version));
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
                    "{:>9}  {time}  {:<18} {:>5}  ",
                    e.seq,
                    clip(&e.stream, 18),
                    e.version
                )),
                Span::styled(
                    e.event_type.clone(),
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
    let text = match app.screen {
        Screen::Events => app
            .events
            .selected()
            .map(|e| super::json::pretty(&e.to_json()))
            .unwrap_or_default(),
        Screen::Streams => match app.streams.selected() {
            Some(s) => format!(
                "{}\nversion {}\n\nEnter shows its events; a shows every event.",
                s.stream, s.version
            ),
            None => "The store holds no streams (with this prefix).".into(),
        },
    };
    let lines = text.lines().count() as u16;
    let max = lines.saturating_sub(area.height.saturating_sub(1));
    app.json_scroll = app.json_scroll.min(max);
    let title = if app.screen == Screen::Events && lines > area.height {
        format!(" line {}/{} ", app.json_scroll + 1, lines)
    } else {
        String::new()
    };
    let block = Block::new()
        .title(Line::from(title).right_aligned())
        .style(Style::new());
    frame.render_widget(
        Paragraph::new(text)
            .block(block)
            .scroll((app.json_scroll, 0)),
        area,
    );
    let _ = theme;
}

fn draw_status(frame: &mut Frame<'_>, app: &App, theme: Theme, area: Rect) {
    if let Some(p) = &app.prompt {
        let line = Line::from(vec![
            Span::styled(format!("{}: ", p.ask.label()), theme.accent()),
            Span::raw(p.text.clone()),
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
    let width = (meter.chars().count() as u16).min(area.width);
    let [left, right] =
        Layout::horizontal([Constraint::Min(0), Constraint::Length(width)]).areas(area);
    frame.render_widget(Paragraph::new(status).style(style), left);
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

/// `s` cut to `w` characters, with `~` at the end when cut.
fn clip(s: &str, w: usize) -> String {
    if s.chars().count() <= w {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(w.saturating_sub(1)).collect();
        t.push('~');
        t
    }
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
        let mut app = App::new(
            &store,
            "file:./shop".into(),
            Scope::All,
            Filter::default(),
            false,
        );
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
