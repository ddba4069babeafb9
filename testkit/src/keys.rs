//! The example identities of `keys.example/`, compiled in and parsed once
//! per process (RSA key parsing is slow enough to matter in tests).

use std::sync::{Arc, OnceLock};

use hush_crypto::Identity;

/// Parses `pem` into `slot` the first time; the same identity afterwards.
fn load(slot: &'static OnceLock<Arc<Identity>>, pem: &str) -> Arc<Identity> {
    slot.get_or_init(|| Arc::new(Identity::from_pem(pem, None).expect("example key")))
        .clone()
}

/// One function per example key: its doc, its name, its file.
macro_rules! example_keys {
    ($($(#[$doc:meta])* $name:ident => $file:literal;)*) => {$(
        $(#[$doc])*
        pub fn $name() -> Arc<Identity> {
            static K: OnceLock<Arc<Identity>> = OnceLock::new();
            load(&K, include_str!(concat!("../../keys.example/", $file)))
        }
    )*};
}

example_keys! {
    /// `keys.example/alice.pem`.
    alice => "alice.pem";
    /// `keys.example/bob.pem`.
    bob => "bob.pem";
    /// `keys.example/carol.pem`.
    carol => "carol.pem";
    /// `keys.example/mallory.pem`: the attacker in tests.
    mallory => "mallory.pem";
    /// `keys.example/relay.pem`: the relay's own key.
    relay => "relay.pem";
}

/// The example identity `keys.example/NAME.pem` by name: `"alice"`,
/// `"bob"`, `"carol"`, `"mallory"` or `"relay"`.
///
/// # Panics
/// On any other name.
pub fn by_name(name: &str) -> Arc<Identity> {
    match name {
        "alice" => alice(),
        "bob" => bob(),
        "carol" => carol(),
        "mallory" => mallory(),
        "relay" => relay(),
        other => panic!("no example identity {other:?} in keys.example/"),
    }
}

/// The `keys.example/` folder, for tests that need the key files
/// themselves.
pub fn examples_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../keys.example")
}
