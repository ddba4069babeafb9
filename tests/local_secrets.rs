//! Local secrets at rest and in memory (audit L7): what the files hush
//! writes let others read, and what the cipher state leaves behind.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::os::unix::fs::PermissionsExt;

#[test]
fn the_aes_gcm_cipher_state_zeroizes_on_drop() {
    // hush's AES-GCM keys (ring's) live in hush-wipe cells, zeroed on
    // drop (hush-wipe's own tests check the bytes); RustCrypto's, used
    // only by `hush bench crypto`, with `aes-gcm`'s `zeroize` feature on.
    fn zeroizes_on_drop<T: zeroize::ZeroizeOnDrop>() {}
    zeroizes_on_drop::<hush_crypto::SealingKey>();
    zeroizes_on_drop::<hush_wipe::Wiped<ring::aead::LessSafeKey>>();
    zeroizes_on_drop::<aes_gcm::Aes256Gcm>();
}

#[test]
fn a_transcript_is_created_private_and_an_open_one_is_narrowed() {
    let dir = tempfile::tempdir().unwrap();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let fresh = dir.path().join("chat.txt");
    drop(hush_client::app::open_transcript(&fresh).unwrap());
    assert_eq!(mode(&fresh), 0o600);
    let old = dir.path().join("old.txt");
    std::fs::write(&old, "earlier lines\n").unwrap();
    std::fs::set_permissions(&old, std::fs::Permissions::from_mode(0o644)).unwrap();
    drop(hush_client::app::open_transcript(&old).unwrap());
    assert_eq!(mode(&old), 0o600);
    assert_eq!(std::fs::read_to_string(&old).unwrap(), "earlier lines\n");
}
