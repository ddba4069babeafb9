//! RSAES-OAEP (SHA-256, MGF1-SHA-256) key wrap with a purpose label.
//!
//! Only [`Secret32`]s are ever wrapped. The label (`hush/v1/<purpose>`)
//! binds the wrap to its use: a key wrapped for a room epoch does not
//! unwrap as a link secret.
//!
//! [`Identity::unwrap`] reports failure; callers use it only on envelopes
//! inside a commit whose signature they have already verified (see
//! SECURITY.md on RUSTSEC-2023-0071). Nothing else in hush decrypts with
//! an RSA key: the link handshake (protocol 2) exchanges ephemeral keys
//! and signs, so a relay never decrypts a stranger's bytes, and
//! [`rsa_decryptions`] counts every unwrap so that tests can pin it.

use rsa::Oaep;
use sha2::Sha256;

use crate::error::CryptoError;
use crate::identity::{Identity, PublicIdentity};
use crate::secret::Secret32;

/// An OAEP-wrapped [`Secret32`] (as long as the recipient's modulus).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct WrappedKey(Vec<u8>);

impl WrappedKey {
    /// Wraps bytes received from the wire.
    #[must_use]
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    /// The ciphertext bytes.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

/// RSA private-key decryptions this process has performed: the one call
/// that does them is [`Identity::unwrap`]. The relay must never make one
/// (link v2 signs, it does not decrypt); a test pins that.
static DECRYPTIONS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// How many RSA private-key decryptions (key unwraps) this process has
/// performed so far.
#[must_use]
pub fn rsa_decryptions() -> u64 {
    DECRYPTIONS.load(std::sync::atomic::Ordering::Relaxed)
}

fn oaep(label: &str) -> Oaep<Sha256> {
    Oaep::<Sha256>::new_with_label(label.as_bytes())
}

impl PublicIdentity {
    /// Wraps `secret` to this identity under `label`.
    ///
    /// # Errors
    /// [`CryptoError::Internal`] only if the RNG fails.
    pub fn wrap(&self, label: &str, secret: &Secret32) -> Result<WrappedKey, CryptoError> {
        let mut rng = rand::rngs::SysRng;
        self.rsa()
            .encrypt(&mut rng, oaep(label), secret.expose_secret())
            .map(WrappedKey)
            .map_err(|_| CryptoError::Internal("RSA-OAEP wrap failed"))
    }
}

impl Identity {
    /// Unwraps a key wrapped to this identity under `label`.
    ///
    /// Use only on envelopes whose authenticity was checked first (a
    /// verified commit): the error is an observable event.
    ///
    /// # Errors
    /// [`CryptoError::UnwrapFailed`], whatever the reason.
    pub fn unwrap(&self, label: &str, wrapped: &[u8]) -> Result<Secret32, CryptoError> {
        DECRYPTIONS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut rng = rand::rngs::SysRng;
        let plain = zeroize::Zeroizing::new(
            self.rsa()
                .decrypt_blinded(&mut rng, oaep(label), wrapped)
                .map_err(|_| CryptoError::UnwrapFailed)?,
        );
        Secret32::from_slice(&plain).ok_or(CryptoError::UnwrapFailed)
    }
}
