//! `hush`: the one binary. Thin wiring over the library crates:
//!
//! ```text
//!   hush keygen       ──▶ hush-crypto (generate) ──▶ keyfile (write 0600)
//!   hush fingerprint  ──▶ keyfile (read) ──▶ hush-crypto (fingerprint)
//!   hush server       ──▶ keyfile (relay key) ──▶ hush-server (Relay::bind, run until a signal)
//!   hush client       ──▶ keyfile (--key) ──▶ hush-client (app::run on stdin/stdout)
//! ```
//!
//! Errors are `anyhow` here and only here; each says what went wrong and
//! what to do next, and exits non-zero.

mod bench_admit;
mod bench_cmd;
mod bench_full;
mod client_cmd;
mod keyfile;
mod paths;
mod server_cmd;

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};
use hush_crypto::{DEFAULT_BITS, Identity};

/// End-to-end encrypted chat rooms on a relay you host yourself.
#[derive(Debug, Parser)]
#[command(name = "hush", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create an identity key pair: PATH (private, mode 0600) and PATH.pub.
    Keygen(KeygenArgs),
    /// Print the fingerprint of a private or public key file.
    Fingerprint {
        /// A key file made by `hush keygen` (private or .pub).
        file: PathBuf,
    },
    /// Run a relay: it forwards only ciphertext, orders room events and
    /// keeps a durable log of them.
    Server(server_cmd::ServerArgs),
    /// Chat in a room: signs and seals what you type, verifies and opens
    /// what others send.
    Client(client_cmd::ClientArgs),
    /// Measure a relay: throughput, latency, losses, CPU and memory.
    Bench(bench_cmd::BenchArgs),
}

#[derive(Debug, clap::Args)]
struct KeygenArgs {
    /// Where to write the private key; the public key goes to PATH.pub.
    #[arg(short = 'o', long = "output", value_name = "PATH")]
    output: PathBuf,
    /// RSA modulus size in bits (2048..=8192).
    #[arg(long, default_value_t = DEFAULT_BITS)]
    bits: usize,
    /// Protect the private key with a passphrase (asked twice, or taken
    /// from HUSH_PASSPHRASE).
    #[arg(long)]
    passphrase: bool,
    /// Replace existing files at PATH and PATH.pub.
    #[arg(long)]
    force: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Keygen(args) => keygen(&args),
        Command::Fingerprint { file } => fingerprint(&file),
        Command::Server(args) => server_cmd::run(args),
        Command::Client(args) => client_cmd::run(args),
        Command::Bench(args) => bench_cmd::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hush: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Writes a new identity key pair: PATH (0600) with comment lines, and
/// PATH.pub. Returns the identity.
pub(crate) fn write_identity(
    path: &std::path::Path,
    identity: &Identity,
    passphrase: Option<&[u8]>,
    force: bool,
) -> Result<()> {
    let fp = identity.fingerprint();
    let date = keyfile::utc_date_today();
    let private_pem = identity.to_pem(passphrase)?;
    let mut private_text = zeroize::Zeroizing::new(format!(
        "# hush identity key (private: never share this file)\n# created: {date}\n# public key: {fp}\n"
    ));
    private_text.push_str(&private_pem);
    keyfile::write_new_file(path, private_text.as_bytes(), 0o600, force)?;
    let public_text = format!(
        "# hush identity public key\n# created: {date}\n# fingerprint: {fp}\n{}",
        identity.public().to_pem()?
    );
    keyfile::write_new_file(
        &keyfile::public_path(path),
        public_text.as_bytes(),
        0o644,
        force,
    )
}

fn keygen(args: &KeygenArgs) -> Result<()> {
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

    let identity = with_spinner(&format!("generating a {}-bit RSA key", args.bits), || {
        Identity::generate(args.bits)
    })?;
    let fp = identity.fingerprint();
    write_identity(
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

fn fingerprint(file: &std::path::Path) -> Result<()> {
    let public = keyfile::load_public(file)?;
    println!("{}", public.fingerprint());
    Ok(())
}

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
