//! # hush-proto: the wire protocol
//!
//! Wire messages, framing limits, the protocol version, the link handshake
//! state machine and room event types. Parses bytes, does no I/O.
#![forbid(unsafe_code)]
