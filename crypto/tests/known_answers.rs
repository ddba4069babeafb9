//! Known-answer tests: vectors made once, by independent implementations
//! (OpenSSL for RSA, Python `cryptography` for AES-GCM), stored as files in
//! `tests/vectors/`, checked against hush-crypto. They pin the exact
//! formats (PSS salt and context framing, OAEP label, nonce layout), so an
//! accidental change to any of them fails here.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use hush_crypto::{Identity, PublicIdentity, SealingKey, Secret32};

const ALICE_PEM: &str = include_str!("../../keys.example/alice.pem");
const ALICE_PUB: &str = include_str!("../../keys.example/alice.pem.pub");
const BOB_PUB: &str = include_str!("../../keys.example/bob.pem.pub");

fn vector(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/tests/vectors/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap_or_else(|e| panic!("vector {name}: {e}"))
}

fn gcm_field(name: &str) -> String {
    let text = String::from_utf8(vector("gcm.txt")).unwrap();
    text.lines()
        .filter_map(|l| l.split_once(" = "))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim().to_owned())
        .unwrap_or_else(|| panic!("gcm.txt has no {name}"))
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn openssl_pss_signature_by_alice_verifies() {
    let alice = PublicIdentity::from_pem(ALICE_PUB).unwrap();
    let context = String::from_utf8(vector("pss.context")).unwrap();
    let message = vector("pss.message");
    let sig = vector("pss-alice.sig");
    alice
        .verify(&context, &message, &sig)
        .expect("stored signature verifies");

    // The same signature is not alice's on another message, context or key.
    assert!(alice.verify(&context, b"another message", &sig).is_err());
    assert!(alice.verify("hush/v1/other", &message, &sig).is_err());
    let bob = PublicIdentity::from_pem(BOB_PUB).unwrap();
    assert!(bob.verify(&context, &message, &sig).is_err());
}

#[test]
fn openssl_oaep_wrap_to_alice_unwraps() {
    let alice = Identity::from_pem(ALICE_PEM, None).unwrap();
    let label = String::from_utf8(vector("oaep.label")).unwrap();
    let secret = alice.unwrap(&label, &vector("oaep-alice.wrapped")).unwrap();
    assert_eq!(
        secret.expose_secret().as_slice(),
        vector("oaep.secret").as_slice()
    );
    assert!(
        alice
            .unwrap("hush/v1/other", &vector("oaep-alice.wrapped"))
            .is_err()
    );
}

#[test]
fn stored_sealed_blob_opens() {
    let key = Secret32::from_slice(&hex(&gcm_field("key"))).unwrap();
    let counter: u64 = gcm_field("counter").parse().unwrap();
    let aad = hex(&gcm_field("aad"));
    let opened = SealingKey::new(&key)
        .open(counter, &aad, &hex(&gcm_field("sealed")))
        .expect("stored blob opens");
    assert_eq!(opened, hex(&gcm_field("plaintext")));
}

#[test]
fn nist_gcm_test_case_14() {
    let key = Secret32::from_slice(&hex(&gcm_field("nist_key"))).unwrap();
    let mut counter = hush_crypto::NonceCounter::new();
    let sealed = SealingKey::new(&key)
        .seal(
            counter.next_nonce().unwrap(),
            b"",
            &hex(&gcm_field("nist_plaintext")),
        )
        .unwrap();
    assert_eq!(sealed, hex(&gcm_field("nist_sealed")));
}

#[test]
fn fingerprint_matches_openssl_form() {
    // `openssl pkey -pubin -in alice.pem.pub -outform DER | openssl dgst
    // -sha256 -binary | base64`, without the `=` padding.
    let alice = PublicIdentity::from_pem(ALICE_PUB).unwrap();
    let fp = alice.fingerprint().to_string();
    assert_eq!(fp, "SHA256:t/k+iGGErhw/DDjAwpwOkCc3SiSZbhrl2kv1puRXObI");
    assert_eq!(alice.fingerprint().short_id(), "t/k+iGGE");
    assert_eq!(
        fp.parse::<hush_crypto::Fingerprint>().unwrap(),
        alice.fingerprint()
    );
    // keygen wrote the fingerprint into the file's comment header too.
    assert!(ALICE_PUB.contains(&fp));
}
