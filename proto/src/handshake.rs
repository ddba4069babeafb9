//! The link handshake (docs/PROTOCOL.md §4) as a state machine that does no I/O.
//!
//! ```text
//!  client                                                            relay
//!  ClientHello{magic, version, nonce, kex share, max_frame, ticket} ───▶      (in clear)
//!                  ◀─── RelayGreeting{magic, version, RelayHello{nonce, kex reply, resumed}}  (in clear)
//!       both sides: hybrid kex secret (+ ticket's secret when resuming) + transcript ─▶ handshake keys
//!                  ◀─── [hs s2c] RelayAuth{relay_key, PSS(transcript)}          (full handshakes)
//!  (client checks the signature, then the key against its pin)
//!  [hs c2s] ClientAuth{client_key, PSS(transcript)}  or, resuming, [hs c2s] ClientFinished ───▶
//!                  ◀─── [s2c] Welcome{client fp, limits, ticket}
//! ```
//!
//! This is the SIGMA-I / TLS 1.3 shape. Both sides contribute a fresh
//! X25519 + ML-KEM-768 share (`hush_crypto::kex`), so every link, resumed
//! ones too, has forward secrecy, and recorded traffic stays confidential
//! unless both X25519 and ML-KEM are broken. Identities travel only under
//! the handshake keys: a network observer sees neither the relay's key nor
//! the client's. Each side proves its identity by an RSA-PSS signature
//! over the transcript, which covers both shares; no RSA private key ever
//! decrypts anything here. A resumed handshake (a ticket in the hello that
//! the relay accepts) mixes the ticket's resumption secret into the key
//! schedule instead of signing: no RSA on either side, and only the
//! ticket's holder and the relay can complete it.
//!
//! Key schedule (every HKDF is SHA-256, `derive_secret(ikm, salt, info)`):
//!
//! ```text
//!   th_g   = transcript(hello, greeting)
//!   early  = HKDF(resumption secret, or 32 zero bytes, "", "hush/v2/link/early")
//!   hs     = HKDF(kex secret, early ‖ th_g, "hush/v2/link/handshake")
//!   hs_c2s = HKDF(hs, th_g, "hush/v2/link/hs-c2s"), hs_s2c likewise
//!   th     = transcript(hello, greeting, relay_key, relay signature,
//!                       client_key, client signature | client finished)
//!   master = HKDF(hs, th, "hush/v2/link/master")
//!   c2s    = HKDF(master, th, "hush/v2/link/c2s"), s2c likewise
//!   resumption secret of the next ticket = HKDF(master, th, "hush/v2/resumption")
//! ```
//!
//! Each state is its own type and each step consumes it, so a message can
//! only be handled in the state that expects it. The caller moves bytes:
//! frame bodies go in, and framed wire bytes come out.

use std::sync::Arc;

use hush_crypto::{
    Fingerprint, Identity, KexInitiator, PublicIdentity, Secret32, Transcript, derive_secret,
    kex_respond,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::frame::{self, MAX_FRAME_CEILING, MIN_MAX_FRAME};
use crate::msg::{
    self, ClientAuth, ClientFinished, ClientHello, MAGIC, PROTOCOL_VERSION, RelayAuth,
    RelayGreeting, RelayHello, RelayMsg, Welcome,
};
use crate::record::{RecordOpener, RecordSealer};
use crate::ticket::{ClientTicket, OpenedTicket, TicketKey};

/// Signature context of the client's handshake signature.
pub const LINK_AUTH_CONTEXT: &str = "hush/v2/link-auth";
/// Signature context of the relay's handshake signature.
pub const RELAY_AUTH_CONTEXT: &str = "hush/v2/link-relay-auth";
const TRANSCRIPT_LABEL: &str = "hush/v2/link-handshake";
const INFO_EARLY: &[u8] = b"hush/v2/link/early";
const INFO_HANDSHAKE: &[u8] = b"hush/v2/link/handshake";
const INFO_HS_C2S: &[u8] = b"hush/v2/link/hs-c2s";
const INFO_HS_S2C: &[u8] = b"hush/v2/link/hs-s2c";
const INFO_MASTER: &[u8] = b"hush/v2/link/master";
const INFO_C2S: &[u8] = b"hush/v2/link/c2s";
const INFO_S2C: &[u8] = b"hush/v2/link/s2c";
const INFO_RESUMPTION: &[u8] = b"hush/v2/resumption";
const INFO_FINISHED: &[u8] = b"hush/v2/resume/client-finished";
/// Frame limit of the two sealed handshake messages: a key, a signature
/// and their encoding (RSA-8192 at most: about 2.1 KB).
const HANDSHAKE_RECORD_LIMIT: usize = 8 * 1024;
/// Largest frame either side reads before the handshake is done: every
/// handshake message (a hello with its share and ticket, about 1.5 KB; a
/// sealed proof with an RSA-8192 key, about 2.1 KB) fits, and nobody
/// unauthenticated makes a peer buffer more. The link's own limits apply
/// from the Welcome on.
pub const MAX_HANDSHAKE_FRAME: usize = crate::record::max_record_wire(HANDSHAKE_RECORD_LIMIT);

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
    /// A handshake message did not decode, or a limit in it is out of range.
    #[error("malformed handshake message")]
    Malformed,
    /// A public key in the handshake is not one hush accepts.
    #[error("unacceptable identity key: {0}")]
    BadKey(String),
    /// The peer's ephemeral key exchange share is invalid.
    #[error("invalid key exchange share: {0}")]
    BadShare(String),
    /// The client's signature did not verify, or its sealed message did
    /// not open.
    #[error("client authentication failed")]
    BadSignature,
    /// The relay's proof did not open or verify, or its Welcome did not
    /// open: it does not hold the key it claims, or the bytes were altered.
    #[error("the relay could not prove it holds its key")]
    RelayNotAuthenticated,
    /// A message came that this state does not expect.
    #[error("unexpected message in handshake")]
    Unexpected,
    /// A local cryptographic failure (RNG, signing).
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

/// The handshake secret and its two traffic keys.
struct HandshakeKeys {
    hs: Secret32,
    c2s: Secret32,
    s2c: Secret32,
}

impl HandshakeKeys {
    fn derive(kex: &Secret32, resumption: Option<&Secret32>, th_g: &[u8; 32]) -> Self {
        let zero = Secret32::from_bytes([0; 32]);
        let early = derive_secret(resumption.unwrap_or(&zero), b"", INFO_EARLY);
        let mut salt = [0u8; 64];
        salt[..32].copy_from_slice(early.expose_secret());
        salt[32..].copy_from_slice(th_g);
        let hs = derive_secret(kex, &salt, INFO_HANDSHAKE);
        Self {
            c2s: derive_secret(&hs, th_g, INFO_HS_C2S),
            s2c: derive_secret(&hs, th_g, INFO_HS_S2C),
            hs,
        }
    }

    /// The link's own keys, once the transcript `th` is complete; and the
    /// resumption secret for a ticket.
    fn link(
        &self,
        th: &[u8; 32],
        send_limit: usize,
        recv_limit: usize,
        is_client: bool,
    ) -> (Link, Secret32) {
        let master = derive_secret(&self.hs, th, INFO_MASTER);
        let c2s = derive_secret(&master, th, INFO_C2S);
        let s2c = derive_secret(&master, th, INFO_S2C);
        let (send, recv) = if is_client { (c2s, s2c) } else { (s2c, c2s) };
        let link = Link {
            sealer: RecordSealer::new(send, send_limit),
            opener: RecordOpener::new(recv, recv_limit),
        };
        (link, derive_secret(&master, th, INFO_RESUMPTION))
    }
}

/// Seals one handshake message as a framed record under `key`.
fn seal_one<T: Serialize>(key: &Secret32, message: &T) -> Result<Vec<u8>, HandshakeError> {
    let mut sealer = RecordSealer::new(key.clone(), HANDSHAKE_RECORD_LIMIT);
    let mut wire = Vec::new();
    sealer
        .push(message)
        .and_then(|()| sealer.seal_pending(&mut wire))
        .map_err(|e| HandshakeError::Crypto(e.to_string()))?;
    Ok(wire)
}

/// Opens a record that must hold exactly one handshake message.
fn open_one<T: DeserializeOwned>(key: &Secret32, record: &[u8]) -> Option<T> {
    let mut opener = RecordOpener::new(key.clone(), HANDSHAKE_RECORD_LIMIT);
    let mut messages: Vec<T> = opener.open(record).ok()?;
    if messages.len() == 1 {
        messages.pop()
    } else {
        None
    }
}

fn framed(body: &[u8]) -> Result<Vec<u8>, HandshakeError> {
    let mut out = Vec::with_capacity(body.len() + frame::LENGTH_PREFIX);
    frame::encode_frame(body, usize::MAX, &mut out).map_err(|_| HandshakeError::Malformed)?;
    Ok(out)
}

// ─── Client side ─────────────────────────────────────────────────────────

/// Client state after sending [`ClientHello`].
pub struct ClientAwaitingGreeting {
    identity: Arc<Identity>,
    transcript: Transcript,
    kex: KexInitiator,
    resume: Option<ClientTicket>,
    max_frame: usize,
}

/// Starts a full client handshake that accepts frames up to
/// [`MAX_FRAME_CEILING`]. Returns the state and the hello frame body.
#[must_use]
pub fn client_start(identity: Arc<Identity>) -> (ClientAwaitingGreeting, Vec<u8>) {
    client_start_resuming(identity, None, MAX_FRAME_CEILING)
}

/// Starts a client handshake that offers `ticket` (from this relay's last
/// Welcome) to resume without RSA; if the relay declines it, the
/// handshake goes on as a full one. `max_frame` is the largest frame body
/// this client accepts (clamped to [`MIN_MAX_FRAME`]..=[`MAX_FRAME_CEILING`]),
/// announced so that the relay never sends a larger one.
#[must_use]
pub fn client_start_resuming(
    identity: Arc<Identity>,
    ticket: Option<ClientTicket>,
    max_frame: usize,
) -> (ClientAwaitingGreeting, Vec<u8>) {
    let max_frame = max_frame.clamp(MIN_MAX_FRAME, MAX_FRAME_CEILING);
    let kex = KexInitiator::new();
    let hello = msg::encode(&ClientHello {
        magic: MAGIC,
        version: PROTOCOL_VERSION,
        client_nonce: fresh_nonce(),
        kex_share: kex.share().to_vec(),
        max_frame: u32::try_from(max_frame).unwrap_or(u32::MAX),
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
            kex,
            resume: ticket,
            max_frame,
        },
        hello,
    )
}

/// What follows the relay's greeting.
pub enum ClientGreeted {
    /// The relay resumed our ticket: its key is the one the ticket names.
    Resumed(ClientRelayKnown),
    /// A full handshake: the relay's sealed [`RelayAuth`] comes next.
    AwaitingRelayAuth(ClientAwaitingRelayAuth),
}

impl ClientAwaitingGreeting {
    /// Reads the relay's greeting and derives the handshake keys.
    ///
    /// # Errors
    /// [`HandshakeError::NotHush`], [`HandshakeError::VersionMismatch`],
    /// [`HandshakeError::Malformed`] or [`HandshakeError::BadShare`];
    /// [`HandshakeError::Unexpected`] if the relay claims to resume a
    /// ticket we did not offer.
    pub fn on_greeting(mut self, body: &[u8]) -> Result<ClientGreeted, HandshakeError> {
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
        let kex = self
            .kex
            .finish(&hello.kex_reply)
            .map_err(|e| HandshakeError::BadShare(e.to_string()))?;
        self.transcript.absorb(body);
        let th_g = self.transcript.finish();
        if hello.resumed {
            let Some(ticket) = self.resume else {
                return Err(HandshakeError::Unexpected);
            };
            let relay = PublicIdentity::from_spki_der(&ticket.relay_key)
                .map_err(|e| HandshakeError::BadKey(e.to_string()))?;
            return Ok(ClientGreeted::Resumed(ClientRelayKnown {
                identity: self.identity,
                transcript: self.transcript,
                keys: HandshakeKeys::derive(&kex, Some(&ticket.secret), &th_g),
                relay,
                resumed: true,
                max_frame: self.max_frame,
            }));
        }
        Ok(ClientGreeted::AwaitingRelayAuth(ClientAwaitingRelayAuth {
            identity: self.identity,
            transcript: self.transcript,
            keys: HandshakeKeys::derive(&kex, None, &th_g),
            max_frame: self.max_frame,
        }))
    }
}

/// Client state in a full handshake, waiting for the relay's proof.
pub struct ClientAwaitingRelayAuth {
    identity: Arc<Identity>,
    transcript: Transcript,
    keys: HandshakeKeys,
    max_frame: usize,
}

impl ClientAwaitingRelayAuth {
    /// Opens the relay's sealed [`RelayAuth`] and verifies its signature.
    ///
    /// # Errors
    /// [`HandshakeError::RelayNotAuthenticated`] if it does not open or
    /// verify; [`HandshakeError::BadKey`] if the key is not acceptable.
    pub fn on_relay_auth(mut self, record: &[u8]) -> Result<ClientRelayKnown, HandshakeError> {
        let auth: RelayAuth =
            open_one(&self.keys.s2c, record).ok_or(HandshakeError::RelayNotAuthenticated)?;
        let relay = PublicIdentity::from_spki_der(&auth.relay_key)
            .map_err(|e| HandshakeError::BadKey(e.to_string()))?;
        self.transcript.absorb(&auth.relay_key);
        relay
            .verify(
                RELAY_AUTH_CONTEXT,
                &self.transcript.finish(),
                &auth.signature,
            )
            .map_err(|_| HandshakeError::RelayNotAuthenticated)?;
        self.transcript.absorb(&auth.signature);
        Ok(ClientRelayKnown {
            identity: self.identity,
            transcript: self.transcript,
            keys: self.keys,
            relay,
            resumed: false,
            max_frame: self.max_frame,
        })
    }
}

/// Client state once the relay's key is known: the caller checks it
/// against its pin before going on (nothing about the client has been
/// sent yet).
pub struct ClientRelayKnown {
    identity: Arc<Identity>,
    transcript: Transcript,
    keys: HandshakeKeys,
    relay: PublicIdentity,
    resumed: bool,
    max_frame: usize,
}

impl ClientRelayKnown {
    /// The key the relay proved it holds (or, resuming, the key the
    /// ticket was issued under: only that relay can complete the
    /// handshake).
    #[must_use]
    pub fn relay(&self) -> &PublicIdentity {
        &self.relay
    }

    /// Whether the relay accepted our ticket.
    #[must_use]
    pub fn is_resumed(&self) -> bool {
        self.resumed
    }

    /// Authenticates to the relay: with a sealed [`ClientAuth`] (our key
    /// and signature), or with a sealed [`ClientFinished`] when resuming.
    /// Returns the state and message 3 as framed wire bytes.
    ///
    /// # Errors
    /// [`HandshakeError::Crypto`] if signing fails locally.
    pub fn authenticate(self) -> Result<(ClientAwaitingWelcome, Vec<u8>), HandshakeError> {
        let mut t = self.transcript;
        let wire = if self.resumed {
            let finished = derive_secret(&self.keys.hs, &t.finish(), INFO_FINISHED);
            t.absorb(finished.expose_secret());
            seal_one(
                &self.keys.c2s,
                &ClientFinished {
                    finished: *finished.expose_secret(),
                },
            )?
        } else {
            let client_key = self.identity.public().spki_der().to_vec();
            t.absorb(&client_key);
            let signature = self
                .identity
                .sign(LINK_AUTH_CONTEXT, &t.finish())
                .map_err(|e| HandshakeError::Crypto(e.to_string()))?;
            t.absorb(signature.as_bytes());
            seal_one(
                &self.keys.c2s,
                &ClientAuth {
                    client_key,
                    signature: signature.into_bytes(),
                },
            )?
        };
        Ok((
            ClientAwaitingWelcome {
                keys: self.keys,
                th: t.finish(),
                own: self.identity.fingerprint(),
                relay: self.relay,
                max_frame: self.max_frame,
            },
            wire,
        ))
    }
}

/// Client state after sending message 3.
pub struct ClientAwaitingWelcome {
    keys: HandshakeKeys,
    th: [u8; 32],
    own: Fingerprint,
    relay: PublicIdentity,
    max_frame: usize,
}

/// A client's established link.
pub struct ClientLinked {
    /// The sealed link. Its sealer is limited to the relay's frame limit,
    /// its opener to the one this client announced.
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
    /// The largest record (wire bytes, prefix excluded) the relay may send.
    #[must_use]
    pub fn max_record_wire(&self) -> usize {
        crate::record::max_record_wire(self.max_frame)
    }

    /// Opens the relay's first record, which must be a [`Welcome`] for us.
    ///
    /// # Errors
    /// [`HandshakeError::RelayNotAuthenticated`] if it does not open,
    /// [`HandshakeError::Unexpected`] if it is something else.
    pub fn on_welcome(self, record: &[u8]) -> Result<ClientLinked, HandshakeError> {
        let (mut link, resumption) = self
            .keys
            .link(&self.th, self.max_frame, self.max_frame, true);
        let mut messages: Vec<RelayMsg> = link
            .opener
            .open(record)
            .map_err(|_| HandshakeError::RelayNotAuthenticated)?;
        if messages.len() != 1 {
            return Err(HandshakeError::Unexpected);
        }
        match messages.pop() {
            Some(RelayMsg::Welcome(w)) if w.client == self.own => {
                // What we send must fit the relay's limit.
                link.sealer
                    .limit_frame(usize::try_from(w.max_frame).unwrap_or(usize::MAX));
                let ticket = (!w.ticket.is_empty()).then(|| ClientTicket {
                    ticket: w.ticket.clone(),
                    expires_ms: w.ticket_expires_ms,
                    relay_key: self.relay.spki_der().to_vec(),
                    secret: resumption,
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
    /// Send these framed bytes (the greeting, and in a full handshake the
    /// sealed [`RelayAuth`]) and wait for message 3.
    Continue(Box<RelayAwaitingAuth>, Vec<u8>),
    /// Send this greeting body (which names our version) and close.
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

/// Reads a client's hello and produces the greeting. `max_frame` is the
/// relay's own frame limit. `resume` is the ticket the hello offered, if
/// the caller opened it with its ticket key and claimed its id (each
/// ticket resumes at most one connection); the handshake is then a
/// resumed one. Otherwise this signs the transcript with the relay's key
/// (one RSA private-key operation: run it on a bounded pool). `tickets`,
/// if set, makes the Welcome carry a fresh ticket.
///
/// # Errors
/// [`HandshakeError::NotHush`], [`HandshakeError::Malformed`] or
/// [`HandshakeError::BadShare`]: close without reply.
pub fn relay_start(
    identity: Arc<Identity>,
    hello: &[u8],
    max_frame: usize,
    tickets: Option<TicketPolicy>,
    resume: Option<OpenedTicket>,
) -> Result<RelayFirstStep, HandshakeError> {
    let parsed = match check_hello(hello)? {
        Ok(parsed) => parsed,
        Err(theirs) => {
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
    };
    let client_max = usize::try_from(parsed.max_frame).unwrap_or(usize::MAX);
    if !(MIN_MAX_FRAME..=MAX_FRAME_CEILING).contains(&client_max) {
        return Err(HandshakeError::Malformed);
    }
    let (kex_reply, kex) =
        kex_respond(&parsed.kex_share).map_err(|e| HandshakeError::BadShare(e.to_string()))?;
    let greeting = msg::encode(&RelayGreeting {
        magic: MAGIC,
        version: PROTOCOL_VERSION,
        hello: msg::encode(&RelayHello {
            relay_nonce: fresh_nonce(),
            kex_reply,
            resumed: resume.is_some(),
        }),
    });
    let mut transcript = Transcript::new(TRANSCRIPT_LABEL);
    transcript.absorb(hello);
    transcript.absorb(&greeting);
    let th_g = transcript.finish();
    let keys = HandshakeKeys::derive(&kex, resume.as_ref().map(|t| &t.secret), &th_g);
    let mut wire = framed(&greeting)?;
    if resume.is_none() {
        let relay_key = identity.public().spki_der().to_vec();
        transcript.absorb(&relay_key);
        let signature = identity
            .sign(RELAY_AUTH_CONTEXT, &transcript.finish())
            .map_err(|e| HandshakeError::Crypto(e.to_string()))?;
        transcript.absorb(signature.as_bytes());
        wire.extend(seal_one(
            &keys.s2c,
            &RelayAuth {
                relay_key,
                signature: signature.into_bytes(),
            },
        )?);
    }
    Ok(RelayFirstStep::Continue(
        Box::new(RelayAwaitingAuth {
            transcript,
            keys,
            tickets,
            resume,
            max_frame,
            client_max,
        }),
        wire,
    ))
}

/// Relay state after sending its greeting.
pub struct RelayAwaitingAuth {
    transcript: Transcript,
    keys: HandshakeKeys,
    tickets: Option<TicketPolicy>,
    resume: Option<OpenedTicket>,
    max_frame: usize,
    client_max: usize,
}

/// A relay handshake that has verified the client and derived keys.
pub struct RelayAccepted {
    /// The sealed link. Its sealer never packs a record above the smaller
    /// of the two sides' limits.
    pub link: Link,
    /// The authenticated client.
    pub client: Fingerprint,
    /// Wire bytes of the Welcome record to send (length-prefixed).
    pub welcome_wire: Vec<u8>,
    /// Whether this was a resumed handshake.
    pub resumed: bool,
}

impl RelayAwaitingAuth {
    /// Whether message 3 will be a [`ClientFinished`].
    #[must_use]
    pub fn is_resumed(&self) -> bool {
        self.resume.is_some()
    }

    /// Opens and checks message 3, and seals the Welcome. In a full
    /// handshake that is the client's [`ClientAuth`], whose signature is
    /// verified (an RSA public-key operation). In a resumed one it is a
    /// [`ClientFinished`], checked in constant time. Neither decrypts
    /// anything with an RSA key.
    ///
    /// # Errors
    /// [`HandshakeError::BadSignature`] if it does not open or verify,
    /// [`HandshakeError::BadKey`] if the client's key is not acceptable:
    /// close without reply.
    pub fn on_client_auth(
        self,
        record: &[u8],
        relay_time_ms: u64,
        idle_timeout_ms: u64,
    ) -> Result<RelayAccepted, HandshakeError> {
        let resumed = self.resume.is_some();
        let mut t = self.transcript;
        let client = match self.resume {
            Some(ticket) => {
                let fin: ClientFinished =
                    open_one(&self.keys.c2s, record).ok_or(HandshakeError::BadSignature)?;
                let expected = derive_secret(&self.keys.hs, &t.finish(), INFO_FINISHED);
                if expected != Secret32::from_bytes(fin.finished) {
                    return Err(HandshakeError::BadSignature);
                }
                t.absorb(expected.expose_secret());
                ticket.client
            }
            None => {
                let auth: ClientAuth =
                    open_one(&self.keys.c2s, record).ok_or(HandshakeError::BadSignature)?;
                let client = PublicIdentity::from_spki_der(&auth.client_key)
                    .map_err(|e| HandshakeError::BadKey(e.to_string()))?;
                t.absorb(&auth.client_key);
                client
                    .verify(LINK_AUTH_CONTEXT, &t.finish(), &auth.signature)
                    .map_err(|_| HandshakeError::BadSignature)?;
                t.absorb(&auth.signature);
                client.fingerprint()
            }
        };
        let th = t.finish();
        let send_limit = self.max_frame.min(self.client_max);
        let (mut link, resumption) = self.keys.link(&th, send_limit, self.max_frame, false);
        let (ticket, ticket_expires_ms) = match &self.tickets {
            Some(policy) => {
                let expires = relay_time_ms.saturating_add(policy.lifetime_ms);
                (policy.key.issue(&client, &resumption, expires), expires)
            }
            None => (Vec::new(), 0),
        };
        let welcome = RelayMsg::Welcome(Welcome {
            client,
            relay_time_ms,
            max_frame: u32::try_from(self.max_frame).unwrap_or(u32::MAX),
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

    /// The frame bodies in `wire`, in order.
    fn frames(wire: &[u8]) -> Vec<Vec<u8>> {
        let mut rest = wire;
        let mut out = Vec::new();
        while !rest.is_empty() {
            let (used, body) = parse_frame(rest, usize::MAX).unwrap().unwrap();
            out.push(body.to_vec());
            rest = &rest[used..];
        }
        out
    }

    fn unframe(wire: &[u8]) -> Vec<u8> {
        let mut f = frames(wire);
        assert_eq!(f.len(), 1);
        f.pop().unwrap()
    }

    /// The relay's answer to `hello` in a full handshake: its state, the
    /// greeting and the sealed relay proof.
    fn relay_continue(hello: &[u8]) -> (Box<RelayAwaitingAuth>, Vec<u8>, Vec<u8>) {
        match relay_start(relay(), hello, MAX, None, None).unwrap() {
            RelayFirstStep::Continue(s, wire) => {
                let mut f = frames(&wire);
                assert_eq!(f.len(), 2, "greeting and relay proof");
                let auth = f.pop().unwrap();
                (s, f.pop().unwrap(), auth)
            }
            RelayFirstStep::Refuse(..) => panic!("refused"),
        }
    }

    fn full(greeted: ClientGreeted) -> ClientAwaitingRelayAuth {
        match greeted {
            ClientGreeted::AwaitingRelayAuth(c) => c,
            ClientGreeted::Resumed(_) => panic!("resumed"),
        }
    }

    /// Runs the client through greeting and relay proof.
    fn client_known(
        c: ClientAwaitingGreeting,
        greeting: &[u8],
        relay_auth: &[u8],
    ) -> Result<ClientRelayKnown, HandshakeError> {
        match c.on_greeting(greeting)? {
            ClientGreeted::AwaitingRelayAuth(c) => c.on_relay_auth(relay_auth),
            ClientGreeted::Resumed(_) => Err(HandshakeError::Unexpected),
        }
    }

    /// A full handshake; returns both links.
    fn handshake() -> (Link, Link) {
        let (c, hello) = client_start(alice());
        let (r, greeting, relay_auth) = relay_continue(&hello);
        let c = client_known(c, &greeting, &relay_auth).unwrap();
        assert_eq!(c.relay().fingerprint(), relay().fingerprint());
        let (c, auth) = c.authenticate().unwrap();
        let accepted = r.on_client_auth(&unframe(&auth), 1, 2).unwrap();
        assert_eq!(accepted.client, alice().fingerprint());
        let linked = c.on_welcome(&unframe(&accepted.welcome_wire)).unwrap();
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
        let (c, hello) = client_start_resuming(alice(), ticket, MAX);
        let opened = policy(key).key.open(&offered_ticket(&hello), 1);
        let (r, wire) = match relay_start(relay(), &hello, MAX, Some(policy(key)), opened).unwrap()
        {
            RelayFirstStep::Continue(s, w) => (s, frames(&w)),
            RelayFirstStep::Refuse(..) => panic!("refused"),
        };
        let c = match c.on_greeting(&wire[0]).unwrap() {
            ClientGreeted::Resumed(c) => {
                assert_eq!(wire.len(), 1, "no relay proof when resuming");
                c
            }
            ClientGreeted::AwaitingRelayAuth(c) => c.on_relay_auth(&wire[1]).unwrap(),
        };
        let resumed = c.is_resumed();
        assert_eq!(r.is_resumed(), resumed);
        let (c, auth) = c.authenticate().unwrap();
        let accepted = r.on_client_auth(&unframe(&auth), 1, 2).unwrap();
        assert_eq!(accepted.client, alice().fingerprint());
        assert_eq!(accepted.resumed, resumed);
        let linked = c.on_welcome(&unframe(&accepted.welcome_wire)).unwrap();
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
        assert_ne!(next.secret, ticket.secret);
        // Resuming twice from one ticket yields two different links too.
        let (_, mut c2, mut r2, _) = handshake_with_tickets(1, Some(ticket));
        ping_works(&mut c2, &mut r2);
        let mut wire = Vec::new();
        c2.sealer.push(&ClientMsg::Ping { nonce: 1 }).unwrap();
        c2.sealer.seal_pending(&mut wire).unwrap();
        assert!(r1.opener.open::<ClientMsg>(&unframe(&wire)).is_err());
    }

    /// Forward secrecy for resumed links: the ticket and its resumption
    /// secret alone, without the ephemeral shares, do not give a resumed
    /// link's keys. Someone holding both (a stolen ticket secret) but only
    /// recording the wire derives other keys than the two ends did.
    #[test]
    fn a_resumed_link_needs_the_ephemeral_exchange_not_just_the_ticket() {
        let (ticket, ..) = handshake_with_tickets(1, None);
        let ticket = ticket.unwrap();
        let (c, hello) = client_start_resuming(alice(), Some(ticket.clone()), MAX);
        let opened = policy(1).key.open(&offered_ticket(&hello), 1);
        let RelayFirstStep::Continue(r, wire) =
            relay_start(relay(), &hello, MAX, Some(policy(1)), opened).unwrap()
        else {
            panic!("refused")
        };
        let greeting = unframe(&wire);
        // The recorder runs its own exchange against the recorded reply:
        // with the ticket secret it still gets other handshake keys.
        let (recorder, _) = client_start_resuming(alice(), Some(ticket), MAX);
        let ClientGreeted::Resumed(rec) = recorder.on_greeting(&greeting).unwrap() else {
            panic!("resumed")
        };
        let ClientGreeted::Resumed(real) = c.on_greeting(&greeting).unwrap() else {
            panic!("resumed")
        };
        assert_ne!(rec.keys.c2s, real.keys.c2s);
        let (_, forged) = rec.authenticate().unwrap();
        assert_eq!(
            r.on_client_auth(&unframe(&forged), 1, 2).err(),
            Some(HandshakeError::BadSignature)
        );
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
        let (c, hello) = client_start_resuming(mallory(), Some(stolen), MAX);
        let opened = policy(1).key.open(&offered_ticket(&hello), 1);
        let RelayFirstStep::Continue(r, wire) =
            relay_start(relay(), &hello, MAX, Some(policy(1)), opened).unwrap()
        else {
            panic!("refused")
        };
        let ClientGreeted::Resumed(c) = c.on_greeting(&unframe(&wire)).unwrap() else {
            panic!("resumed")
        };
        let (_, fin) = c.authenticate().unwrap();
        assert_eq!(
            r.on_client_auth(&unframe(&fin), 1, 2).err(),
            Some(HandshakeError::BadSignature)
        );
        // A ClientFinished recorded from a real resumption does not work
        // in another one: the shares and the relay's nonce differ.
        let (c, hello) = client_start_resuming(alice(), Some(ticket.clone()), MAX);
        let opened = policy(1).key.open(&offered_ticket(&hello), 1);
        let RelayFirstStep::Continue(_, wire) =
            relay_start(relay(), &hello, MAX, Some(policy(1)), opened).unwrap()
        else {
            panic!("refused")
        };
        let ClientGreeted::Resumed(c) = c.on_greeting(&unframe(&wire)).unwrap() else {
            panic!("resumed")
        };
        let (_, recorded) = c.authenticate().unwrap();
        let opened = policy(1).key.open(&offered_ticket(&hello), 1);
        let RelayFirstStep::Continue(r, _) =
            relay_start(relay(), &hello, MAX, Some(policy(1)), opened).unwrap()
        else {
            panic!("refused")
        };
        assert_eq!(
            r.on_client_auth(&unframe(&recorded), 1, 2).err(),
            Some(HandshakeError::BadSignature)
        );
    }

    #[test]
    fn a_relay_cannot_claim_to_resume_what_was_not_offered() {
        let (ticket, ..) = handshake_with_tickets(1, None);
        let ticket = ticket.unwrap();
        // The client offered nothing, the relay says "resumed".
        let (c, _) = client_start(alice());
        let (_, hello) = client_start_resuming(alice(), Some(ticket.clone()), MAX);
        let opened = policy(1).key.open(&offered_ticket(&hello), 1);
        let RelayFirstStep::Continue(_, wire) =
            relay_start(relay(), &hello, MAX, Some(policy(1)), opened).unwrap()
        else {
            panic!("refused")
        };
        assert!(matches!(
            c.on_greeting(&unframe(&wire)),
            Err(HandshakeError::Unexpected)
        ));
        // Mallory, without the ticket key, says "resumed" to a client that
        // offered a ticket: the client's keys need the ticket's secret,
        // which she lacks, so her Welcome does not open.
        let (c, hello) = client_start_resuming(alice(), Some(ticket.clone()), MAX);
        let forged = OpenedTicket {
            id: [0; 16],
            client: alice().fingerprint(),
            secret: Secret32::random(),
            expires_ms: u64::MAX,
        };
        let RelayFirstStep::Continue(r, wire) =
            relay_start(mallory(), &hello, MAX, Some(policy(9)), Some(forged)).unwrap()
        else {
            panic!("refused")
        };
        let ClientGreeted::Resumed(c) = c.on_greeting(&unframe(&wire)).unwrap() else {
            panic!("resumed")
        };
        assert_eq!(
            c.relay().fingerprint(),
            relay().fingerprint(),
            "the ticket's relay"
        );
        let (c, fin) = c.authenticate().unwrap();
        assert_eq!(
            r.on_client_auth(&unframe(&fin), 1, 2).err(),
            Some(HandshakeError::BadSignature),
            "she cannot open the client's finished message either"
        );
        let _ = c;
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

    /// M7: the relay never seals a record above the limit the client
    /// announced, even when its own limit is higher, and tells the client
    /// its own limit for what the client sends.
    #[test]
    fn records_respect_the_smaller_of_both_limits() {
        let big = 1024 * 1024;
        let (c, hello) = client_start_resuming(alice(), None, 8 * 1024);
        let RelayFirstStep::Continue(r, wire) =
            relay_start(relay(), &hello, big, None, None).unwrap()
        else {
            panic!("refused")
        };
        let f = frames(&wire);
        let (c, auth) = client_known(c, &f[0], &f[1])
            .unwrap()
            .authenticate()
            .unwrap();
        let mut acc = r.on_client_auth(&unframe(&auth), 0, 0).unwrap();
        let linked = c.on_welcome(&unframe(&acc.welcome_wire)).unwrap();
        assert_eq!(linked.welcome.max_frame as usize, big);
        for _ in 0..4 {
            acc.link.sealer.push(&RelayMsg::Pong { nonce: 1 }).unwrap();
        }
        acc.link.sealer.push_encoded(&vec![0; 6000]).unwrap();
        acc.link.sealer.push_encoded(&vec![0; 6000]).unwrap();
        let mut wire = Vec::new();
        acc.link.sealer.seal_pending(&mut wire).unwrap();
        for body in frames(&wire) {
            assert!(body.len() <= crate::record::max_record_wire(8 * 1024));
        }
        assert!(
            acc.link.sealer.push_encoded(&vec![0; 9000]).is_err(),
            "larger than the client accepts"
        );
        // Announced limits outside the range are refused.
        for bad in [0u32, 100, u32::MAX] {
            let (_, hello) = client_start(alice());
            let mut h: ClientHello = msg::decode(&hello).unwrap();
            h.max_frame = bad;
            assert_eq!(
                relay_start(relay(), &msg::encode(&h), MAX, None, None).err(),
                Some(HandshakeError::Malformed),
                "{bad}"
            );
        }
    }

    /// The altered-bytes treatment: a flip anywhere in the hello, the
    /// greeting, the relay's proof or the client's message 3 makes the
    /// handshake fail closed, at the latest when the Welcome is opened.
    fn outcome(
        flip_hello: Option<usize>,
        flip_greeting: Option<usize>,
        flip_relay_auth: Option<usize>,
        flip_auth: Option<usize>,
    ) -> Result<(), HandshakeError> {
        let flip = |mut b: Vec<u8>, at: Option<usize>| {
            if let Some(i) = at {
                let i = i % b.len();
                b[i] ^= 0x10;
            }
            b
        };
        let (c, hello) = client_start(alice());
        let RelayFirstStep::Continue(r, wire) =
            relay_start(relay(), &flip(hello, flip_hello), MAX, None, None)?
        else {
            return Err(HandshakeError::Unexpected);
        };
        let f = frames(&wire);
        let greeting = flip(f[0].clone(), flip_greeting);
        let relay_auth = flip(f[1].clone(), flip_relay_auth);
        let (c, auth) = client_known(c, &greeting, &relay_auth)?.authenticate()?;
        let auth = flip(unframe(&auth), flip_auth);
        let acc = r.on_client_auth(&auth, 0, 0)?;
        c.on_welcome(&unframe(&acc.welcome_wire)).map(|_| ())
    }

    #[test]
    fn every_altered_handshake_field_fails_closed() {
        assert!(outcome(None, None, None, None).is_ok());
        let (_, hello) = client_start(alice());
        let (_, greeting, relay_auth) = relay_continue(&hello);
        let (c, _) = client_start(alice());
        let _ = c;
        // Every 23rd byte of each message: every field of each is hit.
        for i in (0..hello.len()).step_by(23) {
            assert!(
                outcome(Some(i), None, None, None).is_err(),
                "hello byte {i}"
            );
        }
        for i in (0..greeting.len()).step_by(23) {
            assert!(
                outcome(None, Some(i), None, None).is_err(),
                "greeting byte {i}"
            );
        }
        for i in (0..relay_auth.len()).step_by(23) {
            assert!(
                matches!(
                    outcome(None, None, Some(i), None),
                    Err(HandshakeError::RelayNotAuthenticated)
                ),
                "relay proof byte {i}"
            );
        }
        let auth_len = {
            let (c, hello) = client_start(alice());
            let (_, g, ra) = relay_continue(&hello);
            unframe(&client_known(c, &g, &ra).unwrap().authenticate().unwrap().1).len()
        };
        for i in (0..auth_len).step_by(23) {
            assert!(
                matches!(
                    outcome(None, None, None, Some(i)),
                    Err(HandshakeError::BadSignature)
                ),
                "client auth byte {i}"
            );
        }
    }

    #[test]
    fn tampered_welcome_is_refused() {
        let (c, hello) = client_start(alice());
        let (r, greeting, relay_auth) = relay_continue(&hello);
        let (c, auth) = client_known(c, &greeting, &relay_auth)
            .unwrap()
            .authenticate()
            .unwrap();
        let acc = r.on_client_auth(&unframe(&auth), 0, 0).unwrap();
        let mut rec = unframe(&acc.welcome_wire);
        rec[0] ^= 1;
        assert_eq!(
            c.on_welcome(&rec).err(),
            Some(HandshakeError::RelayNotAuthenticated)
        );
    }

    /// Replayed or reordered handshake messages fail: each is bound to
    /// both fresh shares.
    #[test]
    fn replayed_or_reordered_handshake_messages_fail() {
        let (c, hello) = client_start(alice());
        let (r, greeting, relay_auth) = relay_continue(&hello);
        let (_c, auth) = client_known(c, &greeting, &relay_auth)
            .unwrap()
            .authenticate()
            .unwrap();
        let auth = unframe(&auth);
        assert!(r.on_client_auth(&auth, 0, 0).is_ok());
        // An eavesdropper replays hello + message 3 to the relay: its new
        // share gives new handshake keys, and message 3 does not open.
        let (r2, ..) = relay_continue(&hello);
        assert_eq!(
            r2.on_client_auth(&auth, 0, 0).err(),
            Some(HandshakeError::BadSignature)
        );
        // A relay proof from another handshake, replayed to a client.
        let (c, hello) = client_start(alice());
        let (_, greeting, _) = relay_continue(&hello);
        assert_eq!(
            full(c.on_greeting(&greeting).unwrap())
                .on_relay_auth(&relay_auth)
                .err(),
            Some(HandshakeError::RelayNotAuthenticated)
        );
        // Out of order: the relay's proof given as message 3, the hello
        // given as the relay's proof, the greeting given as the hello.
        let (c, hello) = client_start(alice());
        let (r, greeting, relay_auth) = relay_continue(&hello);
        assert!(r.on_client_auth(&relay_auth, 0, 0).is_err());
        assert!(
            full(c.on_greeting(&greeting).unwrap())
                .on_relay_auth(&hello)
                .is_err()
        );
        assert!(relay_start(relay(), &greeting, MAX, None, None).is_err());
    }

    /// Mallory sits in the middle with her own key. The client sees her
    /// key, not the relay's (so its pin check refuses her), and she cannot
    /// pass off the real relay's proof: it is bound to the real relay's
    /// shares, not hers.
    #[test]
    fn a_relay_presenting_a_key_it_does_not_hold_fails() {
        let (c, hello) = client_start(alice());
        let RelayFirstStep::Continue(_, wire) =
            relay_start(mallory(), &hello, MAX, None, None).unwrap()
        else {
            panic!("refused")
        };
        let f = frames(&wire);
        let known = client_known(c, &f[0], &f[1]).unwrap();
        assert_eq!(known.relay().fingerprint(), mallory().fingerprint());
        // Her greeting with the real relay's proof (to the same hello).
        let (c, hello) = client_start(alice());
        let (_, _, real_proof) = relay_continue(&hello);
        let RelayFirstStep::Continue(_, wire) =
            relay_start(mallory(), &hello, MAX, None, None).unwrap()
        else {
            panic!("refused")
        };
        assert_eq!(
            client_known(c, &frames(&wire)[0], &real_proof).err(),
            Some(HandshakeError::RelayNotAuthenticated)
        );
    }

    #[test]
    fn other_versions_and_other_protocols_are_told_apart() {
        // A future client: magic, version 3, then whatever.
        let mut hello = MAGIC.to_vec();
        hello.extend(postcard::to_allocvec(&3u16).unwrap());
        hello.extend([0u8; 40]);
        match relay_start(relay(), &hello, MAX, None, None).unwrap() {
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
            relay_start(relay(), b"GET / HTTP/1.1\r\n", MAX, None, None).err(),
            Some(HandshakeError::NotHush)
        );
        // A client reaching a relay of another version.
        let (c, _) = client_start(alice());
        let other = msg::encode(&RelayGreeting {
            magic: MAGIC,
            version: 9,
            hello: vec![],
        });
        assert!(matches!(
            c.on_greeting(&other),
            Err(HandshakeError::VersionMismatch { ours: 2, theirs: 9 })
        ));
        let (c, _) = client_start(alice());
        assert!(matches!(
            c.on_greeting(b"SSH-2.0-OpenSSH"),
            Err(HandshakeError::NotHush)
        ));
    }

    #[test]
    fn every_truncated_handshake_message_is_refused() {
        let (c, hello) = client_start(alice());
        for cut in (0..hello.len()).step_by(5) {
            assert!(
                relay_start(relay(), &hello[..cut], MAX, None, None).is_err(),
                "hello cut {cut}"
            );
        }
        let (r, greeting, relay_auth) = relay_continue(&hello);
        for cut in 0..greeting.len() {
            let (c2, _) = client_start(alice());
            assert!(
                c2.on_greeting(&greeting[..cut]).is_err(),
                "greeting cut {cut}"
            );
        }
        let awaiting = full(c.on_greeting(&greeting).unwrap());
        for cut in (0..relay_auth.len()).step_by(7) {
            let (c2, hello2) = client_start(alice());
            let (_, g2, ra2) = relay_continue(&hello2);
            assert!(
                full(c2.on_greeting(&g2).unwrap())
                    .on_relay_auth(&ra2[..cut])
                    .is_err(),
                "relay proof cut {cut}"
            );
        }
        let (_c, auth) = awaiting
            .on_relay_auth(&relay_auth)
            .unwrap()
            .authenticate()
            .unwrap();
        let auth = unframe(&auth);
        // Truncations fail to open: no RSA work at all.
        for cut in (0..auth.len()).step_by(7) {
            let (_, hello2) = client_start(alice());
            let (r2, ..) = relay_continue(&hello2);
            assert!(
                r2.on_client_auth(&auth[..cut], 0, 0).is_err(),
                "auth cut {cut}"
            );
        }
        assert!(r.on_client_auth(&auth, 0, 0).is_ok());
    }
}
