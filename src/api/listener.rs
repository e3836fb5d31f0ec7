//! The socket `strata serve` accepts on, with connection caps (OWASP API4, unrestricted resource
//! consumption).
//!
//! Every connection holds a file descriptor and a task for as long as the client keeps it open, so
//! an unbounded number of them (slow or idle clients, or a flood) would eventually leave the
//! process without descriptors for the lake's own files. Two caps bound that:
//! - `serve.max_connections` in all: at the cap the server stops accepting, and further clients
//!   wait in the kernel's accept queue until a connection closes (nothing is refused);
//! - `serve.max_connections_per_client` from one IP address: a client over it is answered
//!   `429 too_many_connections` and closed, so one client cannot take every slot. Behind a reverse
//!   proxy every client has the proxy's address: raise it to `max_connections` there.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use axum::serve::Listener;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tracing::warn;

use crate::api::error::{ErrorBody, ErrorDetail};

/// A TCP listener that enforces the two caps of the module docs.
pub struct CappedListener {
    inner: TcpListener,
    slots: Arc<Semaphore>,
    clients: Arc<Mutex<HashMap<IpAddr, usize>>>,
    per_client: usize,
}

impl CappedListener {
    pub fn new(inner: TcpListener, max_connections: usize, per_client: usize) -> Self {
        Self {
            inner,
            slots: Arc::new(Semaphore::new(max_connections)),
            clients: Arc::default(),
            per_client,
        }
    }
}

impl Listener for CappedListener {
    type Io = CappedStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (CappedStream, SocketAddr) {
        loop {
            let slot = Arc::clone(&self.slots)
                .acquire_owned()
                .await
                .expect("the semaphore is never closed");
            // TcpListener's own `Listener::accept` retries (and logs) failed accepts.
            let (stream, addr) = Listener::accept(&mut self.inner).await;
            match ClientSlot::take(&self.clients, addr.ip(), self.per_client) {
                Some(client) => {
                    return (
                        CappedStream {
                            stream,
                            _slot: slot,
                            _client: client,
                        },
                        addr,
                    );
                }
                None => {
                    warn!(client = %addr.ip(), cap = self.per_client,
                        "connection refused: serve.max_connections_per_client reached");
                    tokio::spawn(refuse(stream));
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

/// Answers a connection over the per-client cap with a 429 and closes it. Never waits long: a
/// client that does not read its answer is dropped after a second.
async fn refuse(mut stream: TcpStream) {
    // Written by hand (no HTTP server runs on this connection), with the API's own error body.
    let body = serde_json::to_string(&ErrorBody {
        error: ErrorDetail {
            code: "too_many_connections".into(),
            message: "this client has serve.max_connections_per_client connections open; \
                      reuse them"
                .into(),
        },
    })
    .expect("an error body serializes");
    let answer = format!(
        "HTTP/1.1 429 Too Many Requests\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\nretry-after: 1\r\n\r\n{body}",
        body.len()
    );
    let write = async {
        stream.write_all(answer.as_bytes()).await?;
        stream.shutdown().await
    };
    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), write).await;
}

/// One client's count of open connections, given back when the connection closes.
struct ClientSlot {
    clients: Arc<Mutex<HashMap<IpAddr, usize>>>,
    ip: IpAddr,
}

impl ClientSlot {
    fn take(clients: &Arc<Mutex<HashMap<IpAddr, usize>>>, ip: IpAddr, cap: usize) -> Option<Self> {
        let mut open = clients
            .lock()
            .expect("never poisoned: no panics under the lock");
        let count = open.entry(ip).or_insert(0);
        if *count >= cap {
            return None;
        }
        *count += 1;
        Some(ClientSlot {
            clients: Arc::clone(clients),
            ip,
        })
    }
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let mut open = self.clients.lock().expect("never poisoned");
        if let Some(count) = open.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// An accepted connection; its slots are given back when hyper drops it.
pub struct CappedStream {
    stream: TcpStream,
    _slot: OwnedSemaphorePermit,
    _client: ClientSlot,
}

impl AsyncRead for CappedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for CappedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_slot_is_given_back_when_its_connection_closes() {
        let clients = Arc::new(Mutex::new(HashMap::new()));
        let ip: IpAddr = [10, 0, 0, 1].into();
        let first = ClientSlot::take(&clients, ip, 2).unwrap();
        let second = ClientSlot::take(&clients, ip, 2).unwrap();
        assert!(ClientSlot::take(&clients, ip, 2).is_none(), "over the cap");
        let other: IpAddr = [10, 0, 0, 2].into();
        assert!(ClientSlot::take(&clients, other, 2).is_some(), "per client");
        drop(first);
        let third = ClientSlot::take(&clients, ip, 2).expect("a slot came back");
        drop((second, third));
        assert!(clients.lock().unwrap().is_empty(), "no entry left behind");
    }
}
