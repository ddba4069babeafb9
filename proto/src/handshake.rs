//! The link handshake (docs/PROTOCOL.md §4) as a state machine that does no I/O.
//!
//! ```text
//!  client                                              relay
//!  ClientHello{magic, version, client_nonce}  ───▶
//!                                              ◀───  RelayGreeting{magic, version, RelayHello{relay_key, relay_nonce}}
//!  (client checks relay_key against its pin)
//!  ClientAuth{client_key, OAEP(secret), PSS(transcript)} ───▶
//!                                       (relay verifies, unwraps with implicit rejection,
//!                                        derives keys from secret + transcript)
//!                                              ◀───  sealed record 0: Welcome{client fp, …}
//!  (client opens it: the relay holds its key)
//! ```
//!
//! A resumed handshake (a ticket in the hello that the relay accepts)
//! replaces message 3 with `ClientFinished`, a value only the holder of
//! the ticket's resumption secret can compute, and derives the link from
//! that secret and the transcript: no RSA on either side, both ends still
//! authenticated, keys still fresh (both nonces are in the transcript).
//!
//! Each state is its own type and each step consumes it, so a message can
//! only be handled in the state that expects it. The caller moves bytes;
//! frame bodies go in and come out.
//!
//! Keys: `secret` is 32 random bytes from the client; `th` is the SHA-256
//! transcript of hello, greeting, client key, wrapped secret and signature;
//! `c2s = HKDF(secret, salt = th, info = "hush/v1/link/c2s")`, likewise
//! `s2c`. The relay's unwrap never fails visibly: with a bad wrap it
//! derives keys from a random secret and the client fails to open the
//! Welcome (RUSTSEC-2023-0071, see SECURITY.md).

use std::sync::Arc;

use hush_crypto::{Fingerprint, Identity, PublicIdentity, Secret32, Transcript, derive_secret};

use crate::msg::{
    self, ClientAuth, ClientFinished, ClientHello, MAGIC, PROTOCOL_VERSION, RelayGreeting,
    RelayHello, RelayMsg, Welcome,
};
use crate::record::{RecordOpener, RecordSealer};
use crate::ticket::{ClientTicket, OpenedTicket, TicketKey};

/// Signature context of the client's handshake signature.
pub const LINK_AUTH_CONTEXT: &str = "hush/v1/link-auth";
/// OAEP label of the wrapped link secret.
pub const LINK_SECRET_LABEL: &str = "hush/v1/link-secret";
const TRANSCRIPT_LABEL: &str = "hush/v1/link-handshake";
const INFO_C2S: &[u8] = b"hush/v1/link/c2s";
const INFO_S2C: &[u8] = b"hush/v1/link/s2c";
const INFO_RESUMPTION: &[u8] = b"hush/v1/resumption";
const INFO_FINISHED: &[u8] = b"hush/v1/resume/client-finished";
const INFO_RESUMED_LINK: &[u8] = b"hush/v1/resume/link";

/// Why a handshake failed. Relays close without detail; clients explain.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum HandshakeError {
    /// The peer does not speak hush at all.
    #[error("the peer is not a hush relay or client")]
    NotHush,
    /// The peer speaks another protocol version.
    #[error(
        "protocol version mismatch: we speak {ours}, the peer speaks {theirs}; run the same hush release on both sides (upgrade the older one)"
    )]
    VersionMismatch {
        /// Our version.
        ours: u16,
        /// Theirs.
        theirs: u16,
    },
    /// A handshake message did not decode.
    #[error("malformed handshake message")]
    Malformed,
    /// A public key in the handshake is not one hush accepts.
    #[error("unacceptable identity key: {0}")]
    BadKey(String),
    /// The client's signature did not verify.
    #[error("client authentication failed")]
    BadSignature,
    /// The relay's Welcome did not open: it does not hold the private key
    /// it presented, or the bytes were altered.
    #[error("the relay could not prove it holds its key")]
    RelayNotAuthenticated,
    /// The first record was not a Welcome.
    #[error("unexpected message in handshake")]
    Unexpected,
    /// A local cryptographic failure (RNG).
    #[error("cryptographic failure: {0}")]
    Crypto(String),
}

fn fresh_nonce() -> [u8; 32] {
    let mut n = [0u8; 32];
    hush_crypto::random_bytes(&mut n);
    n
}

/// An established link: one sealer and one opener, keyed per direction.
pub struct Link {
    /// Seals what this side sends.
    pub sealer: RecordSealer,
    /// Opens what this side receives.
    pub opener: RecordOpener,
}

fn derive_link(secret: &Secret32, th: &[u8; 32], max_frame: usize, is_client: bool) -> Link {
    let c2s = derive_secret(secret, th, INFO_C2S);
    let s2c = derive_secret(secret, th, INFO_S2C);
    let (send, recv) = if is_client { (c2s, s2c) } else { (s2c, c2s) };
    Link {
        sealer: RecordSealer::new(send, max_frame),
        opener: RecordOpener::new(recv, max_frame),
    }
}

fn signed_part(hello_transcript: &Transcript, client_key: &[u8], wrapped: &[u8]) -> Transcript {
    let mut t = hello_transcript.clone();
    t.absorb(client_key);
    t.absorb(wrapped);
    t
}

// ─── Client side ─────────────────────────────────────────────────────────

/// Client state after sending [`ClientHello`].
pub struct ClientAwaitingGreeting {
    identity: Arc<Identity>,
    transcript: Transcript,
    resume: Option<ClientTicket>,
}

/// Starts a client handshake. Returns the state and the hello frame body.
#[must_use]
pub fn client_start(identity: Arc<Identity>) -> (ClientAwaitingGreeting, Vec<u8>) {
    client_start_resuming(identity, None)
}

/// Starts a client handshake that offers `ticket` (from this relay's last
/// Welcome) to resume without RSA. If the relay declines it, the
/// handshake goes on as a full one.
#[must_use]
pub fn client_start_resuming(
    identity: Arc<Identity>,
    ticket: Option<ClientTicket>,
) -> (ClientAwaitingGreeting, Vec<u8>) {
    let hello = msg::encode(&ClientHello {
        magic: MAGIC,
        version: PROTOCOL_VERSION,
        client_nonce: fresh_nonce(),
        ticket: ticket
            .as_ref()
            .map(|t| t.ticket.clone())
            .unwrap_or_default(),
    });
    let mut transcript = Transcript::new(TRANSCRIPT_LABEL);
    transcript.absorb(&hello);
    (
        ClientAwaitingGreeting {
            identity,
            transcript,
            resume: ticket,
        },
        hello,
    )
}

impl ClientAwaitingGreeting {
    /// Reads the relay's greeting.
    ///
    /// # Errors
    /// [`HandshakeError::NotHush`], [`HandshakeError::VersionMismatch`],
    /// [`HandshakeError::Malformed`] or [`HandshakeError::BadKey`];
    /// [`HandshakeError::Unexpected`] if the relay claims to resume a
    /// ticket we did not offer, or under another key.
    pub fn on_greeting(mut self, body: &[u8]) -> Result<ClientRelayKnown, HandshakeError> {
        if !body.starts_with(&MAGIC) {
            return Err(HandshakeError::NotHush);
        }
        let greeting: RelayGreeting = msg::decode(body).map_err(|_| HandshakeError::Malformed)?;
        if greeting.version != PROTOCOL_VERSION {
            return Err(HandshakeError::VersionMismatch {
                ours: PROTOCOL_VERSION,
                theirs: greeting.version,
            });
        }
        let hello: RelayHello =
            msg::decode(&greeting.hello).map_err(|_| HandshakeError::Malformed)?;
        let relay = PublicIdentity::from_spki_der(&hello.relay_key)
            .map_err(|e| HandshakeError::BadKey(e.to_string()))?;
        let resumed = if hello.resumed {
            match self.resume {
                Some(t) if t.relay_key == hello.relay_key => Some(t.secret),
                _ => return Err(HandshakeError::Unexpected),
            }
        } else {
            None
        };
        self.transcript.absorb(body);
        Ok(ClientRelayKnown {
            identity: self.identity,
            transcript: self.transcript,
            relay,
            resumed,
        })
    }
}

/// Client state once the relay's key is known: the caller checks it
/// against its pin before going on.
pub struct ClientRelayKnown {
    identity: Arc<Identity>,
    transcript: Transcript,
    relay: PublicIdentity,
    /// The resumption secret, when the relay accepted our ticket.
    resumed: Option<Secret32>,
}

impl ClientRelayKnown {
    /// The key the relay presented.
    #[must_use]
    pub fn relay(&self) -> &PublicIdentity {
        &self.relay
    }

    /// Whether the relay accepted our ticket.
    #[must_use]
    pub fn is_resumed(&self) -> bool {
        self.resumed.is_some()
    }

    /// Authenticates to the relay: with [`ClientAuth`] (a signature and a
    /// wrapped secret), or with [`ClientFinished`] when resuming. Returns
    /// the state and the message 3 frame body.
    ///
    /// # Errors
    /// [`HandshakeError::Crypto`] if signing or wrapping fails locally.
    pub fn authenticate(self) -> Result<(ClientAwaitingWelcome, Vec<u8>), HandshakeError> {
        if let Some(rs) = self.resumed {
            let mut t = self.transcript;
            let finished = derive_secret(&rs, &t.clone().finish(), INFO_FINISHED);
            let body = msg::encode(&ClientFinished {
                finished: *finished.expose_secret(),
            });
            t.absorb(&body);
            let th = t.finish();
            return Ok((
                ClientAwaitingWelcome {
                    master: derive_secret(&rs, &th, INFO_RESUMED_LINK),
                    th,
                    own: self.identity.fingerprint(),
                    relay: self.relay,
                },
                body,
            ));
        }
        let secret = Secret32::random();
        let wrapped = self
            .relay
            .wrap(LINK_SECRET_LABEL, &secret)
            .map_err(|e| HandshakeError::Crypto(e.to_string()))?;
        let client_key = self.identity.public().spki_der().to_vec();
        let mut t = signed_part(&self.transcript, &client_key, wrapped.as_bytes());
        let signature = self
            .identity
            .sign(LINK_AUTH_CONTEXT, &t.finish())
            .map_err(|e| HandshakeError::Crypto(e.to_string()))?;
        t.absorb(signature.as_bytes());
        let auth = msg::encode(&ClientAuth {
            client_key,
            wrapped_secret: wrapped.as_bytes().to_vec(),
            signature: signature.into_bytes(),
        });
        Ok((
            ClientAwaitingWelcome {
                master: secret,
                th: t.finish(),
                own: self.identity.fingerprint(),
                relay: self.relay,
            },
            auth,
        ))
    }
}

/// Client state after sending message 3.
pub struct ClientAwaitingWelcome {
    master: Secret32,
    th: [u8; 32],
    own: Fingerprint,
    relay: PublicIdentity,
}

/// A client's established link.
pub struct ClientLinked {
    /// The sealed link.
    pub link: Link,
    /// What the relay said about it.
    pub welcome: Welcome,
    /// The relay's key.
    pub relay: PublicIdentity,
    /// A ticket to resume the next connection with, if the relay issued
    /// one.
    pub ticket: Option<ClientTicket>,
}

impl ClientAwaitingWelcome {
    /// Opens the relay's first record, which must be a [`Welcome`] for us.
    /// `max_frame` is the frame limit this client enforces on what it
    /// receives.
    ///
    /// # Errors
    /// [`HandshakeError::RelayNotAuthenticated`] if it does not open,
    /// [`HandshakeError::Unexpected`] if it is something else.
    pub fn on_welcome(
        self,
        record: &[u8],
        max_frame: usize,
    ) -> Result<ClientLinked, HandshakeError> {
        let mut link = derive_link(&self.master, &self.th, max_frame, true);
        let mut messages: Vec<RelayMsg> = link
            .opener
            .open(record)
            .map_err(|_| HandshakeError::RelayNotAuthenticated)?;
        if messages.len() != 1 {
            return Err(HandshakeError::Unexpected);
        }
        match messages.pop() {
            Some(RelayMsg::Welcome(w)) if w.client == self.own => {
                let ticket = (!w.ticket.is_empty()).then(|| ClientTicket {
                    ticket: w.ticket.clone(),
                    expires_ms: w.ticket_expires_ms,
                    relay_key: self.relay.spki_der().to_vec(),
                    secret: derive_secret(&self.master, &self.th, INFO_RESUMPTION),
                });
                Ok(ClientLinked {
                    link,
                    welcome: w,
                    relay: self.relay,
                    ticket,
                })
            }
            _ => Err(HandshakeError::Unexpected),
        }
    }
}

// ─── Relay side ──────────────────────────────────────────────────────────

/// What the relay does with a client's hello.
pub enum RelayFirstStep {
    /// Send the greeting and wait for message 3.
    Continue(RelayAwaitingAuth, Vec<u8>),
    /// Send this greeting (which names our version) and close.
    Refuse(Vec<u8>, HandshakeError),
}

/// How a relay issues session tickets.
#[derive(Clone)]
pub struct TicketPolicy {
    /// The relay's ticket key.
    pub key: Arc<TicketKey>,
    /// How long a ticket stays valid, ms.
    pub lifetime_ms: u64,
}

fn check_hello(hello: &[u8]) -> Result<Result<ClientHello, u16>, HandshakeError> {
    if !hello.starts_with(&MAGIC) {
        return Err(HandshakeError::NotHush);
    }
    // The version sits right after the magic in every version's hello, so
    // it can be read even when the rest is another version's layout.
    let theirs = match hello.get(4..) {
        Some(rest) => postcard::take_from_bytes::<u16>(rest)
            .map(|(v, _)| v)
            .map_err(|_| HandshakeError::Malformed)?,
        None => return Err(HandshakeError::Malformed),
    };
    if theirs != PROTOCOL_VERSION {
        return Ok(Err(theirs));
    }
    msg::decode(hello)
        .map(Ok)
        .map_err(|_| HandshakeError::Malformed)
}

/// The ticket a client's hello offers (empty if none, or if the hello is
/// not one this relay reads: [`relay_start`] then says why).
#[must_use]
pub fn offered_ticket(hello: &[u8]) -> Vec<u8> {
    match check_hello(hello) {
        Ok(Ok(h)) => h.ticket,
        _ => Vec::new(),
    }
}

/// Reads a client's hello and produces the greeting. `resume` is the
/// ticket the hello offered, if the caller opened it with its ticket key
/// and claimed its id (each ticket resumes at most one connection); the
/// handshake is then a resumed one. `tickets`, if set, makes the Welcome
/// carry a fresh ticket.
///
/// # Errors
/// [`HandshakeError::NotHush`] or [`HandshakeError::Malformed`]: close
/// without reply.
pub fn relay_start(
    identity: Arc<Identity>,
    hello: &[u8],
    tickets: Option<TicketPolicy>,
    resume: Option<OpenedTicket>,
) -> Result<RelayFirstStep, HandshakeError> {
    if let Err(theirs) = check_hello(hello)? {
        let refusal = msg::encode(&RelayGreeting {
            magic: MAGIC,
            version: PROTOCOL_VERSION,
            hello: Vec::new(),
        });
        return Ok(RelayFirstStep::Refuse(
            refusal,
            HandshakeError::VersionMismatch {
                ours: PROTOCOL_VERSION,
                theirs,
            },
        ));
    }
    let greeting = msg::encode(&RelayGreeting {
        magic: MAGIC,
        version: PROTOCOL_VERSION,
        hello: msg::encode(&RelayHello {
            relay_key: identity.public().spki_der().to_vec(),
            relay_nonce: fresh_nonce(),
            resumed: resume.is_some(),
        }),
    });
    let mut transcript = Transcript::new(TRANSCRIPT_LABEL);
    transcript.absorb(hello);
    transcript.absorb(&greeting);
    Ok(RelayFirstStep::Continue(
        RelayAwaitingAuth {
            identity,
            transcript,
            tickets,
            resume,
        },
        greeting,
    ))
}

/// Relay state after sending its greeting.
pub struct RelayAwaitingAuth {
    identity: Arc<Identity>,
    transcript: Transcript,
    tickets: Option<TicketPolicy>,
    resume: Option<OpenedTicket>,
}

/// A relay handshake that has verified the client and derived keys.
pub struct RelayAccepted {
    /// The sealed link.
    pub link: Link,
    /// The authenticated client.
    pub client: Fingerprint,
    /// Wire bytes of the Welcome record to send (length-prefixed).
    pub welcome_wire: Vec<u8>,
    /// Whether this was a resumed handshake.
    pub resumed: bool,
}

impl RelayAwaitingAuth {
    /// Whether message 3 will be a [`ClientFinished`] (no RSA needed).
    #[must_use]
    pub fn is_resumed(&self) -> bool {
        self.resume.is_some()
    }

    /// Verifies message 3 and seals the Welcome. In a full handshake that
    /// is the client's [`ClientAuth`]: its signature is verified and its
    /// secret unwrapped (implicit rejection: a bad wrap is never reported
    /// here), which performs the relay's RSA private-key operation, so run
    /// it on a bounded pool. In a resumed one it is a [`ClientFinished`],
    /// checked in constant time, with no RSA at all.
    ///
    /// # Errors
    /// [`HandshakeError::Malformed`], [`HandshakeError::BadKey`] or
    /// [`HandshakeError::BadSignature`]: close without reply.
    pub fn on_client_auth(
        self,
        body: &[u8],
        max_frame: usize,
        relay_time_ms: u64,
        idle_timeout_ms: u64,
    ) -> Result<RelayAccepted, HandshakeError> {
        let resumed = self.resume.is_some();
        let (client, master, th) = match self.resume {
            Some(ticket) => {
                let fin: ClientFinished =
                    msg::decode(body).map_err(|_| HandshakeError::Malformed)?;
                let expected = derive_secret(
                    &ticket.secret,
                    &self.transcript.clone().finish(),
                    INFO_FINISHED,
                );
                if expected != Secret32::from_bytes(fin.finished) {
                    return Err(HandshakeError::BadSignature);
                }
                let mut t = self.transcript;
                t.absorb(body);
                let th = t.finish();
                let master = derive_secret(&ticket.secret, &th, INFO_RESUMED_LINK);
                (ticket.client, master, th)
            }
            None => {
                let auth: ClientAuth = msg::decode(body).map_err(|_| HandshakeError::Malformed)?;
                let client = PublicIdentity::from_spki_der(&auth.client_key)
                    .map_err(|e| HandshakeError::BadKey(e.to_string()))?;
                let mut t = signed_part(&self.transcript, &auth.client_key, &auth.wrapped_secret);
                client
                    .verify(LINK_AUTH_CONTEXT, &t.finish(), &auth.signature)
                    .map_err(|_| HandshakeError::BadSignature)?;
                t.absorb(&auth.signature);
                // Verified first, so only the key's holder can make us
                // unwrap; and the result is never reported (SECURITY.md,
                // RUSTSEC-2023-0071).
                let secret = self
                    .identity
                    .unwrap_or_random(LINK_SECRET_LABEL, &auth.wrapped_secret);
                (client.fingerprint(), secret, t.finish())
            }
        };
        let mut link = derive_link(&master, &th, max_frame, false);
        let (ticket, ticket_expires_ms) = match &self.tickets {
            Some(policy) => {
                let expires = relay_time_ms.saturating_add(policy.lifetime_ms);
                let rs = derive_secret(&master, &th, INFO_RESUMPTION);
                (policy.key.issue(&client, &rs, expires), expires)
            }
            None => (Vec::new(), 0),
        };
        let welcome = RelayMsg::Welcome(Welcome {
            client,
            relay_time_ms,
            max_frame: u32::try_from(max_frame).unwrap_or(u32::MAX),
            idle_timeout_ms,
            ticket,
            ticket_expires_ms,
        });
        let mut welcome_wire = Vec::new();
        link.sealer
            .push(&welcome)
            .and_then(|()| link.sealer.seal_pending(&mut welcome_wire))
            .map_err(|e| HandshakeError::Crypto(e.to_string()))?;
        Ok(RelayAccepted {
            link,
            client,
            welcome_wire,
            resumed,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    //! Two in-memory peers pass bytes; some bytes are altered on the way.
    use super::*;
    use crate::frame::parse_frame;
    use crate::msg::ClientMsg;
    use std::sync::OnceLock;

    const MAX: usize = crate::DEFAULT_MAX_FRAME;

    fn key(pem: &'static str, cell: &'static OnceLock<Arc<Identity>>) -> Arc<Identity> {
        cell.get_or_init(|| Arc::new(Identity::from_pem(pem, None).unwrap()))
            .clone()
    }
    fn alice() -> Arc<Identity> {
        static C: OnceLock<Arc<Identity>> = OnceLock::new();
        key(include_str!("../../keys.example/alice.pem"), &C)
    }
    fn relay() -> Arc<Identity> {
        static C: OnceLock<Arc<Identity>> = OnceLock::new();
        key(include_str!("../../keys.example/relay.pem"), &C)
    }
    fn mallory() -> Arc<Identity> {
        static C: OnceLock<Arc<Identity>> = OnceLock::new();
        key(include_str!("../../keys.example/mallory.pem"), &C)
    }

    fn unframe(wire: &[u8]) -> Vec<u8> {
        let (used, body) = parse_frame(wire, usize::MAX).unwrap().unwrap();
        assert_eq!(used, wire.len());
        body.to_vec()
    }

    fn relay_continue(hello: &[u8]) -> (RelayAwaitingAuth, Vec<u8>) {
        match relay_start(relay(), hello, None, None).unwrap() {
            RelayFirstStep::Continue(s, g) => (s, g),
            RelayFirstStep::Refuse(..) => panic!("refused"),
        }
    }

    /// A full handshake; returns both links.
    fn handshake() -> (Link, Link) {
        let (c, hello) = client_start(alice());
        let (r, greeting) = relay_continue(&hello);
        let c = c.on_greeting(&greeting).unwrap();
        assert_eq!(c.relay().fingerprint(), relay().fingerprint());
        let (c, auth) = c.authenticate().unwrap();
        let accepted = r.on_client_auth(&auth, MAX, 1, 2).unwrap();
        assert_eq!(accepted.client, alice().fingerprint());
        let linked = c.on_welcome(&unframe(&accepted.welcome_wire), MAX).unwrap();
        assert_eq!(linked.welcome.client, alice().fingerprint());
        assert_eq!(linked.relay.fingerprint(), relay().fingerprint());
        assert!(linked.ticket.is_none(), "this relay issues no tickets");
        (linked.link, accepted.link)
    }

    fn policy(key: u8) -> TicketPolicy {
        TicketPolicy {
            key: Arc::new(TicketKey::new(Secret32::from_bytes([key; 32]))),
            lifetime_ms: 60_000,
        }
    }

    /// A handshake offering `ticket` to a relay with ticket key `key`,
    /// which resumes if it opens; returns the client's new ticket, both
    /// links and whether it resumed.
    fn handshake_with_tickets(
        key: u8,
        ticket: Option<ClientTicket>,
    ) -> (Option<ClientTicket>, Link, Link, bool) {
        let (c, hello) = client_start_resuming(alice(), ticket);
        let opened = policy(key).key.open(&offered_ticket(&hello), 1);
        let (r, greeting) = match relay_start(relay(), &hello, Some(policy(key)), opened).unwrap() {
            RelayFirstStep::Continue(s, g) => (s, g),
            RelayFirstStep::Refuse(..) => panic!("refused"),
        };
        let c = c.on_greeting(&greeting).unwrap();
        let resumed = c.is_resumed();
        assert_eq!(r.is_resumed(), resumed);
        let (c, auth) = c.authenticate().unwrap();
        let accepted = r.on_client_auth(&auth, MAX, 1, 2).unwrap();
        assert_eq!(accepted.client, alice().fingerprint());
        assert_eq!(accepted.resumed, resumed);
        let linked = c.on_welcome(&unframe(&accepted.welcome_wire), MAX).unwrap();
        (linked.ticket, linked.link, accepted.link, resumed)
    }

    fn ping_works(client: &mut Link, relay: &mut Link) {
        client.sealer.push(&ClientMsg::Ping { nonce: 5 }).unwrap();
        let mut wire = Vec::new();
        client.sealer.seal_pending(&mut wire).unwrap();
        let got: Vec<ClientMsg> = relay.opener.open(&unframe(&wire)).unwrap();
        assert_eq!(got, vec![ClientMsg::Ping { nonce: 5 }]);
        relay.sealer.push(&RelayMsg::Pong { nonce: 6 }).unwrap();
        let mut wire = Vec::new();
        relay.sealer.seal_pending(&mut wire).unwrap();
        let got: Vec<RelayMsg> = client.opener.open(&unframe(&wire)).unwrap();
        assert_eq!(got, vec![RelayMsg::Pong { nonce: 6 }]);
    }

    #[test]
    fn a_ticket_resumes_with_fresh_keys_and_a_new_ticket() {
        let (ticket, mut c0, mut r0, resumed) = handshake_with_tickets(1, None);
        assert!(!resumed);
        ping_works(&mut c0, &mut r0);
        let ticket = ticket.expect("a ticket after the full handshake");
        let (next, mut c1, mut r1, resumed) = handshake_with_tickets(1, Some(ticket.clone()));
        assert!(resumed, "the relay resumed");
        ping_works(&mut c1, &mut r1);
        // Fresh keys: a record of the first link does not open on the second.
        c0.sealer.push(&ClientMsg::Ping { nonce: 1 }).unwrap();
        let mut wire = Vec::new();
        c0.sealer.seal_pending(&mut wire).unwrap();
        assert!(r1.opener.open::<ClientMsg>(&unframe(&wire)).is_err());
        let next = next.expect("a new ticket after resuming");
        assert_ne!(next.ticket, ticket.ticket);
        // Resuming twice from one ticket yields two different links too.
        let (_, mut c2, mut r2, _) = handshake_with_tickets(1, Some(ticket));
        ping_works(&mut c2, &mut r2);
        let mut wire = Vec::new();
        c2.sealer.push(&ClientMsg::Ping { nonce: 1 }).unwrap();
        c2.sealer.seal_pending(&mut wire).unwrap();
        assert!(r1.opener.open::<ClientMsg>(&unframe(&wire)).is_err());
    }

    #[test]
    fn a_ticket_another_relay_cannot_open_falls_back_to_a_full_handshake() {
        let (ticket, ..) = handshake_with_tickets(1, None);
        let (next, mut c, mut r, resumed) = handshake_with_tickets(2, ticket);
        assert!(!resumed);
        ping_works(&mut c, &mut r);
        assert!(next.is_some());
    }

    #[test]
    fn resuming_needs_the_resumption_secret() {
        let (ticket, ..) = handshake_with_tickets(1, None);
        let ticket = ticket.unwrap();
        // Someone who copied the ticket off the wire, but not its secret.
        let mut stolen = ticket.clone();
        stolen.secret = Secret32::random();
        let (c, hello) = client_start_resuming(mallory(), Some(stolen));
        let opened = policy(1).key.open(&offered_ticket(&hello), 1);
        let RelayFirstStep::Continue(r, greeting) =
            relay_start(relay(), &hello, Some(policy(1)), opened).unwrap()
        else {
            panic!("refused")
        };
        let (_, fin) = c.on_greeting(&greeting).unwrap().authenticate().unwrap();
        assert_eq!(
            r.on_client_auth(&fin, MAX, 1, 2).err(),
            Some(HandshakeError::BadSignature)
        );
        // A ClientFinished recorded from a real resumption does not work
        // in another one: the relay's nonce differs.
        let (c, hello) = client_start_resuming(alice(), Some(ticket.clone()));
        let opened = policy(1).key.open(&offered_ticket(&hello), 1);
        let RelayFirstStep::Continue(_, greeting) =
            relay_start(relay(), &hello, Some(policy(1)), opened).unwrap()
        else {
            panic!("refused")
        };
        let (_, recorded) = c.on_greeting(&greeting).unwrap().authenticate().unwrap();
        let opened = policy(1).key.open(&offered_ticket(&hello), 1);
        let RelayFirstStep::Continue(r, _) =
            relay_start(relay(), &hello, Some(policy(1)), opened).unwrap()
        else {
            panic!("refused")
        };
        assert_eq!(
            r.on_client_auth(&recorded, MAX, 1, 2).err(),
            Some(HandshakeError::BadSignature)
        );
    }

    #[test]
    fn a_relay_cannot_claim_to_resume_what_was_not_offered() {
        let (ticket, ..) = handshake_with_tickets(1, None);
        let ticket = ticket.unwrap();
        // The client offered nothing, the relay says "resumed".
        let (c, _) = client_start(alice());
        let (_, hello) = client_start_resuming(alice(), Some(ticket.clone()));
        let opened = policy(1).key.open(&offered_ticket(&hello), 1);
        let RelayFirstStep::Continue(_, greeting) =
            relay_start(relay(), &hello, Some(policy(1)), opened).unwrap()
        else {
            panic!("refused")
        };
        assert_eq!(
            c.on_greeting(&greeting).err(),
            Some(HandshakeError::Unexpected)
        );
        // The ticket was issued under another relay key.
        let mut other = ticket;
        other.relay_key = mallory().public().spki_der().to_vec();
        let (c, _) = client_start_resuming(alice(), Some(other));
        assert_eq!(
            c.on_greeting(&greeting).err(),
            Some(HandshakeError::Unexpected)
        );
    }

    #[test]
    fn handshake_then_messages_both_ways_in_batches() {
        let (mut client, mut relay) = handshake();
        for n in 0..3 {
            client.sealer.push(&ClientMsg::Ping { nonce: n }).unwrap();
        }
        let mut wire = Vec::new();
        client.sealer.seal_pending(&mut wire).unwrap();
        let got: Vec<ClientMsg> = relay.opener.open(&unframe(&wire)).unwrap();
        assert_eq!(got.len(), 3, "three messages, one record");
        assert_eq!(got[2], ClientMsg::Ping { nonce: 2 });

        relay.sealer.push(&RelayMsg::Pong { nonce: 9 }).unwrap();
        let mut wire = Vec::new();
        relay.sealer.seal_pending(&mut wire).unwrap();
        let got: Vec<RelayMsg> = client.opener.open(&unframe(&wire)).unwrap();
        assert_eq!(got, vec![RelayMsg::Pong { nonce: 9 }]);
    }

    #[test]
    fn records_cannot_be_replayed_reordered_or_altered() {
        let (mut client, mut relay) = handshake();
        let mut records = Vec::new();
        for n in 0..2 {
            client.sealer.push(&ClientMsg::Ping { nonce: n }).unwrap();
            let mut wire = Vec::new();
            client.sealer.seal_pending(&mut wire).unwrap();
            records.push(unframe(&wire));
        }
        // Reordered: record 1 before record 0.
        assert!(relay.opener.open::<ClientMsg>(&records[1]).is_err());
        let (mut client, mut relay) = handshake();
        client.sealer.push(&ClientMsg::Ping { nonce: 0 }).unwrap();
        let mut wire = Vec::new();
        client.sealer.seal_pending(&mut wire).unwrap();
        let rec = unframe(&wire);
        // Altered: every flipped bit fails.
        for bit in 0..rec.len() * 8 {
            let mut bad = rec.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            assert!(relay.opener.open::<ClientMsg>(&bad).is_err(), "bit {bit}");
        }
        assert!(relay.opener.open::<ClientMsg>(&rec).is_ok());
        // Replayed: the same record again.
        assert!(relay.opener.open::<ClientMsg>(&rec).is_err());
    }

    #[test]
    fn a_record_with_one_bad_message_yields_none_of_its_messages() {
        let (mut client, mut relay) = handshake();
        client.sealer.push(&ClientMsg::Ping { nonce: 1 }).unwrap();
        client.sealer.push_encoded(&[0xff, 0xff, 0xff]).unwrap();
        let mut wire = Vec::new();
        client.sealer.seal_pending(&mut wire).unwrap();
        let mut queue = std::collections::VecDeque::from([ClientMsg::Ping { nonce: 0 }]);
        let mut record = unframe(&wire);
        assert!(relay.opener.open_into(&mut record, &mut queue).is_err());
        assert_eq!(queue, [ClientMsg::Ping { nonce: 0 }], "only what was there");
    }

    #[test]
    fn batches_split_at_the_record_limit() {
        let (mut client, mut relay) = handshake();
        let room = crate::RoomName::new("r").unwrap();
        for i in 0..40 {
            client
                .sealer
                .push(&ClientMsg::Publish {
                    request: i,
                    event: crate::RoomEvent {
                        room: room.clone(),
                        sender: alice().fingerprint(),
                        kind: crate::EventKind::Message,
                        epoch: 1,
                        body: vec![7; 4000],
                    },
                })
                .unwrap();
        }
        let mut wire = Vec::new();
        client.sealer.seal_pending(&mut wire).unwrap();
        let mut rest = &wire[..];
        let mut total = 0;
        let mut records = 0;
        while !rest.is_empty() {
            let (used, body) = parse_frame(rest, crate::record::max_record_wire(MAX))
                .unwrap()
                .unwrap();
            total += relay.opener.open::<ClientMsg>(body).unwrap().len();
            records += 1;
            rest = &rest[used..];
        }
        assert_eq!(total, 40);
        assert!(records >= 3, "160 KB must span several 64 KiB records");
    }

    #[test]
    fn tampered_hello_or_greeting_or_auth_fails() {
        // Hello altered on the way: the relay's transcript differs from the
        // client's, so the client's signature does not verify.
        let (c, hello) = client_start(alice());
        let mut bad_hello = hello.clone();
        // Inside the client nonce (the hello ends with it and an empty
        // ticket's length byte).
        let last = bad_hello.len() - 2;
        bad_hello[last] ^= 1;
        let (r, greeting) = relay_continue(&bad_hello);
        let (_c, auth) = c.on_greeting(&greeting).unwrap().authenticate().unwrap();
        assert_eq!(
            r.on_client_auth(&auth, MAX, 0, 0).err(),
            Some(HandshakeError::BadSignature)
        );

        // Greeting altered: every bit flip is caught somewhere.
        let (_, hello) = client_start(alice());
        let (_, greeting) = relay_continue(&hello);
        for byte in 0..greeting.len() {
            let (c, hello) = client_start(alice());
            let (r, greeting) = relay_continue(&hello);
            let mut bad = greeting.clone();
            bad[byte] ^= 0x10;
            let outcome = c.on_greeting(&bad).and_then(|c| {
                let (c, auth) = c.authenticate()?;
                let acc = r.on_client_auth(&auth, MAX, 0, 0)?;
                c.on_welcome(&unframe(&acc.welcome_wire), MAX).map(|_| ())
            });
            assert!(
                outcome.is_err(),
                "greeting byte {byte} flipped went unnoticed"
            );
        }

        // ClientAuth altered: a flip at every 11th byte is refused.
        let (c, hello) = client_start(alice());
        let (_, greeting) = relay_continue(&hello);
        let (_c, auth) = c.on_greeting(&greeting).unwrap().authenticate().unwrap();
        for byte in (0..auth.len()).step_by(11) {
            let (c2, hello2) = client_start(alice());
            let (r2, greeting2) = relay_continue(&hello2);
            let (_c2, auth2) = c2.on_greeting(&greeting2).unwrap().authenticate().unwrap();
            let mut bad = auth2.clone();
            bad[byte] ^= 0x01;
            assert!(
                r2.on_client_auth(&bad, MAX, 0, 0).is_err(),
                "auth byte {byte}"
            );
        }
        let _ = auth;
    }

    #[test]
    fn tampered_welcome_is_refused() {
        let (c, hello) = client_start(alice());
        let (r, greeting) = relay_continue(&hello);
        let (c, auth) = c.on_greeting(&greeting).unwrap().authenticate().unwrap();
        let acc = r.on_client_auth(&auth, MAX, 0, 0).unwrap();
        let mut rec = unframe(&acc.welcome_wire);
        rec[0] ^= 1;
        assert_eq!(
            c.on_welcome(&rec, MAX).err(),
            Some(HandshakeError::RelayNotAuthenticated)
        );
    }

    #[test]
    fn client_signature_replayed_against_a_fresh_relay_nonce_fails() {
        let (c, hello) = client_start(alice());
        let (r, greeting) = relay_continue(&hello);
        let (_c, auth) = c.on_greeting(&greeting).unwrap().authenticate().unwrap();
        assert!(r.on_client_auth(&auth, MAX, 0, 0).is_ok());
        // An eavesdropper replays hello + auth to the relay: the relay's
        // greeting has a new nonce, so the old signature does not cover it.
        let (r2, _greeting2) = relay_continue(&hello);
        assert_eq!(
            r2.on_client_auth(&auth, MAX, 0, 0).err(),
            Some(HandshakeError::BadSignature)
        );
    }

    #[test]
    fn relay_presenting_a_key_it_does_not_hold_is_caught_at_the_welcome() {
        // Mallory forwards the real relay's greeting (so the client's pin
        // check passes) but holds only her own private key.
        let (c, hello) = client_start(alice());
        let (_, real_greeting) = relay_continue(&hello);
        let mut t = Transcript::new(TRANSCRIPT_LABEL);
        t.absorb(&hello);
        t.absorb(&real_greeting);
        let imposter = RelayAwaitingAuth {
            identity: mallory(),
            transcript: t,
            tickets: None,
            resume: None,
        };
        let (c, auth) = c
            .on_greeting(&real_greeting)
            .unwrap()
            .authenticate()
            .unwrap();
        // Implicit rejection: the imposter's unwrap "succeeds" with a
        // random secret, and nothing tells it so...
        let acc = imposter.on_client_auth(&auth, MAX, 0, 0).unwrap();
        // ...but the client cannot open its Welcome.
        assert_eq!(
            c.on_welcome(&unframe(&acc.welcome_wire), MAX).err(),
            Some(HandshakeError::RelayNotAuthenticated)
        );
    }

    #[test]
    fn wrapped_secret_that_does_not_unwrap_fails_only_at_the_welcome() {
        let (c, hello) = client_start(alice());
        let (r, greeting) = relay_continue(&hello);
        let known = c.on_greeting(&greeting).unwrap();
        // A correctly signed ClientAuth whose wrapped secret is garbage.
        let client_key = alice().public().spki_der().to_vec();
        let garbage = vec![0x5a; 384];
        let t = signed_part(&known.transcript, &client_key, &garbage);
        let signature = alice().sign(LINK_AUTH_CONTEXT, &t.finish()).unwrap();
        let auth = msg::encode(&ClientAuth {
            client_key,
            wrapped_secret: garbage,
            signature: signature.into_bytes(),
        });
        // Same path as success: the relay answers with a Welcome...
        let acc = r
            .on_client_auth(&auth, MAX, 0, 0)
            .expect("implicit rejection");
        // ...that nobody can open (the client's own secret differs).
        let (c, _) = known.authenticate().unwrap();
        assert!(c.on_welcome(&unframe(&acc.welcome_wire), MAX).is_err());
    }

    #[test]
    fn other_versions_and_other_protocols_are_told_apart() {
        // A future client: magic, version 3, then whatever.
        let mut hello = MAGIC.to_vec();
        hello.extend(postcard::to_allocvec(&3u16).unwrap());
        hello.extend([0u8; 40]);
        match relay_start(relay(), &hello, None, None).unwrap() {
            RelayFirstStep::Refuse(
                greeting,
                HandshakeError::VersionMismatch { ours: 2, theirs: 3 },
            ) => {
                // The refusal names our version in a form every client reads.
                let g: RelayGreeting = msg::decode(&greeting).unwrap();
                assert_eq!(g.version, PROTOCOL_VERSION);
                assert!(g.hello.is_empty());
            }
            _ => panic!("expected a version refusal"),
        }
        assert_eq!(
            relay_start(relay(), b"GET / HTTP/1.1\r\n", None, None).err(),
            Some(HandshakeError::NotHush)
        );
        // A client reaching a relay of another version.
        let (c, _) = client_start(alice());
        let other = msg::encode(&RelayGreeting {
            magic: MAGIC,
            version: 9,
            hello: vec![],
        });
        assert_eq!(
            c.on_greeting(&other).err(),
            Some(HandshakeError::VersionMismatch { ours: 2, theirs: 9 })
        );
        let (c, _) = client_start(alice());
        assert_eq!(
            c.on_greeting(b"SSH-2.0-OpenSSH").err(),
            Some(HandshakeError::NotHush)
        );
    }

    #[test]
    fn every_truncated_handshake_message_is_refused() {
        let (c, hello) = client_start(alice());
        for cut in 0..hello.len() {
            assert!(
                relay_start(relay(), &hello[..cut], None, None).is_err(),
                "hello cut {cut}"
            );
        }
        let (r, greeting) = relay_continue(&hello);
        for cut in 0..greeting.len() {
            let (c2, _) = client_start(alice());
            assert!(
                c2.on_greeting(&greeting[..cut]).is_err(),
                "greeting cut {cut}"
            );
        }
        let (_c, auth) = c.on_greeting(&greeting).unwrap().authenticate().unwrap();
        // Truncations stop before any RSA work: the decode fails first.
        for cut in (0..auth.len()).step_by(7) {
            let (_, hello2) = client_start(alice());
            let (r2, _) = relay_continue(&hello2);
            assert!(
                r2.on_client_auth(&auth[..cut], MAX, 0, 0).is_err(),
                "auth cut {cut}"
            );
        }
        assert!(r.on_client_auth(&auth, MAX, 0, 0).is_ok());
    }
}
