//! The screen model of the terminal app: the open rooms, their
//! conversation lines, members and read state, and the status line.
//!
//! ```text
//!   room crate ─Shown─▶ app ─▶ View::push ─▶ RoomEntry { lines, unread, ... }
//!   typed line ───────▶ app ─▶ View::own_pending (drawn as pending)
//!   relay echo ─Shown─▶ app ─▶ View::push (settles the pending line: sent)
//!   View + input ─────▶ draw::draw ─▶ terminal
//! ```
//!
//! Nothing here touches the terminal: this module only keeps state, so it
//! can be tested without one. Text is kept exactly as received; drawing
//! sanitizes it (see [`crate::display::sanitize`]).
//!
//! Units: a room's `scroll` counts screen rows of the conversation hidden
//! below the pane (0: following the newest). Rows depend on the pane's
//! width, which only drawing knows: the app clamps a scroll with
//! `draw::conversation_rows` and, while scrolled back, adds the rows of
//! each line that arrives, so the screen stays still.

use hush_crypto::Fingerprint;
use hush_proto::RoomName;
use hush_room::Shown;
use ratatui::style::Color;

use crate::display::{render_line, shown_room};

/// The most lines a room keeps; older ones are dropped.
pub const MAX_LINES: usize = 5_000;

pub use crate::display::LocalTime;

/// The colours nicks are drawn in: readable on dark and light terminals,
/// never red (red is for warnings), never black, white or grey (plain text).
const NICK_PALETTE: [Color; 10] = [
    Color::Green,
    Color::Yellow,
    Color::Blue,
    Color::Magenta,
    Color::Cyan,
    Color::LightGreen,
    Color::LightYellow,
    Color::LightBlue,
    Color::LightMagenta,
    Color::LightCyan,
];

/// A stable colour for a fingerprint (never for a nick: an impersonator
/// must not get the real person's colour). One of ten colours, never red.
#[must_use]
pub fn nick_colour(fp: &Fingerprint) -> Color {
    // The fingerprint is a hash already: its first bytes are uniform.
    let bytes = fp.as_bytes();
    let mut first = [0u8; 8];
    first.copy_from_slice(&bytes[..8]);
    let n = u64::from_le_bytes(first);
    let len = NICK_PALETTE.len() as u64; // 10: lossless
    let i = usize::try_from(n % len).unwrap_or(0);
    NICK_PALETTE.get(i).copied().unwrap_or(Color::Cyan)
}

/// Whether `c` continues a word for [`mentions`].
fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '-'
}

/// Whether `text` mentions `nick`: case-insensitive, as a whole word
/// (bounded by start/end or a non-alphanumeric character other than `_`
/// and `-`), e.g. "alice: hi", "hi @alice!" but not "malice". An empty
/// nick is never mentioned.
#[must_use]
pub fn mentions(text: &str, nick: &str) -> bool {
    let nick = nick.to_lowercase();
    if nick.is_empty() {
        return false;
    }
    let text = text.to_lowercase();
    // Try every start, not just non-overlapping matches: a failed match
    // may hide a whole-word one that overlaps it.
    let mut from = 0;
    while let Some(rel) = text.get(from..).and_then(|rest| rest.find(&nick)) {
        let start = from + rel;
        let end = start + nick.len();
        let before = text.get(..start).and_then(|s| s.chars().next_back());
        let after = text.get(end..).and_then(|s| s.chars().next());
        if !before.is_some_and(is_word_char) && !after.is_some_and(is_word_char) {
            return true;
        }
        // Advance by one character.
        let step = text
            .get(start..)
            .and_then(|s| s.chars().next())
            .map_or(1, char::len_utf8);
        from = start + step;
    }
    false
}

/// The state of one of our own messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    /// Typed, not yet sequenced by the relay.
    Pending,
    /// The relay sequenced it and it came back verified.
    Sent,
    /// It will not be sent (the queue was full, or the client stopped).
    Failed,
}

/// What a conversation line is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineKind {
    /// A verified message. `text`/`nick` exactly as received (unsanitized;
    /// draw sanitizes).
    Message {
        /// The sender.
        from: Fingerprint,
        /// The sender's nickname.
        nick: String,
        /// The text, possibly several lines.
        text: String,
        /// An action (`/me`).
        action: bool,
        /// Our own message and its state; `None` for others' messages.
        mine: Option<Mark>,
        /// It mentions our nickname.
        mention: bool,
        /// Someone else in the room uses the same nick
        /// (`Shown::Message::same_nick` non-empty).
        same_nick: bool,
    },
    /// Membership and notices: the line-mode text from
    /// [`render_line`] ("-- ...").
    Event(String),
    /// A warning: [`render_line`] text ("!! warning[kind]: ...").
    Warning(String),
    /// An error: [`render_line`] text ("!! error: ...").
    Error(String),
}

/// One line of a conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConvLine {
    /// When: the relay's receive time for messages, else the local time it
    /// was shown (ms since the Unix epoch).
    pub at_ms: u64,
    /// What.
    pub kind: LineKind,
}

/// A member of a room, for the member pane.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberEntry {
    /// Their fingerprint.
    pub fp: Fingerprint,
    /// Their nickname (unsanitized).
    pub nick: String,
    /// `None`: not known yet (not caught up with the relay).
    pub online: Option<bool>,
    /// This is us.
    pub me: bool,
}

/// The state of the link to the relay.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum LinkState {
    /// The first connection is being made.
    #[default]
    Connecting,
    /// Connected and authenticated.
    Connected,
    /// The link dropped; retrying.
    Reconnecting,
}

/// What the status line shows besides the current room.
#[derive(Debug, Clone, Default)]
pub struct Status {
    /// The relay, "chat.example.org:40623".
    pub relay: String,
    /// The link state.
    pub link: LinkState,
    /// The relay key was pinned on this first contact (shows "key pinned now").
    pub pinned_now: bool,
    /// Lines typed and not yet sequenced by the relay, all rooms.
    pub unsent: usize,
    /// A transient line the app sets ("too long: 8,192 bytes at most").
    pub note: Option<String>,
    /// File transfers under way: "sending movie.bin 45% [...] 12 MiB/s".
    pub transfer: Option<String>,
}

/// A room in the list, with its conversation.
#[derive(Debug, Clone)]
pub struct RoomEntry {
    /// The room.
    pub name: RoomName,
    /// The conversation, oldest first, at most [`MAX_LINES`].
    pub lines: Vec<ConvLine>,
    /// Index in `lines` of the first line not yet seen; `None` = all seen.
    pub read_marker: Option<usize>,
    /// Messages (and warnings) that arrived while the room was not current.
    pub unread: usize,
    /// Mentions of us that arrived while the room was not current.
    pub mentions: usize,
    /// The members, for the member pane.
    pub members: Vec<MemberEntry>,
    /// The room's epoch.
    pub epoch: u64,
    /// A warning was raised in this room this run (the status line shows
    /// an integrity flag).
    pub warned: bool,
    /// An impostor warning was raised in this room this run: someone
    /// used a verified person's name with another key (the status line
    /// says so beside the integrity flag).
    pub impostor: bool,
    /// Screen rows of the conversation hidden below the pane (0 =
    /// following the newest).
    pub scroll: usize,
    /// Our nickname in this room (nicknames are per room); mentions of it
    /// are highlighted. `None`: the view's own.
    pub nick: Option<String>,
    /// What the room list and the prompt call the room when its name says
    /// little (a `/dm` room: `@bob`); `None`: `#name`.
    pub label: Option<String>,
}

impl RoomEntry {
    /// An empty room entry.
    #[must_use]
    pub fn new(name: RoomName) -> Self {
        Self {
            name,
            lines: Vec::new(),
            read_marker: None,
            unread: 0,
            mentions: 0,
            members: Vec::new(),
            epoch: 0,
            warned: false,
            impostor: false,
            scroll: 0,
            nick: None,
            label: None,
        }
    }

    /// How the room is named on screen: its label, or `#name`.
    #[must_use]
    pub fn title(&self) -> String {
        self.label
            .clone()
            .unwrap_or_else(|| format!("#{}", self.name))
    }

    /// Appends a line, dropping the oldest past [`MAX_LINES`]; keeps the
    /// read marker on the same line.
    fn push_line(&mut self, line: ConvLine) {
        self.lines.push(line);
        if self.lines.len() > MAX_LINES {
            let excess = self.lines.len() - MAX_LINES;
            self.lines.drain(..excess);
            // A marker on a dropped line: everything kept is unseen.
            self.read_marker = self.read_marker.map(|m| m.saturating_sub(excess));
        }
    }

    /// Removes the line at `i`, keeping the read marker on the same line
    /// (or on the one after it, if it was this one).
    fn remove_line(&mut self, i: usize) -> Option<ConvLine> {
        if i >= self.lines.len() {
            return None;
        }
        let line = self.lines.remove(i);
        if let Some(m) = self.read_marker
            && i < m
        {
            self.read_marker = Some(m - 1);
        }
        Some(line)
    }

    /// The index of a line of ours in the state `mark`, the oldest one
    /// (`oldest`) or the newest, optionally with this text and kind.
    fn find_mine(&self, mark: Mark, oldest: bool, text: Option<(&str, bool)>) -> Option<usize> {
        let matches = |l: &ConvLine| match &l.kind {
            LineKind::Message {
                mine: Some(m),
                text: t,
                action: a,
                ..
            } => *m == mark && text.is_none_or(|(text, action)| t == text && *a == action),
            _ => false,
        };
        if oldest {
            self.lines.iter().position(matches)
        } else {
            self.lines.iter().rposition(matches)
        }
    }
}

/// Where [`View::push`] put an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pushed {
    /// The room it was added to; `None` when no room is open (it went to
    /// the lines shown without a room, [`View::loose_lines`]).
    pub room: Option<RoomName>,
    /// It is a message from someone else that mentions us.
    pub mention: bool,
}

/// The whole screen model.
#[derive(Debug, Clone)]
pub struct View {
    /// The open rooms, in list order (Alt-1 is the first).
    pub rooms: Vec<RoomEntry>,
    /// The status line.
    pub status: Status,
    /// Index in `rooms` of the current room.
    current: Option<usize>,
    /// Lines with no room to go to (no room open yet), at most [`MAX_LINES`].
    loose: Vec<ConvLine>,
    me: Fingerprint,
    nick: String,
    time: LocalTime,
    /// The keys the user verified (the client's contacts): drawn with
    /// the verified mark beside their names.
    verified: std::collections::BTreeSet<Fingerprint>,
}

impl View {
    /// An empty view for `me` (nick `nick`) on `relay`.
    #[must_use]
    pub fn new(me: Fingerprint, nick: String, relay: String, time: LocalTime) -> Self {
        Self {
            rooms: Vec::new(),
            status: Status {
                relay,
                ..Status::default()
            },
            current: None,
            loose: Vec::new(),
            me,
            nick,
            time,
            verified: std::collections::BTreeSet::new(),
        }
    }

    /// Replaces the set of verified keys; returns whether it changed.
    pub fn set_verified(&mut self, verified: std::collections::BTreeSet<Fingerprint>) -> bool {
        let changed = self.verified != verified;
        self.verified = verified;
        changed
    }

    /// Whether `fp` is a key the user verified.
    #[must_use]
    pub fn is_verified(&self, fp: &Fingerprint) -> bool {
        self.verified.contains(fp)
    }

    /// Our fingerprint.
    #[must_use]
    pub fn me(&self) -> Fingerprint {
        self.me
    }

    /// Sets our nick, for mentions and the prompt.
    pub fn set_nick(&mut self, nick: String) {
        self.nick = nick;
    }

    /// Our nick.
    #[must_use]
    pub fn nick(&self) -> &str {
        &self.nick
    }

    /// How times are shown.
    #[must_use]
    pub fn time(&self) -> &LocalTime {
        &self.time
    }

    /// Lines that arrived while no room was open (drawn when there is no
    /// current room).
    #[must_use]
    pub fn loose_lines(&self) -> &[ConvLine] {
        &self.loose
    }

    /// The index of a room in the list.
    fn index_of(&self, name: &RoomName) -> Option<usize> {
        self.rooms.iter().position(|r| &r.name == name)
    }

    /// Adds a room at the end of the list if not there. It does not switch,
    /// except that the first room opened when none is current becomes
    /// current (there is nothing else to show).
    ///
    /// A room opened when none is current becomes current, and takes the
    /// lines shown while no room was open (a notice said before the
    /// first room opened, or after the last one closed, is not lost).
    pub fn open_room(&mut self, name: &RoomName) {
        if self.index_of(name).is_none() {
            let mut entry = RoomEntry::new(name.clone());
            if self.current.is_none() {
                entry.lines = std::mem::take(&mut self.loose);
            }
            self.rooms.push(entry);
            if self.current.is_none() {
                self.current = Some(self.rooms.len() - 1);
            }
        }
    }

    /// Removes a room; if it was current, the next one (or previous)
    /// becomes current.
    pub fn close_room(&mut self, name: &RoomName) {
        let Some(i) = self.index_of(name) else {
            return;
        };
        self.rooms.remove(i);
        self.current = match self.current {
            _ if self.rooms.is_empty() => None,
            Some(c) if c == i => {
                let next = i.min(self.rooms.len() - 1);
                if let Some(r) = self.rooms.get_mut(next) {
                    r.unread = 0;
                    r.mentions = 0;
                    r.scroll = 0;
                }
                Some(next)
            }
            Some(c) if c > i => Some(c - 1),
            other => other,
        };
    }

    /// Makes `name` current: the room left gets its read marker cleared
    /// (all seen; the next message that arrives while away sets it); the
    /// room entered gets unread = mentions = 0 and scroll = 0, and keeps
    /// its read marker, so lines that arrived while away stay below a "new
    /// since you were away" separator until you leave it again. Returns
    /// false if no such room.
    pub fn switch_to(&mut self, name: &RoomName) -> bool {
        let Some(i) = self.index_of(name) else {
            return false;
        };
        if self.current == Some(i) {
            return true;
        }
        if let Some(left) = self.current.and_then(|c| self.rooms.get_mut(c)) {
            left.read_marker = None;
        }
        if let Some(entered) = self.rooms.get_mut(i) {
            entered.unread = 0;
            entered.mentions = 0;
            entered.scroll = 0;
        }
        self.current = Some(i);
        true
    }

    /// The current room.
    #[must_use]
    pub fn current(&self) -> Option<&RoomEntry> {
        self.current.and_then(|c| self.rooms.get(c))
    }

    /// The current room, mutably.
    fn current_mut(&mut self) -> Option<&mut RoomEntry> {
        self.current.and_then(|c| self.rooms.get_mut(c))
    }

    /// The current room's name.
    #[must_use]
    pub fn current_name(&self) -> Option<&RoomName> {
        self.current().map(|r| &r.name)
    }

    /// The room at 0-based position `i` in the list (Alt-1 = 0).
    #[must_use]
    pub fn room_at(&self, i: usize) -> Option<RoomName> {
        self.rooms.get(i).map(|r| r.name.clone())
    }

    /// The room after (`forward`) or before the current one, cyclic. With no
    /// current room, the first (forward) or last (backward).
    fn cyclic(&self, forward: bool) -> Option<RoomName> {
        let n = self.rooms.len();
        if n == 0 {
            return None;
        }
        let i = match (self.current, forward) {
            (Some(c), true) => (c + 1) % n,
            (Some(c), false) => (c + n - 1) % n,
            (None, true) => 0,
            (None, false) => n - 1,
        };
        self.room_at(i)
    }

    /// The room after the current one, cyclic (Ctrl-N).
    #[must_use]
    pub fn next_room(&self) -> Option<RoomName> {
        self.cyclic(true)
    }

    /// The room before the current one, cyclic (Ctrl-P).
    #[must_use]
    pub fn prev_room(&self) -> Option<RoomName> {
        self.cyclic(false)
    }

    /// The next room with mentions, else the next with unread (cyclic,
    /// starting after current; the current room is not a candidate).
    #[must_use]
    pub fn next_unread(&self) -> Option<RoomName> {
        let n = self.rooms.len();
        let start = self.current.map_or(0, |c| c + 1);
        let order = || {
            (0..n)
                .map(move |k| (start + k) % n)
                .filter(|&i| Some(i) != self.current)
                .filter_map(|i| self.rooms.get(i))
        };
        order()
            .find(|r| r.mentions > 0)
            .or_else(|| order().find(|r| r.unread > 0))
            .map(|r| r.name.clone())
    }

    /// Adds one event: to its room ([`shown_room`]), or to the current room
    /// when it has none. A conversation event (joined, message, member
    /// joined or left, epoch) for a room not open opens it, so a message is
    /// never shown under another room; any other event naming a room not
    /// open (e.g. a notice after `/part`) goes to the current room.
    ///
    /// Messages from us (`from == me`) settle the oldest Pending line of
    /// ours with the same text (and kind) in that room: it becomes Sent,
    /// takes the received time, and moves to the end, its place in the
    /// relay's order, so our own message is shown once; with no pending
    /// line to settle (e.g. sent by an earlier run), it is added as Sent.
    /// Others' messages: mention = [`mentions`]`(text, our nick)`.
    /// `Joined` / `Epoch` update the room's epoch. `Warning` sets `warned`
    /// on its room (a warning naming no room: on the current room). `QueueFull` marks the newest Pending of
    /// that room Failed (and adds its error line). For a room that is not
    /// current: unread += 1 for others' messages and warnings, mentions +=
    /// 1 for mentions; the first such line sets `read_marker` if `None`.
    /// Message time: `received_at_ms`; everything else: `now_ms`.
    pub fn push(&mut self, ev: &Shown, now_ms: u64) -> Pushed {
        let named = shown_room(ev);
        let conversation = matches!(
            ev,
            Shown::Joined { .. }
                | Shown::Message { .. }
                | Shown::MemberJoined { .. }
                | Shown::MemberLeft { .. }
                | Shown::Epoch { .. }
        );
        if let Some(r) = named
            && conversation
        {
            self.open_room(r);
        }
        let own_room = named.and_then(|r| self.index_of(r));
        // Named a room that is not open: shown in the current room, but
        // it raises no integrity flag there.
        let foreign = named.is_some() && own_room.is_none();
        let target = own_room.or(self.current);
        let Some(ti) = target else {
            push_capped(&mut self.loose, line_for(ev, now_ms, self.me, &self.nick));
            return Pushed {
                room: None,
                mention: false,
            };
        };
        let is_current = self.current == Some(ti);
        let me = self.me;
        let nick = self
            .rooms
            .get(ti)
            .and_then(|r| r.nick.as_deref())
            .unwrap_or(&self.nick);
        let line = line_for(ev, now_ms, me, nick);
        let Some(room) = self.rooms.get_mut(ti) else {
            return Pushed {
                room: None,
                mention: false,
            };
        };
        let mut counts = false;
        let mut mention = false;
        match ev {
            Shown::Joined { epoch, .. } | Shown::Epoch { epoch, .. } => room.epoch = *epoch,
            Shown::Warning { warning, .. } => {
                room.warned |= !foreign;
                room.impostor |= !foreign && matches!(warning, hush_room::Warning::Impostor { .. });
                counts = true;
            }
            // The line just typed was not taken: the queue was full, or
            // the room's history was rewound.
            Shown::QueueFull { .. }
            | Shown::Notice {
                notice: hush_room::Notice::NotSentRewound,
                ..
            } => {
                if let Some(i) = room.find_mine(Mark::Pending, false, None)
                    && let Some(LineKind::Message { mine, .. }) =
                        room.lines.get_mut(i).map(|l| &mut l.kind)
                {
                    *mine = Some(Mark::Failed);
                }
            }
            Shown::Message {
                from, text, action, ..
            } if *from == me => {
                if let Some(i) = room.find_mine(Mark::Pending, true, Some((text, *action))) {
                    room.remove_line(i);
                }
            }
            Shown::Message { .. } => {
                counts = true;
                mention = matches!(line.kind, LineKind::Message { mention: true, .. });
            }
            // Someone else's file counts as something new to read.
            Shown::FileOffered { from, .. } if *from != me => counts = true,
            _ => {}
        }
        if counts && !is_current {
            if room.read_marker.is_none() {
                room.read_marker = Some(room.lines.len());
            }
            room.unread += 1;
            if mention {
                room.mentions += 1;
            }
        }
        room.push_line(line);
        Pushed {
            room: Some(room.name.clone()),
            mention,
        }
    }

    /// Our own line as typed, before the relay sequenced it (drawn as
    /// pending). Ignored for a room that is not open. Scrolls that room
    /// back to the bottom, to show it.
    pub fn own_pending(&mut self, room: &RoomName, text: &str, action: bool, now_ms: u64) {
        let (me, nick) = (self.me, self.nick.clone());
        let Some(entry) = self.index_of(room).and_then(|i| self.rooms.get_mut(i)) else {
            return;
        };
        entry.scroll = 0;
        entry.push_line(ConvLine {
            at_ms: now_ms,
            kind: LineKind::Message {
                from: me,
                nick,
                text: text.to_owned(),
                action,
                mine: Some(Mark::Pending),
                mention: false,
                same_nick: false,
            },
        });
    }

    /// Every still-Pending line of ours becomes Failed (the client stopped
    /// without sending them).
    pub fn fail_pending(&mut self) {
        for line in self.rooms.iter_mut().flat_map(|r| r.lines.iter_mut()) {
            if let LineKind::Message { mine, .. } = &mut line.kind
                && *mine == Some(Mark::Pending)
            {
                *mine = Some(Mark::Failed);
            }
        }
    }

    /// Replaces a room's members and epoch (ignored for a room not open).
    pub fn set_members(&mut self, room: &RoomName, members: Vec<MemberEntry>, epoch: u64) {
        if let Some(entry) = self.index_of(room).and_then(|i| self.rooms.get_mut(i)) {
            entry.members = members;
            entry.epoch = epoch;
        }
    }

    /// Our nickname in `room`, and what to call the room on screen.
    pub fn set_room_info(&mut self, room: &RoomName, nick: &str, label: Option<String>) {
        if let Some(i) = self.index_of(room)
            && let Some(r) = self.rooms.get_mut(i)
        {
            if r.nick.as_deref() != Some(nick) {
                r.nick = Some(nick.to_owned());
            }
            r.label = label;
        }
    }

    /// PageUp/PageDown on the current room: positive scrolls back (older),
    /// negative forward, by screen rows; clamped to `0..=max` (the rows
    /// that do not fit the pane, as drawing counts them).
    pub fn scroll(&mut self, rows: isize, max: usize) {
        if let Some(room) = self.current_mut() {
            let by = rows.unsigned_abs();
            room.scroll = if rows >= 0 {
                room.scroll.saturating_add(by)
            } else {
                room.scroll.saturating_sub(by)
            }
            .min(max);
        }
    }
}

/// Appends to a room-less list, dropping the oldest past [`MAX_LINES`].
fn push_capped(lines: &mut Vec<ConvLine>, line: ConvLine) {
    lines.push(line);
    if lines.len() > MAX_LINES {
        let excess = lines.len() - MAX_LINES;
        lines.drain(..excess);
    }
}

/// The conversation line for an event.
fn line_for(ev: &Shown, now_ms: u64, me: Fingerprint, our_nick: &str) -> ConvLine {
    let kind = match ev {
        Shown::Message {
            from,
            nick,
            text,
            action,
            same_nick,
            ..
        } => {
            let mine = *from == me;
            LineKind::Message {
                from: *from,
                nick: nick.clone(),
                text: text.clone(),
                action: *action,
                mine: mine.then_some(Mark::Sent),
                mention: !mine && mentions(text, our_nick),
                same_nick: !same_nick.is_empty(),
            }
        }
        Shown::FileOffered {
            from, nick, offer, ..
        } => LineKind::Event(format!(
            "-- {}",
            crate::display::offer_text(from, nick, offer)
        )),
        Shown::Warning { .. } => LineKind::Warning(render_line(ev)),
        Shown::Error { .. } | Shown::Refused { .. } | Shown::QueueFull { .. } => {
            LineKind::Error(render_line(ev))
        }
        Shown::Joined { .. }
        | Shown::MemberJoined { .. }
        | Shown::MemberLeft { .. }
        | Shown::Epoch { .. }
        | Shown::Notice { .. } => LineKind::Event(render_line(ev)),
    };
    let at_ms = match ev {
        Shown::Message { received_at_ms, .. } | Shown::FileOffered { received_at_ms, .. } => {
            *received_at_ms
        }
        _ => now_ms,
    };
    ConvLine { at_ms, kind }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) mod tests {
    use super::*;
    use hush_room::{Notice, Warning};
    use jiff::tz::{Offset, TimeZone};

    /// 2023-11-14T22:13:20Z.
    pub(crate) const T: u64 = 1_700_000_000_000;

    pub(crate) fn fp(n: u8) -> Fingerprint {
        Fingerprint::from_bytes([n; 32])
    }

    pub(crate) fn room(name: &str) -> RoomName {
        RoomName::new(name).unwrap()
    }

    pub(crate) fn view() -> View {
        View::new(
            fp(1),
            "alice".into(),
            "relay.example:40623".into(),
            LocalTime::new(true),
        )
    }

    pub(crate) fn msg(r: &str, from: u8, nick: &str, text: &str, at: u64) -> Shown {
        Shown::Message {
            room: room(r),
            seq: 1,
            from: fp(from),
            nick: nick.into(),
            text: text.into(),
            action: false,
            sent_at_ms: at,
            received_at_ms: at,
            same_nick: vec![],
        }
    }

    fn marks(r: &RoomEntry) -> Vec<Option<Mark>> {
        r.lines
            .iter()
            .filter_map(|l| match &l.kind {
                LineKind::Message { mine, .. } => Some(*mine),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn local_time_utc_and_fixed_zones() {
        let utc = LocalTime::new(true);
        assert_eq!(utc.hhmm(T), "22:13");
        assert_eq!(utc.date(T), "Tuesday 14 November 2023");
        // 2026-12-03T12:00:00Z is a Thursday.
        assert_eq!(utc.date(1_796_299_200_000), "Thursday 3 December 2026");
        let plus2 = LocalTime::with_zone(TimeZone::fixed(Offset::constant(2)));
        assert_eq!(plus2.hhmm(T), "00:13");
        assert_eq!(plus2.date(T), "Wednesday 15 November 2023");
        assert!(utc.same_day(T, T + 60_000));
        assert!(!plus2.same_day(T - 3_600_000, T));
        assert!(utc.same_day(T - 3_600_000, T));
        // Never panics at the extremes.
        let _ = utc.date(u64::MAX);
        let _ = utc.hhmm(u64::MAX);
        assert!(utc.same_day(u64::MAX, u64::MAX - 1));
    }

    #[test]
    fn nick_colour_is_stable_and_never_red() {
        for n in 0..=255u8 {
            let mut bytes = [0u8; 32];
            bytes[0] = n;
            bytes[5] = n.wrapping_mul(7);
            let f = Fingerprint::from_bytes(bytes);
            let c = nick_colour(&f);
            assert_eq!(c, nick_colour(&f));
            assert!(!matches!(c, Color::Red | Color::LightRed), "{c:?}");
        }
        // Different people usually get different colours.
        let distinct: std::collections::HashSet<_> = (0..40u8)
            .map(|n| format!("{:?}", nick_colour(&fp(n))))
            .collect();
        assert!(distinct.len() >= 5);
    }

    #[test]
    fn mention_detection() {
        assert!(mentions("alice: hi", "alice"));
        assert!(mentions("hi @alice!", "alice"));
        assert!(mentions("ALICE", "Alice"));
        assert!(mentions("hey, Alice.", "alice"));
        assert!(!mentions("malice", "alice"));
        assert!(!mentions("alice_bob", "alice"));
        assert!(!mentions("alice-bob and alices", "alice"));
        assert!(mentions("malice and alice", "alice"));
        assert!(!mentions("anything", ""));
        assert!(mentions("ça va, élodie?", "Élodie"));
        assert!(!mentions("", "alice"));
    }

    #[test]
    fn mentions_are_counted_and_flagged() {
        let mut v = view();
        v.open_room(&room("lobby"));
        v.open_room(&room("ops"));
        assert_eq!(v.current_name(), Some(&room("lobby")));
        let p = v.push(&msg("ops", 2, "bob", "alice: look", T), T);
        assert_eq!(
            p,
            Pushed {
                room: Some(room("ops")),
                mention: true
            }
        );
        v.push(&msg("ops", 2, "bob", "and this", T), T);
        // Our own message never mentions us.
        let p = v.push(&msg("lobby", 1, "alice", "alice here", T), T);
        assert!(!p.mention);
        let ops = &v.rooms[1];
        assert_eq!((ops.unread, ops.mentions), (2, 1));
        assert!(matches!(
            ops.lines[0].kind,
            LineKind::Message { mention: true, .. }
        ));
        // Messages in the current room are not counted.
        let lobby = &v.rooms[0];
        assert_eq!((lobby.unread, lobby.mentions), (0, 0));
    }

    #[test]
    fn read_marker_after_switch_away_and_back() {
        let mut v = view();
        v.open_room(&room("lobby"));
        v.open_room(&room("ops"));
        v.push(&msg("ops", 2, "bob", "seen", T), T);
        assert!(v.switch_to(&room("ops")));
        assert!(v.switch_to(&room("lobby")));
        assert_eq!(v.rooms[1].read_marker, None);
        // An event does not set the marker; a message does.
        v.push(
            &Shown::MemberJoined {
                room: room("ops"),
                seq: 2,
                member: fp(3),
                nick: "carol".into(),
            },
            T,
        );
        v.push(&msg("ops", 2, "bob", "new 1", T), T);
        v.push(&msg("ops", 2, "bob", "new 2", T), T);
        assert_eq!(v.rooms[1].read_marker, Some(2));
        assert_eq!(v.rooms[1].unread, 2);
        assert!(v.switch_to(&room("ops")));
        let ops = v.current().unwrap();
        assert_eq!((ops.read_marker, ops.unread, ops.mentions), (Some(2), 0, 0));
        // Leaving again clears it.
        v.switch_to(&room("lobby"));
        assert_eq!(v.rooms[1].read_marker, None);
        assert!(!v.switch_to(&room("nowhere")));
    }

    #[test]
    fn own_message_pending_then_sent_once() {
        let mut v = view();
        v.open_room(&room("ops"));
        v.own_pending(&room("ops"), "hello", false, T);
        v.own_pending(&room("ops"), "hello", false, T + 1);
        v.push(&msg("ops", 2, "bob", "meanwhile", T + 5), T + 5);
        assert_eq!(
            marks(&v.rooms[0]),
            vec![Some(Mark::Pending), Some(Mark::Pending), None]
        );
        v.push(&msg("ops", 1, "alice", "hello", T + 10), T + 10);
        let ops = &v.rooms[0];
        assert_eq!(ops.lines.len(), 3, "settled, not duplicated");
        // The settled line takes its place in the relay's order.
        assert_eq!(
            marks(ops),
            vec![Some(Mark::Pending), None, Some(Mark::Sent)]
        );
        assert_eq!(ops.lines[2].at_ms, T + 10);
        // With nothing pending (an earlier run), it is added as sent.
        v.push(&msg("ops", 1, "alice", "hello", T + 20), T + 20);
        v.push(&msg("ops", 1, "alice", "old", T + 30), T + 30);
        assert_eq!(
            marks(&v.rooms[0]),
            vec![None, Some(Mark::Sent), Some(Mark::Sent), Some(Mark::Sent)]
        );
        assert_eq!(v.rooms[0].lines.len(), 4);
    }

    #[test]
    fn queue_full_fails_the_newest_pending() {
        let mut v = view();
        v.open_room(&room("ops"));
        v.own_pending(&room("ops"), "one", false, T);
        v.own_pending(&room("ops"), "two", false, T);
        v.push(&Shown::QueueFull { room: room("ops") }, T);
        let ops = &v.rooms[0];
        assert_eq!(marks(ops), vec![Some(Mark::Pending), Some(Mark::Failed)]);
        assert!(matches!(&ops.lines[2].kind, LineKind::Error(t) if t.starts_with("!! error: ")));
        // A line refused because the room's history was rewound fails too.
        v.push(
            &Shown::Notice {
                room: Some(room("ops")),
                notice: hush_room::Notice::NotSentRewound,
            },
            T,
        );
        assert_eq!(marks(&v.rooms[0])[0], Some(Mark::Failed));
    }

    #[test]
    fn fail_pending_fails_every_room() {
        let mut v = view();
        v.open_room(&room("a"));
        v.open_room(&room("b"));
        v.own_pending(&room("a"), "x", false, T);
        v.own_pending(&room("b"), "y", true, T);
        v.push(&msg("b", 1, "alice", "z", T), T);
        v.fail_pending();
        assert_eq!(marks(&v.rooms[0]), vec![Some(Mark::Failed)]);
        assert_eq!(
            marks(&v.rooms[1]),
            vec![Some(Mark::Failed), Some(Mark::Sent)]
        );
        // Pending lines for a room not open are ignored.
        v.own_pending(&room("zz"), "x", false, T);
        assert_eq!(v.rooms.len(), 2);
    }

    #[test]
    fn next_unread_prefers_mentions() {
        let mut v = view();
        for r in ["a", "b", "c", "d"] {
            v.open_room(&room(r));
        }
        assert_eq!(v.next_unread(), None);
        v.push(&msg("b", 2, "bob", "plain", T), T);
        v.push(&msg("d", 2, "bob", "hi alice", T), T);
        assert_eq!(v.next_unread(), Some(room("d")));
        v.switch_to(&room("d"));
        assert_eq!(v.next_unread(), Some(room("b")));
        v.switch_to(&room("b"));
        assert_eq!(v.next_unread(), None);
    }

    #[test]
    fn room_navigation_is_cyclic() {
        let mut v = view();
        assert_eq!(v.next_room(), None);
        for r in ["a", "b", "c"] {
            v.open_room(&room(r));
        }
        v.open_room(&room("b"));
        assert_eq!(v.rooms.len(), 3);
        assert_eq!(v.next_room(), Some(room("b")));
        assert_eq!(v.prev_room(), Some(room("c")));
        assert_eq!(v.room_at(2), Some(room("c")));
        assert_eq!(v.room_at(3), None);
        v.switch_to(&room("c"));
        assert_eq!(v.next_room(), Some(room("a")));
        // Closing the current room moves to the next, or the previous.
        v.switch_to(&room("b"));
        v.close_room(&room("b"));
        assert_eq!(v.current_name(), Some(&room("c")));
        v.close_room(&room("c"));
        assert_eq!(v.current_name(), Some(&room("a")));
        v.close_room(&room("a"));
        assert_eq!(v.current_name(), None);
        // Closing another room keeps the current one.
        for r in ["a", "b", "c"] {
            v.open_room(&room(r));
        }
        v.switch_to(&room("c"));
        v.close_room(&room("a"));
        assert_eq!(v.current_name(), Some(&room("c")));
    }

    #[test]
    fn mentions_use_our_nick_in_that_room() {
        let mut v = view();
        v.open_room(&room("lobby"));
        v.open_room(&room("ops"));
        // Nicknames are per room: alice is "alicia" in #ops.
        v.set_room_info(&room("ops"), "alicia", None);
        v.push(&msg("ops", 2, "bob", "hey alicia", T), T);
        v.push(&msg("ops", 2, "bob", "hey alice", T), T);
        v.push(&msg("lobby", 2, "bob", "hey alice", T), T);
        assert_eq!(v.rooms[1].mentions, 1);
        assert_eq!(v.rooms[1].unread, 2);
        // A /dm room is named by who it is with.
        v.set_room_info(&room("ops"), "alicia", Some("@bob".into()));
        assert_eq!(v.rooms[1].title(), "@bob");
        assert_eq!(v.rooms[0].title(), "#lobby");
    }

    #[test]
    fn scroll_is_clamped() {
        let mut v = view();
        v.scroll(5, 100); // no room: nothing happens
        v.open_room(&room("ops"));
        v.scroll(3, 0);
        assert_eq!(v.current().unwrap().scroll, 0);
        for i in 0..10 {
            v.push(&msg("ops", 2, "bob", &format!("m{i}"), T), T);
        }
        v.scroll(4, 10);
        assert_eq!(v.current().unwrap().scroll, 4);
        v.scroll(isize::MAX, 10);
        assert_eq!(v.current().unwrap().scroll, 10);
        v.scroll(-3, 10);
        assert_eq!(v.current().unwrap().scroll, 7);
        v.scroll(isize::MIN, 10);
        assert_eq!(v.current().unwrap().scroll, 0);
        // Typing jumps back to the bottom.
        v.scroll(2, 10);
        v.own_pending(&room("ops"), "x", false, T);
        assert_eq!(v.current().unwrap().scroll, 0);
    }

    #[test]
    fn rooms_keep_at_most_5000_lines() {
        let mut v = view();
        v.open_room(&room("lobby"));
        v.open_room(&room("ops"));
        v.push(&msg("ops", 2, "bob", "first unseen", T), T);
        assert_eq!(v.rooms[1].read_marker, Some(0));
        for i in 0..MAX_LINES + 10 {
            v.push(&msg("ops", 2, "bob", &format!("m{i}"), T), T);
        }
        let ops = &v.rooms[1];
        assert_eq!(ops.lines.len(), MAX_LINES);
        assert_eq!(ops.read_marker, Some(0));
        assert!(
            matches!(&ops.lines[MAX_LINES - 1].kind, LineKind::Message { text, .. } if text == &format!("m{}", MAX_LINES + 9))
        );
        // A marker on a kept line moves with it.
        v.switch_to(&room("ops"));
        v.switch_to(&room("lobby"));
        v.push(&msg("ops", 2, "bob", "x", T), T);
        assert_eq!(v.rooms[1].read_marker, Some(MAX_LINES - 1));
        v.push(&msg("ops", 2, "bob", "y", T), T);
        assert_eq!(v.rooms[1].read_marker, Some(MAX_LINES - 2));
    }

    #[test]
    fn events_warnings_and_epochs() {
        let mut v = view();
        // Nothing open yet: kept aside, not lost.
        let p = v.push(
            &Shown::Error {
                text: "cannot connect".into(),
            },
            T,
        );
        assert_eq!(p.room, None);
        assert_eq!(v.loose_lines().len(), 1);
        // Joined opens the room and sets its epoch.
        v.push(
            &Shown::Joined {
                room: room("ops"),
                me: fp(1),
                nick: "alice".into(),
                epoch: 3,
            },
            T,
        );
        assert_eq!(v.current_name(), Some(&room("ops")));
        assert_eq!(v.rooms[0].epoch, 3);
        // The first room takes what was said before it opened.
        assert!(v.loose_lines().is_empty());
        assert!(
            matches!(&v.rooms[0].lines[0].kind, LineKind::Error(e) if e.contains("cannot connect"))
        );
        v.push(
            &Shown::Epoch {
                room: room("ops"),
                seq: 4,
                epoch: 4,
                members: vec![],
            },
            T,
        );
        assert_eq!(v.rooms[0].epoch, 4);
        v.open_room(&room("b"));
        v.push(
            &Shown::Warning {
                room: Some(room("b")),
                seq: Some(2),
                from: None,
                warning: Warning::StaleEpoch,
            },
            T + 7,
        );
        let b = &v.rooms[1];
        assert!(b.warned && b.unread == 1 && b.read_marker == Some(0));
        assert!(matches!(&b.lines[0].kind, LineKind::Warning(t) if t.starts_with("!! warning[")));
        assert_eq!(b.lines[0].at_ms, T + 7);
        assert!(!v.rooms[0].warned);
        // A notice without a room goes to the current room.
        let p = v.push(
            &Shown::Notice {
                room: None,
                notice: Notice::Text("reconnecting".into()),
            },
            T,
        );
        assert_eq!(p.room, Some(room("ops")));
        assert!(
            matches!(&v.rooms[0].lines.last().unwrap().kind, LineKind::Event(t) if t == "-- reconnecting")
        );
        v.set_members(
            &room("b"),
            vec![MemberEntry {
                fp: fp(2),
                nick: "bob".into(),
                online: Some(true),
                me: false,
            }],
            9,
        );
        assert_eq!((v.rooms[1].members.len(), v.rooms[1].epoch), (1, 9));
    }

    #[test]
    fn events_for_rooms_not_open() {
        let mut v = view();
        v.open_room(&room("lobby"));
        // A message is never shown under another room: its room opens.
        let p = v.push(&msg("ops", 2, "bob", "hi", T), T);
        assert_eq!(p.room, Some(room("ops")));
        assert_eq!(v.rooms.len(), 2);
        assert_eq!(v.current_name(), Some(&room("lobby")));
        v.close_room(&room("ops"));
        // A notice or warning for a closed room does not reopen it.
        v.push(
            &Shown::Notice {
                room: Some(room("ops")),
                notice: Notice::NoLongerMember,
            },
            T,
        );
        v.push(
            &Shown::Warning {
                room: Some(room("ops")),
                seq: None,
                from: None,
                warning: Warning::StaleEpoch,
            },
            T,
        );
        assert_eq!(v.rooms.len(), 1);
        assert_eq!(v.rooms[0].lines.len(), 2);
        assert!(!v.rooms[0].warned);
        // A warning naming no room flags the current one.
        v.push(
            &Shown::Warning {
                room: None,
                seq: None,
                from: None,
                warning: Warning::StaleEpoch,
            },
            T,
        );
        assert!(v.rooms[0].warned);
    }
}
