//! Draws a [`View`] and the input line with ratatui: the room list on the
//! left, the conversation in the middle, the member pane on the right, a
//! status line, and the input line at the bottom.
//!
//! ```text
//!   View + InputLine ─▶ draw ─▶ layout (panes hidden when narrow)
//!                            ├▶ room list    (counts, current room reversed)
//!                            ├▶ conversation (sanitize ─▶ wrap ─▶ bottom-anchored rows)
//!                            ├▶ member pane  (online first, colour from the fingerprint)
//!                            ├▶ status line  (items dropped by priority when narrow)
//!                            └▶ input        (prompt, ≤ 5 rows, terminal cursor)
//! ```
//!
//! Every string that came from the network (nicks, message text, event
//! and warning lines) passes through [`sanitize`] before it is drawn, one
//! line at a time after splitting on `'\n'`, so no escape sequence or bidi
//! override reaches the terminal. Widths are measured with unicode-width
//! per grapheme (CJK and emoji take two columns). Drawing never panics, at
//! any terminal size: every pane is clipped to the frame.

use ratatui::Frame;
use ratatui::layout::{Position, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use unicode_segmentation::UnicodeSegmentation;
use unicode_width::UnicodeWidthStr;

use super::view::{ConvLine, LineKind, LinkState, Mark, MemberEntry, View, nick_colour};
use crate::display::sanitize;

/// Columns of the room list, its border included.
pub const ROOM_PANE_WIDTH: u16 = 16;
/// Columns of the member pane, its border included.
pub const MEMBER_PANE_WIDTH: u16 = 18;
/// The room list is hidden on terminals narrower than this.
pub const ROOMS_MIN_WIDTH: u16 = 50;
/// The member pane is hidden on terminals narrower than this.
pub const MEMBERS_MIN_WIDTH: u16 = 70;
/// The input line grows to at most this many rows.
pub const INPUT_MAX_ROWS: u16 = 5;

/// What draw needs from the input line (the lead builds it from the input
/// state machine).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InputLine<'a> {
    /// The text typed so far; may contain `'\n'`.
    pub text: &'a str,
    /// The cursor, a byte offset into `text` (clamped to a character
    /// boundary when drawn).
    pub cursor: usize,
    /// Bytes used.
    pub used: usize,
    /// The byte limit (8192).
    pub limit: usize,
    /// `Some(lines)` while asking "send N lines as one message?".
    pub confirming: Option<usize>,
}

/// Dim text: events, separators, short ids.
const DIM: Style = Style::new().add_modifier(Modifier::DIM);
/// Warnings: red and bold, unlike any message.
const WARNING: Style = Style::new().fg(Color::Red).add_modifier(Modifier::BOLD);
/// Errors: red.
const ERROR: Style = Style::new().fg(Color::Red);
/// The verified mark beside the name of a person whose key the user
/// verified (docs/CLIENT.md, "Verified contacts"): a star, apart from the
/// ✓ of our own sent messages. Always after a space, which no nickname
/// holds, so a name cannot draw it.
pub const VERIFIED_MARK: &str = " ★";
/// How the verified mark is drawn: bold, in no nick's colour (white).
const VERIFIED: Style = Style::new().fg(Color::White).add_modifier(Modifier::BOLD);
/// A mention of us: bold black on yellow.
const MENTION: Style = Style::new()
    .fg(Color::Black)
    .bg(Color::Yellow)
    .add_modifier(Modifier::BOLD);
/// An alarm inside the reversed status line: bold white on red.
const ALARM: Style = Style::new()
    .fg(Color::White)
    .bg(Color::Red)
    .add_modifier(Modifier::BOLD)
    .remove_modifier(Modifier::REVERSED);
/// The "new since you were away" separator.
const READ_MARKER: Style = Style::new().fg(Color::Yellow).add_modifier(Modifier::BOLD);

/// Where each pane goes on a terminal of `area`, for an input of `text`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Panes {
    /// The room list, if the terminal is wide enough.
    pub rooms: Option<Rect>,
    /// The member pane, if the terminal is wide enough.
    pub members: Option<Rect>,
    /// The conversation.
    pub conversation: Rect,
    /// The status line.
    pub status: Rect,
    /// The input line (one to [`INPUT_MAX_ROWS`] rows).
    pub input: Rect,
}

impl Panes {
    /// The layout of `area` with an input of `text`.
    #[must_use]
    pub fn for_area(area: Rect, text: &str) -> Self {
        let input_rows = u16::try_from(text.split('\n').count())
            .unwrap_or(INPUT_MAX_ROWS)
            .clamp(1, INPUT_MAX_ROWS)
            .min(area.height);
        let rest = area.height - input_rows;
        let status_rows = rest.min(1);
        let main_rows = rest - status_rows;
        let main = Rect::new(area.x, area.y, area.width, main_rows);
        let status = Rect::new(area.x, area.y + main_rows, area.width, status_rows);
        let input = Rect::new(
            area.x,
            area.y + main_rows + status_rows,
            area.width,
            input_rows,
        );
        let mut conv = main;
        let mut rooms = None;
        let mut members = None;
        if area.width >= ROOMS_MIN_WIDTH {
            rooms = Some(Rect::new(main.x, main.y, ROOM_PANE_WIDTH, main.height));
            conv.x += ROOM_PANE_WIDTH;
            conv.width -= ROOM_PANE_WIDTH;
        }
        if area.width >= MEMBERS_MIN_WIDTH {
            members = Some(Rect::new(
                conv.right().saturating_sub(MEMBER_PANE_WIDTH),
                main.y,
                MEMBER_PANE_WIDTH,
                main.height,
            ));
            conv.width = conv.width.saturating_sub(MEMBER_PANE_WIDTH);
        }
        Self {
            rooms,
            members,
            conversation: conv,
            status,
            input,
        }
    }
}

/// Draws everything. Never panics, for any terminal size.
pub fn draw(frame: &mut Frame, view: &View, input: &InputLine) {
    let area = frame.area();
    if area.is_empty() {
        return;
    }
    let panes = Panes::for_area(area, input.text);
    if let Some(rooms) = panes.rooms {
        draw_rooms(frame, view, rooms);
    }
    if let Some(members) = panes.members {
        draw_members(frame, view, members);
    }
    draw_conversation(frame, view, panes.conversation);
    draw_status(frame, view, input, panes.status);
    draw_input(frame, view, input, panes.input);
}

/// Draws one row of spans at `(x, y)`, clipped to `width` and the frame.
fn put(frame: &mut Frame, x: u16, y: u16, width: u16, line: Line<'static>) {
    frame.render_widget(line, Rect::new(x, y, width, 1));
}

/// Display width of a string, in terminal columns.
fn width_of(s: &str) -> usize {
    s.graphemes(true).map(UnicodeWidthStr::width).sum()
}

/// `s` cut to at most `max` columns, with "…" when cut.
fn fit(s: &str, max: usize) -> String {
    if width_of(s) <= max {
        return s.to_owned();
    }
    let mut out = String::new();
    let mut used = 0;
    for g in s.graphemes(true) {
        let w = UnicodeWidthStr::width(g);
        if used + w + 1 > max {
            break;
        }
        out.push_str(g);
        used += w;
    }
    if max > 0 {
        out.push('…');
    }
    out
}

/// A vertical border column.
fn draw_border(frame: &mut Frame, x: u16, area: Rect) {
    for y in area.y..area.bottom() {
        put(frame, x, y, 1, Line::from(Span::styled("│", DIM)));
    }
}

/// The room list: "1 #lobby", "2 #ops 3 @1"; the current room reversed
/// and bold, rooms with unread bold, the mention count black on yellow.
fn draw_rooms(frame: &mut Frame, view: &View, area: Rect) {
    let text_w = area.width.saturating_sub(1);
    draw_border(frame, area.x + text_w, area);
    let current = view.current_name();
    for (i, (room, y)) in view.rooms.iter().zip(area.y..area.bottom()).enumerate() {
        let prefix = format!("{} ", i + 1);
        let unread = if room.unread > 0 {
            format!(" {}", room.unread)
        } else {
            String::new()
        };
        let mention = if room.mentions > 0 {
            format!("@{}", room.mentions)
        } else {
            String::new()
        };
        let suffix_w = width_of(&unread) + usize::from(!mention.is_empty()) + width_of(&mention);
        let name_max = usize::from(text_w).saturating_sub(width_of(&prefix) + suffix_w);
        let name = fit(&sanitize(&room.title()), name_max);
        let mut base = Style::new();
        if room.unread > 0 {
            base = base.add_modifier(Modifier::BOLD);
        }
        if current == Some(&room.name) {
            base = base.add_modifier(Modifier::REVERSED | Modifier::BOLD);
        }
        let mut spans = vec![Span::raw(prefix), Span::raw(name), Span::raw(unread)];
        if !mention.is_empty() {
            spans.push(Span::raw(" "));
            spans.push(Span::styled(mention, MENTION));
        }
        put(frame, area.x, y, text_w, Line::from(spans).style(base));
    }
}

/// Members sorted for the pane: online, then unknown, then offline; then
/// by nick (case-insensitive), then fingerprint.
fn sorted_members(members: &[MemberEntry]) -> Vec<&MemberEntry> {
    let rank = |m: &MemberEntry| match m.online {
        Some(true) => 0,
        None => 1,
        Some(false) => 2,
    };
    let mut sorted: Vec<&MemberEntry> = members.iter().collect();
    sorted.sort_by(|a, b| {
        rank(a)
            .cmp(&rank(b))
            .then_with(|| a.nick.to_lowercase().cmp(&b.nick.to_lowercase()))
            .then_with(|| a.fp.cmp(&b.fp))
    });
    sorted
}

/// How many members are online, or `None` while none is known yet.
fn online_count(members: &[MemberEntry]) -> Option<usize> {
    if members.iter().all(|m| m.online.is_none()) {
        return None;
    }
    Some(members.iter().filter(|m| m.online == Some(true)).count())
}

/// The member pane: a header "N members, M online" (on two rows when
/// narrow), then one row each, as many as fit ("+K more" last):
/// "● nick shortid" (● online, ○ offline, ? unknown), "(you)" for us, and
/// "● nick ★ shortid" for someone whose key the user verified.
fn draw_members(frame: &mut Frame, view: &View, area: Rect) {
    draw_border(frame, area.x, area);
    let x = area.x + 1;
    let w = area.width.saturating_sub(1);
    let Some(room) = view.current() else {
        return;
    };
    let n = room.members.len();
    let noun = if n == 1 { "member" } else { "members" };
    // One row if it fits, else "N members" over "M online".
    let mut header = vec![format!("{n} {noun}")];
    if let Some(m) = online_count(&room.members) {
        let full = format!("{n} {noun}, {m} online");
        if width_of(&full) <= usize::from(w) {
            header = vec![full];
        } else {
            header.push(format!("{m} online"));
        }
    }
    let bold = Style::new().add_modifier(Modifier::BOLD);
    let header_rows = u16::try_from(header.len()).unwrap_or(1);
    for (text, y) in header.into_iter().zip(area.y..area.bottom()) {
        put(frame, x, y, w, Line::from(Span::styled(text, bold)));
    }
    let rows = usize::from(area.height.saturating_sub(header_rows));
    let first_row = area.y.saturating_add(header_rows);
    let sorted = sorted_members(&room.members);
    let overflow = sorted.len() > rows;
    let shown = if overflow {
        rows.saturating_sub(1)
    } else {
        sorted.len()
    };
    for (m, y) in sorted.iter().take(shown).zip(first_row..area.bottom()) {
        let dot = match m.online {
            Some(true) => Span::styled("●", Style::new().fg(Color::Green)),
            Some(false) => Span::styled("○", DIM),
            None => Span::styled("?", DIM),
        };
        let colour = Style::new().fg(nick_colour(&m.fp));
        let tag = if m.me {
            Span::raw("(you)")
        } else {
            Span::styled(m.fp.short_id(), DIM)
        };
        let mut spans = vec![dot, Span::raw(" "), Span::styled(sanitize(&m.nick), colour)];
        if !m.me && view.is_verified(&m.fp) {
            spans.push(Span::styled(VERIFIED_MARK, VERIFIED));
        }
        spans.push(Span::raw(" "));
        spans.push(tag);
        put(frame, x, y, w, Line::from(spans));
    }
    if overflow && rows > 0 {
        let more = format!("+{} more", sorted.len() - shown);
        let y = first_row + u16::try_from(rows - 1).unwrap_or(0);
        put(frame, x, y, w, Line::from(Span::styled(more, DIM)));
    }
}

/// Lays styled text out in rows of `width` columns, word-wrapped: the
/// first row starts at column 0, every other row at `indent`. Each piece
/// starts a new row (the pieces are the lines of a multi-line text); words
/// longer than a row are broken.
struct Wrapper {
    width: usize,
    indent: usize,
    rows: Vec<Line<'static>>,
    cur: Vec<Span<'static>>,
    col: usize,
    /// The current row was started by wrapping (its leading spaces go).
    wrapped: bool,
}

impl Wrapper {
    fn new(width: usize, indent: usize) -> Self {
        Self {
            width,
            indent: indent.min(width.saturating_sub(1)),
            rows: Vec::new(),
            cur: Vec::new(),
            col: 0,
            wrapped: false,
        }
    }

    /// Columns available on the current row.
    fn avail(&self) -> usize {
        if self.rows.is_empty() {
            self.width
        } else {
            self.width - self.indent
        }
    }

    /// Ends the current row.
    fn end_row(&mut self, wrapped: bool) {
        let mut spans = Vec::with_capacity(self.cur.len() + 1);
        if !self.rows.is_empty() && self.indent > 0 {
            spans.push(Span::raw(" ".repeat(self.indent)));
        }
        spans.append(&mut self.cur);
        self.rows.push(Line::from(spans));
        self.col = 0;
        self.wrapped = wrapped;
    }

    /// Appends a grapheme to the current row.
    fn push(&mut self, g: &str, w: usize, style: Style) {
        match self.cur.last_mut() {
            Some(last) if last.style == style => last.content.to_mut().push_str(g),
            _ => self.cur.push(Span::styled(g.to_owned(), style)),
        }
        self.col += w;
        self.wrapped = false;
    }

    /// Lays out one piece (a line of text, as styled segments).
    fn piece(&mut self, segments: &[(String, Style)]) {
        let atoms: Vec<(&str, usize, Style)> = segments
            .iter()
            .flat_map(|(s, style)| {
                s.graphemes(true)
                    .map(move |g| (g, UnicodeWidthStr::width(g), *style))
            })
            .collect();
        let mut i = 0;
        while let Some(&(g, w, style)) = atoms.get(i) {
            if g == " " {
                if self.col == 0 && self.wrapped {
                    // A space a wrap landed on: drop it.
                } else if self.col + w <= self.avail() {
                    self.push(g, w, style);
                } else {
                    self.end_row(true);
                }
                i += 1;
                continue;
            }
            let end = atoms
                .iter()
                .skip(i)
                .position(|a| a.0 == " ")
                .map_or(atoms.len(), |p| i + p);
            let word = atoms.get(i..end).unwrap_or_default();
            let ww: usize = word.iter().map(|a| a.1).sum();
            if self.col + ww > self.avail() && self.col > 0 && ww <= self.width - self.indent {
                self.end_row(true);
            }
            for &(g, w, style) in word {
                if self.col + w > self.avail() && self.col > 0 {
                    self.end_row(true);
                }
                self.push(g, w, style);
            }
            i = end.max(i + 1);
        }
    }

    /// Lays out pieces, each starting a new row, and returns the rows.
    fn lay_out(mut self, pieces: &[Vec<(String, Style)>]) -> Vec<Line<'static>> {
        if self.width == 0 {
            return Vec::new();
        }
        for (k, piece) in pieces.iter().enumerate() {
            if k > 0 {
                self.end_row(false);
            }
            self.piece(piece);
        }
        self.end_row(false);
        self.rows
    }
}

/// Columns of a line's time, "HH:MM ": continuation rows start at least
/// this far in.
const TIME_WIDTH: usize = 6;

/// How many rows one conversation line takes at `width` columns (for
/// scrolling by rows).
#[must_use]
pub fn line_height(view: &View, line: &ConvLine, width: usize) -> usize {
    line_rows(view, line, width).len()
}

/// How many rows the current room's whole conversation takes at `width`
/// columns, separators included (what a scroll is clamped by).
#[must_use]
pub fn conversation_rows(view: &View, width: usize) -> usize {
    let Some(room) = view.current() else {
        return 0;
    };
    let mut rows = 0;
    for (i, line) in room.lines.iter().enumerate() {
        if room.read_marker == Some(i) {
            rows += 1;
        }
        let prev = i.checked_sub(1).and_then(|p| room.lines.get(p));
        if prev.is_none_or(|p| !view.time().same_day(p.at_ms, line.at_ms)) {
            rows += 1;
        }
        rows += line_height(view, line, width);
    }
    rows
}

/// The rows of one conversation line at `width` columns.
fn line_rows(view: &View, line: &ConvLine, width: usize) -> Vec<Line<'static>> {
    let time = (format!("{} ", view.time().hhmm(line.at_ms)), DIM);
    let (mut pieces, indent) = match &line.kind {
        LineKind::Message {
            from,
            nick,
            text,
            action,
            mine,
            mention,
            same_nick,
        } => {
            let nick_style = Style::new()
                .fg(nick_colour(from))
                .add_modifier(Modifier::BOLD);
            let text_style = if *mention { MENTION } else { Style::new() };
            let mut head = vec![time];
            if *action {
                head.push(("* ".to_owned(), Style::new()));
            }
            head.push((sanitize(nick), nick_style));
            if mine.is_none() && view.is_verified(from) {
                head.push((VERIFIED_MARK.to_owned(), VERIFIED));
            }
            if *same_nick {
                // Two members share the name: the short id tells them
                // apart (a colour can be matched by making keys).
                head.push((format!(" ({})", from.short_id()), nick_style));
                head.push((" [same name]".to_owned(), WARNING));
            }
            head.push((if *action { " " } else { ": " }.to_owned(), Style::new()));
            let head_w: usize = head.iter().map(|(s, _)| width_of(s)).sum();
            // Continuation rows never start at column 0, where only a
            // line's time does: a second line of a message cannot pass
            // for a message of its own ("07:02 bob: ...").
            let indent = if head_w <= width / 2 {
                head_w
            } else {
                TIME_WIDTH
            };
            let mut pieces: Vec<Vec<(String, Style)>> = Vec::new();
            for (k, part) in text.split('\n').enumerate() {
                let part = part.strip_suffix('\r').unwrap_or(part);
                let seg = (sanitize(part), text_style);
                if k == 0 {
                    let mut first = std::mem::take(&mut head);
                    first.push(seg);
                    pieces.push(first);
                } else {
                    pieces.push(vec![seg]);
                }
            }
            let mark = match mine {
                Some(Mark::Pending) => Some((" ⋯", DIM)),
                Some(Mark::Sent) => Some((" ✓", Style::new())),
                Some(Mark::Failed) => Some((" ✗ not sent", ERROR)),
                None => None,
            };
            if let (Some((m, style)), Some(last)) = (mark, pieces.last_mut()) {
                last.push((m.to_owned(), style));
            }
            (pieces, indent)
        }
        LineKind::Event(t) => (vec![vec![time, (sanitize(t), DIM)]], TIME_WIDTH),
        LineKind::Warning(t) => (vec![vec![time, (sanitize(t), WARNING)]], TIME_WIDTH),
        LineKind::Error(t) => (vec![vec![time, (sanitize(t), ERROR)]], TIME_WIDTH),
    };
    // Only a pane too narrow for the time itself loses the indent.
    let indent = if indent < width { indent } else { 0 };
    if pieces.is_empty() {
        pieces.push(Vec::new());
    }
    Wrapper::new(width, indent).lay_out(&pieces)
}

/// A separator row: "──── text ────".
fn separator(text: &str, style: Style) -> Line<'static> {
    Line::from(Span::styled(format!("──── {text} ────"), style))
}

/// The conversation of the current room (or the lines shown before any
/// room was open), bottom-anchored, `scroll` lines back from the newest,
/// with date separators and the read marker.
fn draw_conversation(frame: &mut Frame, view: &View, area: Rect) {
    if area.is_empty() {
        return;
    }
    let (lines, marker, scroll) = match view.current() {
        Some(r) => (r.lines.as_slice(), r.read_marker, r.scroll),
        None => (view.loose_lines(), None, 0),
    };
    let height = usize::from(area.height);
    let width = usize::from(area.width);
    // `scroll` rows are hidden below the pane: gather rows from the newest
    // line back until the pane and those rows are filled.
    let want = height.saturating_add(scroll);
    let mut chunks: Vec<Vec<Line<'static>>> = Vec::new();
    let mut total = 0;
    for i in (0..lines.len()).rev() {
        let Some(line) = lines.get(i) else { continue };
        let mut chunk = Vec::new();
        if marker == Some(i) {
            chunk.push(separator("new since you were away", READ_MARKER));
        }
        let prev = i.checked_sub(1).and_then(|p| lines.get(p));
        if prev.is_none_or(|p| !view.time().same_day(p.at_ms, line.at_ms)) {
            chunk.push(separator(&view.time().date(line.at_ms), DIM));
        }
        chunk.extend(line_rows(view, line, width));
        total += chunk.len();
        chunks.push(chunk);
        if total >= want {
            break;
        }
    }
    let mut rows: Vec<Line<'static>> = chunks.into_iter().rev().flatten().collect();
    // Scrolled back past the oldest row: the oldest rows stay in view.
    let hidden = scroll.min(rows.len().saturating_sub(height));
    rows.truncate(rows.len() - hidden);
    let skip = rows.len().saturating_sub(height);
    let top = area.bottom() - u16::try_from(rows.len() - skip).unwrap_or(area.height);
    for (row, y) in rows.into_iter().skip(skip).zip(top..area.bottom()) {
        put(frame, area.x, y, area.width, row);
    }
}

/// The status line, reversed: relay, key pinned now, link state, #room,
/// epoch, online, the impostor and warnings flags, unsent, scrolled back, then the note
/// (or the confirmation question); "used/limit" at the right once the input
/// uses more than 3/4 of its limit. When narrow, the least important items
/// go first; the warnings flag and the note go last.
fn draw_status(frame: &mut Frame, view: &View, input: &InputLine, area: Rect) {
    if area.is_empty() {
        return;
    }
    let base = Style::new().add_modifier(Modifier::REVERSED);
    // (priority: lower is kept longer, spans)
    let mut items: Vec<(u8, Vec<Span<'static>>)> = Vec::new();
    let st = &view.status;
    items.push((6, vec![Span::raw(sanitize(&st.relay))]));
    if st.pinned_now {
        items.push((5, vec![Span::raw("key pinned now")]));
    }
    let link = match st.link {
        LinkState::Connecting => "connecting…",
        LinkState::Connected => "connected",
        LinkState::Reconnecting => "reconnecting…",
    };
    items.push((2, vec![Span::raw(link)]));
    if let Some(room) = view.current() {
        let bold = Style::new().add_modifier(Modifier::BOLD);
        items.push((3, vec![Span::styled(sanitize(&room.title()), bold)]));
        items.push((5, vec![Span::raw(format!("epoch {}", room.epoch))]));
        if !room.members.is_empty() {
            let n = room.members.len();
            let text = match online_count(&room.members) {
                Some(m) => format!("{m}/{n} online"),
                None => format!("{n} members"),
            };
            items.push((4, vec![Span::raw(text)]));
        }
        if room.impostor {
            items.push((1, vec![Span::styled("⚠ impostor", ALARM)]));
        }
        if room.warned {
            items.push((1, vec![Span::styled("⚠ warnings", ALARM)]));
        }
        if room.scroll > 0 {
            // Never dropped: new messages arrive out of sight meanwhile.
            items.push((1, vec![Span::raw("scrolled back (PageDown)")]));
        }
    }
    if st.unsent > 0 {
        items.push((3, vec![Span::raw(format!("{} unsent", st.unsent))]));
    }
    if let Some(t) = &st.transfer {
        items.push((2, vec![Span::raw(sanitize(t))]));
    }
    if let Some(n) = input.confirming {
        let q = format!("send {n} lines as one message? Enter or y sends, Esc keeps editing");
        items.push((
            1,
            vec![Span::styled(q, Style::new().add_modifier(Modifier::BOLD))],
        ));
    } else if let Some(note) = &st.note {
        items.push((1, vec![Span::raw(sanitize(note))]));
    }

    let counter = (input.used.saturating_mul(4) > input.limit.saturating_mul(3)).then(|| {
        let style = if input.used >= input.limit {
            ALARM
        } else {
            Style::new()
        };
        Span::styled(format!(" {}/{} ", input.used, input.limit), style)
    });
    let counter_w = counter.as_ref().map_or(0, |c| width_of(&c.content));
    let avail = usize::from(area.width).saturating_sub(counter_w);
    const SEP: &str = " │ ";
    let total = |items: &[(u8, Vec<Span<'static>>)]| -> usize {
        let spans: usize = items
            .iter()
            .flat_map(|(_, s)| s.iter())
            .map(|s| width_of(&s.content))
            .sum();
        1 + spans + width_of(SEP) * items.len().saturating_sub(1)
    };
    while total(&items) > avail {
        // Drop the least important item, the last of its rank.
        let Some(worst) = items.iter().map(|(p, _)| *p).max().filter(|&p| p > 1) else {
            break;
        };
        if let Some(pos) = items.iter().rposition(|(p, _)| *p == worst) {
            items.remove(pos);
        }
    }
    let mut spans = vec![Span::raw(" ")];
    for (k, (_, item)) in items.into_iter().enumerate() {
        if k > 0 {
            spans.push(Span::raw(SEP));
        }
        spans.extend(item);
    }
    frame.buffer_mut().set_style(area, base);
    let row = u16::try_from(avail).unwrap_or(area.width);
    put(frame, area.x, area.y, row, Line::from(spans).style(base));
    if let Some(c) = counter {
        let w = u16::try_from(counter_w).unwrap_or(0).min(area.width);
        put(
            frame,
            area.right() - w,
            area.y,
            w,
            Line::from(c).style(base),
        );
    }
}

/// The input line: "#room> " then the text, one row per line of a
/// multi-line buffer (at most [`INPUT_MAX_ROWS`], scrolled to the cursor's
/// row; later rows aligned under the text), and the terminal cursor at the
/// cursor. A row too long for the screen scrolls sideways to keep the
/// cursor visible.
fn draw_input(frame: &mut Frame, view: &View, input: &InputLine, area: Rect) {
    if area.is_empty() {
        return;
    }
    let text = input.text;
    let mut cursor = input.cursor.min(text.len());
    while !text.is_char_boundary(cursor) {
        cursor -= 1;
    }
    let before_cursor = text.get(..cursor).unwrap_or_default();
    let cursor_row = before_cursor.matches('\n').count();
    let row_start = before_cursor.rfind('\n').map_or(0, |p| p + 1);
    let cursor_col = width_of(&sanitize(text.get(row_start..cursor).unwrap_or_default()));

    let prompt = match view.current() {
        Some(r) => format!("{}> ", sanitize(&r.title())),
        None => "> ".to_owned(),
    };
    let width = usize::from(area.width);
    let prompt_w = width_of(&prompt);
    let indent = if prompt_w <= width / 2 { prompt_w } else { 0 };
    let visible = usize::from(area.height);
    let first = (cursor_row + 1).saturating_sub(visible);
    let bold = Style::new().add_modifier(Modifier::BOLD);

    for ((r, row), y) in text
        .split('\n')
        .enumerate()
        .skip(first)
        .zip(area.y..area.bottom())
    {
        let mut spans = Vec::new();
        let start = if r == 0 {
            spans.push(Span::styled(prompt.clone(), bold));
            prompt_w.min(width.saturating_sub(1))
        } else {
            spans.push(Span::raw(" ".repeat(indent)));
            indent
        };
        let shown = sanitize(row);
        let avail = width.saturating_sub(start).max(1);
        let mut skipped = 0;
        let mut rest = shown.as_str();
        if r == cursor_row && cursor_col >= avail {
            let need = cursor_col - avail + 1;
            for (i, g) in shown.grapheme_indices(true) {
                if skipped >= need {
                    rest = shown.get(i..).unwrap_or_default();
                    break;
                }
                skipped += UnicodeWidthStr::width(g);
                rest = "";
            }
        }
        spans.push(Span::raw(rest.to_owned()));
        put(frame, area.x, y, area.width, Line::from(spans));
        if r == cursor_row {
            let col = (start + cursor_col).saturating_sub(skipped);
            let x = area.x + u16::try_from(col).unwrap_or(area.width).min(area.width - 1);
            frame.set_cursor_position(Position::new(x, y));
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::tui::view::tests::{T, fp, msg, room, view};
    use crate::tui::view::{LocalTime, MemberEntry};
    use hush_room::Shown;
    use jiff::tz::{Offset, TimeZone};
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;
    use ratatui::buffer::Buffer;

    const EMPTY: InputLine<'static> = InputLine {
        text: "",
        cursor: 0,
        used: 0,
        limit: 8192,
        confirming: None,
    };

    fn render(v: &View, input: &InputLine, w: u16, h: u16) -> Terminal<TestBackend> {
        let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
        t.draw(|f| draw(f, v, input)).unwrap();
        t
    }

    /// The screen as text rows (a wide character's second cell is " ").
    fn rows(t: &Terminal<TestBackend>) -> Vec<String> {
        let buf: &Buffer = t.backend().buffer();
        (0..buf.area.height)
            .map(|y| {
                (0..buf.area.width)
                    .map(|x| buf.cell((x, y)).map_or(" ", |c| c.symbol()))
                    .collect()
            })
            .collect()
    }

    fn screen(t: &Terminal<TestBackend>) -> String {
        rows(t).join("\n")
    }

    /// The (x, y) of the first occurrence of `needle` on screen.
    fn find(t: &Terminal<TestBackend>, needle: &str) -> Option<(usize, usize)> {
        rows(t).iter().enumerate().find_map(|(y, r)| {
            r.find(needle)
                .map(|b| (r.get(..b).unwrap().chars().count(), y))
        })
    }

    fn style_at(t: &Terminal<TestBackend>, x: usize, y: usize) -> Style {
        let c = t
            .backend()
            .buffer()
            .cell((u16::try_from(x).unwrap(), u16::try_from(y).unwrap()))
            .unwrap();
        c.style()
    }

    fn member(n: u8, nick: &str, online: Option<bool>) -> MemberEntry {
        MemberEntry {
            fp: fp(n),
            nick: nick.into(),
            online,
            me: n == 1,
        }
    }

    /// Two rooms, members, a few lines.
    fn busy() -> View {
        let mut v = view();
        v.open_room(&room("lobby"));
        v.open_room(&room("ops"));
        v.set_members(
            &room("lobby"),
            vec![
                member(1, "alice", Some(true)),
                member(2, "bob", Some(false)),
                member(3, "carol", Some(true)),
            ],
            2,
        );
        v.push(&msg("lobby", 2, "bob", "hello there", T), T);
        v.push(&msg("ops", 3, "carol", "ops talk", T), T);
        v.push(&msg("ops", 3, "carol", "alice: ping", T), T);
        v.push(&msg("ops", 3, "carol", "more", T), T);
        v.status.link = LinkState::Connected;
        v
    }

    #[test]
    fn layout_80x24_has_every_pane() {
        let t = render(&busy(), &EMPTY, 80, 24);
        let s = screen(&t);
        let r = rows(&t);
        assert!(r[0].starts_with("1 #lobby"), "{s}");
        assert!(r[1].starts_with("2 #ops 3 @1"), "{s}");
        assert!(
            r[0].contains("│3 members") && r[1].contains("│2 online"),
            "{s}"
        );
        assert!(s.contains("bob: hello there"), "{s}");
        assert!(r[22].contains("relay.example:40623") && r[22].contains("connected"));
        assert!(r[22].contains("#lobby") && r[22].contains("epoch 2"));
        assert!(r[22].contains("2/3 online"), "{}", r[22]);
        assert!(r[23].starts_with("#lobby> "));
        // Members: online first, then by nick; "(you)" for us.
        let (_, ya) = find(&t, "● alice (you)").unwrap();
        let (_, yc) = find(&t, "● carol").unwrap();
        let (_, yb) = find(&t, "○ bob").unwrap();
        assert!(ya < yc && yc < yb, "{s}");
        assert!(s.contains(&fp(3).short_id()));
        // The status line is reversed.
        assert!(
            style_at(&t, 5, 22)
                .add_modifier
                .contains(Modifier::REVERSED)
        );
        // Bottom-anchored: the newest line sits just above the status line.
        assert!(r[21].contains("hello there"), "{s}");
    }

    #[test]
    fn layout_160x50() {
        let t = render(&busy(), &EMPTY, 160, 50);
        let r = rows(&t);
        assert!(r[0].starts_with("1 #lobby"));
        assert!(r[0].contains("│3 members") && r[1].contains("│2 online"));
        assert!(r[47].contains("bob: hello there"));
        assert!(r[48].contains("relay.example:40623"));
        assert!(r[49].starts_with("#lobby> "));
        // The panes sit at their widths.
        assert_eq!(r[0].chars().nth(15), Some('│'));
        assert_eq!(r[0].chars().nth(160 - 18), Some('│'));
    }

    #[test]
    fn narrow_terminals_hide_panes() {
        let v = busy();
        let t = render(&v, &EMPTY, 60, 20);
        let s = screen(&t);
        assert!(s.contains("1 #lobby"));
        assert!(!s.contains("members,") && !s.contains("(you)"), "{s}");
        let t = render(&v, &EMPTY, 40, 20);
        let s = screen(&t);
        assert!(!s.contains("1 #lobby") && !s.contains("2 #ops"), "{s}");
        assert!(s.contains("bob: hello there"), "{s}");
    }

    #[test]
    fn room_list_counts_and_highlights() {
        let mut v = busy();
        for _ in 0..10 {
            v.push(&msg("ops", 3, "carol", "x", T), T);
        }
        let t = render(&v, &EMPTY, 80, 24);
        let r = rows(&t);
        assert!(r[1].starts_with("2 #ops 13 @1"), "{}", r[1]);
        let (x, y) = find(&t, "@1").unwrap();
        assert_eq!(style_at(&t, x, y).bg, Some(Color::Yellow));
        // The current room is reversed.
        assert!(style_at(&t, 2, 0).add_modifier.contains(Modifier::REVERSED));
        assert!(!style_at(&t, 2, 1).add_modifier.contains(Modifier::REVERSED));
        // Switching clears the counts.
        v.switch_to(&room("ops"));
        let t = render(&v, &EMPTY, 80, 24);
        assert!(rows(&t)[1].starts_with("2 #ops       "), "{}", rows(&t)[1]);
        // A long name is cut, its counts kept.
        let mut v = view();
        v.open_room(&room("a-very-long-room-name"));
        v.open_room(&room("x"));
        v.switch_to(&room("x"));
        v.push(&msg("a-very-long-room-name", 2, "bob", "hi", T), T);
        let t = render(&v, &EMPTY, 80, 24);
        assert!(
            rows(&t)[0].starts_with("1 #a-very-lo… 1│"),
            "{}",
            rows(&t)[0]
        );
    }

    #[test]
    fn read_marker_sits_before_the_first_unseen_line() {
        let mut v = busy();
        v.switch_to(&room("ops"));
        v.switch_to(&room("lobby"));
        v.push(&msg("ops", 3, "carol", "while away 1", T), T);
        v.push(&msg("ops", 3, "carol", "while away 2", T), T);
        v.switch_to(&room("ops"));
        let t = render(&v, &EMPTY, 80, 24);
        let (_, ym) = find(&t, "──── new since you were away ────").unwrap();
        let (_, y1) = find(&t, "while away 1").unwrap();
        let (_, y0) = find(&t, "carol: more").unwrap();
        assert_eq!((y0 + 1, ym + 1), (ym, y1), "{}", screen(&t));
    }

    #[test]
    fn date_separator_between_two_days() {
        let mut v = View::new(
            fp(1),
            "alice".into(),
            "r:1".into(),
            LocalTime::with_zone(TimeZone::fixed(Offset::constant(2))),
        );
        v.open_room(&room("ops"));
        // 21:00Z and 23:00Z on 14 Nov are 23:00 and 01:00 (the 15th) at +2.
        let day = 1_699_920_000_000; // 2023-11-14T00:00:00Z
        v.push(&msg("ops", 2, "bob", "late", day + 21 * 3_600_000), 0);
        v.push(&msg("ops", 2, "bob", "early", day + 23 * 3_600_000), 0);
        let t = render(&v, &EMPTY, 80, 24);
        let s = screen(&t);
        let (_, y14) = find(&t, "──── Tuesday 14 November 2023 ────").unwrap();
        let (_, ylate) = find(&t, "23:00 bob: late").unwrap();
        let (_, y15) = find(&t, "──── Wednesday 15 November 2023 ────").unwrap();
        let (_, yearly) = find(&t, "01:00 bob: early").unwrap();
        assert_eq!((y14 + 1, ylate + 1, y15 + 1), (ylate, y15, yearly), "{s}");
    }

    #[test]
    fn wrapped_lines_are_indented_under_the_text() {
        let mut v = view();
        v.open_room(&room("ops"));
        v.push(
            &msg(
                "ops",
                2,
                "bob",
                "one two three four five six seven eight",
                T,
            ),
            T,
        );
        // 40 wide: no side panes; "22:13 bob: " is 11 columns.
        let t = render(&v, &EMPTY, 30, 10);
        let r = rows(&t);
        let start = r
            .iter()
            .position(|l| l.starts_with("22:13 bob: one"))
            .unwrap();
        assert_eq!(r[start].trim_end(), "22:13 bob: one two three four");
        assert_eq!(r[start + 1].trim_end(), "           five six seven");
        assert_eq!(r[start + 2].trim_end(), "           eight");
        // A word longer than a row is broken.
        let mut v = view();
        v.open_room(&room("ops"));
        v.push(&msg("ops", 2, "bob", &"x".repeat(30), T), T);
        let t = render(&v, &EMPTY, 30, 10);
        let r = rows(&t);
        let start = r
            .iter()
            .position(|l| l.starts_with("22:13 bob: x"))
            .unwrap();
        assert_eq!(r[start], format!("22:13 bob: {}", "x".repeat(19)));
        assert_eq!(
            r[start + 1].trim_end(),
            format!("           {}", "x".repeat(11))
        );
    }

    #[test]
    fn wide_characters_take_two_columns() {
        let mut v = view();
        v.open_room(&room("ops"));
        v.push(&msg("ops", 2, "bob", "日本語日本語日本語日本語", T), T);
        let t = render(&v, &EMPTY, 30, 10);
        let r = rows(&t);
        let start = r.iter().position(|l| l.starts_with("22:13 bob: ")).unwrap();
        // 19 columns left: 9 characters (18 columns) fit on the first row.
        assert_eq!(r[start].trim_end(), "22:13 bob: 日 本 語 日 本 語 日 本 語");
        assert_eq!(r[start + 1].trim_end(), "           日 本 語");
    }

    #[test]
    fn multi_line_message_is_indented_alike() {
        let mut v = view();
        v.open_room(&room("ops"));
        v.push(&msg("ops", 2, "bob", "first\r\nsecond\nthird", T), T);
        let t = render(&v, &EMPTY, 40, 10);
        let r = rows(&t);
        let start = r
            .iter()
            .position(|l| l.starts_with("22:13 bob: first"))
            .unwrap();
        assert_eq!(r[start].trim_end(), "22:13 bob: first");
        assert_eq!(r[start + 1].trim_end(), "           second");
        assert_eq!(r[start + 2].trim_end(), "           third");
    }

    #[test]
    fn hostile_strings_are_neutralised() {
        let mut v = view();
        v.open_room(&room("ops"));
        v.set_members(
            &room("ops"),
            vec![member(2, "ev\x1b[2Jil\u{202e}", Some(true))],
            1,
        );
        v.push(
            &msg("ops", 2, "ev\x1b[2Jil\u{202e}", "a\x1b[2Jb\u{202e}c\x07", T),
            T,
        );
        v.status.note = Some("note\x1b]0;x\x07".into());
        let t = render(&v, &EMPTY, 100, 20);
        let s = screen(&t);
        assert!(s.contains("ev^[[2Jil\\u{202e}: a^[[2Jb\\u{202e}c^G"), "{s}");
        assert!(s.contains("● ev^[[2Jil\\u"), "{s}");
        assert!(s.contains("note^[]0;x^G"), "{s}");
        for c in t.backend().buffer().content() {
            assert!(
                !c.symbol()
                    .chars()
                    .any(|ch| ch.is_control() || ch == '\u{202e}'),
                "{:?}",
                c.symbol()
            );
        }
    }

    #[test]
    fn own_message_pending_then_sent_is_shown_once() {
        let mut v = view();
        v.open_room(&room("ops"));
        v.own_pending(&room("ops"), "hello world", false, T);
        let s = screen(&render(&v, &EMPTY, 80, 24));
        assert!(s.contains("22:13 alice: hello world ⋯"), "{s}");
        v.push(&msg("ops", 1, "alice", "hello world", T + 60_000), T);
        let t = render(&v, &EMPTY, 80, 24);
        let s = screen(&t);
        assert!(s.contains("22:14 alice: hello world ✓"), "{s}");
        assert_eq!(s.matches("hello world").count(), 1, "{s}");
        assert!(!s.contains('⋯'));
    }

    #[test]
    fn failed_marks_are_drawn_red() {
        let mut v = view();
        v.open_room(&room("ops"));
        v.own_pending(&room("ops"), "queued", false, T);
        v.own_pending(&room("ops"), "later", true, T);
        v.push(&Shown::QueueFull { room: room("ops") }, T);
        let t = render(&v, &EMPTY, 80, 24);
        let s = screen(&t);
        assert!(s.contains("* alice later ✗ not sent"), "{s}");
        assert!(s.contains("alice: queued ⋯"), "{s}");
        let (x, y) = find(&t, "✗ not sent").unwrap();
        assert_eq!(style_at(&t, x, y).fg, Some(Color::Red));
        assert!(s.contains("!! error: "), "{s}");
        v.fail_pending();
        let s = screen(&render(&v, &EMPTY, 80, 24));
        assert!(s.contains("alice: queued ✗ not sent"), "{s}");
    }

    #[test]
    fn a_verified_person_is_starred_in_the_members_and_by_their_messages() {
        let mut v = busy();
        v.set_verified([fp(1), fp(2)].into_iter().collect());
        v.push(&msg("lobby", 3, "carol", "not verified", T), T);
        v.push(
            &Shown::Warning {
                room: Some(room("lobby")),
                seq: Some(4),
                from: Some(hush_room::Peer {
                    fingerprint: fp(9),
                    nick: "bob".into(),
                }),
                warning: hush_room::Warning::Impostor {
                    nick: "bob".into(),
                    verified: hush_room::Peer {
                        fingerprint: fp(2),
                        nick: "bob".into(),
                    },
                },
            },
            T,
        );
        let t = render(&v, &EMPTY, 120, 24);
        let s = screen(&t);
        assert!(s.contains("bob ★: hello there"), "{s}");
        assert!(s.contains("carol: not verified"), "{s}");
        assert!(s.contains(&format!("○ bob ★ {}", fp(2).short_id())), "{s}");
        assert!(s.contains(&format!("● carol {}", fp(3).short_id())), "{s}");
        assert!(!s.contains("alice ★"), "never ourselves: {s}");
        // The star is not the ✓ of our own sent lines, nor a nick's colour.
        let (x, y) = find(&t, "★: hello").unwrap();
        assert_eq!(style_at(&t, x, y).fg, Some(Color::White));
        // The impostor warning is a red line and raises the flag.
        let (x, y) = find(&t, "!! warning[impostor]").unwrap();
        assert_eq!(style_at(&t, x, y).fg, Some(Color::Red));
        assert!(s.contains("⚠ warnings"), "{s}");
        let (x, y) = find(&t, "⚠ impostor").unwrap();
        assert_eq!((y, style_at(&t, x, y).bg), (22, Some(Color::Red)));
    }

    #[test]
    fn mentions_same_nick_events_and_warnings_look_different() {
        let mut v = view();
        v.open_room(&room("ops"));
        v.push(&msg("ops", 2, "bob", "hey alice", T), T);
        let mut twin = msg("ops", 3, "bob", "i am bob", T);
        if let Shown::Message { same_nick, .. } = &mut twin {
            same_nick.push(fp(2));
        }
        v.push(&twin, T);
        v.push(
            &Shown::MemberLeft {
                room: room("ops"),
                seq: 3,
                member: fp(4),
                nick: "dave".into(),
            },
            T,
        );
        v.push(
            &Shown::Warning {
                room: Some(room("ops")),
                seq: None,
                from: None,
                warning: hush_room::Warning::StaleEpoch,
            },
            T,
        );
        let t = render(&v, &EMPTY, 120, 24);
        let s = screen(&t);
        let (x, y) = find(&t, "hey alice").unwrap();
        let st = style_at(&t, x, y);
        assert_eq!((st.fg, st.bg), (Some(Color::Black), Some(Color::Yellow)));
        assert!(st.add_modifier.contains(Modifier::BOLD));
        // A shared name comes with the sender's short id.
        assert!(
            s.contains(&format!("bob ({}) [same name]: i am bob", fp(3).short_id())),
            "{s}"
        );
        let (x, y) = find(&t, "-- dave").unwrap();
        assert!(style_at(&t, x, y).add_modifier.contains(Modifier::DIM));
        let (x, y) = find(&t, "!! warning[").unwrap();
        let st = style_at(&t, x, y);
        assert_eq!(st.fg, Some(Color::Red));
        assert!(st.add_modifier.contains(Modifier::BOLD));
        // The nick is drawn in its fingerprint's colour.
        let (x, y) = find(&t, "bob: hey").unwrap();
        assert_eq!(style_at(&t, x, y).fg, Some(nick_colour(&fp(2))));
        // The integrity flag on the status line.
        let (x, y) = find(&t, "⚠ warnings").unwrap();
        assert_eq!((y, style_at(&t, x, y).bg), (22, Some(Color::Red)));
    }

    #[test]
    fn status_line_items_and_truncation() {
        let mut v = busy();
        v.status.pinned_now = true;
        v.status.unsent = 3;
        v.status.note = Some("too long".into());
        let t = render(&v, &EMPTY, 160, 10);
        let r = rows(&t);
        for item in [
            "key pinned now",
            "connected",
            "#lobby",
            "3 unsent",
            "too long",
        ] {
            assert!(r[8].contains(item), "{item}: {}", r[8]);
        }
        // Narrow: the least important go, the note stays.
        let t = render(&v, &EMPTY, 40, 10);
        let r = rows(&t);
        assert!(r[8].contains("too long"), "{}", r[8]);
        assert!(!r[8].contains("relay.example"), "{}", r[8]);
        // Confirmation replaces the note.
        let input = InputLine {
            text: "a\nb",
            cursor: 3,
            used: 3,
            limit: 8192,
            confirming: Some(2),
        };
        let t = render(&v, &input, 120, 10);
        let s = screen(&t);
        assert!(
            s.contains("send 2 lines as one message? Enter or y sends, Esc keeps editing"),
            "{s}"
        );
        assert!(!s.contains("too long"));
    }

    #[test]
    fn byte_counter_past_three_quarters() {
        let v = busy();
        let text = "a".repeat(6144);
        let mut input = InputLine {
            text: &text,
            cursor: text.len(),
            used: 6144,
            limit: 8192,
            confirming: None,
        };
        assert!(!screen(&render(&v, &input, 80, 24)).contains("6144/8192"));
        input.used = 6145;
        let t = render(&v, &input, 80, 24);
        let r = rows(&t);
        assert!(r[22].trim_end().ends_with("6145/8192"), "{}", r[22]);
        let (x, y) = find(&t, "6145/8192").unwrap();
        assert_ne!(style_at(&t, x, y).bg, Some(Color::Red));
        input.used = 8192;
        let t = render(&v, &input, 80, 24);
        let (x, y) = find(&t, "8192/8192").unwrap();
        assert_eq!(style_at(&t, x, y).bg, Some(Color::Red));
    }

    #[test]
    fn input_grows_and_places_the_cursor() {
        let v = busy();
        let input = InputLine {
            text: "héllo",
            cursor: 3, // after "hé"
            used: 6,
            limit: 8192,
            confirming: None,
        };
        let mut t = render(&v, &input, 80, 24);
        t.backend_mut().assert_cursor_position((8 + 2, 23));
        // Multi-line: grows to 3 rows, text aligned under the prompt.
        let text = "one\n日本\nthree";
        let input = InputLine {
            text,
            cursor: text.find("本").unwrap(),
            used: text.len(),
            limit: 8192,
            confirming: None,
        };
        let mut t = render(&v, &input, 80, 24);
        let r = rows(&t);
        assert!(r[21].starts_with("#lobby> one"));
        assert!(r[22].starts_with("        日 本"));
        assert!(r[23].starts_with("        three"));
        assert!(r[20].contains("connected"), "status moved up: {}", r[20]);
        t.backend_mut().assert_cursor_position((8 + 2, 22));
        // At most 5 rows, scrolled to the cursor's row.
        let text = "l0\nl1\nl2\nl3\nl4\nl5\nl6";
        let input = InputLine {
            text,
            cursor: text.len(),
            used: text.len(),
            limit: 8192,
            confirming: None,
        };
        let mut t = render(&v, &input, 80, 24);
        let r = rows(&t);
        assert!(r[19].starts_with("        l2"), "{}", r[19]);
        assert!(r[23].starts_with("        l6"), "{}", r[23]);
        t.backend_mut().assert_cursor_position((10, 23));
        // A long row scrolls sideways to keep the cursor on screen.
        let long = "x".repeat(200);
        let input = InputLine {
            text: &long,
            cursor: 200,
            used: 200,
            limit: 8192,
            confirming: None,
        };
        let mut t = render(&v, &input, 80, 24);
        t.backend_mut().assert_cursor_position((79, 23));
        // No room: a bare prompt.
        let mut t = render(&view(), &EMPTY, 80, 24);
        assert!(rows(&t)[23].starts_with("> "));
        t.backend_mut().assert_cursor_position((2, 23));
    }

    #[test]
    fn a_message_taller_than_the_pane_can_be_read_from_its_start() {
        let mut v = view();
        v.open_room(&room("ops"));
        let words: Vec<String> = (0..400).map(|i| format!("w{i:04}")).collect();
        v.push(
            &msg(
                "ops",
                2,
                "bob",
                &format!("START {} END", words.join(" ")),
                T,
            ),
            T,
        );
        v.push(&msg("ops", 2, "bob", "after long", T), T);
        let width = usize::from(
            Panes::for_area(Rect::new(0, 0, 80, 24), "")
                .conversation
                .width,
        );
        let total = conversation_rows(&v, width);
        assert!(total > 40, "the message wraps to many rows: {total}");
        // Scrolling by rows reaches every row: at the top, START shows.
        v.scroll(isize::MAX, total - 22);
        let s = screen(&render(&v, &EMPTY, 80, 24));
        assert!(s.contains("START"), "{s}");
        assert!(!s.contains("after long"), "{s}");
    }

    #[test]
    fn a_second_line_never_starts_at_the_left_edge() {
        // An impersonator's message whose second line fakes another
        // message: continuation rows are indented even when the name part
        // is wide (here a shared name with its id and tag).
        let mut v = view();
        v.open_room(&room("ops"));
        let mut fake = msg(
            "ops",
            3,
            "alice",
            "sure\n07:02 bob: I confirm, wire it now",
            T,
        );
        if let Shown::Message { same_nick, .. } = &mut fake {
            same_nick.push(fp(1));
        }
        v.push(&fake, T);
        for width in [40, 60, 80, 160] {
            let t = render(&v, &EMPTY, width, 24);
            let s = screen(&t);
            for row in s.lines() {
                let text = row.split('│').nth(1).unwrap_or(row);
                assert!(!text.starts_with("07:02 bob"), "at {width}: {row:?}\n{s}");
            }
        }
    }

    #[test]
    fn scrolled_back_shows_older_lines() {
        let mut v = view();
        v.open_room(&room("ops"));
        for i in 0..50 {
            v.push(&msg("ops", 2, "bob", &format!("line {i}"), T), T);
        }
        let s = screen(&render(&v, &EMPTY, 80, 24));
        assert!(s.contains("line 49") && !s.contains("line 20 "), "{s}");
        v.scroll(20, usize::MAX);
        let t = render(&v, &EMPTY, 80, 24);
        let r = rows(&t);
        assert!(r[21].contains("line 29"), "{}", r[21]);
        assert!(!screen(&t).contains("line 30"));
        assert!(r[22].contains("scrolled back"), "{}", r[22]);
        // Scrolled past the top: the oldest rows fill the pane, the date
        // first.
        v.scroll(1_000, usize::MAX);
        let t = render(&v, &EMPTY, 80, 24);
        let r = rows(&t);
        assert!(
            r[0].contains("──── Tuesday 14 November 2023 ────"),
            "{}",
            r[0]
        );
        assert!(r[1].contains("line 0"), "{}", r[1]);
        // 50 lines and the date: 51 rows, as the clamp counts them.
        let width = usize::from(
            Panes::for_area(Rect::new(0, 0, 80, 24), "")
                .conversation
                .width,
        );
        assert_eq!(conversation_rows(&v, width), 51);
    }

    #[test]
    fn loose_lines_show_before_any_room() {
        let mut v = view();
        v.push(
            &Shown::Error {
                text: "cannot reach the relay".into(),
            },
            T,
        );
        let s = screen(&render(&v, &EMPTY, 80, 24));
        assert!(s.contains("!! error: cannot reach the relay"), "{s}");
    }

    #[test]
    fn never_panics_at_small_sizes() {
        let mut v = busy();
        v.status.note = Some("a note".into());
        v.status.unsent = 2;
        v.own_pending(&room("lobby"), "日本語 text\nmore", false, T);
        v.rooms[0].warned = true;
        let text = "日本\nb\nc\nd\ne\nf";
        let inputs = [
            EMPTY,
            InputLine {
                text,
                cursor: 1, // inside a character: clamped
                used: 9000,
                limit: 8192,
                confirming: Some(6),
            },
            InputLine {
                text,
                cursor: 999,
                used: 0,
                limit: 0,
                confirming: None,
            },
        ];
        for w in 0..=12 {
            for h in 0..=5 {
                for input in &inputs {
                    let _ = render(&v, input, w, h);
                }
            }
        }
        for (w, h) in [(49, 5), (50, 3), (69, 2), (70, 1), (200, 60)] {
            let _ = render(&v, &inputs[1], w, h);
        }
    }
}
