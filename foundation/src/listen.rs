//! Listening sockets for the services, with an accept queue sized for a herd.
//!
//! tokio's `TcpListener::bind` asks the kernel for a backlog of 1,024 completed connections.
//! ndes-proxy stops calling `accept` at its connection cap on purpose (excess connections wait
//! in the kernel), and a herd of 1,024 devices whose client kept idle connections open
//! overflowed that queue: the first runs of the 10,000-device renewal herd counted 82,028
//! `ListenOverflows`. The kernel then drops the handshake's last ACK; the client believes it is
//! connected, sends its request, and waits out TCP's retransmission back-off. With the backlog
//! below, the same herd counted none (BENCHMARKS.md, L5).

use std::io;
use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpSocket, ToSocketAddrs};

/// The accept queue asked for; Linux clamps it to `net.core.somaxconn` (4,096 by default
/// since 5.4).
pub const LISTEN_BACKLOG: u32 = 4096;

/// Binds the first address `addr` resolves to that accepts, as `TcpListener::bind` does, with
/// a backlog of [`LISTEN_BACKLOG`] and `SO_REUSEADDR` (a restarted service rebinds its port
/// while old connections are in TIME_WAIT).
pub async fn listen(addr: impl ToSocketAddrs) -> io::Result<TcpListener> {
    let mut last = None;
    for a in tokio::net::lookup_host(addr).await? {
        match listen_on(a, LISTEN_BACKLOG) {
            Ok(listener) => return Ok(listener),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "the address resolved to nothing",
        )
    }))
}

fn listen_on(addr: SocketAddr, backlog: u32) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(backlog)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::time::Duration;

    use super::*;

    /// Connections completed and waiting for `accept` on `port`: the receive-queue field of
    /// the LISTEN row of `/proc/net/tcp`.
    fn waiting_for_accept(port: u16) -> Option<u32> {
        let table = std::fs::read_to_string("/proc/net/tcp").ok()?;
        table.lines().skip(1).find_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let local_port = u16::from_str_radix(fields.get(1)?.rsplit(':').next()?, 16).ok()?;
            let listening = *fields.get(3)? == "0A";
            let rx_queue = fields.get(4)?.split(':').nth(1)?;
            (local_port == port && listening)
                .then(|| u32::from_str_radix(rx_queue, 16).ok())
                .flatten()
        })
    }

    /// Opens `n` connections to a listener that never accepts; returns how many the kernel
    /// completed (the others wait on a dropped handshake until the bound ends them).
    async fn queue(listener: &TcpListener, n: usize) -> (usize, u32) {
        let port = listener.local_addr().unwrap().port();
        let connects = (0..n).map(|_| {
            tokio::time::timeout(
                Duration::from_millis(500),
                tokio::net::TcpStream::connect(("127.0.0.1", port)),
            )
        });
        let mut set = tokio::task::JoinSet::new();
        for c in connects {
            set.spawn(c);
        }
        let mut connected = 0;
        while let Some(done) = set.join_next().await {
            connected += usize::from(matches!(done, Ok(Ok(Ok(_)))));
        }
        (connected, waiting_for_accept(port).unwrap())
    }

    /// The backlog reaches the kernel: a short one drops what does not fit, a longer one
    /// holds every connection until the service accepts it.
    #[tokio::test]
    async fn connections_beyond_the_backlog_wait_only_if_it_is_long_enough() {
        let short = listen_on("127.0.0.1:0".parse().unwrap(), 4).unwrap();
        let (connected, waiting) = queue(&short, 12).await;
        assert!(
            waiting < 12 && connected < 12,
            "{connected} connected, {waiting} waiting"
        );
        let long = listen_on("127.0.0.1:0".parse().unwrap(), 64).unwrap();
        assert_eq!(queue(&long, 12).await, (12, 12));
    }

    #[tokio::test]
    async fn a_listener_serves_and_a_port_in_use_is_an_error() {
        let listener = listen("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (accepted, connected) =
            tokio::join!(listener.accept(), tokio::net::TcpStream::connect(addr));
        assert_eq!(
            accepted.unwrap().1.port(),
            connected.unwrap().local_addr().unwrap().port()
        );
        let e = listen(addr).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AddrInUse);
    }
}
