//! The RSA identities `hush bench admit` needs: fresh ones generated on
//! every core, and the roster's public keys, generated once and cached
//! next to the bench identity. A helper: it imports no other bench file.

use std::io::Write;
use std::time::Instant;

use anyhow::{Context, Result};
use hush_crypto::{Identity, PublicIdentity};

/// `n` fresh identities of the default size, generated on every core.
pub(crate) fn generate(n: usize) -> Result<Vec<Identity>> {
    let threads = std::thread::available_parallelism()
        .map_or(2, |c| c.get())
        .min(n.max(1));
    let results: Vec<Result<Vec<Identity>>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let count = n / threads + usize::from(t < n % threads);
                s.spawn(move || {
                    (0..count)
                        .map(|_| {
                            Identity::generate(hush_crypto::DEFAULT_BITS)
                                .map_err(anyhow::Error::from)
                        })
                        .collect::<Result<Vec<_>>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("key generation panicked")))
            })
            .collect()
    });
    let mut out = Vec::with_capacity(n);
    for r in results {
        out.extend(r?);
    }
    Ok(out)
}

/// `n` distinct public keys of real identities (generated once, then
/// cached as hex SPKI DER, one a line, next to the bench identity; the
/// private halves are not kept: nobody runs these members' Rooms).
pub(crate) fn roster_keys(n: usize) -> Result<Vec<PublicIdentity>> {
    let dir = crate::paths::default_data_dir("bench")?;
    hush_server::create_private_dir(&dir)?;
    let path = dir.join(format!("admit-roster-{}.hex", hush_crypto::DEFAULT_BITS));
    let mut keys = Vec::with_capacity(n);
    if let Ok(text) = std::fs::read_to_string(&path) {
        for line in text.lines().take(n) {
            let der = from_hex(line.trim()).context("corrupt roster key cache")?;
            keys.push(PublicIdentity::from_spki_der(&der)?);
        }
    }
    if keys.len() < n {
        let missing = n - keys.len();
        let started = Instant::now();
        eprintln!(
            "generating {missing} roster identities of {} bits once (cached in {})",
            hush_crypto::DEFAULT_BITS,
            path.display()
        );
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .with_context(|| format!("cannot write {}", path.display()))?;
        while keys.len() < n {
            let batch = (n - keys.len()).min(100);
            for id in generate(batch)? {
                writeln!(file, "{}", to_hex(id.public().spki_der()))?;
                keys.push(id.public().clone());
            }
            eprintln!(
                "  {} of {n} ({:.0} s)",
                keys.len(),
                started.elapsed().as_secs_f64()
            );
        }
    }
    Ok(keys)
}

/// Bytes as lower-case hex.
fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Hex (an even number of digits) back to bytes.
fn from_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}
