//! Nicknames: one set of rules, applied by the sender (`/nick`, `--nick`)
//! and again by every receiver (audit L5: a name is chosen by whoever
//! sends it, outsiders included), and the skeleton that tells two names
//! apart only by look.
//!
//! A name that breaks the rules on receipt is not shown: the sender's
//! short id stands in for it.

use hush_crypto::Fingerprint;

/// Most characters in a nickname.
pub const MAX_NICK_CHARS: usize = 32;

/// Why a nickname is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NickFlaw {
    /// Nothing left after trimming.
    Empty,
    /// More than [`MAX_NICK_CHARS`] characters.
    TooLong {
        /// How many.
        chars: usize,
    },
    /// It starts with `/` (a command).
    StartsWithSlash,
    /// It contains whitespace.
    Whitespace,
    /// It contains a control character.
    Control,
    /// It contains an invisible or text-direction character.
    Invisible,
    /// It contains `(` or `)`: every name is shown as `name (shortid)`, so
    /// a name could carry someone else's short id.
    Parenthesis,
}

/// Characters that are invisible or reorder text: allowing them in
/// nicknames would let one member look like another.
fn is_invisible_or_bidi(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{034F}'
            | '\u{061C}'
            | '\u{115F}'
            | '\u{1160}'
            | '\u{17B4}'
            | '\u{17B5}'
            | '\u{180E}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{206F}'
            | '\u{3164}'
            | '\u{FE00}'..='\u{FE0F}'
            | '\u{FEFF}'
            | '\u{FFA0}'
            | '\u{FFF9}'..='\u{FFFB}'
            | '\u{E0000}'..='\u{E007F}'
    )
}

/// Checks a nickname and returns it trimmed: 1 to [`MAX_NICK_CHARS`]
/// characters, no whitespace, control, invisible or text-direction
/// characters, no parentheses, not starting with `/`.
///
/// # Errors
/// The first rule it breaks.
pub fn check_nick(s: &str) -> Result<String, NickFlaw> {
    let nick = s.trim();
    if nick.is_empty() {
        return Err(NickFlaw::Empty);
    }
    let chars = nick.chars().count();
    if chars > MAX_NICK_CHARS {
        return Err(NickFlaw::TooLong { chars });
    }
    if nick.starts_with('/') {
        return Err(NickFlaw::StartsWithSlash);
    }
    if nick.chars().any(char::is_whitespace) {
        return Err(NickFlaw::Whitespace);
    }
    if nick.chars().any(char::is_control) {
        return Err(NickFlaw::Control);
    }
    if nick.chars().any(is_invisible_or_bidi) {
        return Err(NickFlaw::Invisible);
    }
    if nick.contains(['(', ')']) {
        return Err(NickFlaw::Parenthesis);
    }
    Ok(nick.to_owned())
}

/// A received nickname made safe to keep: the rules of [`check_nick`], or
/// the sender's short id instead.
pub(crate) fn received_nick(nick: &str, fp: &Fingerprint) -> String {
    check_nick(nick).unwrap_or_else(|_| fp.short_id())
}

/// What a name looks like, for telling apart names that differ only by
/// look: case folded, and letters that look alike (Latin, Cyrillic, Greek
/// and digits) mapped to one. `alice`, `ALICE`, `a1ice` and `аlice` (with
/// a Cyrillic а) share one skeleton.
#[must_use]
pub fn skeleton(nick: &str) -> String {
    let lower: String = nick.chars().flat_map(char::to_lowercase).collect();
    let folded: String = lower
        .chars()
        .map(|c| match c {
            '0' | 'о' | 'ο' | 'σ' => 'o',
            '1' | 'l' | '|' | 'і' | 'ι' | 'ӏ' => 'i',
            '3' | 'е' | 'ε' => 'e',
            '5' | 'ѕ' => 's',
            'а' | 'α' => 'a',
            'с' | 'ϲ' => 'c',
            'р' | 'ρ' => 'p',
            'у' | 'γ' => 'y',
            'х' | 'χ' => 'x',
            'ј' => 'j',
            'ԁ' => 'd',
            'ν' => 'v',
            'τ' => 't',
            'κ' | 'к' => 'k',
            'н' | 'η' => 'h',
            'в' | 'β' => 'b',
            'м' | 'μ' => 'm',
            'т' => 't',
            '_' | '-' | '.' => '-',
            other => other,
        })
        .collect();
    folded.replace("rn", "m").replace("vv", "w")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules() {
        assert_eq!(check_nick("  bob\t"), Ok("bob".into()));
        assert_eq!(check_nick(""), Err(NickFlaw::Empty));
        assert_eq!(check_nick("/bob"), Err(NickFlaw::StartsWithSlash));
        assert_eq!(check_nick("bo b"), Err(NickFlaw::Whitespace));
        assert_eq!(check_nick("bob\u{200B}"), Err(NickFlaw::Invisible));
        assert_eq!(check_nick("bob(1hZmP4pH)"), Err(NickFlaw::Parenthesis));
        assert_eq!(
            check_nick(&"x".repeat(MAX_NICK_CHARS + 1)),
            Err(NickFlaw::TooLong {
                chars: MAX_NICK_CHARS + 1
            })
        );
    }

    #[test]
    fn look_alikes_share_a_skeleton() {
        for twin in ["ALICE", "a1ice", "\u{0430}lice", "alIce", "aIice"] {
            assert_eq!(skeleton(twin), skeleton("alice"), "{twin}");
        }
        assert_eq!(skeleton("rnallory"), skeleton("mallory"));
        assert_ne!(skeleton("alice"), skeleton("alicia"));
    }
}
