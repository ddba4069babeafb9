//! Where a room's fresh secrets come from: the caller says.
//!
//! A [`Room`](crate::Room) draws randomness for two things, the per-run
//! session salt that keeps our message keys apart from an earlier run's
//! ([`Room::new`](crate::Room::new)) and the key of each full commit we
//! build (`commit/build.rs`). It has no generator of its own: it takes an
//! [`Entropy`], which the client builds over the OS generator,
//!
//! ```
//! let entropy = hush_room::Entropy::from_fn(hush_crypto::random_bytes);
//! # let _ = entropy;
//! ```
//!
//! and tests may build over a seeded one. (The padding of the RSA-OAEP
//! envelopes that wrap an epoch key is drawn inside `hush-crypto`.)

use core::fmt;

use hush_crypto::Secret32;

/// Fills a buffer with random bytes.
type Fill = dyn FnMut(&mut [u8]) + Send;

/// A source of random bytes, chosen by whoever makes the room. It must be
/// a cryptographically secure generator: what it returns becomes epoch
/// keys.
pub struct Entropy(Box<Fill>);

impl Entropy {
    /// Entropy that fills each buffer by calling `fill`.
    pub fn from_fn(fill: impl FnMut(&mut [u8]) + Send + 'static) -> Self {
        Self(Box::new(fill))
    }

    /// Fills `buf` with fresh bytes.
    pub(crate) fn fill(&mut self, buf: &mut [u8]) {
        (self.0)(buf);
    }

    /// 16 fresh bytes (a salt).
    pub(crate) fn salt16(&mut self) -> [u8; 16] {
        let mut salt = [0; 16];
        self.fill(&mut salt);
        salt
    }

    /// A fresh 256-bit secret (an epoch key), filled in place.
    pub(crate) fn secret32(&mut self) -> Secret32 {
        Secret32::filled_by(|bytes| self.fill(bytes))
    }
}

impl fmt::Debug for Entropy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Entropy(..)")
    }
}
