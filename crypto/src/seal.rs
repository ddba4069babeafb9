//! AES-256-GCM sealing with counter nonces.
//!
//! A nonce is `0x00000000 ‖ counter (u64 BE)`. Keys in hush are never
//! shared between senders or directions (each is derived with HKDF for one
//! sender and one direction), so a per-key counter makes every nonce unique.
//! [`NonceCounter`] is the only way to obtain a [`Nonce`] for sealing, and it
//! refuses to wrap around: when it is exhausted the key must be replaced.
//!
//! The cipher is `ring`'s AES-256-GCM (2.6–2.7× RustCrypto's on this CPU
//! kind, docs/PERFORMANCE.md), held in a [`hush_wipe::Wiped`] cell so that
//! its key schedule and GHASH table are zeroed on drop (audit L7). It is
//! the same AES-256-GCM as before, byte for byte: the tests below check a
//! published vector and RustCrypto's output.

use hush_wipe::Wiped;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, UnboundKey};

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

fn nonce_bytes(counter: u64) -> [u8; NONCE_LEN] {
    let mut n = [0u8; NONCE_LEN];
    n[4..].copy_from_slice(&counter.to_be_bytes());
    n
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
/// GHASH table) is zeroed on drop, which `tests/local_secrets.rs` pins.
pub struct SealingKey {
    cipher: Wiped<LessSafeKey>,
}

impl SealingKey {
    /// Builds a key from a 256-bit secret.
    #[must_use]
    pub fn new(secret: &Secret32) -> Self {
        // A 32-byte key is always the right length for AES-256-GCM.
        let cipher = match UnboundKey::new(&AES_256_GCM, secret.expose_secret()) {
            Ok(key) => LessSafeKey::new(key),
            Err(_) => unreachable!("AES-256-GCM takes 32-byte keys"),
        };
        Self {
            cipher: Wiped::new(cipher),
        }
    }

    /// Seals `plaintext`, authenticating `aad` too. Output is ciphertext ‖
    /// 16-byte tag.
    ///
    /// # Errors
    /// [`CryptoError::Internal`] only if the plaintext exceeds AES-GCM's
    /// limit (64 GiB), which no hush frame approaches.
    pub fn seal(&self, nonce: Nonce, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
        self.seal_at(nonce_bytes(nonce.0), aad, plaintext)
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
        self.seal_in_place_at(nonce_bytes(nonce.0), aad, buffer)
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
        self.open_in_place_at(nonce_bytes(counter), aad, buffer)
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
        self.open_at(nonce_bytes(counter), aad, ciphertext)
    }

    // The nonce-taking forms, for this crate's own nonce layouts only
    // (file chunks use STREAM's): callers outside get nonces from a
    // `NonceCounter` and nowhere else.

    pub(crate) fn seal_at(
        &self,
        nonce: [u8; NONCE_LEN],
        aad: &[u8],
        plaintext: &[u8],
    ) -> Result<Vec<u8>, CryptoError> {
        let mut out = Vec::with_capacity(plaintext.len() + TAG_LEN);
        out.extend_from_slice(plaintext);
        let tag = self.seal_in_place_at(nonce, aad, &mut out)?;
        out.extend_from_slice(&tag);
        Ok(out)
    }

    pub(crate) fn seal_in_place_at(
        &self,
        nonce: [u8; NONCE_LEN],
        aad: &[u8],
        buffer: &mut [u8],
    ) -> Result<[u8; TAG_LEN], CryptoError> {
        let tag = self
            .cipher
            .get()
            .seal_in_place_separate_tag(
                ring::aead::Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                buffer,
            )
            .map_err(|_| CryptoError::Internal("AES-GCM seal failed"))?;
        let mut out = [0u8; TAG_LEN];
        out.copy_from_slice(tag.as_ref());
        Ok(out)
    }

    pub(crate) fn open_in_place_at<'b>(
        &self,
        nonce: [u8; NONCE_LEN],
        aad: &[u8],
        buffer: &'b mut [u8],
    ) -> Result<&'b mut [u8], CryptoError> {
        self.cipher
            .get()
            .open_in_place(
                ring::aead::Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                buffer,
            )
            .map_err(|_| CryptoError::OpenFailed)
    }

    pub(crate) fn open_at(
        &self,
        nonce: [u8; NONCE_LEN],
        aad: &[u8],
        ciphertext: &[u8],
    ) -> Result<Vec<u8>, CryptoError> {
        let mut out = ciphertext.to_vec();
        let len = self.open_in_place_at(nonce, aad, &mut out)?.len();
        out.truncate(len);
        Ok(out)
    }
}

/// Marker: the cipher state lives in a [`Wiped`] cell.
impl zeroize::ZeroizeOnDrop for SealingKey {}

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

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn the_cipher_is_aes_256_gcm_by_the_published_vector() {
        // McGrew and Viega, "The Galois/Counter Mode of Operation", test
        // case 16: AES-256, 96-bit IV, 60-byte plaintext, 20-byte AAD.
        let key: [u8; 32] =
            unhex("feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308")
                .try_into()
                .unwrap();
        let iv: [u8; NONCE_LEN] = unhex("cafebabefacedbaddecaf888").try_into().unwrap();
        let plain = unhex(concat!(
            "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72",
            "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39"
        ));
        let aad = unhex("feedfacedeadbeeffeedfacedeadbeefabaddad2");
        let expected = unhex(concat!(
            "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa",
            "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662",
            "76fc6ece0f4e1768cddf8853bb2d551b"
        ));
        let k = SealingKey::new(&Secret32::from_bytes(key));
        assert_eq!(k.seal_at(iv, &aad, &plain).unwrap(), expected);
        assert_eq!(k.open_at(iv, &aad, &expected).unwrap(), plain);
    }

    #[test]
    fn sealing_matches_rustcrypto_byte_for_byte() {
        // What hush sealed with RustCrypto's aes-gcm before (stored file
        // chunks, a peer on an older build) opens here, and the reverse.
        use aes_gcm::aead::{Aead, KeyInit, Payload};
        for len in [0usize, 1, 15, 16, 17, 255, 256, 1000, 4096, 32 * 1024 + 7] {
            let mut key = [0u8; 32];
            crate::random_bytes(&mut key);
            let mut plain = vec![0u8; len];
            crate::random_bytes(&mut plain);
            let mut c = [0u8; 8];
            crate::random_bytes(&mut c);
            let counter = u64::from_be_bytes(c) >> 1;
            let ours = SealingKey::new(&Secret32::from_bytes(key))
                .seal(Nonce(counter), b"hush aad", &plain)
                .unwrap();
            let theirs = aes_gcm::Aes256Gcm::new(&key.into())
                .encrypt(
                    &nonce_bytes(counter).into(),
                    Payload {
                        msg: &plain,
                        aad: b"hush aad",
                    },
                )
                .unwrap();
            assert_eq!(ours, theirs, "length {len}");
        }
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
