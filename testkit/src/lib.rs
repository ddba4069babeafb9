//! Test helpers shared by hush's test suites, so that each suite does not
//! keep its own copy.
//!
//! - [`keys`]: the example identities in `keys.example/` (alice, bob,
//!   carol, mallory and the relay's key), each parsed once per process.
//! - [`entropy`]: random generators to give a room: the OS one, and a
//!   seeded one for tests that predict what a room draws.
//! - [`sim`]: an in-memory room simulation with no network and no threads:
//!   a [`sim::SimRelay`] applying the real relay's epoch rule, simulated
//!   [`sim::Member`]s each driving a real [`hush_room::Room`], and
//!   [`sim::pump`] to run publish / deliver rounds until nothing moves.
//!
//! Used by `room/tests/room.rs` (the room protocol tests),
//! `client/tests/` (saved state and display on top of a simulated room),
//! the root package's `tests/common/mod.rs` (end-to-end tests of the
//! `hush` binary) and `fuzz/src/entries.rs` (fuzz targets, also run over
//! their corpus by the root package's `tests/fuzz_corpus.rs`).
//!
//! Test code only: helpers panic on anything unexpected.

pub mod entropy;
pub mod keys;
pub mod nats;
pub mod sim;
