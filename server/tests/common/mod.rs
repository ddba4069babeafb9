//! The relay on its real listener on 127.0.0.1, for the test binaries
//! of this folder.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::time::Duration;

use hush_server::{Limits, Relay, RelayConfig, Retention};
use hush_testkit::keys::relay as relay_key;
use tokio::sync::oneshot;

const STEP: Duration = Duration::from_secs(10);

/// A relay running in this process until shut down.
pub struct TestRelay {
    pub addr: String,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl TestRelay {
    pub async fn start(dir: &std::path::Path, limits: Limits) -> Self {
        // The relay refuses a data folder others can enter; temporary
        // folders are 0755 under the usual umask.
        let private = std::os::unix::fs::PermissionsExt::from_mode(0o700);
        std::fs::set_permissions(dir, private).unwrap();
        let config = RelayConfig {
            data_dir: dir.to_path_buf(),
            limits,
            retention: Retention::default(),
            files: hush_server::blobs::BlobLimits::default(),
        };
        let relay = Relay::bind("127.0.0.1:0".parse().unwrap(), relay_key(), config)
            .await
            .unwrap();
        let addr = relay.local_addr().unwrap().to_string();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(relay.run(async {
            let _ = stopped.await;
        }));
        Self {
            addr,
            stop: Some(stop),
            task,
        }
    }

    pub async fn shutdown(mut self) {
        let _ = self.stop.take().unwrap().send(());
        tokio::time::timeout(STEP, self.task)
            .await
            .expect("relay stops promptly")
            .unwrap();
    }
}
