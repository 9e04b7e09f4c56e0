//! One UDP socket for every v1/v2c poll of a collector.
//!
//! A socket per device poll (what `snmp2`'s session does) costs a socket, bind, connect, two
//! epoll registrations and a close per device, and 128 KiB of buffers per poll in flight (64 at
//! a time: 8 MiB). Here every request of every poll goes out of one socket, one task reads the
//! answers into one 64 KiB buffer and hands each to the poll that waits for its request-id, as
//! a copy of exactly its length.
//!
//! An answer is handed over only if it comes from the address the request went to and carries
//! its request-id (unique among the requests in flight); anything else is counted and dropped.
//! The waiting poll then checks the community and the PDU type. The map of requests in flight
//! holds one entry per waiting poll, so it is bounded by the poll concurrency.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::sync::oneshot;
use tracing::debug;

/// Largest UDP payload.
const MAX_DATAGRAM: usize = 65_507;

struct Pending {
    to: SocketAddr,
    reply: oneshot::Sender<Vec<u8>>,
}

struct Shared {
    pending: Mutex<HashMap<i32, Pending>>,
    next_id: AtomicI32,
    /// Datagrams that matched no request in flight (late, duplicated, spoofed or garbage).
    unmatched: AtomicU64,
}

/// The shared socket (one per address family in use) and its reader.
pub struct Transport {
    v4: Arc<UdpSocket>,
    v6: Option<Arc<UdpSocket>>,
    shared: Arc<Shared>,
    readers: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Transport {
    fn drop(&mut self) {
        for reader in &self.readers {
            reader.abort();
        }
    }
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport")
            .field("v4", &self.v4.local_addr().ok())
            .finish_non_exhaustive()
    }
}

impl Transport {
    /// Binds the sockets (IPv4, and IPv6 where the host has it) and starts their readers on
    /// the current runtime.
    ///
    /// # Errors
    /// When no IPv4 socket can be bound.
    pub async fn bind() -> io::Result<Arc<Transport>> {
        let v4 = Arc::new(UdpSocket::bind("0.0.0.0:0").await?);
        let v6 = UdpSocket::bind("[::]:0").await.ok().map(Arc::new);
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let shared = Arc::new(Shared {
            pending: Mutex::new(HashMap::new()),
            next_id: AtomicI32::new(((seed ^ std::process::id()) & 0x3fff_ffff) as i32),
            unmatched: AtomicU64::new(0),
        });
        let readers = std::iter::once(&v4)
            .chain(v6.as_ref())
            .map(|socket| tokio::spawn(read(socket.clone(), shared.clone())))
            .collect();
        Ok(Arc::new(Transport {
            v4,
            v6,
            shared,
            readers,
        }))
    }

    /// A request-id for a new request: unique among those in flight (ids are 30 bits and
    /// cycle through a billion before they repeat).
    pub fn next_id(&self) -> i32 {
        self.shared.next_id.fetch_add(1, Ordering::Relaxed) & 0x3fff_ffff
    }

    /// Datagrams that answered no request in flight, so far.
    pub fn unmatched(&self) -> u64 {
        self.shared.unmatched.load(Ordering::Relaxed)
    }

    /// Sends `request` (whose request-id is `id`) to `to` and waits up to `timeout` for the
    /// answer with that id from that address. `None`: no answer in time.
    ///
    /// # Errors
    /// When the request cannot be sent (no route, no socket of that address family).
    pub async fn exchange(
        &self,
        to: SocketAddr,
        id: i32,
        request: &[u8],
        timeout: Duration,
    ) -> io::Result<Option<Vec<u8>>> {
        let socket = match (to, &self.v6) {
            (SocketAddr::V4(_), _) => &self.v4,
            (SocketAddr::V6(_), Some(v6)) => v6,
            (SocketAddr::V6(_), None) => {
                return Err(io::Error::new(
                    io::ErrorKind::AddrNotAvailable,
                    "this host has no IPv6 socket",
                ))
            }
        };
        let (reply, answer) = oneshot::channel();
        self.lock().insert(id, Pending { to, reply });
        // Removes the entry however this ends (answer, timeout, send error, cancellation).
        let _entry = Entry {
            shared: &self.shared,
            id,
        };
        socket.send_to(request, to).await?;
        match tokio::time::timeout(timeout, answer).await {
            Ok(Ok(bytes)) => Ok(Some(bytes)),
            Ok(Err(_)) | Err(_) => Ok(None),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i32, Pending>> {
        self.shared
            .pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

struct Entry<'a> {
    shared: &'a Shared,
    id: i32,
}

impl Drop for Entry<'_> {
    fn drop(&mut self) {
        self.shared
            .pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&self.id);
    }
}

/// Reads answers until the transport is dropped, handing each to the request it answers.
async fn read(socket: Arc<UdpSocket>, shared: Arc<Shared>) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let (n, from) = match socket.recv_from(&mut buf).await {
            Ok(received) => received,
            // An unconnected socket reports little; whatever it is, the next read may work.
            Err(error) => {
                debug!(%error, "shared SNMP socket: receive failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let bytes = &buf[..n];
        let id = match snmp2::Pdu::from_bytes(bytes) {
            Ok(pdu) => pdu.req_id,
            Err(_) => {
                shared.unmatched.fetch_add(1, Ordering::Relaxed);
                continue;
            }
        };
        let mut pending = shared
            .pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match pending.get(&id) {
            Some(p) if p.to == from => {
                if let Some(p) = pending.remove(&id) {
                    let _ = p.reply.send(bytes.to_vec());
                }
            }
            _ => {
                shared.unmatched.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}
