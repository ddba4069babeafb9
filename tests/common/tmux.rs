//! A terminal for tests: a tmux server of the test's own, a detached
//! session running the program under test, keys typed into it and the
//! screen read back as text (what a person would see).

use std::process::Command;
use std::time::{Duration, Instant};

static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// A tmux server of our own (its own socket), killed on drop.
pub struct Tmux {
    socket: String,
}

impl Tmux {
    fn cmd(&self) -> Command {
        let mut c = Command::new("tmux");
        c.args(["-L", &self.socket, "-f", "/dev/null"]);
        c
    }

    /// Starts `args` in a detached 100×30 session.
    pub fn start(args: &[&str]) -> Self {
        let tmux = Self {
            // Unique per session: tests of one binary run in parallel.
            socket: format!(
                "hush-test-{}-{}",
                std::process::id(),
                NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            ),
        };
        let status = tmux
            .cmd()
            .args([
                "new-session",
                "-d",
                "-s",
                "t",
                "-x",
                "100",
                "-y",
                "30",
                "--",
            ])
            .args(args)
            .env_remove("HUSH_PASSPHRASE")
            .env("TERM", "xterm-256color")
            .status()
            .expect("tmux is needed for this test: .ci/run installs it (apt-get install tmux)");
        assert!(status.success(), "tmux new-session failed");
        // Keep the pane after the client exits, to read its last screen.
        let _ = tmux
            .cmd()
            .args(["set-option", "-t", "t", "remain-on-exit", "on"])
            .status();
        tmux
    }

    /// The screen as text, one string per row.
    pub fn screen(&self) -> Vec<String> {
        let out = self
            .cmd()
            .args(["capture-pane", "-p", "-t", "t"])
            .output()
            .expect("tmux capture-pane");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// Types keys: `literal` text as is, or tmux key names (`Enter`, `M-1`).
    pub fn keys(&self, keys: &[&str], literal: bool) {
        let mut c = self.cmd();
        c.args(["send-keys", "-t", "t"]);
        if literal {
            c.arg("-l");
        }
        assert!(c.args(keys).status().unwrap().success());
    }

    pub fn type_text(&self, text: &str) {
        self.keys(&[text], true);
    }

    pub fn press(&self, key: &str) {
        self.keys(&[key], false);
    }

    /// Waits until the screen satisfies `pred`; returns it.
    pub fn wait(&self, what: &str, pred: impl Fn(&[String]) -> bool) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let screen = self.screen();
            if pred(&screen) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; the screen:\n{}",
                screen.join("\n")
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Whether the client in the pane has exited.
    pub fn exited(&self) -> bool {
        let out = self
            .cmd()
            .args(["display-message", "-p", "-t", "t", "#{pane_dead}"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim() == "1"
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd().arg("kill-server").status();
    }
}
