//! Shared helpers for the interop tests: an in-process server on a free
//! port, the `queue-server` binary as a child process, and runners for the
//! third-party clients that fail loudly when a client is missing.

#![allow(dead_code)] // each test binary uses a different subset

pub mod raw;

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use queue::{Broker, QueueConfig};

/// A broker serving on 127.0.0.1 in its own runtime thread.
pub struct InProc {
    pub broker: Broker,
    pub addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl InProc {
    pub fn start(cfg: QueueConfig) -> Self {
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        std_listener.set_nonblocking(true).expect("nonblocking");
        let addr = std_listener.local_addr().expect("addr");
        let broker = Broker::open(cfg).expect("open broker");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let b = broker.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(std_listener).expect("listener");
                b.serve(listener, async {
                    let _ = rx.await;
                })
                .await
                .expect("serve");
            });
        });
        Self {
            broker,
            addr,
            stop: Some(tx),
            thread: Some(thread),
        }
    }

    pub fn bootstrap(&self) -> String {
        self.addr.to_string()
    }

    /// Stops the server and waits until it has flushed and closed.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for InProc {
    fn drop(&mut self) {
        self.shutdown();
    }
}

pub fn config(dir: &Path) -> QueueConfig {
    QueueConfig {
        data_dir: dir.to_path_buf(),
        ..QueueConfig::default()
    }
}

/// Picks a free loopback port (bind to 0 and release it).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// Waits until something accepts connections on `addr` (polling connect, not sleeping blindly).
pub fn wait_ready(addr: SocketAddr, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("queue-server exited before listening: {status}");
        }
        assert!(
            Instant::now() < deadline,
            "queue-server did not listen on {addr} within 30 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Starts the `queue-server` binary.
pub fn spawn_server(data_dir: &Path, port: u16, flush: &str) -> Child {
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    let mut child = Command::new(env!("CARGO_BIN_EXE_queue-server"))
        .arg("--data-dir")
        .arg(data_dir)
        .arg("--listen")
        .arg(addr.to_string())
        .arg("--flush")
        .arg(flush)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn queue-server");
    wait_ready(addr, &mut child);
    child
}

/// Panics with an actionable message when an external client is missing.
pub fn require_command(cmd: &str, probe: &[&str]) {
    let ok = Command::new(cmd)
        .args(probe)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    assert!(
        ok,
        "`{cmd}` is required by this interop test but was not found; run .ci/install-deps.sh"
    );
}

pub fn require_python_module(module: &str) {
    require_command("python3", &["--version"]);
    let ok = Command::new("python3")
        .args(["-c", &format!("import {module}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "python module `{module}` is required by this interop test; run .ci/install-deps.sh"
    );
}

/// Runs a command with a deadline, feeding `stdin`; panics with its output on failure.
pub fn run(cmd: &mut Command, stdin: &[u8], timeout: Duration) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    {
        let mut si = child.stdin.take().expect("stdin");
        si.write_all(stdin).expect("write stdin");
    }
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    let waiter = std::thread::spawn(move || {
        let out = child.wait_with_output();
        let _ = tx.send(());
        out
    });
    if rx.recv_timeout(timeout).is_err() {
        // Kill only the child we started, by its pid.
        let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
        let out = waiter.join().expect("join").expect("output");
        panic!(
            "{cmd:?} timed out after {timeout:?}\nstdout:\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = waiter.join().expect("join").expect("output");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Runs a Python script with `env` set; returns stdout.
pub fn python(script: &str, env: &[(&str, String)], timeout: Duration) -> String {
    let mut cmd = Command::new("python3");
    cmd.arg("-u").arg("-");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = run(&mut cmd, script.as_bytes(), timeout);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().expect("tempdir")
}

pub fn path(p: &Path) -> PathBuf {
    p.to_path_buf()
}
