//! # hush-crypto: the cryptographic core of hush
//!
//! Everything secret in hush passes through this crate, and nothing in it does
//! I/O: no files, no sockets, no tokio. Callers hand it bytes and get bytes
//! back, so every primitive is tested by passing bytes around in memory,
//! including altered bytes.
//!
//! ```text
//!   identity (RSA-3072)          link / room secrets            payloads
//!   ───────────────────          ───────────────────            ────────
//!   Identity ──sign(ctx)──▶ Signature          Secret32 ──hkdf(info)──▶ SealingKey
//!   PublicIdentity ──verify(ctx)               Secret32 ──wrap(label)──▶ WrappedKey
//!   PublicIdentity ──fingerprint──▶ Fingerprint      SealingKey + NonceCounter ──seal(aad)──▶ ciphertext
//! ```
//!
//! What it owns:
//!
//! - [`identity`]: RSA identity keys, PKCS#8 / SPKI PEM encoding, optional
//!   passphrase protection, and [`Fingerprint`]s (`SHA256:` + base64, as ssh).
//! - [`sign`]: RSASSA-PSS (SHA-256, MGF1-SHA-256, 32-byte salt) over a
//!   context string, so a signature made for one purpose never verifies for
//!   another.
//! - [`wrap`]: RSAES-OAEP (SHA-256) key wrap with a purpose label.
//! - [`kdf`]: HKDF-SHA-256 with a distinct `info` per purpose and direction.
//! - [`kex`]: the links' ephemeral hybrid key exchange, X25519 + ML-KEM-768.
//! - [`pake`]: SPAKE2 (Ed25519) for invitation codes, with one sealed box
//!   per direction under keys derived from it.
//! - [`seal`]: AES-256-GCM with associated data, nonces from a
//!   [`NonceCounter`] that refuses to wrap around.
//! - [`file`](mod@file): files sent to a room: padded to Signal's size buckets, cut
//!   into 32 KiB chunks, each sealed with AES-256-GCM under a per-file key
//!   as age's STREAM (index and last-chunk flag in the nonce, file id and
//!   chunk count in the associated data).
//! - [`secret`]: fixed-size secrets that zeroize on drop, print nothing in
//!   `Debug`, and compare in constant time.
//!
//! What it must never do: log or format secret bytes, report *why* a
//! signature or ciphertext failed (failures are deliberately coarse), or
//! let a caller pick an AES-GCM nonce by hand.
//!
//! RUSTSEC-2023-0071 (Marvin) is open for every `rsa` release. The protocol
//! around this crate is arranged so that no private-key operation can serve
//! an untrusted party as a timing oracle; see `SECURITY.md`.
#![forbid(unsafe_code)]

pub mod error;
pub mod file;
pub mod identity;
pub mod kdf;
pub mod kex;
pub mod pake;
pub mod seal;
pub mod secret;
pub mod sign;
pub mod wrap;

pub use error::{CryptoError, KeyFileError};
pub use identity::{
    DEFAULT_BITS, Fingerprint, Identity, MAX_BITS, MIN_BITS, PublicIdentity, SHORT_ID_LEN,
};
pub use kdf::derive_secret;
pub use kex::{KEX_REPLY_LEN, KEX_SHARE_LEN, KexInitiator, kex_respond};
pub use seal::{NONCE_LEN, NonceCounter, SealingKey, TAG_LEN};
pub use secret::Secret32;
pub use sign::{SIGNATURE_CONTEXT_PREFIX, Signature};
pub use wrap::{WrappedKey, rsa_decryptions};

/// Fills `buf` with bytes from the operating system's CSPRNG (through
/// `rand`'s thread-local generator, which is seeded and periodically reseeded
/// from it).
pub fn random_bytes(buf: &mut [u8]) {
    use rand::Rng;
    rand::rng().fill_bytes(buf);
}

/// SHA-256 of `data`: the one hash hush uses for fingerprints, transcripts
/// and hash chains.
#[must_use]
pub fn sha256(data: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(data).into()
}

/// Incremental SHA-256, for transcript hashes built from several parts.
#[derive(Clone, Default)]
pub struct Transcript(sha2::Sha256);

impl Transcript {
    /// Starts a transcript with a domain-separation label.
    #[must_use]
    pub fn new(label: &str) -> Self {
        let mut t = Self::default();
        t.absorb(label.as_bytes());
        t
    }

    /// Absorbs one part, length-prefixed so that parts can never run
    /// together ambiguously.
    pub fn absorb(&mut self, part: &[u8]) {
        use sha2::Digest;
        self.0.update((part.len() as u64).to_be_bytes());
        self.0.update(part);
    }

    /// The hash of everything absorbed so far.
    #[must_use]
    pub fn finish(&self) -> [u8; 32] {
        use sha2::Digest;
        self.0.clone().finalize().into()
    }
}
