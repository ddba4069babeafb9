//! RSASSA-PSS signatures (SHA-256, MGF1-SHA-256, 32-byte salt) with a
//! mandatory context string.
//!
//! The signed message is `len(context) as u16 BE ‖ context ‖ message`, and
//! every context starts with [`SIGNATURE_CONTEXT_PREFIX`], so a signature
//! made for one purpose (say a link handshake) can never be presented as
//! one for another (say a room message). This is ordinary RSASSA-PSS over
//! that message: `openssl pkeyutl -verify` with `-pkeyopt rsa_padding_mode:pss`
//! checks it.

use rsa::Pss;
use sha2::Sha256;

use crate::error::CryptoError;
use crate::identity::{Identity, PublicIdentity};

/// Every signature context hush uses starts with this, then the protocol
/// version that introduced it and the purpose: `hush/v1/event`,
/// `hush/v2/link-auth`.
pub const SIGNATURE_CONTEXT_PREFIX: &str = "hush/";

/// PSS salt length in bytes (equal to the SHA-256 output, as RFC 8017
/// recommends).
pub const PSS_SALT_LEN: usize = 32;

/// An RSA-PSS signature (as long as the signer's modulus).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Signature(Vec<u8>);

impl Signature {
    /// Wraps signature bytes received from the wire.
    #[must_use]
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    /// The signature bytes.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Takes the signature bytes.
    #[must_use]
    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }
}

fn message_digest(context: &str, message: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    let ctx = context.as_bytes();
    // Contexts are short compile-time strings; clamp rather than panic.
    let len = u16::try_from(ctx.len()).unwrap_or(u16::MAX);
    let mut h = Sha256::new();
    h.update(len.to_be_bytes());
    h.update(ctx);
    h.update(message);
    h.finalize().into()
}

impl Identity {
    /// Signs `message` for the purpose named by `context`
    /// (`hush/v1/<purpose>` or `hush/v2/<purpose>`).
    ///
    /// # Errors
    /// [`CryptoError::Internal`] only if the RNG or the RSA operation fails.
    pub fn sign(&self, context: &str, message: &[u8]) -> Result<Signature, CryptoError> {
        let digest = message_digest(context, message);
        let mut rng = rand::rngs::SysRng;
        self.rsa()
            .sign_with_rng(
                &mut rng,
                Pss::<Sha256>::new_with_salt(PSS_SALT_LEN),
                &digest,
            )
            .map(Signature)
            .map_err(|_| CryptoError::Internal("RSA-PSS signing failed"))
    }
}

impl PublicIdentity {
    /// Verifies a signature made by [`Identity::sign`] with the same
    /// `context`.
    ///
    /// # Errors
    /// [`CryptoError::BadSignature`], whatever the reason.
    pub fn verify(
        &self,
        context: &str,
        message: &[u8],
        signature: &[u8],
    ) -> Result<(), CryptoError> {
        let digest = message_digest(context, message);
        self.rsa()
            .verify(
                Pss::<Sha256>::new_with_salt(PSS_SALT_LEN),
                &digest,
                signature,
            )
            .map_err(|_| CryptoError::BadSignature)
    }
}
