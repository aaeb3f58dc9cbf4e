//! The buffer shared between the local ingest task and the uplink: a std
//! mutex (never held across `.await`) plus two wake-ups, one for "new data"
//! (the uplink waits on it) and one for "space freed" (a `block`ed ingest
//! waits on it).

use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;

use super::Buffer;

#[derive(Debug, Clone)]
pub struct SharedBuffer {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    buffer: Mutex<Buffer>,
    data: Notify,
    space: Notify,
}

impl SharedBuffer {
    pub fn new(buffer: Buffer) -> SharedBuffer {
        SharedBuffer {
            inner: Arc::new(Inner {
                buffer: Mutex::new(buffer),
                data: Notify::new(),
                space: Notify::new(),
            }),
        }
    }

    /// Locks the buffer. A panic while holding the lock cannot leave the
    /// buffer half-updated in memory in a way disk recovery would not fix,
    /// so a poisoned lock is used as is.
    pub fn lock(&self) -> MutexGuard<'_, Buffer> {
        self.inner
            .buffer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn notify_data(&self) {
        self.inner.data.notify_one();
    }

    pub async fn data_ready(&self) {
        self.inner.data.notified().await;
    }

    pub fn notify_space(&self) {
        self.inner.space.notify_one();
    }

    pub async fn space_freed(&self) {
        self.inner.space.notified().await;
    }
}
