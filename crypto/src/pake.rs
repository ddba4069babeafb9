//! SPAKE2 (Ed25519 group, as the `spake2` crate and python-spake2 /
//! magic-wormhole define it; not RFC 9382's variant) for invitation
//! codes: two people who
//! know the same short code derive one strong key, through a relay that
//! sees every message and still cannot test a guess of the code offline.
//!
//! ```text
//!   inviter                                   invitee
//!   Pake::start(Inviter, code) ─ msg_a ─▶ relay ─▶ Pake::start(Invitee, code)
//!                     ◀─ msg_b ─ relay ◀─
//!   finish(msg_b) ─▶ CodeKeys                    finish(msg_a) ─▶ CodeKeys
//! ```
//!
//! [`CodeKeys`] holds one AES-256-GCM key per direction, derived with
//! HKDF-SHA-256 from the SPAKE2 key and salted with the [transcript]
//! (both SPAKE2 messages in inviter, invitee order), plus the transcript
//! itself, which each side signs with its identity key. A wrong code gives
//! the two sides different keys: the first sealed box fails to open, and
//! that is how a wrong code is detected (there is no separate
//! confirmation message to distinguish "wrong" from "tampered", and none
//! is needed: both mean "do not trust this exchange").
//!
//! [transcript]: CodeKeys::transcript

use sha2::{Digest, Sha256};
use spake2::{Ed25519Group, Identity as PakeId, Password, Spake2};

use crate::error::CryptoError;
use crate::kdf::derive_secret;
use crate::seal::{NonceCounter, SealingKey};
use crate::secret::Secret32;

/// SPAKE2's identity for the side that made the code.
pub const INVITER_ID: &[u8] = b"hush/v1/code/inviter";
/// SPAKE2's identity for the side that typed it.
pub const INVITEE_ID: &[u8] = b"hush/v1/code/invitee";
/// Domain separator of the transcript hash.
pub const TRANSCRIPT_LABEL: &[u8] = b"hush/v1/code/transcript";
/// HKDF `info` of the key the invitee seals with.
pub const TO_INVITER_INFO: &[u8] = b"hush/v1/code/to-inviter";
/// HKDF `info` of the key the inviter seals with.
pub const TO_INVITEE_INFO: &[u8] = b"hush/v1/code/to-invitee";

/// Which end of a code exchange this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// Made the code (SPAKE2's A).
    Inviter,
    /// Typed the code (SPAKE2's B).
    Invitee,
}

/// One side's SPAKE2 state, between sending its message and receiving
/// the other's.
pub struct Pake {
    side: Side,
    state: Spake2<Ed25519Group>,
    ours: Vec<u8>,
}

impl std::fmt::Debug for Pake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pake")
            .field("side", &self.side)
            .finish_non_exhaustive()
    }
}

impl Pake {
    /// Starts SPAKE2 on `password` (the code, normalised). Returns the
    /// state and the message to send to the other side.
    #[must_use]
    pub fn start(side: Side, password: &[u8]) -> (Self, Vec<u8>) {
        let (pw, a, b) = (
            Password::new(password),
            PakeId::new(INVITER_ID),
            PakeId::new(INVITEE_ID),
        );
        let mut rng = rand::rng();
        let (state, msg) = match side {
            Side::Inviter => Spake2::<Ed25519Group>::start_a_with_rng(&pw, &a, &b, &mut rng),
            Side::Invitee => Spake2::<Ed25519Group>::start_b_with_rng(&pw, &a, &b, &mut rng),
        };
        (
            Self {
                side,
                state,
                ours: msg.clone(),
            },
            msg,
        )
    }

    /// Finishes with the other side's message.
    ///
    /// # Errors
    /// [`CryptoError::BadShare`] if `theirs` is not a SPAKE2 message of
    /// the other side (wrong length, not a point, our own message
    /// reflected). A message made with another code is *not* an error
    /// here: it yields keys that open nothing the other side sealed.
    pub fn finish(self, theirs: &[u8]) -> Result<CodeKeys, CryptoError> {
        let key = self
            .state
            .finish(theirs)
            .map_err(|_| CryptoError::BadShare("not a SPAKE2 message of the other side"))?;
        let key = Secret32::from_slice(&key).ok_or(CryptoError::Internal("SPAKE2 key size"))?;
        let (msg_a, msg_b) = match self.side {
            Side::Inviter => (self.ours.as_slice(), theirs),
            Side::Invitee => (theirs, self.ours.as_slice()),
        };
        let mut h = Sha256::new();
        for part in [TRANSCRIPT_LABEL, msg_a, msg_b] {
            h.update(u32::try_from(part.len()).unwrap_or(u32::MAX).to_be_bytes());
            h.update(part);
        }
        let transcript: [u8; 32] = h.finalize().into();
        let to_inviter = SealingKey::new(&derive_secret(&key, &transcript, TO_INVITER_INFO));
        let to_invitee = SealingKey::new(&derive_secret(&key, &transcript, TO_INVITEE_INFO));
        let (seal, open) = match self.side {
            Side::Inviter => (to_invitee, to_inviter),
            Side::Invitee => (to_inviter, to_invitee),
        };
        Ok(CodeKeys {
            seal,
            open,
            transcript,
            sealed: std::cell::Cell::new(false),
        })
    }
}

/// What a finished exchange gives one side: a key to seal its one box to
/// the other, a key to open the other's, and the transcript both sign.
pub struct CodeKeys {
    seal: SealingKey,
    open: SealingKey,
    transcript: [u8; 32],
    /// The one box was sealed: a second would reuse nonce 0.
    sealed: std::cell::Cell<bool>,
}

impl CodeKeys {
    /// SHA-256 over both SPAKE2 messages (inviter's first), each length
    /// prefixed, after [`TRANSCRIPT_LABEL`]: what each side signs.
    #[must_use]
    pub fn transcript(&self) -> &[u8; 32] {
        &self.transcript
    }

    /// Seals our one box (nonce 0: each key seals exactly one message).
    ///
    /// # Errors
    /// [`CryptoError::NonceExhausted`] for a second box; otherwise
    /// [`CryptoError::Internal`] only if AES-GCM fails.
    pub fn seal(&self, plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
        if self.sealed.replace(true) {
            return Err(CryptoError::NonceExhausted);
        }
        let nonce = NonceCounter::new().next_nonce()?;
        self.seal.seal(nonce, &self.transcript, plaintext)
    }

    /// Opens the other side's box.
    ///
    /// # Errors
    /// [`CryptoError::OpenFailed`]: a wrong code, or altered bytes.
    pub fn open(&self, sealed: &[u8]) -> Result<Vec<u8>, CryptoError> {
        self.open.open(0, &self.transcript, sealed)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn run(code_a: &[u8], code_b: &[u8]) -> (CodeKeys, CodeKeys) {
        let (a, msg_a) = Pake::start(Side::Inviter, code_a);
        let (b, msg_b) = Pake::start(Side::Invitee, code_b);
        (a.finish(&msg_b).unwrap(), b.finish(&msg_a).unwrap())
    }

    #[test]
    fn the_same_code_gives_both_sides_keys_that_open_each_others_box() {
        let (a, b) = run(b"7-crossover-clockwork", b"7-crossover-clockwork");
        assert_eq!(a.transcript(), b.transcript());
        assert_eq!(a.open(&b.seal(b"from bob").unwrap()).unwrap(), b"from bob");
        assert_eq!(
            b.open(&a.seal(b"from alice").unwrap()).unwrap(),
            b"from alice"
        );
    }

    #[test]
    fn each_side_seals_one_box_only() {
        let (a, _) = run(b"1-a-b", b"1-a-b");
        assert!(a.seal(b"one").is_ok());
        assert_eq!(a.seal(b"two"), Err(CryptoError::NonceExhausted));
    }

    #[test]
    fn a_box_does_not_open_as_the_other_direction() {
        let (a, b) = run(b"7-crossover-clockwork", b"7-crossover-clockwork");
        assert!(
            a.open(&a.seal(b"x").unwrap()).is_err(),
            "reflected to its sender"
        );
        assert!(b.open(&b.seal(b"x").unwrap()).is_err());
    }

    #[test]
    fn a_wrong_code_opens_nothing() {
        let (a, b) = run(b"7-crossover-clockwork", b"7-crossover-cobra");
        assert_eq!(
            a.open(&b.seal(b"from mallory").unwrap()),
            Err(CryptoError::OpenFailed)
        );
        assert!(b.open(&a.seal(b"room").unwrap()).is_err());
    }

    #[test]
    fn an_altered_box_does_not_open() {
        let (a, b) = run(b"1-a-b", b"1-a-b");
        let mut sealed = b.seal(b"hello").unwrap();
        sealed[0] ^= 1;
        assert!(a.open(&sealed).is_err());
        assert!(a.open(&[]).is_err());
    }

    #[test]
    fn malformed_or_reflected_messages_are_refused() {
        let (a, msg_a) = Pake::start(Side::Inviter, b"1-a-b");
        assert!(a.finish(&msg_a).is_err(), "our own message back");
        let (a, _) = Pake::start(Side::Inviter, b"1-a-b");
        assert!(a.finish(&[0u8; 5]).is_err(), "wrong length");
        let (a, _) = Pake::start(Side::Inviter, b"1-a-b");
        assert!(a.finish(&[]).is_err());
    }
}
