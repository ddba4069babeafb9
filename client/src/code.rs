//! Invitation codes in the client (issue #17; PROTOCOL.md §10).
//!
//! ```text
//!  inviter, in a session                     invitee, before its session
//!  /code ─▶ CodeOpen                          --code N-w-w ─▶ redeem():
//!  CodeOpened(N) ─▶ Issued: show the code       connect, CodeClaim(N, Pake)
//!  CodeData ─▶ InviterExchange ─▶ Proven:       CodeData ─▶ InviteeExchange ─▶ post our box
//!     invite the key, mark it verified           CodeData ─▶ Invited: check the relay key,
//!  CodeClosed ─▶ Failed (expired, gone, …)         pin it, mark the inviter verified
//! ```
//!
//! [`Inviting`] is the inviter's state across messages: the rooms whose
//! `/code` waits for a mailbox, and the open exchanges by number. It does
//! not outlive a link: the relay closes a connection's mailboxes when it
//! drops, so [`Inviting::connection_lost`] voids them here too. [`redeem`]
//! is the invitee's whole exchange on one connection; the session that
//! follows is an ordinary one, in the room the exchange named.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use hush_crypto::{Fingerprint, Identity};
use hush_proto::code::{Code, Failure, InviteeExchange, InviterExchange, Proven, Step};
use hush_proto::{ClientMsg, CodeEnd, RelayMsg, RoomName};

use crate::link::Connection;
use crate::pins::KnownRelays;

/// How long the invitee waits for the inviter's next step.
pub const STEP_TIMEOUT: Duration = Duration::from_secs(60);

/// What an inviter's code did.
#[derive(Debug)]
pub enum InviterEvent {
    /// A code is ready to read out.
    Issued {
        /// The code.
        code: Code,
        /// The room it admits to.
        room: RoomName,
        /// How long it stays valid unclaimed.
        valid_for: Duration,
    },
    /// Someone typed the code right and proved their key: invite it and
    /// mark it verified.
    Proven {
        /// The code.
        code: Code,
        /// The room.
        room: RoomName,
        /// Who.
        invitee: Proven,
    },
    /// The code is spent or void.
    Failed {
        /// The room, if known.
        room: Option<RoomName>,
        /// What to tell the user.
        text: String,
    },
}

/// The inviter's codes on the current link.
#[derive(Default)]
pub struct Inviting {
    waiting: VecDeque<RoomName>,
    open: HashMap<u16, InviterExchange>,
}

impl Inviting {
    /// `/code` in `room`: what to send.
    pub fn request(&mut self, room: RoomName) -> ClientMsg {
        self.waiting.push_back(room);
        ClientMsg::CodeOpen
    }

    /// The link dropped: the relay closed our mailboxes. How many codes
    /// were open or asked for.
    pub fn connection_lost(&mut self) -> usize {
        let n = self.open.len() + self.waiting.len();
        self.open.clear();
        self.waiting.clear();
        n
    }

    /// Handles a code message from the relay (`None` for any other):
    /// what to send and what happened.
    pub fn on_relay(
        &mut self,
        msg: &RelayMsg,
        relay: Fingerprint,
        me: &Identity,
        nick_in: impl Fn(&RoomName) -> String,
    ) -> Option<(Vec<ClientMsg>, Vec<InviterEvent>)> {
        let mut send = Vec::new();
        let mut events = Vec::new();
        match msg {
            RelayMsg::CodeOpened {
                number,
                expires_in_ms,
            } => {
                let room = self.waiting.pop_front()?;
                let code = Code::random(*number);
                let (exchange, step) = InviterExchange::start(code, room.clone(), relay);
                send.push(ClientMsg::CodePost {
                    number: *number,
                    data: step.encode(),
                });
                self.open.insert(*number, exchange);
                events.push(InviterEvent::Issued {
                    code,
                    room,
                    valid_for: Duration::from_millis(*expires_in_ms),
                });
            }
            RelayMsg::CodeData { number, data } => {
                let exchange = self.open.get_mut(number)?;
                let nick = nick_in(exchange.room());
                let outcome = Step::decode(data).and_then(|s| exchange.receive(s, me, &nick));
                match outcome {
                    Ok(None) => {}
                    Ok(Some(admitted)) => {
                        let exchange = self.open.remove(number)?;
                        send.push(ClientMsg::CodePost {
                            number: *number,
                            data: admitted.reply.encode(),
                        });
                        send.push(ClientMsg::CodeClose { number: *number });
                        events.push(InviterEvent::Proven {
                            code: exchange.code(),
                            room: exchange.room().clone(),
                            invitee: admitted.invitee,
                        });
                    }
                    Err(failure) => {
                        let exchange = self.open.remove(number)?;
                        send.push(ClientMsg::CodePost {
                            number: *number,
                            data: Step::Failed(failure).encode(),
                        });
                        send.push(ClientMsg::CodeClose { number: *number });
                        events.push(InviterEvent::Failed {
                            room: Some(exchange.room().clone()),
                            text: inviter_failure(exchange.code(), failure),
                        });
                    }
                }
            }
            RelayMsg::CodeClosed { number: 0, reason } => {
                let room = self.waiting.pop_front();
                events.push(InviterEvent::Failed {
                    room,
                    text: format!("no code was made: {}", end_text(*reason)),
                });
            }
            RelayMsg::CodeClosed { number, reason } => {
                let exchange = self.open.remove(number)?;
                let code = exchange.code();
                let text = match reason {
                    CodeEnd::Expired => {
                        format!("code {code} expired before anyone used it; /code makes a new one")
                    }
                    CodeEnd::Gone => format!(
                        "whoever was using code {code} went away before the exchange finished; it is spent, /code makes a new one"
                    ),
                    other => format!("code {code} is void: {}", end_text(*other)),
                };
                events.push(InviterEvent::Failed {
                    room: Some(exchange.room().clone()),
                    text,
                });
            }
            _ => return None,
        }
        Some((send, events))
    }
}

fn inviter_failure(code: Code, failure: Failure) -> String {
    match failure {
        Failure::WrongCode => format!(
            "someone tried code {code} with the wrong words: nobody was let in, and the code is spent (one try per code). If it was your contact mistyping, make a new one with /code; if not, someone overheard the number"
        ),
        Failure::BadProof => format!(
            "code {code}: the other side knew the code but its key did not prove itself; nobody was let in, and the code is spent"
        ),
        Failure::Malformed => format!(
            "code {code}: the other side broke the exchange; nobody was let in, and the code is spent"
        ),
        Failure::OwnKey => format!(
            "code {code} was used with your own key: a code is for someone else; it is spent, /code makes a new one"
        ),
    }
}

/// What a refusal or end of a mailbox means, for either side.
#[must_use]
pub fn end_text(reason: CodeEnd) -> &'static str {
    match reason {
        CodeEnd::Unknown => {
            "the relay has no code with this number (never made, or long gone): check the number, or ask for a new code"
        }
        CodeEnd::Used => {
            "this code was already used (a code is good for one try): ask for a new one"
        }
        CodeEnd::Expired => "this code expired (a code is valid for 10 minutes): ask for a new one",
        CodeEnd::Closed => "the other side ended the exchange",
        CodeEnd::Gone => {
            "the other side's connection dropped, so the code is void: ask for a new one"
        }
        CodeEnd::Full => {
            "the relay holds as many open codes as it allows; wait for one to be used or to expire"
        }
        CodeEnd::TooManyClaims => {
            "you tried more codes than the relay allows per hour; wait, then try again"
        }
        CodeEnd::TooMuch => {
            "the other side sent more than a code exchange needs; the code is spent: make or ask for a new one"
        }
    }
}

/// What the invitee learned from a code.
#[derive(Debug)]
pub struct Redeemed {
    /// The room to join.
    pub room: RoomName,
    /// Who invited us, proven.
    pub inviter: Proven,
    /// The relay's key, as both sides see it.
    pub relay: Fingerprint,
    /// Whether its key was pinned now (first contact).
    pub pinned_now: bool,
}

/// Runs the invitee's side of `code` against the relay at `server`, as
/// `identity` called `nick`: claims the mailbox, proves our key, checks
/// the inviter's, and that the relay we reached is the one the inviter
/// sees. A relay never contacted before is pinned only after that.
///
/// # Errors
/// A sentence for the user saying what failed and what to do.
pub async fn redeem(
    server: &str,
    identity: Arc<Identity>,
    nick: &str,
    max_frame: usize,
    pins: &KnownRelays,
    expect: Option<Fingerprint>,
    code: Code,
) -> Result<Redeemed, String> {
    let pinned = pins.pinned(server).map_err(|e| e.to_string())?;
    let mut conn = Connection::connect(server, identity.clone(), max_frame, |relay| {
        if let Some(e) = expect.filter(|e| *e != relay.fingerprint()) {
            return Err(format!(
                "the relay at {server} presents the key {}, not {e} that --expect names: the code was not used; check the address and the fingerprint you were given",
                relay.fingerprint()
            ));
        }
        match pinned.filter(|p| *p != relay.fingerprint()) {
            Some(p) => Err(format!(
                "the relay at {server} presents the key {}, but {} pins {p}: someone may be intercepting the connection; do not use the code, and confirm the relay's key with its operator",
                relay.fingerprint(),
                pins.path().display()
            )),
            None => Ok(()),
        }
    })
    .await
    .map_err(|e| format!("cannot reach the relay at {server} to use the code: {e}"))?;
    let relay = conn.relay.fingerprint();
    let (mut exchange, first) = InviteeExchange::start(code);
    let number = code.number;
    conn.writer
        .send(&ClientMsg::CodeClaim {
            number,
            data: first.encode(),
        })
        .await
        .map_err(|e| e.to_string())?;
    let invited = loop {
        let msg = match tokio::time::timeout(STEP_TIMEOUT, conn.reader.recv()).await {
            Ok(Ok(m)) => m,
            Ok(Err(e)) => {
                return Err(format!(
                    "the connection to the relay dropped during the code exchange ({e}); ask for a new code"
                ));
            }
            Err(_) => {
                return Err(format!(
                    "the inviter did not answer within {} s; ask them to stay connected and make a new code",
                    STEP_TIMEOUT.as_secs()
                ));
            }
        };
        match msg {
            RelayMsg::CodeData { number: n, data } if n == number => {
                let outcome =
                    Step::decode(&data).and_then(|s| exchange.receive(s, &identity, nick));
                match outcome {
                    Ok(Err(step)) => conn
                        .writer
                        .send(&ClientMsg::CodePost {
                            number,
                            data: step.encode(),
                        })
                        .await
                        .map_err(|e| e.to_string())?,
                    Ok(Ok(invited)) => break invited,
                    Err(failure) => {
                        let _ = conn.writer.send(&ClientMsg::CodeClose { number }).await;
                        return Err(invitee_failure(code, failure));
                    }
                }
            }
            RelayMsg::CodeClosed { number: n, reason } if n == number => {
                return Err(format!("code {code}: {}", end_text(reason)));
            }
            RelayMsg::Ping { nonce } => {
                let _ = conn.writer.send(&ClientMsg::Pong { nonce }).await;
            }
            RelayMsg::Closing { reason } => {
                return Err(format!(
                    "the relay closed the connection during the code exchange: {}",
                    crate::display::closing_text(reason)
                ));
            }
            _ => {}
        }
    };
    let _ = conn.writer.send(&ClientMsg::CodeClose { number }).await;
    let _ = conn.writer.shutdown().await;
    if invited.relay != relay {
        return Err(format!(
            "the code was right, but the relay you reached at {server} presents the key {relay} while the inviter's relay is {}: your connection is being intercepted, or the inviter uses another address. Nothing was joined or pinned",
            invited.relay
        ));
    }
    if invited.inviter.key.fingerprint() == identity.fingerprint() {
        return Err("this code was made by your own key: give it to someone else".into());
    }
    let pinned_now = match pins.check(server, relay).map_err(|e| e.to_string())? {
        crate::pins::PinCheck::Pinned => true,
        crate::pins::PinCheck::Known => false,
    };
    Ok(Redeemed {
        room: invited.room,
        inviter: invited.inviter,
        relay,
        pinned_now,
    })
}

fn invitee_failure(code: Code, failure: Failure) -> String {
    match failure {
        Failure::WrongCode => format!(
            "code {code} did not match: it was mistyped, or it is not the code the inviter made. The code is now spent (one try per code): ask for a new one"
        ),
        Failure::BadProof => format!(
            "code {code}: the inviter's key did not prove itself; nothing was joined. Ask for a new code"
        ),
        Failure::Malformed => format!(
            "code {code}: the other side broke the exchange; nothing was joined. Ask for a new code"
        ),
        Failure::OwnKey => format!(
            "code {code} was made with the key you used it with: give it to someone else, or use their key"
        ),
    }
}
