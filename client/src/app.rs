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
use crate::display::{refusal_text, render_json, render_line};
use crate::link::{Connection, LinkError, LinkWriter};
use crate::pins::{KnownRelays, PinCheck, PinError};
use crate::state::{StateError, StateStore};
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
    /// `host:port` of the relay.
    pub server: String,
    /// Our identity.
    pub identity: Arc<Identity>,
    /// The room to join.
    pub room: RoomName,
    /// Our display name.
    pub nick: String,
    /// One JSON object per event instead of lines.
    pub json: bool,
    /// Append the plaintext transcript here (opt-in).
    pub transcript: Option<PathBuf>,
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
    /// Read the room's retained history again from its start (with the
    /// saved keys standing in for pruned commits) instead of resuming.
    pub replay_history: bool,
    /// Start the room over: set the saved state aside before starting, and
    /// read what the relay has now (after a `rollback` warning).
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
    /// Writing output failed.
    #[error("cannot write output: {0}")]
    Output(#[from] std::io::Error),
}

/// The screen, and the transcript file if any.
struct Screen<W: Write> {
    json: bool,
    out: W,
    transcript: Option<std::fs::File>,
}

impl<W: Write> Screen<W> {
    fn show(&mut self, ev: &Shown) -> std::io::Result<()> {
        let line = render_line(ev);
        // The transcript first: whatever the screen shows is already in it.
        if let Some(t) = &mut self.transcript {
            writeln!(t, "{line}")?;
        }
        let shown = if self.json { render_json(ev) } else { line };
        writeln!(self.out, "{shown}")?;
        self.out.flush()
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

/// Runs the client until `/quit`, `/leave`, the end of `input`, or a fatal
/// error.
///
/// # Errors
/// [`ClientError`] for a relay that cannot be used or a pin mismatch.
pub async fn run<R, W>(config: ClientConfig, input: R, out: W) -> Result<(), ClientError>
where
    R: AsyncBufRead + Unpin + Send + 'static,
    W: Write,
{
    let transcript = match &config.transcript {
        Some(p) => Some(open_transcript(p).map_err(|e| {
            ClientError::Relay(format!(
                "cannot open the transcript file {}: {e}",
                p.display()
            ))
        })?),
        None => None,
    };
    let mut screen = Screen {
        json: config.json,
        out,
        transcript,
    };
    let (line_tx, mut lines) = mpsc::channel::<String>(64);
    tokio::spawn(async move {
        let mut reader = input.lines();
        while let Ok(Some(line)) = reader.next_line().await {
            if line_tx.send(line).await.is_err() {
                break;
            }
        }
    });

    let store = config.state_dir.as_ref().map(|dir| {
        StateStore::new(
            dir,
            &config.server,
            config.room.as_str(),
            config.identity.clone(),
        )
    });
    let mut room = restore_room(&config, store.as_ref(), &mut screen)?;
    let mut state = Session {
        quitting: None,
        input_open: true,
    };
    let mut ever_connected = false;
    let mut said_waiting = false;
    let mut backoff = BACKOFF_START;
    // The relay's latest session ticket (kept in memory only): a
    // reconnect, e.g. after a relay restart, resumes without RSA.
    let mut ticket = None;

    loop {
        let pins = config.known_relays.clone();
        let server = config.server.clone();
        let pinned = std::sync::Mutex::new(None);
        let attempt = Connection::connect_resuming(
            &config.server,
            config.identity.clone(),
            config.max_frame,
            ticket.clone(),
            |relay| match pins.check(&server, relay.fingerprint()) {
                Ok(check) => {
                    if let Ok(mut p) = pinned.lock() {
                        *p = Some((check, relay.fingerprint()));
                    }
                    Ok(())
                }
                Err(e) => Err(e.to_string()),
            },
        )
        .await;
        let mut conn = match attempt {
            Ok(c) => c,
            Err(e) => match classify(e, ever_connected) {
                ConnectFailure::Fatal(err) => return Err(err),
                ConnectFailure::Retry(why) => {
                    if !said_waiting {
                        said_waiting = true;
                        screen.notice(None, format!(
                            "cannot reach the relay at {} ({why}); retrying until it answers (Ctrl-C to stop)",
                            config.server
                        ))?;
                    }
                    if wait_offline(&mut room, &mut lines, &mut screen, &mut state, backoff).await?
                    {
                        return Ok(());
                    }
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                    continue;
                }
            },
        };
        backoff = BACKOFF_START;
        said_waiting = false;
        ticket = conn.ticket.take().or(ticket);
        if let Ok(Some((check, fp))) = pinned.into_inner()
            && check == PinCheck::Pinned
        {
            screen.notice(None, format!(
                "first contact with {}: pinned its key {fp} in {} (compare it with the relay operator's)",
                config.server,
                config.known_relays.path().display()
            ))?;
        }
        screen.notice(None, format!("connected to {}", config.server))?;
        ever_connected = true;
        let end = session(
            conn,
            &mut room,
            &mut lines,
            &mut screen,
            &mut state,
            store.as_ref(),
            config.max_frame,
        )
        .await?;
        save_state(&mut room, store.as_ref(), &mut screen)?;
        match end {
            SessionEnd::Done => return Ok(()),
            SessionEnd::Reconnect(why) => {
                screen.notice(
                    None,
                    format!("connection to the relay lost ({why}); reconnecting"),
                )?;
                tokio::time::sleep(BACKOFF_START).await;
            }
        }
    }
}

struct Session {
    /// Set by /quit, /leave or end of input: exit once our events are
    /// confirmed, or at this deadline.
    quitting: Option<Instant>,
    input_open: bool,
}

enum SessionEnd {
    Done,
    Reconnect(String),
}

/// While the relay is unreachable: keep taking input for `delay`.
/// Returns true if the user quit.
async fn wait_offline<W: Write>(
    room: &mut Room,
    lines: &mut mpsc::Receiver<String>,
    screen: &mut Screen<W>,
    state: &mut Session,
    delay: Duration,
) -> Result<bool, ClientError> {
    let until = tokio::time::Instant::now() + delay;
    loop {
        if state
            .quitting
            .is_some_and(|d| room.is_settled() || Instant::now() >= d)
        {
            return Ok(true);
        }
        tokio::select! {
            () = tokio::time::sleep_until(until) => return Ok(false),
            line = lines.recv(), if state.input_open => {
                // Offline: Publish actions are kept as unconfirmed and sent
                // after the reconnect.
                let actions = handle_line(line, room, screen, state)?;
                for a in actions {
                    if let Action::Show(ev) = a {
                        screen.show(&ev)?;
                    }
                }
            }
        }
    }
}

/// The room as saved by an earlier run, or a fresh one.
fn restore_room<W: Write>(
    config: &ClientConfig,
    store: Option<&StateStore>,
    screen: &mut Screen<W>,
) -> Result<Room, ClientError> {
    let fresh = || {
        Room::new(
            config.room.clone(),
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
    if config.reset_room {
        match store.set_aside() {
            Ok(aside) => screen.notice(
                Some(&config.room),
                format!(
                    "starting #{} over from what the relay has now: the saved state was moved to {}",
                    config.room,
                    aside.display()
                ),
            )?,
            Err(StateError::Io { error, .. }) if error.kind() == std::io::ErrorKind::NotFound => {
                screen.notice(
                    Some(&config.room),
                    format!("starting #{} over: there was no saved state", config.room),
                )?;
            }
            Err(e) => {
                return Err(ClientError::Relay(format!(
                    "--reset-room: could not set the saved state of #{} aside: {e}",
                    config.room
                )));
            }
        }
        return Ok(fresh());
    }
    let problem = match store.load() {
        Ok(None) => return Ok(fresh()),
        Ok(Some(snap)) if config.replay_history => {
            match Room::restore_for_replay(
                config.room.clone(),
                config.identity.clone(),
                &snap,
                os_entropy(),
            ) {
                Ok(room) => {
                    screen.notice(
                        Some(&config.room),
                        format!(
                            "reading the history of #{} again, with the keys saved earlier",
                            config.room
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
                config.room.clone(),
                config.identity.clone(),
                &snap,
                os_entropy(),
                Instant::now(),
            ) {
                Ok(room) => {
                    screen.notice(
                        Some(&config.room),
                        format!(
                            "resuming #{} after seq {} from saved state",
                            config.room,
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
        room: Some(config.room.clone()),
        seq: None,
        from: None,
        warning: Warning::StateUnreadable { problem, moved_to },
    })?;
    Ok(fresh())
}

/// Saves the room state if it changed; a failure is shown, not fatal.
fn save_state<W: Write>(
    room: &mut Room,
    store: Option<&StateStore>,
    screen: &mut Screen<W>,
) -> Result<(), ClientError> {
    let Some(store) = store else {
        return Ok(());
    };
    if !room.take_dirty() {
        return Ok(());
    }
    if let Err(e) = store.save(&room.snapshot()) {
        screen.show(&Shown::Warning {
            room: Some(room.name().clone()),
            seq: None,
            from: None,
            warning: Warning::StateNotSaved {
                error: e.to_string(),
            },
        })?;
    }
    Ok(())
}

async fn session<W: Write>(
    conn: Connection,
    room: &mut Room,
    lines: &mut mpsc::Receiver<String>,
    screen: &mut Screen<W>,
    state: &mut Session,
    store: Option<&StateStore>,
    max_frame: usize,
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
    let join = room.on_connected(relay_frame.min(max_frame));
    if let Err(e) = perform(join, &mut writer, screen).await? {
        return Ok(SessionEnd::Reconnect(e));
    }
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        if state
            .quitting
            .is_some_and(|d| room.is_settled() || Instant::now() >= d)
        {
            // The link is closing anyway: a failure to send changes nothing.
            let _ = perform(room.on_quit(), &mut writer, screen).await?;
            let _ = writer.shutdown().await;
            return Ok(SessionEnd::Done);
        }
        let actions = tokio::select! {
            msg = reader.recv() => match msg {
                Ok(m) => match on_relay(m, room, &mut writer, &relay).await {
                    Ok(actions) => actions,
                    Err(end) => return Ok(end),
                },
                Err(e) => return Ok(SessionEnd::Reconnect(e.to_string())),
            },
            line = lines.recv(), if state.input_open => handle_line(line, room, screen, state)?,
            _ = tick.tick() => {
                save_state(room, store, screen)?;
                room.tick(Instant::now())
            }
        };
        if let Err(e) = perform(actions, &mut writer, screen).await? {
            return Ok(SessionEnd::Reconnect(e));
        }
    }
}

/// Shows what is to be shown and sends what is to be sent, in order. The
/// outer error is fatal (output); the inner one means the link broke.
async fn perform<W: Write>(
    actions: Vec<Action>,
    writer: &mut LinkWriter,
    screen: &mut Screen<W>,
) -> Result<Result<(), String>, ClientError> {
    let mut outgoing = Vec::new();
    for a in actions {
        match a {
            Action::Show(ev) => screen.show(&ev)?,
            Action::Publish { request, event } => {
                outgoing.push(ClientMsg::Publish { request, event })
            }
            Action::Send(msg) => outgoing.push(msg),
        }
    }
    if !outgoing.is_empty()
        && let Err(e) = writer.send_all(&outgoing).await
    {
        return Ok(Err(e.to_string()));
    }
    Ok(Ok(()))
}

/// One message from the relay: the link's own (pings, closing, leaving)
/// here, everything else through the room. `Err` ends the session.
async fn on_relay(
    msg: RelayMsg,
    room: &mut Room,
    writer: &mut LinkWriter,
    relay: &hush_crypto::PublicIdentity,
) -> Result<Vec<Action>, SessionEnd> {
    match msg {
        RelayMsg::Ping { nonce } => match writer.send(&ClientMsg::Pong { nonce }).await {
            Ok(()) => Ok(Vec::new()),
            Err(e) => Err(SessionEnd::Reconnect(e.to_string())),
        },
        RelayMsg::Closing { reason } => Err(SessionEnd::Reconnect(format!(
            "the relay closed it: {reason:?}"
        ))),
        RelayMsg::Left { .. } => Err(SessionEnd::Done),
        RelayMsg::Pong { .. } | RelayMsg::Welcome(_) => Ok(Vec::new()),
        other => Ok(room.on_relay(other, relay, Instant::now())),
    }
}

fn handle_line<W: Write>(
    line: Option<String>,
    room: &mut Room,
    screen: &mut Screen<W>,
    state: &mut Session,
) -> Result<Vec<Action>, ClientError> {
    let Some(line) = line else {
        // End of input: finish sending, then exit.
        state.input_open = false;
        state.quitting.get_or_insert(Instant::now() + DRAIN_LIMIT);
        return Ok(Vec::new());
    };
    let input = match parse_line(&line) {
        Ok(Some(i)) => i,
        Ok(None) => return Ok(Vec::new()),
        Err(e) => {
            screen.show(&Shown::Error {
                text: e.to_string(),
            })?;
            return Ok(Vec::new());
        }
    };
    let name = room.name().clone();
    Ok(match input {
        Input::Text(text) => room.send_text(text, now_ms()),
        Input::Command(Command::Nick(nick)) => room.set_nick(nick, now_ms()),
        Input::Command(Command::Members) => {
            let members = room.members();
            let mut text = format!("members of #{name} (epoch {}):", room.epoch());
            for (fp, nick, online) in members {
                text.push_str(&format!(
                    " {nick} ({}){}",
                    fp.short_id(),
                    if online { "" } else { " [offline]" }
                ));
            }
            screen.notice(Some(&name), text)?;
            Vec::new()
        }
        Input::Command(Command::Whois(q)) => {
            let found: Vec<(Fingerprint, String)> = room.whois(&q);
            if found.is_empty() {
                screen.show(&Shown::Error {
                    text: format!("nobody in #{name} is called {q}; /members lists who is"),
                })?;
            }
            for (fp, nick) in found {
                screen.notice(Some(&name), format!("{nick}: {fp}"))?;
            }
            Vec::new()
        }
        Input::Command(Command::Verify(None)) => {
            match room.room_fingerprint() {
                Some(digits) => screen.notice(Some(&name), format!(
                    "room fingerprint of #{name} at epoch {}: {digits} (members who see the same digits share this room's members and membership history)",
                    room.epoch()
                ))?,
                None => screen.show(&Shown::Error {
                    text: format!("#{name} has no members yet; try again once you are admitted"),
                })?,
            }
            Vec::new()
        }
        Input::Command(Command::Verify(Some(q))) => {
            let found = room.whois(&q);
            if found.is_empty() {
                screen.show(&Shown::Error {
                    text: format!("nobody in #{name} is called {q}; /members lists who is"),
                })?;
            }
            for (fp, nick) in found {
                screen.notice(Some(&name), format!(
                    "safety number with {nick} ({fp}): {} (read it to each other out of band: the same digits mean neither key was swapped)",
                    room.safety_number(&fp)
                ))?;
            }
            Vec::new()
        }
        Input::Command(Command::Invite(who)) => match room.invite(&who) {
            Ok(actions) => actions,
            Err(refusal) => {
                let text = refusal_text(&name, &refusal);
                screen.show(&Shown::Error { text })?;
                Vec::new()
            }
        },
        Input::Command(Command::Kick(who)) => match room.kick(&who) {
            Ok(actions) => actions,
            Err(refusal) => {
                let text = refusal_text(&name, &refusal);
                screen.show(&Shown::Error { text })?;
                Vec::new()
            }
        },
        Input::Command(Command::Leave) => {
            state.input_open = false;
            state.quitting.get_or_insert(Instant::now() + DRAIN_LIMIT);
            screen.notice(Some(&name), format!("leaving #{name}"))?;
            room.leave()
        }
        Input::Command(Command::Quit) => {
            state.input_open = false;
            state.quitting.get_or_insert(Instant::now() + DRAIN_LIMIT);
            Vec::new()
        }
        Input::Command(Command::Help) => {
            for line in HELP.lines() {
                screen.notice(None, line.to_owned())?;
            }
            Vec::new()
        }
    })
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
