//! `eventfile view`: a full-screen viewer of a store of any backend.
//!
//! The parts: `state.rs` is the state machine (screens, prompts, live mode, what each key
//! does), `streams.rs` and `events.rs` the paged lists it moves through, `filter.rs` the filter
//! typed in place, `json.rs` the indented JSON, `meter.rs` the head seq and live rate on the
//! status line, `text.rs` the store's text made safe to print and measured in columns,
//! `draw.rs` the layout. This file owns the terminal: it enters raw mode and the alternate
//! screen, and leaves them on every way out (q, an error, a panic through a panic hook,
//! SIGTERM, SIGHUP or SIGINT through a flag the loop polls), and turns terminal events into
//! keys.
//!
//! ratatui draws (the most used and best kept Rust terminal UI crate, with a test backend that
//! lets the layout be tested without a terminal) on crossterm (pure Rust, no curses library),
//! through ratatui's re-export so the two never disagree on versions.
//!
//! The store is opened as tail opens it: read-only beside a writer, never created. A view
//! holds a few pages of events and one page of streams, whatever the store's size. A store
//! removed or replaced while viewing is noticed within a second ([`Presence`]): the status line
//! says so, live mode ends, and what was read stays to be looked at. The library's warnings are
//! held while the viewer has the screen and printed after it (`main.rs`).

mod draw;
mod events;
mod filter;
mod json;
mod meter;
mod state;
mod streams;
mod text;

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
use ratatui::crossterm::{cursor, execute, terminal};

use crate::Failure;
use crate::args::ViewArgs;
use crate::target::Target;
use events::Scope;
use state::{App, Key, Outcome};

/// How long the loop waits for a key before it looks at live events and signals again.
const TICK: Duration = Duration::from_millis(100);

pub fn run(target: &Target, args: &ViewArgs) -> Result<(), Failure> {
    let scope = if args.filters.streams.is_empty() && args.filters.prefix.is_none() {
        Scope::All
    } else if let ([stream], None) = (args.filters.streams.as_slice(), &args.filters.prefix) {
        Scope::Stream(stream.clone())
    } else {
        Scope::Query {
            streams: args.filters.streams.clone(),
            prefix: args.filters.prefix.clone(),
        }
    };
    let filter = filter::Filter::from_args(&args.filters);
    let stop = stop_on_signals()?;
    // The store first: a missing one is named whether or not there is a terminal.
    let store = target.open_existing()?;
    let mut presence = Presence::of(&target.location);
    let any = &store;
    let store = store.as_dyn();
    if !std::io::stdout().is_terminal() || !std::io::stdin().is_terminal() {
        return Err(Failure::Other(
            "view needs a terminal (stdin and stdout); to print events, use cat, query or tail"
                .into(),
        ));
    }
    let mut app = App::on_store(any, target.location.redacted(), scope, filter, args.follow);
    let theme = draw::Theme {
        color: !crate::output::no_color(),
    };
    exit_on_hangup();
    let _screen = Screen::enter()?;
    let backend = ratatui::backend::CrosstermBackend::new(std::io::stdout());
    let mut term = ratatui::Terminal::new(backend).map_err(io_failure)?;
    term.clear().map_err(io_failure)?;
    // Test-only: tests/view.rs sets this to check that a panic leaves the terminal restored
    // (the panic hook of `Screen::enter`). Read here only; nothing else looks at it.
    let panic_after_draw =
        std::env::var_os("EVENTFILE_VIEW_PANIC_AFTER_DRAW").is_some_and(|v| v == "1");
    let mut dirty = true;
    while !stop.load(Ordering::Relaxed) {
        if dirty {
            term.draw(|f| draw::draw(f, &mut app, theme))
                .map_err(io_failure)?;
            dirty = false;
            if panic_after_draw {
                panic!("EVENTFILE_VIEW_PANIC_AFTER_DRAW is set: a panic for the terminal test");
            }
        }
        if event::poll(TICK).map_err(io_failure)? {
            match event::read().map_err(io_failure)? {
                Event::Key(k) if k.kind != KeyEventKind::Release => {
                    if let Some(key) = key_of(k.code, k.modifiers)
                        && app.key(store, key) == Outcome::Quit
                    {
                        break;
                    }
                    dirty = true;
                }
                Event::Resize(..) => dirty = true,
                _ => {}
            }
        }
        dirty |= app.tick(store);
        if app.gone.is_none()
            && let Some(why) = presence.as_mut().and_then(|p| p.check(Instant::now()))
        {
            app.store_gone(store, why);
            dirty = true;
        }
    }
    Ok(())
}

/// A file store's directory or a SQLite file as the viewer opened it: its device and inode,
/// looked at once a second. A store removed while viewing keeps answering from the files the
/// handle holds open (on Unix), so without this the screen would go on as if nothing had
/// happened, and a store made again at the same path would never be shown.
struct Presence {
    path: std::path::PathBuf,
    id: (u64, u64),
    next: Instant,
}

impl Presence {
    /// The watch of `location`'s path, if it has one (PostgreSQL and memory stores have
    /// none: their errors come through the handle).
    fn of(location: &eventfile_connect::Location) -> Option<Presence> {
        use eventfile_connect::Location;
        let path = match location {
            Location::File(p) | Location::Sqlite(p) => p.clone(),
            _ => return None,
        };
        let id = file_id(&path)?;
        Some(Presence {
            path,
            id,
            next: Instant::now() + PRESENCE_EVERY,
        })
    }

    /// What became of the store, if it is no longer the one opened; looked at most once per
    /// [`PRESENCE_EVERY`].
    fn check(&mut self, now: Instant) -> Option<String> {
        if now < self.next {
            return None;
        }
        self.next = now + PRESENCE_EVERY;
        match file_id(&self.path) {
            None => Some("the store was removed; what is shown was read before".into()),
            Some(id) if id != self.id => {
                Some("the store was replaced by another; what is shown is the old one's".into())
            }
            Some(_) => None,
        }
    }
}

/// How often the viewer looks whether its store is still there.
const PRESENCE_EVERY: Duration = Duration::from_secs(1);

#[cfg(unix)]
fn file_id(path: &std::path::Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// Without device and inode numbers, only a removal is noticed.
#[cfg(not(unix))]
fn file_id(path: &std::path::Path) -> Option<(u64, u64)> {
    std::fs::metadata(path).ok().map(|_| (0, 0))
}

/// Ends the process when the terminal hangs up (its window closed, `tmux kill-session`, a
/// dropped ssh connection). The loop cannot notice: once the terminal is gone, crossterm's
/// reader (0.28 and 0.29, crossterm issue 793) retries its reads of the dead terminal forever
/// inside `event::poll`, ignoring the timeout, so neither the hangup's SIGHUP flag nor SIGTERM's
/// is ever looked at, and the viewer spun at a core's worth of CPU until killed. A thread
/// waits in poll(2) for the hangup on stdin (asking for no input, so it takes no keys) and
/// exits with 129, SIGHUP's status: there is no terminal left to restore, and the viewer
/// writes nothing to the store.
#[cfg(unix)]
fn exit_on_hangup() {
    use rustix::event::{PollFd, PollFlags, poll};
    let spawned = std::thread::Builder::new()
        .name("eventfile-hangup".into())
        .spawn(|| {
            let stdin = std::io::stdin();
            loop {
                let mut fds = [PollFd::new(&stdin, PollFlags::empty())];
                match poll(&mut fds, None) {
                    Ok(_) => {
                        let gone = PollFlags::HUP | PollFlags::ERR | PollFlags::NVAL;
                        if fds[0].revents().intersects(gone) {
                            std::process::exit(129);
                        }
                    }
                    Err(rustix::io::Errno::INTR) => {}
                    // poll(2) itself failing: nothing to watch with; the signals still work
                    // while the terminal lives.
                    Err(_) => return,
                }
            }
        });
    // Without the thread the viewer still works; only a hangup is not noticed.
    drop(spawned);
}

#[cfg(not(unix))]
fn exit_on_hangup() {}

fn io_failure(e: std::io::Error) -> Failure {
    Failure::Other(format!("the terminal: {e}"))
}

fn key_of(code: KeyCode, modifiers: KeyModifiers) -> Option<Key> {
    Some(match code {
        KeyCode::Char('c') if modifiers.contains(KeyModifiers::CONTROL) => Key::Interrupt,
        KeyCode::Char(c) => Key::Char(c),
        KeyCode::Up => Key::Up,
        KeyCode::Down => Key::Down,
        KeyCode::PageUp => Key::PageUp,
        KeyCode::PageDown => Key::PageDown,
        KeyCode::Home => Key::Home,
        KeyCode::End => Key::End,
        KeyCode::Enter => Key::Enter,
        KeyCode::Esc => Key::Esc,
        KeyCode::Backspace => Key::Backspace,
        _ => return None,
    })
}

/// The terminal in raw mode on the alternate screen, until dropped (or a panic, whose hook
/// restores it before the message is printed, so the message is readable).
struct Screen;

impl Screen {
    fn enter() -> Result<Screen, Failure> {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            restore();
            previous(info);
        }));
        crate::hold_warnings();
        ON_SCREEN.store(true, Ordering::SeqCst);
        terminal::enable_raw_mode().map_err(io_failure)?;
        let screen = Screen;
        execute!(
            std::io::stdout(),
            terminal::EnterAlternateScreen,
            cursor::Hide
        )
        .map_err(io_failure)?;
        Ok(screen)
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        restore();
    }
}

/// Whether the terminal is in the state [`Screen::enter`] put it in, not yet restored.
static ON_SCREEN: AtomicBool = AtomicBool::new(false);

/// Leaves the alternate screen and raw mode and shows the cursor, once: a panic restores the
/// terminal in its hook and again as the unwinding drops the `Screen`, and a second "leave the
/// alternate screen" is not harmless (tmux, among others, then restores the cursor saved on
/// entering, so that what the shell prints next overwrites the panic's message).
fn restore() {
    if !ON_SCREEN.swap(false, Ordering::SeqCst) {
        return;
    }
    let mut out = std::io::stdout();
    let _ = execute!(out, terminal::LeaveAlternateScreen, cursor::Show);
    let _ = terminal::disable_raw_mode();
    let _ = out.flush();
    crate::release_warnings();
}

/// A flag set by SIGTERM, SIGHUP or SIGINT (raw mode turns Ctrl-C into a key, but a signal
/// sent by `kill` still comes); the loop polls it every tick and ends, restoring the terminal.
fn stop_on_signals() -> Result<Arc<AtomicBool>, Failure> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [SIGTERM, SIGHUP, SIGINT] {
        signal_hook::flag::register(signal, Arc::clone(&stop))
            .map_err(|e| Failure::Other(format!("installing a signal handler: {e}")))?;
    }
    Ok(stop)
}

#[cfg(test)]
mod tests {
    use super::{PRESENCE_EVERY, Presence};
    use eventfile_connect::Location;
    use std::time::Instant;

    #[test]
    fn a_store_removed_or_replaced_is_noticed_once_a_second() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("store");
        std::fs::create_dir(&dir).unwrap();
        let mut p = Presence::of(&Location::File(dir.clone())).unwrap();
        let mut at = Instant::now() + PRESENCE_EVERY;
        assert_eq!(p.check(at), None, "still there");
        std::fs::remove_dir(&dir).unwrap();
        assert_eq!(p.check(at), None, "not looked at again within the second");
        at += PRESENCE_EVERY;
        assert!(p.check(at).unwrap().contains("was removed"));
        // Another directory at the same path (a file meanwhile keeps the old inode taken).
        let _hold = std::fs::File::create(tmp.path().join("hold")).unwrap();
        std::fs::create_dir(&dir).unwrap();
        at += PRESENCE_EVERY;
        let replaced = p.check(at);
        let new_id = super::file_id(&dir).unwrap();
        if new_id != p.id {
            assert!(replaced.unwrap().contains("was replaced"));
        } else {
            // The file system gave the new directory the old inode: nothing can tell them apart.
            assert_eq!(replaced, None);
        }
        assert!(Presence::of(&Location::Memory).is_none());
        assert!(Presence::of(&Location::File(tmp.path().join("missing"))).is_none());
    }
}
