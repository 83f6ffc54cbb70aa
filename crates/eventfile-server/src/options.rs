//! The server's settings ([`ServeOptions`]): one builder, every default stated on its method.
//!
//! This module owns the defaults and nothing else: it never binds, serves or checks a request.

use std::net::SocketAddr;
use std::time::Duration;

/// The address `eventfile serve` listens on when none is given.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7464";

/// How the server is run: where it listens, who may call it and its limits.
///
/// ```
/// use std::time::Duration;
/// let options = eventfile_server::ServeOptions::new()
///     .listen("127.0.0.1:0".parse().unwrap())
///     .token("s3cret")
///     .heartbeat(Duration::from_secs(5));
/// # let _ = options;
/// ```
#[derive(Clone)]
#[must_use]
pub struct ServeOptions {
    pub(crate) listen: SocketAddr,
    pub(crate) token: Option<String>,
    pub(crate) body_limit: usize,
    pub(crate) max_subscribers: usize,
    pub(crate) heartbeat: Duration,
    pub(crate) request_timeout: Duration,
    pub(crate) max_limit: usize,
    pub(crate) append_workers: usize,
    pub(crate) max_connections: usize,
    pub(crate) max_pending_bytes: usize,
}

impl std::fmt::Debug for ServeOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServeOptions")
            .field("listen", &self.listen)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("body_limit", &self.body_limit)
            .field("max_subscribers", &self.max_subscribers)
            .field("heartbeat", &self.heartbeat)
            .field("request_timeout", &self.request_timeout)
            .field("max_limit", &self.max_limit)
            .field("append_workers", &self.append_workers)
            .field("max_connections", &self.max_connections)
            .field("max_pending_bytes", &self.max_pending_bytes)
            .finish()
    }
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions::new()
    }
}

impl ServeOptions {
    /// The defaults, each written on its method.
    pub fn new() -> ServeOptions {
        ServeOptions {
            listen: DEFAULT_LISTEN.parse().expect("a valid address"),
            token: None,
            body_limit: 8 << 20,
            max_subscribers: 4096,
            heartbeat: Duration::from_secs(15),
            request_timeout: Duration::from_secs(30),
            max_limit: 10_000,
            append_workers: 2,
            max_connections: 8192,
            max_pending_bytes: 256 << 20,
        }
    }

    /// The address to listen on. Default `127.0.0.1:7464`; port 0 picks a free port
    /// ([`crate::Server::local_addr`] tells which).
    pub fn listen(mut self, addr: SocketAddr) -> ServeOptions {
        self.listen = addr;
        self
    }

    /// A bearer token every request but `GET /health` must carry (`Authorization: Bearer
    /// TOKEN`), compared in constant time. Default none: no authentication.
    ///
    /// An empty token is refused by [`crate::Server::bind`] (an `InvalidInput` error): it is
    /// what a secret that was never filled in (`token(env::var("TOKEN").unwrap_or_default())`)
    /// gives, and taking it as "no token" would serve the store to anyone. Leave the token
    /// unset for a server without authentication.
    pub fn token(mut self, token: impl Into<String>) -> ServeOptions {
        self.token = Some(token.into());
        self
    }

    /// The largest request body accepted, in bytes; a larger one is answered 413 without being
    /// read whole. Default 8 MiB.
    pub fn body_limit(mut self, bytes: usize) -> ServeOptions {
        self.body_limit = bytes;
        self
    }

    /// The most bytes of append bodies held at once, each byte counted from when it is read
    /// until its append ends: an append whose body would take more is answered 503 (kind
    /// `unavailable`) with nothing written. What bounds
    /// the server's memory when many clients send large bodies while the store is slow (the
    /// body limit bounds one request, `max_connections` how many). Default 256 MiB; never less
    /// than the body limit, so that one body of the largest size always fits.
    pub fn max_pending_bytes(mut self, bytes: usize) -> ServeOptions {
        self.max_pending_bytes = bytes;
        self
    }

    /// The most live feeds (`GET /subscribe`) open at once; one more is answered 503. Default
    /// 4096.
    pub fn max_subscribers(mut self, n: usize) -> ServeOptions {
        self.max_subscribers = n;
        self
    }

    /// How often an idle feed sends a heartbeat (an SSE comment line, or an NDJSON
    /// `{"heartbeat":SEQ}` line, SEQ the feed's position). Default 15 s.
    pub fn heartbeat(mut self, every: Duration) -> ServeOptions {
        self.heartbeat = every;
        self
    }

    /// The longest a non-streaming request may take before it is answered 503, the longest
    /// an append's body may take to arrive before it is answered 408, the longest a request's
    /// headers may take to arrive (and a connection may stay idle between requests) before it
    /// is closed, and the longest a client may take nothing of its answer (a live feed's
    /// included) before its connection is cut, as a shutdown's grace. Default 30 s. An append
    /// already handed to the store still completes; retry it with the same event ids or key
    /// to learn its result.
    pub fn request_timeout(mut self, timeout: Duration) -> ServeOptions {
        self.request_timeout = timeout;
        self
    }

    /// The largest `limit` a read accepts (a larger one is answered 400) and the page size of a
    /// listing given none. Default 10,000. Reads without a `limit` stream every match.
    pub fn max_limit(mut self, n: usize) -> ServeOptions {
        self.max_limit = n.max(1);
        self
    }

    /// The most connections served at once (at least 1); more wait, unanswered, until one
    /// closes. Default 8192 (the process needs as many file descriptors).
    pub fn max_connections(mut self, n: usize) -> ServeOptions {
        self.max_connections = n.max(1);
        self
    }

    /// How many threads at most hand queued appends to the store at once (at least 1). Each
    /// takes every append waiting and passes them to `EventStore::append_requests` together:
    /// on the file store they share one sync, and no thread is held per waiting append.
    /// Default 2: one writing while the other waits for its sync.
    pub fn append_workers(mut self, n: usize) -> ServeOptions {
        self.append_workers = n.max(1);
        self
    }
}
