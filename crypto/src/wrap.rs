//! RSAES-OAEP (SHA-256, MGF1-SHA-256) key wrap with a purpose label.
//!
//! Only [`Secret32`]s are ever wrapped. The label (`hush/v1/<purpose>`)
//! binds the wrap to its use: a key wrapped for a room epoch does not
//! unwrap as a link secret.
//!
//! Two ways to unwrap, chosen by who could have produced the ciphertext
//! (see SECURITY.md on RUSTSEC-2023-0071):
//! - [`Identity::unwrap`] reports failure; callers use it only on
//!   envelopes inside a commit whose signature they have already verified.
//! - [`Identity::unwrap_or_random`] never reports failure: on any error it
//!   returns a random secret (implicit rejection, as TLS does), so failure
//!   shows only later, as a failed seal, on the same code path.

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
        let mut rng = rand::rngs::SysRng;
        let plain = zeroize::Zeroizing::new(
            self.rsa()
                .decrypt_blinded(&mut rng, oaep(label), wrapped)
                .map_err(|_| CryptoError::UnwrapFailed)?,
        );
        Secret32::from_slice(&plain).ok_or(CryptoError::UnwrapFailed)
    }

    /// Unwraps with implicit rejection: on any failure returns a fresh
    /// random secret instead of an error, doing the same work either way.
    #[must_use]
    pub fn unwrap_or_random(&self, label: &str, wrapped: &[u8]) -> Secret32 {
        let fallback = Secret32::random();
        let result = self.unwrap(label, wrapped);
        // Select without branching on the secret contents; the branch on
        // success is unavoidable in safe Rust, but both arms are trivial
        // moves and the RSA work above was done in full either way.
        result.unwrap_or(fallback)
    }
}
