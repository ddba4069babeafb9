//! `hush keygen` and `hush fingerprint`: make an identity key pair, and
//! print a key file's fingerprint. Files are read and written through
//! [`crate::keyfile`]; the slow generation turns a spinner
//! ([`super::with_spinner`]).

use std::io::Write;
use std::path::PathBuf;

use anyhow::Result;
use hush_crypto::{DEFAULT_BITS, Identity};

use crate::keyfile;

/// Flags of `hush keygen`.
#[derive(Debug, clap::Args)]
pub struct KeygenArgs {
    /// Where to write the private key; the public key goes to PATH.pub.
    #[arg(short = 'o', long = "output", value_name = "PATH")]
    output: PathBuf,
    /// RSA modulus size in bits (2048 to 8192).
    #[arg(long, default_value_t = DEFAULT_BITS)]
    bits: usize,
    /// Protect the private key with a passphrase (asked twice, or taken
    /// from HUSH_PASSPHRASE; an environment variable is readable by the
    /// same user in /proc/PID/environ and passed to child processes, so
    /// prefer the prompt outside scripts).
    #[arg(long)]
    passphrase: bool,
    /// Replace existing files at PATH and PATH.pub.
    #[arg(long)]
    force: bool,
}

pub fn keygen(args: &KeygenArgs) -> Result<()> {
    // Everything that can be refused is refused before the slow part.
    hush_crypto::identity::check_bits(args.bits)
        .map_err(|e| anyhow::anyhow!("--bits {}: {e}", args.bits))?;
    let pub_path = keyfile::public_path(&args.output);
    if !args.force {
        for p in [&args.output, &pub_path] {
            if p.exists() {
                anyhow::bail!(
                    "{} already exists; choose another path, or add --force to replace it (the old key is lost)",
                    p.display()
                );
            }
        }
    }
    let passphrase = if args.passphrase {
        Some(keyfile::new_passphrase()?)
    } else {
        None
    };

    let identity = super::with_spinner(&format!("generating a {}-bit RSA key", args.bits), || {
        Identity::generate(args.bits)
    })?;
    let fp = identity.fingerprint();
    keyfile::write_identity(
        &args.output,
        &identity,
        passphrase.as_ref().map(|p| p.as_bytes()),
        args.force,
    )?;

    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "wrote {} (private key, mode 0600)",
        args.output.display()
    )?;
    writeln!(out, "wrote {} (public key)", pub_path.display())?;
    writeln!(out, "{fp}")?;
    Ok(())
}

pub fn fingerprint(file: &std::path::Path) -> Result<()> {
    let public = keyfile::load_public(file)?;
    println!("{}", public.fingerprint());
    Ok(())
}
