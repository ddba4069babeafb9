//! Invitation codes: a short code read over the phone introduces two
//! people *and* verifies their keys (issue #17; PROTOCOL.md §10).
//!
//! A code is `NUMBER-WORD-WORD`, e.g. `417-crossover-clockwork`. The
//! number names a mailbox on the relay (it is not secret); the two words,
//! one from each half of the PGP word list, are 16 secret bits. Both
//! clients run SPAKE2 on the whole code through the mailbox, and each then
//! seals one box to the other under the resulting key:
//!
//! ```text
//!   inviter (in #room)                 relay mailbox N            invitee (--code)
//!   CodeOpen ─────────────────────────▶ N
//!   Step::Pake(msg_a) ────────────────▶ queued
//!                                       ◀── CodeClaim(N, Step::Pake(msg_b))   (the one guess)
//!   ◀── msg_b                           msg_a ──▶
//!                                       ◀── Step::Sealed(InviteeBox: key, nick, sig)
//!   open, verify sig ─▶ invite the key, mark verified
//!   Step::Sealed(InviterBox: key, nick, room, relay fp, sig) ──▶ open, verify, check relay, join
//! ```
//!
//! A wrong code gives different keys: the inviter cannot open the
//! invitee's box, answers [`Step::Failed`], and the mailbox is spent (one
//! guess per code). Each box carries a signature by its sender's identity
//! over the transcript (both SPAKE2 messages), so the key in a box is
//! proven held by whoever knew the code in this very exchange.
//!
//! This module is pure: [`InviterExchange`] and [`InviteeExchange`] take
//! steps in and give steps out; the client moves them through the relay.

mod words;

use hush_crypto::pake::{CodeKeys, Pake, Side};
use hush_crypto::{Fingerprint, Identity, PublicIdentity};
use serde::{Deserialize, Serialize};

use crate::RoomName;
use crate::msg::{decode, encode};

/// Signature context of the invitee's box.
pub const INVITEE_CONTEXT: &str = "hush/v1/code-invitee";
/// Signature context of the inviter's box.
pub const INVITER_CONTEXT: &str = "hush/v1/code-inviter";
/// Largest mailbox number the relay hands out.
pub const MAX_NUMBER: u16 = 9999;
/// Largest [`Step`] the relay forwards, in bytes (a box holds an RSA key
/// of at most 8192 bits and a signature as long).
pub const MAX_STEP: usize = 4096;
/// Secret bits in a code: two words of 256.
pub const SECRET_BITS: u32 = 16;

/// A code: a mailbox number and two secret words.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Code {
    /// The relay's mailbox (public).
    pub number: u16,
    first: u8,
    second: u8,
}

impl std::fmt::Debug for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The words are the secret: a log line must not carry them.
        write!(f, "Code({}-…)", self.number)
    }
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}-{}-{}",
            self.number,
            words::ODD[usize::from(self.first)],
            words::EVEN[usize::from(self.second)]
        )
    }
}

/// Why typed text is not a code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodeError {
    /// Not three parts.
    #[error(
        "a code is a number and two words, like 417-crossover-clockwork; ask the person who made it to read it again"
    )]
    Shape,
    /// The number is not one the relay hands out.
    #[error("{0:?} is not a code number (1 to 9999); check the first part of the code")]
    Number(String),
    /// A word not in the list for its place.
    #[error(
        "{word:?} is not a code word{hint}; check its spelling with the person who made the code"
    )]
    Word {
        /// What was typed.
        word: String,
        /// ", did you mean …?", or nothing.
        hint: String,
    },
}

impl std::str::FromStr for Code {
    type Err = CodeError;

    fn from_str(typed: &str) -> Result<Self, CodeError> {
        let lower = typed.trim().to_lowercase();
        let parts: Vec<&str> = lower
            .split(|c: char| c == '-' || c.is_whitespace())
            .filter(|p| !p.is_empty())
            .collect();
        let [number, first, second] = parts.as_slice() else {
            return Err(CodeError::Shape);
        };
        let number = number
            .parse::<u16>()
            .ok()
            .filter(|n| (1..=MAX_NUMBER).contains(n))
            .ok_or_else(|| CodeError::Number((*number).to_owned()))?;
        Ok(Self {
            number,
            first: word_index(&words::ODD, &words::EVEN, first)?,
            second: word_index(&words::EVEN, &words::ODD, second)?,
        })
    }
}

/// The index of `word` in `list`; a word of the `other` list in this
/// place is named as such (the two words were swapped).
fn word_index(list: &[&str; 256], other: &[&str; 256], word: &str) -> Result<u8, CodeError> {
    if let Some(i) = list.iter().position(|w| *w == word) {
        return u8::try_from(i).map_err(|_| CodeError::Shape);
    }
    let hint = if other.contains(&word) {
        " in this place (are the two words swapped?)".to_owned()
    } else {
        let prefix: String = word.chars().take(4).collect();
        list.iter()
            .find(|w| w.len() > 3 && w.starts_with(&prefix))
            .map(|w| format!(", did you mean {w:?}?"))
            .unwrap_or_default()
    };
    Err(CodeError::Word {
        word: word.to_owned(),
        hint,
    })
}

impl Code {
    /// A fresh code for mailbox `number`, its words from the OS's random
    /// generator.
    #[must_use]
    pub fn random(number: u16) -> Self {
        let secret = hush_crypto::Secret32::random();
        let [first, second, ..] = *secret.expose_secret();
        Self {
            number,
            first,
            second,
        }
    }

    /// What SPAKE2 runs on: the code as shown, lower case.
    fn password(self) -> Vec<u8> {
        self.to_string().into_bytes()
    }
}

/// What the two clients send each other through a mailbox (the relay
/// forwards the encoded bytes and reads nothing of them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Step {
    /// A SPAKE2 message.
    Pake(#[serde(with = "crate::msg::bytes")] Vec<u8>),
    /// A box sealed under the exchange's key ([`InviteeBox`] or
    /// [`InviterBox`]).
    Sealed(#[serde(with = "crate::msg::bytes")] Vec<u8>),
    /// The exchange failed on the sender's side (unauthenticated: the
    /// relay could forge it, as it could simply drop the mailbox).
    Failed(Failure),
}

impl Step {
    /// The bytes to post.
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        encode(self)
    }

    /// Reads posted bytes.
    ///
    /// # Errors
    /// [`Failure::Malformed`] for anything else.
    pub fn decode(bytes: &[u8]) -> Result<Self, Failure> {
        decode(bytes).map_err(|_| Failure::Malformed)
    }
}

/// Why an exchange failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum Failure {
    /// The two sides' keys differ: the code was typed wrong, or someone
    /// else tried it (then the code is spent and they learned nothing).
    #[error("the code did not match")]
    WrongCode,
    /// A box opened but its signature or key is not valid.
    #[error("the other side's key did not prove itself")]
    BadProof,
    /// A step that is not one this exchange expects now.
    #[error("the other side broke the exchange's protocol")]
    Malformed,
    /// The other side's key is our own: someone used their own code.
    #[error("the code was used with the key that made it")]
    OwnKey,
}

/// The invitee's box: who they are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InviteeBox {
    /// SPKI DER of the invitee's identity key.
    #[serde(with = "crate::msg::bytes")]
    pub key: Vec<u8>,
    /// The name they will use.
    pub nick: String,
    /// RSA-PSS, [`INVITEE_CONTEXT`], over the transcript.
    #[serde(with = "crate::msg::bytes")]
    pub signature: Vec<u8>,
}

/// The inviter's box: who they are, which room, and which relay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InviterBox {
    /// SPKI DER of the inviter's identity key.
    #[serde(with = "crate::msg::bytes")]
    pub key: Vec<u8>,
    /// The inviter's name in the room.
    pub nick: String,
    /// The room the invitee is let into.
    pub room: RoomName,
    /// The relay key the inviter sees (the invitee must see the same).
    #[serde(with = "crate::msg::fp_bytes")]
    pub relay: Fingerprint,
    /// RSA-PSS, [`INVITER_CONTEXT`], over transcript ‖ relay ‖ room.
    #[serde(with = "crate::msg::bytes")]
    pub signature: Vec<u8>,
}

fn inviter_signed(transcript: &[u8; 32], room: &RoomName, relay: &Fingerprint) -> Vec<u8> {
    let mut m = transcript.to_vec();
    m.extend_from_slice(relay.as_bytes());
    m.extend_from_slice(room.as_str().as_bytes());
    m
}

/// Someone proven to hold a key in this exchange.
#[derive(Debug, Clone)]
pub struct Proven {
    /// Their key.
    pub key: PublicIdentity,
    /// The name they gave.
    pub nick: String,
}

/// What the inviter learns at the end.
#[derive(Debug, Clone)]
pub struct Admitted {
    /// The invitee.
    pub invitee: Proven,
    /// The step to send back (our box).
    pub reply: Step,
}

/// What the invitee learns at the end.
#[derive(Debug, Clone)]
pub struct Invited {
    /// The inviter.
    pub inviter: Proven,
    /// The room.
    pub room: RoomName,
    /// The relay key the inviter sees.
    pub relay: Fingerprint,
}

fn proven(
    key_der: &[u8],
    nick: String,
    context: &str,
    signed: &[u8],
    sig: &[u8],
) -> Result<Proven, Failure> {
    let key = PublicIdentity::from_spki_der(key_der).map_err(|_| Failure::BadProof)?;
    key.verify(context, signed, sig)
        .map_err(|_| Failure::BadProof)?;
    Ok(Proven { key, nick })
}

/// The inviter's side of one code.
pub struct InviterExchange {
    code: Code,
    room: RoomName,
    relay: Fingerprint,
    pake: Option<Pake>,
    keys: Option<CodeKeys>,
}

impl InviterExchange {
    /// Starts for `code` (its number from the relay), letting the invitee
    /// into `room` on the relay whose key is `relay`. Post the step.
    #[must_use]
    pub fn start(code: Code, room: RoomName, relay: Fingerprint) -> (Self, Step) {
        let (pake, msg) = Pake::start(Side::Inviter, &code.password());
        (
            Self {
                code,
                room,
                relay,
                pake: Some(pake),
                keys: None,
            },
            Step::Pake(msg),
        )
    }

    /// The code.
    #[must_use]
    pub fn code(&self) -> Code {
        self.code
    }

    /// The room it lets into.
    #[must_use]
    pub fn room(&self) -> &RoomName {
        &self.room
    }

    /// Takes the invitee's next step: `Ok(None)` after their SPAKE2
    /// message, `Ok(Some(..))` once their box is opened and proven.
    ///
    /// # Errors
    /// Why the exchange failed; send [`Step::Failed`] with it and close.
    pub fn receive(
        &mut self,
        step: Step,
        me: &Identity,
        nick: &str,
    ) -> Result<Option<Admitted>, Failure> {
        match (step, self.pake.take(), &self.keys) {
            (Step::Pake(msg), Some(pake), None) => {
                self.keys = Some(pake.finish(&msg).map_err(|_| Failure::Malformed)?);
                Ok(None)
            }
            (Step::Sealed(sealed), None, Some(keys)) => {
                let plain = keys.open(&sealed).map_err(|_| Failure::WrongCode)?;
                let b: InviteeBox = decode(&plain).map_err(|_| Failure::Malformed)?;
                let transcript = *keys.transcript();
                let invitee = proven(&b.key, b.nick, INVITEE_CONTEXT, &transcript, &b.signature)?;
                if invitee.key.fingerprint() == me.fingerprint() {
                    return Err(Failure::OwnKey);
                }
                let signed = inviter_signed(&transcript, &self.room, &self.relay);
                let signature = me
                    .sign(INVITER_CONTEXT, &signed)
                    .map_err(|_| Failure::BadProof)?
                    .into_bytes();
                let reply = keys
                    .seal(&encode(&InviterBox {
                        key: me.public().spki_der().to_vec(),
                        nick: nick.to_owned(),
                        room: self.room.clone(),
                        relay: self.relay,
                        signature,
                    }))
                    .map_err(|_| Failure::Malformed)?;
                Ok(Some(Admitted {
                    invitee,
                    reply: Step::Sealed(reply),
                }))
            }
            (Step::Failed(f), ..) => Err(f),
            _ => Err(Failure::Malformed),
        }
    }
}

/// The invitee's side of one code.
pub struct InviteeExchange {
    pake: Option<Pake>,
    keys: Option<CodeKeys>,
}

impl InviteeExchange {
    /// Starts for a typed `code`: claim its mailbox with the step.
    #[must_use]
    pub fn start(code: Code) -> (Self, Step) {
        let (pake, msg) = Pake::start(Side::Invitee, &code.password());
        (
            Self {
                pake: Some(pake),
                keys: None,
            },
            Step::Pake(msg),
        )
    }

    /// Takes the inviter's next step: after their SPAKE2 message, our box
    /// to post (`Ok(Err(step))`); after their box, what we were invited to.
    ///
    /// # Errors
    /// Why the exchange failed.
    pub fn receive(
        &mut self,
        step: Step,
        me: &Identity,
        nick: &str,
    ) -> Result<Result<Invited, Step>, Failure> {
        match (step, self.pake.take(), &self.keys) {
            (Step::Pake(msg), Some(pake), None) => {
                let keys = pake.finish(&msg).map_err(|_| Failure::Malformed)?;
                let signature = me
                    .sign(INVITEE_CONTEXT, keys.transcript())
                    .map_err(|_| Failure::BadProof)?
                    .into_bytes();
                let sealed = keys
                    .seal(&encode(&InviteeBox {
                        key: me.public().spki_der().to_vec(),
                        nick: nick.to_owned(),
                        signature,
                    }))
                    .map_err(|_| Failure::Malformed)?;
                self.keys = Some(keys);
                Ok(Err(Step::Sealed(sealed)))
            }
            (Step::Sealed(sealed), None, Some(keys)) => {
                let plain = keys.open(&sealed).map_err(|_| Failure::WrongCode)?;
                let b: InviterBox = decode(&plain).map_err(|_| Failure::Malformed)?;
                let signed = inviter_signed(keys.transcript(), &b.room, &b.relay);
                let inviter = proven(&b.key, b.nick, INVITER_CONTEXT, &signed, &b.signature)?;
                if inviter.key.fingerprint() == me.fingerprint() {
                    return Err(Failure::OwnKey);
                }
                Ok(Ok(Invited {
                    inviter,
                    room: b.room,
                    relay: b.relay,
                }))
            }
            (Step::Failed(f), ..) => Err(f),
            _ => Err(Failure::Malformed),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn key(name: &str) -> Identity {
        let path = format!("{}/../keys.example/{name}.pem", env!("CARGO_MANIFEST_DIR"));
        Identity::from_pem(&std::fs::read_to_string(path).unwrap(), None).unwrap()
    }

    #[test]
    fn codes_read_back_and_tolerate_case_and_spaces() {
        let c: Code = "7-crossover-clockwork".parse().unwrap();
        assert_eq!(c.number, 7);
        assert_eq!(c.to_string(), "7-crossover-clockwork");
        assert_eq!(" 7 Crossover CLOCKWORK ".parse::<Code>().unwrap(), c);
        for n in [1, 417, MAX_NUMBER] {
            let c = Code::random(n);
            assert_eq!(c.to_string().parse::<Code>().unwrap(), c);
        }
        assert!(
            !format!("{c:?}").contains("crossover"),
            "Debug hides the words"
        );
    }

    #[test]
    fn bad_codes_say_what_is_wrong() {
        assert_eq!("7-crossover".parse::<Code>(), Err(CodeError::Shape));
        assert!(matches!(
            "0-crossover-clockwork".parse::<Code>(),
            Err(CodeError::Number(_))
        ));
        assert!(matches!(
            "x-crossover-clockwork".parse::<Code>(),
            Err(CodeError::Number(_))
        ));
        let swapped = "7-clockwork-crossover"
            .parse::<Code>()
            .unwrap_err()
            .to_string();
        assert!(swapped.contains("swapped"), "{swapped}");
        let typo = "7-crossovr-clockwork"
            .parse::<Code>()
            .unwrap_err()
            .to_string();
        assert!(typo.contains("crossover"), "{typo}");
        // Not ASCII: an error, never a panic.
        for odd in ["7-aéé-clockwork", "7-crossover-ñ", "7-日本語の-x"] {
            assert!(matches!(odd.parse::<Code>(), Err(CodeError::Word { .. })));
        }
    }

    #[test]
    fn word_lists_are_disjoint_and_complete() {
        let mut all: Vec<&str> = words::ODD
            .iter()
            .chain(words::EVEN.iter())
            .copied()
            .collect();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), 512);
    }

    fn exchange(inviter_code: &str, invitee_code: &str) -> Result<(Admitted, Invited), Failure> {
        let (alice, bob) = (key("alice"), key("bob"));
        let room = RoomName::new("lobby").unwrap();
        let relay = key("relay").fingerprint();
        let (mut a, a1) = InviterExchange::start(inviter_code.parse().unwrap(), room, relay);
        let (mut b, b1) = InviteeExchange::start(invitee_code.parse().unwrap());
        // Through the relay as bytes.
        let wire = |s: Step| Step::decode(&s.encode()).unwrap();
        assert!(a.receive(wire(b1), &alice, "alice")?.is_none());
        let b2 = b.receive(wire(a1), &bob, "bob")?.unwrap_err();
        let admitted = a.receive(wire(b2), &alice, "alice")?.unwrap();
        let invited = b
            .receive(wire(admitted.reply.clone()), &bob, "bob")?
            .unwrap();
        Ok((admitted, invited))
    }

    #[test]
    fn a_right_code_proves_both_keys_and_names_room_and_relay() {
        let (admitted, invited) =
            exchange("7-crossover-clockwork", "7-crossover-clockwork").unwrap();
        assert_eq!(admitted.invitee.key.fingerprint(), key("bob").fingerprint());
        assert_eq!(admitted.invitee.nick, "bob");
        assert_eq!(
            invited.inviter.key.fingerprint(),
            key("alice").fingerprint()
        );
        assert_eq!(invited.room.as_str(), "lobby");
        assert_eq!(invited.relay, key("relay").fingerprint());
    }

    #[test]
    fn a_wrong_code_fails_at_the_inviter() {
        let e = exchange("7-crossover-clockwork", "7-crossover-cobra").unwrap_err();
        assert_eq!(e, Failure::WrongCode);
    }

    #[test]
    fn steps_out_of_order_or_altered_are_refused() {
        let alice = key("alice");
        let room = RoomName::new("lobby").unwrap();
        let (mut a, a1) = InviterExchange::start(Code::random(3), room, alice.fingerprint());
        // A box before any SPAKE2 message.
        assert_eq!(
            a.receive(Step::Sealed(vec![0; 40]), &alice, "a")
                .unwrap_err(),
            Failure::Malformed
        );
        // Our own message reflected.
        let (mut a, _) = InviterExchange::start(
            Code::random(3),
            RoomName::new("x").unwrap(),
            alice.fingerprint(),
        );
        assert!(a.receive(a1, &alice, "a").is_err());
        assert_eq!(Step::decode(&[0xff, 1, 2]), Err(Failure::Malformed));
    }

    #[test]
    fn an_altered_box_is_a_wrong_code_not_a_panic() {
        let (alice, bob) = (key("alice"), key("bob"));
        let code = Code::random(9);
        let (mut a, a1) =
            InviterExchange::start(code, RoomName::new("r").unwrap(), alice.fingerprint());
        let (mut b, b1) = InviteeExchange::start(code);
        a.receive(b1, &alice, "alice").unwrap();
        let Step::Sealed(mut sealed) = b.receive(a1, &bob, "bob").unwrap().unwrap_err() else {
            panic!("a box")
        };
        sealed[3] ^= 0x40;
        assert_eq!(
            a.receive(Step::Sealed(sealed), &alice, "alice")
                .unwrap_err(),
            Failure::WrongCode
        );
    }
}
