//! # hush-proto: the wire protocol
//!
//! Everything two hush peers say to each other, as types, and the rules
//! for turning bytes into them. It parses bytes and does no I/O: callers
//! (the relay in `hush-server`, the client in `hush-client`) own the
//! sockets and move bytes in and out, so every rule here is tested by
//! passing bytes between in-memory peers, including altered bytes.
//!
//! ```text
//!  TCP bytes ─▶ frame (u32 len ‖ body, len checked first)
//!                ├─ handshake: ClientHello / RelayGreeting (plain, kex shares)
//!                │             RelayAuth / ClientAuth | ClientFinished (sealed, handshake keys)
//!                └─ record: AES-256-GCM(frames)  ─▶ ClientMsg / RelayMsg  (sealed)
//!                                                     └─ RoomEvent { room, sender, kind, epoch, body }
//!                                                                                  opaque to the relay ┘
//! ```
//!
//! - [`frame`]: length-prefixed framing with the limit checked before the
//!   body is buffered; "need more" is not an error.
//! - [`handshake`]: the link handshake (X25519 + ML-KEM, signed, identities
//!   sealed) as distinct state types.
//! - [`record`]: sealed records carrying batches of frames.
//! - [`msg`]: the messages, and [`names`]: validated room names.
//! - [`code`]: invitation codes, and the SPAKE2 exchange two clients run
//!   through a relay mailbox.
//! - [`e2e`]: the end-to-end bodies members exchange inside room events.
//!
//! It must never: hold a room key or plaintext of a room message (those are
//! the client's), trust a length before checking it, or panic on input.
#![forbid(unsafe_code)]

/// The TCP port hush relays listen on unless told otherwise.
pub const DEFAULT_PORT: u16 = 40623;

pub mod code;
pub mod e2e;
pub mod frame;
pub mod handshake;
pub mod msg;
pub mod names;
pub mod record;
pub mod ticket;

pub use frame::{DEFAULT_MAX_FRAME, FrameBuffer, FrameError};
pub use handshake::{HandshakeError, Link};
pub use msg::{
    ClientMsg, CloseReason, CodeEnd, EventKind, FileRefusal, PROTOCOL_VERSION, Rejection, RelayMsg,
    RoomEvent, SequencedEvent, Welcome,
};
pub use names::RoomName;
pub use record::{RecordError, RecordOpener, RecordSealer};
