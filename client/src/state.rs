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

/// The folder of unfinished file transfers.
fn transfer_dir(dir: &Path) -> PathBuf {
    dir.join("transfers")
}

/// The ids (hex) of the transfers with relay `server` saved under `dir`
/// (none if there is no folder).
#[must_use]
pub fn saved_transfers(dir: &Path, server: &str) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(transfer_dir(dir)) else {
        return Vec::new();
    };
    let prefix = format!("{}-", file_tag(server.as_bytes()));
    let mut out: Vec<String> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let id = name.strip_prefix(&prefix)?.strip_suffix(".state")?;
            (id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())).then(|| id.to_owned())
        })
        .collect();
    out.sort();
    out
}

/// 24 hex digits naming a file after `id` (a relay, or a relay and room).
fn file_tag(id: &[u8]) -> String {
    hush_crypto::sha256(id)[..12]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Writes `bytes` to `path` atomically: a fresh private temporary file,
/// synced, then renamed over it.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    create_private_dir(path.parent().unwrap_or(Path::new(".")))?;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    {
        let mut f = create_private_file(&tmp)?;
        f.write_all(bytes).and_then(|()| f.sync_all())?;
    }
    std::fs::rename(&tmp, path)
}

/// The rooms open on one relay when the client last stopped, one name a
/// line: the next start reopens them. `/part` takes a room off the list,
/// `/join` puts it on.
pub struct OpenRooms {
    path: PathBuf,
}

impl OpenRooms {
    /// The list for relay `server`, under `dir`.
    #[must_use]
    pub fn new(dir: &Path, server: &str) -> Self {
        Self {
            path: dir
                .join("rooms")
                .join(format!("open-{}.list", file_tag(server.as_bytes()))),
        }
    }

    /// The saved rooms, in order (none if there is no list). A line that
    /// is not a room name is skipped.
    #[must_use]
    pub fn load(&self) -> Vec<hush_proto::RoomName> {
        let Ok(text) = std::fs::read_to_string(&self.path) else {
            return Vec::new();
        };
        let mut rooms: Vec<hush_proto::RoomName> = Vec::new();
        for name in text
            .lines()
            .filter_map(|l| hush_proto::RoomName::new(l.trim()).ok())
        {
            if !rooms.contains(&name) {
                rooms.push(name);
            }
        }
        rooms
    }

    /// Replaces the list.
    ///
    /// # Errors
    /// [`StateError::Io`] if it cannot be written.
    pub fn save(&self, rooms: &[hush_proto::RoomName]) -> Result<(), StateError> {
        let text: String = rooms.iter().map(|r| format!("{r}\n")).collect();
        write_atomically(&self.path, text.as_bytes()).map_err(|error| StateError::Io {
            path: self.path.display().to_string(),
            error,
        })
    }
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
        let name = file_tag(&file_id);
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

    /// Where an unfinished file transfer with relay `server` is kept
    /// (`transfers/`, sealed like a room's state: it holds the file's key).
    #[must_use]
    pub fn for_transfer(dir: &Path, server: &str, id_hex: &str, identity: Arc<Identity>) -> Self {
        let file_id = format!("{server}/+file/{id_hex}").into_bytes();
        let relay = file_tag(server.as_bytes());
        Self {
            path: transfer_dir(dir).join(format!("{relay}-{id_hex}.state")),
            identity,
            file_id,
        }
    }

    /// Where the verified contacts of the identity `identity` are kept
    /// (`contacts/`, one file per identity: a data folder may serve
    /// several keys). Not per relay: a person's key is the same on every
    /// relay.
    #[must_use]
    pub fn for_contacts(dir: &Path, identity: Arc<Identity>) -> Self {
        let fp = identity.fingerprint().to_string();
        let file_id = format!("+contacts/{fp}").into_bytes();
        Self {
            path: dir
                .join("contacts")
                .join(format!("{}.state", file_tag(fp.as_bytes()))),
            identity,
            file_id,
        }
    }

    /// Where the file offers of `room` on relay `server` are kept
    /// (`offers/`, sealed like a room's state: offers carry file keys).
    #[must_use]
    pub fn for_offers(dir: &Path, server: &str, room: &str, identity: Arc<Identity>) -> Self {
        let file_id = format!("{server}/+offers/{room}").into_bytes();
        let relay = file_tag(server.as_bytes());
        let name = file_tag(&file_id);
        Self {
            path: dir.join("offers").join(format!("{relay}-{name}.state")),
            identity,
            file_id,
        }
    }

    /// Deletes the file (a finished transfer); a missing one is fine.
    pub fn remove(&self) {
        let _ = std::fs::remove_file(&self.path);
    }

    /// Loads the saved state, if there is any.
    ///
    /// # Errors
    /// [`StateError`] if the file exists but cannot be read or opened.
    pub fn load(&self) -> Result<Option<RoomSnapshot>, StateError> {
        self.load_as()
    }

    /// Loads a sealed value of any kind, if the file exists.
    ///
    /// # Errors
    /// [`StateError`] if the file exists but cannot be read or opened.
    pub fn load_as<T: serde::de::DeserializeOwned>(&self) -> Result<Option<T>, StateError> {
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
        decode::<T>(&plain).map(Some).map_err(|_| unreadable())
    }

    /// Seals and writes `snap`, replacing the previous state atomically.
    ///
    /// # Errors
    /// [`StateError::Io`] if the file cannot be written.
    pub fn save(&self, snap: &RoomSnapshot) -> Result<(), StateError> {
        self.save_as(snap)
    }

    /// Seals and writes a value of any kind, atomically.
    ///
    /// # Errors
    /// [`StateError::Io`] if the file cannot be written.
    pub fn save_as<T: serde::Serialize>(&self, snap: &T) -> Result<(), StateError> {
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
        write_atomically(&self.path, &file).map_err(|e| self.io(e))
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
