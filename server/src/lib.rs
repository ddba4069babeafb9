//! # hush-server: the relay
//!
//! The relay routes and orders room events; it never holds a room key or
//! a plaintext. It owns the listener, connections, rooms, fan-out, the
//! durable [`log`], limits and shutdown.
#![forbid(unsafe_code)]

pub mod log;
