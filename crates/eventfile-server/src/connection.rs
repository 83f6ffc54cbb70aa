//! The server's connections: every accepted socket, wrapped so that once a shutdown has lasted its
//! grace period, a write its client does not take fails instead of waiting forever.
//!
//! A graceful shutdown waits for every connection to finish the response it is writing. A client
//! that reads nothing would hold it forever: a live feed ends when the server stops, but only
//! when its connection asks it for the next chunk, and a connection whose socket is full asks
//! for nothing. So after the grace (the request timeout), a write that would wait for the client
//! fails; the connection closes and the shutdown completes. A client that takes what it is sent
//! is never cut, and no connection is cut before the shutdown begins.
//!
//! This module owns no protocol detail: it only decides when a blocked write gives up.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// Accepts connections that give up blocked writes once `cut` turns true.
pub(crate) struct Listener {
    pub listener: TcpListener,
    pub cut: watch::Receiver<bool>,
}

impl axum::serve::Listener for Listener {
    type Io = Connection;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Connection, SocketAddr) {
        let (io, addr) = axum::serve::Listener::accept(&mut self.listener).await;
        let mut cut = self.cut.clone();
        let cut = Box::pin(async move {
            // A dropped sender (the server is gone) cuts too.
            let _ = cut.wait_for(|c| *c).await;
        });
        (Connection { io, cut: Some(cut) }, addr)
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }
}

/// A socket whose blocked writes fail once the shutdown's grace is over.
pub(crate) struct Connection {
    io: TcpStream,
    /// Completes when writes should stop waiting; `None` once it has.
    cut: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
}

impl Connection {
    /// A write found the socket full: waits with it for the cut, or fails if it came.
    fn blocked<T>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
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
            done => done,
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
            done => done,
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
