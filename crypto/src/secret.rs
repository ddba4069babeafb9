//! Fixed-size secrets: zeroized on drop, invisible to `Debug`, read only
//! through an explicit accessor, compared in constant time.

use core::fmt;
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop};

/// A 256-bit secret: a link secret, a room epoch key, a derived key.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct Secret32([u8; 32]);

impl Secret32 {
    /// A fresh random secret from the OS CSPRNG.
    #[must_use]
    pub fn random() -> Self {
        Self::filled_by(|bytes| crate::random_bytes(bytes))
    }

    /// A secret whose bytes `fill` writes in place (from a generator the
    /// caller chose), so no copy of them is left behind in a temporary.
    #[must_use]
    pub fn filled_by(fill: impl FnOnce(&mut [u8; 32])) -> Self {
        let mut secret = Self([0; 32]);
        fill(&mut secret.0);
        secret
    }

    /// Takes ownership of secret bytes. The caller should zeroize its own copy.
    #[must_use]
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// Reads a secret from a slice; `None` unless it is exactly 32 bytes.
    #[must_use]
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        let arr: [u8; 32] = bytes.try_into().ok()?;
        Some(Self(arr))
    }

    /// The secret bytes. Named so that every read of a secret is visible in
    /// review.
    #[must_use]
    pub fn expose_secret(&self) -> &[u8; 32] {
        &self.0
    }
}

impl PartialEq for Secret32 {
    fn eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}
impl Eq for Secret32 {}

impl fmt::Debug for Secret32 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret32(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_prints_nothing_secret() {
        let s = Secret32::from_bytes([0xab; 32]);
        let shown = format!("{s:?}");
        assert!(!shown.contains("ab") && !shown.contains("171"), "{shown}");
    }

    #[test]
    fn equality_is_by_value() {
        assert_eq!(Secret32::from_bytes([1; 32]), Secret32::from_bytes([1; 32]));
        assert_ne!(Secret32::from_bytes([1; 32]), Secret32::from_bytes([2; 32]));
        assert_ne!(Secret32::random(), Secret32::random());
    }

    #[test]
    fn filled_by_keeps_what_the_generator_wrote() {
        let s = Secret32::filled_by(|b| b.fill(0x5a));
        assert_eq!(s, Secret32::from_bytes([0x5a; 32]));
    }

    #[test]
    fn from_slice_requires_exact_length() {
        assert!(Secret32::from_slice(&[0; 31]).is_none());
        assert!(Secret32::from_slice(&[0; 33]).is_none());
        assert!(Secret32::from_slice(&[0; 32]).is_some());
    }
}
