//! The client program: one task that owns the link, the room state and
//! the screen, looping over "a message from the relay", "a line from the
//! user" and "a tick".
//!
//! ```text
//!   stdin ──lines──▶ ┐
//!   relay ──msgs──▶  ├─▶ Room (hush-room) ─▶ Actions ─▶ screen / -o transcript
//!   tick (1 s)  ──▶  ┘                           └──▶ relay (Publish, Send)
//! ```
//!
//! The room protocol itself (joining, backfill paging, checkpoint
//! requests, leaving) is `hush-room`'s (`room/src/driver.rs`): this loop
//! only answers the relay's pings and closes, and moves bytes, lines and
//! ticks. The connection is retried with backoff, both at start (the
//! relay may not be up yet) and after a drop; each time the room re-joins
//! and backfills from the last sequence number it processed, so nothing
//! is missed and nothing shown twice. Lines typed while disconnected are
//! sealed and sent once the link is back.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hush_crypto::{Fingerprint, Identity};
use hush_proto::handshake::HandshakeError;
use hush_proto::{ClientMsg, RelayMsg, RoomName};
use tokio::io::{AsyncBufRead, AsyncBufReadExt};
use tokio::sync::mpsc;

use crate::command::{Command, HELP, Input, parse_line};
use crate::contacts::{Contacts, VerifiedBy};
use crate::display::{
    LocalTime, VERIFIED_MARK, refusal_text, render_json_marked, render_line_marked, shown_room,
};
use crate::files::{Step, TransferStore, Transfers};
use crate::link::{Connection, LinkError, LinkWriter};
use crate::pins::{KnownRelays, PinCheck, PinError};
use crate::rooms::{Closing, Dm, OpenRoom, Rooms, dm_room_name, room_of};
use crate::state::{OpenRooms, StateError, StateStore};
use crate::tui::view::LinkState;
use crate::tui::{Request, RoomFacts, Tui, TuiOptions};
use hush_room::{Action, Entropy, Notice, Room, Shown, Warning};

/// First retry delay after a failed connection.
const BACKOFF_START: Duration = Duration::from_millis(250);
/// Longest delay between connection attempts.
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// After /quit or end of input, how long to wait for our last messages to
/// be confirmed by the relay.
const DRAIN_LIMIT: Duration = Duration::from_secs(10);

/// What the client needs to run.
pub struct ClientConfig {
    /// `host:port` of the relay (the first of `servers`): names the saved
    /// state, which is the cluster's, whichever node serves it.
    pub server: String,
    /// Every relay to try, in order: nodes of one cluster (`--server A,B`),
    /// which must all present one key. Empty means `server` alone.
    pub servers: Vec<String>,
    /// Our identity.
    pub identity: Arc<Identity>,
    /// The rooms named on the command line, the first one current (the
    /// rooms open when the client last stopped open too).
    pub rooms: Vec<RoomName>,
    /// Our display name.
    pub nick: String,
    /// `nick` was given (`--nick`), not defaulted: it replaces the name a
    /// saved room had (usability B6).
    pub nick_given: bool,
    /// One JSON object per event instead of lines.
    pub json: bool,
    /// Append the plaintext transcript here (opt-in).
    pub transcript: Option<PathBuf>,
    /// Show times in UTC instead of the local time zone.
    pub utc: bool,
    /// Pinned relay keys.
    pub known_relays: KnownRelays,
    /// Largest frame accepted from the relay.
    pub max_frame: usize,
    /// When to rekey the room although nobody joined or left.
    pub rekey: hush_room::RekeyPolicy,
    /// Rules for the room if this client creates it: invite-only, and
    /// what newcomers may read.
    pub create_as: (bool, hush_proto::e2e::HistoryVisibility),
    /// Where to keep the sealed room state between runs (`None`: keep
    /// nothing; every run re-reads the relay's log).
    pub state_dir: Option<PathBuf>,
    /// Read the named rooms' retained history again from its start (with
    /// the saved keys standing in for pruned commits) instead of resuming.
    pub replay_history: bool,
    /// Where `/save` puts files unless told otherwise.
    pub download_dir: PathBuf,
    /// `--expect`: the relay must present this key (a person's, in direct
    /// mode), pinned or not.
    pub expect: Option<Fingerprint>,
    /// Notices to show at start (direct mode says how others connect).
    pub greeting: Vec<String>,
    /// How others name this client's relay in a command they run, when
    /// `server` is not it (direct mode: `YOUR-ADDRESS:PORT`, not the
    /// loopback address this client itself uses).
    pub reachable_as: Option<String>,
    /// `--code`: run this invitation code's exchange first, then open the
    /// room it names.
    pub code: Option<hush_proto::code::Code>,
    /// Start the named rooms over: set their saved state aside before
    /// starting, and read what the relay has now (after a `rollback`
    /// warning).
    pub reset_room: bool,
}

/// Why the client stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The relay cannot be used (not hush, other version, bad key, ...).
    #[error("{0}")]
    Relay(String),
    /// The relay's key is not the pinned one.
    #[error("{0}")]
    Pin(#[from] PinError),
    /// The client stopped with lines the relay never sequenced.
    #[error(
        "{0} typed line(s) or event(s) were not sent: the relay did not confirm them before the client stopped (they are not kept; send them again)"
    )]
    Unsent(usize),
    /// Writing output failed.
    #[error("cannot write output: {0}")]
    Output(#[from] std::io::Error),
}

/// What the user did: a line (line mode, `--json`), or a key, paste or
/// resize on the terminal app.
#[derive(Debug)]
pub enum UserInput {
    /// A line read from stdin.
    Line(String),
    /// A terminal event for the TUI.
    Term(ratatui::crossterm::event::Event),
    /// Ctrl-C in line mode (SIGINT): quit as `/quit` does.
    Interrupt,
}

/// The screen (lines on `out`, or the terminal app), and the transcript
/// file if any.
struct Screen<W: Write> {
    json: bool,
    out: W,
    /// The `-o` transcript and its path.
    transcript: Option<(std::fs::File, PathBuf)>,
    /// More than one room is open: each line starts with its room.
    prefix_rooms: bool,
    /// The terminal app, which then shows everything instead of `out`.
    tui: Option<Tui>,
    /// Local time, or UTC (`--utc`), for line mode and the transcript.
    time: LocalTime,
    /// When the last message shown was received (a new day says so).
    last_day: Option<u64>,
    /// Line mode on a terminal: the file transfer progress bar drawn on
    /// stderr, and when.
    bar: Option<(String, Instant)>,
    /// stderr is a terminal a progress bar may be drawn on.
    bar_tty: bool,
    /// The epoch each room was last shown joined at: a reconnect that
    /// joins again at the same epoch is not said again (usability F15).
    joined: std::collections::HashMap<RoomName, u64>,
    /// The people whose keys we verified: the mark beside their names
    /// and the impostor warning come from here, so everything shown
    /// passes by it. Marked through [`Screen::mark_verified`] (by
    /// `/verify NICK --mark`, and by a code exchange), which also tells
    /// the chat screen.
    contacts: Contacts,
    /// Our own key: never an impostor of anyone.
    me: Fingerprint,
    /// The impostor warnings given this run, by (room, key, name used):
    /// each is said once.
    impostors_said: std::collections::HashSet<(RoomName, Fingerprint, String)>,
}

impl<W: Write> Screen<W> {
    /// Opens the `-o` transcript, if asked for, and marks where this run
    /// starts in it.
    fn open(config: &ClientConfig, out: W, tui: Option<Tui>) -> Result<Self, ClientError> {
        let time = LocalTime::new(config.utc);
        let contacts = Contacts::load(config.state_dir.as_deref(), config.identity.clone())
            .map_err(|e| {
                ClientError::Relay(format!(
                    "cannot read your verified contacts: {e}. Move the file away to start without them (you would verify those people again)"
                ))
            })?;
        let transcript = match config.transcript.as_ref() {
            Some(p) => Some((
                open_transcript(p).map_err(|e| {
                    ClientError::Relay(format!(
                        "cannot open the transcript file {}: {e}",
                        p.display()
                    ))
                })?,
                p.clone(),
            )),
            None => None,
        };
        let mut screen = Self {
            json: config.json,
            out,
            transcript,
            prefix_rooms: false,
            tui,
            last_day: None,
            time,
            bar: None,
            joined: std::collections::HashMap::new(),
            contacts,
            me: config.identity.fingerprint(),
            impostors_said: std::collections::HashSet::new(),
            bar_tty: {
                use std::io::IsTerminal;
                !config.json && std::io::stderr().is_terminal()
            },
        };
        let now = now_ms();
        let start = format!(
            "-- hush client started on {} at {} ({})",
            screen.time.date(now),
            screen.time.hhmm(now),
            config.server
        );
        screen.transcribe(&start);
        screen.sync_verified();
        Ok(screen)
    }

    /// The chat screen's copy of who is verified follows the contacts.
    fn sync_verified(&mut self) {
        if let Some(tui) = &mut self.tui {
            tui.set_verified(self.contacts.iter().map(|v| v.fingerprint).collect());
        }
    }

    /// Marks `fp` verified as `nick` (saved at once), and says so: what
    /// `/verify NICK --mark` does, and what a code exchange calls once it
    /// has proved a key (`VerifiedBy::Code`). A file that cannot be
    /// written is said as an error; the mark still holds for this run.
    ///
    /// # Errors
    /// If the output cannot be written.
    pub(crate) fn mark_verified(
        &mut self,
        room: Option<&RoomName>,
        fp: Fingerprint,
        nick: &str,
        by: VerifiedBy,
    ) -> std::io::Result<()> {
        let saved = self.contacts.mark(fp, nick, by, now_ms());
        self.sync_verified();
        if let Some(tui) = &mut self.tui {
            tui.touch();
        }
        let what = format!(
            "marked {nick} ({fp}) as verified {}: their name now carries the verified mark, and anyone else using the name {nick} raises an impostor warning",
            by.words()
        );
        match saved {
            Ok(()) => self.notice(room, what),
            Err(e) => self.error(format!(
                "{what}; but it could not be saved, so it holds for this run only: {e}"
            )),
        }
    }

    /// Removes the mark of `fp` (saved at once), and says so.
    ///
    /// # Errors
    /// If the output cannot be written.
    fn unmark_verified(&mut self, room: Option<&RoomName>, fp: Fingerprint) -> std::io::Result<()> {
        let gone = self.contacts.unmark(&fp);
        self.sync_verified();
        if let Some(tui) = &mut self.tui {
            tui.touch();
        }
        match gone {
            Ok(Some(v)) => self.notice(
                room,
                format!(
                    "{} ({fp}) is no longer marked verified; compare the safety number again to mark it",
                    v.nick
                ),
            ),
            Ok(None) => self.error(format!("{fp} was not marked verified")),
            Err(e) => self.error(format!(
                "the mark of {fp} is gone for this run, but the change could not be saved: {e}"
            )),
        }
    }

    /// The impostor warnings an event calls for: someone showing up (in
    /// a message or file offer, admitted in an epoch, or taking a new
    /// name) with the name of a verified person and another key. Each
    /// (room, key, name) is warned about once per run.
    fn impostors_in(&mut self, ev: &Shown) -> Vec<Shown> {
        if self.contacts.is_empty() {
            return Vec::new();
        }
        let (room, seq, people): (&RoomName, Option<u64>, Vec<(Fingerprint, &str)>) = match ev {
            Shown::Message {
                room,
                seq,
                from,
                nick,
                ..
            }
            | Shown::FileOffered {
                room,
                seq,
                from,
                nick,
                ..
            } => (room, Some(*seq), vec![(*from, nick.as_str())]),
            Shown::MemberJoined {
                room,
                seq,
                member,
                nick,
            } => (room, Some(*seq), vec![(*member, nick.as_str())]),
            Shown::Epoch {
                room, seq, members, ..
            } => (
                room,
                Some(*seq),
                members.iter().map(|(fp, n)| (*fp, n.as_str())).collect(),
            ),
            Shown::Notice {
                room: Some(room),
                notice: Notice::NickChanged { member, new, .. },
            } => (room, None, vec![(*member, new.as_str())]),
            _ => return Vec::new(),
        };
        let mut out = Vec::new();
        for (fp, nick) in people {
            if fp == self.me {
                continue;
            }
            let Some(real) = self.contacts.impostor(nick, &fp) else {
                continue;
            };
            if !self
                .impostors_said
                .insert((room.clone(), fp, nick.to_owned()))
            {
                continue;
            }
            out.push(Shown::Warning {
                room: Some(room.clone()),
                seq,
                from: Some(hush_room::Peer {
                    fingerprint: fp,
                    nick: nick.to_owned(),
                }),
                warning: Warning::Impostor {
                    nick: nick.to_owned(),
                    verified: hush_room::Peer {
                        fingerprint: real.fingerprint,
                        nick: real.nick.clone(),
                    },
                },
            });
        }
        out
    }

    /// An event only `--json` prints (the user reads its notice).
    fn event(&mut self, value: &serde_json::Value) -> std::io::Result<()> {
        if self.json && self.tui.is_none() {
            writeln!(self.out, "{value}")?;
            self.out.flush()?;
        }
        Ok(())
    }

    /// Our own line, before the relay sequenced it (the TUI shows it as
    /// pending; line mode shows it once it comes back).
    fn own_line(&mut self, room: &RoomName, text: &str, action: bool) {
        if let Some(tui) = &mut self.tui {
            tui.own_line(room, text, action);
        }
    }

    /// A room is about to open: the chat screen lists it at once, so what
    /// is said while it opens is shown in it.
    fn room_opening(&mut self, name: &RoomName) {
        if let Some(tui) = &mut self.tui {
            tui.room_opening(name);
        }
    }

    /// A room's window closed (`/part`, `/leave`); `next` is current now.
    fn room_closed(&mut self, name: &RoomName, next: Option<&RoomName>) {
        if let Some(tui) = &mut self.tui {
            tui.room_closed(name, next);
        }
    }

    /// The link's state, for the TUI's status line.
    fn link(&mut self, link: LinkState) {
        if let Some(tui) = &mut self.tui {
            tui.link(link);
        }
    }

    /// When the TUI's next frame is due, if anything changed.
    fn frame_due(&self) -> Option<Instant> {
        self.tui.as_ref().and_then(Tui::frame_due)
    }

    /// Brings the TUI up to date with the rooms and draws a frame.
    fn frame(&mut self, rooms: &Rooms, state: &Session) -> std::io::Result<()> {
        let Some(tui) = &mut self.tui else {
            return Ok(());
        };
        let facts = rooms.current_ref().map(|open| RoomFacts {
            name: open.room.name().clone(),
            epoch: open.room.epoch(),
            members: open.room.members(),
            online_known: open.room.is_caught_up() && state.frame_limit.is_some(),
            nick: open.room.nick().to_owned(),
        });
        let current = rooms.current_ref().map(|open| open.room.name().clone());
        let me = tui.me();
        // Each room's nick (mentions are per room), and a name for a /dm
        // room that says who it is with.
        let info: Vec<(RoomName, String, Option<String>)> = rooms
            .iter()
            .filter(|open| open.closing.is_none())
            .map(|open| {
                let label = open.room.name().as_str().starts_with("dm-").then(|| {
                    let others: Vec<_> = open
                        .room
                        .members()
                        .into_iter()
                        .filter(|(fp, _, _)| *fp != me)
                        .collect();
                    match others.as_slice() {
                        [(_, nick, _)] => format!("@{nick}"),
                        _ => open.dm.as_ref().map_or_else(
                            || "@(private)".to_owned(),
                            |dm| format!("@{}", dm.peer.short_id()),
                        ),
                    }
                });
                (open.room.name().clone(), open.room.nick().to_owned(), label)
            })
            .collect();
        tui.sync(&rooms.listed(), current.as_ref(), facts, rooms.unsent());
        tui.room_info(&info);
        tui.draw()
    }

    fn show(&mut self, ev: &Shown) -> std::io::Result<()> {
        self.show_as(ev, None)
    }

    /// [`Self::show`], with `json` printed instead of the event's own JSON
    /// object in `--json` mode (a command's answer as data, not prose).
    fn show_as(&mut self, ev: &Shown, json: Option<String>) -> std::io::Result<()> {
        // People read a re-join after a reconnect once; bots get every
        // `joined` (CLIENT.md §5.2).
        if let Shown::Joined { room, epoch, .. } = ev
            && self.joined.insert(room.clone(), *epoch) == Some(*epoch)
            && !self.json
        {
            return Ok(());
        }
        // The first message of each day says which day it is (usability
        // F5: a backlog after days away, or a transcript kept across
        // sessions, otherwise carries no date).
        let new_day = match ev {
            Shown::Message { received_at_ms, .. }
                if self
                    .last_day
                    .is_none_or(|d| !self.time.same_day(d, *received_at_ms)) =>
            {
                self.last_day = Some(*received_at_ms);
                Some(format!("-- {}", self.time.date(*received_at_ms)))
            }
            _ => None,
        };
        let contacts = &self.contacts;
        let verified = |fp: &Fingerprint| contacts.is_verified(fp);
        let mut line = render_line_marked(ev, &self.time, &verified);
        let object = (self.json && self.tui.is_none())
            .then(|| json.unwrap_or_else(|| render_json_marked(ev, &verified)));
        // Shown right after the event that gave the impostor away.
        let impostors = self.impostors_in(ev);
        if self.prefix_rooms
            && let Some(room) = shown_room(ev)
        {
            line = format!("#{room} {line}");
        }
        // The transcript first: whatever the screen shows is already in it.
        if let Some(day) = &new_day {
            self.transcribe(day);
        }
        self.transcribe(&line);
        if let Some(tui) = &mut self.tui {
            tui.show(ev);
        } else if let Some(object) = object {
            writeln!(self.out, "{object}")?;
        } else {
            // A progress bar on the same terminal steps aside for the line.
            let bar = self.bar.as_ref().map(|(b, _)| b.clone());
            if bar.is_some() {
                let _ = write!(std::io::stderr(), "\r\x1b[K");
            }
            if let Some(day) = new_day {
                writeln!(self.out, "{day}")?;
            }
            writeln!(self.out, "{line}")?;
            self.out.flush()?;
            if let Some(bar) = bar {
                let _ = write!(std::io::stderr(), "{bar}");
            }
        }
        self.out.flush()?;
        for warning in impostors {
            self.show(&warning)?;
        }
        Ok(())
    }

    /// The transfers' progress: a bar on stderr in line mode on a
    /// terminal (redrawn at most ten times a second), the status line in
    /// the chat screen.
    fn progress(&mut self, summary: Option<String>) {
        if let Some(tui) = &mut self.tui {
            tui.transfer(summary);
            return;
        }
        if !self.bar_tty {
            return;
        }
        match (summary, &self.bar) {
            (None, None) => {}
            (None, Some(_)) => {
                self.bar = None;
                let _ = write!(std::io::stderr(), "\r\x1b[K");
            }
            (Some(s), Some((old, at)))
                if *old == s || at.elapsed() < Duration::from_millis(100) => {}
            (Some(s), _) => {
                let _ = write!(std::io::stderr(), "\r\x1b[K{s}");
                self.bar = Some((s, Instant::now()));
            }
        }
    }

    /// Appends a line to the `-o` transcript. If it cannot be written (a
    /// closed terminal, a full disk), the chat goes on and the transcript
    /// stops, with a word why.
    fn transcribe(&mut self, line: &str) {
        let Some((t, path)) = &mut self.transcript else {
            return;
        };
        if let Err(e) = writeln!(t, "{line}") {
            let why = format!(
                "stopped writing the transcript to {}: {e}; the chat goes on without it",
                path.display()
            );
            self.transcript = None;
            // Said where the user looks; an output error then is the
            // output's own, reported by the next write.
            let _ = self.show(&Shown::Error { text: why });
        }
    }

    fn error(&mut self, text: String) -> std::io::Result<()> {
        self.show(&Shown::Error { text })
    }

    fn notice(&mut self, room: Option<&RoomName>, text: String) -> std::io::Result<()> {
        self.show(&Shown::Notice {
            room: room.cloned(),
            notice: Notice::Text(text),
        })
    }
}

/// How a connection attempt failed.
enum ConnectFailure {
    /// Try again later (relay down, network trouble).
    Retry(String),
    /// Give up (not a hush relay, wrong key, ...).
    Fatal(ClientError),
}

fn classify(e: LinkError, ever_connected: bool) -> ConnectFailure {
    match e {
        LinkError::Io(io) => ConnectFailure::Retry(io.to_string()),
        LinkError::RelayKeyRefused(msg) => ConnectFailure::Fatal(ClientError::Relay(msg)),
        other if ever_connected => ConnectFailure::Retry(other.to_string()),
        LinkError::Handshake(HandshakeError::NotHush) => ConnectFailure::Fatal(ClientError::Relay(
            "the server did not answer as a hush relay: check the address and port".into(),
        )),
        LinkError::Handshake(HandshakeError::VersionMismatch { ours, theirs }) => {
            ConnectFailure::Fatal(ClientError::Relay(format!(
                "the relay speaks hush protocol {theirs} and this client speaks {ours}: upgrade the older one"
            )))
        }
        LinkError::Protocol(_) => ConnectFailure::Fatal(ClientError::Relay(
            "the server did not answer as a hush relay: check the address and port".into(),
        )),
        LinkError::Closed => ConnectFailure::Fatal(ClientError::Relay(
            "the relay closed the connection during the handshake (is it a hush relay, and does it accept you?)".into(),
        )),
        other => ConnectFailure::Fatal(ClientError::Relay(format!(
            "cannot establish a secure link with the relay: {other}"
        ))),
    }
}

/// Opens the `-o` transcript for appending. It holds plaintext chat, so it
/// is created 0600, and an existing regular file readable by others is
/// narrowed to 0600 (audit L7); a device or pipe is left as it is.
///
/// # Errors
/// If the file cannot be opened or its mode narrowed.
pub fn open_transcript(path: &std::path::Path) -> std::io::Result<std::fs::File> {
    let mut opts = std::fs::OpenOptions::new();
    opts.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let file = opts.open(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let meta = file.metadata()?;
        if meta.is_file() && meta.permissions().mode() & 0o077 != 0 {
            file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        }
    }
    Ok(file)
}

/// Runs the client in line mode (or `--json`) until `/quit`, the end of
/// `input`, leaving or parting its last room, or a fatal error.
///
/// # Errors
/// [`ClientError`] for a relay that cannot be used or a pin mismatch.
pub async fn run<R, W>(config: ClientConfig, input: R, out: W) -> Result<(), ClientError>
where
    R: AsyncBufRead + Unpin + Send + 'static,
    W: Write,
{
    let screen = Screen::open(&config, out, None)?;
    let (line_tx, lines) = mpsc::channel::<UserInput>(64);
    tokio::spawn(async move {
        let mut reader = input.lines();
        while let Ok(Some(line)) = reader.next_line().await {
            if line_tx.send(UserInput::Line(line)).await.is_err() {
                break;
            }
        }
    });
    run_on(config, screen, lines).await
}

/// [`run`] on this process's stdin and stdout, where Ctrl-C (SIGINT) is
/// a `/quit`: the client sends what was typed, saves each room's state
/// and exits, so the next start does not show the last second again
/// (usability F8). A second Ctrl-C, or one after the end of input,
/// exits at once with status 130.
///
/// # Errors
/// As [`run`].
pub async fn run_stdio(config: ClientConfig) -> Result<(), ClientError> {
    let screen = Screen::open(&config, std::io::stdout(), None)?;
    let (line_tx, lines) = mpsc::channel::<UserInput>(64);
    tokio::spawn(async move {
        let mut reader = tokio::io::BufReader::new(tokio::io::stdin()).lines();
        // Dropped at the end of input, which is how the loop learns of it.
        let mut tx = Some(line_tx);
        let mut interrupted = false;
        loop {
            tokio::select! {
                line = reader.next_line(), if tx.is_some() => match (line, &tx) {
                    (Ok(Some(line)), Some(t)) => {
                        if t.send(UserInput::Line(line)).await.is_err() {
                            return;
                        }
                    }
                    _ => tx = None,
                },
                signal = tokio::signal::ctrl_c() => {
                    if signal.is_err() {
                        return;
                    }
                    match &tx {
                        Some(t) if !interrupted => {
                            interrupted = true;
                            let _ = t.send(UserInput::Interrupt).await;
                        }
                        _ => std::process::exit(130),
                    }
                }
            }
        }
    });
    run_on(config, screen, lines).await
}

/// Runs the client as the terminal app, on this process's terminal,
/// until `/quit`, Ctrl-C or Ctrl-D, closing its last room, or a fatal
/// error. The terminal is given back before this returns.
///
/// # Errors
/// [`ClientError`] for a relay that cannot be used or a pin mismatch, or
/// a terminal that cannot be used.
pub async fn run_tui(config: ClientConfig, options: TuiOptions) -> Result<(), ClientError> {
    let tui = Tui::start(
        config.identity.fingerprint(),
        config.nick.clone(),
        config.server.clone(),
        LocalTime::new(config.utc),
        options,
    )
    .map_err(|e| {
        ClientError::Relay(format!(
            "cannot use this terminal for the chat screen ({e}); --plain runs the client in line mode"
        ))
    })?;
    let screen = Screen::open(&config, std::io::sink(), Some(tui))?;
    let (tx, lines) = mpsc::channel::<UserInput>(64);
    crate::tui::spawn_input_thread(tx);
    run_on(config, screen, lines).await
}

async fn run_on<W: Write>(
    mut config: ClientConfig,
    mut screen: Screen<W>,
    mut lines: mpsc::Receiver<UserInput>,
) -> Result<(), ClientError> {
    if let Some(code) = config.code {
        redeem_code(&mut config, code, &mut screen).await?;
    }
    let mut rooms = Rooms::new(
        config
            .state_dir
            .as_ref()
            .map(|dir| OpenRooms::new(dir, &config.server)),
    );
    // The rooms named on the command line, then the ones open last time.
    let mut names = config.rooms.clone();
    for saved in rooms.saved() {
        if !names.contains(&saved) {
            names.push(saved);
        }
    }
    if names.is_empty() {
        return Err(ClientError::Relay(format!(
            "no room to open: give --room NAME (no rooms are saved for {} yet)",
            config.server
        )));
    }
    for name in &names {
        let named = config.rooms.contains(name);
        let room = open_room(&config, name, named, None, &mut screen)?;
        rooms.insert(room);
    }
    // Typed lines go to the first room named (or saved).
    rooms.switch_to(&names[0]);
    screen.prefix_rooms = rooms.len() > 1;
    save_list(&rooms, &mut screen)?;
    let mut state = Session {
        quitting: None,
        input_open: true,
        frame_limit: None,
        said_draining: false,
        keep_input: screen.tui.is_some(),
        files: Transfers::new(
            config.download_dir.clone(),
            config.state_dir.as_ref().map(|dir| TransferStore {
                dir: dir.clone(),
                server: config.server.clone(),
                identity: config.identity.clone(),
            }),
        ),
        abandon_transfers: false,
        said_transfers: false,
        codes: crate::code::Inviting::default(),
        compared: std::collections::HashSet::new(),
    };
    // Transfers an earlier run left unfinished go on once connected.
    let resumed = state.files.resume();
    file_steps(resumed, &mut rooms, &mut screen)?;
    let mut ever_connected = false;
    let mut said_waiting = false;
    let mut backoff = BACKOFF_START;
    // The relay's latest session ticket (kept in memory only): a
    // reconnect, e.g. after a relay restart, resumes without RSA.
    let mut ticket = None;
    if screen.tui.is_some() {
        screen.notice(None, "keys: Enter sends, Alt-Enter starts a new line, Alt-1..9 or Ctrl-N/Ctrl-P switch rooms, Alt-A goes to the next unread, PageUp/PageDown scroll, Ctrl-C quits; /help lists the commands".into())?;
    }
    for line in &config.greeting {
        screen.notice(None, line.clone())?;
    }
    // Said at once: a relay that accepts and never answers takes the
    // handshake timeout to fail (usability F11).
    let servers = if config.servers.is_empty() {
        vec![config.server.clone()]
    } else {
        config.servers.clone()
    };
    screen.notice(
        None,
        match servers.as_slice() {
            [_, rest @ ..] if !rest.is_empty() => format!(
                "connecting to {} (then {} if it does not answer: one cluster, one key)",
                servers[0],
                rest.join(", ")
            ),
            _ => format!("connecting to {}", config.server),
        },
    )?;
    // Which of `servers` to try next, and how many failed in a row: the
    // client backs off only once every node failed.
    let mut at = 0;
    let mut failed = 0;

    loop {
        let pins = config.known_relays.clone();
        let server = servers[at % servers.len()].clone();
        let expect = config.expect;
        // A cluster has one key: a node not pinned yet must present the
        // key another node of the list is pinned to.
        let cluster_pin = servers
            .iter()
            .filter(|s| **s != server)
            .find_map(|s| pins.pinned(s).ok().flatten().map(|fp| (s.clone(), fp)));
        let pinned = std::sync::Mutex::new(None);
        let attempt = Connection::connect_resuming(
            &server,
            config.identity.clone(),
            config.max_frame,
            ticket.clone(),
            |relay| {
                let presented = relay.fingerprint();
                if let Some(e) = expect.filter(|e| *e != presented) {
                    return Err(format!(
                        "the relay at {server} presents the key {presented}, not {e} that --expect names: it is not who you meant to reach; check the address and the fingerprint you were given"
                    ));
                }
                if let Some((other, fp)) = cluster_pin.as_ref().filter(|(_, fp)| *fp != presented) {
                    return Err(format!(
                        "the relay at {server} presents the key {presented}, but {other}, listed with it in --server, is pinned to {fp}: every node of one cluster presents the same key, so this one is not part of it (or someone is intercepting the connection); check the list with the operator"
                    ));
                }
                match pins.check(&server, presented) {
                    Ok(check) => {
                        if let Ok(mut p) = pinned.lock() {
                            *p = Some((check, presented));
                        }
                        Ok(())
                    }
                    Err(e) => Err(e.to_string()),
                }
            },
        )
        .await;
        let mut conn = match attempt {
            Ok(c) => c,
            Err(e) => match classify(e, ever_connected) {
                ConnectFailure::Fatal(err) => return Err(err),
                ConnectFailure::Retry(why) => {
                    screen.link(if ever_connected {
                        LinkState::Reconnecting
                    } else {
                        LinkState::Connecting
                    });
                    at += 1;
                    failed += 1;
                    if failed < servers.len() {
                        screen.notice(
                            None,
                            format!(
                                "cannot reach the relay at {server} ({why}); trying {}",
                                servers[at % servers.len()]
                            ),
                        )?;
                        continue;
                    }
                    failed = 0;
                    if !said_waiting {
                        said_waiting = true;
                        screen.notice(None, if servers.len() > 1 {
                            format!(
                                "cannot reach any of {} ({why}); retrying until one answers (Ctrl-C to stop)",
                                servers.join(", ")
                            )
                        } else {
                            format!(
                                "cannot reach the relay at {server} ({why}); retrying until it answers (Ctrl-C to stop)"
                            )
                        })?;
                    }
                    if wait_offline(
                        &config,
                        &mut rooms,
                        &mut lines,
                        &mut screen,
                        &mut state,
                        backoff,
                    )
                    .await?
                    {
                        return finish(&mut rooms, &mut screen, &state);
                    }
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                    continue;
                }
            },
        };
        backoff = BACKOFF_START;
        said_waiting = false;
        failed = 0;
        ticket = conn.ticket.take().or(ticket);
        if let Ok(Some((check, fp))) = pinned.into_inner()
            && check == PinCheck::Pinned
        {
            if let Some(tui) = &mut screen.tui {
                tui.pinned_now();
            }
            screen.notice(None, match &cluster_pin {
                Some((other, _)) => format!(
                    "first contact with {server}: it presents the key {other} is pinned to (one cluster), pinned in {}",
                    config.known_relays.path().display()
                ),
                None => format!(
                    "first contact with {server}: pinned its key {fp} in {} (compare it with the relay operator's)",
                    config.known_relays.path().display()
                ),
            })?;
        }
        let verb = if ever_connected {
            "reconnected"
        } else {
            "connected"
        };
        match config.expect {
            Some(fp) if !ever_connected => screen.notice(
                None,
                format!(
                    "connected directly to the owner of {fp} at {server} (the key --expect names)"
                ),
            )?,
            _ => screen.notice(None, format!("{verb} to {server}"))?,
        }
        screen.link(LinkState::Connected);
        ever_connected = true;
        let end = session(
            &config,
            conn,
            &mut rooms,
            &mut lines,
            &mut screen,
            &mut state,
        )
        .await?;
        state.frame_limit = None;
        let void = state.codes.connection_lost();
        if void > 0 {
            screen.error(format!(
                "{void} invitation code(s) made on the lost connection are void (the relay closes them with the link): make new ones with /code"
            ))?;
        }
        screen.link(LinkState::Reconnecting);
        for r in rooms.iter_mut() {
            if let Some(w) = r.save() {
                screen.show(&w)?;
            }
        }
        match end {
            SessionEnd::Done => return finish(&mut rooms, &mut screen, &state),
            SessionEnd::Reconnect(why) => {
                // With a cluster, fail over: the next node serves the same
                // rooms, and each room backfills from the last seq it
                // processed. Either way a short pause, so a node that
                // accepts and drops at once is not retried in a spin.
                at += 1;
                let text = if servers.len() > 1 {
                    format!(
                        "connection to {server} lost ({why}); trying {}",
                        servers[at % servers.len()]
                    )
                } else {
                    format!("connection to the relay lost ({why}); reconnecting")
                };
                screen.notice(None, text)?;
                tokio::time::sleep(BACKOFF_START).await;
            }
        }
    }
}

/// `--code`: the exchange, before the session. The room it names opens
/// first; the relay's key is pinned (and expected) as the inviter sees it.
async fn redeem_code<W: Write>(
    config: &mut ClientConfig,
    code: hush_proto::code::Code,
    screen: &mut Screen<W>,
) -> Result<(), ClientError> {
    screen.notice(
        None,
        format!("using code {code} at {}: connecting", config.server),
    )?;
    let redeemed = crate::code::redeem(
        &config.server,
        config.identity.clone(),
        &config.nick,
        config.max_frame,
        &config.known_relays,
        config.expect,
        code,
    )
    .await
    .map_err(ClientError::Relay)?;
    let inviter = &redeemed.inviter;
    let fp = inviter.key.fingerprint();
    if redeemed.pinned_now {
        if let Some(tui) = &mut screen.tui {
            tui.pinned_now();
        }
        screen.notice(None, format!(
            "first contact with {}: pinned its key {} (confirmed by the code: it is the relay your inviter uses)",
            config.server, redeemed.relay
        ))?;
    }
    let text = format!(
        "code accepted: {} ({fp}) invited you to #{}; the code proved their key to you, and yours to them",
        crate::display::sanitize(&inviter.nick),
        redeemed.room
    );
    let object = serde_json::json!({
        "type": "code_accepted",
        "room": redeemed.room.as_str(),
        "inviter": fp.to_string(),
        "nick": inviter.nick,
        "relay": redeemed.relay.to_string(),
    });
    screen.show_as(
        &Shown::Notice {
            room: Some(redeemed.room.clone()),
            notice: Notice::Text(text),
        },
        Some(object.to_string()),
    )?;
    mark_by_code(
        screen,
        Some(&redeemed.room),
        fp,
        &code_name(&inviter.nick, &fp),
    )?;
    config.rooms.retain(|r| *r != redeemed.room);
    config.rooms.insert(0, redeemed.room);
    Ok(())
}

/// The client stops: each room with lines the relay never sequenced
/// says so, and the exit is an error (usability B1: a script must see it).
fn finish<W: Write>(
    rooms: &mut Rooms,
    screen: &mut Screen<W>,
    state: &Session,
) -> Result<(), ClientError> {
    // The terminal app gives the terminal back first, so what follows is
    // read on the ordinary screen (stderr) after it closes.
    let leftovers = screen.tui.as_ref().map(Tui::leftovers);
    let had_tui = screen.tui.take().map(drop).is_some();
    let mut total = 0;
    for r in rooms.iter_mut() {
        let n = r.room.unsent();
        if n > 0 {
            total += n;
            let name = r.room.name().clone();
            let text = format!("#{name}: {n} not sent (the relay did not confirm them)");
            if had_tui {
                let _ = writeln!(std::io::stderr(), "hush: {text}");
            } else {
                screen.error(text)?;
            }
        }
    }
    // The screen is gone: what it showed of them is printed, so it can
    // be sent again (a half-typed line too).
    for (room, what, text) in leftovers.unwrap_or_default() {
        let text = text.replace('\n', "\n    ");
        let _ = writeln!(std::io::stderr(), "hush: #{room}, {what}: {text}");
    }
    if total > 0 {
        return Err(ClientError::Unsent(total));
    }
    let failed = state.files.failures();
    if failed > 0 {
        return Err(ClientError::Relay(format!(
            "{failed} file transfer(s) failed or were stopped (said above); nothing of them was offered or saved"
        )));
    }
    Ok(())
}

struct Session {
    /// Set by /quit, end of input, or closing the last room: exit once
    /// our events are confirmed, or at this deadline.
    quitting: Option<Instant>,
    input_open: bool,
    /// While connected: the frame limit commits must fit (the relay's and
    /// ours), which a room opened by `/join` is given.
    frame_limit: Option<usize>,
    /// The user was told the client waits for unsent lines before exiting.
    said_draining: bool,
    /// The terminal app: input stays open while quitting, for the second
    /// Ctrl-C that quits at once.
    keep_input: bool,
    /// Files being sent and saved.
    files: Transfers,
    /// Quitting at once: unfinished transfers are dropped.
    abandon_transfers: bool,
    /// The user was told the client waits for file transfers.
    said_transfers: bool,
    /// Invitation codes made on this link (`/code`).
    codes: crate::code::Inviting,
    /// The keys whose safety number `/verify NICK` showed this run: only
    /// those can be marked verified (`--mark` marks the key the user
    /// compared, not whoever took the name since).
    compared: std::collections::HashSet<Fingerprint>,
}

impl Session {
    fn quit(&mut self) {
        self.input_open = self.keep_input;
        self.quitting.get_or_insert(Instant::now() + DRAIN_LIMIT);
    }

    /// Quit without waiting for what is unsent, or for file transfers (a
    /// second Ctrl-C).
    fn quit_now(&mut self) {
        self.input_open = false;
        self.quitting = Some(Instant::now());
        self.abandon_transfers = true;
    }

    /// Quitting: whether to stop now (everything sent, or the deadline
    /// passed). Once the wait has lasted a second with something still
    /// to send, the user is told.
    fn done_quitting<W: Write>(
        &mut self,
        rooms: &Rooms,
        screen: &mut Screen<W>,
    ) -> std::io::Result<bool> {
        let Some(deadline) = self.quitting else {
            return Ok(false);
        };
        // File transfers finish first, however long they take (they make
        // progress, or the user presses Ctrl-C again).
        if self.files.busy() && !self.abandon_transfers {
            // What they send last (an offer) then has the whole drain.
            self.quitting = Some(Instant::now() + DRAIN_LIMIT);
            if !self.said_transfers {
                self.said_transfers = true;
                screen.notice(
                    None,
                    "waiting for file transfers to finish before exiting (Ctrl-C again stops them)"
                        .into(),
                )?;
            }
            return Ok(false);
        }
        if rooms.all_settled() || Instant::now() >= deadline {
            return Ok(true);
        }
        let unsent = rooms.unsent();
        // Said only if the wait is noticeable: most drains take a round
        // trip.
        let waited = DRAIN_LIMIT.saturating_sub(deadline.saturating_duration_since(Instant::now()));
        if !self.said_draining && unsent > 0 && waited >= Duration::from_secs(1) {
            self.said_draining = true;
            screen.notice(None, format!(
                "waiting up to {} s for {unsent} unsent line(s) or event(s) to reach the relay before exiting (Ctrl-C stops now and loses them)",
                DRAIN_LIMIT.as_secs()
            ))?;
        }
        Ok(false)
    }
}

enum SessionEnd {
    Done,
    Reconnect(String),
}

/// While the relay is unreachable: keep taking input for `delay`.
/// Returns true if the user quit.
async fn wait_offline<W: Write>(
    config: &ClientConfig,
    rooms: &mut Rooms,
    lines: &mut mpsc::Receiver<UserInput>,
    screen: &mut Screen<W>,
    state: &mut Session,
    delay: Duration,
) -> Result<bool, ClientError> {
    let next_attempt = tokio::time::Instant::now() + delay;
    loop {
        if state.done_quitting(rooms, screen)? {
            return Ok(true);
        }
        // Quitting: the drain's deadline ends the wait too, not only the
        // next attempt (which may be seconds later).
        let until = state
            .quitting
            .map_or(next_attempt, |d| next_attempt.min(d.into()));
        let frame_at = screen.frame_due();
        tokio::select! {
            () = tokio::time::sleep_until(until) => {
                if state.done_quitting(rooms, screen)? {
                    return Ok(true);
                }
                if tokio::time::Instant::now() >= next_attempt {
                    return Ok(false);
                }
            }
            () = sleep_until_opt(frame_at) => screen.frame(rooms, state)?,
            input = lines.recv(), if state.input_open => {
                // Offline: Publish actions are kept as unconfirmed and sent
                // after the reconnect.
                let actions = handle_input(config, input, rooms, screen, state)?;
                for a in actions {
                    if let Action::Show(ev) = a {
                        screen.show(&ev)?;
                    }
                }
            }
        }
    }
}

/// Opens one room: as saved by an earlier run, or fresh. `named`: the
/// room was named on the command line, so `--reset-room` and
/// `--replay-history` apply to it.
fn open_room<W: Write>(
    config: &ClientConfig,
    name: &RoomName,
    named: bool,
    create_as: Option<(bool, hush_proto::e2e::HistoryVisibility)>,
    screen: &mut Screen<W>,
) -> Result<OpenRoom, ClientError> {
    screen.room_opening(name);
    let store = config
        .state_dir
        .as_ref()
        .map(|dir| StateStore::new(dir, &config.server, name.as_str(), config.identity.clone()));
    let mut room = restore_room(config, name, named, store.as_ref(), screen)?;
    if let Some((invite_only, history)) = create_as {
        room = room.with_creation(invite_only, history);
    }
    if config.nick_given {
        for a in room.prefer_nick(config.nick.clone()) {
            if let Action::Show(ev) = a {
                screen.show(&ev)?;
            }
        }
    }
    Ok(OpenRoom::new(room, store))
}

/// The room as saved by an earlier run, or a fresh one.
fn restore_room<W: Write>(
    config: &ClientConfig,
    name: &RoomName,
    named: bool,
    store: Option<&StateStore>,
    screen: &mut Screen<W>,
) -> Result<Room, ClientError> {
    let fresh = || {
        Room::new(
            name.clone(),
            config.identity.clone(),
            config.nick.clone(),
            os_entropy(),
        )
        .with_rekey_policy(config.rekey)
        .with_creation(config.create_as.0, config.create_as.1)
    };
    let Some(store) = store else {
        return Ok(fresh());
    };
    if config.reset_room && named {
        match store.set_aside() {
            Ok(aside) => screen.notice(
                Some(name),
                format!(
                    "starting #{name} over from what the relay has now: the saved state was moved to {}",
                    aside.display()
                ),
            )?,
            Err(StateError::Io { error, .. }) if error.kind() == std::io::ErrorKind::NotFound => {
                screen.notice(
                    Some(name),
                    format!("starting #{name} over: there was no saved state"),
                )?;
            }
            Err(e) => {
                return Err(ClientError::Relay(format!(
                    "--reset-room: could not set the saved state of #{name} aside: {e}"
                )));
            }
        }
        return Ok(fresh());
    }
    let problem = match store.load() {
        Ok(None) => return Ok(fresh()),
        Ok(Some(snap)) if config.replay_history && named => {
            match Room::restore_for_replay(
                name.clone(),
                config.identity.clone(),
                &snap,
                os_entropy(),
            ) {
                Ok(room) => {
                    screen.notice(
                        Some(name),
                        format!(
                            "reading the history of #{name} again, with the keys saved earlier"
                        ),
                    )?;
                    return Ok(room
                        .with_rekey_policy(config.rekey)
                        .with_creation(config.create_as.0, config.create_as.1));
                }
                Err(e) => e.to_string(),
            }
        }
        Ok(Some(snap)) => {
            match Room::restore(
                name.clone(),
                config.identity.clone(),
                &snap,
                os_entropy(),
                Instant::now(),
            ) {
                Ok(room) => {
                    screen.notice(
                        Some(name),
                        format!(
                            "resuming #{name} after seq {} from saved state",
                            room.last_seq()
                        ),
                    )?;
                    return Ok(room
                        .with_rekey_policy(config.rekey)
                        .with_creation(config.create_as.0, config.create_as.1));
                }
                Err(e) => e.to_string(),
            }
        }
        Err(e) => e.to_string(),
    };
    let moved_to = store.set_aside().map_err(|e| e.to_string());
    screen.show(&Shown::Warning {
        room: Some(name.clone()),
        seq: None,
        from: None,
        warning: Warning::StateUnreadable { problem, moved_to },
    })?;
    Ok(fresh())
}

async fn session<W: Write>(
    config: &ClientConfig,
    conn: Connection,
    rooms: &mut Rooms,
    lines: &mut mpsc::Receiver<UserInput>,
    screen: &mut Screen<W>,
    state: &mut Session,
) -> Result<SessionEnd, ClientError> {
    let Connection {
        mut reader,
        mut writer,
        relay,
        welcome,
        ..
    } = conn;
    // Commits we build must fit this relay's frames (and ours).
    let relay_frame = usize::try_from(welcome.max_frame).unwrap_or(usize::MAX);
    let limit = relay_frame.min(config.max_frame);
    state.frame_limit = Some(limit);
    for shown in rooms.drop_closing() {
        screen.show(&shown)?;
    }
    if rooms.is_empty() {
        return Ok(SessionEnd::Done);
    }
    let mut join = Vec::new();
    for r in rooms.iter_mut() {
        join.extend(r.room.on_connected(limit));
    }
    // Unfinished transfers go on where the relay left them.
    join.extend(file_steps(state.files.on_connected(), rooms, screen)?);
    if let Err(e) = perform(join, &mut writer, screen, &mut state.files).await? {
        return Ok(SessionEnd::Reconnect(e));
    }
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        if state.done_quitting(rooms, screen)? {
            let mut last = Vec::new();
            for r in rooms.iter_mut() {
                last.extend(r.room.on_quit());
            }
            // The link is closing anyway: a failure to send changes nothing.
            let _ = perform(last, &mut writer, screen, &mut state.files).await?;
            let _ = writer.shutdown().await;
            return Ok(SessionEnd::Done);
        }
        let frame_at = screen.frame_due();
        let actions = tokio::select! {
            () = sleep_until_opt(frame_at) => {
                screen.frame(rooms, state)?;
                Vec::new()
            }
            msg = reader.recv() => match msg {
                Ok(m) => match on_relay(config, m, rooms, &mut writer, &relay, screen, state).await? {
                    Ok(actions) => actions,
                    Err(end) => return Ok(end),
                },
                Err(e) => return Ok(SessionEnd::Reconnect(e.to_string())),
            },
            input = lines.recv(), if state.input_open => handle_input(config, input, rooms, screen, state)?,
            _ = tick.tick() => {
                // Who is online changes without an event to show.
                if let Some(tui) = &mut screen.tui {
                    tui.touch();
                }
                rooms.tick(Instant::now(), &config.identity.fingerprint())
            }
        };
        if let Err(e) = perform(actions, &mut writer, screen, &mut state.files).await? {
            return Ok(SessionEnd::Reconnect(e));
        }
        screen.progress(state.files.summary());
    }
}

/// Shows what is to be shown and sends what is to be sent, in order;
/// file offers shown are remembered for `/files` (written once per call).
/// The outer error is fatal (output); the inner one means the link broke.
async fn perform<W: Write>(
    actions: Vec<Action>,
    writer: &mut LinkWriter,
    screen: &mut Screen<W>,
    files: &mut Transfers,
) -> Result<Result<(), String>, ClientError> {
    let mut outgoing = Vec::new();
    for a in actions {
        match a {
            Action::Show(ev) => {
                if let Shown::FileOffered {
                    room,
                    seq,
                    from,
                    nick,
                    offer,
                    received_at_ms,
                } = &ev
                {
                    files.remember_offer(
                        room,
                        &hush_room::OfferedFile {
                            seq: *seq,
                            from: *from,
                            nick: nick.clone(),
                            offer: offer.clone(),
                            received_at_ms: *received_at_ms,
                        },
                    );
                }
                screen.show(&ev)?;
            }
            Action::Publish { request, event } => {
                outgoing.push(ClientMsg::Publish { request, event })
            }
            Action::Send(msg) => outgoing.push(msg),
        }
    }
    for problem in files.flush_offers() {
        screen.error(problem)?;
    }
    if !outgoing.is_empty()
        && let Err(e) = writer.send_all(&outgoing).await
    {
        return Ok(Err(e.to_string()));
    }
    Ok(Ok(()))
}

/// One message from the relay: the link's own (pings, closing) here, a
/// room's through that room. `Left` closes a room's window; the last one
/// closed ends the session. The inner `Err` ends the session.
async fn on_relay<W: Write>(
    config: &ClientConfig,
    msg: RelayMsg,
    rooms: &mut Rooms,
    writer: &mut LinkWriter,
    relay: &hush_crypto::PublicIdentity,
    screen: &mut Screen<W>,
    state: &mut Session,
) -> Result<Result<Vec<Action>, SessionEnd>, ClientError> {
    if let Some(steps) = state.files.on_relay(&msg) {
        return Ok(Ok(file_steps(steps, rooms, screen)?));
    }
    let nick_in = |name: &RoomName| {
        rooms
            .get_ref(name)
            .map_or_else(|| config.nick.clone(), |r| r.room.nick().to_owned())
    };
    if let Some((send, events)) =
        state
            .codes
            .on_relay(&msg, relay.fingerprint(), &config.identity, nick_in)
    {
        let mut actions: Vec<Action> = send.into_iter().map(Action::Send).collect();
        for event in events {
            actions.extend(code_event(config, event, rooms, screen)?);
        }
        return Ok(Ok(actions));
    }
    Ok(match msg {
        RelayMsg::Ping { nonce } => match writer.send(&ClientMsg::Pong { nonce }).await {
            Ok(()) => Ok(Vec::new()),
            Err(e) => Err(SessionEnd::Reconnect(e.to_string())),
        },
        RelayMsg::Closing { reason } => Err(SessionEnd::Reconnect(
            crate::display::closing_text(reason).to_owned(),
        )),
        RelayMsg::Left { room } => {
            if let Some(w) = rooms.remove(&room) {
                screen.show(&w)?;
            }
            if rooms.is_empty() {
                Err(SessionEnd::Done)
            } else {
                Ok(Vec::new())
            }
        }
        RelayMsg::Pong { .. } | RelayMsg::Welcome(_) => Ok(Vec::new()),
        other => {
            let Some(name) = room_of(&other).cloned() else {
                return Ok(Ok(Vec::new()));
            };
            match rooms.get(&name) {
                Some(r) => Ok(r.room.on_relay(other, relay, Instant::now())),
                // A room we closed meanwhile: nothing to do.
                None => Ok(Vec::new()),
            }
        }
    })
}

/// Shows what an inviter's code did; a proven invitee is invited (in an
/// invite-only room) and marked verified.
fn code_event<W: Write>(
    config: &ClientConfig,
    event: crate::code::InviterEvent,
    rooms: &mut Rooms,
    screen: &mut Screen<W>,
) -> Result<Vec<Action>, ClientError> {
    use crate::code::InviterEvent;
    let mut mark = None;
    let (room, text, object, actions) = match event {
        InviterEvent::Issued {
            code,
            room,
            valid_for,
        } => {
            let minutes = valid_for.as_secs().div_ceil(60);
            let text = format!(
                "invitation code for #{room}: {code}  (valid {minutes} min, for one person and one try). Read it to them; they run: hush client --server {} --key THEIR-KEY.pem --code {code}",
                config.reachable_as.as_deref().unwrap_or(&config.server)
            );
            let object = serde_json::json!({
                "type": "code_issued",
                "room": room.as_str(),
                "code": code.to_string(),
                "valid_for_s": valid_for.as_secs(),
            });
            (Some(room), text, object, Vec::new())
        }
        InviterEvent::Proven {
            code,
            room,
            invitee,
        } => {
            let fp = invitee.key.fingerprint();
            let nick = code_name(&invitee.nick, &fp);
            let mut actions = Vec::new();
            let mut invited = false;
            let open_here = rooms.get(&room).is_some();
            if let Some(r) = rooms.get(&room) {
                let invite_only = r.room.settings().is_some_and(|s| s.invite_only);
                if invite_only {
                    match r.room.invite(&fp.to_string()) {
                        Ok(a) => {
                            actions = a;
                            invited = true;
                        }
                        Err(refusal) => screen.error(refusal_text(&room, &refusal))?,
                    }
                }
            }
            let text = format!(
                "code {code} used by {nick} ({fp}): the code proved their key{}",
                if invited {
                    format!("; invited them to #{room}")
                } else if open_here {
                    format!("; #{room} admits them when they ask")
                } else {
                    format!(
                        "; but #{room} is not open here, so nobody invited them: /join {room}, then /invite {fp}"
                    )
                }
            );
            mark = Some((fp, nick.clone()));
            let object = serde_json::json!({
                "type": "code_used",
                "room": room.as_str(),
                "code": code.to_string(),
                "fingerprint": fp.to_string(),
                "nick": invitee.nick,
                "invited": invited,
            });
            (Some(room), text, object, actions)
        }
        InviterEvent::Failed { room, text } => {
            let object = serde_json::json!({
                "type": "code_failed",
                "room": room.as_ref().map(RoomName::as_str),
                "reason": text,
            });
            (room, text, object, Vec::new())
        }
    };
    screen.show_as(
        &Shown::Notice {
            room: room.clone(),
            notice: Notice::Text(text),
        },
        Some(object.to_string()),
    )?;
    if let Some((fp, nick)) = mark {
        mark_by_code(screen, room.as_ref(), fp, &nick)?;
    }
    Ok(actions)
}

/// The name a code's other side gave, as a name may be (else their short
/// id): chosen by them, so only shown and recorded, never trusted.
fn code_name(given: &str, fp: &Fingerprint) -> String {
    match hush_room::check_nick(given) {
        Ok(nick) => crate::display::sanitize(&nick),
        Err(_) => fp.short_id(),
    }
}

/// Marks the key a code proved as verified under the name its holder
/// gave, unless that name is a verified contact's with another key: a
/// code proves a key, not a name, so it must not make someone pass for a
/// person already verified.
fn mark_by_code<W: Write>(
    screen: &mut Screen<W>,
    room: Option<&RoomName>,
    fp: Fingerprint,
    nick: &str,
) -> Result<(), ClientError> {
    if let Some(v) = screen.contacts.impostor(nick, &fp) {
        let text = format!(
            "{nick} ({fp}) proved the code, but {nick} is the name of {} ({}), whom you verified with another key: this key was NOT marked verified. If it is a new key of the same person, compare safety numbers and /verify it; if not, they are using someone else's name",
            crate::display::sanitize(&v.nick),
            v.fingerprint
        );
        screen.error(text)?;
        return Ok(());
    }
    screen.mark_verified(room, fp, nick, crate::contacts::VerifiedBy::Code)?;
    Ok(())
}

/// Sleeps until `at`, or for ever when there is no `at`.
async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

/// One thing the user did: a line, or a terminal event the TUI turns into
/// requests (send a line, switch rooms, quit).
fn handle_input<W: Write>(
    config: &ClientConfig,
    input: Option<UserInput>,
    rooms: &mut Rooms,
    screen: &mut Screen<W>,
    state: &mut Session,
) -> Result<Vec<Action>, ClientError> {
    let ev = match input {
        None => return handle_line(config, None, rooms, screen, state),
        Some(UserInput::Line(line)) => {
            return handle_line(config, Some(line), rooms, screen, state);
        }
        Some(UserInput::Interrupt) => {
            state.quit();
            let unsent = rooms.unsent();
            if unsent > 0 {
                screen.notice(None, format!(
                    "Ctrl-C: exiting once {unsent} unsent line(s) reach the relay (up to {} s); Ctrl-C again exits now and loses them",
                    DRAIN_LIMIT.as_secs()
                ))?;
                state.said_draining = true;
            }
            return Ok(Vec::new());
        }
        Some(UserInput::Term(ev)) => ev,
    };
    let Some(tui) = &mut screen.tui else {
        return Ok(Vec::new());
    };
    let mut actions = Vec::new();
    for request in tui.on_event(ev) {
        match request {
            Request::Submit(text) => {
                actions.extend(handle_line(config, Some(text), rooms, screen, state)?);
            }
            Request::Switch(name) => {
                rooms.switch_to(&name);
            }
            Request::Quit => {
                state.quit();
                let unsent = rooms.unsent();
                if unsent > 0
                    && let Some(tui) = &mut screen.tui
                {
                    tui.note(format!(
                        "quitting once {unsent} unsent line(s) reach the relay (up to {} s); Ctrl-C again quits now and loses them",
                        DRAIN_LIMIT.as_secs()
                    ));
                }
            }
            Request::QuitNow => state.quit_now(),
        }
    }
    Ok(actions)
}

fn handle_line<W: Write>(
    config: &ClientConfig,
    line: Option<String>,
    rooms: &mut Rooms,
    screen: &mut Screen<W>,
    state: &mut Session,
) -> Result<Vec<Action>, ClientError> {
    let Some(line) = line else {
        // End of input: finish sending, then exit.
        state.quit();
        return Ok(Vec::new());
    };
    let input = match parse_line(&line) {
        Ok(Some(i)) => i,
        Ok(None) => return Ok(Vec::new()),
        Err(e) => {
            screen.error(e.to_string())?;
            return Ok(Vec::new());
        }
    };
    // Commands on the set of rooms first; then those on the current room.
    match input {
        Input::Command(Command::Join(name)) => {
            return join_room(config, &name, rooms, screen, state);
        }
        Input::Command(Command::Dm(who)) => return open_dm(config, &who, rooms, screen, state),
        Input::Command(Command::Part) => return close_room(Closing::Part, rooms, screen, state),
        Input::Command(Command::Leave) => return close_room(Closing::Leave, rooms, screen, state),
        Input::Command(Command::Quit) => {
            state.quit();
            return Ok(Vec::new());
        }
        Input::Command(Command::Help) => {
            for line in HELP.lines() {
                screen.notice(None, line.to_owned())?;
            }
            return Ok(Vec::new());
        }
        _ => {}
    }
    let Some(open) = rooms.current() else {
        return Ok(Vec::new());
    };
    let room = &mut open.room;
    let name = room.name().clone();
    Ok(match input {
        Input::Text(text) => {
            screen.own_line(&name, &text, false);
            offline_wording(room.send_text(text, now_ms()), state)
        }
        Input::Command(Command::Nick(nick)) => room.set_nick(nick, now_ms()),
        Input::Command(Command::Me(action)) => {
            screen.own_line(&name, &action, true);
            offline_wording(room.send_action(action, now_ms()), state)
        }
        Input::Command(Command::Members) => {
            let members = room.members();
            // Who is online is known only once caught up (usability B10).
            let known = room.is_caught_up() && state.frame_limit.is_some();
            let mut text = if known {
                format!("members of #{name} (epoch {}):", room.epoch())
            } else {
                format!(
                    "members of #{name} (epoch {}; not caught up with the relay yet, so who is online is not known):",
                    room.epoch()
                )
            };
            let me = config.identity.fingerprint();
            let mut list = Vec::new();
            for (fp, nick, online) in members {
                let offline = known && !online && fp != me;
                let verified = screen.contacts.is_verified(&fp);
                let mark = if fp == me {
                    " [you]"
                } else if offline {
                    " [offline]"
                } else {
                    ""
                };
                let check = if verified { VERIFIED_MARK } else { "" };
                text.push_str(&format!(" {nick} ({}){check}{mark}", fp.short_id()));
                list.push(serde_json::json!({
                    "fingerprint": fp.to_string(),
                    "nick": nick,
                    "me": fp == me,
                    "online": if fp == me { Some(true) } else { known.then_some(online) },
                    "verified": verified,
                }));
            }
            // Bots get the list as data (usability F18).
            let object = serde_json::json!({
                "type": "members",
                "room": name.as_str(),
                "epoch": room.epoch(),
                "members": list,
            });
            screen.show_as(
                &Shown::Notice {
                    room: Some(name.clone()),
                    notice: Notice::Text(text),
                },
                Some(object.to_string()),
            )?;
            Vec::new()
        }
        Input::Command(Command::Whois(q)) => {
            let found: Vec<(Fingerprint, String)> = room.whois(&q);
            if found.is_empty() {
                screen.error(format!(
                    "nobody in #{name} is called {q}; /members lists who is"
                ))?;
            }
            for (fp, nick) in found {
                let mark = verified_words(&screen.contacts, &fp, &nick);
                screen.notice(Some(&name), format!("{nick}: {fp}{mark}"))?;
            }
            Vec::new()
        }
        Input::Command(Command::Verify(None)) => {
            match room.room_fingerprint() {
                Some(digits) => screen.notice(Some(&name), format!(
                    "room fingerprint of #{name} at epoch {}: {digits} (members who see the same digits share this room's members and membership history)",
                    room.epoch()
                ))?,
                None => screen.error(format!("#{name} has no members yet; try again once you are admitted"))?,
            }
            Vec::new()
        }
        Input::Command(Command::Verify(Some(q))) => {
            let found = room.whois(&q);
            if found.is_empty() {
                screen.error(format!(
                    "nobody in #{name} is called {q}; /members lists who is"
                ))?;
            }
            let me = config.identity.fingerprint();
            for (fp, nick) in found {
                let then = if fp == me {
                    String::new()
                } else if let Some(v) = screen.contacts.get(&fp) {
                    format!(
                        "; you marked this key verified {} (as {})",
                        v.by.words(),
                        v.nick
                    )
                } else {
                    format!(
                        "; once you have compared it, /verify {} --mark remembers this key as theirs",
                        fp.short_id()
                    )
                };
                state.compared.insert(fp);
                screen.notice(Some(&name), format!(
                    "safety number with {nick} ({fp}): {} (read it to each other out of band: the same digits mean neither key was swapped){then}",
                    room.safety_number(&fp)
                ))?;
            }
            Vec::new()
        }
        Input::Command(Command::Code) => {
            let me = config.identity.fingerprint();
            let refusal = match room.settings() {
                _ if state.frame_limit.is_none() => Some(
                    "not connected to the relay: /code needs the relay to hold the code's mailbox; try again once connected".to_owned(),
                ),
                None => Some(format!(
                    "#{name} has no members yet: make a code once you are in it"
                )),
                Some(_) if !room.is_member() => Some(format!(
                    "you are not a member of #{name} yet: make a code once you are admitted"
                )),
                Some(s) if s.invite_only && s.creator != me => Some(format!(
                    "only the creator of #{name} can make codes for it, as only they can invite ({})",
                    s.creator
                )),
                Some(_) => None,
            };
            match refusal {
                Some(text) => {
                    screen.error(text)?;
                    Vec::new()
                }
                None => vec![Action::Send(state.codes.request(name))],
            }
        }
        Input::Command(Command::Mark(q)) => {
            let me = config.identity.fingerprint();
            let found = room.whois(&q);
            match found.as_slice() {
                [] => screen.error(format!(
                    "/verify {q} --mark: nobody in #{name} is called {q}; /members lists who is (give a name, short id or fingerprint)"
                ))?,
                [(fp, _)] if *fp == me => screen.error(format!(
                    "/verify {q} --mark: that is you; mark the other person's key"
                ))?,
                [(fp, nick)] if !state.compared.contains(fp) => screen.error(format!(
                    "/verify {q} --mark: first show your safety number with {nick} ({}) with /verify {}, and compare it with them out of band (in person, on a call); then mark it",
                    fp.short_id(),
                    fp.short_id()
                ))?,
                [(fp, nick)] => screen.mark_verified(Some(&name), *fp, nick, VerifiedBy::Manual)?,
                many => {
                    let keys: Vec<String> = many
                        .iter()
                        .map(|(fp, nick)| format!("{nick} ({})", fp.short_id()))
                        .collect();
                    screen.error(format!(
                        "/verify {q} --mark: {q} names {} keys in #{name}: {}; give the short id or fingerprint of the one whose safety number you compared (/verify SHORTID --mark)",
                        many.len(),
                        keys.join(", ")
                    ))?;
                }
            }
            Vec::new()
        }
        Input::Command(Command::Unmark(q)) => {
            // The keys the name names in the room that are marked, and
            // the marks it names (a verified person need not be here).
            let mut keys: Vec<Fingerprint> = room
                .whois(&q)
                .into_iter()
                .map(|(fp, _)| fp)
                .filter(|fp| screen.contacts.is_verified(fp))
                .collect();
            keys.extend(screen.contacts.find(&q).iter().map(|v| v.fingerprint));
            keys.sort();
            keys.dedup();
            match keys.as_slice() {
                [] => screen.error(format!(
                    "/verify {q} --unmark: no key called {q} is marked verified"
                ))?,
                [fp] => screen.unmark_verified(Some(&name), *fp)?,
                many => {
                    let list: Vec<String> = many
                        .iter()
                        .filter_map(|fp| screen.contacts.get(fp))
                        .map(|v| format!("{} ({})", v.nick, v.fingerprint.short_id()))
                        .collect();
                    screen.error(format!(
                        "/verify {q} --unmark: {q} names {} verified keys: {}; give the short id or fingerprint of the one to unmark",
                        many.len(),
                        list.join(", ")
                    ))?;
                }
            }
            Vec::new()
        }
        Input::Command(Command::Invite(who)) => match room.invite(&who) {
            Ok(actions) => actions,
            Err(refusal) => {
                screen.error(refusal_text(&name, &refusal))?;
                Vec::new()
            }
        },
        Input::Command(Command::Send(path)) => {
            let steps = match state.files.send(&name, &path) {
                Ok(steps) => steps,
                Err(why) => {
                    screen.error(why)?;
                    return Ok(Vec::new());
                }
            };
            return file_steps(steps, rooms, screen);
        }
        Input::Command(Command::Files) => {
            list_files(room, &mut state.files, screen)?;
            Vec::new()
        }
        Input::Command(Command::Save(id, to)) => {
            let found = room
                .offered_file(&id)
                .cloned()
                .or_else(|| state.files.find_offer(&name, &id));
            let Some(offered) = found else {
                screen.error(format!(
                    "/save {id}: no file of #{name} has that id; /files lists them"
                ))?;
                return Ok(Vec::new());
            };
            let steps = match state.files.save(&name, &offered, to.as_deref()) {
                Ok(steps) => steps,
                Err(why) => {
                    screen.error(why)?;
                    return Ok(Vec::new());
                }
            };
            return file_steps(steps, rooms, screen);
        }
        Input::Command(Command::Kick(who)) => match room.kick(&who) {
            Ok(actions) => actions,
            Err(refusal) => {
                screen.error(refusal_text(&name, &refusal))?;
                Vec::new()
            }
        },
        Input::Command(
            Command::Join(_)
            | Command::Dm(_)
            | Command::Part
            | Command::Leave
            | Command::Quit
            | Command::Help,
        ) => Vec::new(),
    })
}

/// What `/whois` and `/verify` add for a verified key: the mark, and the
/// name it was verified under if that is not the name it uses now.
fn verified_words(contacts: &Contacts, fp: &Fingerprint, nick: &str) -> String {
    match contacts.get(fp) {
        None => String::new(),
        Some(v) if hush_room::skeleton(&v.nick) == hush_room::skeleton(nick) => {
            format!("{VERIFIED_MARK} ({})", v.by.words())
        }
        Some(v) => format!("{VERIFIED_MARK} (as {}, {})", v.nick, v.by.words()),
    }
}

/// What the transfers ask for, as actions (sends, and the offer sealed
/// by its room) and as what the user reads.
fn file_steps<W: Write>(
    steps: Vec<Step>,
    rooms: &mut Rooms,
    screen: &mut Screen<W>,
) -> Result<Vec<Action>, ClientError> {
    let mut actions = Vec::new();
    for step in steps {
        match step {
            Step::Send(msg) => actions.push(Action::Send(msg)),
            Step::Offer(room, offer) => match rooms.get(&room) {
                Some(open) => actions.extend(open.room.send_file(offer, now_ms())),
                None => screen.error(format!(
                    "#{room} was closed before its file could be offered; /join it and send the file again"
                ))?,
            },
            Step::Notice(room, text) => screen.notice(Some(&room), text)?,
            Step::Event(value) => screen.event(&value)?,
            Step::Failed(text) => screen.error(text)?,
            Step::Bad {
                room,
                from,
                nick,
                what,
            } => screen.show(&Shown::Warning {
                room: Some(room),
                seq: None,
                from: Some(hush_room::Peer {
                    fingerprint: from,
                    nick,
                }),
                warning: Warning::BadFile(what),
            })?,
        }
    }
    Ok(actions)
}

/// `/files`: the offers of the room, this run's and earlier runs', oldest
/// first: short id, name, size, sender, when and how long ago, and what
/// became of it (`offered`, `saving 30%`, `saved to PATH`, `failed: WHY`).
fn list_files<W: Write>(
    room: &Room,
    files: &mut Transfers,
    screen: &mut Screen<W>,
) -> Result<(), ClientError> {
    let name = room.name().clone();
    // The room's own list is remembered as it is shown; this catches any
    // offer shown before the list could be written.
    for f in room.offered_files() {
        files.remember_offer(&name, f);
    }
    let known = files.offers_of(&name);
    let now = now_ms();
    for k in &known {
        let state = files.state_of(&name, &k.offer.id);
        screen.notice(
            Some(&name),
            format!(
                "{} {} ({}) from {} ({}), {}, {}: {state}",
                crate::display::file_short_id(&k.offer.id),
                crate::display::sanitize(&k.offer.name),
                crate::display::human_size(k.offer.size),
                crate::display::sanitize(&k.nick),
                hush_crypto::Fingerprint::from_bytes(k.from).short_id(),
                screen.time.hhmm(k.received_at_ms),
                crate::offers::age(now, k.received_at_ms),
            ),
        )?;
    }
    if known.is_empty() {
        screen.notice(
            Some(&name),
            format!("no files were offered in #{name} that this client saw"),
        )?;
    }
    for problem in files.flush_offers() {
        screen.error(problem)?;
    }
    Ok(())
}

/// Saves the list of rooms to reopen; a failure is shown, not fatal.
fn save_list<W: Write>(rooms: &Rooms, screen: &mut Screen<W>) -> std::io::Result<()> {
    match rooms.save_list() {
        Ok(()) => Ok(()),
        Err(e) => screen.error(format!("cannot save the list of open rooms: {e}")),
    }
}

/// What a line waits for, said right while offline: the room cannot know
/// the relay is away, so its "catching up" or "not admitted yet" becomes
/// "not connected" (usability B14).
fn offline_wording(mut actions: Vec<Action>, state: &Session) -> Vec<Action> {
    if state.frame_limit.is_some() {
        return actions;
    }
    for a in &mut actions {
        if let Action::Show(Shown::Notice { notice, .. }) = a
            && matches!(notice, Notice::CatchingUp | Notice::NotAdmittedYet)
        {
            *notice = Notice::Text(
                "not connected to the relay: your message is kept and sent once it answers".into(),
            );
        }
    }
    actions
}

/// `/join ROOM`: switches to an open room, or opens one (and, while
/// connected, joins it at once).
fn join_room<W: Write>(
    config: &ClientConfig,
    name: &RoomName,
    rooms: &mut Rooms,
    screen: &mut Screen<W>,
    state: &mut Session,
) -> Result<Vec<Action>, ClientError> {
    if rooms.switch_to(name) {
        screen.notice(Some(name), format!("now talking in #{name}"))?;
        return Ok(Vec::new());
    }
    if rooms.get(name).is_some() {
        screen.error(format!(
            "#{name} is still closing; /join it again once it has closed"
        ))?;
        return Ok(Vec::new());
    }
    let open = open_room(config, name, false, None, screen)?;
    add_room(
        open,
        rooms,
        screen,
        state,
        format!("opened #{name}; what you type now goes there"),
    )
}

/// Adds an opened room, joins it if connected, and makes it current.
fn add_room<W: Write>(
    mut open: OpenRoom,
    rooms: &mut Rooms,
    screen: &mut Screen<W>,
    state: &mut Session,
    said: String,
) -> Result<Vec<Action>, ClientError> {
    let name = open.room.name().clone();
    let actions = state
        .frame_limit
        .map(|limit| open.room.on_connected(limit))
        .unwrap_or_default();
    rooms.insert(open);
    screen.prefix_rooms = true;
    screen.notice(Some(&name), said)?;
    save_list(rooms, screen)?;
    Ok(actions)
}

/// `/dm WHO`: the two-person invite-only room of us and WHO (a
/// fingerprint, or a short id known in the current room), opened or
/// switched to. Whoever opens it first creates it and invites the other.
fn open_dm<W: Write>(
    config: &ClientConfig,
    who: &str,
    rooms: &mut Rooms,
    screen: &mut Screen<W>,
    state: &mut Session,
) -> Result<Vec<Action>, ClientError> {
    let here = rooms.current().map(|r| r.room.name().clone());
    let peer = match rooms.current().map(|r| r.room.resolve(who)) {
        Some(Ok(fp)) => fp,
        Some(Err(refusal)) => {
            if let Some(room) = &here {
                screen.error(refusal_text(room, &refusal))?;
            }
            return Ok(Vec::new());
        }
        None => match who.parse() {
            Ok(fp) => fp,
            Err(_) => {
                screen.error(format!("/dm {who}: give a full SHA256:... fingerprint"))?;
                return Ok(Vec::new());
            }
        },
    };
    let me = config.identity.fingerprint();
    if peer == me {
        screen.error("/dm: that is you; give the other person's fingerprint".into())?;
        return Ok(Vec::new());
    }
    let name = dm_room_name(&me, &peer);
    if rooms.switch_to(&name) {
        screen.notice(Some(&name), format!("now talking in #{name} (with {peer})"))?;
        return Ok(Vec::new());
    }
    let mut open = open_room(
        config,
        &name,
        false,
        Some((true, hush_proto::e2e::HistoryVisibility::Joined)),
        screen,
    )?;
    open.dm = Some(Dm { peer, done: false });
    add_room(
        open,
        rooms,
        screen,
        state,
        format!(
            "opened #{name}, the room only you and {peer} can be in; they open it with /dm {me}"
        ),
    )
}

/// `/part` or `/leave` of the current room. The last room closed ends the
/// client, once what was typed has been sent.
fn close_room<W: Write>(
    why: Closing,
    rooms: &mut Rooms,
    screen: &mut Screen<W>,
    state: &mut Session,
) -> Result<Vec<Action>, ClientError> {
    let Some(open) = rooms.current() else {
        return Ok(Vec::new());
    };
    let name = open.room.name().clone();
    let actions = match why {
        Closing::Leave => open.room.leave(),
        Closing::Part => Vec::new(),
    };
    let next = rooms.close_current(why);
    // The chat screen closes the window first, so what is said about it
    // is read in the room the user lands in.
    screen.room_closed(&name, next.as_ref());
    match why {
        Closing::Leave => screen.notice(Some(&name), format!("leaving #{name}"))?,
        Closing::Part => screen.notice(
            Some(&name),
            format!(
                "closing #{name}; you stay a member (/join {name} or --room {name} opens it again)"
            ),
        )?,
    }
    match next {
        Some(next) => screen.notice(Some(&next), format!("now talking in #{next}"))?,
        None => state.quit(),
    }
    save_list(rooms, screen)?;
    Ok(actions)
}

/// The OS random generator, as the room crate is given it (it has none of
/// its own): session salts and epoch keys come from here.
#[must_use]
pub fn os_entropy() -> Entropy {
    Entropy::from_fn(hush_crypto::random_bytes)
}

/// Milliseconds since the UNIX epoch by this machine's clock: the time the
/// room crate is given (it has no clock of its own).
#[must_use]
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
