//! The hybrid ephemeral key exchange of the link handshake: X25519 and
//! ML-KEM-768 (FIPS 203) at once, so a recorded link stays confidential
//! unless *both* are broken, a quantum computer included.
//!
//! ```text
//!   initiator (client)                         responder (relay)
//!   KexInitiator::new() ── share: x25519 pk (32) ‖ ML-KEM ek (1184) ──▶ respond(share)
//!                      ◀── reply: x25519 pk (32) ‖ ML-KEM ct (1088) ──
//!   finish(reply) ─▶ secret                                   secret ◀─┘
//!   secret = HKDF(ikm = ss_mlkem ‖ ss_x25519,
//!                 salt = Transcript("hush/v2/hybrid-kex/publics", share, reply), "hush/v2/hybrid-kex")
//! ```
//!
//! Both halves are fresh for every handshake and dropped (zeroized) once it
//! is done: that is the links' forward secrecy. The combiner hashes every
//! public value in with both shared secrets, as X-Wing does, so neither
//! share can be swapped without changing the secret. An X25519 share that
//! yields the all-zero secret (a low-order point) is refused, and so is an
//! ML-KEM key that does not decode; ML-KEM decapsulation itself never fails
//! (implicit rejection), a wrong ciphertext just gives another secret.
//! Nothing here touches RSA.

use hkdf::Hkdf;
use ml_kem::kem::{Decapsulate, Encapsulate, Kem, KeyExport, TryKeyInit};
use ml_kem::{DecapsulationKey, EncapsulationKey, MlKem768};
use sha2::Sha256;
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::Zeroize;

use crate::error::CryptoError;
use crate::secret::Secret32;

/// Bytes of an X25519 public key.
const X25519_LEN: usize = 32;
/// Bytes of an ML-KEM-768 encapsulation key.
const MLKEM_EK_LEN: usize = 1184;
/// Bytes of an ML-KEM-768 ciphertext.
const MLKEM_CT_LEN: usize = 1088;
/// Bytes of the initiator's share.
pub const KEX_SHARE_LEN: usize = X25519_LEN + MLKEM_EK_LEN;
/// Bytes of the responder's reply.
pub const KEX_REPLY_LEN: usize = X25519_LEN + MLKEM_CT_LEN;
const COMBINER_INFO: &[u8] = b"hush/v2/hybrid-kex";

/// The initiator's half of one exchange: its secrets, and the share to send.
pub struct KexInitiator {
    x25519: StaticSecret,
    mlkem: DecapsulationKey<MlKem768>,
    share: Vec<u8>,
}

impl KexInitiator {
    /// Fresh X25519 and ML-KEM-768 key pairs.
    #[must_use]
    pub fn new() -> Self {
        let x25519 = StaticSecret::from(random_32());
        let (mlkem, ek) = MlKem768::generate_keypair_from_rng(&mut rand::rng());
        let mut share = Vec::with_capacity(KEX_SHARE_LEN);
        share.extend_from_slice(PublicKey::from(&x25519).as_bytes());
        share.extend_from_slice(&ek.to_bytes());
        Self {
            x25519,
            mlkem,
            share,
        }
    }

    /// What to send the responder.
    #[must_use]
    pub fn share(&self) -> &[u8] {
        &self.share
    }

    /// The shared secret, from the responder's reply.
    ///
    /// # Errors
    /// [`CryptoError::BadShare`] if the reply has the wrong length or its
    /// X25519 key is a low-order point.
    pub fn finish(self, reply: &[u8]) -> Result<Secret32, CryptoError> {
        if reply.len() != KEX_REPLY_LEN {
            return Err(CryptoError::BadShare(
                "key exchange reply of the wrong size",
            ));
        }
        let (x_pk, ct) = reply.split_at(X25519_LEN);
        let x = dh(&self.x25519, x_pk)?;
        let k = self
            .mlkem
            .decapsulate_slice(ct)
            .map_err(|_| CryptoError::BadShare("ML-KEM ciphertext of the wrong size"))?;
        Ok(combine(&k, &x, &self.share, reply))
    }
}

impl Default for KexInitiator {
    fn default() -> Self {
        Self::new()
    }
}

/// The responder's side: the reply to send and the shared secret.
///
/// # Errors
/// [`CryptoError::BadShare`] if the share has the wrong length, its ML-KEM
/// key does not decode, or its X25519 key is a low-order point.
pub fn kex_respond(share: &[u8]) -> Result<(Vec<u8>, Secret32), CryptoError> {
    if share.len() != KEX_SHARE_LEN {
        return Err(CryptoError::BadShare(
            "key exchange share of the wrong size",
        ));
    }
    let (x_pk, ek) = share.split_at(X25519_LEN);
    let ek = EncapsulationKey::<MlKem768>::new_from_slice(ek)
        .map_err(|_| CryptoError::BadShare("not an ML-KEM-768 encapsulation key"))?;
    let (ct, k) = ek.encapsulate_with_rng(&mut rand::rng());
    let ours = StaticSecret::from(random_32());
    let x = dh(&ours, x_pk)?;
    let mut reply = Vec::with_capacity(KEX_REPLY_LEN);
    reply.extend_from_slice(PublicKey::from(&ours).as_bytes());
    reply.extend_from_slice(&ct);
    let secret = combine(&k, &x, share, &reply);
    Ok((reply, secret))
}

fn random_32() -> [u8; 32] {
    let mut b = [0u8; 32];
    crate::random_bytes(&mut b);
    b
}

/// X25519 with the peer's public bytes; refuses a non-contributory result.
fn dh(ours: &StaticSecret, theirs: &[u8]) -> Result<[u8; 32], CryptoError> {
    let theirs: [u8; 32] = theirs
        .try_into()
        .map_err(|_| CryptoError::BadShare("X25519 key of the wrong size"))?;
    let shared = ours.diffie_hellman(&PublicKey::from(theirs));
    if !shared.was_contributory() {
        return Err(CryptoError::BadShare("X25519 key is a low-order point"));
    }
    Ok(shared.to_bytes())
}

fn combine(mlkem: &[u8], x25519: &[u8; 32], share: &[u8], reply: &[u8]) -> Secret32 {
    let mut ikm = [0u8; 64];
    ikm[..32].copy_from_slice(mlkem);
    ikm[32..].copy_from_slice(x25519);
    let mut salt = crate::Transcript::new("hush/v2/hybrid-kex/publics");
    salt.absorb(share);
    salt.absorb(reply);
    let hk = Hkdf::<Sha256>::new(Some(&salt.finish()), &ikm);
    ikm.zeroize();
    Secret32::filled_by(|out| {
        // 32 bytes is far below HKDF-SHA-256's limit: cannot fail.
        if hk.expand(COMBINER_INFO, out).is_err() {
            unreachable!("HKDF output length 32 is always valid");
        }
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn both_sides_agree_and_every_exchange_is_fresh() {
        let a = KexInitiator::new();
        assert_eq!(a.share().len(), KEX_SHARE_LEN);
        let (reply, r) = kex_respond(a.share()).unwrap();
        assert_eq!(reply.len(), KEX_REPLY_LEN);
        let share = a.share().to_vec();
        assert_eq!(a.finish(&reply).unwrap(), r);
        // The same share answered twice gives two different secrets.
        let (_, r2) = kex_respond(&share).unwrap();
        assert_ne!(r, r2);
    }

    #[test]
    fn altered_replies_give_another_secret_or_an_error() {
        let a = KexInitiator::new();
        let (reply, r) = kex_respond(a.share()).unwrap();
        let share = a.share().to_vec();
        let dk = a.mlkem.clone();
        let x = a.x25519.clone();
        for byte in (0..reply.len()).step_by(13) {
            let mut bad = reply.clone();
            bad[byte] ^= 0x20;
            let again = KexInitiator {
                x25519: x.clone(),
                mlkem: dk.clone(),
                share: share.clone(),
            };
            match again.finish(&bad) {
                Ok(s) => assert_ne!(s, r, "byte {byte}"),
                Err(CryptoError::BadShare(_)) => {}
                Err(e) => panic!("{e}"),
            }
        }
    }

    #[test]
    fn bad_shares_are_refused() {
        let a = KexInitiator::new();
        assert!(kex_respond(&a.share()[1..]).is_err(), "short");
        // A low-order X25519 point (zero) with a real ML-KEM key.
        let mut zero = a.share().to_vec();
        zero[..32].fill(0);
        assert!(matches!(kex_respond(&zero), Err(CryptoError::BadShare(_))));
        // An ML-KEM key with coefficients out of range does not decode.
        let mut bad_ek = a.share().to_vec();
        bad_ek[32..].fill(0xff);
        assert!(matches!(
            kex_respond(&bad_ek),
            Err(CryptoError::BadShare(_))
        ));
        let (reply, _) = kex_respond(a.share()).unwrap();
        assert!(a.finish(&reply[..100]).is_err());
    }
}
