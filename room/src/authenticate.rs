//! Decode once, choose the signing key, verify once.
//!
//! ```text
//!   SequencedEvent ─▶ Unverified::decode ─▶ (Unverified, Payload)      malformed ─▶ Warning
//!                     handler picks the key the sender must hold:
//!                       message   the sender's key in the message's epoch
//!                       join      the key the request carries (its fingerprint is the sender)
//!                       commit    the committer key it carries (full), the parent roster's (add-only)
//!                       leave     the sender's key in the current epoch
//!                       invite, kick   the creator's key
//!                     ─▶ Unverified::verify(key, content) ─▶ Authenticated<content>
//! ```
//!
//! [`Unverified::verify`] is the only place an event signature is checked.
//! What a handler changes in the room it does from an [`Authenticated`]
//! value, which nothing outside this file can make: an effect cannot run
//! on bytes whose signature was not checked with the key that handler
//! chose.

use hush_crypto::PublicIdentity;
use hush_proto::SequencedEvent;
use hush_proto::e2e::{self, EVENT_SIGNATURE_CONTEXT, Payload, SignedBody};
use hush_proto::msg::{decode, encode};

use crate::warning::Warning;

/// An event whose body decoded to the payload its kind names, not yet
/// authenticated.
pub(crate) struct Unverified<'e> {
    /// The event as the relay sequenced it.
    pub(crate) ev: &'e SequencedEvent,
    signature: Vec<u8>,
    /// What the signature covers (room, sender, kind, epoch, payload).
    digest: [u8; 32],
}

/// `content`, taken from an event whose signature verified with the key
/// its handler chose.
pub(crate) struct Authenticated<'e, T> {
    /// The event it came from.
    pub(crate) ev: &'e SequencedEvent,
    /// What it says.
    pub(crate) content: T,
}

impl<'e> Unverified<'e> {
    /// Decodes `ev`'s body once: a signed body whose payload is of the
    /// event's kind, for this room. Otherwise the `malformed` warning.
    pub(crate) fn decode(
        ev: &'e SequencedEvent,
        room: &hush_proto::RoomName,
    ) -> Result<(Self, Payload), Warning> {
        if ev.event.room != *room {
            // Signatures bind the room, so this cannot be genuine here.
            return Err(Warning::Malformed { other_room: true });
        }
        // Only the canonical encoding (audit I1): postcard accepts
        // over-long varints, and a relay re-encoding a body would split the
        // members' hash chains and defeat the recognition of our own events.
        let decoded = decode::<SignedBody>(&ev.event.body)
            .ok()
            .filter(|body| encode(body) == ev.event.body)
            .and_then(|body| {
                decode::<Payload>(&body.payload)
                    .ok()
                    .filter(|p| p.kind() == ev.event.kind && encode(p) == body.payload)
                    .map(|p| (body, p))
            });
        let Some((body, payload)) = decoded else {
            return Err(Warning::Malformed { other_room: false });
        };
        let digest = e2e::signing_digest(
            &ev.event.room,
            &ev.event.sender,
            ev.event.kind,
            ev.event.epoch,
            &body.payload,
        );
        Ok((
            Self {
                ev,
                signature: body.signature,
                digest,
            },
            payload,
        ))
    }

    /// The one signature check: `content` is authenticated if the event's
    /// signature verifies with `key`.
    pub(crate) fn verify<T>(
        &self,
        key: &PublicIdentity,
        content: T,
    ) -> Option<Authenticated<'e, T>> {
        key.verify(EVENT_SIGNATURE_CONTEXT, &self.digest, &self.signature)
            .ok()
            .map(|()| Authenticated {
                ev: self.ev,
                content,
            })
    }
}
