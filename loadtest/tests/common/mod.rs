//! Shared test helpers: an in-process hub on a free port, and options
//! pointing a short run at it. Not every test file uses every helper.
#![allow(dead_code)]

use hub::{Config, HubHandle};
use loadtest::RunOptions;

pub struct TestHub {
    pub handle: HubHandle,
    _dir: tempfile::TempDir,
}

/// Starts a hub with `tweak` applied to its default config.
pub async fn start_hub(tweak: impl FnOnce(&mut Config)) -> TestHub {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = Config::default();
    config.mqtt.listen = "127.0.0.1:0".parse().expect("addr");
    config.data_dir = dir.path().to_owned();
    config.sys.enabled = false;
    tweak(&mut config);
    let handle = hub::start(config).await.expect("hub starts");
    TestHub { handle, _dir: dir }
}

impl TestHub {
    /// Short-run options against this hub.
    pub fn options(&self) -> RunOptions {
        RunOptions {
            port: self.handle.mqtt_addr.port(),
            duration: 1.0,
            drain: 5.0,
            drain_idle_ms: 1000,
            quiet: true,
            ..RunOptions::default()
        }
    }

    pub async fn stop(self) {
        self.handle.shutdown().await.expect("hub shuts down");
    }
}
