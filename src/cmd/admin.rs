//! `hush admin`: backup, rooms, verify and prune a relay's data folder,
//! safe while the relay runs (`hush_server::admin` does the work).

use std::path::PathBuf;

use anyhow::{Result, bail};
use hush_server::admin::{self, RoomCheck};

use crate::paths::{default_data_dir, parse_duration};

/// `hush admin` and its commands.
#[derive(Debug, clap::Args)]
pub struct AdminArgs {
    #[command(subcommand)]
    command: AdminCommand,
}

#[derive(Debug, clap::Subcommand)]
enum AdminCommand {
    /// A consistent copy of the data folder into a new folder OUT, while
    /// the relay runs (SQLite online backup, then keys and file chunks).
    Backup {
        #[command(flatten)]
        data: DataArg,
        /// The new folder to write (it must not exist).
        out: PathBuf,
    },
    /// Each room: events held, their bytes, last seq, epoch, last activity.
    Rooms {
        #[command(flatten)]
        data: DataArg,
        /// One JSON object per room instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Check the log's integrity and each room's chain head.
    Verify {
        #[command(flatten)]
        data: DataArg,
    },
    /// Delete one room's messages older than a duration (membership events
    /// are kept, as retention keeps them).
    Prune {
        #[command(flatten)]
        data: DataArg,
        /// The room.
        #[arg(long, value_name = "NAME")]
        room: String,
        /// Delete messages received longer ago than this (e.g. 30d).
        #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
        before: std::time::Duration,
    },
}

#[derive(Debug, clap::Args)]
struct DataArg {
    /// The relay's data folder [default: $XDG_DATA_HOME/hush/relay or ~/.local/share/hush/relay].
    #[arg(long, env = "HUSH_RELAY_DATA", value_name = "DIR")]
    data: Option<PathBuf>,
}

impl DataArg {
    fn dir(&self) -> Result<PathBuf> {
        match &self.data {
            Some(d) => Ok(d.clone()),
            None => default_data_dir("relay"),
        }
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Runs one admin command.
pub fn run(args: AdminArgs) -> Result<()> {
    match args.command {
        AdminCommand::Backup { data, out } => {
            let r = admin::backup(&data.dir()?, &out)?;
            println!(
                "backed up {} events and {} other files into {}",
                r.events,
                r.files,
                r.out.display()
            );
        }
        AdminCommand::Rooms { data, json } => {
            let rooms = admin::rooms(&data.dir()?)?;
            let now = now_ms();
            if !json {
                println!(
                    "{:<24} {:>9} {:>12} {:>9} {:>6}  last activity",
                    "room", "events", "bytes", "last seq", "epoch"
                );
            }
            for r in rooms {
                if json {
                    println!(
                        "{{\"room\":\"{}\",\"events\":{},\"bytes\":{},\"last_seq\":{},\"epoch\":{},\"last_activity_ms\":{}}}",
                        r.room,
                        r.events,
                        r.bytes,
                        r.last_seq,
                        r.epoch,
                        r.last_activity_ms
                            .map_or_else(|| "null".to_owned(), |v| v.to_string())
                    );
                } else {
                    let ago = r.last_activity_ms.map_or_else(
                        || "never".to_owned(),
                        |t| format!("{} min ago", now.saturating_sub(t) / 60_000),
                    );
                    println!(
                        "{:<24} {:>9} {:>12} {:>9} {:>6}  {ago}",
                        r.room, r.events, r.bytes, r.last_seq, r.epoch
                    );
                }
            }
        }
        AdminCommand::Verify { data } => {
            let report = admin::verify(&data.dir()?)?;
            println!("integrity_check: {}", report.integrity);
            for (room, check) in &report.rooms {
                match check {
                    RoomCheck::HeadMatches => println!("{room}: ok, chain head recomputed"),
                    RoomCheck::InOrderPruned => {
                        println!("{room}: ok, in order (pruned: the head cannot be recomputed)");
                    }
                    RoomCheck::Bad(why) => println!("{room}: BAD: {why}"),
                }
            }
            if !report.ok() {
                bail!("the log is not sound: restore a backup (docs/OPERATING.md)");
            }
        }
        AdminCommand::Prune { data, room, before } => {
            let cutoff =
                now_ms().saturating_sub(u64::try_from(before.as_millis()).unwrap_or(u64::MAX));
            let n = admin::prune(&data.dir()?, &room, cutoff)?;
            println!("deleted {n} messages of #{room}; membership events were kept");
        }
    }
    Ok(())
}
