//! A small pool of connections: what the reads and the deletions borrow. Own rather than
//! `r2d2`: it needs no reaper thread, it hands back the client's own error (so an unreachable
//! server is [`eventfile::Error::Unreachable`] with the server's reason, not a pool timeout),
//! and a connection that broke is dropped on return rather than tested on every checkout.
//!
//! It owns the connection settings and the idle connections; it never runs a statement.

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use eventfile::Result;
use postgres::{Client, Config, NoTls};

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

struct State {
    idle: Vec<Client>,
    /// Connections handed out or idle.
    open: usize,
}

/// The settings of `url` (any form libpq takes), with a connect timeout of 10 s unless it
/// names one. Errors never quote the URL: it may hold a password.
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
    Ok(config)
}

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
            if let Some(client) = s.idle.pop() {
                if client.is_closed() {
                    s.open -= 1;
                    continue;
                }
                return Ok(Conn {
                    client: Some(client),
                    pool: self.clone(),
                });
            }
            if s.open < self.inner.max {
                s.open += 1;
                drop(s);
                return match connect(&self.inner.config) {
                    Ok(client) => Ok(Conn {
                        client: Some(client),
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
    client: Option<Client>,
    pool: Pool,
}

impl std::ops::Deref for Conn {
    type Target = Client;
    fn deref(&self) -> &Client {
        self.client.as_ref().expect("a connection until dropped")
    }
}

impl std::ops::DerefMut for Conn {
    fn deref_mut(&mut self) -> &mut Client {
        self.client.as_mut().expect("a connection until dropped")
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        let mut s = self.pool.lock();
        match self.client.take() {
            Some(c) if !c.is_closed() => s.idle.push(c),
            _ => s.open -= 1,
        }
        drop(s);
        self.pool.inner.freed.notify_one();
    }
}
