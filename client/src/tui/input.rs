//! # The input line: what the user is typing, as a pure state machine
//!
//! ```text
//!   crossterm KeyEvent ─▶ key_from_crossterm ─▶ Key ─┐
//!   crossterm Paste(String) ─────────────────────────┼─▶ InputState ─▶ Outcome ─▶ app
//!   current room's member nicks (for Tab) ───────────┘       │
//!                                       text(), cursor(), used()/limit(), confirming() ─▶ draw
//! ```
//!
//! No I/O and no terminal here: the app turns terminal events into [`Key`]s
//! (with [`key_from_crossterm`]) and pastes, feeds them to [`InputState`], and
//! acts on the [`Outcome`]: redraw, send a message, ask "send N lines?", warn
//! that the text is too long, or run one of its own bindings for a key the
//! line does not use ([`Outcome::Unbound`]).
//!
//! Editing follows emacs/readline and moves by grapheme cluster, so an accent
//! written as a combining character or an emoji joined with ZWJ is one step
//! of the cursor and one Backspace. The buffer never holds more than `limit`
//! bytes, and the cursor is always a byte offset on a grapheme boundary.
//!
//! Choices this module makes (where the brief left them open):
//!
//! - **Words** are runs of non-whitespace graphemes (like readline's
//!   `unix-word-rubout` and vim's WORD), for Alt-b/Alt-f, Ctrl-w, Alt-d and
//!   Tab: `http://x.y/z` is one word.
//! - **Home/Ctrl-a, End/Ctrl-e** go to the start/end of the current line of a
//!   multi-line buffer; pressed again there, to the start/end of the buffer.
//! - **Ctrl-u / Ctrl-k** kill to the start/end of the current line; at the
//!   start (end) of a line that has one before (after) it they kill the
//!   newline, joining the lines, as emacs' Ctrl-k does.
//! - **Kill buffer**: one entry; each kill that removes something replaces it
//!   (consecutive kills do not append). Backspace/Delete do not fill it.
//! - **Pastes**: "\r\n" and "\r" become "\n", '\t' becomes 4 spaces (a tab
//!   would be shown as `^I` by the receivers' sanitiser), every other control
//!   character (C0, DEL, C1) is dropped. A paste that would not fit under the
//!   limit is refused whole ([`Outcome::TooLong`], nothing inserted): a
//!   silently truncated paste could be sent without the user noticing.
//! - **`set_text`** applies the same normalisation as a paste and, if the text
//!   is still over the limit, keeps only the graphemes that fit.
//! - **Confirmation**: 'y'/'Y' and Enter confirm, 'n'/'N' and Esc cancel.
//!   Another key closes the question and is handled normally; if that
//!   handling changes nothing the outcome is still [`Outcome::Redraw`], since
//!   the question disappeared.
//! - **History**: walking it never modifies the stored entries; edits made to
//!   a recalled entry are dropped when Up/Down moves on, and Down past the
//!   newest restores the draft. Submitting a recalled entry appends it again
//!   (unless it equals the newest entry).
//! - **Tab** with an empty word before the cursor does nothing (no "cycle all
//!   nicks"); nicks with control characters are never offered. Matches are
//!   sorted case-insensitively (then exactly) and de-duplicated. A completion
//!   that would exceed the limit gives [`Outcome::TooLong`].
//! - A [`Key::Char`] holding a control character is ignored
//!   ([`Outcome::Nothing`]); `Ctrl('j')` is a newline like Alt-Enter and
//!   `Ctrl('m')` is Enter; `Ctrl('h')` is Backspace. Ctrl letters are matched
//!   case-insensitively.
//! - Esc cancels only the confirmation question; otherwise it is
//!   [`Outcome::Unbound`] (it still ends a Tab cycle, as every other key does).
//! - [`key_from_crossterm`]: key repeats count as presses, releases are
//!   ignored; Ctrl+Alt+char, Ctrl+non-letter, BackTab, F-keys and other keys
//!   give `None`; Alt/Ctrl+Backspace map to `Ctrl('w')`, Alt/Ctrl+Delete to
//!   `Alt('d')`, Alt/Ctrl+Left/Right to `Alt('b')`/`Alt('f')`, and
//!   Alt/Ctrl/Shift+Enter to [`Key::AltEnter`]. `Alt(c)` keeps the case of
//!   `c` (Alt-Shift-b is `Alt('B')`, unbound here).

use std::collections::VecDeque;
use std::ops::Range;

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use unicode_segmentation::{GraphemeCursor, UnicodeSegmentation};
use unicode_width::UnicodeWidthStr;

/// More lines than this in one message ask before sending (pastes, Alt-Enter).
pub const PASTE_CONFIRM_LINES: usize = 5;

/// Most entries the history keeps; the oldest are dropped first.
pub const HISTORY_MAX: usize = 500;

/// What a tab stop in a paste becomes.
const TAB_AS_SPACES: &str = "    ";

/// A key press, independent of the terminal library.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    /// A printable character (Shift already applied: Shift+a is `Char('A')`).
    Char(char),
    /// Enter: submit the line.
    Enter,
    /// Alt-Enter (or Shift-Enter, Ctrl-j): insert a newline.
    AltEnter,
    /// Delete the grapheme before the cursor.
    Backspace,
    /// Delete the grapheme at the cursor.
    Delete,
    /// Cursor one grapheme left.
    Left,
    /// Cursor one grapheme right.
    Right,
    /// Start of the line (then of the buffer).
    Home,
    /// End of the line (then of the buffer).
    End,
    /// Line up in a multi-line buffer, else older history.
    Up,
    /// Line down in a multi-line buffer, else newer history.
    Down,
    /// Complete a nick.
    Tab,
    /// Escape: cancels the "send N lines?" question.
    Esc,
    /// Page up (the app scrolls).
    PageUp,
    /// Page down (the app scrolls).
    PageDown,
    /// Control plus a lower-case letter, e.g. `Ctrl('a')`.
    Ctrl(char),
    /// Alt plus a character, e.g. `Alt('1')`, `Alt('b')`.
    Alt(char),
}

/// Converts a crossterm key event; None for releases/repeats-we-ignore and keys we do not use.
///
/// Shift+char arrives as `Char(upper)`. Alt+Enter and Shift+Enter (if the
/// terminal reports it) -> [`Key::AltEnter`]. Ctrl+j -> `AltEnter` too
/// (newline), Ctrl+m -> [`Key::Enter`]. Repeats count as presses. See the
/// module documentation for the other modifier mappings.
#[must_use]
pub fn key_from_crossterm(ev: &KeyEvent) -> Option<Key> {
    if ev.kind == KeyEventKind::Release {
        return None;
    }
    let m = ev.modifiers;
    if m.intersects(KeyModifiers::SUPER | KeyModifiers::HYPER) {
        return None;
    }
    let ctrl = m.contains(KeyModifiers::CONTROL);
    let alt = m.intersects(KeyModifiers::ALT | KeyModifiers::META);
    let shift = m.contains(KeyModifiers::SHIFT);
    let plain = !ctrl && !alt;
    let key = match ev.code {
        KeyCode::Char(c) => return char_key(c, ctrl, alt, shift),
        KeyCode::Enter if plain && !shift => Key::Enter,
        KeyCode::Enter => Key::AltEnter,
        KeyCode::Backspace if plain => Key::Backspace,
        KeyCode::Backspace => Key::Ctrl('w'),
        KeyCode::Delete if plain => Key::Delete,
        KeyCode::Delete => Key::Alt('d'),
        KeyCode::Left if plain => Key::Left,
        KeyCode::Left => Key::Alt('b'),
        KeyCode::Right if plain => Key::Right,
        KeyCode::Right => Key::Alt('f'),
        KeyCode::Home => Key::Home,
        KeyCode::End => Key::End,
        KeyCode::Up => Key::Up,
        KeyCode::Down => Key::Down,
        KeyCode::PageUp => Key::PageUp,
        KeyCode::PageDown => Key::PageDown,
        KeyCode::Tab if plain && !shift => Key::Tab,
        KeyCode::Esc => Key::Esc,
        _ => return None,
    };
    Some(key)
}

/// A character key with its modifiers.
fn char_key(c: char, ctrl: bool, alt: bool, shift: bool) -> Option<Key> {
    let c = if shift { upper(c) } else { c };
    match (ctrl, alt) {
        (true, true) => None,
        (true, false) => match c.to_ascii_lowercase() {
            'j' => Some(Key::AltEnter),
            'm' => Some(Key::Enter),
            l @ 'a'..='z' => Some(Key::Ctrl(l)),
            _ => None,
        },
        (false, true) if !c.is_control() => Some(Key::Alt(c)),
        (false, false) if !c.is_control() => Some(Key::Char(c)),
        (false, _) => None,
    }
}

/// The upper case of `c` when it is a single character, else `c`.
fn upper(c: char) -> char {
    let mut up = c.to_uppercase();
    match (up.next(), up.next()) {
        (Some(u), None) => u,
        _ => c,
    }
}

/// What the app should do after a key or a paste.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing changed.
    Nothing,
    /// The line changed: redraw.
    Redraw,
    /// Send this text (the buffer is cleared and the text added to history).
    /// Exactly what was typed, newlines included; empty/whitespace-only is never submitted
    /// (Enter on an empty buffer gives Nothing).
    Submit(String),
    /// The buffer has more than [`PASTE_CONFIRM_LINES`] lines: Enter asked for confirmation
    /// (the buffer is kept; `confirming()` is now Some(lines)). A second Enter or 'y' submits,
    /// Esc or 'n' cancels the question and keeps the text for editing; any other key cancels the
    /// question and is then handled normally.
    Confirm(usize),
    /// The buffer would exceed the byte limit: the key/paste was refused (nothing inserted;
    /// a paste is refused whole) and the app shows a warning.
    TooLong,
    /// A key the input line does not use (Alt-digit, Ctrl-n, Ctrl-p, PageUp, PageDown,
    /// Ctrl-c, Ctrl-d on an empty line, Ctrl-l, Alt-a, Esc when nothing to cancel, ...):
    /// the app binds it.
    Unbound(Key),
}

/// An open Tab-completion cycle.
#[derive(Debug, Clone)]
struct Completion {
    /// Where the completed word starts.
    start: usize,
    /// Where the inserted completion (with its suffix) ends: the cursor.
    end: usize,
    /// The candidates, sorted.
    matches: Vec<String>,
    /// Which candidate is inserted now.
    index: usize,
}

/// The line being typed, its cursor, history, kill buffer and open questions.
#[derive(Debug, Clone)]
pub struct InputState {
    /// The text; never longer than `limit` bytes.
    buf: String,
    /// Byte offset into `buf`, on a grapheme boundary.
    cursor: usize,
    /// Most bytes `buf` may hold.
    limit: usize,
    /// The last killed text, for Ctrl-y.
    kill: String,
    /// Submitted lines, oldest first.
    history: VecDeque<String>,
    /// The history entry shown now, while walking it.
    browsing: Option<usize>,
    /// The line being typed when the history walk started.
    draft: String,
    /// The Tab cycle, while one is open.
    completion: Option<Completion>,
    /// Lines in the buffer, while "send N lines?" is asked.
    confirm: Option<usize>,
}

impl InputState {
    /// An empty line with a byte limit (the app passes MAX_TEXT_BYTES).
    #[must_use]
    pub fn new(limit: usize) -> Self {
        Self {
            buf: String::new(),
            cursor: 0,
            limit,
            kill: String::new(),
            history: VecDeque::new(),
            browsing: None,
            draft: String::new(),
            completion: None,
            confirm: None,
        }
    }

    /// One key. `nicks`: the names Tab completes (the current room's members).
    pub fn key(&mut self, key: Key, nicks: &[String]) -> Outcome {
        self.repair_cursor();
        if self.confirm.is_some() {
            match key {
                Key::Enter | Key::Char('y' | 'Y') => return self.submit(),
                Key::Esc | Key::Char('n' | 'N') => {
                    self.confirm = None;
                    return Outcome::Redraw;
                }
                _ => {
                    self.confirm = None;
                    return match self.dispatch(key, nicks) {
                        Outcome::Nothing => Outcome::Redraw,
                        other => other,
                    };
                }
            }
        }
        self.dispatch(key, nicks)
    }

    /// A bracketed paste: inserted at the cursor as typed text, newlines kept ("\r\n" and "\r"
    /// become "\n"), never submitted by itself. Control characters other than '\n' and '\t'
    /// are dropped (a paste must not inject escape sequences into a message); '\t' becomes
    /// 4 spaces. A paste that does not fit under the limit is refused whole
    /// ([`Outcome::TooLong`]). A paste closes an open confirmation question and Tab cycle.
    pub fn paste(&mut self, text: &str) -> Outcome {
        self.repair_cursor();
        self.completion = None;
        let was_confirming = self.confirm.take().is_some();
        match self.insert(&normalise(text)) {
            Outcome::Nothing if was_confirming => Outcome::Redraw,
            other => other,
        }
    }

    /// The whole text.
    #[must_use]
    pub fn text(&self) -> &str {
        &self.buf
    }

    /// The cursor as a byte offset into text() (always on a grapheme boundary).
    #[must_use]
    pub fn cursor(&self) -> usize {
        self.cursor
    }

    /// Bytes used, for the "1234/8192" indicator.
    #[must_use]
    pub fn used(&self) -> usize {
        self.buf.len()
    }

    /// The byte limit, for the "1234/8192" indicator.
    #[must_use]
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Some(lines) while the "send N lines?" question is open.
    #[must_use]
    pub fn confirming(&self) -> Option<usize> {
        self.confirm
    }

    /// Number of lines in the buffer (1 for an empty buffer).
    #[must_use]
    pub fn lines(&self) -> usize {
        self.buf.matches('\n').count().saturating_add(1)
    }

    /// Replace the buffer (used to restore a draft when switching rooms); cursor to end.
    ///
    /// The text is normalised like a paste and cut to the graphemes that fit
    /// under the limit. Any history walk, Tab cycle or question is ended.
    pub fn set_text(&mut self, text: &str) {
        let mut text = normalise(text);
        if text.len() > self.limit {
            let fit = text
                .grapheme_indices(true)
                .map(|(at, g)| at.saturating_add(g.len()))
                .take_while(|&end| end <= self.limit)
                .last()
                .unwrap_or(0);
            text.truncate(fit);
        }
        self.buf = text;
        self.cursor = self.buf.len();
        self.reset_transient();
    }

    /// Take the buffer out (draft per room), leaving it empty; history is kept.
    pub fn take_text(&mut self) -> String {
        self.cursor = 0;
        self.reset_transient();
        std::mem::take(&mut self.buf)
    }

    /// Ends the history walk, the Tab cycle and the question.
    fn reset_transient(&mut self) {
        self.browsing = None;
        self.draft.clear();
        self.completion = None;
        self.confirm = None;
    }

    /// Keeps the cursor invariant even if a bug broke it: never panic later.
    fn repair_cursor(&mut self) {
        if self.cursor > self.buf.len() || !self.buf.is_char_boundary(self.cursor) {
            self.cursor = self.buf.len();
        }
    }

    /// One key with no question open.
    fn dispatch(&mut self, key: Key, nicks: &[String]) -> Outcome {
        if key != Key::Tab {
            self.completion = None;
        }
        match key {
            Key::Char(c) if c.is_control() => Outcome::Nothing,
            Key::Char(c) => self.insert(c.encode_utf8(&mut [0; 4])),
            Key::AltEnter => self.insert("\n"),
            Key::Enter => self.enter(),
            Key::Backspace => self.delete_before(),
            Key::Delete => self.delete_at(),
            Key::Left => self.move_to(self.prev_boundary(self.cursor)),
            Key::Right => self.move_to(self.next_boundary(self.cursor)),
            Key::Home => self.move_to(Some(self.home_target())),
            Key::End => self.move_to(Some(self.end_target())),
            Key::Up => self.up(),
            Key::Down => self.down(),
            Key::Tab => self.tab(nicks),
            Key::Ctrl(c) => self.ctrl(c),
            Key::Alt('b') => self.move_to(Some(self.word_left(self.cursor))),
            Key::Alt('f') => self.move_to(Some(self.word_right(self.cursor))),
            Key::Alt('d') => self.kill_range(self.cursor..self.word_right(self.cursor)),
            Key::Esc | Key::PageUp | Key::PageDown | Key::Alt(_) => Outcome::Unbound(key),
        }
    }

    /// A Ctrl-letter.
    fn ctrl(&mut self, c: char) -> Outcome {
        match c.to_ascii_lowercase() {
            'a' => self.move_to(Some(self.home_target())),
            'e' => self.move_to(Some(self.end_target())),
            'b' => self.move_to(self.prev_boundary(self.cursor)),
            'f' => self.move_to(self.next_boundary(self.cursor)),
            'h' => self.delete_before(),
            'd' if !self.buf.is_empty() => self.delete_at(),
            'w' => self.kill_range(self.word_left(self.cursor)..self.cursor),
            'u' => {
                let start = line_start(&self.buf, self.cursor);
                let start = if start == self.cursor {
                    self.cursor.saturating_sub(1)
                } else {
                    start
                };
                self.kill_range(start..self.cursor)
            }
            'k' => {
                let end = line_end(&self.buf, self.cursor);
                let end = if end == self.cursor {
                    self.next_boundary(end).unwrap_or(end)
                } else {
                    end
                };
                self.kill_range(self.cursor..end)
            }
            'y' => {
                let kill = self.kill.clone();
                self.insert(&kill)
            }
            'j' => self.insert("\n"),
            'm' => self.enter(),
            _ => Outcome::Unbound(Key::Ctrl(c)),
        }
    }

    /// Inserts `s` at the cursor if it fits under the limit.
    fn insert(&mut self, s: &str) -> Outcome {
        if s.is_empty() {
            return Outcome::Nothing;
        }
        if self.buf.len().saturating_add(s.len()) > self.limit {
            return Outcome::TooLong;
        }
        self.buf.insert_str(self.cursor, s);
        self.cursor = self.cursor.saturating_add(s.len());
        Outcome::Redraw
    }

    /// Enter: submit, or ask first when the message has many lines.
    fn enter(&mut self) -> Outcome {
        if self.buf.trim().is_empty() {
            return Outcome::Nothing;
        }
        let lines = self.lines();
        if lines > PASTE_CONFIRM_LINES {
            self.confirm = Some(lines);
            return Outcome::Confirm(lines);
        }
        self.submit()
    }

    /// Sends the buffer: it goes to the history and the line is cleared.
    fn submit(&mut self) -> Outcome {
        let text = self.take_text();
        if text.trim().is_empty() {
            return Outcome::Nothing;
        }
        if self.history.back() != Some(&text) {
            self.history.push_back(text.clone());
            while self.history.len() > HISTORY_MAX {
                self.history.pop_front();
            }
        }
        Outcome::Submit(text)
    }

    /// Moves the cursor to `to` (if any and different).
    fn move_to(&mut self, to: Option<usize>) -> Outcome {
        match to {
            Some(to) if to != self.cursor && to <= self.buf.len() => {
                self.cursor = to;
                Outcome::Redraw
            }
            _ => Outcome::Nothing,
        }
    }

    /// Removes `range` (grapheme boundaries), putting the cursor at its start.
    fn remove(&mut self, range: Range<usize>) -> Option<String> {
        if range.start >= range.end || self.buf.get(range.clone()).is_none() {
            return None;
        }
        self.cursor = range.start;
        Some(self.buf.drain(range).collect())
    }

    /// Removes `range` into the kill buffer.
    fn kill_range(&mut self, range: Range<usize>) -> Outcome {
        match self.remove(range) {
            Some(killed) => {
                self.kill = killed;
                Outcome::Redraw
            }
            None => Outcome::Nothing,
        }
    }

    /// Backspace.
    fn delete_before(&mut self) -> Outcome {
        match self.prev_boundary(self.cursor) {
            Some(start) if self.remove(start..self.cursor).is_some() => Outcome::Redraw,
            _ => Outcome::Nothing,
        }
    }

    /// Delete.
    fn delete_at(&mut self) -> Outcome {
        match self.next_boundary(self.cursor) {
            Some(end) if self.remove(self.cursor..end).is_some() => Outcome::Redraw,
            _ => Outcome::Nothing,
        }
    }

    /// The grapheme boundary before `at`.
    fn prev_boundary(&self, at: usize) -> Option<usize> {
        GraphemeCursor::new(at, self.buf.len(), true)
            .prev_boundary(&self.buf, 0)
            .ok()
            .flatten()
    }

    /// The grapheme boundary after `at`.
    fn next_boundary(&self, at: usize) -> Option<usize> {
        GraphemeCursor::new(at, self.buf.len(), true)
            .next_boundary(&self.buf, 0)
            .ok()
            .flatten()
    }

    /// Whether the grapheme in `range` is whitespace.
    fn is_space(&self, range: Range<usize>) -> bool {
        self.buf
            .get(range)
            .is_some_and(|g| g.chars().all(char::is_whitespace))
    }

    /// Start of the word before `at`: back over whitespace, then over the word.
    fn word_left(&self, at: usize) -> usize {
        let mut pos = at;
        for want_space in [true, false] {
            while let Some(prev) = self.prev_boundary(pos) {
                if self.is_space(prev..pos) != want_space {
                    break;
                }
                pos = prev;
            }
        }
        pos
    }

    /// End of the word after `at`: on over whitespace, then over the word.
    fn word_right(&self, at: usize) -> usize {
        let mut pos = at;
        for want_space in [true, false] {
            while let Some(next) = self.next_boundary(pos) {
                if self.is_space(pos..next) != want_space {
                    break;
                }
                pos = next;
            }
        }
        pos
    }

    /// Home: start of the line, or of the buffer when already there.
    fn home_target(&self) -> usize {
        let start = line_start(&self.buf, self.cursor);
        if start == self.cursor { 0 } else { start }
    }

    /// End: end of the line, or of the buffer when already there.
    fn end_target(&self) -> usize {
        let end = line_end(&self.buf, self.cursor);
        if end == self.cursor {
            self.buf.len()
        } else {
            end
        }
    }

    /// Up: a line up, or older history from the first line.
    fn up(&mut self) -> Outcome {
        let start = line_start(&self.buf, self.cursor);
        if let Some(above_end) = start.checked_sub(1) {
            let above = line_start(&self.buf, above_end)..above_end;
            return self.move_to(Some(self.same_column(start, above)));
        }
        let index = match self.browsing {
            None => match self.history.len().checked_sub(1) {
                Some(newest) => {
                    self.draft = std::mem::take(&mut self.buf);
                    newest
                }
                None => return Outcome::Nothing,
            },
            Some(i) => match i.checked_sub(1) {
                Some(older) => older,
                None => return Outcome::Nothing,
            },
        };
        self.show_history(index)
    }

    /// Down: a line down, or newer history (then the draft) from the last line.
    fn down(&mut self) -> Outcome {
        let end = line_end(&self.buf, self.cursor);
        if end < self.buf.len() {
            let below_start = end.saturating_add(1);
            let below = below_start..line_end(&self.buf, below_start);
            let start = line_start(&self.buf, self.cursor);
            return self.move_to(Some(self.same_column(start, below)));
        }
        let Some(i) = self.browsing else {
            return Outcome::Nothing;
        };
        let newer = i.saturating_add(1);
        if newer < self.history.len() {
            return self.show_history(newer);
        }
        self.browsing = None;
        self.buf = std::mem::take(&mut self.draft);
        self.cursor = self.buf.len();
        Outcome::Redraw
    }

    /// Shows history entry `index`, cursor at its end.
    fn show_history(&mut self, index: usize) -> Outcome {
        let Some(entry) = self.history.get(index) else {
            return Outcome::Nothing;
        };
        self.buf.clone_from(entry);
        self.cursor = self.buf.len();
        self.browsing = Some(index);
        Outcome::Redraw
    }

    /// The offset in `line` at the display column the cursor has on the line
    /// starting at `start` (or the line's end if it is shorter).
    fn same_column(&self, start: usize, line: Range<usize>) -> usize {
        let column = self
            .buf
            .get(start..self.cursor)
            .map_or(0, UnicodeWidthStr::width);
        let Some(text) = self.buf.get(line.clone()) else {
            return self.cursor;
        };
        let mut width = 0usize;
        for (at, g) in text.grapheme_indices(true) {
            width = width.saturating_add(g.width());
            if width > column {
                return line.start.saturating_add(at);
            }
        }
        line.end
    }

    /// Tab: start or continue a completion cycle.
    fn tab(&mut self, nicks: &[String]) -> Outcome {
        if let Some(mut cycle) = self.completion.take() {
            if cycle.end != self.cursor || cycle.matches.is_empty() {
                return Outcome::Nothing;
            }
            let next = cycle.index.saturating_add(1) % cycle.matches.len();
            let Some(nick) = cycle.matches.get(next) else {
                return Outcome::Nothing;
            };
            let text = completion_text(nick, cycle.start);
            let outcome = self.replace(cycle.start..cycle.end, &text);
            if outcome != Outcome::TooLong {
                cycle.index = next;
                cycle.end = self.cursor;
            }
            self.completion = Some(cycle);
            return outcome;
        }
        let start = self.word_start(self.cursor);
        let Some(prefix) = self.buf.get(start..self.cursor).map(str::to_lowercase) else {
            return Outcome::Nothing;
        };
        if prefix.is_empty() {
            return Outcome::Nothing;
        }
        let mut matches: Vec<String> = nicks
            .iter()
            .filter(|n| !n.is_empty() && !n.chars().any(char::is_control))
            .filter(|n| n.to_lowercase().starts_with(&prefix))
            .cloned()
            .collect();
        matches.sort_by(|a, b| a.to_lowercase().cmp(&b.to_lowercase()).then(a.cmp(b)));
        matches.dedup();
        let Some(first) = matches.first() else {
            return Outcome::Nothing;
        };
        let text = completion_text(first, start);
        let outcome = self.replace(start..self.cursor, &text);
        if outcome != Outcome::TooLong {
            self.completion = Some(Completion {
                start,
                end: self.cursor,
                matches,
                index: 0,
            });
        }
        outcome
    }

    /// Start of the run of non-whitespace graphemes ending at `at`.
    fn word_start(&self, at: usize) -> usize {
        let mut pos = at;
        while let Some(prev) = self.prev_boundary(pos) {
            if self.is_space(prev..pos) {
                break;
            }
            pos = prev;
        }
        pos
    }

    /// Replaces `range` with `text` if the result fits; cursor after `text`.
    fn replace(&mut self, range: Range<usize>, text: &str) -> Outcome {
        let Some(old) = self.buf.get(range.clone()) else {
            return Outcome::Nothing;
        };
        if old == text {
            return Outcome::Nothing;
        }
        let len = self.buf.len().saturating_sub(old.len());
        if len.saturating_add(text.len()) > self.limit {
            return Outcome::TooLong;
        }
        self.buf.replace_range(range.clone(), text);
        self.cursor = range.start.saturating_add(text.len());
        Outcome::Redraw
    }
}

/// A completed nick with its suffix: ": " at the start of the buffer, else " ".
fn completion_text(nick: &str, start: usize) -> String {
    let suffix = if start == 0 { ": " } else { " " };
    format!("{nick}{suffix}")
}

/// Start of the line holding byte `at`.
fn line_start(s: &str, at: usize) -> usize {
    s.get(..at)
        .and_then(|before| before.rfind('\n'))
        .map_or(0, |nl| nl.saturating_add(1))
}

/// End of the line holding byte `at` (the offset of its '\n', or the end).
fn line_end(s: &str, at: usize) -> usize {
    s.get(at..)
        .and_then(|after| after.find('\n'))
        .map_or(s.len(), |nl| at.saturating_add(nl))
}

/// Pasted text as typed text: "\r\n" and "\r" to "\n", '\t' to spaces, other
/// control characters dropped.
fn normalise(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\r' => {
                chars.next_if_eq(&'\n');
                out.push('\n');
            }
            '\n' => out.push('\n'),
            '\t' => out.push_str(TAB_AS_SPACES),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use ratatui::crossterm::event::KeyEventState;

    const E_ACUTE: &str = "e\u{301}"; // e + combining acute: one grapheme
    const FAMILY: &str = "\u{1f468}\u{200d}\u{1f469}\u{200d}\u{1f467}"; // ZWJ emoji

    fn st() -> InputState {
        InputState::new(8192)
    }

    fn no_nicks() -> Vec<String> {
        Vec::new()
    }

    fn press(s: &mut InputState, key: Key) -> Outcome {
        s.key(key, &no_nicks())
    }

    fn typed(s: &mut InputState, text: &str) {
        for c in text.chars() {
            let out = if c == '\n' {
                press(s, Key::AltEnter)
            } else {
                press(s, Key::Char(c))
            };
            assert_eq!(out, Outcome::Redraw, "typing {c:?}");
        }
    }

    fn with(text: &str) -> InputState {
        let mut s = st();
        s.set_text(text);
        s
    }

    fn nicks(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| (*n).to_string()).collect()
    }

    fn ev(code: KeyCode, mods: KeyModifiers) -> KeyEvent {
        KeyEvent::new(code, mods)
    }

    #[test]
    fn typing_inserts_at_cursor() {
        let mut s = st();
        typed(&mut s, "hllo");
        assert_eq!(s.cursor(), 4);
        for _ in 0..3 {
            press(&mut s, Key::Left);
        }
        typed(&mut s, "e");
        assert_eq!(s.text(), "hello");
        assert_eq!(s.cursor(), 2);
        assert_eq!(s.used(), 5);
        assert_eq!(s.limit(), 8192);
        assert_eq!(s.lines(), 1);
    }

    #[test]
    fn combining_accent_is_one_step_and_one_backspace() {
        let mut s = with(&format!("a{E_ACUTE}b"));
        press(&mut s, Key::Left); // before b
        assert_eq!(s.cursor(), 1 + E_ACUTE.len());
        press(&mut s, Key::Left); // before é, not inside it
        assert_eq!(s.cursor(), 1);
        press(&mut s, Key::Right);
        assert_eq!(s.cursor(), 1 + E_ACUTE.len());
        assert_eq!(press(&mut s, Key::Backspace), Outcome::Redraw);
        assert_eq!(s.text(), "ab");
        assert_eq!(s.cursor(), 1);
    }

    #[test]
    fn zwj_emoji_is_one_grapheme() {
        let mut s = with(&format!("x{FAMILY}y"));
        press(&mut s, Key::Home);
        press(&mut s, Key::Right);
        press(&mut s, Key::Right);
        assert_eq!(s.cursor(), 1 + FAMILY.len());
        press(&mut s, Key::Left);
        assert_eq!(s.cursor(), 1);
        assert_eq!(press(&mut s, Key::Delete), Outcome::Redraw);
        assert_eq!(s.text(), "xy");
        press(&mut s, Key::Ctrl('e'));
        assert!(s.text().is_char_boundary(s.cursor()));
    }

    #[test]
    fn motions_at_the_edges_change_nothing() {
        let mut s = st();
        for key in [
            Key::Left,
            Key::Right,
            Key::Backspace,
            Key::Delete,
            Key::Home,
            Key::End,
            Key::Up,
            Key::Down,
            Key::Alt('b'),
            Key::Alt('f'),
            Key::Ctrl('w'),
            Key::Ctrl('k'),
            Key::Ctrl('u'),
            Key::Ctrl('y'),
            Key::Enter,
        ] {
            assert_eq!(press(&mut s, key), Outcome::Nothing, "{key:?}");
        }
        let mut s = with("ab");
        assert_eq!(press(&mut s, Key::Right), Outcome::Nothing);
        assert_eq!(press(&mut s, Key::Ctrl('d')), Outcome::Nothing);
    }

    #[test]
    fn word_motions() {
        let mut s = with("foo  bar.baz qux");
        press(&mut s, Key::Alt('b'));
        assert_eq!(s.cursor(), 13);
        press(&mut s, Key::Alt('b'));
        assert_eq!(s.cursor(), 5);
        press(&mut s, Key::Alt('b'));
        assert_eq!(s.cursor(), 0);
        press(&mut s, Key::Alt('f'));
        assert_eq!(s.cursor(), 3);
        press(&mut s, Key::Alt('f'));
        assert_eq!(s.cursor(), 12);
        press(&mut s, Key::Ctrl('f'));
        press(&mut s, Key::Ctrl('b'));
        assert_eq!(s.cursor(), 12);
    }

    #[test]
    fn kills_and_yank() {
        let mut s = with("hello big world");
        assert_eq!(press(&mut s, Key::Ctrl('w')), Outcome::Redraw);
        assert_eq!(s.text(), "hello big ");
        press(&mut s, Key::Ctrl('a'));
        assert_eq!(press(&mut s, Key::Alt('d')), Outcome::Redraw);
        assert_eq!(s.text(), " big ");
        assert_eq!(press(&mut s, Key::Ctrl('y')), Outcome::Redraw);
        assert_eq!(s.text(), "hello big ");
        assert_eq!(s.cursor(), 5);
        press(&mut s, Key::Ctrl('k'));
        assert_eq!(s.text(), "hello");
        press(&mut s, Key::Ctrl('u'));
        assert_eq!(s.text(), "");
        press(&mut s, Key::Ctrl('y'));
        assert_eq!(s.text(), "hello");
        press(&mut s, Key::Ctrl('y'));
        assert_eq!(s.text(), "hellohello");
    }

    #[test]
    fn ctrl_u_and_k_work_on_the_current_line_then_join() {
        let mut s = with("one\ntwo\nthree");
        press(&mut s, Key::Up); // cursor at end of "two"
        assert_eq!(s.cursor(), 7);
        press(&mut s, Key::Ctrl('u'));
        assert_eq!(s.text(), "one\n\nthree");
        press(&mut s, Key::Ctrl('k')); // at end of an empty line: kills the newline
        assert_eq!(s.text(), "one\nthree");
        press(&mut s, Key::Ctrl('u')); // at start of "three": joins with "one"
        assert_eq!(s.text(), "onethree");
        assert_eq!(s.cursor(), 3);
    }

    #[test]
    fn backspace_delete_and_ctrl_d() {
        let mut s = with("abc");
        assert_eq!(press(&mut s, Key::Ctrl('h')), Outcome::Redraw);
        assert_eq!(s.text(), "ab");
        press(&mut s, Key::Home);
        assert_eq!(press(&mut s, Key::Ctrl('d')), Outcome::Redraw);
        assert_eq!(s.text(), "b");
        press(&mut s, Key::Delete);
        assert_eq!(s.text(), "");
        assert_eq!(
            press(&mut s, Key::Ctrl('d')),
            Outcome::Unbound(Key::Ctrl('d'))
        );
    }

    #[test]
    fn home_and_end_go_to_line_then_buffer() {
        let mut s = with("ab\ncd\nef");
        press(&mut s, Key::Up);
        press(&mut s, Key::Left); // between c and d
        assert_eq!(s.cursor(), 4);
        press(&mut s, Key::Home);
        assert_eq!(s.cursor(), 3);
        press(&mut s, Key::Home);
        assert_eq!(s.cursor(), 0);
        assert_eq!(press(&mut s, Key::Home), Outcome::Nothing);
        press(&mut s, Key::End);
        assert_eq!(s.cursor(), 2);
        press(&mut s, Key::Ctrl('e'));
        assert_eq!(s.cursor(), 8);
    }

    #[test]
    fn up_and_down_move_between_lines_keeping_the_column() {
        let mut s = with("hello\nab\nworld!");
        press(&mut s, Key::Left); // column 5 of "world!"
        assert_eq!(s.cursor(), 14);
        assert_eq!(press(&mut s, Key::Up), Outcome::Redraw);
        assert_eq!(s.cursor(), 8); // end of "ab" (shorter)
        press(&mut s, Key::Up);
        assert_eq!(s.cursor(), 2); // column 2 of "hello"
        // On the first line with no history: nothing.
        assert_eq!(press(&mut s, Key::Up), Outcome::Nothing);
        press(&mut s, Key::Down);
        assert_eq!(s.cursor(), 8);
        press(&mut s, Key::Down);
        assert_eq!(s.cursor(), 11); // column 2 of "world!"
        assert_eq!(press(&mut s, Key::Down), Outcome::Nothing);
    }

    #[test]
    fn vertical_moves_use_display_width() {
        // "日本" is 4 columns wide; the cursor after it is at column 4.
        let mut s = with("abcdef\n日本");
        press(&mut s, Key::Up);
        assert_eq!(s.cursor(), 4);
        press(&mut s, Key::Right); // column 5
        press(&mut s, Key::Down);
        assert_eq!(s.text().get(s.cursor()..), Some("")); // end of the short line
        press(&mut s, Key::Up);
        press(&mut s, Key::Home);
        press(&mut s, Key::Right); // column 1: inside 日 on the next line
        press(&mut s, Key::Down);
        assert_eq!(s.cursor(), 7); // before 日, on a boundary
    }

    #[test]
    fn history_walk_restores_the_draft() {
        let mut s = st();
        for line in ["first", "second", "third"] {
            s.set_text(line);
            assert_eq!(press(&mut s, Key::Enter), Outcome::Submit(line.to_string()));
        }
        typed(&mut s, "draft");
        press(&mut s, Key::Up);
        assert_eq!(s.text(), "third");
        assert_eq!(s.cursor(), 5);
        press(&mut s, Key::Up);
        press(&mut s, Key::Up);
        assert_eq!(s.text(), "first");
        assert_eq!(press(&mut s, Key::Up), Outcome::Nothing);
        press(&mut s, Key::Down);
        assert_eq!(s.text(), "second");
        typed(&mut s, "!"); // edits to a recalled entry are not stored
        press(&mut s, Key::Down);
        assert_eq!(s.text(), "third");
        press(&mut s, Key::Down);
        assert_eq!(s.text(), "draft");
        assert_eq!(press(&mut s, Key::Down), Outcome::Nothing);
        press(&mut s, Key::Up);
        press(&mut s, Key::Up);
        assert_eq!(s.text(), "second");
    }

    #[test]
    fn history_skips_consecutive_duplicates_and_is_bounded() {
        let mut s = st();
        for line in ["a", "a", "b", "a"] {
            s.set_text(line);
            press(&mut s, Key::Enter);
        }
        assert_eq!(s.history, VecDeque::from(nicks(&["a", "b", "a"])));
        for i in 0..600 {
            s.set_text(&format!("line {i}"));
            press(&mut s, Key::Enter);
        }
        assert_eq!(s.history.len(), HISTORY_MAX);
        assert_eq!(s.history.front().map(String::as_str), Some("line 100"));
    }

    #[test]
    fn multi_line_history_entry_walks_lines_before_older_entries() {
        let mut s = st();
        s.set_text("old");
        press(&mut s, Key::Enter);
        s.set_text("l1\nl2");
        press(&mut s, Key::Enter);
        press(&mut s, Key::Up);
        assert_eq!(s.text(), "l1\nl2");
        press(&mut s, Key::Up); // moves to line 1 of the entry
        assert_eq!(s.text(), "l1\nl2");
        assert_eq!(s.cursor(), 2);
        press(&mut s, Key::Up);
        assert_eq!(s.text(), "old");
    }

    #[test]
    fn enter_submits_exactly_and_never_whitespace() {
        let mut s = st();
        typed(&mut s, "  ");
        assert_eq!(press(&mut s, Key::Enter), Outcome::Nothing);
        assert_eq!(s.text(), "  ");
        typed(&mut s, "hi\nthere ");
        assert_eq!(
            press(&mut s, Key::Enter),
            Outcome::Submit("  hi\nthere ".to_string())
        );
        assert_eq!(s.text(), "");
        assert_eq!(s.cursor(), 0);
        assert_eq!(press(&mut s, Key::Ctrl('m')), Outcome::Nothing);
    }

    #[test]
    fn paste_normalises_newlines_and_drops_controls() {
        let mut s = st();
        let out = s.paste("a\r\nb\rc\nd\te\u{1b}[31mf\u{7}\u{7f}\u{9b}g\0");
        assert_eq!(out, Outcome::Redraw);
        assert_eq!(s.text(), "a\nb\nc\nd    e[31mfg");
        assert_eq!(s.lines(), 4);
        assert_eq!(s.cursor(), s.text().len());
        assert_eq!(s.paste("\u{1b}\u{7}"), Outcome::Nothing);
    }

    #[test]
    fn paste_inserts_at_cursor_and_is_never_submitted() {
        let mut s = with("ad");
        press(&mut s, Key::Left);
        assert_eq!(s.paste("b\nc"), Outcome::Redraw);
        assert_eq!(s.text(), "ab\ncd");
        assert_eq!(s.cursor(), 4);
        assert_eq!(s.paste("\n"), Outcome::Redraw);
        assert_eq!(s.text(), "ab\nc\nd");
    }

    #[test]
    fn big_paste_is_kept_whole_under_the_limit() {
        // Review bug B4: pastes must not be cut at 4095 bytes.
        let mut s = st();
        let text: String = (0..90).map(|i| format!("{i:049}\n")).collect();
        assert_eq!(text.len(), 4500);
        assert_eq!(s.paste(&text), Outcome::Redraw);
        assert_eq!(s.text(), text);
        assert_eq!(s.used(), 4500);
    }

    #[test]
    fn paste_over_the_limit_is_refused_whole() {
        let mut s = with("keep");
        let big = "x".repeat(10 * 1024);
        assert_eq!(s.paste(&big), Outcome::TooLong);
        assert_eq!(s.text(), "keep");
        assert_eq!(s.cursor(), 4);
        // Exactly up to the limit fits.
        let fits = "y".repeat(8192 - 4);
        assert_eq!(s.paste(&fits), Outcome::Redraw);
        assert_eq!(s.used(), 8192);
    }

    #[test]
    fn typing_at_the_limit_is_too_long() {
        let mut s = InputState::new(4);
        typed(&mut s, "abc");
        assert_eq!(press(&mut s, Key::Char('é')), Outcome::TooLong); // 2 bytes
        assert_eq!(s.text(), "abc");
        assert_eq!(press(&mut s, Key::Char('d')), Outcome::Redraw);
        assert_eq!(press(&mut s, Key::Char('e')), Outcome::TooLong);
        assert_eq!(press(&mut s, Key::AltEnter), Outcome::TooLong);
        assert_eq!(s.text(), "abcd");
        press(&mut s, Key::Ctrl('w'));
        press(&mut s, Key::Ctrl('y'));
        assert_eq!(press(&mut s, Key::Ctrl('y')), Outcome::TooLong);
        assert_eq!(s.used(), 4);
    }

    #[test]
    fn set_text_cuts_at_a_grapheme_boundary_and_take_text_empties() {
        let mut s = InputState::new(4);
        s.set_text(&format!("ab{E_ACUTE}"));
        assert_eq!(s.text(), "ab"); // é (3 bytes) does not fit whole
        assert_eq!(s.cursor(), 2);
        s.set_text("a\r\nb");
        assert_eq!(s.text(), "a\nb");
        assert_eq!(s.take_text(), "a\nb");
        assert_eq!(s.text(), "");
        assert_eq!(s.cursor(), 0);
        assert_eq!(s.lines(), 1);
    }

    #[test]
    fn many_lines_ask_then_enter_submits() {
        let mut s = st();
        s.paste("1\n2\n3\n4\n5\n6");
        assert_eq!(press(&mut s, Key::Enter), Outcome::Confirm(6));
        assert_eq!(s.confirming(), Some(6));
        assert_eq!(s.text(), "1\n2\n3\n4\n5\n6");
        assert_eq!(
            press(&mut s, Key::Enter),
            Outcome::Submit("1\n2\n3\n4\n5\n6".to_string())
        );
        assert_eq!(s.confirming(), None);
        assert_eq!(s.text(), "");
    }

    #[test]
    fn five_lines_do_not_ask() {
        let mut s = with("1\n2\n3\n4\n5");
        assert!(matches!(press(&mut s, Key::Enter), Outcome::Submit(_)));
    }

    #[test]
    fn confirm_y_submits_and_esc_or_n_cancels() {
        let text = "a\nb\nc\nd\ne\nf\ng";
        let mut s = with(text);
        press(&mut s, Key::Enter);
        assert_eq!(press(&mut s, Key::Esc), Outcome::Redraw);
        assert_eq!(s.confirming(), None);
        assert_eq!(s.text(), text);
        // Esc with no question is the app's.
        assert_eq!(press(&mut s, Key::Esc), Outcome::Unbound(Key::Esc));
        press(&mut s, Key::Enter);
        assert_eq!(press(&mut s, Key::Char('n')), Outcome::Redraw);
        assert_eq!(s.text(), text);
        assert_eq!(press(&mut s, Key::Enter), Outcome::Confirm(7));
        assert_eq!(
            press(&mut s, Key::Char('y')),
            Outcome::Submit(text.to_string())
        );
    }

    #[test]
    fn other_key_while_confirming_cancels_and_is_handled() {
        let mut s = with("a\nb\nc\nd\ne\nf");
        press(&mut s, Key::Enter);
        assert_eq!(press(&mut s, Key::Char('x')), Outcome::Redraw);
        assert_eq!(s.confirming(), None);
        assert!(s.text().ends_with("fx"));
        press(&mut s, Key::Enter);
        assert_eq!(press(&mut s, Key::PageUp), Outcome::Unbound(Key::PageUp));
        assert_eq!(s.confirming(), None);
        press(&mut s, Key::Enter);
        // A key that changes nothing still redraws: the question went away.
        assert_eq!(press(&mut s, Key::Right), Outcome::Redraw);
        press(&mut s, Key::Enter);
        assert_eq!(s.paste("z"), Outcome::Redraw);
        assert_eq!(s.confirming(), None);
    }

    #[test]
    fn tab_completes_at_start_with_colon() {
        let mut s = st();
        let members = nicks(&["Bob", "alice", "carol"]);
        typed(&mut s, "AL");
        assert_eq!(s.key(Key::Tab, &members), Outcome::Redraw);
        assert_eq!(s.text(), "alice: ");
        assert_eq!(s.cursor(), 7);
    }

    #[test]
    fn tab_completes_mid_line_with_space_and_cycles_sorted() {
        let mut s = with("hi b");
        let members = nicks(&["bob", "Barbara", "alice", "bea", "bob"]);
        s.key(Key::Tab, &members);
        assert_eq!(s.text(), "hi Barbara ");
        s.key(Key::Tab, &members);
        assert_eq!(s.text(), "hi bea ");
        s.key(Key::Tab, &members);
        assert_eq!(s.text(), "hi bob ");
        s.key(Key::Tab, &members); // wraps; "bob" twice counted once
        assert_eq!(s.text(), "hi Barbara ");
        // Another key ends the cycle; the next Tab starts again from the word.
        s.key(Key::Char('x'), &members);
        assert_eq!(s.text(), "hi Barbara x");
        assert_eq!(s.key(Key::Tab, &members), Outcome::Nothing);
    }

    #[test]
    fn tab_without_a_match_or_word_does_nothing() {
        let members = nicks(&["alice", "evil\u{1b}[2J"]);
        let mut s = with("zed");
        assert_eq!(s.key(Key::Tab, &members), Outcome::Nothing);
        let mut s = with("hi ");
        assert_eq!(s.key(Key::Tab, &members), Outcome::Nothing);
        let mut s = st();
        assert_eq!(s.key(Key::Tab, &members), Outcome::Nothing);
        let mut s = with("ev");
        assert_eq!(s.key(Key::Tab, &members), Outcome::Nothing);
        assert_eq!(s.text(), "ev");
    }

    #[test]
    fn tab_single_match_repeated_changes_nothing() {
        let members = nicks(&["alice"]);
        let mut s = with("a");
        assert_eq!(s.key(Key::Tab, &members), Outcome::Redraw);
        assert_eq!(s.key(Key::Tab, &members), Outcome::Nothing);
        assert_eq!(s.text(), "alice: ");
    }

    #[test]
    fn tab_completion_respects_the_limit() {
        let members = nicks(&["alexandra"]);
        let mut s = InputState::new(6);
        s.set_text("al");
        assert_eq!(s.key(Key::Tab, &members), Outcome::TooLong);
        assert_eq!(s.text(), "al");
    }

    #[test]
    fn unbound_keys_go_to_the_app() {
        let mut s = with("text");
        for key in [
            Key::Alt('1'),
            Key::Alt('a'),
            Key::Alt('B'),
            Key::Ctrl('n'),
            Key::Ctrl('p'),
            Key::Ctrl('c'),
            Key::Ctrl('l'),
            Key::Ctrl('t'),
            Key::PageUp,
            Key::PageDown,
            Key::Esc,
        ] {
            assert_eq!(press(&mut s, key), Outcome::Unbound(key), "{key:?}");
        }
        assert_eq!(s.text(), "text");
        assert_eq!(press(&mut s, Key::Char('\u{1b}')), Outcome::Nothing);
        assert_eq!(s.text(), "text");
    }

    #[test]
    fn crossterm_alt_and_shift_enter_are_newlines() {
        assert_eq!(
            key_from_crossterm(&ev(KeyCode::Enter, KeyModifiers::NONE)),
            Some(Key::Enter)
        );
        for mods in [
            KeyModifiers::ALT,
            KeyModifiers::SHIFT,
            KeyModifiers::CONTROL,
        ] {
            assert_eq!(
                key_from_crossterm(&ev(KeyCode::Enter, mods)),
                Some(Key::AltEnter)
            );
        }
        assert_eq!(
            key_from_crossterm(&ev(KeyCode::Char('j'), KeyModifiers::CONTROL)),
            Some(Key::AltEnter)
        );
        assert_eq!(
            key_from_crossterm(&ev(KeyCode::Char('m'), KeyModifiers::CONTROL)),
            Some(Key::Enter)
        );
    }

    #[test]
    fn crossterm_ctrl_alt_and_shift_letters() {
        assert_eq!(
            key_from_crossterm(&ev(KeyCode::Char('a'), KeyModifiers::CONTROL)),
            Some(Key::Ctrl('a'))
        );
        assert_eq!(
            key_from_crossterm(&ev(
                KeyCode::Char('W'),
                KeyModifiers::CONTROL | KeyModifiers::SHIFT
            )),
            Some(Key::Ctrl('w'))
        );
        assert_eq!(
            key_from_crossterm(&ev(KeyCode::Char('1'), KeyModifiers::ALT)),
            Some(Key::Alt('1'))
        );
        assert_eq!(
            key_from_crossterm(&ev(KeyCode::Char('b'), KeyModifiers::ALT)),
            Some(Key::Alt('b'))
        );
        assert_eq!(
            key_from_crossterm(&ev(KeyCode::Char('A'), KeyModifiers::SHIFT)),
            Some(Key::Char('A'))
        );
        // Some protocols report the base key with Shift.
        assert_eq!(
            key_from_crossterm(&ev(KeyCode::Char('a'), KeyModifiers::SHIFT)),
            Some(Key::Char('A'))
        );
        assert_eq!(
            key_from_crossterm(&ev(KeyCode::Char('é'), KeyModifiers::NONE)),
            Some(Key::Char('é'))
        );
        assert_eq!(
            key_from_crossterm(&ev(KeyCode::Char('4'), KeyModifiers::CONTROL)),
            None
        );
        assert_eq!(
            key_from_crossterm(&ev(
                KeyCode::Char('x'),
                KeyModifiers::CONTROL | KeyModifiers::ALT
            )),
            None
        );
    }

    #[test]
    fn crossterm_special_keys() {
        let cases = [
            (KeyCode::Backspace, KeyModifiers::NONE, Some(Key::Backspace)),
            (KeyCode::Backspace, KeyModifiers::ALT, Some(Key::Ctrl('w'))),
            (KeyCode::Delete, KeyModifiers::NONE, Some(Key::Delete)),
            (KeyCode::Delete, KeyModifiers::CONTROL, Some(Key::Alt('d'))),
            (KeyCode::Left, KeyModifiers::NONE, Some(Key::Left)),
            (KeyCode::Left, KeyModifiers::CONTROL, Some(Key::Alt('b'))),
            (KeyCode::Right, KeyModifiers::ALT, Some(Key::Alt('f'))),
            (KeyCode::Home, KeyModifiers::NONE, Some(Key::Home)),
            (KeyCode::End, KeyModifiers::NONE, Some(Key::End)),
            (KeyCode::Up, KeyModifiers::NONE, Some(Key::Up)),
            (KeyCode::Down, KeyModifiers::NONE, Some(Key::Down)),
            (KeyCode::PageUp, KeyModifiers::NONE, Some(Key::PageUp)),
            (KeyCode::PageDown, KeyModifiers::NONE, Some(Key::PageDown)),
            (KeyCode::Tab, KeyModifiers::NONE, Some(Key::Tab)),
            (KeyCode::BackTab, KeyModifiers::SHIFT, None),
            (KeyCode::Esc, KeyModifiers::NONE, Some(Key::Esc)),
            (KeyCode::F(1), KeyModifiers::NONE, None),
            (KeyCode::Insert, KeyModifiers::NONE, None),
            (KeyCode::Char('a'), KeyModifiers::SUPER, None),
        ];
        for (code, mods, want) in cases {
            assert_eq!(
                key_from_crossterm(&ev(code, mods)),
                want,
                "{code:?} {mods:?}"
            );
        }
    }

    #[test]
    fn crossterm_release_is_ignored_and_repeat_is_a_press() {
        let release = KeyEvent::new_with_kind_and_state(
            KeyCode::Char('a'),
            KeyModifiers::NONE,
            KeyEventKind::Release,
            KeyEventState::NONE,
        );
        assert_eq!(key_from_crossterm(&release), None);
        let repeat =
            KeyEvent::new_with_kind(KeyCode::Char('a'), KeyModifiers::NONE, KeyEventKind::Repeat);
        assert_eq!(key_from_crossterm(&repeat), Some(Key::Char('a')));
    }

    #[test]
    fn cursor_stays_on_boundaries_through_a_long_key_sequence() {
        // Deterministic walk over every key on a text mixing graphemes and lines.
        let members = nicks(&["ünïcode", "éa"]);
        let keys = [
            Key::Left,
            Key::Up,
            Key::Alt('b'),
            Key::Char('ü'),
            Key::Tab,
            Key::Tab,
            Key::Down,
            Key::Ctrl('k'),
            Key::Ctrl('y'),
            Key::Alt('f'),
            Key::Backspace,
            Key::Home,
            Key::Ctrl('u'),
            Key::End,
            Key::Delete,
            Key::AltEnter,
            Key::Ctrl('w'),
            Key::Right,
            Key::Alt('d'),
            Key::Up,
            Key::Up,
            Key::Enter,
            Key::Char('n'),
        ];
        let mut s = InputState::new(64);
        s.set_text(&format!(
            "{FAMILY} {E_ACUTE}a\n日本 x\u{1f1eb}\u{1f1f7}\nend"
        ));
        for round in 0..40 {
            for (i, key) in keys.iter().enumerate() {
                if (round + i) % 3 == 0 {
                    continue;
                }
                let _ = s.key(*key, &members);
                let text = s.text();
                assert!(s.cursor() <= text.len());
                assert!(text.is_char_boundary(s.cursor()));
                assert!(s.used() <= s.limit());
                let at = s.cursor();
                let on_grapheme =
                    at == text.len() || text.grapheme_indices(true).any(|(g, _)| g == at);
                assert!(on_grapheme, "cursor {at} inside a grapheme of {text:?}");
            }
        }
    }
}
