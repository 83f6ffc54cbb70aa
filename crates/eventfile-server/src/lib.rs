//! # eventfile-server
//!
//! Any eventfile store over HTTP: appends and reads as JSON (or NDJSON), live subscriptions as
//! Server-Sent Events with `Last-Event-ID` resume, Prometheus metrics and an OpenAPI document.
//! `eventfile serve` runs it over the store the command line names; [`serve`] and [`Server`]
//! run it inside an application.
//!
//! ```no_run
//! use std::sync::Arc;
//! use eventfile_server::{ServeOptions, Server};
//!
//! # async fn run() -> std::io::Result<()> {
//! let store = Arc::new(eventfile::Store::open("./events").map_err(std::io::Error::other)?);
//! let server = Server::bind(store, ServeOptions::new().token("s3cret")).await?;
//! println!("listening on {}", server.local_addr());
//! server.run_until(async { let _ = tokio::signal::ctrl_c().await; }).await
//! # }
//! ```
//!
//! The routes, bodies and statuses are in `openapi.json` (served at `GET /openapi.json`).
//!
//! This crate owns the HTTP protocol: routes, bodies, statuses, the error body, auth, limits,
//! metrics and the OpenAPI document. It must never implement a store rule itself (every check
//! of events, streams and positions is the library's, reached through `EventStore`), and the
//! library must never depend on it.
#![deny(unsafe_code)]
#![warn(missing_docs)]

mod append;
mod auth;
mod connection;
mod error;
mod feed;
mod input;
mod metrics;
mod options;
mod queue;
mod read;
mod state;

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use eventfile::EventStore;
use tokio::net::TcpListener;
use tokio::sync::watch;

pub use options::{DEFAULT_LISTEN, ServeOptions};

use crate::error::ApiError;
use crate::state::{AppState, Shared};

/// The OpenAPI 3.0 document of the server, as served at `GET /openapi.json`.
pub const OPENAPI: &str = include_str!("openapi.json");

/// A server bound to its address, not yet serving.
#[must_use]
pub struct Server {
    listener: TcpListener,
    state: Shared,
    stop: watch::Sender<bool>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("local_addr", &self.local_addr())
            .finish()
    }
}

impl Server {
    /// Binds the listening socket of `options` over `store`. An empty bearer token
    /// ([`ServeOptions::token`]) is refused with [`io::ErrorKind::InvalidInput`] before
    /// anything is bound.
    pub async fn bind(store: Arc<dyn EventStore>, options: ServeOptions) -> io::Result<Server> {
        if options.token.as_deref() == Some("") {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the bearer token is empty, which would let every request in: give a token, or \
                 none for a server without authentication",
            ));
        }
        let listener = TcpListener::bind(options.listen).await?;
        let head = store.head_seq().map_err(io::Error::other)?;
        let (stop, stop_rx) = watch::channel(false);
        let state = Arc::new(AppState {
            store,
            pending: input::Budget::new(options.max_pending_bytes.max(options.body_limit)),
            options,
            metrics: Default::default(),
            head: watch::Sender::new(head),
            stop: stop_rx,
            subscribers: AtomicUsize::new(0),
            in_flight: Default::default(),
            appends: Default::default(),
        });
        Ok(Server {
            listener,
            state,
            stop,
        })
    }

    /// The address it listens on (the port chosen, if the options named port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// Serves until `shutdown` completes, then shuts down gracefully: no new connection is
    /// taken, live feeds end, and in-flight requests (appends included, also those whose
    /// client hung up) finish before this returns. A client that takes nothing of its answer
    /// for the request timeout after the shutdown began (a stalled feed's, whose socket is
    /// full) is cut rather than waited for. The server then holds no handle of the store: it is
    /// the caller's to close.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> io::Result<()> {
        let Server {
            listener,
            state,
            stop,
        } = self;
        let watcher = state::watch_head(Arc::clone(&state), state.stop.clone());
        let app = router(Arc::clone(&state));
        let stop = Arc::new(stop);
        let signal = {
            let stop = Arc::clone(&stop);
            async move {
                shutdown.await;
                let _ = stop.send(true);
            }
        };
        let (cut, cut_rx) = watch::channel(false);
        let timeout = state.options.request_timeout;
        let mut listener = connection::Listener {
            listener,
            cut: cut_rx,
            slots: Arc::new(tokio::sync::Semaphore::new(state.options.max_connections)),
            stall: timeout,
        };
        let mut stopped = state.stop.clone();
        let cut_after_grace = async move {
            let _ = stopped.wait_for(|s| *s).await;
            tokio::time::sleep(timeout).await;
            let _ = cut.send(true);
        };
        // hyper's HTTP/1 connections, with a timer, so that a request's headers must arrive
        // within the request timeout, and an idle connection between requests closes after it:
        // a client that opens connections and sends nothing (or a byte now and then) cannot
        // hold the connection slots.
        let graceful = hyper_util::server::graceful::GracefulShutdown::new();
        tokio::pin!(signal);
        loop {
            let io = tokio::select! {
                io = listener.accept() => io,
                () = &mut signal => break,
            };
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(timeout)
                .serve_connection(
                    hyper_util::rt::TokioIo::new(io),
                    hyper_util::service::TowerToHyperService::new(app.clone()),
                );
            let conn = graceful.watch(conn);
            tokio::spawn(async move {
                if let Err(e) = conn.await {
                    log::debug!("connection ended: {e}");
                }
            });
        }
        drop(listener);
        let shutdown = graceful.shutdown();
        tokio::pin!(shutdown);
        tokio::select! {
            () = &mut shutdown => {}
            () = cut_after_grace => shutdown.await,
        }
        let _ = stop.send(true);
        // Store calls whose clients went away still run: wait for them, and for the watcher.
        let in_flight = Arc::clone(&state.in_flight);
        drop(state);
        in_flight.drained().await;
        let _ = tokio::task::spawn_blocking(move || watcher.join()).await;
        Ok(())
    }
}

/// Serves `store` as `options` say until SIGINT or SIGTERM, then shuts down gracefully (see
/// [`Server::run_until`]).
pub async fn serve(store: Arc<dyn EventStore>, options: ServeOptions) -> io::Result<()> {
    let server = Server::bind(store, options).await?;
    server.run_until(shutdown_signal()).await
}

/// Completes on the first SIGINT or SIGTERM (Ctrl-C elsewhere).
///
/// The handlers are installed when this is called, not when the future is first polled: a
/// caller that announces it listens after calling it loses no signal sent in between (which
/// would otherwise end the process by the signal's default action, with no clean close). Call
/// it inside the runtime that will poll it.
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let handlers = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        );
        async move {
            match handlers {
                (Ok(mut int), Ok(mut term)) => {
                    tokio::select! {
                        _ = int.recv() => {}
                        _ = term.recv() => {}
                    }
                }
                _ => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
    }
    #[cfg(not(unix))]
    {
        async {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// Runs [`serve`] on a runtime of its own, for a synchronous caller (`eventfile serve`), and
/// calls `ready` with the bound address once it listens.
pub fn serve_blocking(
    store: Arc<dyn EventStore>,
    options: ServeOptions,
    ready: impl FnOnce(SocketAddr),
) -> io::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        // Appenders wait for the group commit on the blocking pool: room for many at once.
        .max_blocking_threads(1024)
        .build()?;
    runtime.block_on(async {
        let server = Server::bind(store, options).await?;
        // Before `ready`: a caller told the server listens may signal it at once.
        let shutdown = shutdown_signal();
        ready(server.local_addr());
        server.run_until(shutdown).await
    })
}

fn router(state: Shared) -> Router {
    Router::new()
        .route(
            "/streams/{stream}",
            post(append::append_stream).get(read::read_stream),
        )
        .route("/append", post(append::append_multi))
        .route("/events", get(read::query_events))
        .route("/events/{id}", get(read::get_event))
        .route("/streams", get(read::list_streams))
        .route("/types", get(read::list_types))
        .route("/tags", get(read::list_tags))
        .route("/head", get(read::head))
        .route("/subscribe", get(feed::subscribe))
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&state),
            auth::require_token,
        ))
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&state),
            track,
        ))
        .with_state(state)
}

/// Counts every request by route template (never the raw path: its cardinality is the
/// client's), method and status. The method is the client's too (any token is one): those of
/// RFC 9110 are counted by name, any other as `other`.
async fn track(State(state): State<Shared>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str)
        .to_owned();
    let method = match request.method().as_str() {
        m @ ("GET" | "HEAD" | "POST" | "PUT" | "DELETE" | "CONNECT" | "OPTIONS" | "TRACE"
        | "PATCH") => m,
        _ => "other",
    }
    .to_owned();
    let response = next.run(request).await;
    state.metrics.request(
        &route,
        &method,
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}

async fn health() -> Response {
    json_response(r#"{"status":"ok"}"#.to_owned())
}

async fn metrics(State(state): State<Shared>) -> Response {
    let head = *state.head.borrow();
    let text = state.metrics.render(
        state.subscribers.load(Ordering::Relaxed),
        head,
        state.pending.used(),
        state.store.metrics(),
    );
    let mut r = (StatusCode::OK, text).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    r
}

async fn openapi() -> Response {
    json_response(OPENAPI.to_owned())
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such route; GET /openapi.json lists them")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this route does not take this method; GET /openapi.json lists them",
    )
}

fn json_response(text: String) -> Response {
    let mut r = (StatusCode::OK, text).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}
