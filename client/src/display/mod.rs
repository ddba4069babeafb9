//! What the user sees: [`Shown`]s rendered as terminal lines
//! ([`render_line`]) or as one JSON object per line for bots and scripts
//! ([`render_json`]).
//!
//! Everything a peer sends (nicknames, message text) is hostile until shown
//! otherwise. In line mode every such string goes through [`sanitize`], so a
//! message can neither drive the terminal (escape sequences, bells, title
//! changes), nor forge a second line (`\r`, `\n`, U+2028), nor reorder what
//! is shown (bidi overrides). In JSON mode strings are kept exactly as
//! received: JSON string escaping already makes them inert, and bots need
//! the exact text.

use std::fmt::Write as _;

use hush_crypto::Fingerprint;
use hush_proto::RoomName;
use hush_room::Shown;
use serde_json::{Value, json};

mod time;
mod wording;

pub use time::LocalTime;
pub use wording::{
    QUEUE_FULL, closing_text, human_size, notice_text, refusal_text, rejection_text, warning_text,
};

/// Clock skew between a message's claimed send time and its relay receive
/// time above which line mode points it out.
const SKEW_NOTE_MS: u64 = 5 * 60 * 1000;

/// Names an epoch line shows before "and N more": a big room's every
/// admission would otherwise print thousands of names (`--json` and
/// `/members` still list them all).
const EPOCH_LINE_NAMES: usize = 20;

/// Whether `c` is a bidirectional-text control or a line/paragraph separator.
fn is_bidi_or_separator(c: char) -> bool {
    matches!(
        c,
        '\u{202A}'..='\u{202E}'
            | '\u{2066}'..='\u{2069}'
            | '\u{200E}'
            | '\u{200F}'
            | '\u{061C}'
            | '\u{2028}'
            | '\u{2029}'
    )
}

/// Makes a string from the network safe to print on a terminal line.
///
/// Every control character (`char::is_control`: C0 including `\n`, `\r`,
/// `\t` and ESC, DEL, and C1 U+0080..=U+009F) is replaced by a visible
/// escape: ESC becomes `^[`, other C0 characters and DEL use caret notation
/// (`^@`..`^_`, `^?`), C1 characters become `\u{9b}` (lowercase hex).
/// Bidirectional controls (U+202A..=U+202E, U+2066..=U+2069, U+200E,
/// U+200F, U+061C) and the line/paragraph separators U+2028/U+2029 become
/// `\u{202e}`-style escapes. Everything else, ordinary Unicode text and
/// emoji included, passes through unchanged.
///
/// Used by [`render_line`] only: [`render_json`] keeps strings exact.
#[must_use]
pub fn sanitize(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        let code = u32::from(c);
        if c == '\u{7f}' {
            out.push_str("^?");
        } else if code < 0x20 {
            // Caret notation: 0x00 -> '@', 0x1b (ESC) -> '[', 0x1f -> '_'.
            out.push('^');
            out.push(char::from(b'@' + u8::try_from(code).unwrap_or(0)));
        } else if c.is_control() || is_bidi_or_separator(c) {
            let _ = write!(out, "\\u{{{code:x}}}");
        } else {
            out.push(c);
        }
    }
    out
}

/// Days since 1970-01-01 to a (year, month, day) civil date (proleptic
/// Gregorian), after Howard Hinnant's `civil_from_days`.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    // Shift the era start to 0000-03-01 so leap days fall at the end of a year.
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097; // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11], March = 0
    let day = doy - (153 * mp + 2) / 5 + 1; // [1, 31]
    let month = if mp < 10 { mp + 3 } else { mp - 9 }; // [1, 12]
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

/// RFC 3339 form of a Unix time in milliseconds, in UTC with seconds
/// precision, such as `2026-11-24T11:35:07Z`.
#[must_use]
pub fn format_rfc3339(ms_since_epoch: u64) -> String {
    let secs = ms_since_epoch / 1000;
    let (year, month, day) = civil_from_days(secs / 86_400);
    let sod = secs % 86_400;
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        sod / 3600,
        (sod / 60) % 60,
        sod % 60
    )
}

/// What line mode writes after `nick (shortid)` of a person whose key the
/// user verified (docs/CLIENT.md, "Verified contacts"). A nickname can
/// hold neither spaces nor parentheses, so it cannot forge the mark.
pub const VERIFIED_MARK: &str = " [verified]";

/// Tells which keys the user verified (the client's contacts): the mark
/// beside their names, and `"verified"` in `--json`.
pub type IsVerified<'a> = &'a dyn Fn(&Fingerprint) -> bool;

/// No key is verified (for renderings without contacts).
fn nobody(_: &Fingerprint) -> bool {
    false
}

/// [`who`], then [`VERIFIED_MARK`] if `fp` is verified.
fn who_marked(nick: &str, fp: &Fingerprint, verified: IsVerified<'_>) -> String {
    let mut s = who(nick, fp);
    if verified(fp) {
        s.push_str(VERIFIED_MARK);
    }
    s
}

/// `nick (shortid)`, nick sanitized; the short id alone for someone who
/// has not named themselves yet.
fn who(nick: &str, fp: &Fingerprint) -> String {
    let id = fp.short_id();
    if nick == id {
        id
    } else {
        format!("{} ({id})", sanitize(nick))
    }
}

/// The note appended to a message whose claimed send time is far from the
/// relay's receive time, or `None`.
fn skew_note(sent_at_ms: u64, received_at_ms: u64, time: &LocalTime) -> Option<String> {
    if received_at_ms.saturating_sub(sent_at_ms) > SKEW_NOTE_MS {
        let mins = (received_at_ms - sent_at_ms) / 60_000;
        Some(format!(
            " (sent {}, {mins} min earlier)",
            time.hhmm(sent_at_ms)
        ))
    } else if sent_at_ms.saturating_sub(received_at_ms) > SKEW_NOTE_MS {
        let mins = (sent_at_ms - received_at_ms) / 60_000;
        Some(format!(" (claims to be sent {mins} min later)"))
    } else {
        None
    }
}

/// The room a shown event belongs to, if any (line mode prefixes it when
/// several rooms are open).
#[must_use]
pub fn shown_room(ev: &Shown) -> Option<&RoomName> {
    match ev {
        Shown::Joined { room, .. }
        | Shown::Message { room, .. }
        | Shown::MemberJoined { room, .. }
        | Shown::MemberLeft { room, .. }
        | Shown::Epoch { room, .. }
        | Shown::Refused { room, .. }
        | Shown::FileOffered { room, .. }
        | Shown::QueueFull { room, .. } => Some(room),
        Shown::Notice { room, .. } | Shown::Warning { room, .. } => room.as_ref(),
        Shown::Error { .. } => None,
    }
}

/// Renders an event as one terminal line, without a trailing newline.
///
/// Messages look like `[HH:MM] nick (shortid): text`; everything else
/// starts with `-- ` (notices, membership) or `!! ` (warnings, errors) so it
/// cannot be mistaken for a message. Every string that came from the network
/// (and notice, warning and error text, which may quote it) is passed
/// through [`sanitize`].
#[must_use]
pub fn render_line(ev: &Shown) -> String {
    render_line_in(ev, &LocalTime::utc())
}

/// [`render_line`] with times in `time`'s zone (line mode's `--utc` or
/// local time).
#[must_use]
pub fn render_line_in(ev: &Shown, time: &LocalTime) -> String {
    render_line_marked(ev, time, &nobody)
}

/// [`render_line_in`] with [`VERIFIED_MARK`] after each name whose key
/// `verified` says the user verified (messages, file offers, members
/// joining and leaving, epochs).
#[must_use]
pub fn render_line_marked(ev: &Shown, time: &LocalTime, verified: IsVerified<'_>) -> String {
    match ev {
        Shown::Joined {
            room,
            me,
            nick,
            epoch,
        } => {
            let mut line = format!("-- joined #{room} as {}", who(nick, me));
            if *epoch != 0 {
                let _ = write!(line, ", epoch {epoch}");
            }
            line
        }
        Shown::Message {
            from,
            nick,
            text,
            action,
            sent_at_ms,
            received_at_ms,
            same_nick,
            ..
        } => {
            let star = if *action { "* " } else { "" };
            let mut line = format!(
                "[{}] {star}{}",
                time.hhmm(*received_at_ms),
                who_marked(nick, from, verified)
            );
            if !same_nick.is_empty() {
                let ids: Vec<String> = same_nick.iter().map(Fingerprint::short_id).collect();
                let _ = write!(line, " [same name as {}]", ids.join(", "));
            }
            line.push_str(if *action { " " } else { ": " });
            line.push_str(&sanitize(text));
            if let Some(note) = skew_note(*sent_at_ms, *received_at_ms, time) {
                line.push_str(&note);
            }
            line
        }
        Shown::FileOffered {
            from,
            nick,
            offer,
            received_at_ms,
            ..
        } => format!(
            "[{}] {}",
            time.hhmm(*received_at_ms),
            offer_text_marked(from, nick, offer, verified)
        ),
        Shown::MemberJoined {
            room, member, nick, ..
        } => format!("-- {} joined #{room}", who_marked(nick, member, verified)),
        Shown::MemberLeft {
            room, member, nick, ..
        } => format!("-- {} left #{room}", who_marked(nick, member, verified)),
        Shown::Epoch {
            room,
            epoch,
            members,
            ..
        } => {
            let count = members.len();
            let noun = if count == 1 { "member" } else { "members" };
            let mut line = format!("-- #{room} is now at epoch {epoch} with {count} {noun}");
            if !members.is_empty() {
                let list: Vec<String> = members
                    .iter()
                    .take(EPOCH_LINE_NAMES)
                    .map(|(fp, n)| who_marked(n, fp, verified))
                    .collect();
                let _ = write!(line, ": {}", list.join(", "));
                if count > EPOCH_LINE_NAMES {
                    let more = count - EPOCH_LINE_NAMES;
                    let _ = write!(line, " and {more} more (/members lists them)");
                }
            }
            line
        }
        Shown::Notice { room, notice } => {
            format!("-- {}", sanitize(&notice_text(room.as_ref(), notice)))
        }
        Shown::Warning {
            room,
            seq,
            from,
            warning,
        } => format!(
            "!! warning[{}]: {}",
            warning.kind(),
            sanitize(&warning_text(room.as_ref(), *seq, from.as_ref(), warning))
        ),
        Shown::Error { .. } | Shown::Refused { .. } | Shown::QueueFull { .. } => {
            format!("!! error: {}", sanitize(&error_text(ev)))
        }
    }
}

/// What a file offer says, sanitised: `bob (W5uQm1xT) offers the file
/// report.pdf (1.2 MiB): /save 3f2a1b9c saves it`.
#[must_use]
pub fn offer_text(from: &Fingerprint, nick: &str, offer: &hush_proto::e2e::FileOffer) -> String {
    offer_text_marked(from, nick, offer, &nobody)
}

/// [`offer_text`] with [`VERIFIED_MARK`] after a verified sender.
fn offer_text_marked(
    from: &Fingerprint,
    nick: &str,
    offer: &hush_proto::e2e::FileOffer,
    verified: IsVerified<'_>,
) -> String {
    format!(
        "{} offers the file {} ({}): /save {} saves it",
        who_marked(nick, from, verified),
        sanitize(&offer.name),
        human_size(offer.size),
        file_short_id(&offer.id)
    )
}

/// The short id of a file: the first 8 hex digits of its id, as `/save`
/// and `/files` take it.
#[must_use]
pub fn file_short_id(id: &[u8; 16]) -> String {
    id[..4].iter().map(|b| format!("{b:02x}")).collect()
}

/// Lower-case hex of bytes.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The text of an error line.
fn error_text(ev: &Shown) -> String {
    match ev {
        Shown::Refused { reason, .. } => {
            format!("the relay refused a request: {}", rejection_text(*reason))
        }
        Shown::QueueFull { .. } => QUEUE_FULL.to_owned(),
        Shown::Error { text } => text.clone(),
        _ => String::new(),
    }
}

/// A room as a JSON value: its name, or null.
fn room_value(room: Option<&RoomName>) -> Value {
    room.map_or(Value::Null, |r| Value::String(r.as_str().to_owned()))
}

/// Renders an event as one compact JSON object (no trailing newline).
///
/// Every object has `"type"` (`joined`, `message`, `member_joined`,
/// `member_left`, `epoch`, `notice`, `warning`, `error`) and `"room"` (the
/// room name, or null). Fingerprints are in full (`SHA256:...`) form. Strings
/// from the network are kept exactly as received, not [`sanitize`]d: JSON
/// escaping already makes control characters inert.
///
/// - `joined`: `me`, `nick`, `epoch`.
/// - `message`: `seq`, `from`, `nick`, `text`, `sent_at` (RFC 3339),
///   `sent_at_ms`, `received_at` (RFC 3339), `received_at_ms`,
///   `verified` (the sender's key is one the user verified; every
///   message event's signature is verified, or it is not shown),
///   `same_nick` (array of fingerprints, usually empty).
/// - `member_joined` / `member_left`: `seq`, `from` (the member), `nick`,
///   `verified`.
/// - `epoch`: `seq`, `epoch`, `members` (array of `{"fingerprint", "nick",
///   "verified"}`).
/// - `notice`: `text`.
/// - `warning`: `kind`, `text`, `seq` (or null), `from` (or null); an
///   `impostor` warning adds `nick` (the name used), `verified_fingerprint`
///   and `verified_nick` (the verified person's key and name).
/// - `error`: `kind` (`relay_refused`, `queue_full` or `client`), `text`.
#[must_use]
pub fn render_json(ev: &Shown) -> String {
    render_json_marked(ev, &nobody)
}

/// [`render_json`] with `"verified"` true for the keys `verified` says
/// the user verified.
#[must_use]
pub fn render_json_marked(ev: &Shown, verified: IsVerified<'_>) -> String {
    let value = match ev {
        Shown::Joined {
            room,
            me,
            nick,
            epoch,
        } => json!({
            "type": "joined",
            "room": room_value(Some(room)),
            "me": me.to_string(),
            "nick": nick,
            "epoch": epoch,
        }),
        Shown::Message {
            room,
            seq,
            from,
            nick,
            text,
            action,
            sent_at_ms,
            received_at_ms,
            same_nick,
        } => json!({
            "type": "message",
            "room": room_value(Some(room)),
            "seq": seq,
            "from": from.to_string(),
            "nick": nick,
            "text": text,
            "action": action,
            "sent_at": format_rfc3339(*sent_at_ms),
            "sent_at_ms": sent_at_ms,
            "received_at": format_rfc3339(*received_at_ms),
            "received_at_ms": received_at_ms,
            "verified": verified(from),
            "same_nick": same_nick.iter().map(ToString::to_string).collect::<Vec<_>>(),
        }),
        Shown::FileOffered {
            room,
            seq,
            from,
            nick,
            offer,
            received_at_ms,
        } => json!({
            "type": "file_offered",
            "room": room_value(Some(room)),
            "seq": seq,
            "from": from.to_string(),
            "nick": nick,
            "id": hex(&offer.id),
            "short_id": file_short_id(&offer.id),
            "name": offer.name,
            "size": offer.size,
            "media_type": offer.media_type,
            "sha256": hex(&offer.sha256),
            "received_at": format_rfc3339(*received_at_ms),
            "received_at_ms": received_at_ms,
            "verified": verified(from),
        }),
        Shown::MemberJoined {
            room,
            seq,
            member,
            nick,
        } => json!({
            "type": "member_joined",
            "room": room_value(Some(room)),
            "seq": seq,
            "from": member.to_string(),
            "nick": nick,
            "verified": verified(member),
        }),
        Shown::MemberLeft {
            room,
            seq,
            member,
            nick,
        } => json!({
            "type": "member_left",
            "room": room_value(Some(room)),
            "seq": seq,
            "from": member.to_string(),
            "nick": nick,
            "verified": verified(member),
        }),
        Shown::Epoch {
            room,
            seq,
            epoch,
            members,
        } => json!({
            "type": "epoch",
            "room": room_value(Some(room)),
            "seq": seq,
            "epoch": epoch,
            "members": members
                .iter()
                .map(|(fp, nick)| {
                    json!({"fingerprint": fp.to_string(), "nick": nick, "verified": verified(fp)})
                })
                .collect::<Vec<_>>(),
        }),
        Shown::Notice { room, notice } => json!({
            "type": "notice",
            "room": room_value(room.as_ref()),
            "text": notice_text(room.as_ref(), notice),
        }),
        Shown::Warning {
            room,
            seq,
            from,
            warning,
        } => {
            let mut v = json!({
                "type": "warning",
                "room": room_value(room.as_ref()),
                "seq": seq,
                "from": from.as_ref().map(|p| p.fingerprint.to_string()),
                "kind": warning.kind(),
                "text": warning_text(room.as_ref(), *seq, from.as_ref(), warning),
            });
            if let (hush_room::Warning::Impostor { nick, verified }, Some(obj)) =
                (warning, v.as_object_mut())
            {
                obj.insert("nick".into(), json!(nick));
                obj.insert(
                    "verified_fingerprint".into(),
                    json!(verified.fingerprint.to_string()),
                );
                obj.insert("verified_nick".into(), json!(verified.nick));
            }
            v
        }
        Shown::Error { .. } | Shown::Refused { .. } | Shown::QueueFull { .. } => json!({
            "type": "error",
            "room": Value::Null,
            "kind": match ev {
                Shown::Refused { .. } => "relay_refused",
                Shown::QueueFull { .. } => "queue_full",
                _ => "client",
            },
            "text": error_text(ev),
        }),
    };
    value.to_string()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use hush_proto::Rejection;
    use hush_room::{Notice, Peer, Refusal, Replay, Signed, Warning};

    /// 2023-11-14T22:13:20Z.
    const T: u64 = 1_700_000_000_000;

    fn fp(b: u8) -> Fingerprint {
        Fingerprint::from_bytes([b; 32])
    }

    fn room() -> RoomName {
        RoomName::new("ops").unwrap()
    }

    fn message(text: &str, sent_at_ms: u64, same_nick: Vec<Fingerprint>) -> Shown {
        Shown::Message {
            room: room(),
            seq: 7,
            from: fp(1),
            nick: "alice".into(),
            text: text.into(),
            action: false,
            sent_at_ms,
            received_at_ms: T,
            same_nick,
        }
    }

    fn parse(ev: &Shown) -> Value {
        let s = render_json(ev);
        assert!(!s.contains('\n'), "JSON output must be one line: {s}");
        serde_json::from_str(&s).unwrap()
    }

    fn no_controls(s: &str) -> bool {
        !s.chars().any(|c| c.is_control() || is_bidi_or_separator(c))
    }

    #[test]
    fn sanitize_escape_sequences_become_visible() {
        let s = sanitize("\x1b[2J\x1b]0;title\x07");
        assert_eq!(s, "^[[2J^[]0;title^G");
        assert!(!s.contains('\x1b') && !s.contains('\x07'));
        assert!(no_controls(&s));
    }

    #[test]
    fn sanitize_line_breaks_cannot_forge_lines() {
        let s = sanitize("hi\r\n[22:13] bob (AAAAAAAA): fake\u{2028}x\u{2029}\t\0\x7f");
        assert_eq!(
            s,
            "hi^M^J[22:13] bob (AAAAAAAA): fake\\u{2028}x\\u{2029}^I^@^?"
        );
        assert!(no_controls(&s));
    }

    #[test]
    fn sanitize_c1_and_bidi() {
        assert_eq!(sanitize("a\u{9b}31mb"), "a\\u{9b}31mb");
        assert_eq!(sanitize("\u{85}\u{80}\u{9f}"), "\\u{85}\\u{80}\\u{9f}");
        assert_eq!(sanitize("evil\u{202e}txt.exe"), "evil\\u{202e}txt.exe");
        let all = "\u{202a}\u{202b}\u{202c}\u{202d}\u{202e}\u{2066}\u{2067}\u{2068}\u{2069}\u{200e}\u{200f}\u{061c}";
        let s = sanitize(all);
        assert!(no_controls(&s));
        assert_eq!(s.matches("\\u{").count(), 12);
        assert!(s.contains("\\u{61c}"));
    }

    #[test]
    fn sanitize_keeps_ordinary_text() {
        for s in [
            "héllo 👋 日本",
            "plain ASCII ~!@#$%^&*()",
            "👨\u{200d}👩\u{200d}👧",
            "",
        ] {
            assert_eq!(sanitize(s), s);
        }
    }

    #[test]
    fn time_formats() {
        assert_eq!(format_rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_rfc3339(951_782_400_000), "2000-02-29T00:00:00Z");
        assert_eq!(format_rfc3339(T), "2023-11-14T22:13:20Z");
        assert_eq!(format_rfc3339(T + 999), "2023-11-14T22:13:20Z");
        assert_eq!(format_rfc3339(1_709_251_199_000), "2024-02-29T23:59:59Z");
        assert_eq!(format_rfc3339(1_709_251_200_000), "2024-03-01T00:00:00Z");
        assert_eq!(format_rfc3339(4_102_444_800_000), "2100-01-01T00:00:00Z");
        assert_eq!(format_rfc3339(1_798_761_599_000), "2026-12-31T23:59:59Z");
        let utc = LocalTime::utc();
        assert_eq!(utc.hhmm(0), "00:00");
        assert_eq!(utc.hhmm(T), "22:13");
        assert_eq!(utc.hhmm(T + 47 * 60_000), "23:00");
        // Must not panic at the extreme.
        let _ = format_rfc3339(u64::MAX);
    }

    #[test]
    fn line_message_plain() {
        let id = fp(1).short_id();
        assert_eq!(
            render_line(&message("hello", T - 2_000, vec![])),
            format!("[22:13] alice ({id}): hello")
        );
        // Exactly 5 minutes of skew either way is not remarked on.
        assert!(!render_line(&message("x", T - SKEW_NOTE_MS, vec![])).contains("sent"));
        assert!(!render_line(&message("x", T + SKEW_NOTE_MS, vec![])).contains("sent"));
    }

    #[test]
    fn an_action_reads_as_one_and_still_starts_like_a_verified_message() {
        let id = fp(1).short_id();
        let mut ev = message("waves\x1b[2J", T, vec![]);
        if let Shown::Message { action, .. } = &mut ev {
            *action = true;
        }
        assert_eq!(
            render_line(&ev),
            format!("[22:13] * alice ({id}) waves^[[2J")
        );
        assert_eq!(parse(&ev)["action"], true);
        assert_eq!(parse(&message("x", T, vec![]))["action"], false);
    }

    #[test]
    fn line_message_skew_and_same_nick() {
        let id = fp(1).short_id();
        assert_eq!(
            render_line(&message("late", T - 3_600_000, vec![])),
            format!("[22:13] alice ({id}): late (sent 21:13, 60 min earlier)")
        );
        assert_eq!(
            render_line(&message("early", T + 10 * 60_000, vec![])),
            format!("[22:13] alice ({id}): early (claims to be sent 10 min later)")
        );
        let (a, b) = (fp(2), fp(3));
        assert_eq!(
            render_line(&message("hi", T, vec![a, b])),
            format!(
                "[22:13] alice ({id}) [same name as {}, {}]: hi",
                a.short_id(),
                b.short_id()
            )
        );
    }

    #[test]
    fn line_message_is_sanitized() {
        let ev = Shown::Message {
            room: room(),
            seq: 1,
            from: fp(1),
            nick: "ev\x1b[31mil\n".into(),
            text: "ok\n[22:14] bob (XXXXXXXX): pay me\x1b]0;t\x07".into(),
            action: false,
            sent_at_ms: T,
            received_at_ms: T,
            same_nick: vec![],
        };
        let line = render_line(&ev);
        assert!(no_controls(&line), "{line:?}");
        assert_eq!(
            line,
            format!(
                "[22:13] ev^[[31mil^J ({}): ok^J[22:14] bob (XXXXXXXX): pay me^[]0;t^G",
                fp(1).short_id()
            )
        );
    }

    #[test]
    fn line_other_events() {
        let id = fp(1).short_id();
        let id2 = fp(2).short_id();
        assert_eq!(
            render_line(&Shown::Joined {
                room: room(),
                me: fp(1),
                nick: "alice".into(),
                epoch: 3
            }),
            format!("-- joined #ops as alice ({id}), epoch 3")
        );
        assert_eq!(
            render_line(&Shown::Joined {
                room: room(),
                me: fp(1),
                nick: "alice".into(),
                epoch: 0
            }),
            format!("-- joined #ops as alice ({id})")
        );
        assert_eq!(
            render_line(&Shown::MemberJoined {
                room: room(),
                seq: 4,
                member: fp(1),
                nick: "alice".into()
            }),
            format!("-- alice ({id}) joined #ops")
        );
        assert_eq!(
            render_line(&Shown::MemberLeft {
                room: room(),
                seq: 4,
                member: fp(1),
                nick: "al\rice".into()
            }),
            format!("-- al^Mice ({id}) left #ops")
        );
        assert_eq!(
            render_line(&Shown::Epoch {
                room: room(),
                seq: 9,
                epoch: 4,
                members: vec![(fp(1), "alice".into()), (fp(2), "bob".into())]
            }),
            format!("-- #ops is now at epoch 4 with 2 members: alice ({id}), bob ({id2})")
        );
        assert_eq!(
            render_line(&Shown::Epoch {
                room: room(),
                seq: 9,
                epoch: 5,
                members: vec![(fp(1), "alice".into())]
            }),
            format!("-- #ops is now at epoch 5 with 1 member: alice ({id})")
        );
        // A big room's line names the first few, not thousands.
        let crowd: Vec<(Fingerprint, String)> = (0..=EPOCH_LINE_NAMES + 4)
            .map(|i| (fp(1), format!("m{i}")))
            .collect();
        let line = render_line(&Shown::Epoch {
            room: room(),
            seq: 9,
            epoch: 6,
            members: crowd,
        });
        assert!(
            line.contains(&format!("m{} ", EPOCH_LINE_NAMES - 1)),
            "{line}"
        );
        assert!(!line.contains(&format!("m{} ", EPOCH_LINE_NAMES)), "{line}");
        assert!(
            line.ends_with(" and 5 more (/members lists them)"),
            "{line}"
        );
        assert_eq!(
            render_line(&Shown::Notice {
                room: None,
                notice: Notice::Text("reconnecting in 2s".into())
            }),
            "-- reconnecting in 2s"
        );
        assert_eq!(
            render_line(&Shown::Notice {
                room: Some(room()),
                notice: Notice::NickChanged {
                    member: fp(2),
                    old: "bob".into(),
                    new: "now\nbobby".into(),
                }
            }),
            format!("-- bob ({}) is now known as now^Jbobby", fp(2).short_id())
        );
        assert_eq!(
            render_line(&Shown::Warning {
                room: Some(room()),
                seq: Some(3),
                from: Some(Peer {
                    fingerprint: fp(2),
                    nick: "bob\x1b".into(),
                }),
                warning: Warning::BadSignature {
                    what: Signed::Invite
                },
            }),
            format!(
                "!! warning[bad_signature]: an invite claiming to be from bob^[ ({}) failed signature verification and was not shown",
                fp(2).short_id()
            )
        );
        assert_eq!(
            render_line(&Shown::Error {
                text: "unknown command /x\x1b".into()
            }),
            "!! error: unknown command /x^["
        );
    }

    #[test]
    fn json_message() {
        let text = "line1\nline2\x1b[2J\u{202e} 👋";
        let ev = Shown::Message {
            room: room(),
            seq: 7,
            from: fp(1),
            nick: "al\x07ice".into(),
            text: text.into(),
            action: false,
            sent_at_ms: T - 1_000,
            received_at_ms: T,
            same_nick: vec![fp(2)],
        };
        let v = parse(&ev);
        assert_eq!(v["type"], "message");
        assert_eq!(v["room"], "ops");
        assert_eq!(v["seq"], 7);
        assert_eq!(v["from"], fp(1).to_string());
        assert_eq!(v["nick"], "al\x07ice");
        assert_eq!(v["text"], text);
        // Nobody marked the key verified (render_json knows no contacts).
        assert_eq!(v["verified"], false);
        assert_eq!(v["sent_at"], "2023-11-14T22:13:19Z");
        assert_eq!(v["sent_at_ms"], T - 1_000);
        assert_eq!(v["received_at"], "2023-11-14T22:13:20Z");
        assert_eq!(v["received_at_ms"], T);
        assert_eq!(v["same_nick"], json!([fp(2).to_string()]));
        // The full fingerprint round-trips.
        let back: Fingerprint = v["from"].as_str().unwrap().parse().unwrap();
        assert_eq!(back, fp(1));

        let plain = parse(&message("x", T, vec![]));
        assert_eq!(plain["same_nick"], json!([]));
    }

    #[test]
    fn json_other_events() {
        let v = parse(&Shown::Joined {
            room: room(),
            me: fp(1),
            nick: "alice".into(),
            epoch: 2,
        });
        assert_eq!(v["type"], "joined");
        assert_eq!(v["room"], "ops");
        assert_eq!(v["me"], fp(1).to_string());
        assert_eq!(v["nick"], "alice");
        assert_eq!(v["epoch"], 2);

        for (ev, ty) in [
            (
                Shown::MemberJoined {
                    room: room(),
                    seq: 5,
                    member: fp(2),
                    nick: "bob".into(),
                },
                "member_joined",
            ),
            (
                Shown::MemberLeft {
                    room: room(),
                    seq: 5,
                    member: fp(2),
                    nick: "bob".into(),
                },
                "member_left",
            ),
        ] {
            let v = parse(&ev);
            assert_eq!(v["type"], ty);
            assert_eq!(v["room"], "ops");
            assert_eq!(v["seq"], 5);
            assert_eq!(v["from"], fp(2).to_string());
            assert_eq!(v["nick"], "bob");
        }

        let v = parse(&Shown::Epoch {
            room: room(),
            seq: 9,
            epoch: 4,
            members: vec![(fp(1), "alice".into()), (fp(2), "bob".into())],
        });
        assert_eq!(v["type"], "epoch");
        assert_eq!(v["seq"], 9);
        assert_eq!(v["epoch"], 4);
        assert_eq!(
            v["members"],
            json!([
                {"fingerprint": fp(1).to_string(), "nick": "alice", "verified": false},
                {"fingerprint": fp(2).to_string(), "nick": "bob", "verified": false},
            ])
        );

        let v = parse(&Shown::Notice {
            room: None,
            notice: Notice::Text("connected".into()),
        });
        assert_eq!(v["type"], "notice");
        assert_eq!(v["room"], Value::Null);
        assert_eq!(v["text"], "connected");

        let v = parse(&Shown::Warning {
            room: Some(room()),
            seq: Some(3),
            from: Some(Peer {
                fingerprint: fp(2),
                nick: "bob".into(),
            }),
            warning: Warning::Replay(Replay::Repeated),
        });
        assert_eq!(v["type"], "warning");
        assert_eq!(v["room"], "ops");
        assert_eq!(v["seq"], 3);
        assert_eq!(v["from"], fp(2).to_string());
        assert_eq!(v["kind"], "replay");
        assert_eq!(
            v["text"],
            format!(
                "a repeated message from bob ({}) was dropped",
                fp(2).short_id()
            )
        );

        let v = parse(&Shown::Warning {
            room: None,
            seq: None,
            from: None,
            warning: Warning::StateNotSaved {
                error: "disk full".into(),
            },
        });
        assert_eq!(v["room"], Value::Null);
        assert_eq!(v["seq"], Value::Null);
        assert_eq!(v["from"], Value::Null);
        assert_eq!(v["kind"], "state_not_saved");

        let v = parse(&Shown::Error {
            text: "bad\ncommand".into(),
        });
        assert_eq!(v["type"], "error");
        assert_eq!(v["room"], Value::Null);
        assert_eq!(v["text"], "bad\ncommand");
    }

    #[test]
    fn a_file_offer_is_shown_neutralised_and_never_with_its_key() {
        let offer = hush_proto::e2e::FileOffer {
            id: [0xab; 16],
            name: "../../etc/passwd\x1b[2J\u{202e}.txt".into(),
            size: 1_300_000,
            media_type: "text/plain".into(),
            chunks: 42,
            sha256: [1; 32],
            key: [0x5a; 32],
        };
        let ev = Shown::FileOffered {
            room: room(),
            seq: 4,
            from: fp(1),
            nick: "alice".into(),
            offer,
            received_at_ms: T,
        };
        let line = render_line(&ev);
        assert!(no_controls(&line), "{line}");
        assert!(line.starts_with("[22:13] alice ("), "{line}");
        assert!(
            line.contains("(1.2 MiB): /save abababab saves it"),
            "{line}"
        );
        let v = parse(&ev);
        assert_eq!(v["type"], "file_offered");
        assert_eq!(v["id"], "ab".repeat(16));
        assert_eq!(v["size"], 1_300_000);
        assert_eq!(v["name"], "../../etc/passwd\x1b[2J\u{202e}.txt");
        let json = render_json(&ev);
        assert!(
            !json.contains(&"5a".repeat(8)) && !json.contains("key"),
            "{json}"
        );
        assert_eq!(human_size(0), "0 bytes");
        assert_eq!(human_size(1), "1 byte");
        assert_eq!(human_size(1536), "1.5 KiB");
        assert_eq!(human_size(100 << 20), "100.0 MiB");
        assert_eq!(human_size(u64::MAX), "16777215.9 TiB");
    }

    #[test]
    fn a_verified_key_is_marked_in_lines_and_json_and_nobody_else() {
        let id = fp(1).short_id();
        let only_alice = |f: &Fingerprint| *f == fp(1);
        let utc = LocalTime::utc();
        let ev = message("hi", T, vec![]);
        assert_eq!(
            render_line_marked(&ev, &utc, &only_alice),
            format!("[22:13] alice ({id}) [verified]: hi")
        );
        assert_eq!(render_line(&ev), format!("[22:13] alice ({id}): hi"));
        let v: Value = serde_json::from_str(&render_json_marked(&ev, &only_alice)).unwrap();
        assert_eq!(v["verified"], true);
        let joined = Shown::MemberJoined {
            room: room(),
            seq: 2,
            member: fp(1),
            nick: "alice".into(),
        };
        assert_eq!(
            render_line_marked(&joined, &utc, &only_alice),
            format!("-- alice ({id}) [verified] joined #ops")
        );
        let v: Value = serde_json::from_str(&render_json_marked(&joined, &only_alice)).unwrap();
        assert_eq!(v["verified"], true);
        let epoch = Shown::Epoch {
            room: room(),
            seq: 3,
            epoch: 2,
            members: vec![(fp(1), "alice".into()), (fp(2), "bob".into())],
        };
        assert_eq!(
            render_line_marked(&epoch, &utc, &only_alice),
            format!(
                "-- #ops is now at epoch 2 with 2 members: alice ({id}) [verified], bob ({})",
                fp(2).short_id()
            )
        );
        let v: Value = serde_json::from_str(&render_json_marked(&epoch, &only_alice)).unwrap();
        assert_eq!(v["members"][0]["verified"], true);
        assert_eq!(v["members"][1]["verified"], false);
        // A name cannot hold the mark: no spaces, no parentheses.
        assert!(crate::command::validate_nick("alice [verified]").is_err());
    }

    #[test]
    fn an_impostor_warning_names_both_keys() {
        let ev = Shown::Warning {
            room: Some(room()),
            seq: Some(5),
            from: Some(Peer {
                fingerprint: fp(9),
                nick: "bob".into(),
            }),
            warning: Warning::Impostor {
                nick: "bob".into(),
                verified: Peer {
                    fingerprint: fp(2),
                    nick: "bob".into(),
                },
            },
        };
        let line = render_line(&ev);
        assert!(line.starts_with("!! warning[impostor]: bob ("), "{line}");
        assert!(
            line.contains(&fp(2).to_string()) && line.contains(&fp(9).to_string()),
            "{line}"
        );
        let v = parse(&ev);
        assert_eq!(v["type"], "warning");
        assert_eq!(v["kind"], "impostor");
        assert_eq!(v["from"], fp(9).to_string());
        assert_eq!(v["nick"], "bob");
        assert_eq!(v["verified_fingerprint"], fp(2).to_string());
        assert_eq!(v["verified_nick"], "bob");
    }

    #[test]
    fn every_warning_kind_is_worded() {
        for warning in Warning::examples() {
            let shown = Shown::Warning {
                room: Some(room()),
                seq: Some(9),
                from: None,
                warning: warning.clone(),
            };
            let line = render_line(&shown);
            assert!(
                line.starts_with(&format!("!! warning[{}]: ", warning.kind())),
                "{line}"
            );
            assert!(line.len() > 30 && !line.contains('\n'), "{line}");
            assert_eq!(parse(&shown)["kind"], warning.kind());
        }
    }

    #[test]
    fn refusals_say_what_to_do() {
        let r = room();
        assert_eq!(
            refusal_text(&r, &Refusal::KickSelf),
            "you cannot kick yourself: use /leave"
        );
        assert_eq!(
            refusal_text(
                &r,
                &Refusal::Unknown {
                    query: "zed".into()
                }
            ),
            "nobody called zed is known in #ops; give the full fingerprint"
        );
        assert_eq!(
            render_line(&Shown::Refused {
                room: r,
                reason: Rejection::TooLarge { max_body: 10 },
            }),
            "!! error: the relay refused a request: too large: this relay accepts at most 10 bytes"
        );
        assert_eq!(
            render_line(&Shown::Refused {
                room: room(),
                reason: Rejection::TooManyNewRooms { per_hour: 20 },
            }),
            "!! error: the relay refused a request: this relay lets each person create at most 20 new rooms an hour; join an existing room, or try again within the hour"
        );
    }
}
