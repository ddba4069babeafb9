//! Runs every fuzz target over its seed corpus (`fuzz/corpus/<target>/`),
//! so the targets keep compiling and their seeds keep passing without a
//! fuzzer. The long runs are recorded in docs/FUZZING.md.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[path = "../fuzz/src/entries.rs"]
mod entries;

fn run(target: &str, f: fn(&[u8])) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        f(&std::fs::read(&path).unwrap());
        n += 1;
    }
    assert!(n > 0, "no seeds for {target}");
}

#[test]
fn frame_corpus() {
    run("frame", entries::frame);
}

#[test]
fn handshake_corpus() {
    run("handshake", entries::handshake);
}

#[test]
fn room_event_corpus() {
    run("room_event", entries::room_event);
}

#[test]
fn key_file_corpus() {
    run("key_file", entries::key_file);
}

#[test]
fn command_line_corpus() {
    run("command_line", entries::command_line);
}

#[test]
fn code_step_corpus() {
    run("code_step", entries::code_step);
}
