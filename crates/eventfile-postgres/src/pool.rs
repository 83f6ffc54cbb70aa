//! A small pool of connections: what the reads and the deletions borrow. Own rather than
//! `r2d2`: it needs no reaper thread, it hands back the client's own error (so an unreachable
//! server is [`eventfile::Error::Unreachable`] with the server's reason, not a pool timeout),
//! and a connection that broke is dropped on return rather than tested on every checkout (one
//! that sat idle is tried first, [`TRY_AFTER_IDLE`]).
//!
//! Each connection keeps the statements the reads prepared on it ([`Conn::query_cached`]), so
//! a read's statement is parsed and planned once per connection, not once per call.
//!
//! It owns the connection settings, the idle connections and their prepared statements; it
//! never decides what a statement says.

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use eventfile::Result;
use postgres::types::{ToSql, Type};
use postgres::{Client, Config, NoTls, Row, Statement};

use crate::error::pg;

/// Connections to one database, at most `max` at once.
#[derive(Clone)]
pub(crate) struct Pool {
    inner: Arc<Inner>,
}

struct Inner {
    config: Config,
    max: usize,
    state: Mutex<State>,
    freed: Condvar,
}

/// Statements kept per connection at most; past it the cache starts again (the statements
/// reads make differ only by the shape of a query's filters, so few are ever made).
const STATEMENTS: usize = 256;

/// A connection and the statements prepared on it, by text.
struct Slot {
    client: Client,
    statements: HashMap<String, Statement>,
    /// When it was last given back (or made).
    returned: Instant,
}

/// A connection idle longer than this is tried (an empty query) before it is handed out.
///
/// The client learns that its server went away (a restart, a failover, an idle timeout of a
/// proxy) only when it next uses the connection, so an idle one looks open. Handed out as it
/// is, each of the pool's connections failed one call after a restart, and a subscription whose
/// head read met one ended, though the server was back. Trying every checkout would cost a
/// round trip per read; a connection in steady use was used moments ago, and one that waited
/// this long costs little more for the try.
const TRY_AFTER_IDLE: Duration = Duration::from_millis(100);

struct State {
    idle: Vec<Slot>,
    /// Connections handed out or idle.
    open: usize,
}

/// The settings of `url` (any form libpq takes), with a connect timeout of 10 s unless it
/// names one, and over TCP a dead peer noticed within about a minute unless it names its own
/// settings: data sent and not acknowledged for [`TCP_USER_TIMEOUT`] closes the connection
/// (the system's retransmissions took about 15 minutes), and a connection waiting for an
/// answer sends a keepalive after [`KEEPALIVES_IDLE`] of silence (the system's default waited
/// 2 hours), every 10 s, 3 times. A live server's kernel answers both however long its
/// statement runs, so neither ends a slow statement. Errors never quote the URL: it may hold a
/// password.
pub(crate) fn config(url: &str) -> Result<Config> {
    let mut config: Config =
        url.parse()
            .map_err(|e: postgres::Error| eventfile::Error::InvalidInput {
                what: "postgres URL",
                reason: e.to_string(),
            })?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(Duration::from_secs(10));
    }
    if config.get_tcp_user_timeout().is_none() {
        config.tcp_user_timeout(TCP_USER_TIMEOUT);
    }
    // The client's own default, which a URL cannot be told from: 2 hours.
    if config.get_keepalives_idle() == Duration::from_secs(2 * 60 * 60) {
        config.keepalives_idle(KEEPALIVES_IDLE);
        if config.get_keepalives_interval().is_none() {
            config.keepalives_interval(Duration::from_secs(10));
        }
        if config.get_keepalives_retries().is_none() {
            config.keepalives_retries(3);
        }
    }
    Ok(config)
}

/// How long sent data may go unacknowledged before the connection is given up, unless the URL
/// says (`tcp_user_timeout`: in seconds as the Rust client reads it, where libpq reads
/// milliseconds).
const TCP_USER_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a connection waits in silence before its first keepalive, unless the URL says
/// (`keepalives_idle`, in seconds).
const KEEPALIVES_IDLE: Duration = Duration::from_secs(30);

/// A new connection.
pub(crate) fn connect(config: &Config) -> Result<Client> {
    config.connect(NoTls).map_err(pg)
}

impl Pool {
    pub(crate) fn new(config: Config, max: usize) -> Pool {
        Pool {
            inner: Arc::new(Inner {
                config,
                max: max.max(1),
                state: Mutex::new(State {
                    idle: Vec::new(),
                    open: 0,
                }),
                freed: Condvar::new(),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// An idle connection, or a new one while fewer than `max` are open, or the next one
    /// returned.
    pub(crate) fn get(&self) -> Result<Conn> {
        let mut s = self.lock();
        loop {
            if let Some(mut slot) = s.idle.pop() {
                if !slot.client.is_closed() && slot.returned.elapsed() > TRY_AFTER_IDLE {
                    drop(s);
                    let alive = slot.client.is_valid(Duration::from_secs(5)).is_ok();
                    s = self.lock();
                    if !alive {
                        s.open -= 1;
                        continue;
                    }
                } else if slot.client.is_closed() {
                    s.open -= 1;
                    continue;
                }
                return Ok(Conn {
                    slot: Some(slot),
                    pool: self.clone(),
                });
            }
            if s.open < self.inner.max {
                s.open += 1;
                drop(s);
                return match connect(&self.inner.config) {
                    Ok(client) => Ok(Conn {
                        slot: Some(Slot {
                            client,
                            statements: HashMap::new(),
                            returned: Instant::now(),
                        }),
                        pool: self.clone(),
                    }),
                    Err(e) => {
                        self.lock().open -= 1;
                        self.inner.freed.notify_one();
                        Err(e)
                    }
                };
            }
            s = self.inner.freed.wait(s).unwrap_or_else(|p| p.into_inner());
        }
    }
}

/// A borrowed connection, returned to the pool when dropped (dropped instead if it broke).
pub(crate) struct Conn {
    slot: Option<Slot>,
    pool: Pool,
}

impl Conn {
    fn slot(&mut self) -> &mut Slot {
        self.slot.as_mut().expect("a connection until dropped")
    }

    /// The rows of `sql`, prepared once on this connection and kept. A statement that failed
    /// is forgotten (prepared again next time), so a schema changed under it costs one error.
    pub(crate) fn query_cached(
        &mut self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> std::result::Result<Vec<Row>, postgres::Error> {
        self.query_cached_typed(sql, params, &[])
    }

    /// [`Conn::query_cached`] with the parameters' types (those not given are inferred by the
    /// server): `sql` must always be given the same types.
    pub(crate) fn query_cached_typed(
        &mut self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
        types: &[Type],
    ) -> std::result::Result<Vec<Row>, postgres::Error> {
        let slot = self.slot();
        let statement = match slot.statements.get(sql) {
            Some(st) => st.clone(),
            None => {
                let st = slot.client.prepare_typed(sql, types)?;
                if slot.statements.len() >= STATEMENTS {
                    slot.statements.clear();
                }
                slot.statements.insert(sql.to_owned(), st.clone());
                st
            }
        };
        let rows = slot.client.query(&statement, params);
        if rows.is_err() {
            slot.statements.remove(sql);
        }
        rows
    }
}

impl std::ops::Deref for Conn {
    type Target = Client;
    fn deref(&self) -> &Client {
        &self
            .slot
            .as_ref()
            .expect("a connection until dropped")
            .client
    }
}

impl std::ops::DerefMut for Conn {
    fn deref_mut(&mut self) -> &mut Client {
        &mut self.slot().client
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        let mut s = self.pool.lock();
        match self.slot.take() {
            Some(mut c) if !c.client.is_closed() => {
                c.returned = Instant::now();
                s.idle.push(c);
            }
            _ => s.open -= 1,
        }
        drop(s);
        self.pool.inner.freed.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server host that vanished (no reset sent) blocked a call for about 15 minutes
    /// (unacknowledged data) or for hours (a wait for an answer): the defaults now notice it
    /// within about a minute, and a URL's own settings are kept.
    #[test]
    fn a_dead_peer_is_noticed_unless_the_url_says_otherwise() {
        let c = config("postgres://app@db.example/events").unwrap();
        assert_eq!(c.get_tcp_user_timeout(), Some(&TCP_USER_TIMEOUT));
        assert_eq!(c.get_keepalives_idle(), KEEPALIVES_IDLE);
        assert_eq!(c.get_keepalives_interval(), Some(Duration::from_secs(10)));
        assert_eq!(c.get_keepalives_retries(), Some(3));
        assert!(c.get_keepalives());
        let c = config("postgres://app@db.example/events?tcp_user_timeout=5&keepalives_idle=600")
            .unwrap();
        assert_eq!(c.get_tcp_user_timeout(), Some(&Duration::from_secs(5)));
        assert_eq!(c.get_keepalives_idle(), Duration::from_secs(600));
        assert_eq!(c.get_keepalives_interval(), None);
    }
}
