//! The server's connections: every accepted socket, holding one of the server's connection
//! slots, wrapped so that a write its client does not take gives up instead of waiting forever.
//!
//! A client that reads nothing would hold its connection, and a live feed's subscriber slot,
//! for as long as the server runs: a feed ends only when its connection asks it for the next
//! chunk, and a connection whose socket is full asks for nothing. So a write that has waited
//! for the client for the stall limit (the request timeout) fails, and the connection closes.
//! A graceful shutdown waits for every connection to finish the response it is writing; once
//! the shutdown has lasted its grace (the request timeout too), a write that would wait fails at
//! once. A client that takes what it is sent, however slowly, is never cut.
//!
//! This module owns no protocol detail: it only decides when a blocked write gives up.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::time::Sleep;

/// Accepts connections, one per free slot (the others wait in the kernel's backlog), that give
/// up writes blocked for `stall`, or at once once `cut` turns true.
pub(crate) struct Listener {
    pub listener: TcpListener,
    pub cut: watch::Receiver<bool>,
    pub slots: Arc<Semaphore>,
    pub stall: Duration,
}

impl Listener {
    /// The next connection, once a slot is free.
    pub(crate) async fn accept(&mut self) -> Connection {
        let slot = Arc::clone(&self.slots)
            .acquire_owned()
            .await
            .expect("the slots are never closed");
        // Errors (too many open files, a connection reset before it was taken) are retried
        // after a pause by axum's accept.
        let (io, _addr): (TcpStream, SocketAddr) =
            axum::serve::Listener::accept(&mut self.listener).await;
        let mut cut = self.cut.clone();
        let cut = Box::pin(async move {
            // A dropped sender (the server is gone) cuts too.
            let _ = cut.wait_for(|c| *c).await;
        });
        Connection {
            io,
            cut: Some(cut),
            stall: self.stall,
            stalled: None,
            _slot: slot,
        }
    }
}

/// A socket whose blocked writes fail after the stall limit, or once the shutdown's grace is
/// over. Holds its connection slot until dropped.
pub(crate) struct Connection {
    io: TcpStream,
    /// Completes when writes should stop waiting; `None` once it has.
    cut: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
    /// How long a write may wait for the client to take a byte.
    stall: Duration,
    /// Running while a write waits: when it completes, the write fails.
    stalled: Option<Pin<Box<Sleep>>>,
    _slot: OwnedSemaphorePermit,
}

impl Connection {
    /// A write found the socket full: waits with it for the stall limit and the cut, or fails
    /// if either came.
    fn blocked<T>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        let stall = self.stall;
        let timer = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(stall)));
        if timer.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client took nothing of its answer for the request timeout",
            )));
        }
        if let Some(cut) = &mut self.cut {
            if cut.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            self.cut = None;
        }
        Poll::Ready(Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "the server is shutting down and the client took nothing for its grace period",
        )))
    }

    /// A write went through: the client is taking what it is sent.
    fn moved<T>(&mut self, done: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        if matches!(done, Poll::Ready(Ok(_))) {
            self.stalled = None;
        }
        done
    }
}

impl AsyncRead for Connection {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl AsyncWrite for Connection {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.io).poll_write(cx, buf) {
            Poll::Pending => this.blocked(cx),
            done => this.moved(done),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.io).poll_write_vectored(cx, bufs) {
            Poll::Pending => this.blocked(cx),
            done => this.moved(done),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}
