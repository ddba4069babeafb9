//! Session tickets: resuming a link without RSA.
//!
//! ```text
//!  full handshake ──▶ both sides derive  rs = HKDF(master, th, "hush/v2/resumption")
//!                     relay sends, in the Welcome:
//!                       ticket = id(16) ‖ AES-256-GCM_{K_id}( client fp ‖ rs ‖ expires_ms )
//!                       K_id   = HKDF(ticket key, salt = id, "hush/v1/ticket")
//!  next connection ──▶ ClientHello{…, ticket}; the relay opens it, claims `id`
//!                     once in its ledger; `rs` enters the key schedule beside a
//!                     fresh ephemeral exchange (docs/PROTOCOL.md §4.6)
//! ```
//!
//! The ticket key is the relay's own 32-byte secret, kept on disk beside
//! the log so that tickets survive a restart. Every ticket has its own
//! random id and so its own derived key, sealed once (nonce 0): no nonce
//! bookkeeping survives restarts. A ticket names the client it was issued
//! to, so resuming authenticates that client as its full handshake did.

use hush_crypto::{Fingerprint, NonceCounter, SealingKey, Secret32, derive_secret};
use serde::{Deserialize, Serialize};

use crate::msg;

/// Bytes of a ticket's id.
pub const TICKET_ID_LEN: usize = 16;
/// Longest ticket the relay will try to open.
pub const MAX_TICKET_LEN: usize = 256;
const TICKET_INFO: &[u8] = b"hush/v1/ticket";
const TICKET_AAD: &[u8] = b"hush/v1/ticket";

/// What a ticket holds, sealed. Zeroized when dropped (audit L7).
#[derive(Serialize, Deserialize, zeroize::Zeroize, zeroize::ZeroizeOnDrop)]
struct TicketPlain {
    client: [u8; 32],
    secret: [u8; 32],
    expires_ms: u64,
}

/// The relay's ticket key.
pub struct TicketKey {
    master: Secret32,
}

/// A ticket the relay opened and found current.
pub struct OpenedTicket {
    /// Its id: the relay accepts each id once.
    pub id: [u8; TICKET_ID_LEN],
    /// The client it was issued to.
    pub client: Fingerprint,
    /// When it expires, ms since the UNIX epoch.
    pub expires_ms: u64,
    /// The resumption secret both sides hold.
    pub(crate) secret: Secret32,
}

impl TicketKey {
    /// A ticket key from its 32 secret bytes.
    #[must_use]
    pub fn new(master: Secret32) -> Self {
        Self { master }
    }

    fn key_for(&self, id: &[u8]) -> SealingKey {
        SealingKey::new(&derive_secret(&self.master, id, TICKET_INFO))
    }

    /// Seals a ticket for `client` carrying `secret`.
    #[must_use]
    pub fn issue(&self, client: &Fingerprint, secret: &Secret32, expires_ms: u64) -> Vec<u8> {
        let mut id = [0u8; TICKET_ID_LEN];
        hush_crypto::random_bytes(&mut id);
        let mut plain = msg::encode(&TicketPlain {
            client: *client.as_bytes(),
            secret: *secret.expose_secret(),
            expires_ms,
        });
        let mut out = id.to_vec();
        // Each id has its own key, used for this one seal: counter 0.
        let sealed = NonceCounter::new()
            .next_nonce()
            .ok()
            .and_then(|n| self.key_for(&id).seal(n, TICKET_AAD, &plain).ok());
        zeroize::Zeroize::zeroize(&mut plain);
        match sealed {
            Some(sealed) => {
                out.extend_from_slice(&sealed);
                out
            }
            // Unreachable (a fresh counter and a tiny plaintext); an
            // empty ticket just means "no ticket".
            None => Vec::new(),
        }
    }

    /// Opens a ticket, if it is one of ours and has not expired.
    #[must_use]
    pub fn open(&self, ticket: &[u8], now_ms: u64) -> Option<OpenedTicket> {
        if ticket.len() > MAX_TICKET_LEN {
            return None;
        }
        let (id, sealed) = ticket.split_at_checked(TICKET_ID_LEN)?;
        let mut plain = self.key_for(id).open(0, TICKET_AAD, sealed).ok()?;
        let decoded = msg::decode::<TicketPlain>(&plain).ok();
        zeroize::Zeroize::zeroize(&mut plain);
        let t = decoded?;
        if t.expires_ms <= now_ms {
            return None;
        }
        Some(OpenedTicket {
            id: id.try_into().ok()?,
            client: Fingerprint::from_bytes(t.client),
            expires_ms: t.expires_ms,
            secret: Secret32::from_bytes(t.secret),
        })
    }
}

/// What a client keeps to resume with one relay.
#[derive(Clone)]
pub struct ClientTicket {
    /// The opaque ticket.
    pub ticket: Vec<u8>,
    /// When it expires, ms since the UNIX epoch (by the relay's clock).
    pub expires_ms: u64,
    /// The relay key it was issued under (SPKI DER): a resumed handshake
    /// is with this key's holder (only it can open the ticket), and the
    /// caller's pin check sees this key.
    pub relay_key: Vec<u8>,
    pub(crate) secret: Secret32,
}

impl std::fmt::Debug for ClientTicket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientTicket")
            .field("expires_ms", &self.expires_ms)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn key(b: u8) -> TicketKey {
        TicketKey::new(Secret32::from_bytes([b; 32]))
    }

    #[test]
    fn a_ticket_opens_only_with_its_key_unaltered_and_unexpired() {
        let fp = Fingerprint::from_bytes([7; 32]);
        let secret = Secret32::from_bytes([3; 32]);
        let t = key(1).issue(&fp, &secret, 1000);
        let opened = key(1).open(&t, 999).unwrap();
        assert_eq!(opened.client, fp);
        assert_eq!(opened.expires_ms, 1000);
        assert!(opened.secret == secret);
        assert!(key(1).open(&t, 1000).is_none(), "expired");
        assert!(key(2).open(&t, 0).is_none(), "another relay's key");
        for i in 0..t.len() {
            let mut bad = t.clone();
            bad[i] ^= 0x10;
            assert!(key(1).open(&bad, 0).is_none(), "byte {i}");
        }
        assert!(key(1).open(&t[..t.len() - 1], 0).is_none());
        assert!(key(1).open(&[], 0).is_none());
        assert!(key(1).open(&[0; MAX_TICKET_LEN + 1], 0).is_none());
    }

    #[test]
    fn every_ticket_has_its_own_id() {
        let fp = Fingerprint::from_bytes([7; 32]);
        let secret = Secret32::from_bytes([3; 32]);
        let a = key(1).issue(&fp, &secret, 1000);
        let b = key(1).issue(&fp, &secret, 1000);
        assert_ne!(a[..TICKET_ID_LEN], b[..TICKET_ID_LEN]);
        assert_ne!(a, b);
    }
}
