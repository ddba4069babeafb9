//! `hush bench` runs end to end and reports a sane result.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use common::{hush, run};

#[test]
fn a_small_fanout_bench_delivers_everything_and_reports_json() {
    let home = tempfile::tempdir().unwrap();
    let out = run(hush().env("XDG_DATA_HOME", home.path()).args([
        "bench",
        "fanout",
        "--members",
        "5",
        "--publishers",
        "2",
        "--size",
        "64",
        "--duration",
        "1s",
        "--json",
    ]));
    assert!(out.ok, "{}", out.stderr);
    let v: serde_json::Value = serde_json::from_str(out.stdout.trim()).unwrap();
    let published = v["published"].as_u64().unwrap();
    assert!(published > 0);
    assert_eq!(v["deliveries"].as_u64().unwrap(), published * 5);
    assert_eq!(v["lost"], 0);
    assert!(v["relay_cpu_us_per_delivery"].as_f64().unwrap() > 0.0);
    assert!(v["relay_peak_rss_kib"].as_u64().unwrap() > 0);
    // Progress went to stderr, the table to stdout.
    assert!(
        out.stderr.contains("connecting 5 members"),
        "{}",
        out.stderr
    );
}

#[test]
fn the_same_fanout_runs_against_redis_for_a_same_run_comparison() {
    // .ci/run installs redis-server (pinned); elsewhere install it first.
    let out = run(hush().args([
        "bench",
        "fanout",
        "--redis",
        "--members",
        "5",
        "--publishers",
        "2",
        "--size",
        "64",
        "--duration",
        "1s",
        "--json",
    ]));
    assert!(out.ok, "{}", out.stderr);
    let v: serde_json::Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert_eq!(v["crypto"], "redis");
    let published = v["published"].as_u64().unwrap();
    assert!(published > 0);
    assert_eq!(v["deliveries"].as_u64().unwrap(), published * 5);
    assert!(v["relay_cpu_us_per_delivery"].as_f64().unwrap() > 0.0);
    // A Redis that is not there is named, with what to do.
    let missing = run(hush().args([
        "bench",
        "fanout",
        "--redis",
        "--redis-server",
        "/nonexistent/redis-server",
        "--duration",
        "1s",
    ]));
    assert!(!missing.ok);
    assert!(
        missing.stderr.contains("install Redis"),
        "{}",
        missing.stderr
    );
}

#[test]
fn bench_flags_are_checked() {
    let out = run(hush().args(["bench", "fanout", "--window", "4", "--rate", "10"]));
    assert!(
        !out.ok && out.stderr.contains("cannot be used with"),
        "{}",
        out.stderr
    );
    // A CPU list taskset refuses is explained before any load runs.
    let out = run(hush().args([
        "bench",
        "fanout",
        "--members",
        "2",
        "--publishers",
        "1",
        "--duration",
        "1s",
        "--client-cpus",
        "999",
    ]));
    assert!(
        !out.ok && out.stderr.contains("taskset refused the CPU list"),
        "{}",
        out.stderr
    );
    let out = run(hush().args(["bench", "fanout", "--members", "2", "--publishers", "3"]));
    assert!(
        !out.ok && out.stderr.contains("no more publishers than members"),
        "{}",
        out.stderr
    );
}

#[test]
fn idle_and_handshake_benches_report_json() {
    let home = tempfile::tempdir().unwrap();
    let out = run(hush().env("XDG_DATA_HOME", home.path()).args([
        "bench",
        "idle",
        "--clients",
        "20",
        "--json",
    ]));
    assert!(out.ok, "{}", out.stderr);
    let v: serde_json::Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert_eq!(v["clients"], 20);
    assert!(v["relay_rss_kib"].as_u64().unwrap() > 0);

    let out = run(hush().env("XDG_DATA_HOME", home.path()).args([
        "bench",
        "handshake",
        "--duration",
        "1s",
        "--concurrency",
        "2",
        "--json",
    ]));
    assert!(out.ok, "{}", out.stderr);
    let v: serde_json::Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert!(v["full"]["handshakes"].as_u64().unwrap() > 0);
    assert_eq!(v["full"]["failed"], 0);
    assert_eq!(v["full"]["resumed"], 0);
    // Every resumed handshake after each task's first one resumed.
    let resumed = &v["resumed"];
    assert_eq!(resumed["failed"], 0);
    assert!(resumed["resumed"].as_u64().unwrap() + 2 >= resumed["handshakes"].as_u64().unwrap());
    assert!(resumed["resumed"].as_u64().unwrap() > 0);

    // Clients come back after a relay restart, resuming their tickets.
    let out = run(hush().env("XDG_DATA_HOME", home.path()).args([
        "bench",
        "handshake",
        "--reconnect",
        "6",
        "--concurrency",
        "3",
        "--json",
    ]));
    assert!(out.ok, "{}", out.stderr);
    let v: serde_json::Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert_eq!(v["back"], 6);
    assert_eq!(v["resumed"], 6);
}

#[test]
fn the_crypto_bench_reports_every_primitive() {
    let home = tempfile::tempdir().unwrap();
    let out = run(hush().env("XDG_DATA_HOME", home.path()).args([
        "bench",
        "crypto",
        "--duration",
        "20ms",
        "--json",
    ]));
    assert!(out.ok, "{}", out.stderr);
    let v: serde_json::Value = serde_json::from_str(out.stdout.trim()).unwrap();
    let ops = v["ops"].as_array().unwrap();
    assert_eq!(ops.len(), 15);
    let named = |part: &str| {
        ops.iter()
            .filter(|op| op["op"].as_str().unwrap().contains(part))
            .count()
    };
    assert!(named("hybrid kex") > 0);
    // hush's AES-GCM (ring) beside RustCrypto's, at each size.
    assert_eq!(named("AES-256-GCM seal"), 6);
    assert_eq!(named("(hush: ring)"), 3);
    assert_eq!(named("(RustCrypto aes-gcm)"), 3);
    for op in ops {
        assert!(op["per_s"].as_f64().unwrap() > 0.0, "{op}");
    }
    assert!(v["full_handshake_ceiling_per_s"].as_f64().unwrap() > 0.0);
    assert!(v["sign_all_cores_per_s"].as_f64().unwrap() > 0.0);
}

#[test]
fn a_small_admit_bench_admits_every_newcomer_and_reports_json() {
    let home = tempfile::tempdir().unwrap();
    let out = run(hush().env("XDG_DATA_HOME", home.path()).args([
        "bench",
        "admit",
        "--members",
        "4",
        "--rounds",
        "2",
        "--json",
    ]));
    assert!(out.ok, "{}", out.stderr);
    let v: serde_json::Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert_eq!(v["workload"], "admit");
    assert_eq!(v["members"], 4);
    assert_eq!(v["rounds"], 2);
    assert_eq!(v["admitted"], true);
    // The committer's own Room admits, with an add-only commit: one key,
    // one envelope and a signature, whatever the room's size.
    assert_eq!(v["commit_by"], "room");
    assert_eq!(v["commit_kind"], "add");
    let bytes = v["commit_bytes"].as_u64().unwrap();
    assert!((700..2000).contains(&bytes), "{bytes}");
    assert!(v["catch_up_ms"].as_f64().unwrap() > 0.0);
    for stage in [
        "join_to_committer",
        "commit_build",
        "commit_to_newcomer",
        "newcomer_commit",
        "sender_commit",
        "message_to_newcomer",
        "newcomer_message",
        "total",
    ] {
        let ms = v["ms"][stage].as_f64().unwrap();
        assert!(ms >= 0.0, "{stage}: {ms}");
    }
    assert!(v["ms"]["total"].as_f64().unwrap() > 0.0);
    assert_eq!(v["total_ms"].as_array().unwrap().len(), 2);
    // The roster keys are cached next to the bench identity.
    assert!(
        home.path()
            .join("hush/bench/admit-roster-3072.hex")
            .exists()
    );

    let out = run(hush().args(["bench", "admit", "--members", "1"]));
    assert!(
        !out.ok && out.stderr.contains("at least 2"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_fanout_with_full_crypto_shows_every_message_to_every_member() {
    let home = tempfile::tempdir().unwrap();
    let out = run(hush().env("XDG_DATA_HOME", home.path()).args([
        "bench",
        "fanout",
        "--crypto",
        "full",
        "--members",
        "3",
        "--publishers",
        "1",
        "--duration",
        "1s",
        "--json",
    ]));
    assert!(out.ok, "{}", out.stderr);
    let v: serde_json::Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert_eq!(v["crypto"], "full");
    let published = v["published"].as_u64().unwrap();
    assert!(published > 0);
    assert_eq!(v["deliveries"].as_u64().unwrap(), published * 3);
    assert_eq!(v["lost"], 0);
}
