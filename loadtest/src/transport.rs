//! Opening TCP connections, optionally from a chosen local address so one
//! machine can go past the ~28k ephemeral ports of a single source address.

use std::io;
use std::net::{IpAddr, SocketAddr};

use tokio::net::{TcpSocket, TcpStream};

pub async fn connect(broker: SocketAddr, source: Option<IpAddr>) -> io::Result<TcpStream> {
    let socket = if broker.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    if let Some(ip) = source {
        // Port 0: the kernel picks a free port on that address.
        socket.bind(SocketAddr::new(ip, 0))?;
    }
    let stream = socket.connect(broker).await?;
    // Small packets must leave at once, or latency measures Nagle's delay.
    stream.set_nodelay(true)?;
    Ok(stream)
}
