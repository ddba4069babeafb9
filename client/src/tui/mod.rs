//! The terminal app: what `hush client` opens on a terminal.
//!
//! ```text
//!   terminal ──keys, pastes, resizes──▶ input thread ──UserInput::Term──▶ app loop
//!   app loop ──Shown──▶ Tui::show ──▶ View (rooms, lines, members, status)
//!            ──Rooms──▶ Tui::sync (which rooms, which is current, who is online)
//!   View + InputState ──draw (at most every FRAME)──▶ terminal
//! ```
//!
//! The app loop (`app.rs`) stays the one owner of the rooms: a key here
//! becomes a [`Request`] (send this text, switch to that room, quit),
//! which the loop performs exactly as it performs a line typed in line
//! mode, and [`Tui::sync`] then makes the screen follow. Nothing here
//! talks to the relay or to the room crate.
//!
//! - [`input`]: the line being typed (editing, history, pastes, limits).
//! - [`view`]: the screen model (per room: lines, read marker, unread and
//!   mention counts, members, the integrity flag; the status line).
//! - [`draw`]: the layout, drawn with ratatui.
//!
//! The terminal is put in raw mode, on the alternate screen, with
//! bracketed paste on and mouse capture off (so selecting text works),
//! and put back on drop and on a panic.

use std::collections::HashMap;
use std::io::{Stdout, Write};
use std::time::{Duration, Instant};

use hush_crypto::Fingerprint;
use hush_proto::RoomName;
use hush_room::Shown;
use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;
use ratatui::crossterm::event::{DisableBracketedPaste, EnableBracketedPaste, Event, KeyEventKind};
use ratatui::crossterm::execute;

pub mod draw;
pub mod input;
pub mod view;

use input::{InputState, Key, Outcome};
use view::{LinkState, LocalTime, MemberEntry, View};

/// The shortest time between two frames: a backfill of thousands of
/// messages draws a few dozen frames, not thousands.
pub const FRAME: Duration = Duration::from_millis(30);

/// What a key asks of the app loop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Send this text, or run it as a command, as a typed line is.
    Submit(String),
    /// Make this room current.
    Switch(RoomName),
    /// Quit once what was typed has been sent (Ctrl-C).
    Quit,
    /// Quit now, losing what is unsent (Ctrl-C again while waiting).
    QuitNow,
}

/// How the app is to look.
#[derive(Debug, Clone, Copy, Default)]
pub struct TuiOptions {
    /// Ring the terminal bell when someone mentions us.
    pub bell: bool,
}

/// What the status line and member pane are told about a room on each
/// sync.
pub struct RoomFacts {
    /// The room.
    pub name: RoomName,
    /// Its current epoch.
    pub epoch: u64,
    /// Its members: fingerprint, nick, online.
    pub members: Vec<(Fingerprint, String, bool)>,
    /// Who is online is known (caught up, and connected).
    pub online_known: bool,
    /// Our nick there (mentions of it are highlighted).
    pub nick: String,
}

/// The terminal app's state: the terminal, the screen model and the
/// input line.
pub struct Tui {
    terminal: Terminal<CrosstermBackend<Stdout>>,
    view: View,
    input: InputState,
    /// What was half-typed in each room not current.
    drafts: HashMap<RoomName, String>,
    options: TuiOptions,
    /// Something changed since the last frame.
    dirty: bool,
    last_draw: Instant,
    /// A quit was asked for (a second Ctrl-C quits at once).
    quitting: bool,
    /// The conversation pane's width and height at the last frame, for
    /// scrolling by rows.
    conversation: (usize, usize),
    /// When the relay's key was pinned (the status line says so for a
    /// while).
    pinned_at: Option<Instant>,
}

impl Tui {
    /// Takes over the terminal.
    ///
    /// # Errors
    /// If the terminal cannot be put in raw mode or on the alternate
    /// screen.
    pub fn start(
        me: Fingerprint,
        nick: String,
        relay: String,
        time: LocalTime,
        options: TuiOptions,
    ) -> std::io::Result<Self> {
        let terminal = ratatui::try_init()?;
        // ratatui's hook restores raw mode and the screen; bracketed paste
        // is ours to turn off, before the panic message is printed.
        let hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let _ = execute!(std::io::stdout(), DisableBracketedPaste);
            hook(info);
        }));
        execute!(std::io::stdout(), EnableBracketedPaste)?;
        let mut view = View::new(me, nick, relay, time);
        view.status.link = LinkState::Connecting;
        Ok(Self {
            terminal,
            view,
            input: InputState::new(crate::command::MAX_TEXT_BYTES),
            drafts: HashMap::new(),
            options,
            dirty: true,
            last_draw: Instant::now(),
            quitting: false,
            conversation: (80, 20),
            pinned_at: None,
        })
    }

    /// One event the room crate (or the app) asks to show.
    pub fn show(&mut self, ev: &Shown) {
        let pushed = self.view.push(ev, crate::app::now_ms());
        // Scrolled back: a line arriving in this room must not move what
        // the reader is looking at.
        if let Some(room) = self.view.current()
            && room.scroll > 0
            && pushed.room.as_ref() == Some(&room.name)
            && let Some(last) = room.lines.last()
        {
            let rows = draw::line_height(&self.view, last, self.conversation.0);
            self.view
                .scroll(isize::try_from(rows).unwrap_or(0), usize::MAX);
        }
        if pushed.mention && self.options.bell {
            let _ = self.terminal.backend_mut().write_all(b"\x07");
        }
        self.dirty = true;
    }

    /// Our own line, shown as pending until the relay sequences it.
    pub fn own_line(&mut self, room: &RoomName, text: &str, action: bool) {
        self.view
            .own_pending(room, text, action, crate::app::now_ms());
        self.dirty = true;
    }

    /// A room is about to open: listed at once (sync confirms it later).
    pub fn room_opening(&mut self, name: &RoomName) {
        self.view.open_room(name);
        self.dirty = true;
    }

    /// A room's window closed; `next` is the room now current.
    pub fn room_closed(&mut self, name: &RoomName, next: Option<&RoomName>) {
        self.drafts.remove(name);
        self.view.close_room(name);
        if let Some(next) = next {
            self.view.switch_to(next);
        }
        self.dirty = true;
    }

    /// The file transfers' progress, for the status line.
    pub fn transfer(&mut self, summary: Option<String>) {
        if self.view.status.transfer != summary {
            self.view.status.transfer = summary;
            self.dirty = true;
        }
    }

    /// Something may have changed that no event shows (who is online).
    pub fn touch(&mut self) {
        self.dirty = true;
    }

    /// The client stops: what is still pending will not be sent.
    pub fn fail_pending(&mut self) {
        self.view.fail_pending();
        self.dirty = true;
    }

    /// What the user would lose when the client stops now: each room's
    /// lines still pending, and each room's half-typed line, for the
    /// terminal after the screen closes.
    #[must_use]
    pub fn leftovers(&self) -> Vec<(RoomName, &'static str, String)> {
        let mut out = Vec::new();
        for room in &self.view.rooms {
            for line in &room.lines {
                if let view::LineKind::Message {
                    text,
                    mine: Some(view::Mark::Pending | view::Mark::Failed),
                    ..
                } = &line.kind
                {
                    out.push((room.name.clone(), "not sent", text.clone()));
                }
            }
        }
        if let Some(current) = self.view.current_name()
            && !self.input.text().trim().is_empty()
        {
            out.push((current.clone(), "being typed", self.input.text().to_owned()));
        }
        for (room, draft) in &self.drafts {
            if !draft.trim().is_empty() {
                out.push((room.clone(), "being typed", draft.clone()));
            }
        }
        out
    }

    /// The link's state for the status line.
    pub fn link(&mut self, link: LinkState) {
        if self.view.status.link != link {
            self.view.status.link = link;
            self.dirty = true;
        }
    }

    /// The relay's key was pinned on this first contact.
    pub fn pinned_now(&mut self) {
        self.view.status.pinned_now = true;
        self.pinned_at = Some(Instant::now());
        self.dirty = true;
    }

    /// Makes the screen follow the app's rooms: which are open, which is
    /// current, the current one's members and epoch, what is unsent.
    pub fn sync(
        &mut self,
        open: &[RoomName],
        current: Option<&RoomName>,
        facts: Option<RoomFacts>,
        unsent: usize,
    ) {
        for name in open {
            if !self.view.rooms.iter().any(|r| &r.name == name) {
                self.view.open_room(name);
                self.dirty = true;
            }
        }
        let gone: Vec<RoomName> = self
            .view
            .rooms
            .iter()
            .filter(|r| !open.contains(&r.name))
            .map(|r| r.name.clone())
            .collect();
        for name in gone {
            self.drafts.remove(&name);
            self.view.close_room(&name);
            self.dirty = true;
        }
        if let Some(name) = current
            && self.view.current_name() != Some(name)
        {
            if let Some(old) = self.view.current_name().cloned() {
                let draft = self.input.take_text();
                if !draft.is_empty() {
                    self.drafts.insert(old, draft);
                }
            }
            self.view.switch_to(name);
            if let Some(draft) = self.drafts.remove(name) {
                self.input.set_text(&draft);
            }
            self.dirty = true;
        }
        if let Some(f) = facts {
            if self.view.nick() != f.nick {
                self.view.set_nick(f.nick.clone());
            }
            let me = self.view.me();
            let members = f
                .members
                .into_iter()
                .map(|(fp, nick, online)| MemberEntry {
                    fp,
                    nick,
                    online: if fp == me {
                        Some(true)
                    } else if f.online_known {
                        Some(online)
                    } else {
                        None
                    },
                    me: fp == me,
                })
                .collect::<Vec<_>>();
            let changed = self
                .view
                .current()
                .is_none_or(|r| r.members != members || r.epoch != f.epoch);
            if changed {
                self.view.set_members(&f.name, members, f.epoch);
                self.dirty = true;
            }
        }
        if self.view.status.unsent != unsent {
            self.view.status.unsent = unsent;
            self.dirty = true;
        }
    }

    /// The keys the user verified, drawn with the verified mark.
    pub fn set_verified(&mut self, verified: std::collections::BTreeSet<Fingerprint>) {
        if self.view.set_verified(verified) {
            self.dirty = true;
        }
    }

    /// Our fingerprint.
    #[must_use]
    pub fn me(&self) -> Fingerprint {
        self.view.me()
    }

    /// Each open room's nick and on-screen name (`@bob` for a /dm room).
    pub fn room_info(&mut self, info: &[(RoomName, String, Option<String>)]) {
        for (room, nick, label) in info {
            let before = self
                .view
                .rooms
                .iter()
                .find(|r| &r.name == room)
                .map(|r| (r.nick.clone(), r.label.clone()));
            if before != Some((Some(nick.clone()), label.clone())) {
                self.view.set_room_info(room, nick, label.clone());
                self.dirty = true;
            }
        }
    }

    /// The names Tab completes: the current room's members.
    fn nicks(&self) -> Vec<String> {
        let me = self.view.me();
        self.view
            .current()
            .map(|r| {
                r.members
                    .iter()
                    .filter(|m| m.fp != me)
                    .map(|m| m.nick.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// One terminal event: a key, a paste, a resize.
    pub fn on_event(&mut self, ev: Event) -> Vec<Request> {
        self.dirty = true;
        let outcome = match ev {
            Event::Key(k) if k.kind != KeyEventKind::Release => match input::key_from_crossterm(&k)
            {
                Some(key) => {
                    let nicks = self.nicks();
                    self.input.key(key, &nicks)
                }
                None => Outcome::Nothing,
            },
            Event::Paste(text) => self.input.paste(&text),
            // A resize is a redraw: the layout is computed for each frame.
            _ => Outcome::Nothing,
        };
        self.view.status.note = None;
        match outcome {
            Outcome::Submit(text) => {
                self.quitting = false;
                vec![Request::Submit(text)]
            }
            Outcome::TooLong => {
                self.view.status.note = Some(format!(
                    "too long: one message holds at most {} bytes; send it in parts",
                    crate::command::MAX_TEXT_BYTES
                ));
                Vec::new()
            }
            Outcome::Unbound(key) => self.on_unbound(key),
            Outcome::Confirm(_) | Outcome::Redraw | Outcome::Nothing => Vec::new(),
        }
    }

    /// The keys the input line leaves to the app.
    fn on_unbound(&mut self, key: Key) -> Vec<Request> {
        let switch = |to: Option<RoomName>| to.map(Request::Switch).into_iter().collect();
        match key {
            Key::Alt(d @ '1'..='9') => {
                let i = usize::from(u8::try_from(d).unwrap_or(b'1') - b'1');
                switch(self.view.room_at(i))
            }
            Key::Alt('0') => switch(self.view.room_at(9)),
            Key::Ctrl('n') => switch(self.view.next_room()),
            Key::Ctrl('p') => switch(self.view.prev_room()),
            Key::Alt('a') => {
                let next = self.view.next_unread();
                if next.is_none() {
                    self.view.status.note = Some("no room has unread messages".into());
                }
                switch(next)
            }
            Key::PageUp | Key::PageDown => {
                let (width, height) = self.conversation;
                // A page less a row of overlap, so the reader keeps their
                // place.
                let page = isize::try_from(height.saturating_sub(1).max(1)).unwrap_or(10);
                let max = draw::conversation_rows(&self.view, width).saturating_sub(height);
                let by = if key == Key::PageUp { page } else { -page };
                self.view.scroll(by, max);
                Vec::new()
            }
            Key::Ctrl('l') => {
                let _ = self.terminal.clear();
                Vec::new()
            }
            Key::Ctrl('c') => {
                if self.quitting {
                    vec![Request::QuitNow]
                } else {
                    self.quitting = true;
                    vec![Request::Quit]
                }
            }
            _ => Vec::new(),
        }
    }

    /// Sets the transient note of the status line.
    pub fn note(&mut self, text: String) {
        self.view.status.note = Some(text);
        self.dirty = true;
    }

    /// When the next frame is due, if anything changed.
    #[must_use]
    pub fn frame_due(&self) -> Option<Instant> {
        self.dirty.then(|| self.last_draw + FRAME)
    }

    /// Draws a frame if anything changed.
    ///
    /// # Errors
    /// If the terminal cannot be written.
    pub fn draw(&mut self) -> std::io::Result<()> {
        if !self.dirty {
            return Ok(());
        }
        self.dirty = false;
        self.last_draw = Instant::now();
        // "key pinned now" is news for a minute, then room for the rest.
        if self
            .pinned_at
            .is_some_and(|at| at.elapsed() > Duration::from_secs(60))
        {
            self.view.status.pinned_now = false;
            self.pinned_at = None;
        }
        let view = &self.view;
        let input = &self.input;
        let mut conversation = self.conversation;
        self.terminal.draw(|frame| {
            let panes = draw::Panes::for_area(frame.area(), input.text());
            conversation = (
                usize::from(panes.conversation.width),
                usize::from(panes.conversation.height),
            );
            let line = draw::InputLine {
                text: input.text(),
                cursor: input.cursor(),
                used: input.used(),
                limit: input.limit(),
                confirming: input.confirming(),
            };
            draw::draw(frame, view, &line);
        })?;
        self.conversation = conversation;
        Ok(())
    }
}

impl Drop for Tui {
    fn drop(&mut self) {
        let _ = execute!(std::io::stdout(), DisableBracketedPaste);
        ratatui::restore();
    }
}

/// Reads the terminal's events on a thread of its own (crossterm's read
/// blocks) and hands them to the app loop; it ends when the loop is gone
/// or the terminal fails.
pub fn spawn_input_thread(tx: tokio::sync::mpsc::Sender<crate::app::UserInput>) {
    std::thread::spawn(move || {
        while let Ok(ev) = ratatui::crossterm::event::read() {
            if tx.blocking_send(crate::app::UserInput::Term(ev)).is_err() {
                break;
            }
        }
    });
}
