//! Session tickets in a cluster (issue #18): the ticket key and the
//! used-ticket ledger live in JetStream KV buckets every relay shares, so
//! a ticket issued by one relay resumes on another, once.
//!
//! Needs nats-server (`.ci/run` sets HUSH_NATS_SERVER); without one this
//! fails saying how to install it.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::Duration;

use hush_client::link::Connection;
use hush_server::log::jetstream::ClusterConfig;
use hush_server::{Limits, Relay, RelayConfig, Retention};
use hush_testkit::keys::{alice, relay as relay_key};
use hush_testkit::nats::NatsCluster;

const MAX: usize = hush_proto::DEFAULT_MAX_FRAME;

/// A cluster relay on 127.0.0.1, running until `stop` is sent.
async fn start(dir: &std::path::Path, urls: &str) -> (String, tokio::sync::oneshot::Sender<()>) {
    let private = std::os::unix::fs::PermissionsExt::from_mode(0o700);
    std::fs::set_permissions(dir, private).unwrap();
    let config = RelayConfig {
        data_dir: dir.to_path_buf(),
        limits: Limits::default(),
        retention: Retention::default(),
        files: hush_server::blobs::BlobLimits::default(),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let cluster = ClusterConfig::new(urls.split(',').map(str::to_owned).collect());
    let relay = Relay::on_listener_clustered(listener, relay_key(), config, cluster)
        .await
        .unwrap();
    let addr = relay.local_addr().unwrap().to_string();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(relay.run(async {
        let _ = stopped.await;
    }));
    (addr, stop)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ticket_from_one_relay_resumes_once_on_another() {
    let nats = NatsCluster::start(3);
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a, stop_a) = start(d1.path(), &nats.urls()).await;
    let (b, stop_b) = start(d2.path(), &nats.urls()).await;
    let connect = |addr: String, ticket| async move {
        tokio::time::timeout(
            Duration::from_secs(20),
            Connection::connect_resuming(&addr, alice(), MAX, ticket, |_| Ok(())),
        )
        .await
        .unwrap()
        .unwrap()
    };
    let first = connect(a.clone(), None).await;
    assert!(!first.resumed);
    let ticket = first.ticket.clone().expect("a ticket from relay a");
    let on_b = connect(b.clone(), Some(ticket.clone())).await;
    assert!(on_b.resumed, "relay b opens relay a's ticket");
    let replay = connect(a.clone(), Some(ticket)).await;
    assert!(!replay.resumed, "used on b, it never resumes again on a");
    let latest = replay.ticket.clone().unwrap();
    let back = connect(b, Some(latest)).await;
    assert!(back.resumed);
    let _ = stop_a.send(());
    let _ = stop_b.send(());
}
