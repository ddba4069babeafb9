//! Round trips and tamper tests for every primitive: any flipped bit in a
//! ciphertext, associated data, signature, label or context must fail.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::OnceLock;

use hush_crypto::identity::PemKind;
use hush_crypto::{
    CryptoError, Fingerprint, Identity, KeyFileError, NonceCounter, PublicIdentity, SealingKey,
    Secret32,
};
use proptest::prelude::*;

const ALICE_PEM: &str = include_str!("../../keys.example/alice.pem");
const BOB_PEM: &str = include_str!("../../keys.example/bob.pem");

fn alice() -> &'static Identity {
    static A: OnceLock<Identity> = OnceLock::new();
    A.get_or_init(|| Identity::from_pem(ALICE_PEM, None).unwrap())
}

fn bob() -> &'static Identity {
    static B: OnceLock<Identity> = OnceLock::new();
    B.get_or_init(|| Identity::from_pem(BOB_PEM, None).unwrap())
}

fn flip(bytes: &[u8], bit: usize) -> Vec<u8> {
    let mut out = bytes.to_vec();
    out[bit / 8] ^= 1 << (bit % 8);
    out
}

const CTX: &str = "hush/v1/test";

#[test]
fn signature_round_trip_and_every_flipped_bit_fails() {
    let msg = b"the quick brown fox";
    let sig = alice().sign(CTX, msg).unwrap();
    let public = alice().public();
    public.verify(CTX, msg, sig.as_bytes()).unwrap();
    for bit in 0..sig.as_bytes().len() * 8 {
        assert_eq!(
            public.verify(CTX, msg, &flip(sig.as_bytes(), bit)),
            Err(CryptoError::BadSignature),
            "signature bit {bit}"
        );
    }
    for bit in 0..msg.len() * 8 {
        assert!(
            public.verify(CTX, &flip(msg, bit), sig.as_bytes()).is_err(),
            "msg bit {bit}"
        );
    }
    for bit in 0..CTX.len() * 8 {
        let ctx = flip(CTX.as_bytes(), bit);
        // A flipped context may no longer be UTF-8; those cannot be passed.
        if let Ok(ctx) = std::str::from_utf8(&ctx) {
            assert!(
                public.verify(ctx, msg, sig.as_bytes()).is_err(),
                "ctx bit {bit}"
            );
        }
    }
    // Truncated, extended and empty signatures fail too.
    assert!(public.verify(CTX, msg, &sig.as_bytes()[1..]).is_err());
    assert!(
        public
            .verify(CTX, msg, &[sig.as_bytes(), &[0]].concat())
            .is_err()
    );
    assert!(public.verify(CTX, msg, &[]).is_err());
    // Context is framed: moving bytes between context and message fails.
    assert!(
        public
            .verify("hush/v1/tes", b"tthe quick brown fox", sig.as_bytes())
            .is_err()
    );
    // PSS is randomised: two signatures differ, both verify.
    let sig2 = alice().sign(CTX, msg).unwrap();
    assert_ne!(sig, sig2);
    public.verify(CTX, msg, sig2.as_bytes()).unwrap();
    // Another key does not verify it.
    assert!(bob().public().verify(CTX, msg, sig.as_bytes()).is_err());
}

#[test]
fn wrap_round_trip_and_tampering_fails() {
    let secret = Secret32::random();
    let label = "hush/v1/test-wrap";
    let wrapped = alice().public().wrap(label, &secret).unwrap();
    assert_eq!(alice().unwrap(label, wrapped.as_bytes()).unwrap(), secret);
    // One flipped bit per byte position across the whole ciphertext.
    let ct = wrapped.as_bytes();
    for byte in 0..ct.len() {
        let bit = byte * 8 + byte % 8;
        assert_eq!(
            alice().unwrap(label, &flip(ct, bit)),
            Err(CryptoError::UnwrapFailed),
            "ciphertext bit {bit}"
        );
    }
    for bit in 0..label.len() * 8 {
        if let Ok(l) = std::str::from_utf8(&flip(label.as_bytes(), bit)) {
            assert!(alice().unwrap(l, ct).is_err(), "label bit {bit}");
        }
    }
    assert!(
        bob().unwrap(label, ct).is_err(),
        "another key cannot unwrap"
    );
    assert!(alice().unwrap(label, &ct[1..]).is_err(), "truncated");
}

#[test]
fn every_unwrap_is_counted() {
    let label = "hush/v1/test-wrap";
    let before = hush_crypto::rsa_decryptions();
    let _ = alice().unwrap(label, b"garbage");
    assert!(hush_crypto::rsa_decryptions() > before);
}

#[test]
fn seal_every_flipped_bit_fails() {
    let key = SealingKey::new(&Secret32::random());
    let mut counter = NonceCounter::new();
    let aad = b"room=lobby epoch=3";
    let n = counter.next_nonce().unwrap();
    let c = n.counter();
    let ct = key.seal(n, aad, b"hello, room").unwrap();
    assert_eq!(key.open(c, aad, &ct).unwrap(), b"hello, room");
    for bit in 0..ct.len() * 8 {
        assert_eq!(
            key.open(c, aad, &flip(&ct, bit)),
            Err(CryptoError::OpenFailed)
        );
    }
    for bit in 0..aad.len() * 8 {
        assert!(key.open(c, &flip(aad, bit), &ct).is_err());
    }
    assert!(key.open(c + 1, aad, &ct).is_err(), "wrong nonce");
    assert!(key.open(c, aad, &ct[..ct.len() - 1]).is_err(), "truncated");
    assert!(key.open(c, aad, &[]).is_err(), "empty");
    let other = SealingKey::new(&Secret32::random());
    assert!(other.open(c, aad, &ct).is_err(), "wrong key");
}

#[test]
fn private_key_pem_round_trips_with_and_without_passphrase() {
    let pem = alice().to_pem(None).unwrap();
    assert_eq!(PemKind::detect(&pem), Ok(PemKind::Private));
    let again = Identity::from_pem(&pem, None).unwrap();
    assert_eq!(again.fingerprint(), alice().fingerprint());

    let locked = alice().to_pem(Some(b"correct horse")).unwrap();
    assert_eq!(PemKind::detect(&locked), Ok(PemKind::EncryptedPrivate));
    assert!(
        !locked.contains(&pem[40..80]),
        "encrypted PEM must not contain the clear key"
    );
    assert_eq!(
        Identity::from_pem(&locked, None).unwrap_err(),
        KeyFileError::PassphraseRequired
    );
    assert_eq!(
        Identity::from_pem(&locked, Some(b"wrong")).unwrap_err(),
        KeyFileError::WrongPassphrase
    );
    let unlocked = Identity::from_pem(&locked, Some(b"correct horse")).unwrap();
    assert_eq!(unlocked.fingerprint(), alice().fingerprint());
}

#[test]
fn public_key_encodings_round_trip() {
    let public = alice().public();
    let pem = public.to_pem().unwrap();
    assert_eq!(PublicIdentity::from_pem(&pem).unwrap(), *public);
    let der = public.spki_der();
    assert_eq!(
        PublicIdentity::from_spki_der(der).unwrap().fingerprint(),
        public.fingerprint()
    );
    assert_eq!(Fingerprint::of_spki_der(der), public.fingerprint());
    assert_eq!(public.bits(), 3072);
    // A public key is not a private key.
    assert_eq!(
        Identity::from_pem(&pem, None).unwrap_err(),
        KeyFileError::PublicNotPrivate
    );
}

#[test]
fn garbage_and_legacy_keys_are_refused_clearly() {
    assert_eq!(PemKind::detect("hello"), Err(KeyFileError::NotAKey));
    assert!(matches!(
        PemKind::detect("-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n"),
        Err(KeyFileError::Unsupported(_))
    ));
    assert_eq!(
        Identity::from_pem(
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
            None
        )
        .unwrap_err(),
        KeyFileError::NotAKey
    );
    assert!(PublicIdentity::from_spki_der(b"\x30\x03\x02\x01\x00").is_err());
    assert!(PublicIdentity::from_spki_der(&[]).is_err());
}

#[test]
fn key_sizes_outside_the_range_are_refused_before_work() {
    for bits in [0, 512, 1024, 2047, 8193, 16384] {
        assert!(
            matches!(Identity::generate(bits), Err(KeyFileError::BadSize { .. })),
            "{bits}"
        );
    }
}

#[test]
fn fingerprint_parsing_rejects_near_misses() {
    let fp = alice().fingerprint().to_string();
    assert!(fp.parse::<Fingerprint>().is_ok());
    for bad in [
        "",
        "SHA256:",
        &fp[..fp.len() - 1],
        &fp.replace("SHA256:", "MD5:"),
        &format!("{fp}A"),
        &fp.replace("SHA256:", ""),
    ] {
        assert!(bad.parse::<Fingerprint>().is_err(), "{bad}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn seal_open_round_trip(key in any::<[u8; 32]>(), start in 0u64..u64::MAX - 1,
                            aad in proptest::collection::vec(any::<u8>(), 0..64),
                            msg in proptest::collection::vec(any::<u8>(), 0..512)) {
        let key = SealingKey::new(&Secret32::from_bytes(key));
        let mut counter = NonceCounter::resume_at(start);
        let nonce = counter.next_nonce().unwrap();
        let c = nonce.counter();
        let ct = key.seal(nonce, &aad, &msg).unwrap();
        prop_assert_eq!(ct.len(), msg.len() + hush_crypto::TAG_LEN);
        prop_assert_eq!(key.open(c, &aad, &ct).unwrap(), msg);
    }

    #[test]
    fn fingerprint_display_parse_round_trip(bytes in any::<[u8; 32]>()) {
        let fp = Fingerprint::from_bytes(bytes);
        prop_assert_eq!(fp.to_string().parse::<Fingerprint>().unwrap(), fp);
        prop_assert_eq!(fp.short_id().len(), hush_crypto::SHORT_ID_LEN);
    }

    #[test]
    fn derive_is_a_function_of_all_inputs(ikm in any::<[u8; 32]>(), salt in any::<[u8; 8]>(), info in "[a-z]{1,12}") {
        let ikm = Secret32::from_bytes(ikm);
        let a = hush_crypto::derive_secret(&ikm, &salt, info.as_bytes());
        prop_assert_eq!(&a, &hush_crypto::derive_secret(&ikm, &salt, info.as_bytes()));
        prop_assert_ne!(&a, &hush_crypto::derive_secret(&ikm, &salt, format!("{info}x").as_bytes()));
    }
}

#[test]
fn signature_round_trip_random_messages() {
    // A few RSA signatures over random-length messages (RSA is too slow for
    // a full proptest run).
    for len in [0usize, 1, 31, 32, 33, 1000, 65_536] {
        let mut msg = vec![0u8; len];
        hush_crypto::random_bytes(&mut msg);
        let sig = alice().sign(CTX, &msg).unwrap();
        alice().public().verify(CTX, &msg, sig.as_bytes()).unwrap();
    }
}
