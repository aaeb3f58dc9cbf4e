//! The Kafka TCP server: accept loop, one task per connection, and the
//! maintenance tasks (interval flush, retention, group timers) that run for
//! as long as the server does.
//!
//! Requests on one connection are handled one at a time, in order, as Kafka
//! brokers do: responses must come back in request order, and a long-polling
//! Fetch holds back the connection's next request just as it does in Kafka.

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufWriter};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};

use crate::broker::Broker;
use crate::config::FlushPolicy;
use crate::protocol::{self, ClientInfo, Reply};

impl Broker {
    /// Binds `config.listen` and serves until `shutdown` resolves.
    pub async fn run(&self, shutdown: impl Future<Output = ()> + Send) -> io::Result<()> {
        let listener = TcpListener::bind(self.config().listen).await?;
        self.serve(listener, shutdown).await
    }

    /// Serves the Kafka protocol on `listener` until `shutdown` resolves, then
    /// stops accepting, closes connections and flushes the logs.
    pub async fn serve(
        &self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send,
    ) -> io::Result<()> {
        let local = listener.local_addr()?;
        *self.inner.bound.lock().unwrap_or_else(|e| e.into_inner()) = Some(local);
        tracing::info!(addr = %local, "queue listening");
        let (stop_tx, stop_rx) = watch::channel(false);
        let maintenance = self.spawn_maintenance(stop_rx.clone());
        let permits = Arc::new(Semaphore::new(self.config().max_connections.max(1)));
        tokio::pin!(shutdown);
        loop {
            let permit = tokio::select! {
                // Stop accepting on shutdown.
                _ = &mut shutdown => break,
                // Bound the number of connections: wait for a free slot before accepting.
                p = permits.clone().acquire_owned() => match p {
                    Ok(p) => p,
                    Err(_) => break,
                },
            };
            let (stream, peer) = tokio::select! {
                _ = &mut shutdown => break,
                r = listener.accept() => match r {
                    Ok(x) => x,
                    Err(e) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            let broker = self.clone();
            let mut stop = stop_rx.clone();
            tokio::spawn(async move {
                let client = ClientInfo {
                    client_id: String::new(),
                    host: peer.ip().to_string(),
                };
                tokio::select! {
                    r = connection(&broker, stream, client) => {
                        if let Err(e) = r {
                            tracing::debug!(peer = %peer, error = %e, "connection ended");
                        }
                    }
                    // Drop the connection at shutdown.
                    _ = stop.wait_for(|s| *s) => {}
                }
                drop(permit);
            });
        }
        let _ = stop_tx.send(true);
        for t in maintenance {
            let _ = t.await;
        }
        let b = self.clone();
        tokio::task::spawn_blocking(move || b.close())
            .await
            .map_err(io::Error::other)?
            .map_err(io::Error::other)
    }

    fn spawn_maintenance(&self, stop: watch::Receiver<bool>) -> Vec<tokio::task::JoinHandle<()>> {
        let mut tasks = Vec::new();
        let cfg = self.config().clone();
        let b = self.clone();
        let mut s = stop.clone();
        tasks.push(tokio::spawn(async move {
            let period = Duration::from_millis(cfg.flush_interval_ms.max(1));
            loop {
                tokio::select! {
                    _ = s.wait_for(|v| *v) => return,
                    _ = tokio::time::sleep(period) => {}
                }
                let b2 = b.clone();
                let r = tokio::task::spawn_blocking(move || b2.flush_all()).await;
                if let Ok(Err(e)) = r {
                    tracing::error!(error = %e, "periodic flush failed");
                }
                if cfg.flush == FlushPolicy::None {
                    // Still persists producer state; the logs themselves are not fsynced.
                }
            }
        }));
        let b = self.clone();
        let mut s = stop.clone();
        let period = Duration::from_millis(self.config().retention.check_interval_ms.max(100));
        tasks.push(tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = s.wait_for(|v| *v) => return,
                    _ = tokio::time::sleep(period) => {}
                }
                let b2 = b.clone();
                match tokio::task::spawn_blocking(move || b2.enforce_retention()).await {
                    Ok(Ok(n)) if n > 0 => {
                        tracing::info!(segments = n, "retention deleted segments")
                    }
                    Ok(Err(e)) => tracing::error!(error = %e, "retention failed"),
                    _ => {}
                }
            }
        }));
        let groups = self.groups().clone();
        let mut s = stop;
        tasks.push(tokio::spawn(async move {
            groups
                .run_timers(async move {
                    let _ = s.wait_for(|v| *v).await;
                })
                .await;
        }));
        tasks
    }
}

async fn connection(broker: &Broker, stream: TcpStream, mut client: ClientInfo) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let (mut rd, wr) = stream.into_split();
    let mut wr = BufWriter::new(wr);
    let max = broker.config().max_request_bytes as usize;
    loop {
        let mut len = [0u8; 4];
        match rd.read_exact(&mut len).await {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e),
        }
        let n = protocol::frame_len(len);
        if n < 0 || n as usize > max {
            // Checked before buffering, so a bogus length cannot make us allocate.
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("request size {n} outside 0..={max}"),
            ));
        }
        let mut buf = BytesMut::zeroed(n as usize);
        rd.read_exact(&mut buf).await?;
        match protocol::handle(broker, &mut client, buf.freeze()).await {
            Reply::Send(bytes) => {
                wr.write_all(&bytes).await?;
                wr.flush().await?;
            }
            Reply::Nothing => {}
            Reply::Close(why) => {
                tracing::info!(client = %client.client_id, host = %client.host, reason = %why, "closing connection");
                return Ok(());
            }
        }
    }
}
