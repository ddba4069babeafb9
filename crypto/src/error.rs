//! Errors. Failures to verify or open are deliberately coarse: they say
//! *that* something failed, never why, so they cannot serve as an oracle.

use thiserror::Error;

/// A failure of a cryptographic operation.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum CryptoError {
    /// A signature did not verify (for any reason: wrong key, wrong
    /// context, altered message, malformed signature).
    #[error("signature verification failed")]
    BadSignature,
    /// A ciphertext did not open (wrong key, wrong nonce, altered bytes or
    /// associated data, truncated input).
    #[error("decryption failed")]
    OpenFailed,
    /// A wrapped key did not unwrap.
    #[error("key unwrap failed")]
    UnwrapFailed,
    /// A nonce counter reached its end; the key must be replaced.
    #[error("nonce counter exhausted: the key must be rotated")]
    NonceExhausted,
    /// A peer's key exchange share or reply is not valid (wrong size, a
    /// key that does not decode, a low-order point).
    #[error("invalid key exchange share: {0}")]
    BadShare(&'static str),
    /// The operating system's random generator failed, or an RSA operation
    /// could not run (for example a message too long for the key).
    #[error("cryptographic operation failed: {0}")]
    Internal(&'static str),
}

/// A problem with a key file's contents (not with reading the file: that is
/// the caller's I/O).
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum KeyFileError {
    /// The text is not a PEM key hush understands.
    #[error(
        "not a key hush can read (expected a PKCS#8 \"PRIVATE KEY\", an \"ENCRYPTED PRIVATE KEY\" or an SPKI \"PUBLIC KEY\" PEM block)"
    )]
    NotAKey,
    /// A key of an algorithm other than RSA, or an RSA key hush refuses.
    #[error("unsupported key: {0}")]
    Unsupported(String),
    /// The key is passphrase-protected and no passphrase was given.
    #[error("the key is protected by a passphrase")]
    PassphraseRequired,
    /// The passphrase did not decrypt the key.
    #[error("wrong passphrase (or the key file is damaged)")]
    WrongPassphrase,
    /// The key was expected to be private but is public.
    #[error("this is a public key; a private key is needed here")]
    PublicNotPrivate,
    /// Key generation or encoding failed.
    #[error("key operation failed: {0}")]
    Encoding(String),
    /// The requested key size is outside what hush allows.
    #[error("RSA key size {bits} is not allowed: use {min} to {max} bits (default {default})")]
    BadSize {
        /// The size that was asked for.
        bits: usize,
        /// Smallest size allowed.
        min: usize,
        /// Largest size allowed.
        max: usize,
        /// The default size.
        default: usize,
    },
}
