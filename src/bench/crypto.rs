//! `hush bench crypto`: the cryptographic operations hush is built from,
//! each timed on one core with the bench identity, and the RSA-PSS
//! signature (the relay's one private-key operation per full handshake)
//! on every core at once.

use std::time::{Duration, Instant};

use anyhow::Result;

use super::child_relay::bench_identity;
use crate::paths::parse_duration;

/// Flags of `hush bench crypto`.
#[derive(Debug, clap::Args)]
pub(crate) struct CryptoArgs {
    /// Time spent on each operation (e.g. 1s).
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    duration: Duration,
    /// Print the results as JSON.
    #[arg(long)]
    json: bool,
}

/// Runs `op` repeatedly for about `duration`; returns operations per
/// second on this one thread.
fn ops_per_s(duration: Duration, mut op: impl FnMut()) -> f64 {
    let start = Instant::now();
    let mut n = 0u64;
    while n < 3 || start.elapsed() < duration {
        op();
        n += 1;
    }
    n as f64 / start.elapsed().as_secs_f64()
}

/// Runs `hush bench crypto`.
pub(crate) fn crypto(a: &CryptoArgs) -> Result<()> {
    use hush_crypto::{NonceCounter, SealingKey, Secret32};
    let (identity, _) = bench_identity()?;
    let bits = identity.public().bits();
    let d = a.duration;
    let public = identity.public().clone();
    let wrapped = public.wrap("bench", &Secret32::random())?;
    let signature = identity.sign("bench", b"message")?;
    let mut rows: Vec<(String, f64, Option<f64>)> = Vec::new();
    eprintln!("RSA-{bits} private-key operations");
    rows.push((
        format!("RSA-{bits} PSS sign (each side, per full handshake)"),
        ops_per_s(d, || {
            let _ = identity.sign("bench", b"message");
        }),
        None,
    ));
    rows.push((
        format!("RSA-{bits} OAEP unwrap (a member, per envelope)"),
        ops_per_s(d, || {
            let _ = identity.unwrap("bench", wrapped.as_bytes());
        }),
        None,
    ));
    eprintln!("RSA-{bits} public-key operations");
    rows.push((
        format!("RSA-{bits} PSS verify"),
        ops_per_s(d, || {
            let _ = public.verify("bench", b"message", signature.as_bytes());
        }),
        None,
    ));
    rows.push((
        format!("RSA-{bits} OAEP wrap"),
        ops_per_s(d, || {
            let _ = public.wrap("bench", &Secret32::from_bytes([1; 32]));
        }),
        None,
    ));
    eprintln!("hybrid key exchange, X25519 + ML-KEM-768 (both sides, every handshake)");
    rows.push((
        "hybrid kex: client share (keygen)".into(),
        ops_per_s(d, || {
            let _ = hush_crypto::KexInitiator::new();
        }),
        None,
    ));
    let initiator = hush_crypto::KexInitiator::new();
    rows.push((
        "hybrid kex: relay reply (encapsulate, DH)".into(),
        ops_per_s(d, || {
            let _ = hush_crypto::kex_respond(initiator.share());
        }),
        None,
    ));
    let (reply, _) = hush_crypto::kex_respond(initiator.share())?;
    rows.push((
        "hybrid kex: client keygen + finish (decaps, DH)".into(),
        ops_per_s(d, || {
            let again = hush_crypto::KexInitiator::new();
            let _ = again.finish(&reply);
        }),
        None,
    ));
    eprintln!("symmetric operations");
    let key = SealingKey::new(&Secret32::from_bytes([2; 32]));
    for size in [256usize, 16 * 1024, 64 * 1024] {
        let mut buf = vec![0u8; size];
        let mut counter = NonceCounter::new();
        let rate = ops_per_s(d, || {
            if let Ok(n) = counter.next_nonce() {
                let _ = key.seal_in_place(n, b"aad", &mut buf);
            }
        });
        rows.push((
            format!("AES-256-GCM seal, {size} B (hush: ring)"),
            rate,
            Some(rate * size as f64 / 1e6),
        ));
    }
    // RustCrypto's aes-gcm, which hush used before: the comparison that
    // chose the backend (docs/PERFORMANCE.md), rerunnable.
    {
        use aes_gcm::aead::{AeadInOut, KeyInit};
        let cipher = aes_gcm::Aes256Gcm::new(&[2u8; 32].into());
        for size in [256usize, 16 * 1024, 64 * 1024] {
            let mut buf = vec![0u8; size];
            let mut counter = 0u64;
            let rate = ops_per_s(d, || {
                counter += 1;
                let mut nonce = [0u8; 12];
                nonce[4..].copy_from_slice(&counter.to_be_bytes());
                let _ = cipher.encrypt_inout_detached(&nonce.into(), b"aad", (&mut buf[..]).into());
            });
            rows.push((
                format!("AES-256-GCM seal, {size} B (RustCrypto aes-gcm)"),
                rate,
                Some(rate * size as f64 / 1e6),
            ));
        }
    }
    let data = vec![0u8; 16 * 1024];
    let rate = ops_per_s(d, || {
        let _ = hush_crypto::sha256(&data);
    });
    rows.push((
        "SHA-256, 16 KiB".into(),
        rate,
        Some(rate * data.len() as f64 / 1e6),
    ));
    let secret = Secret32::from_bytes([3; 32]);
    rows.push((
        "HKDF-SHA-256 derive (32 B)".into(),
        ops_per_s(d, || {
            let _ = hush_crypto::derive_secret(&secret, b"salt", b"info");
        }),
        None,
    ));
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let sign_rate = rows.first().map_or(0.0, |r| r.1);
    let ceiling = cores as f64 * sign_rate;
    // The same signature on every core at once: cores that share execution
    // units or a host (SMT siblings, a busy hypervisor) are slower
    // together than one alone, and a relay under a handshake load uses
    // them all.
    eprintln!("RSA-{bits} PSS sign on {cores} cores at once");
    let all_cores: f64 = std::thread::scope(|s| {
        let runs: Vec<_> = (0..cores)
            .map(|_| {
                s.spawn(|| {
                    ops_per_s(d, || {
                        let _ = identity.sign("bench", b"message");
                    })
                })
            })
            .collect();
        runs.into_iter().map(|r| r.join().unwrap_or(0.0)).sum()
    });
    if a.json {
        let ops: Vec<String> = rows
            .iter()
            .map(|(name, rate, mbs)| {
                format!(
                    "{{\"op\":\"{name}\",\"per_s\":{rate:.1},\"us\":{:.3},\"mb_per_s\":{}}}",
                    1e6 / rate,
                    mbs.map_or("null".into(), |m| format!("{m:.1}"))
                )
            })
            .collect();
        println!(
            "{{\"workload\":\"crypto\",\"rsa_bits\":{bits},\"cores\":{cores},\"full_handshake_ceiling_per_s\":{ceiling:.1},\"sign_all_cores_per_s\":{all_cores:.1},\"ops\":[{}]}}",
            ops.join(",")
        );
    } else {
        println!("hush bench crypto: one core, RSA-{bits} bench identity");
        println!(
            "  {:<52} {:>12} {:>12} {:>10}",
            "operation", "per s", "µs each", "MB/s"
        );
        for (name, rate, mbs) in &rows {
            println!(
                "  {name:<52} {rate:>12.1} {:>12.2} {:>10}",
                1e6 / rate,
                mbs.map_or(String::new(), |m| format!("{m:.0}"))
            );
        }
        println!(
            "  full-handshake ceiling: {cores} cores × {sign_rate:.1} signatures/s = {ceiling:.0}/s (the relay's one private-key operation per handshake)"
        );
        println!(
            "  measured on {cores} cores at once: {all_cores:.0} signatures/s ({:.0}% of the ceiling)",
            100.0 * all_cores / ceiling.max(f64::MIN_POSITIVE)
        );
    }
    Ok(())
}
