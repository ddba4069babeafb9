//! Client state at rest: one sealed file per relay and room.
//!
//! ```text
//!   RoomSnapshot ─postcard─▶ AES-256-GCM(K, nonce 0, aad = owner ‖ file id) ─┐
//!   K (fresh 32 random bytes per save) ─RSA-OAEP to our own identity key──────┴─▶ StateFile
//! ```
//!
//! A fresh key per save makes nonce 0 safe. Without the private identity
//! key the file is opaque: it holds epoch keys, so it is as sensitive as
//! the key file itself, and is written 0600 through a temporary file and
//! a rename, so a crash never leaves half a state.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use hush_crypto::{Identity, NonceCounter, SealingKey, Secret32, Transcript};
use hush_proto::msg::{decode, encode};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use hush_room::RoomSnapshot;

/// OAEP label of a state file's key.
const STATE_KEY_LABEL: &str = "hush/v1/state-key";
/// State files larger than this are not read (a room's state is far
/// smaller; anything bigger is not ours).
const MAX_STATE_BYTES: u64 = 64 * 1024 * 1024;

#[derive(Serialize, Deserialize)]
struct StateFile {
    magic: [u8; 10],
    version: u16,
    owner: [u8; 32],
    wrapped_key: Vec<u8>,
    sealed: Vec<u8>,
}

const MAGIC: [u8; 10] = *b"hush-state";
/// The state format: 2 holds protocol 2 rooms (1 held protocol 1's, whose
/// epochs protocol 2 cannot continue).
const VERSION: u16 = 2;

/// Why state could not be loaded or saved.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// Reading or writing the file failed.
    #[error("state file {path}: {error}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        error: std::io::Error,
    },
    /// The file is not a state file this identity can open.
    #[error("state file {0} cannot be opened with this key (another identity's, or damaged)")]
    Unreadable(String),
    /// The file was saved by a hush speaking another protocol version.
    #[error(
        "state file {path} was saved by a hush of another protocol version (state format {found}, this one reads {VERSION})"
    )]
    OtherVersion {
        /// The file.
        path: String,
        /// Its format version.
        found: u16,
    },
}

/// Creates `dir` and any missing parents readable only by their owner
/// (0700): state file names carry room names, and the folder holds the
/// pinned relays (audit L7). An existing folder keeps its mode.
///
/// # Errors
/// If a folder cannot be created.
pub(crate) fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)
}

/// Creates `path` afresh, 0600, for writing: whatever was there (a stale
/// temporary file with a looser mode, or a symbolic link planted by
/// someone else) is removed first, and the open neither follows a link
/// (`O_NOFOLLOW`) nor reuses an existing file (`O_EXCL`), so the new file
/// never inherits another file's mode or target (audit L7).
///
/// # Errors
/// If the old file cannot be removed or the new one created.
pub(crate) fn create_private_file(path: &Path) -> std::io::Result<std::fs::File> {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600).custom_flags(libc::O_NOFOLLOW);
    }
    opts.open(path)
}

/// Where one room's state lives, and whose key opens it.
pub struct StateStore {
    path: PathBuf,
    identity: Arc<Identity>,
    file_id: Vec<u8>,
}

impl StateStore {
    /// The state of `room` on relay `server`, under `dir`.
    #[must_use]
    pub fn new(dir: &Path, server: &str, room: &str, identity: Arc<Identity>) -> Self {
        let file_id = format!("{server}/{room}").into_bytes();
        let digest = hush_crypto::sha256(&file_id);
        let name: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
        Self {
            path: dir.join("rooms").join(format!("{room}-{name}.state")),
            identity,
            file_id,
        }
    }

    /// The file's path.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn io(&self, error: std::io::Error) -> StateError {
        StateError::Io {
            path: self.path.display().to_string(),
            error,
        }
    }

    fn aad(&self) -> [u8; 32] {
        let mut t = Transcript::new("hush/v1/client-state");
        t.absorb(self.identity.fingerprint().as_bytes());
        t.absorb(&self.file_id);
        t.finish()
    }

    /// Loads the saved state, if there is any.
    ///
    /// # Errors
    /// [`StateError`] if the file exists but cannot be read or opened.
    pub fn load(&self) -> Result<Option<RoomSnapshot>, StateError> {
        let meta = match std::fs::metadata(&self.path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(self.io(e)),
        };
        let unreadable = || StateError::Unreadable(self.path.display().to_string());
        if meta.len() > MAX_STATE_BYTES {
            return Err(unreadable());
        }
        let bytes = std::fs::read(&self.path).map_err(|e| self.io(e))?;
        let file: StateFile = decode(&bytes).map_err(|_| unreadable())?;
        if file.magic != MAGIC || file.owner != *self.identity.fingerprint().as_bytes() {
            return Err(unreadable());
        }
        if file.version != VERSION {
            return Err(StateError::OtherVersion {
                path: self.path.display().to_string(),
                found: file.version,
            });
        }
        // Our own file, checked to be ours above; a failure is reported
        // only as "unreadable".
        let key = self
            .identity
            .unwrap(STATE_KEY_LABEL, &file.wrapped_key)
            .map_err(|_| unreadable())?;
        let plain = Zeroizing::new(
            SealingKey::new(&key)
                .open(0, &self.aad(), &file.sealed)
                .map_err(|_| unreadable())?,
        );
        decode::<RoomSnapshot>(&plain)
            .map(Some)
            .map_err(|_| unreadable())
    }

    /// Seals and writes `snap`, replacing the previous state atomically.
    ///
    /// # Errors
    /// [`StateError::Io`] if the file cannot be written.
    pub fn save(&self, snap: &RoomSnapshot) -> Result<(), StateError> {
        let key = Secret32::random();
        let plain = Zeroizing::new(encode(snap));
        let nonce = NonceCounter::new()
            .next_nonce()
            .map_err(|_| StateError::Unreadable("nonce".into()))?;
        let sealed = SealingKey::new(&key)
            .seal(nonce, &self.aad(), &plain)
            .map_err(|_| StateError::Unreadable("seal".into()))?;
        let wrapped = self
            .identity
            .public()
            .wrap(STATE_KEY_LABEL, &key)
            .map_err(|_| StateError::Unreadable("wrap".into()))?;
        let file = encode(&StateFile {
            magic: MAGIC,
            version: VERSION,
            owner: *self.identity.fingerprint().as_bytes(),
            wrapped_key: wrapped.as_bytes().to_vec(),
            sealed,
        });
        let dir = self.path.parent().unwrap_or(Path::new("."));
        create_private_dir(dir).map_err(|e| self.io(e))?;
        let tmp = self.path.with_extension("state.tmp");
        {
            use std::io::Write;
            let mut f = create_private_file(&tmp).map_err(|e| self.io(e))?;
            f.write_all(&file)
                .and_then(|()| f.sync_all())
                .map_err(|e| self.io(e))?;
        }
        std::fs::rename(&tmp, &self.path).map_err(|e| self.io(e))
    }

    /// Moves an unreadable state file aside (keeping it for inspection)
    /// so the client can start afresh.
    ///
    /// # Errors
    /// If the rename fails.
    pub fn set_aside(&self) -> Result<PathBuf, StateError> {
        let aside = self.path.with_extension("state.unreadable");
        std::fs::rename(&self.path, &aside).map_err(|e| self.io(e))?;
        Ok(aside)
    }
}
