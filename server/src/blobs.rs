//! The blob store: sealed file chunks members send to a room, kept on disk
//! apart from the event log and served back by (room, file id, index).
//!
//! The relay never sees a plaintext or a key: a chunk is opaque bytes it
//! stores and returns. Nothing a client sends becomes a path: the room
//! name is hashed, the file id is 16 bytes written as hex, and a chunk is
//! a slot at a fixed offset in one data file.
//!
//! ```text
//!  data dir/blobs/                          0700
//!    <hex sha256("hush-blob-room" ‖ room)[..16]>/       0700, one per room
//!      <hex file id>/                       0700, one per declared file
//!        manifest                           80 bytes, 0600: owner, chunks,
//!                                           bytes, declared_ms, slot, checksum
//!        data                               0600: chunk i at i × slot, the
//!                                           rest of its slot unused
//!        held                               0600: 16-byte records (index,
//!                                           length, check), one per chunk held
//!        <name>.tmp                         being written; removed at open
//!
//!  declare ─▶ checks spec, quota ─▶ manifest.tmp ─fsync─▶ rename ─fsync dir─▶ known
//!  put     ─▶ checks owner, index, size, total ─▶ pwrite slot i of data  ─▶ written
//!  commit  ─▶ fdatasync data ─▶ append a record per written chunk to held ─▶ fdatasync held ─▶ held
//!  get     ─▶ reads slot i (only if held)
//!  sweep   ─▶ expired: manifest removed first (the file is gone), then its folder
//!  open    ─▶ reads every manifest and held log (quotas and resumes
//!             survive a restart), deletes temp files, folders with no
//!             manifest or a corrupted one, and drops held records that
//!             are torn, out of range or past the data file's end
//! ```
//!
//! Durability: a chunk is held exactly when its record is in `held`, and a
//! record is only ever appended after the chunk's bytes were fdatasynced,
//! so a chunk reported held survives a crash; a crash mid-write leaves a
//! slot without a record (not held, so it is uploaded again on resume) or a
//! torn last record (its check fails, so it is dropped at open). A held
//! slot is never written again (a re-put of a held chunk is answered
//! "stored" without a write), so no crash can tear a held chunk. `put`
//! only writes; [`BlobStore::commit`] makes what was written durable, for
//! every chunk written before it began, with two fdatasyncs however many
//! chunks that is: the relay acknowledges chunks a group at a time
//! (issue #16: one fsync pair per 32 KiB chunk held uploads at 33–51 MiB/s).
//!
//! Accounting: quota counts *declared* bytes, reserved at declare time, so
//! a client cannot exceed it by declaring small and uploading more (`put`
//! refuses chunks past the declared total). Beyond the per-identity quota
//! an identity may hold at most [`BlobLimits::max_files_per_identity`]
//! files, all identities together at most [`BlobLimits::max_total_bytes`]
//! of estimated disk (declared bytes plus a block per folder, manifest and
//! chunk), and a declaration may have at most one chunk per
//! [`MIN_MEAN_CHUNK_BYTES`] (plus one), so tiny chunks cannot use up the
//! disk under a small byte count.
//!
//! Corruption: a manifest that is not exactly a valid one (length, magic,
//! checksum, or a spec no declaration could have had) is logged with its
//! path and its folder deleted: the file is then unknown, and its owner's
//! quota is not charged. Chunk contents are not checked here (the
//! downloading member's AEAD does); a data file shorter than its held
//! chunks is an [`BlobError::Io`] naming it.
//!
//! Concurrency: one `Mutex` guards the index of files and the accounting;
//! each file has a state `Mutex`, held while a chunk is written or read (so
//! uploads of different files proceed in parallel), and a sync `Mutex`,
//! held by a commit for its fdatasyncs (so commits of one file run one at
//! a time while puts go on). Lock order: index, then sync, then state. No
//! file descriptor is kept open between calls: a relay may hold many
//! thousands of files.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use hush_crypto::Fingerprint;
use hush_proto::RoomName;

/// Name of the blob folder inside the data folder.
pub const BLOBS_DIR: &str = "blobs";
/// Name of a file's manifest inside its folder.
pub const MANIFEST_FILE: &str = "manifest";
/// Name of a file's chunk slots inside its folder.
pub const DATA_FILE: &str = "data";
/// Name of a file's log of held chunks inside its folder.
pub const HELD_FILE: &str = "held";
/// A declaration may have at most `1 + bytes / MIN_MEAN_CHUNK_BYTES`
/// chunks. Honest files have 32 KiB chunks (the last one shorter), far
/// above this; a file of many tiny chunks would cost a disk block per
/// byte or two of quota.
pub const MIN_MEAN_CHUNK_BYTES: u64 = 4096;

/// What a folder, a manifest or a chunk costs on disk beyond its bytes,
/// at most (one filesystem block), for [`BlobLimits::max_total_bytes`].
pub const BLOCK_BYTES: u64 = 4096;

/// Disk a file may take: its bytes, and a block per folder, manifest and
/// chunk (a chunk's slot starts on a fresh block at worst, and its held
/// record is 16 bytes).
fn disk_cost(spec: &BlobSpec) -> u64 {
    spec.bytes.saturating_add(
        u64::from(spec.chunks)
            .saturating_add(2)
            .saturating_mul(BLOCK_BYTES),
    )
}

/// First bytes of a manifest: format and version. (`HUSHBLB1`, one file
/// per chunk, was never released; such a folder is removed at open.)
const MANIFEST_MAGIC: &[u8; 8] = b"HUSHBLB2";
/// The unreleased first layout's magic, recognised only to say so.
const OLD_MANIFEST_MAGIC: &[u8; 8] = b"HUSHBLB1";
/// Manifest length: magic, owner, chunks, bytes, declared_ms, slot, checksum.
const MANIFEST_LEN: usize = 8 + 32 + 4 + 8 + 8 + 4 + 16;
/// One held record: index (u32 LE), length (u32 LE), check (8 bytes).
const HELD_RECORD: usize = 16;
/// Suffix of files being written.
const TMP_SUFFIX: &str = ".tmp";

/// Limits, configurable by the operator (defaults in parentheses).
#[derive(Debug, Clone)]
pub struct BlobLimits {
    /// Sealed bytes of one file (110 MiB: a 100 MiB file plus 5% padding
    /// plus a tag per chunk).
    pub max_file_bytes: u64,
    /// Sealed bytes one identity may have stored or declared at once (1 GiB).
    pub quota_per_identity: u64,
    /// A file is deleted this long after it was declared (7 days).
    pub expiry: Duration,
    /// Largest sealed chunk accepted (33 KiB: 32 KiB plus a 16-byte tag plus
    /// slack). It is also the slot size of files declared under it.
    pub max_chunk_bytes: usize,
    /// Files one identity may have declared at once (4,096): each costs a
    /// folder and a manifest whatever its size.
    pub max_files_per_identity: u32,
    /// Disk all identities together may have reserved (100 GiB):
    /// identities are cheap to make, disks are not endless. Each file
    /// counts its declared bytes plus [`BLOCK_BYTES`] for its folder, its
    /// manifest and each chunk, so many tiny files are not free.
    pub max_total_bytes: u64,
}

impl Default for BlobLimits {
    fn default() -> Self {
        Self {
            max_file_bytes: 110 * 1024 * 1024,
            quota_per_identity: 1024 * 1024 * 1024,
            expiry: Duration::from_secs(7 * 24 * 3600),
            max_chunk_bytes: 33 * 1024,
            max_files_per_identity: 4096,
            max_total_bytes: 100 * 1024 * 1024 * 1024,
        }
    }
}

/// What a client declares before uploading (idempotent: the same
/// declaration again is a resume).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobSpec {
    /// How many chunks the file has.
    pub chunks: u32,
    /// Total sealed bytes of all chunks.
    pub bytes: u64,
}

/// Which chunks the store holds for a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobStatus {
    /// Chunks declared.
    pub chunks: u32,
    /// Sealed bytes declared.
    pub bytes: u64,
    /// Indices held (durably), sorted.
    pub have: Vec<u32>,
    /// Every chunk is held and together they are exactly `bytes` long.
    pub complete: bool,
}

/// What a [`BlobStore::put`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Put {
    /// The chunk was held already (durably): nothing was written, and it
    /// may be acknowledged now.
    Held,
    /// The chunk is written but not yet durable: it is held once a
    /// [`BlobStore::commit`] that began after this put returns.
    Written,
}

/// Why a blob operation was refused or failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BlobError {
    /// Declared bytes over `max_file_bytes`.
    #[error("file too large: at most {max} sealed bytes")]
    TooLarge {
        /// The limit.
        max: u64,
    },
    /// The owner's stored and declared bytes would exceed the quota.
    #[error("over quota: {used} of {quota} bytes already stored or declared")]
    OverQuota {
        /// The quota.
        quota: u64,
        /// Bytes the owner holds already.
        used: u64,
    },
    /// The owner already has `max_files_per_identity` files.
    #[error("too many files: at most {max} at once")]
    TooManyFiles {
        /// The limit.
        max: u32,
    },
    /// All identities together have declared `max_total_bytes`.
    #[error("the relay's blob store is full ({max} bytes)")]
    StoreFull {
        /// The limit.
        max: u64,
    },
    /// A declaration no file could match: no chunks, fewer bytes than
    /// chunks, more bytes than its chunks could hold, or more chunks than
    /// `1 + bytes / MIN_MEAN_CHUNK_BYTES`.
    #[error("impossible file declaration: {chunks} chunks, {bytes} bytes")]
    BadSpec {
        /// Chunks declared.
        chunks: u32,
        /// Bytes declared.
        bytes: u64,
    },
    /// No such file (never declared, or expired).
    #[error("no such file")]
    Unknown,
    /// Someone else declared this id in this room.
    #[error("this file id belongs to someone else")]
    NotOwner,
    /// Re-declared with other chunks or bytes.
    #[error("the file was declared with another size")]
    Mismatch,
    /// Index not below the chunk count, an empty or oversize chunk, or one
    /// that would take the file past its declared bytes.
    #[error("bad chunk {index}")]
    BadChunk {
        /// The index.
        index: u32,
    },
    /// The chunk is not (yet) held.
    #[error("chunk {index} is not held")]
    Missing {
        /// The index.
        index: u32,
    },
    /// Disk trouble, with the path in the text.
    #[error("blob store: {0}")]
    Io(String),
}

fn io_err(what: &str, path: &Path, e: &std::io::Error) -> BlobError {
    BlobError::Io(format!("{what} {}: {e}", path.display()))
}

/// One declared file, in memory.
#[derive(Debug)]
struct FileState {
    owner: Fingerprint,
    chunks: u32,
    bytes: u64,
    declared_ms: u64,
    /// Bytes per slot of the data file: chunk `i` is at `i × slot`.
    slot: u32,
    /// Held (durable) chunk index → its sealed length.
    held: BTreeMap<u32, u64>,
    /// Written since the last commit began, not yet durable.
    written: BTreeMap<u32, u64>,
    /// Taken by the commit under way (being made durable): not written
    /// again until it is done.
    syncing: BTreeMap<u32, u64>,
    /// Sum of the lengths in `held`, `written` and `syncing`.
    used_bytes: u64,
    /// Its folder.
    dir: PathBuf,
    /// Swept: set under the file's lock, so a waiting `put` sees it.
    gone: bool,
}

impl FileState {
    fn status(&self) -> BlobStatus {
        let have: Vec<u32> = self.held.keys().copied().collect();
        let held_bytes: u64 = self.held.values().sum();
        let complete = u64::try_from(have.len()).ok() == Some(u64::from(self.chunks))
            && held_bytes == self.bytes;
        BlobStatus {
            chunks: self.chunks,
            bytes: self.bytes,
            have,
            complete,
        }
    }

    fn slot_offset(&self, index: u32) -> u64 {
        u64::from(index) * u64::from(self.slot)
    }
}

/// One declared file: its state, and the lock its commits take.
#[derive(Debug)]
struct FileEntry {
    /// Held by a commit while it syncs: commits of one file run one at a
    /// time, while puts (which take only `state`) go on.
    sync: Mutex<()>,
    state: Mutex<FileState>,
}

impl FileEntry {
    fn new(state: FileState) -> Arc<Self> {
        Arc::new(Self {
            sync: Mutex::new(()),
            state: Mutex::new(state),
        })
    }
}

type Key = ([u8; 16], [u8; 16]);

/// What one identity holds.
#[derive(Debug, Default, Clone, Copy)]
struct Usage {
    bytes: u64,
    files: u32,
}

#[derive(Debug, Default)]
struct Index {
    files: HashMap<Key, Arc<FileEntry>>,
    used: HashMap<Fingerprint, Usage>,
    /// Sum of [`disk_cost`] over all files.
    total: u64,
}

impl Index {
    fn charge(&mut self, owner: Fingerprint, spec: &BlobSpec) {
        let u = self.used.entry(owner).or_default();
        u.bytes = u.bytes.saturating_add(spec.bytes);
        u.files = u.files.saturating_add(1);
        self.total = self.total.saturating_add(disk_cost(spec));
    }

    fn release(&mut self, owner: &Fingerprint, spec: &BlobSpec) {
        if let Some(u) = self.used.get_mut(owner) {
            u.bytes = u.bytes.saturating_sub(spec.bytes);
            u.files = u.files.saturating_sub(1);
            if u.files == 0 {
                self.used.remove(owner);
            }
        }
        self.total = self.total.saturating_sub(disk_cost(spec));
    }
}

/// The relay's blob store. Share it by reference (or in an `Arc`); every
/// method is synchronous and meant for `spawn_blocking`.
#[derive(Debug)]
pub struct BlobStore {
    root: PathBuf,
    limits: BlobLimits,
    index: Mutex<Index>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing panics while holding these locks; if something ever did, the
    // state is still consistent (every update is a single assignment after
    // the disk work), so carry on rather than take the relay down.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// Parses exactly 32 lowercase hex digits.
fn unhex16(s: &str) -> Option<[u8; 16]> {
    let b = s.as_bytes();
    if b.len() != 32 {
        return None;
    }
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    let mut out = [0u8; 16];
    for (i, o) in out.iter_mut().enumerate() {
        *o = (digit(b[2 * i])? << 4) | digit(b[2 * i + 1])?;
    }
    Some(out)
}

/// The folder name of a room: a hash, so no room name reaches the disk.
fn room_tag(room: &RoomName) -> [u8; 16] {
    let mut input = b"hush-blob-room\0".to_vec();
    input.extend_from_slice(room.as_str().as_bytes());
    let digest = hush_crypto::sha256(&input);
    let mut tag = [0u8; 16];
    tag.copy_from_slice(&digest[..16]);
    tag
}

fn checksum(body: &[u8]) -> [u8; 16] {
    let digest = hush_crypto::sha256(body);
    let mut c = [0u8; 16];
    c.copy_from_slice(&digest[..16]);
    c
}

fn encode_manifest(owner: &Fingerprint, spec: &BlobSpec, declared_ms: u64, slot: u32) -> Vec<u8> {
    let mut m = Vec::with_capacity(MANIFEST_LEN);
    m.extend_from_slice(MANIFEST_MAGIC);
    m.extend_from_slice(owner.as_bytes());
    m.extend_from_slice(&spec.chunks.to_le_bytes());
    m.extend_from_slice(&spec.bytes.to_le_bytes());
    m.extend_from_slice(&declared_ms.to_le_bytes());
    m.extend_from_slice(&slot.to_le_bytes());
    let c = checksum(&m);
    m.extend_from_slice(&c);
    m
}

/// Owner, spec, declared time and slot size, if `m` is a whole, valid
/// manifest.
fn decode_manifest(m: &[u8]) -> Option<(Fingerprint, BlobSpec, u64, u32)> {
    if m.len() != MANIFEST_LEN || !m.starts_with(MANIFEST_MAGIC) {
        return None;
    }
    let (body, sum) = m.split_at(MANIFEST_LEN - 16);
    if checksum(body) != *sum {
        return None;
    }
    let owner: [u8; 32] = body.get(8..40)?.try_into().ok()?;
    let chunks = u32::from_le_bytes(body.get(40..44)?.try_into().ok()?);
    let bytes = u64::from_le_bytes(body.get(44..52)?.try_into().ok()?);
    let declared_ms = u64::from_le_bytes(body.get(52..60)?.try_into().ok()?);
    let slot = u32::from_le_bytes(body.get(60..64)?.try_into().ok()?);
    let spec = BlobSpec { chunks, bytes };
    (slot > 0 && spec_shape_ok(&spec, u64::from(slot))).then_some((
        Fingerprint::from_bytes(owner),
        spec,
        declared_ms,
        slot,
    ))
}

/// The check of a held record: binds index and length, so a torn or
/// garbled record is never taken as one.
fn held_check(index: u32, len: u32) -> [u8; 8] {
    let mut input = b"hush-blob-held\0".to_vec();
    input.extend_from_slice(&index.to_le_bytes());
    input.extend_from_slice(&len.to_le_bytes());
    let digest = hush_crypto::sha256(&input);
    let mut c = [0u8; 8];
    c.copy_from_slice(&digest[..8]);
    c
}

fn encode_held(index: u32, len: u32) -> [u8; HELD_RECORD] {
    let mut r = [0u8; HELD_RECORD];
    r[..4].copy_from_slice(&index.to_le_bytes());
    r[4..8].copy_from_slice(&len.to_le_bytes());
    r[8..].copy_from_slice(&held_check(index, len));
    r
}

/// Index and length, if `r` is a whole, valid record.
fn decode_held(r: &[u8]) -> Option<(u32, u32)> {
    if r.len() != HELD_RECORD {
        return None;
    }
    let index = u32::from_le_bytes(r.get(..4)?.try_into().ok()?);
    let len = u32::from_le_bytes(r.get(4..8)?.try_into().ok()?);
    (r.get(8..)? == held_check(index, len)).then_some((index, len))
}

/// Whether some file could have this shape with chunks of at most
/// `max_chunk` bytes.
fn spec_shape_ok(spec: &BlobSpec, max_chunk: u64) -> bool {
    let chunks = u64::from(spec.chunks);
    chunks >= 1
        && spec.bytes >= chunks
        && chunks <= 1 + spec.bytes / MIN_MEAN_CHUNK_BYTES
        && chunks.saturating_mul(max_chunk) >= spec.bytes
}

fn private_dir(path: &Path) -> Result<(), BlobError> {
    let mut builder = fs::DirBuilder::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    match builder.create(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(io_err("cannot create folder", path, &e)),
    }
}

fn sync_dir(path: &Path) -> Result<(), BlobError> {
    #[cfg(unix)]
    {
        File::open(path)
            .and_then(|d| d.sync_all())
            .map_err(|e| io_err("cannot sync folder", path, &e))?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// Opens `path` for writing (created 0600 if missing, never truncated).
fn open_private(path: &Path, append: bool) -> Result<File, BlobError> {
    let mut opts = OpenOptions::new();
    if append {
        opts.append(true);
    } else {
        opts.write(true);
    }
    opts.create(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts.open(path).map_err(|e| io_err("cannot open", path, &e))
}

/// Writes `data` to `dir/name` atomically and durably: a temp file,
/// fsynced, renamed over, and the folder fsynced.
fn write_atomic(dir: &Path, name: &str, data: &[u8]) -> Result<(), BlobError> {
    let tmp = dir.join(format!("{name}{TMP_SUFFIX}"));
    let dest = dir.join(name);
    let result = (|| {
        let mut opts = OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts
            .open(&tmp)
            .map_err(|e| io_err("cannot create", &tmp, &e))?;
        f.write_all(data)
            .and_then(|()| f.sync_all())
            .map_err(|e| io_err("cannot write", &tmp, &e))?;
        drop(f);
        fs::rename(&tmp, &dest).map_err(|e| io_err("cannot rename into place", &dest, &e))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result?;
    sync_dir(dir)
}

fn remove_tree(path: &Path) {
    if let Err(e) = fs::remove_dir_all(path)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(path = %path.display(), error = %e, "cannot remove blob folder");
    }
}

fn remove_file_logged(path: &Path, why: &str) {
    tracing::warn!(path = %path.display(), "{why}; removing it");
    if let Err(e) = fs::remove_file(path) {
        tracing::warn!(path = %path.display(), error = %e, "cannot remove");
    }
}

impl BlobStore {
    /// Opens (creating, mode 0700) `data_dir/blobs`; reads the manifests
    /// and held logs already there, so quotas and resumes survive a
    /// restart; deletes half-written temp files, folders left without a
    /// manifest, folders of corrupted manifests (logged with their path),
    /// and held records a crash tore or the data file does not cover.
    ///
    /// # Errors
    /// [`BlobError::Io`] naming the path if the folder cannot be made, is
    /// open to other users, or cannot be read.
    pub fn open(data_dir: &Path, limits: BlobLimits) -> Result<Self, BlobError> {
        let root = data_dir.join(BLOBS_DIR);
        crate::create_private_dir(&root).map_err(|e| BlobError::Io(e.to_string()))?;
        let mut index = Index::default();
        for entry in read_dir(&root)? {
            let path = entry.path();
            let name = entry.file_name();
            let name = name.to_str().unwrap_or("");
            let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
            match unhex16(name) {
                Some(tag) if is_dir => load_room(&path, tag, &mut index)?,
                _ if name.ends_with(TMP_SUFFIX) && !is_dir => {
                    remove_file_logged(&path, "half-written file");
                }
                _ => tracing::warn!(path = %path.display(), "not a blob folder; left alone"),
            }
        }
        Ok(Self {
            root,
            limits,
            index: Mutex::new(index),
        })
    }

    fn find(&self, room: &RoomName, id: [u8; 16]) -> Result<Arc<FileEntry>, BlobError> {
        lock(&self.index)
            .files
            .get(&(room_tag(room), id))
            .cloned()
            .ok_or(BlobError::Unknown)
    }

    /// Declares (or re-declares, to resume) a file of `room` owned by
    /// `owner`; returns what is held (nothing, for a new file).
    ///
    /// # Errors
    /// [`BlobError::NotOwner`] or [`BlobError::Mismatch`] for an id already
    /// declared by someone else or with another spec;
    /// [`BlobError::TooLarge`], [`BlobError::BadSpec`],
    /// [`BlobError::OverQuota`], [`BlobError::TooManyFiles`],
    /// [`BlobError::StoreFull`] for a new one; [`BlobError::Io`].
    pub fn declare(
        &self,
        room: &RoomName,
        id: [u8; 16],
        owner: &Fingerprint,
        spec: BlobSpec,
        now_ms: u64,
    ) -> Result<BlobStatus, BlobError> {
        let key = (room_tag(room), id);
        let mut index = lock(&self.index);
        if let Some(file) = index.files.get(&key) {
            let f = lock(&file.state);
            if f.owner != *owner {
                return Err(BlobError::NotOwner);
            }
            if f.chunks != spec.chunks || f.bytes != spec.bytes {
                return Err(BlobError::Mismatch);
            }
            return Ok(f.status());
        }
        let l = &self.limits;
        if spec.bytes > l.max_file_bytes {
            return Err(BlobError::TooLarge {
                max: l.max_file_bytes,
            });
        }
        let max_chunk = u64::try_from(l.max_chunk_bytes).unwrap_or(u64::MAX);
        if !spec_shape_ok(&spec, max_chunk) {
            return Err(BlobError::BadSpec {
                chunks: spec.chunks,
                bytes: spec.bytes,
            });
        }
        let usage = index.used.get(owner).copied().unwrap_or_default();
        if usage.bytes.saturating_add(spec.bytes) > l.quota_per_identity {
            return Err(BlobError::OverQuota {
                quota: l.quota_per_identity,
                used: usage.bytes,
            });
        }
        if usage.files >= l.max_files_per_identity {
            return Err(BlobError::TooManyFiles {
                max: l.max_files_per_identity,
            });
        }
        if index.total.saturating_add(disk_cost(&spec)) > l.max_total_bytes {
            return Err(BlobError::StoreFull {
                max: l.max_total_bytes,
            });
        }
        // A slot holds the largest chunk accepted, or the whole file if it
        // is smaller (a one-chunk file has a slot of its size).
        let slot = u32::try_from(max_chunk.min(spec.bytes)).unwrap_or(u32::MAX);

        let room_dir = self.root.join(hex(&key.0));
        let dir = room_dir.join(hex(&key.1));
        private_dir(&room_dir)?;
        // A folder here without a file in the index is a leftover of a
        // declaration that failed half-way: start it afresh.
        remove_tree(&dir);
        let written = (|| {
            private_dir(&dir)?;
            // Made before the manifest, so a known file always has them
            // (empty: nothing held).
            for name in [DATA_FILE, HELD_FILE] {
                open_private(&dir.join(name), false)?;
            }
            sync_dir(&room_dir)?;
            sync_dir(&self.root)?;
            write_atomic(
                &dir,
                MANIFEST_FILE,
                &encode_manifest(owner, &spec, now_ms, slot),
            )
        })();
        if let Err(e) = written {
            remove_tree(&dir);
            return Err(e);
        }
        let state = FileState {
            owner: *owner,
            chunks: spec.chunks,
            bytes: spec.bytes,
            declared_ms: now_ms,
            slot,
            held: BTreeMap::new(),
            written: BTreeMap::new(),
            syncing: BTreeMap::new(),
            used_bytes: 0,
            dir,
            gone: false,
        };
        let status = state.status();
        index.charge(*owner, &spec);
        index.files.insert(key, FileEntry::new(state));
        Ok(status)
    }

    /// Writes chunk `index` into its slot (only the owner may). Not yet
    /// durable: it is held once a [`BlobStore::commit`] begun after this
    /// returns has returned. A chunk held already is not written again
    /// ([`Put::Held`]: a held slot is never rewritten, so a crash cannot
    /// tear it); one written and not yet held may be written again (last
    /// write wins, accounted once).
    ///
    /// # Errors
    /// [`BlobError::Unknown`], [`BlobError::NotOwner`],
    /// [`BlobError::BadChunk`] (index out of range, empty or oversize chunk,
    /// or past the declared total), [`BlobError::Io`].
    pub fn put(
        &self,
        room: &RoomName,
        id: [u8; 16],
        owner: &Fingerprint,
        index: u32,
        sealed: &[u8],
    ) -> Result<Put, BlobError> {
        let file = self.find(room, id)?;
        let mut f = lock(&file.state);
        if f.gone {
            return Err(BlobError::Unknown);
        }
        if f.owner != *owner {
            return Err(BlobError::NotOwner);
        }
        let len = u64::try_from(sealed.len()).unwrap_or(u64::MAX);
        let bad = BlobError::BadChunk { index };
        if index >= f.chunks
            || sealed.is_empty()
            || sealed.len() > self.limits.max_chunk_bytes
            || len > u64::from(f.slot)
        {
            return Err(bad);
        }
        if f.held.contains_key(&index) {
            return Ok(Put::Held);
        }
        if f.syncing.contains_key(&index) {
            // The commit under way makes it durable; the bytes being
            // synced are not changed under it.
            return Ok(Put::Written);
        }
        let previous = f.written.get(&index).copied().unwrap_or(0);
        let new_total = f.used_bytes.saturating_sub(previous).saturating_add(len);
        if new_total > f.bytes {
            return Err(bad);
        }
        let path = f.dir.join(DATA_FILE);
        open_private(&path, false)?
            .write_all_at(sealed, f.slot_offset(index))
            .map_err(|e| io_err("cannot write", &path, &e))?;
        f.written.insert(index, len);
        f.used_bytes = new_total;
        Ok(Put::Written)
    }

    /// Makes every chunk written before this call durable, then says which
    /// of `asked` are held. Two fdatasyncs however many chunks: the data
    /// file, then the held log after their records are appended. Commits
    /// of one file run one at a time (puts go on meanwhile), so a chunk
    /// another commit was syncing is held when this one returns.
    ///
    /// # Errors
    /// [`BlobError::Unknown`]; [`BlobError::Io`] if a sync or the log
    /// write fails (the chunks this commit took are then not held, and are
    /// to be uploaded again).
    pub fn commit(
        &self,
        room: &RoomName,
        id: [u8; 16],
        asked: &[u32],
    ) -> Result<Vec<u32>, BlobError> {
        let file = self.find(room, id)?;
        let _sync = lock(&file.sync);
        let (taken, dir) = {
            let mut f = lock(&file.state);
            if f.gone {
                return Err(BlobError::Unknown);
            }
            let taken = std::mem::take(&mut f.written);
            f.syncing.clone_from(&taken);
            (taken, f.dir.clone())
        };
        if !taken.is_empty() {
            let synced = (|| {
                let data = dir.join(DATA_FILE);
                File::open(&data)
                    .and_then(|d| d.sync_data())
                    .map_err(|e| io_err("cannot sync", &data, &e))?;
                let mut records = Vec::with_capacity(taken.len() * HELD_RECORD);
                for (&i, &len) in &taken {
                    records.extend_from_slice(&encode_held(i, u32::try_from(len).unwrap_or(0)));
                }
                let log = dir.join(HELD_FILE);
                let mut f = open_private(&log, true)?;
                f.write_all(&records)
                    .and_then(|()| f.sync_data())
                    .map_err(|e| io_err("cannot write", &log, &e))
            })();
            let mut f = lock(&file.state);
            let syncing = std::mem::take(&mut f.syncing);
            if let Err(e) = synced {
                let lost: u64 = syncing.values().sum();
                f.used_bytes = f.used_bytes.saturating_sub(lost);
                return Err(e);
            }
            f.held.extend(syncing);
        }
        let f = lock(&file.state);
        Ok(asked
            .iter()
            .copied()
            .filter(|i| f.held.contains_key(i))
            .collect())
    }

    /// Returns chunk `index` (to anyone the relay lets ask: the caller
    /// checks the room is joined).
    ///
    /// # Errors
    /// [`BlobError::Unknown`], [`BlobError::BadChunk`] for an index not
    /// below the chunk count, [`BlobError::Missing`] for one not held,
    /// [`BlobError::Io`] naming the data file if it cannot be read or is
    /// shorter than the chunk.
    pub fn get(&self, room: &RoomName, id: [u8; 16], index: u32) -> Result<Vec<u8>, BlobError> {
        self.get_range(room, id, index, 1)
            .map(|mut v| v.pop().unwrap_or_default())
    }

    /// Returns chunks `first .. first + count`, in order, read with one
    /// open of the data file (a range request's answer).
    ///
    /// # Errors
    /// As [`BlobStore::get`], for the first chunk of the range that fails;
    /// [`BlobError::BadChunk`] for an empty range.
    pub fn get_range(
        &self,
        room: &RoomName,
        id: [u8; 16],
        first: u32,
        count: u32,
    ) -> Result<Vec<Vec<u8>>, BlobError> {
        let file = self.find(room, id)?;
        let f = lock(&file.state);
        if f.gone {
            return Err(BlobError::Unknown);
        }
        let end = first.checked_add(count).filter(|&e| e <= f.chunks);
        let Some(end) = end.filter(|_| count > 0) else {
            return Err(BlobError::BadChunk { index: first });
        };
        let mut lens = Vec::with_capacity(count as usize);
        for index in first..end {
            let Some(&len) = f.held.get(&index) else {
                return Err(BlobError::Missing { index });
            };
            lens.push((index, len));
        }
        let path = f.dir.join(DATA_FILE);
        let data = File::open(&path).map_err(|e| io_err("cannot read", &path, &e))?;
        let mut out = Vec::with_capacity(lens.len());
        for (index, len) in lens {
            let mut buf = vec![0u8; usize::try_from(len).unwrap_or(0)];
            data.read_exact_at(&mut buf, f.slot_offset(index))
                .map_err(|e| match e.kind() {
                    std::io::ErrorKind::UnexpectedEof => BlobError::Io(format!(
                        "{} is shorter than its held chunk {index}: changed on disk",
                        path.display()
                    )),
                    _ => io_err("cannot read", &path, &e),
                })?;
            out.push(buf);
        }
        Ok(out)
    }

    /// What is held of a file.
    ///
    /// # Errors
    /// [`BlobError::Unknown`].
    pub fn status(&self, room: &RoomName, id: [u8; 16]) -> Result<BlobStatus, BlobError> {
        let file = self.find(room, id)?;
        let f = lock(&file.state);
        if f.gone {
            return Err(BlobError::Unknown);
        }
        Ok(f.status())
    }

    /// Deletes files declared more than `expiry` before `now_ms`; returns
    /// how many. Until a sweep, an expired file is still served (the other
    /// methods take no clock), and re-declaring it resumes it without
    /// moving its declaration time. Frees their quota. A file's manifest goes first, so a
    /// crash half-way leaves a folder without one, which `open` removes.
    ///
    /// # Errors
    /// [`BlobError::Io`] naming the first manifest that could not be
    /// removed (its file stays, and is tried again next sweep); the others
    /// are still swept.
    pub fn sweep(&self, now_ms: u64) -> Result<usize, BlobError> {
        let expiry = u64::try_from(self.limits.expiry.as_millis()).unwrap_or(u64::MAX);
        let mut index = lock(&self.index);
        let expired: Vec<Key> = index
            .files
            .iter()
            .filter(|(_, file)| now_ms.saturating_sub(lock(&file.state).declared_ms) > expiry)
            .map(|(k, _)| *k)
            .collect();
        let mut swept = 0;
        let mut first_error = None;
        let mut rooms = Vec::new();
        for key in expired {
            let Some(file) = index.files.get(&key).cloned() else {
                continue;
            };
            let mut f = lock(&file.state);
            let manifest = f.dir.join(MANIFEST_FILE);
            match fs::remove_file(&manifest) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    first_error.get_or_insert_with(|| io_err("cannot remove", &manifest, &e));
                    continue;
                }
            }
            remove_tree(&f.dir);
            f.gone = true;
            let owner = f.owner;
            let spec = BlobSpec {
                chunks: f.chunks,
                bytes: f.bytes,
            };
            drop(f);
            index.files.remove(&key);
            index.release(&owner, &spec);
            rooms.push(key.0);
            swept += 1;
        }
        rooms.sort_unstable();
        rooms.dedup();
        for tag in rooms {
            // Fails (harmlessly) while the room has other files.
            let _ = fs::remove_dir(self.root.join(hex(&tag)));
        }
        drop(index);
        first_error.map_or(Ok(swept), Err)
    }

    /// Sealed bytes `owner` has stored or declared now (for tests and
    /// metrics).
    #[must_use]
    pub fn used_by(&self, owner: &Fingerprint) -> u64 {
        lock(&self.index).used.get(owner).map_or(0, |u| u.bytes)
    }

    /// Files `owner` has declared now (for tests and metrics).
    #[must_use]
    pub fn files_of(&self, owner: &Fingerprint) -> u32 {
        lock(&self.index).used.get(owner).map_or(0, |u| u.files)
    }
}

fn read_dir(path: &Path) -> Result<Vec<fs::DirEntry>, BlobError> {
    fs::read_dir(path)
        .and_then(Iterator::collect::<Result<Vec<_>, _>>)
        .map_err(|e| io_err("cannot read folder", path, &e))
}

/// Loads every file of one room folder into `index`.
fn load_room(room_dir: &Path, tag: [u8; 16], index: &mut Index) -> Result<(), BlobError> {
    let mut kept = 0usize;
    for entry in read_dir(room_dir)? {
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_str().unwrap_or("");
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        match unhex16(name) {
            Some(id) if is_dir => {
                if let Some(state) = load_file(&path)? {
                    let spec = BlobSpec {
                        chunks: state.chunks,
                        bytes: state.bytes,
                    };
                    index.charge(state.owner, &spec);
                    index.files.insert((tag, id), FileEntry::new(state));
                    kept += 1;
                }
            }
            _ if name.ends_with(TMP_SUFFIX) && !is_dir => {
                remove_file_logged(&path, "half-written file");
            }
            _ => {
                tracing::warn!(path = %path.display(), "not a blob file folder; left alone");
                kept += 1;
            }
        }
    }
    if kept == 0 {
        let _ = fs::remove_dir(room_dir);
    }
    Ok(())
}

/// Loads one file folder; `None` (and the folder removed) if it has no
/// manifest or a corrupted one.
fn load_file(dir: &Path) -> Result<Option<FileState>, BlobError> {
    let manifest = dir.join(MANIFEST_FILE);
    let mut raw = Vec::with_capacity(MANIFEST_LEN + 1);
    let read = File::open(&manifest).and_then(|f| {
        f.take(u64::try_from(MANIFEST_LEN).unwrap_or(u64::MAX) + 1)
            .read_to_end(&mut raw)
    });
    match read {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // A declaration interrupted before its manifest landed, or a
            // sweep after it was removed.
            tracing::info!(path = %dir.display(), "blob folder without a manifest; removing it");
            remove_tree(dir);
            return Ok(None);
        }
        Err(e) => return Err(io_err("cannot read", &manifest, &e)),
    }
    if raw.starts_with(OLD_MANIFEST_MAGIC) {
        tracing::warn!(
            path = %dir.display(),
            "blob folder of the unreleased one-file-per-chunk layout; removed (its sender's client uploads it again when it resumes)"
        );
        remove_tree(dir);
        return Ok(None);
    }
    let Some((owner, spec, declared_ms, slot)) = decode_manifest(&raw) else {
        tracing::warn!(
            path = %manifest.display(),
            "corrupted blob manifest; the file is dropped and its folder removed"
        );
        remove_tree(dir);
        return Ok(None);
    };
    for entry in read_dir(dir)? {
        let name = entry.file_name();
        let name = name.to_str().unwrap_or("");
        if name.ends_with(TMP_SUFFIX) && entry.file_type().is_ok_and(|t| t.is_file()) {
            remove_file_logged(&entry.path(), "half-written file");
        }
    }
    let data = dir.join(DATA_FILE);
    let data_len = match fs::metadata(&data) {
        Ok(m) => m.len(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
        Err(e) => return Err(io_err("cannot read", &data, &e)),
    };
    let log = dir.join(HELD_FILE);
    let raw_log = match fs::read(&log) {
        Ok(r) => r,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(io_err("cannot read", &log, &e)),
    };
    let mut held = BTreeMap::new();
    let mut held_bytes = 0u64;
    let mut dropped = raw_log.len() % HELD_RECORD != 0;
    for r in raw_log.chunks(HELD_RECORD) {
        let Some((i, len)) = decode_held(r) else {
            dropped = true;
            continue;
        };
        let len = u64::from(len);
        let end = (u64::from(i) * u64::from(slot)).saturating_add(len);
        let fits = i < spec.chunks
            && len > 0
            && len <= u64::from(slot)
            && end <= data_len
            && held_bytes.saturating_add(len) <= spec.bytes
            && !held.contains_key(&i);
        if fits {
            held.insert(i, len);
            held_bytes += len;
        } else {
            dropped = true;
        }
    }
    if dropped {
        // A record torn by a crash, or one the manifest or the data file
        // rules out: the chunk is not held (it is uploaded again), and the
        // log is rewritten without it.
        tracing::warn!(
            path = %log.display(),
            "held chunk records torn, out of range or past the data's end; those chunks are not held"
        );
        let mut clean = Vec::with_capacity(held.len() * HELD_RECORD);
        for (&i, &len) in &held {
            clean.extend_from_slice(&encode_held(i, u32::try_from(len).unwrap_or(0)));
        }
        write_atomic(dir, HELD_FILE, &clean)?;
    }
    Ok(Some(FileState {
        owner,
        chunks: spec.chunks,
        bytes: spec.bytes,
        declared_ms,
        slot,
        used_bytes: held_bytes,
        held,
        written: BTreeMap::new(),
        syncing: BTreeMap::new(),
        dir: dir.to_path_buf(),
        gone: false,
    }))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const ALICE: Fingerprint = Fingerprint::from_bytes([0xa1; 32]);
    const BOB: Fingerprint = Fingerprint::from_bytes([0xb0; 32]);
    const ID: [u8; 16] = [7; 16];
    const DAY_MS: u64 = 24 * 3600 * 1000;
    const CHUNK: usize = 5000;

    fn room(name: &str) -> RoomName {
        RoomName::new(name).unwrap()
    }

    /// Three chunks of [`CHUNK`] bytes, each filled with its index.
    fn spec3() -> BlobSpec {
        BlobSpec {
            chunks: 3,
            bytes: 3 * CHUNK as u64,
        }
    }

    fn chunk(i: u32) -> Vec<u8> {
        vec![u8::try_from(i).unwrap(); CHUNK]
    }

    fn open(dir: &Path) -> BlobStore {
        BlobStore::open(dir, BlobLimits::default()).unwrap()
    }

    fn file_dir(data: &Path, r: &RoomName, id: [u8; 16]) -> PathBuf {
        data.join(BLOBS_DIR).join(hex(&room_tag(r))).join(hex(&id))
    }

    /// A put and then a commit: the chunk held, as the relay acknowledges it.
    fn put(
        s: &BlobStore,
        r: &RoomName,
        id: [u8; 16],
        owner: &Fingerprint,
        index: u32,
        data: &[u8],
    ) -> Result<BlobStatus, BlobError> {
        s.put(r, id, owner, index, data)?;
        assert_eq!(s.commit(r, id, &[index])?, vec![index]);
        s.status(r, id)
    }

    #[test]
    fn declare_put_get_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let s = open(dir.path());
        let r = room("lobby");
        let st = s.declare(&r, ID, &ALICE, spec3(), 1_000).unwrap();
        assert_eq!(
            st,
            BlobStatus {
                chunks: 3,
                bytes: 3 * CHUNK as u64,
                have: vec![],
                complete: false
            }
        );
        for i in [2, 0, 1] {
            let st = put(&s, &r, ID, &ALICE, i, &chunk(i)).unwrap();
            assert_eq!(st.complete, i == 1);
        }
        for i in 0..3 {
            assert_eq!(s.get(&r, ID, i).unwrap(), chunk(i));
        }
        let st = s.status(&r, ID).unwrap();
        assert_eq!(st.have, vec![0, 1, 2]);
        assert!(st.complete);
        assert_eq!(s.used_by(&ALICE), 3 * CHUNK as u64);
        assert_eq!(s.used_by(&BOB), 0);
        // The same id in another room is another file.
        assert_eq!(s.status(&room("other"), ID), Err(BlobError::Unknown));
    }

    #[test]
    fn a_re_declaration_resumes_also_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let r = room("lobby");
        {
            let s = open(dir.path());
            s.declare(&r, ID, &ALICE, spec3(), 1_000).unwrap();
            put(&s, &r, ID, &ALICE, 1, &chunk(1)).unwrap();
            let st = s.declare(&r, ID, &ALICE, spec3(), 2_000).unwrap();
            assert_eq!(st.have, vec![1]);
            assert_eq!(s.used_by(&ALICE), spec3().bytes, "charged once");
        }
        let s = open(dir.path());
        assert_eq!(s.used_by(&ALICE), spec3().bytes, "quota survives");
        assert_eq!(s.files_of(&ALICE), 1);
        let st = s.declare(&r, ID, &ALICE, spec3(), 3_000).unwrap();
        assert_eq!(st.have, vec![1]);
        assert_eq!(s.get(&r, ID, 1).unwrap(), chunk(1));
        put(&s, &r, ID, &ALICE, 0, &chunk(0)).unwrap();
        let st = put(&s, &r, ID, &ALICE, 2, &chunk(2)).unwrap();
        assert!(st.complete);
        // The resume did not move the declaration time: it expires as declared.
        assert_eq!(s.sweep(1_000 + 7 * DAY_MS + 1).unwrap(), 1);
    }

    #[test]
    fn quota_counts_declared_bytes_per_owner_and_sweep_frees_it() {
        let dir = tempfile::tempdir().unwrap();
        let limits = BlobLimits {
            quota_per_identity: 4 * CHUNK as u64,
            ..BlobLimits::default()
        };
        let s = BlobStore::open(dir.path(), limits).unwrap();
        let r = room("lobby");
        s.declare(&r, [1; 16], &ALICE, spec3(), 0).unwrap();
        // Nothing uploaded yet, but the declaration reserved its bytes.
        assert_eq!(
            s.declare(&r, [2; 16], &ALICE, spec3(), 0),
            Err(BlobError::OverQuota {
                quota: 4 * CHUNK as u64,
                used: 3 * CHUNK as u64
            })
        );
        assert_eq!(s.status(&r, [2; 16]), Err(BlobError::Unknown));
        s.declare(&r, [2; 16], &BOB, spec3(), DAY_MS).unwrap();
        assert_eq!(s.used_by(&BOB), 3 * CHUNK as u64, "bob is unaffected");
        // Alice's expires; bob's, declared a day later, not yet.
        assert_eq!(s.sweep(7 * DAY_MS + 1).unwrap(), 1);
        assert_eq!(s.used_by(&ALICE), 0);
        assert_eq!(s.files_of(&ALICE), 0);
        s.declare(&r, [3; 16], &ALICE, spec3(), 7 * DAY_MS).unwrap();
        assert_eq!(s.used_by(&BOB), 3 * CHUNK as u64);
    }

    #[test]
    fn too_large_and_impossible_declarations_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let s = open(dir.path());
        let r = room("lobby");
        let max = BlobLimits::default().max_file_bytes;
        assert_eq!(
            s.declare(
                &r,
                ID,
                &ALICE,
                BlobSpec {
                    chunks: u32::MAX,
                    bytes: max + 1
                },
                0
            ),
            Err(BlobError::TooLarge { max })
        );
        for (chunks, bytes) in [
            (0, 0),
            (0, 100),
            (2, 1),
            // Many tiny chunks under a small byte count (inode exhaustion).
            (1000, 1000),
            (u32::MAX, max),
            // More bytes than its chunks could ever hold.
            (1, 33 * 1024 + 1),
        ] {
            assert_eq!(
                s.declare(&r, ID, &ALICE, BlobSpec { chunks, bytes }, 0),
                Err(BlobError::BadSpec { chunks, bytes }),
                "{chunks} {bytes}"
            );
        }
        assert_eq!(s.used_by(&ALICE), 0);
        // The largest honest file fits.
        let chunks = u32::try_from(max.div_ceil(33 * 1024)).unwrap();
        s.declare(&r, ID, &ALICE, BlobSpec { chunks, bytes: max }, 0)
            .unwrap();
    }

    #[test]
    fn only_the_owner_puts_or_re_declares() {
        let dir = tempfile::tempdir().unwrap();
        let s = open(dir.path());
        let r = room("lobby");
        s.declare(&r, ID, &ALICE, spec3(), 0).unwrap();
        assert_eq!(
            put(&s, &r, ID, &BOB, 0, &chunk(0)),
            Err(BlobError::NotOwner)
        );
        assert_eq!(
            s.declare(&r, ID, &BOB, spec3(), 0),
            Err(BlobError::NotOwner)
        );
        assert_eq!(s.status(&r, ID).unwrap().have, Vec::<u32>::new());
        assert_eq!(s.used_by(&BOB), 0);
    }

    #[test]
    fn a_re_declaration_with_another_size_is_a_mismatch() {
        let dir = tempfile::tempdir().unwrap();
        let s = open(dir.path());
        let r = room("lobby");
        s.declare(&r, ID, &ALICE, spec3(), 0).unwrap();
        for spec in [
            BlobSpec {
                chunks: 2,
                bytes: spec3().bytes,
            },
            BlobSpec {
                chunks: 3,
                bytes: spec3().bytes + 1,
            },
        ] {
            assert_eq!(s.declare(&r, ID, &ALICE, spec, 0), Err(BlobError::Mismatch));
        }
        assert_eq!(s.used_by(&ALICE), spec3().bytes);
    }

    #[test]
    fn a_chunk_index_out_of_range_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let s = open(dir.path());
        let r = room("lobby");
        s.declare(&r, ID, &ALICE, spec3(), 0).unwrap();
        for index in [3, 4, u32::MAX] {
            assert_eq!(
                put(&s, &r, ID, &ALICE, index, &chunk(0)),
                Err(BlobError::BadChunk { index })
            );
            assert_eq!(s.get(&r, ID, index), Err(BlobError::BadChunk { index }));
        }
    }

    #[test]
    fn an_empty_or_oversize_chunk_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let s = open(dir.path());
        let r = room("lobby");
        let spec = BlobSpec {
            chunks: 3,
            bytes: 99 * 1024,
        };
        s.declare(&r, ID, &ALICE, spec, 0).unwrap();
        let max = BlobLimits::default().max_chunk_bytes;
        assert_eq!(
            put(&s, &r, ID, &ALICE, 0, &vec![1; max + 1]),
            Err(BlobError::BadChunk { index: 0 })
        );
        assert_eq!(
            put(&s, &r, ID, &ALICE, 0, &[]),
            Err(BlobError::BadChunk { index: 0 })
        );
        put(&s, &r, ID, &ALICE, 0, &vec![1; max]).unwrap();
    }

    #[test]
    fn chunks_past_the_declared_total_are_refused_and_a_re_put_counts_once() {
        let dir = tempfile::tempdir().unwrap();
        let s = open(dir.path());
        let r = room("lobby");
        s.declare(&r, ID, &ALICE, spec3(), 0).unwrap();
        put(&s, &r, ID, &ALICE, 0, &chunk(0)).unwrap();
        put(&s, &r, ID, &ALICE, 1, &chunk(1)).unwrap();
        assert_eq!(
            put(&s, &r, ID, &ALICE, 2, &vec![2; CHUNK + 1]),
            Err(BlobError::BadChunk { index: 2 })
        );
        // A held chunk is never written again (a crash cannot tear it): a
        // re-put is answered "held", and the bytes stay.
        assert_eq!(s.put(&r, ID, &ALICE, 1, &vec![9; CHUNK + 1]), Ok(Put::Held));
        assert_eq!(s.get(&r, ID, 1).unwrap(), chunk(1));
        // One written and not yet held is replaced, and counted once.
        assert_eq!(
            s.put(&r, ID, &ALICE, 2, &vec![3; CHUNK - 2]),
            Ok(Put::Written)
        );
        assert_eq!(s.put(&r, ID, &ALICE, 2, &chunk(2)), Ok(Put::Written));
        assert!(
            !s.status(&r, ID).unwrap().complete,
            "not held before a commit"
        );
        assert_eq!(s.commit(&r, ID, &[2]).unwrap(), vec![2]);
        assert_eq!(s.get(&r, ID, 2).unwrap(), chunk(2));
        let st = s.status(&r, ID).unwrap();
        assert!(st.complete, "all held and exactly the declared bytes");
        assert_eq!(s.used_by(&ALICE), spec3().bytes);
    }

    #[test]
    fn a_chunk_not_held_is_missing_and_an_undeclared_file_unknown() {
        let dir = tempfile::tempdir().unwrap();
        let s = open(dir.path());
        let r = room("lobby");
        assert_eq!(s.get(&r, ID, 0), Err(BlobError::Unknown));
        assert_eq!(
            put(&s, &r, ID, &ALICE, 0, &chunk(0)),
            Err(BlobError::Unknown)
        );
        s.declare(&r, ID, &ALICE, spec3(), 0).unwrap();
        put(&s, &r, ID, &ALICE, 0, &chunk(0)).unwrap();
        assert_eq!(s.get(&r, ID, 1), Err(BlobError::Missing { index: 1 }));
        assert_eq!(s.get(&r, ID, 2), Err(BlobError::Missing { index: 2 }));
    }

    #[test]
    fn sweep_expires_files_also_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let r = room("lobby");
        let fdir = file_dir(dir.path(), &r, ID);
        {
            let s = open(dir.path());
            s.declare(&r, ID, &ALICE, spec3(), 1_000).unwrap();
            put(&s, &r, ID, &ALICE, 0, &chunk(0)).unwrap();
            s.declare(&r, [8; 16], &ALICE, spec3(), 1_000 + DAY_MS)
                .unwrap();
            assert_eq!(s.sweep(1_000 + 7 * DAY_MS).unwrap(), 0, "not yet");
        }
        let s = open(dir.path());
        assert_eq!(s.sweep(1_000 + 7 * DAY_MS + 1).unwrap(), 1);
        assert!(!fdir.exists(), "its folder is gone");
        assert_eq!(s.status(&r, ID), Err(BlobError::Unknown));
        assert_eq!(s.get(&r, ID, 0), Err(BlobError::Unknown));
        assert_eq!(s.used_by(&ALICE), spec3().bytes, "the other one stays");
        assert_eq!(s.sweep(u64::MAX).unwrap(), 1);
        assert_eq!(s.used_by(&ALICE), 0);
        let room_dir = dir.path().join(BLOBS_DIR).join(hex(&room_tag(&r)));
        assert!(!room_dir.exists(), "an empty room folder goes too");
        drop(s);
        let s = open(dir.path());
        assert_eq!(s.used_by(&ALICE), 0, "and it stays gone after a restart");
        // The id can be declared afresh.
        let st = s.declare(&r, ID, &BOB, spec3(), u64::MAX).unwrap();
        assert!(st.have.is_empty());
    }

    #[test]
    fn a_crash_mid_write_leaves_a_temp_file_that_open_removes() {
        let dir = tempfile::tempdir().unwrap();
        let r = room("lobby");
        let fdir = file_dir(dir.path(), &r, ID);
        {
            let s = open(dir.path());
            s.declare(&r, ID, &ALICE, spec3(), 0).unwrap();
            put(&s, &r, ID, &ALICE, 0, &chunk(0)).unwrap();
        }
        // A manifest and a held log rewrite cut short by a crash.
        fs::write(fdir.join("held.tmp"), b"half").unwrap();
        fs::write(fdir.join("manifest.tmp"), b"half").unwrap();
        let s = open(dir.path());
        assert!(!fdir.join("held.tmp").exists());
        assert!(!fdir.join("manifest.tmp").exists());
        let st = s.status(&r, ID).unwrap();
        assert_eq!(st.have, vec![0], "the half-written chunk is not held");
        assert_eq!(s.get(&r, ID, 1), Err(BlobError::Missing { index: 1 }));
        // And the put can be retried.
        put(&s, &r, ID, &ALICE, 1, &chunk(1)).unwrap();
        assert_eq!(s.get(&r, ID, 1).unwrap(), chunk(1));
    }

    #[test]
    fn leftovers_the_manifest_rules_out_are_removed_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let r = room("lobby");
        let fdir = file_dir(dir.path(), &r, ID);
        let orphan = file_dir(dir.path(), &r, [9; 16]);
        {
            let s = open(dir.path());
            s.declare(&r, ID, &ALICE, spec3(), 0).unwrap();
            put(&s, &r, ID, &ALICE, 0, &chunk(0)).unwrap();
        }
        // Held records out of range, empty, larger than a slot, past the
        // declared total, a repeat, a stray file, and a folder whose
        // declaration crashed before its manifest landed.
        let log = fdir.join(HELD_FILE);
        let mut records = fs::read(&log).unwrap();
        for (i, len) in [(3, 10), (1, 0), (1, 20_000), (0, 5000), (2, 10_001)] {
            records.extend_from_slice(&encode_held(i, len));
        }
        fs::write(&log, &records).unwrap();
        fs::write(fdir.join("01"), b"x").unwrap();
        fs::create_dir(&orphan).unwrap();
        fs::write(orphan.join(DATA_FILE), b"x").unwrap();
        let s = open(dir.path());
        assert_eq!(
            fs::read(&log).unwrap(),
            encode_held(0, 5000),
            "the log is rewritten with what is held"
        );
        assert!(fdir.join("01").exists(), "not ours: left alone");
        assert!(!orphan.exists());
        assert_eq!(s.status(&r, ID).unwrap().have, vec![0]);
        assert_eq!(s.status(&r, [9; 16]), Err(BlobError::Unknown));
        assert_eq!(s.files_of(&ALICE), 1);
    }

    #[test]
    fn a_corrupted_manifest_drops_its_file_and_never_panics() {
        let dir = tempfile::tempdir().unwrap();
        let r = room("lobby");
        let fdir = file_dir(dir.path(), &r, ID);
        {
            let s = open(dir.path());
            s.declare(&r, ID, &ALICE, spec3(), 0).unwrap();
            put(&s, &r, ID, &ALICE, 0, &chunk(0)).unwrap();
            s.declare(&r, [8; 16], &ALICE, spec3(), 0).unwrap();
        }
        let manifest = fdir.join(MANIFEST_FILE);
        let good = fs::read(&manifest).unwrap();
        let mut bad = good.clone();
        bad[45] ^= 1; // a bit of `bytes`
        fs::write(&manifest, &bad).unwrap();
        let s = open(dir.path());
        assert_eq!(s.status(&r, ID), Err(BlobError::Unknown));
        assert!(!fdir.exists(), "its folder is removed");
        assert_eq!(
            s.used_by(&ALICE),
            spec3().bytes,
            "only the sound file counts"
        );
        assert_eq!(s.status(&r, [8; 16]).unwrap().chunks, 3);
        // No truncation, extension or flipped byte of a manifest decodes,
        // and none panics.
        assert!(decode_manifest(&good).is_some());
        for n in 0..good.len() {
            assert!(decode_manifest(&good[..n]).is_none());
        }
        let mut longer = good.clone();
        longer.push(0);
        assert!(decode_manifest(&longer).is_none());
        for i in 0..good.len() {
            let mut m = good.clone();
            m[i] ^= 0x80;
            assert!(decode_manifest(&m).is_none(), "byte {i}");
        }
        // A manifest with a sound checksum but an impossible spec is refused too.
        let forged = encode_manifest(
            &ALICE,
            &BlobSpec {
                chunks: u32::MAX,
                bytes: 1,
            },
            0,
            1,
        );
        assert!(decode_manifest(&forged).is_none());
        // And so is one with a slot too small for its bytes, or none.
        for slot in [0, 4999] {
            let small = encode_manifest(&ALICE, &spec3(), 0, slot);
            assert!(decode_manifest(&small).is_none(), "{slot}");
        }
    }

    #[test]
    fn room_names_and_ids_never_become_paths() {
        let dir = tempfile::tempdir().unwrap();
        for bad in ["../etc", "a/b", "..", "/abs"] {
            assert!(RoomName::new(bad).is_err(), "{bad}");
        }
        let s = open(dir.path());
        // Dots are allowed inside a name: still only a hash reaches the disk.
        for name in ["a..b", "x.", "a-_.9"] {
            let r = room(name);
            s.declare(&r, [0x2e; 16], &ALICE, spec3(), 0).unwrap();
            put(&s, &r, [0x2e; 16], &ALICE, 0, &chunk(0)).unwrap();
        }
        let root = dir.path().join(BLOBS_DIR);
        let rooms = read_dir(&root).unwrap();
        assert_eq!(rooms.len(), 3);
        for entry in rooms {
            let name = entry.file_name().into_string().unwrap();
            assert!(unhex16(&name).is_some(), "{name}");
            for file in read_dir(&entry.path()).unwrap() {
                assert_eq!(file.file_name().into_string().unwrap(), "2e".repeat(16));
            }
        }
        assert_eq!(
            read_dir(dir.path()).unwrap().len(),
            1,
            "nothing outside blobs/"
        );
    }

    #[cfg(unix)]
    #[test]
    fn folders_are_0700_and_files_0600() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let s = open(dir.path());
        let r = room("lobby");
        s.declare(&r, ID, &ALICE, spec3(), 0).unwrap();
        put(&s, &r, ID, &ALICE, 0, &chunk(0)).unwrap();
        let fdir = file_dir(dir.path(), &r, ID);
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir.path().join(BLOBS_DIR)), 0o700);
        assert_eq!(mode(fdir.parent().unwrap()), 0o700);
        assert_eq!(mode(&fdir), 0o700);
        assert_eq!(mode(&fdir.join(MANIFEST_FILE)), 0o600);
        assert_eq!(mode(&fdir.join(DATA_FILE)), 0o600);
        assert_eq!(mode(&fdir.join(HELD_FILE)), 0o600);
        // A blob folder open to others is refused, naming the fix.
        drop(s);
        let root = dir.path().join(BLOBS_DIR);
        fs::set_permissions(&root, fs::Permissions::from_mode(0o755)).unwrap();
        let err = BlobStore::open(dir.path(), BlobLimits::default())
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains(&format!("chmod 700 {}", root.display())),
            "{err}"
        );
    }

    #[test]
    fn file_count_and_store_total_are_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let limits = BlobLimits {
            max_files_per_identity: 2,
            max_total_bytes: 5 * disk_cost(&spec3()),
            ..BlobLimits::default()
        };
        let s = BlobStore::open(dir.path(), limits).unwrap();
        let r = room("lobby");
        s.declare(&r, [1; 16], &ALICE, spec3(), 0).unwrap();
        s.declare(&r, [2; 16], &ALICE, spec3(), 0).unwrap();
        assert_eq!(
            s.declare(&r, [3; 16], &ALICE, spec3(), 0),
            Err(BlobError::TooManyFiles { max: 2 })
        );
        s.declare(&r, [4; 16], &BOB, spec3(), 0).unwrap();
        s.declare(&r, [5; 16], &BOB, spec3(), 0).unwrap();
        let carol = Fingerprint::from_bytes([0xc0; 32]);
        s.declare(&r, [6; 16], &carol, spec3(), 0).unwrap();
        assert_eq!(
            s.declare(&r, [7; 16], &carol, spec3(), 0),
            Err(BlobError::StoreFull {
                max: 5 * disk_cost(&spec3())
            })
        );
        // Tiny files are charged their folder, manifest and chunk blocks.
        assert_eq!(
            disk_cost(&BlobSpec {
                chunks: 1,
                bytes: 1
            }),
            1 + 3 * BLOCK_BYTES
        );
        // Sweeping frees the total too.
        assert_eq!(s.sweep(u64::MAX).unwrap(), 5);
        s.declare(&r, [7; 16], &carol, spec3(), 0).unwrap();
    }

    #[test]
    fn a_chunk_changed_on_disk_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let s = open(dir.path());
        let r = room("lobby");
        s.declare(&r, ID, &ALICE, spec3(), 0).unwrap();
        put(&s, &r, ID, &ALICE, 0, &chunk(0)).unwrap();
        let path = file_dir(dir.path(), &r, ID).join(DATA_FILE);
        fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(100)
            .unwrap();
        match s.get(&r, ID, 0) {
            Err(BlobError::Io(msg)) => assert!(msg.contains(&path.display().to_string())),
            other => panic!("{other:?}"),
        }
        fs::remove_file(&path).unwrap();
        match s.get(&r, ID, 0) {
            Err(BlobError::Io(msg)) => assert!(msg.contains(&path.display().to_string())),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn parallel_uploads_are_each_accounted() {
        let dir = tempfile::tempdir().unwrap();
        let s = open(dir.path());
        let r = room("lobby");
        let spec = BlobSpec {
            chunks: 8,
            bytes: 8 * CHUNK as u64,
        };
        s.declare(&r, [1; 16], &ALICE, spec.clone(), 0).unwrap();
        s.declare(&r, [2; 16], &BOB, spec, 0).unwrap();
        std::thread::scope(|t| {
            for i in 0..8u32 {
                let (s, r) = (&s, &r);
                t.spawn(move || {
                    put(s, r, [1; 16], &ALICE, i, &chunk(i)).unwrap();
                    put(s, r, [2; 16], &BOB, i, &chunk(i)).unwrap();
                    // Racing re-puts of one chunk are accounted once.
                    put(s, r, [1; 16], &ALICE, 0, &chunk(0)).unwrap();
                });
            }
        });
        assert!(s.status(&r, [1; 16]).unwrap().complete);
        assert!(s.status(&r, [2; 16]).unwrap().complete);
    }

    #[test]
    fn a_written_chunk_is_served_only_once_a_commit_made_it_durable() {
        let dir = tempfile::tempdir().unwrap();
        let s = open(dir.path());
        let r = room("lobby");
        s.declare(&r, ID, &ALICE, spec3(), 0).unwrap();
        assert_eq!(s.put(&r, ID, &ALICE, 0, &chunk(0)), Ok(Put::Written));
        assert_eq!(s.put(&r, ID, &ALICE, 1, &chunk(1)), Ok(Put::Written));
        assert_eq!(s.get(&r, ID, 0), Err(BlobError::Missing { index: 0 }));
        assert!(s.status(&r, ID).unwrap().have.is_empty());
        // One commit makes both durable, and says which of those asked are.
        assert_eq!(s.commit(&r, ID, &[0, 1, 2]).unwrap(), vec![0, 1]);
        assert_eq!(s.get(&r, ID, 1).unwrap(), chunk(1));
        assert_eq!(s.status(&r, ID).unwrap().have, vec![0, 1]);
        // A commit with nothing written only reports.
        assert_eq!(s.commit(&r, ID, &[1]).unwrap(), vec![1]);
        assert_eq!(
            fs::read(file_dir(dir.path(), &r, ID).join(HELD_FILE))
                .unwrap()
                .len(),
            2 * HELD_RECORD
        );
    }

    #[test]
    fn a_crash_before_the_commit_loses_only_chunks_never_reported_held() {
        let dir = tempfile::tempdir().unwrap();
        let r = room("lobby");
        {
            let s = open(dir.path());
            s.declare(&r, ID, &ALICE, spec3(), 0).unwrap();
            put(&s, &r, ID, &ALICE, 0, &chunk(0)).unwrap();
            // Written, never committed: the relay "crashes" here.
            s.put(&r, ID, &ALICE, 1, &chunk(1)).unwrap();
        }
        let s = open(dir.path());
        let st = s.declare(&r, ID, &ALICE, spec3(), 0).unwrap();
        assert_eq!(st.have, vec![0], "only the committed chunk is held");
        assert_eq!(s.get(&r, ID, 1), Err(BlobError::Missing { index: 1 }));
        assert_eq!(s.used_by(&ALICE), spec3().bytes);
        // The resume uploads it again and the file completes.
        put(&s, &r, ID, &ALICE, 1, &chunk(1)).unwrap();
        assert!(put(&s, &r, ID, &ALICE, 2, &chunk(2)).unwrap().complete);
        assert_eq!(s.get(&r, ID, 1).unwrap(), chunk(1));
    }

    #[test]
    fn a_torn_record_or_a_truncated_slot_after_a_crash_is_missing_and_uploaded_again() {
        let dir = tempfile::tempdir().unwrap();
        let r = room("lobby");
        let fdir = file_dir(dir.path(), &r, ID);
        {
            let s = open(dir.path());
            s.declare(&r, ID, &ALICE, spec3(), 0).unwrap();
            put(&s, &r, ID, &ALICE, 0, &chunk(0)).unwrap();
            put(&s, &r, ID, &ALICE, 2, &chunk(2)).unwrap();
        }
        // The crash: half of chunk 1's record reached the log, and the data
        // file lost the end of chunk 2's slot (a disk that lied about a sync).
        let log = fdir.join(HELD_FILE);
        let mut records = fs::read(&log).unwrap();
        records.extend_from_slice(&encode_held(1, 5000)[..9]);
        fs::write(&log, &records).unwrap();
        let data = fdir.join(DATA_FILE);
        let slot = spec3().bytes; // a file smaller than a chunk limit: one slot is all of it
        let len = fs::metadata(&data).unwrap().len();
        assert_eq!(len, 2 * slot + CHUNK as u64);
        fs::OpenOptions::new()
            .write(true)
            .open(&data)
            .unwrap()
            .set_len(len - 1)
            .unwrap();
        let s = open(dir.path());
        let st = s.declare(&r, ID, &ALICE, spec3(), 0).unwrap();
        assert_eq!(
            st.have,
            vec![0],
            "neither the torn record nor the cut slot is held"
        );
        assert_eq!(s.get(&r, ID, 2), Err(BlobError::Missing { index: 2 }));
        assert_eq!(fs::read(&log).unwrap(), encode_held(0, 5000));
        // Uploaded again, both are held, and survive another restart.
        put(&s, &r, ID, &ALICE, 1, &chunk(1)).unwrap();
        put(&s, &r, ID, &ALICE, 2, &chunk(2)).unwrap();
        drop(s);
        let s = open(dir.path());
        assert!(s.status(&r, ID).unwrap().complete);
        for i in 0..3 {
            assert_eq!(s.get(&r, ID, i).unwrap(), chunk(i));
        }
        // No truncation or flipped byte of a record decodes.
        let good = encode_held(7, 5000);
        assert_eq!(decode_held(&good), Some((7, 5000)));
        for n in 0..HELD_RECORD {
            assert!(decode_held(&good[..n]).is_none());
        }
        for i in 0..HELD_RECORD {
            let mut b = good;
            b[i] ^= 1;
            assert!(decode_held(&b).is_none(), "byte {i}");
        }
    }

    #[test]
    fn a_range_is_read_in_order_and_refused_past_what_is_held() {
        let dir = tempfile::tempdir().unwrap();
        let s = open(dir.path());
        let r = room("lobby");
        s.declare(&r, ID, &ALICE, spec3(), 0).unwrap();
        put(&s, &r, ID, &ALICE, 0, &chunk(0)).unwrap();
        put(&s, &r, ID, &ALICE, 1, &chunk(1)).unwrap();
        assert_eq!(s.get_range(&r, ID, 0, 2).unwrap(), vec![chunk(0), chunk(1)]);
        assert_eq!(
            s.get_range(&r, ID, 1, 2),
            Err(BlobError::Missing { index: 2 })
        );
        for (first, count) in [(0, 0), (2, 2), (u32::MAX, 2), (0, u32::MAX)] {
            assert_eq!(
                s.get_range(&r, ID, first, count),
                Err(BlobError::BadChunk { index: first }),
                "{first} {count}"
            );
        }
    }

    #[test]
    fn an_old_layout_folder_is_removed_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let r = room("lobby");
        let fdir = file_dir(dir.path(), &r, ID);
        drop(open(dir.path()));
        fs::create_dir_all(&fdir).unwrap();
        let mut old = OLD_MANIFEST_MAGIC.to_vec();
        old.resize(76, 0);
        fs::write(fdir.join(MANIFEST_FILE), old).unwrap();
        fs::write(fdir.join("0"), b"x").unwrap();
        let s = open(dir.path());
        assert!(!fdir.exists());
        assert_eq!(s.status(&r, ID), Err(BlobError::Unknown));
    }

    #[test]
    fn names_parse_strictly() {
        assert_eq!(unhex16(&hex(&[0xab; 16])), Some([0xab; 16]));
        assert_eq!(unhex16(&"AB".repeat(16)), None);
        assert_eq!(unhex16(&"ab".repeat(15)), None);
        assert_eq!(unhex16("é"), None);
    }
}
