//! `hush`: the one binary. Thin wiring over the library crates:
//!
//! ```text
//!   hush keygen       ──▶ hush-crypto (generate) ──▶ keyfile (write 0600)
//!   hush fingerprint  ──▶ keyfile (read) ──▶ hush-crypto (fingerprint)
//!   hush server       ──▶ keyfile (relay key) ──▶ hush-server (Relay::bind, run until a signal)
//!   hush client       ──▶ keyfile (--key) ──▶ hush-client (app::run on stdin/stdout)
//!   hush send         ──▶ hush-client (app::run on "/send FILE", "/quit")
//!   hush bench        ──▶ bench (starts `hush server`, measures it)
//!   hush completions, hush man ──▶ clap_complete / clap_mangen over this tree
//! ```
//!
//! This file is the clap tree, the dispatch and the exit code; each
//! subcommand lives in [`cmd`] (or [`bench`]).
//!
//! Errors are `anyhow` here and only here; each says what went wrong and
//! what to do next, and exits non-zero.

mod bench;
mod cmd;
mod keyfile;
mod paths;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

use cmd::{client, keygen, server};

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
    Keygen(keygen::KeygenArgs),
    /// Print the fingerprint of a private or public key file.
    Fingerprint {
        /// A key file made by `hush keygen` (private or .pub).
        file: PathBuf,
    },
    /// Run a relay: it forwards only ciphertext, orders room events and
    /// keeps a durable log of them.
    Server(server::ServerArgs),
    /// Chat in a room: signs and seals what you type, verifies and opens
    /// what others send.
    Client(client::ClientArgs),
    /// Offer one file to a room and exit once it is on the relay and
    /// offered (for scripts): the client's flags, then FILE.
    Send(client::SendArgs),
    /// Measure a relay: throughput, latency, losses, CPU and memory.
    Bench(bench::BenchArgs),
    /// Back up, list, verify or prune a relay's data folder (safe while
    /// the relay runs).
    Admin(cmd::admin::AdminArgs),
    /// Print a shell completion script: `hush completions bash >
    /// ~/.local/share/bash-completion/completions/hush`.
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (hush.1), or with --dir write one page per
    /// command there (hush.1, hush-server.1, ...).
    Man {
        /// Write every page into this folder instead.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let (cli, layered) = match parse() {
        Ok(parsed) => parsed,
        Err(e) => return fail(&e),
    };
    let result = match cli.command {
        Command::Keygen(args) => keygen::keygen(&args),
        Command::Fingerprint { file } => keygen::fingerprint(&file),
        Command::Server(args) if args.print_config => {
            let (matches, from_file) = layered;
            let root = Cli::command();
            let sub = root.find_subcommand("server");
            let server_matches = matches.subcommand_matches("server");
            if let (Some(sub), Some(m)) = (sub, server_matches) {
                print!("{}", cmd::config::describe(sub, m, &from_file));
            }
            Ok(())
        }
        Command::Server(args) => server::run(args),
        Command::Client(args) => client::run(args),
        Command::Send(args) => client::send(args),
        Command::Bench(args) => bench::run(args),
        Command::Admin(args) => cmd::admin::run(args),
        Command::Completions { shell } => {
            let mut cmd = Cli::command();
            clap_complete::generate(shell, &mut cmd, "hush", &mut std::io::stdout());
            Ok(())
        }
        Command::Man { dir } => man(dir.as_deref()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

/// Parses the command line, with `hush server --config FILE` layered
/// under it; also the final matches and the flags the file set.
fn parse() -> anyhow::Result<(Cli, (clap::ArgMatches, std::collections::BTreeSet<String>))> {
    use clap::FromArgMatches;
    let matches = Cli::command().get_matches();
    let file = matches
        .subcommand_matches("server")
        .and_then(|m| m.get_one::<PathBuf>("config").cloned());
    let (matches, from_file) = match (file, matches.subcommand_matches("server")) {
        (Some(file), Some(server)) => {
            let root = Cli::command();
            let sub = root
                .find_subcommand("server")
                .ok_or_else(|| anyhow::anyhow!("no server command"))?;
            let (argv, from_file) =
                cmd::config::layer(sub, server, &file, std::env::args_os().collect())?;
            // A bad value in the file is worded as clap words a bad flag,
            // naming the file.
            let layered = Cli::command().try_get_matches_from(argv).map_err(|e| {
                let text = e.to_string();
                let first = text.lines().next().unwrap_or_default();
                anyhow::anyhow!(
                    "{}: {}",
                    file.display(),
                    first.strip_prefix("error: ").unwrap_or(first)
                )
            })?;
            (layered, from_file)
        }
        _ => (matches, std::collections::BTreeSet::new()),
    };
    let cli = Cli::from_arg_matches(&matches).map_err(|e| anyhow::anyhow!(e.to_string()))?;
    Ok((cli, (matches, from_file)))
}

/// Prints an error and its causes, and fails.
fn fail(e: &anyhow::Error) -> ExitCode {
    // A closed stderr (`2>&1 | head`) must not turn this into a panic:
    // the write's own failure is ignored.
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "hush: error: {}", error_chain(e));
    ExitCode::FAILURE
}

/// `hush man`: hush.1 on stdout, or every command's page into `dir`.
fn man(dir: Option<&std::path::Path>) -> anyhow::Result<()> {
    use anyhow::Context;
    let cmd = Cli::command();
    let Some(dir) = dir else {
        clap_mangen::Man::new(cmd)
            .render(&mut std::io::stdout())
            .context("cannot write the man page")?;
        return Ok(());
    };
    std::fs::create_dir_all(dir).with_context(|| format!("cannot make {}", dir.display()))?;
    clap_mangen::generate_to(cmd, dir)
        .with_context(|| format!("cannot write the man pages into {}", dir.display()))?;
    Ok(())
}

/// The error and its causes, joined by ": ", leaving out a cause whose
/// text the message before it already ends with (a `thiserror` message
/// that embeds its source would otherwise print it twice).
fn error_chain(e: &anyhow::Error) -> String {
    let mut out = e.to_string();
    for cause in e.chain().skip(1) {
        let text = cause.to_string();
        if !out.ends_with(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cause_already_in_the_message_is_not_repeated() {
        let io = std::io::Error::other("Broken pipe (os error 32)");
        let inner =
            anyhow::Error::new(io).context("cannot write output: Broken pipe (os error 32)");
        assert_eq!(
            error_chain(&inner),
            "cannot write output: Broken pipe (os error 32)"
        );
        let e = anyhow::anyhow!("disk full").context("cannot save");
        assert_eq!(error_chain(&e), "cannot save: disk full");
    }
}
