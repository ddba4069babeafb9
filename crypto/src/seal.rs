//! AES-256-GCM sealing with counter nonces.
//!
//! A nonce is `0x00000000 ‖ counter (u64 BE)`. Keys in hush are never
//! shared between senders or directions (each is derived with HKDF for one
//! sender and one direction), so a per-key counter makes every nonce unique.
//! [`NonceCounter`] is the only way to obtain a [`Nonce`] for sealing, and it
//! refuses to wrap around: when it is exhausted the key must be replaced.

use aes_gcm::aead::{Aead, AeadInOut, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key};

use crate::error::CryptoError;
use crate::secret::Secret32;

/// Bytes of an AES-GCM nonce.
pub const NONCE_LEN: usize = 12;
/// Bytes of an AES-GCM authentication tag (appended to the ciphertext).
pub const TAG_LEN: usize = 16;

/// A nonce that may be used for sealing exactly once. Not `Clone`: it is
/// consumed by [`SealingKey::seal`].
#[derive(Debug, PartialEq, Eq)]
pub struct Nonce(u64);

impl Nonce {
    /// The counter value this nonce carries (sent alongside the ciphertext
    /// where the receiver cannot infer it).
    #[must_use]
    pub fn counter(&self) -> u64 {
        self.0
    }
}

fn nonce_bytes(counter: u64) -> aes_gcm::Nonce<aes_gcm::aes::cipher::consts::U12> {
    let mut n = [0u8; NONCE_LEN];
    n[4..].copy_from_slice(&counter.to_be_bytes());
    n.into()
}

/// Hands out each counter value once, in order, and stops before it wraps.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NonceCounter {
    next: u64,
}

impl NonceCounter {
    /// A counter starting at 0.
    #[must_use]
    pub fn new() -> Self {
        Self { next: 0 }
    }

    /// A counter resuming at `next` (for state restored from disk).
    #[must_use]
    pub fn resume_at(next: u64) -> Self {
        Self { next }
    }

    /// The next nonce.
    ///
    /// # Errors
    /// [`CryptoError::NonceExhausted`] once every value below `u64::MAX`
    /// has been used; the value `u64::MAX` is never handed out, so the
    /// counter can never wrap to 0.
    pub fn next_nonce(&mut self) -> Result<Nonce, CryptoError> {
        if self.next == u64::MAX {
            return Err(CryptoError::NonceExhausted);
        }
        let n = self.next;
        self.next += 1;
        Ok(Nonce(n))
    }

    /// How many nonces have been handed out.
    #[must_use]
    pub fn used(&self) -> u64 {
        self.next
    }
}

/// An AES-256-GCM key. The cipher state (the AES key schedule and the
/// GHASH key) zeroizes on drop: the workspace turns on `aes-gcm`'s
/// `zeroize` feature, which `tests/local_secrets.rs` pins.
pub struct SealingKey {
    cipher: Aes256Gcm,
}

impl SealingKey {
    /// Builds a key from a 256-bit secret.
    #[must_use]
    pub fn new(secret: &Secret32) -> Self {
        let key = Key::<Aes256Gcm>::from(*secret.expose_secret());
        Self {
            cipher: Aes256Gcm::new(&key),
        }
    }

    /// Seals `plaintext`, authenticating `aad` too. Output is ciphertext ‖
    /// 16-byte tag.
    ///
    /// # Errors
    /// [`CryptoError::Internal`] only if the plaintext exceeds AES-GCM's
    /// limit (64 GiB), which no hush frame approaches.
    pub fn seal(&self, nonce: Nonce, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
        self.cipher
            .encrypt(
                &nonce_bytes(nonce.0),
                Payload {
                    msg: plaintext,
                    aad,
                },
            )
            .map_err(|_| CryptoError::Internal("AES-GCM seal failed"))
    }

    /// Seals `buffer` in place (plaintext in, ciphertext out, same length)
    /// and returns the tag: for callers that lay records out in their own
    /// buffers and must not copy each one.
    ///
    /// # Errors
    /// As [`Self::seal`].
    pub fn seal_in_place(
        &self,
        nonce: Nonce,
        aad: &[u8],
        buffer: &mut [u8],
    ) -> Result<[u8; TAG_LEN], CryptoError> {
        let tag = self
            .cipher
            .encrypt_inout_detached(&nonce_bytes(nonce.0), aad, buffer.into())
            .map_err(|_| CryptoError::Internal("AES-GCM seal failed"))?;
        Ok(tag.into())
    }

    /// Opens `buffer` (ciphertext ‖ tag) in place and returns the
    /// plaintext, a prefix of `buffer`. On failure the buffer's contents
    /// are unspecified and must be discarded.
    ///
    /// # Errors
    /// [`CryptoError::OpenFailed`], whatever the reason (including a
    /// buffer shorter than a tag).
    pub fn open_in_place<'b>(
        &self,
        counter: u64,
        aad: &[u8],
        buffer: &'b mut [u8],
    ) -> Result<&'b mut [u8], CryptoError> {
        let Some(split) = buffer.len().checked_sub(TAG_LEN) else {
            return Err(CryptoError::OpenFailed);
        };
        let (text, tag) = buffer.split_at_mut(split);
        let tag = aes_gcm::Tag::<aes_gcm::aes::cipher::consts::U16>::try_from(&*tag)
            .map_err(|_| CryptoError::OpenFailed)?;
        self.cipher
            .decrypt_inout_detached(&nonce_bytes(counter), aad, (&mut *text).into(), &tag)
            .map_err(|_| CryptoError::OpenFailed)?;
        Ok(text)
    }

    /// Opens a ciphertext sealed with the nonce of counter value `counter`.
    ///
    /// # Errors
    /// [`CryptoError::OpenFailed`], whatever the reason.
    pub fn open(
        &self,
        counter: u64,
        aad: &[u8],
        ciphertext: &[u8],
    ) -> Result<Vec<u8>, CryptoError> {
        self.cipher
            .decrypt(
                &nonce_bytes(counter),
                Payload {
                    msg: ciphertext,
                    aad,
                },
            )
            .map_err(|_| CryptoError::OpenFailed)
    }
}

impl core::fmt::Debug for SealingKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("SealingKey(<redacted>)")
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn counter_refuses_to_wrap() {
        let mut c = NonceCounter::resume_at(u64::MAX - 2);
        assert_eq!(c.next_nonce().map(|n| n.counter()), Ok(u64::MAX - 2));
        assert_eq!(c.next_nonce().map(|n| n.counter()), Ok(u64::MAX - 1));
        assert_eq!(c.next_nonce(), Err(CryptoError::NonceExhausted));
        assert_eq!(c.next_nonce(), Err(CryptoError::NonceExhausted));
    }

    #[test]
    fn in_place_sealing_matches_sealing() {
        let key = SealingKey::new(&Secret32::from_bytes([9; 32]));
        let plain: Vec<u8> = (0..300u16).map(|i| i as u8).collect();
        let sealed = key.seal(Nonce(5), b"aad", &plain).unwrap();
        let mut buf = plain.clone();
        let tag = key.seal_in_place(Nonce(5), b"aad", &mut buf).unwrap();
        buf.extend_from_slice(&tag);
        assert_eq!(buf, sealed);
        let mut copy = buf.clone();
        assert_eq!(key.open_in_place(5, b"aad", &mut copy).unwrap(), &plain[..]);
        for bad in [4u64, 6] {
            let mut copy = buf.clone();
            assert!(key.open_in_place(bad, b"aad", &mut copy).is_err());
        }
        let mut flipped = buf.clone();
        flipped[0] ^= 1;
        assert!(key.open_in_place(5, b"aad", &mut flipped).is_err());
        assert!(
            key.open_in_place(5, b"aad", &mut [0u8; TAG_LEN - 1])
                .is_err()
        );
    }

    #[test]
    fn counter_counts_from_zero() {
        let mut c = NonceCounter::new();
        for i in 0..5 {
            assert_eq!(c.next_nonce().map(|n| n.counter()), Ok(i));
        }
        assert_eq!(c.used(), 5);
    }
}
