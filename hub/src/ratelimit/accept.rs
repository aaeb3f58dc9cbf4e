//! Per-listener accept rate (connect storms): the accept loop asks for a
//! token before taking the next connection off the kernel's backlog, so a
//! storm is admitted at the configured pace while established clients keep
//! the CPU. Connections waiting their turn stay in the listen backlog (the
//! kernel's bound; beyond it, clients retry their SYN).

use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Instant;

use tokio::net::{TcpListener, TcpSocket};

use super::bucket::Bucket;

/// Listen backlog asked of the kernel (which caps it at `somaxconn`): room
/// for a storm that an accept rate holds back. Beyond it, the kernel drops
/// SYNs and clients retry with growing pauses.
pub const BACKLOG: u32 = 4096;

/// Binds a TCP listener with `BACKLOG` (tokio's `bind` asks for 1024).
pub fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}

pub struct AcceptLimiter {
    bucket: Mutex<Bucket>,
}

impl AcceptLimiter {
    /// `None` when the listener has no accept rate configured.
    pub fn for_listener(config: &super::RateLimitConfig, listener: &str) -> Option<AcceptLimiter> {
        let l = config.listeners.get(listener)?;
        let rate = l.accept_per_sec?;
        let burst = l.accept_burst.unwrap_or(rate / 10);
        Some(AcceptLimiter {
            bucket: Mutex::new(Bucket::new(rate, burst, Instant::now())),
        })
    }

    /// Waits until the next connection may be accepted.
    pub async fn ready(&self) {
        loop {
            let next = {
                let mut b = self.bucket.lock().unwrap_or_else(|e| e.into_inner());
                b.try_take(Instant::now())
            };
            match next {
                Ok(()) => return,
                Err(at) => tokio::time::sleep_until(at.into()).await,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn admits_at_the_configured_rate() {
        let config: super::super::RateLimitConfig =
            toml::from_str("[listeners.tcp]\naccept_per_sec = 1000\naccept_burst = 100\n").unwrap();
        assert!(AcceptLimiter::for_listener(&config, "tls").is_none());
        let l = AcceptLimiter::for_listener(&config, "tcp").unwrap();
        let start = tokio::time::Instant::now();
        for _ in 0..300 {
            l.ready().await;
        }
        // 100 from the burst, 200 more at 1000/s: at least 200 ms (no upper
        // bound: a loaded machine may be slower, never faster).
        let took = start.elapsed();
        assert!(took >= std::time::Duration::from_millis(195), "{took:?}");
    }
}
