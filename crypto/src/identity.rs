//! Identity keys and fingerprints.
//!
//! An [`Identity`] is an RSA private key (PKCS#8 PEM on disk, optionally
//! passphrase-encrypted); a [`PublicIdentity`] is its public half (SPKI PEM
//! on disk, SPKI DER on the wire). A [`Fingerprint`] is SHA-256 of the SPKI
//! DER, shown as `SHA256:` + unpadded standard base64: exactly what
//! `openssl pkey -pubin -outform DER | openssl dgst -sha256 -binary | base64`
//! gives, minus the `=` padding, the form ssh users know.

use core::fmt;
use core::str::FromStr;

use base64ct::{Base64Unpadded, Encoding};
use pkcs8::{DecodePrivateKey, EncodePrivateKey, LineEnding};
use rsa::pkcs8::{DecodePublicKey, EncodePublicKey};
use rsa::traits::PublicKeyParts;
use zeroize::Zeroizing;

use crate::error::KeyFileError;

/// Smallest RSA modulus hush accepts, for generation and for any key it
/// parses: below 2048 bits RSA is no longer considered safe.
pub const MIN_BITS: usize = 2048;
/// Largest RSA modulus hush accepts: larger keys only cost time, and bound
/// the work a hostile peer can ask of us.
pub const MAX_BITS: usize = 8192;
/// Default size: RSA-3072 gives about 128-bit security.
pub const DEFAULT_BITS: usize = 3072;
/// Characters of the fingerprint (after `SHA256:`) shown as a short id.
pub const SHORT_ID_LEN: usize = 8;

const FINGERPRINT_PREFIX: &str = "SHA256:";

/// SHA-256 of an identity's SPKI DER: who someone is, in hush.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fingerprint([u8; 32]);

impl Fingerprint {
    /// The fingerprint of an SPKI DER encoding.
    #[must_use]
    pub fn of_spki_der(der: &[u8]) -> Self {
        Self(crate::sha256(der))
    }

    /// Wraps raw digest bytes (as carried on the wire).
    #[must_use]
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The raw 32 digest bytes.
    #[must_use]
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The short id shown next to nicknames: the first
    /// [`SHORT_ID_LEN`] characters of the base64 form.
    #[must_use]
    pub fn short_id(&self) -> String {
        let full = Base64Unpadded::encode_string(&self.0);
        full[..SHORT_ID_LEN].to_owned()
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{FINGERPRINT_PREFIX}{}",
            Base64Unpadded::encode_string(&self.0)
        )
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Why a string is not a fingerprint.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "not a fingerprint: expected SHA256: followed by 43 base64 characters, as `hush fingerprint` prints"
)]
pub struct BadFingerprint;

impl FromStr for Fingerprint {
    type Err = BadFingerprint;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let b64 = s
            .trim()
            .strip_prefix(FINGERPRINT_PREFIX)
            .ok_or(BadFingerprint)?;
        let mut out = [0u8; 32];
        let decoded = Base64Unpadded::decode(b64, &mut out).map_err(|_| BadFingerprint)?;
        if decoded.len() != 32 {
            return Err(BadFingerprint);
        }
        Ok(Self(out))
    }
}

/// The public half of an identity, with its SPKI DER and fingerprint
/// computed once at parse time.
#[derive(Clone)]
pub struct PublicIdentity {
    key: rsa::PublicKey,
    spki_der: Vec<u8>,
    fingerprint: Fingerprint,
}

impl PublicIdentity {
    fn from_key(key: rsa::PublicKey) -> Result<Self, KeyFileError> {
        let bits = key.size() * 8;
        if !(MIN_BITS..=MAX_BITS).contains(&bits) {
            return Err(KeyFileError::Unsupported(format!(
                "RSA key of {bits} bits (hush accepts {MIN_BITS} to {MAX_BITS} bits)"
            )));
        }
        let spki_der = key
            .to_public_key_der()
            .map_err(|e| KeyFileError::Encoding(e.to_string()))?
            .into_vec();
        let fingerprint = Fingerprint::of_spki_der(&spki_der);
        Ok(Self {
            key,
            spki_der,
            fingerprint,
        })
    }

    /// Parses an SPKI DER public key, as carried on the wire.
    ///
    /// # Errors
    /// [`KeyFileError::NotAKey`] if it is not an RSA SPKI structure, or
    /// [`KeyFileError::Unsupported`] for a size outside 2048..=8192 bits.
    pub fn from_spki_der(der: &[u8]) -> Result<Self, KeyFileError> {
        let key = rsa::PublicKey::from_public_key_der(der).map_err(|_| KeyFileError::NotAKey)?;
        let parsed = Self::from_key(key)?;
        // Only the canonical encoding is accepted, so a fingerprint names
        // exactly one byte string.
        if parsed.spki_der != der {
            return Err(KeyFileError::NotAKey);
        }
        Ok(parsed)
    }

    /// Parses an SPKI `PUBLIC KEY` PEM.
    ///
    /// # Errors
    /// As [`Self::from_spki_der`].
    pub fn from_pem(pem: &str) -> Result<Self, KeyFileError> {
        let key = rsa::PublicKey::from_public_key_pem(pem_block(pem))
            .map_err(|_| KeyFileError::NotAKey)?;
        Self::from_key(key)
    }

    /// The SPKI PEM text (as written to `*.pub` files).
    ///
    /// # Errors
    /// Only if encoding fails, which does not happen for a valid key.
    pub fn to_pem(&self) -> Result<String, KeyFileError> {
        self.key
            .to_public_key_pem(LineEnding::LF)
            .map_err(|e| KeyFileError::Encoding(e.to_string()))
    }

    /// The SPKI DER bytes (what the fingerprint is computed over).
    #[must_use]
    pub fn spki_der(&self) -> &[u8] {
        &self.spki_der
    }

    /// The identity's fingerprint.
    #[must_use]
    pub fn fingerprint(&self) -> Fingerprint {
        self.fingerprint
    }

    /// Modulus size in bits.
    #[must_use]
    pub fn bits(&self) -> usize {
        self.key.size() * 8
    }

    pub(crate) fn rsa(&self) -> &rsa::PublicKey {
        &self.key
    }
}

impl PartialEq for PublicIdentity {
    fn eq(&self, other: &Self) -> bool {
        self.fingerprint == other.fingerprint
    }
}
impl Eq for PublicIdentity {}

impl fmt::Debug for PublicIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicIdentity({})", self.fingerprint)
    }
}

/// A private identity key. Its `Debug` shows only the fingerprint; the
/// `rsa` key zeroizes its own limbs on drop.
pub struct Identity {
    key: rsa::PrivateKey,
    public: PublicIdentity,
}

/// What kind of key a PEM text holds, told apart before any decoding so
/// errors can be precise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PemKind {
    /// `-----BEGIN PRIVATE KEY-----` (PKCS#8, clear).
    Private,
    /// `-----BEGIN ENCRYPTED PRIVATE KEY-----` (PKCS#8, passphrase).
    EncryptedPrivate,
    /// `-----BEGIN PUBLIC KEY-----` (SPKI).
    Public,
}

impl PemKind {
    /// Recognises the PEM label of the first block in `text`.
    ///
    /// # Errors
    /// [`KeyFileError::NotAKey`] for anything else, including the legacy
    /// PKCS#1 `RSA PRIVATE KEY` form, which says how to convert it.
    pub fn detect(text: &str) -> Result<Self, KeyFileError> {
        let begin = text
            .lines()
            .map(str::trim)
            .find(|l| l.starts_with("-----BEGIN "))
            .ok_or(KeyFileError::NotAKey)?;
        match begin {
            "-----BEGIN PRIVATE KEY-----" => Ok(Self::Private),
            "-----BEGIN ENCRYPTED PRIVATE KEY-----" => Ok(Self::EncryptedPrivate),
            "-----BEGIN PUBLIC KEY-----" => Ok(Self::Public),
            "-----BEGIN RSA PRIVATE KEY-----" => Err(KeyFileError::Unsupported(
                "legacy PKCS#1 key; convert it with `openssl pkcs8 -topk8 -nocrypt -in OLD -out NEW`"
                    .into(),
            )),
            _ => Err(KeyFileError::NotAKey),
        }
    }
}

impl Identity {
    /// Generates a new identity of `bits` bits, e = 65537.
    ///
    /// # Errors
    /// [`KeyFileError::BadSize`] outside 2048..=8192, before any work.
    pub fn generate(bits: usize) -> Result<Self, KeyFileError> {
        check_bits(bits)?;
        let mut rng = rand::rngs::SysRng;
        let key = rsa::PrivateKey::new(&mut rng, bits)
            .map_err(|e| KeyFileError::Encoding(e.to_string()))?;
        Self::from_key(key)
    }

    fn from_key(key: rsa::PrivateKey) -> Result<Self, KeyFileError> {
        let public = PublicIdentity::from_key(key.to_public_key())?;
        Ok(Self { key, public })
    }

    /// Parses a PKCS#8 private key PEM, encrypted or not.
    ///
    /// # Errors
    /// [`KeyFileError::PassphraseRequired`] for an encrypted key without a
    /// passphrase, [`KeyFileError::WrongPassphrase`], or
    /// [`KeyFileError::PublicNotPrivate`] / [`KeyFileError::NotAKey`].
    pub fn from_pem(pem: &str, passphrase: Option<&[u8]>) -> Result<Self, KeyFileError> {
        let pem = pem_block(pem);
        let key = match PemKind::detect(pem)? {
            PemKind::Public => return Err(KeyFileError::PublicNotPrivate),
            PemKind::Private => {
                rsa::PrivateKey::from_pkcs8_pem(pem).map_err(|_| KeyFileError::NotAKey)?
            }
            PemKind::EncryptedPrivate => {
                let pass = passphrase.ok_or(KeyFileError::PassphraseRequired)?;
                rsa::PrivateKey::from_pkcs8_encrypted_pem(pem, pass)
                    .map_err(|_| KeyFileError::WrongPassphrase)?
            }
        };
        Self::from_key(key)
    }

    /// Encodes the key as PKCS#8 PEM, encrypted (PBES2, scrypt + AES-256-CBC)
    /// when a passphrase is given.
    ///
    /// # Errors
    /// Only if encoding fails, which does not happen for a valid key.
    pub fn to_pem(&self, passphrase: Option<&[u8]>) -> Result<Zeroizing<String>, KeyFileError> {
        let encoded = match passphrase {
            None => self.key.to_pkcs8_pem(LineEnding::LF),
            Some(pass) => self.key.to_pkcs8_encrypted_pem(pass, LineEnding::LF),
        };
        encoded.map_err(|e| KeyFileError::Encoding(e.to_string()))
    }

    /// The public half.
    #[must_use]
    pub fn public(&self) -> &PublicIdentity {
        &self.public
    }

    /// Shorthand for `self.public().fingerprint()`.
    #[must_use]
    pub fn fingerprint(&self) -> Fingerprint {
        self.public.fingerprint
    }

    pub(crate) fn rsa(&self) -> &rsa::PrivateKey {
        &self.key
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Identity({}, <private>)", self.public.fingerprint)
    }
}

/// The PEM text from its first `-----BEGIN` line on. RFC 7468 allows
/// explanatory text before a PEM block, and `hush keygen` writes `# ...`
/// comment lines there (when the key was made, its fingerprint); the
/// strict PEM decoder underneath does not skip them itself.
fn pem_block(text: &str) -> &str {
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        if line.trim_start().starts_with("-----BEGIN ") {
            return &text[offset..];
        }
        offset += line.len();
    }
    text
}

/// Checks a requested key size against [`MIN_BITS`]..=[`MAX_BITS`].
///
/// # Errors
/// [`KeyFileError::BadSize`] naming the allowed range.
pub fn check_bits(bits: usize) -> Result<(), KeyFileError> {
    if (MIN_BITS..=MAX_BITS).contains(&bits) {
        Ok(())
    } else {
        Err(KeyFileError::BadSize {
            bits,
            min: MIN_BITS,
            max: MAX_BITS,
            default: DEFAULT_BITS,
        })
    }
}
