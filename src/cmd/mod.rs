//! The subcommands other than `hush bench`, one file each: flags → the
//! library crates' configuration, then run. `main.rs` only dispatches here;
//! what two of them share (the spinner) is below.

pub mod admin;
pub mod client;
pub mod config;
pub mod keygen;
pub mod server;

use std::io::IsTerminal;

/// Runs `work` while a spinner turns on stderr, if stderr is a terminal.
pub(crate) fn with_spinner<T>(label: &str, work: impl FnOnce() -> T) -> T {
    if !std::io::stderr().is_terminal() {
        return work();
    }
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = done.clone();
    let label = label.to_owned();
    let spinner = std::thread::spawn(move || {
        let frames = ['|', '/', '-', '\\'];
        let mut i = 0;
        while !flag.load(std::sync::atomic::Ordering::Relaxed) {
            eprint!("\r{} {label}...", frames[i % frames.len()]);
            i += 1;
            std::thread::sleep(std::time::Duration::from_millis(120));
        }
        eprint!("\r\x1b[2K");
    });
    let out = work();
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = spinner.join();
    out
}
