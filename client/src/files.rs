//! File transfers: `/send` seals a file and uploads its chunks, then
//! offers it to the room; `/save` fetches an offer's chunks, opens and
//! verifies them, and saves the file only once it is whole and its SHA-256
//! is the signed one.
//!
//! ```text
//!  /send PATH ─▶ hash the file ─▶ FileDeclare ─▶ FileStatus (what the relay holds)
//!             ─▶ FilePut × missing chunks (UPLOAD_WINDOW unacknowledged)
//!             ─▶ FileStored ... (the relay acknowledges synced groups)
//!             ─▶ all stored ─▶ Content::File offer, sealed and signed (room)
//!  /save ID   ─▶ FileGetRange × ranges (DOWNLOAD_WINDOW chunks asked)
//!             ─▶ FileChunk ─▶ open (STREAM)
//!             ─▶ unpad ─▶ hash, write to .NAME.ID.part (0600)
//!             ─▶ all in and the hash matches ─▶ link to NAME (never over a file)
//!             ─▶ any chunk that does not open, or another hash: delete, bad_file
//! ```
//!
//! Nothing here does network I/O: [`Transfers`] takes the relay's file
//! messages and the user's commands and says what to send, offer and show
//! ([`Step`]). A dropped link resumes: [`Transfers::on_connected`]
//! declares each unfinished upload again (the relay answers with the
//! chunks it holds) and asks again for each download's missing chunks.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use hush_crypto::Fingerprint;
use hush_crypto::file::{
    self, CHUNK_PLAIN, FileId, FileKey, chunk_count, chunk_range, open_chunk, padded_chunk,
    padded_len, seal_chunk, unpad_chunk,
};
use hush_proto::e2e::FileOffer;
use hush_proto::{ClientMsg, FileRefusal, RelayMsg, RoomName};
use hush_room::{BadFile, OfferedFile};
use sha2::{Digest, Sha256};

/// Most chunks of an upload sent and not yet acknowledged (8 MiB). The
/// relay acknowledges a chunk once it is durable, syncing every chunk
/// that arrived meanwhile together, so the window has to cover a sync of
/// the disk (tens of ms) at the link's rate; a window of 8 chunks held
/// uploads at 24–116 MiB/s. The window in use adapts ([`Window`]), so on a
/// slow link a chat line does not queue behind 8 MiB.
pub const UPLOAD_WINDOW: u32 = 256;

/// Most chunks of a download asked for and not yet received (4 MiB),
/// asked in ranges of up to [`DOWNLOAD_RANGE`]: the relay answers a range
/// from one read. Adapts like the upload's ([`Window`]).
pub const DOWNLOAD_WINDOW: u32 = 128;

/// Fewest chunks a transfer keeps in flight (256 KiB): the window of
/// earlier versions, and where a window starts.
pub const MIN_WINDOW: u32 = 8;

/// How often a window is fitted to the link's rate.
const WINDOW_INTERVAL: std::time::Duration = std::time::Duration::from_millis(250);

/// How many chunks a transfer keeps in flight: twice what completed in
/// the last [`WINDOW_INTERVAL`], between [`MIN_WINDOW`] and a maximum. On
/// a fast link it reaches the maximum within the first interval (it also
/// grows as soon as completions run ahead of it); on a slow one it stays
/// near half a second of the link's rate, so a chat line sent during a
/// transfer waits behind about that much file data, not a fixed 8 MiB.
#[derive(Debug)]
struct Window {
    max: u32,
    now: u32,
    since: std::time::Instant,
    done: u32,
}

impl Window {
    fn new(max: u32) -> Self {
        Self {
            max,
            now: MIN_WINDOW.min(max),
            since: std::time::Instant::now(),
            done: 0,
        }
    }

    /// How many chunks may be in flight now.
    fn size(&self) -> u32 {
        self.now
    }

    /// `n` chunks completed (stored, or arrived).
    fn completed(&mut self, n: u32) {
        self.done = self.done.saturating_add(n);
        let fitted = self.done.saturating_mul(2).clamp(MIN_WINDOW, self.max);
        if self.since.elapsed() >= WINDOW_INTERVAL {
            self.now = fitted;
            self.since = std::time::Instant::now();
            self.done = 0;
        } else {
            self.now = self.now.max(fitted);
        }
    }
}

/// Chunks asked for per `FileGetRange` (1 MiB; at most
/// [`hush_proto::msg::MAX_FILE_RANGE`]).
pub const DOWNLOAD_RANGE: u32 = 32;

/// What the app is to do for a transfer.
#[derive(Debug)]
pub enum Step {
    /// Send this to the relay.
    Send(ClientMsg),
    /// Every chunk is stored: offer the file to the room (sealed, signed).
    Offer(RoomName, FileOffer),
    /// Tell the user (a notice in the room).
    Notice(RoomName, String),
    /// The same for `--json` bots, as data: `file_progress`,
    /// `file_saved`, `file_failed` (CLIENT.md §5.1). Other front ends
    /// ignore it: its notice says it.
    Event(serde_json::Value),
    /// A transfer failed: tell the user why (an error).
    Failed(String),
    /// A file is not what its offer says: a `bad_file` warning naming its
    /// sender, and nothing saved.
    Bad {
        /// The room.
        room: RoomName,
        /// The sender.
        from: Fingerprint,
        /// Their nick.
        nick: String,
        /// What was wrong.
        what: BadFile,
    },
}

/// An upload in progress.
struct Upload {
    room: RoomName,
    id: FileId,
    key: FileKey,
    file: File,
    path: PathBuf,
    name: String,
    size: u64,
    total: u32,
    sha256: [u8; 32],
    /// Chunks the relay holds, and how many.
    stored: Vec<bool>,
    stored_count: u32,
    /// The next chunk to consider sending: chunks go out in order, so one
    /// pass over the file sends each missing chunk once.
    cursor: u32,
    /// Chunks sent and not yet stored.
    in_flight: u32,
    /// How many may be.
    window: Window,
    /// The relay answered the declaration (chunks may be sent).
    declared: bool,
    /// The last quarter announced.
    told: u64,
    /// When it started (for the rate).
    started: std::time::Instant,
}

impl Upload {
    /// A file to upload, nothing of it stored yet.
    fn new(
        room: RoomName,
        id: FileId,
        key: FileKey,
        (file, path, name): (File, PathBuf, String),
        size: u64,
        sha256: [u8; 32],
    ) -> Self {
        let total = chunk_count(padded_len(size));
        Self {
            room,
            id,
            key,
            file,
            path,
            name,
            size,
            total,
            sha256,
            stored: vec![false; total as usize],
            stored_count: 0,
            cursor: 0,
            in_flight: 0,
            window: Window::new(UPLOAD_WINDOW),
            declared: false,
            told: 0,
            started: std::time::Instant::now(),
        }
    }

    /// The declaration the relay answers with what it holds.
    fn declare(&self) -> ClientMsg {
        ClientMsg::FileDeclare {
            room: self.room.clone(),
            file: self.id.0,
            chunks: self.total,
            bytes: file::sealed_len(self.size),
        }
    }

    /// The relay holds chunk `index` (counted once; an index out of range
    /// is ignored).
    fn mark_stored(&mut self, index: u32) {
        if let Some(s) = self.stored.get_mut(index as usize)
            && !*s
        {
            *s = true;
            self.stored_count += 1;
        }
    }
}

/// A download in progress.
struct Download {
    room: RoomName,
    from: Fingerprint,
    nick: String,
    offer: FileOffer,
    id: FileId,
    key: FileKey,
    tmp: PathBuf,
    dest: PathBuf,
    out: File,
    /// The next chunk to ask for.
    next_ask: u32,
    /// The next chunk to hash and write (chunks are taken in order).
    next_take: u32,
    /// Chunks that arrived ahead of `next_take`, opened and unpadded.
    early: BTreeMap<u32, Vec<u8>>,
    hasher: Sha256,
    in_flight: u32,
    /// How many chunks may be asked for and not yet in.
    window: Window,
    told: u64,
    started: std::time::Instant,
}

/// Where unfinished transfers are kept between runs (sealed to our key:
/// they hold file keys), so a restarted client resumes them.
pub struct TransferStore {
    /// The client's data folder.
    pub dir: PathBuf,
    /// The relay.
    pub server: String,
    /// Our identity, which seals them.
    pub identity: std::sync::Arc<hush_crypto::Identity>,
}

impl TransferStore {
    fn store(&self, id: &FileId) -> crate::state::StateStore {
        crate::state::StateStore::for_transfer(
            &self.dir,
            &self.server,
            &id.to_hex(),
            self.identity.clone(),
        )
    }
}

/// What a transfer needs to go on after a restart.
#[derive(serde::Serialize, serde::Deserialize)]
enum Saved {
    Upload {
        room: RoomName,
        id: [u8; 16],
        key: [u8; 32],
        path: PathBuf,
        name: String,
        size: u64,
        sha256: [u8; 32],
    },
    Download {
        room: RoomName,
        offer: FileOffer,
        from: [u8; 32],
        nick: String,
        tmp: PathBuf,
        dest: PathBuf,
        /// Chunks already written to `tmp`, in order.
        taken: u32,
    },
}

/// Every transfer of this client.
pub struct Transfers {
    uploads: HashMap<[u8; 16], Upload>,
    downloads: HashMap<[u8; 16], Download>,
    /// Where `/save` puts files when not told.
    download_dir: PathBuf,
    /// Transfers that failed this run (the exit status says so).
    failed: usize,
    /// Where they are kept between runs (none: not kept).
    store: Option<TransferStore>,
    /// Each room's offers, from this run and earlier ones, and what
    /// became of them (kept beside the transfers).
    offers: crate::offers::OfferIndex,
    /// What went wrong keeping the offers, not yet said.
    offer_problems: Vec<String>,
}

impl Transfers {
    /// No transfers; saves go to `download_dir` unless a `/save` says
    /// otherwise.
    #[must_use]
    pub fn new(download_dir: PathBuf, store: Option<TransferStore>) -> Self {
        Self {
            uploads: HashMap::new(),
            downloads: HashMap::new(),
            download_dir,
            failed: 0,
            store,
            offers: crate::offers::OfferIndex::default(),
            offer_problems: Vec::new(),
        }
    }

    /// Remembers an offer the room verified and showed, for `/files` and
    /// `/save` in this run and later ones (written at the next
    /// [`Transfers::flush_offers`]).
    pub fn remember_offer(&mut self, room: &RoomName, offered: &OfferedFile) {
        self.offers.remember(self.store.as_ref(), room, offered);
    }

    /// The offers of `room` this client has seen, in this run or earlier
    /// ones, oldest first.
    pub fn offers_of(&mut self, room: &RoomName) -> Vec<crate::offers::KnownOffer> {
        self.offers.list(self.store.as_ref(), room).to_vec()
    }

    /// The offer of `room` whose hex id starts with `id`, if exactly one
    /// does (this run's or an earlier run's).
    pub fn find_offer(&mut self, room: &RoomName, id: &str) -> Option<OfferedFile> {
        self.offers.find(self.store.as_ref(), room, id)
    }

    /// Writes the offer lists that changed; what went wrong, for the user.
    pub fn flush_offers(&mut self) -> Vec<String> {
        let mut problems = std::mem::take(&mut self.offer_problems);
        problems.extend(self.offers.flush(self.store.as_ref()));
        problems
    }

    /// Records what became of a save, and writes it at once: before the
    /// user is told, so a client stopped right after still lists it.
    fn outcome(&mut self, room: &RoomName, id: &[u8; 16], outcome: crate::offers::Outcome) {
        self.offers
            .set_outcome(self.store.as_ref(), room, id, outcome);
        let problems = self.offers.flush(self.store.as_ref());
        self.offer_problems.extend(problems);
    }

    /// What `/files` says of a file: its transfer under way (`saving 45%`,
    /// `sending 45%`), or what became of it (`saved to PATH`, `failed:
    /// WHY`), or `offered`.
    pub fn state_of(&mut self, room: &RoomName, id: &[u8; 16]) -> String {
        if let Some(s) = self.transfer_state(id) {
            return s;
        }
        let known = self.offers.list(self.store.as_ref(), room);
        match known.iter().find(|k| k.offer.id == *id).map(|k| &k.outcome) {
            Some(crate::offers::Outcome::Saved(p)) => format!("saved to {}", p.display()),
            Some(crate::offers::Outcome::Failed(why)) => {
                format!("failed: {}", crate::display::sanitize(why))
            }
            _ => "offered".to_owned(),
        }
    }

    /// A transfer under way: `saving 45%`, `sending 45%`.
    fn transfer_state(&self, id: &[u8; 16]) -> Option<String> {
        if let Some(d) = self.downloads.get(id) {
            let pct = u64::from(d.next_take) * 100 / u64::from(d.offer.chunks.max(1));
            return Some(format!("saving {pct}%"));
        }
        self.uploads.get(id).map(|u| {
            let done = u64::from(u.stored_count);
            format!("sending {}%", done * 100 / u64::from(u.total.max(1)))
        })
    }

    /// Keeps a transfer's state for a restart (a failure to write it only
    /// loses the resume, and is said).
    fn keep(&self, id: &FileId, saved: &Saved) -> Option<Step> {
        let store = self.store.as_ref()?;
        store.store(id).save_as(saved).err().map(|e| {
            Step::Failed(format!(
                "cannot keep the transfer's state for a restart: {e}"
            ))
        })
    }

    /// Forgets a transfer's kept state (finished or failed).
    fn forget(&self, id: &FileId) {
        if let Some(store) = &self.store {
            store.store(id).remove();
        }
    }

    /// Ends an upload (done or failed): it is not resumed.
    fn take_upload(&mut self, id: &[u8; 16]) -> Option<Upload> {
        self.forget(&FileId(*id));
        self.uploads.remove(id)
    }

    /// Ends a download (saved or failed): it is not resumed.
    fn take_download(&mut self, id: &[u8; 16]) -> Option<Download> {
        self.forget(&FileId(*id));
        self.downloads.remove(id)
    }

    /// At start: the transfers an earlier run left unfinished with this
    /// relay, taken up again (they go on once connected). One whose file
    /// changed, or whose state cannot be read, is dropped, saying so.
    pub fn resume(&mut self) -> Vec<Step> {
        let Some(ids) = self
            .store
            .as_ref()
            .map(|s| crate::state::saved_transfers(&s.dir, &s.server))
        else {
            return Vec::new();
        };
        let mut steps = Vec::new();
        for hex in ids {
            let Some(id) = FileId::from_hex(&hex) else {
                continue;
            };
            let Some(kept) = self.store.as_ref().map(|s| s.store(&id)) else {
                continue;
            };
            match kept.load_as::<Saved>() {
                Ok(Some(saved)) => match self.take_up(saved) {
                    Ok(step) => steps.push(step),
                    Err(why) => {
                        kept.remove();
                        steps.push(Step::Failed(why));
                    }
                },
                Ok(None) => {}
                Err(e) => {
                    kept.remove();
                    steps.push(Step::Failed(format!(
                        "an unfinished transfer cannot be resumed ({e}); it was dropped"
                    )));
                }
            }
        }
        steps
    }

    /// One kept transfer, back in progress.
    fn take_up(&mut self, saved: Saved) -> Result<Step, String> {
        match saved {
            Saved::Upload {
                room,
                id,
                key,
                path,
                name,
                size,
                sha256,
            } => {
                let (file, now_size, now_hash) = hash_file(&path).map_err(|e| {
                    format!("the upload of {}: {e}; it was dropped", path.display())
                })?;
                if now_size != size || now_hash != sha256 {
                    return Err(format!(
                        "{} changed since its upload began; it was dropped (send it again)",
                        path.display()
                    ));
                }
                self.uploads.insert(
                    id,
                    Upload::new(
                        room.clone(),
                        FileId(id),
                        FileKey::from_bytes(key),
                        (file, path, name.clone()),
                        size,
                        sha256,
                    ),
                );
                Ok(Step::Notice(
                    room,
                    format!(
                        "resuming the upload of {} where the relay left it",
                        crate::display::sanitize(&name)
                    ),
                ))
            }
            Saved::Download {
                room,
                offer,
                from,
                nick,
                tmp,
                dest,
                taken,
            } => {
                // What is in the partial file already is hashed again.
                let mut out = std::fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open(&tmp)
                    .map_err(|e| {
                        format!(
                            "the partial file {}: {e}; the save was dropped",
                            tmp.display()
                        )
                    })?;
                let upto = if taken == 0 {
                    0
                } else {
                    chunk_range(offer.size, taken - 1).end
                };
                let mut hasher = Sha256::new();
                let mut left = upto;
                let mut buf = vec![0u8; 1 << 16];
                while left > 0 {
                    let want = usize::try_from(left.min(buf.len() as u64)).unwrap_or(buf.len());
                    let n = out
                        .read(&mut buf[..want])
                        .map_err(|e| format!("the partial file {}: {e}", tmp.display()))?;
                    if n == 0 {
                        return Err(format!(
                            "the partial file {} is shorter than it was; the save was dropped",
                            tmp.display()
                        ));
                    }
                    hasher.update(&buf[..n]);
                    left -= n as u64;
                }
                let name = offer.name.clone();
                let id = FileId(offer.id);
                self.downloads.insert(
                    offer.id,
                    Download {
                        room: room.clone(),
                        from: Fingerprint::from_bytes(from),
                        nick,
                        key: FileKey::from_bytes(offer.key),
                        id,
                        offer,
                        tmp,
                        dest,
                        out,
                        next_ask: taken,
                        next_take: taken,
                        early: BTreeMap::new(),
                        hasher,
                        in_flight: 0,
                        window: Window::new(DOWNLOAD_WINDOW),
                        told: 0,
                        started: std::time::Instant::now(),
                    },
                );
                Ok(Step::Notice(
                    room,
                    format!(
                        "resuming the save of {} from chunk {taken}",
                        crate::display::sanitize(&name)
                    ),
                ))
            }
        }
    }

    /// Transfers that failed or were left unfinished this run.
    #[must_use]
    pub fn failures(&self) -> usize {
        self.failed + self.uploads.len() + self.downloads.len()
    }

    /// Whether a transfer is under way.
    #[must_use]
    pub fn busy(&self) -> bool {
        !self.uploads.is_empty() || !self.downloads.is_empty()
    }

    /// One line on the transfers under way, for a progress bar or the
    /// status line: `sending movie.bin 45% [#########-----------]
    /// 12.3 MiB/s, 3 s left` (the first, and how many more).
    #[must_use]
    pub fn summary(&self) -> Option<String> {
        let mut all = self
            .uploads
            .values()
            .map(|u| {
                let done = u64::from(u.stored_count);
                (
                    "sending",
                    u.name.as_str(),
                    done,
                    u64::from(u.total),
                    u.size,
                    u.started,
                )
            })
            .chain(self.downloads.values().map(|d| {
                (
                    "saving",
                    d.offer.name.as_str(),
                    u64::from(d.next_take),
                    u64::from(d.offer.chunks),
                    d.offer.size,
                    d.started,
                )
            }));
        let (verb, name, done, total, size, started) = all.next()?;
        let more = all.count();
        let total = total.max(1);
        let percent = done * 100 / total;
        let filled = usize::try_from(done * 20 / total).unwrap_or(20).min(20);
        let bytes = size.saturating_mul(done) / total;
        let secs = started.elapsed().as_secs_f64();
        let mut line = format!(
            "{verb} {} {percent}% [{}{}]",
            crate::display::sanitize(name),
            "#".repeat(filled),
            "-".repeat(20 - filled)
        );
        if secs > 0.5 && bytes > 0 {
            let rate = bytes as f64 / secs;
            let left = size.saturating_sub(bytes) as f64 / rate;
            line.push_str(&format!(
                " {}/s, {:.0} s left",
                crate::display::human_size(rate as u64),
                left.ceil()
            ));
        }
        if more > 0 {
            line.push_str(&format!(" (+{more} more)"));
        }
        Some(line)
    }

    /// `/send PATH` in `room`: reads and hashes the file and declares it
    /// to the relay (which refuses it, before any upload, if it is too
    /// large or over quota).
    ///
    /// # Errors
    /// What is wrong with the file, worded for the user.
    pub fn send(&mut self, room: &RoomName, path: &Path) -> Result<Vec<Step>, String> {
        let shown = path.display();
        let (f, size, sha256) = hash_file(path).map_err(|e| format!("/send: {e}"))?;
        if size > file::MAX_FILE_BYTES {
            return Err(format!(
                "/send: {shown} is {}; hush sends files up to {}",
                crate::display::human_size(size),
                crate::display::human_size(file::MAX_FILE_BYTES)
            ));
        }
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| "file".to_owned());
        let id = FileId::random();
        let upload = Upload::new(
            room.clone(),
            id,
            FileKey::random(),
            (f, path.to_path_buf(), name.clone()),
            size,
            sha256,
        );
        let kept = self.keep(
            &id,
            &Saved::Upload {
                room: room.clone(),
                id: id.0,
                key: upload.key.to_bytes(),
                path: path.to_path_buf(),
                name: name.clone(),
                size,
                sha256,
            },
        );
        let declare = upload.declare();
        self.uploads.insert(id.0, upload);
        Ok(kept.into_iter().chain([
            Step::Notice(
                room.clone(),
                format!(
                    "sending {} ({}), sealed, to the relay; it is offered to #{room} once the relay holds all of it",
                    crate::display::sanitize(&name),
                    crate::display::human_size(size)
                ),
            ),
            Step::Send(declare),
        ]).collect())
    }

    /// `/save ID [DIR|PATH]`: fetches an offered file into a temporary
    /// file beside where it will be saved.
    ///
    /// # Errors
    /// What stops the save before it starts, worded for the user.
    pub fn save(
        &mut self,
        room: &RoomName,
        offered: &OfferedFile,
        to: Option<&Path>,
    ) -> Result<Vec<Step>, String> {
        let offer = offered.offer.clone();
        if self.downloads.contains_key(&offer.id) {
            return Err("/save: that file is being saved already".to_owned());
        }
        let (dir, name) = match to {
            Some(p) if p.is_dir() => (p.to_path_buf(), safe_name(&offer.name)),
            Some(p) => {
                let dir = p
                    .parent()
                    .filter(|d| !d.as_os_str().is_empty())
                    .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
                let name = p.file_name().map_or_else(
                    || safe_name(&offer.name),
                    |n| n.to_string_lossy().into_owned(),
                );
                (dir, name)
            }
            None => (self.download_dir.clone(), safe_name(&offer.name)),
        };
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("/save: cannot make the folder {}: {e}", dir.display()))?;
        let id = FileId(offer.id);
        let tmp = dir.join(format!(".{name}.{}.part", &id.to_hex()[..8]));
        // A partial file of ours left by a run that could not resume it
        // (its state was lost) is started over.
        let out = create_private(&tmp)
            .or_else(|e| {
                if e.kind() == std::io::ErrorKind::AlreadyExists {
                    std::fs::remove_file(&tmp)?;
                    create_private(&tmp)
                } else {
                    Err(e)
                }
            })
            .map_err(|e| format!("/save: cannot write in {}: {e}", dir.display()))?;
        let download = Download {
            room: room.clone(),
            from: offered.from,
            nick: offered.nick.clone(),
            key: FileKey::from_bytes(offer.key),
            id,
            offer,
            tmp,
            dest: dir.join(name),
            out,
            next_ask: 0,
            next_take: 0,
            early: BTreeMap::new(),
            hasher: Sha256::new(),
            in_flight: 0,
            window: Window::new(DOWNLOAD_WINDOW),
            told: 0,
            started: std::time::Instant::now(),
        };
        let mut steps = vec![Step::Notice(
            room.clone(),
            format!(
                "fetching {} ({}) from the relay",
                crate::display::sanitize(&download.offer.name),
                crate::display::human_size(download.offer.size)
            ),
        )];
        let mut d = download;
        steps.extend(self.keep(&d.id, &d.saved()));
        steps.extend(d.ask());
        self.downloads.insert(d.id.0, d);
        Ok(steps)
    }

    /// After a (re)connection: declare unfinished uploads again (the relay
    /// answers with what it holds) and ask again for missing chunks.
    pub fn on_connected(&mut self) -> Vec<Step> {
        let mut steps = Vec::new();
        for u in self.uploads.values_mut() {
            // What the relay holds comes back with its answer.
            u.declared = false;
            u.in_flight = 0;
            u.cursor = 0;
            steps.push(Step::Send(u.declare()));
        }
        for d in self.downloads.values_mut() {
            // Chunks that came early are asked for again with the rest.
            d.in_flight = 0;
            d.early.clear();
            d.next_ask = d.next_take;
            steps.extend(d.ask());
        }
        steps
    }

    /// A file message from the relay (`None` if it is no file message).
    pub fn on_relay(&mut self, msg: &RelayMsg) -> Option<Vec<Step>> {
        Some(match msg {
            RelayMsg::FileStatus { file, have, .. } => match self.uploads.get_mut(file) {
                Some(u) => {
                    for &i in have {
                        u.mark_stored(i);
                    }
                    u.declared = true;
                    self.upload_next(*file)
                }
                None => Vec::new(),
            },
            RelayMsg::FileStored { file, index, .. } => match self.uploads.get_mut(file) {
                Some(u) => {
                    u.mark_stored(*index);
                    u.in_flight = u.in_flight.saturating_sub(1);
                    u.window.completed(1);
                    self.upload_next(*file)
                }
                None => Vec::new(),
            },
            RelayMsg::FileChunk {
                file, index, data, ..
            } => self.on_chunk(*file, *index, data),
            RelayMsg::FileRefused { file, reason, .. } => self.on_refused(*file, *reason),
            _ => return None,
        })
    }

    /// Sends the next chunks of an upload, or offers it once all are stored.
    fn upload_next(&mut self, id: [u8; 16]) -> Vec<Step> {
        let Some(u) = self.uploads.get_mut(&id) else {
            return Vec::new();
        };
        let mut steps = Vec::new();
        if !u.declared {
            return steps;
        }
        if u.stored_count >= u.total {
            let offer = FileOffer {
                id,
                name: u.name.clone(),
                size: u.size,
                media_type: media_type(&u.name).to_owned(),
                chunks: u.total,
                sha256: u.sha256,
                key: u.key.to_bytes(),
            };
            steps.push(Step::Offer(u.room.clone(), offer));
            steps.push(progress(
                &u.room,
                &u.id,
                &u.name,
                "send",
                u64::from(u.total),
                u.total,
            ));
            if let Some(u) = self.take_upload(&id) {
                steps.push(Step::Notice(
                    u.room.clone(),
                    format!(
                        "{} is on the relay, sealed; offered to #{}",
                        crate::display::sanitize(&u.name),
                        u.room
                    ),
                ));
            }
            return steps;
        }
        let stored = u64::from(u.stored_count);
        let quarter = stored * 4 / u64::from(u.total.max(1));
        if quarter > u.told && quarter < 4 {
            u.told = quarter;
            steps.push(Step::Notice(
                u.room.clone(),
                format!(
                    "sending {}: {}%",
                    crate::display::sanitize(&u.name),
                    quarter * 25
                ),
            ));
            steps.push(progress(&u.room, &u.id, &u.name, "send", stored, u.total));
        }
        // One pass over the file: each chunk the relay lacks goes out once
        // (a reconnect starts the pass again, from what the relay holds).
        while u.in_flight < u.window.size() && u.cursor < u.total {
            let i = u.cursor;
            u.cursor += 1;
            if u.stored.get(i as usize).copied().unwrap_or(true) {
                continue;
            }
            match read_chunk(u, i) {
                Ok(data) => {
                    u.in_flight += 1;
                    steps.push(Step::Send(ClientMsg::FilePut {
                        room: u.room.clone(),
                        file: id,
                        index: i,
                        data,
                    }));
                }
                Err(e) => {
                    let why = format!(
                        "/send {}: cannot read it any more ({e}); nothing was offered",
                        u.path.display()
                    );
                    let fail = failed(&u.room, &u.id, &u.name, &why);
                    self.take_upload(&id);
                    self.failed += 1;
                    return vec![fail, Step::Failed(why)];
                }
            }
        }
        steps
    }

    /// A chunk of a download.
    fn on_chunk(&mut self, id: [u8; 16], index: u32, data: &[u8]) -> Vec<Step> {
        let Some(d) = self.downloads.get_mut(&id) else {
            return Vec::new();
        };
        // Only chunks asked for and not yet taken are held: a relay pushing
        // chunks unasked cannot make us buffer a whole file.
        if index >= d.next_ask || index < d.next_take || d.early.contains_key(&index) {
            return Vec::new();
        }
        d.in_flight = d.in_flight.saturating_sub(1);
        d.window.completed(1);
        let opened = open_chunk(&d.key, &d.id, index, d.offer.chunks, data)
            .ok()
            .and_then(|plain| {
                unpad_chunk(&plain, d.offer.size, index)
                    .ok()
                    .map(<[u8]>::to_vec)
            });
        let Some(real) = opened else {
            return self.bad(id, BadFile::Chunk { index });
        };
        d.early.insert(index, real);
        let before = d.next_take;
        while let Some(real) = d.early.remove(&d.next_take) {
            d.hasher.update(&real);
            let at = chunk_range(d.offer.size, d.next_take).start;
            if let Err(e) = d.out.write_all_at(&real, at) {
                let why = format!(
                    "/save: cannot write {}: {e}; nothing was saved",
                    d.tmp.display()
                );
                return self.fail(id, why);
            }
            d.next_take += 1;
        }
        if d.next_take >= d.offer.chunks {
            return self.finish(id);
        }
        let mut steps = Vec::new();
        if d.next_take / KEEP_EVERY != before / KEEP_EVERY {
            // Written before it is kept, so a restart never trusts bytes
            // that are not on disk.
            let synced = d.out.sync_data();
            let saved = d.saved();
            if synced.is_ok() {
                steps.extend(self.keep(&FileId(id), &saved));
            }
        }
        let Some(d) = self.downloads.get_mut(&id) else {
            return steps;
        };
        let quarter = u64::from(d.next_take) * 4 / u64::from(d.offer.chunks.max(1));
        if quarter > d.told && quarter < 4 {
            d.told = quarter;
            steps.push(Step::Notice(
                d.room.clone(),
                format!(
                    "fetching {}: {}%",
                    crate::display::sanitize(&d.offer.name),
                    quarter * 25
                ),
            ));
            steps.push(progress(
                &d.room,
                &d.id,
                &d.offer.name,
                "save",
                u64::from(d.next_take),
                d.offer.chunks,
            ));
        }
        steps.extend(d.ask());
        steps
    }

    /// Every chunk of a download is in: check the hash, then link the file
    /// into place (never over an existing one).
    fn finish(&mut self, id: [u8; 16]) -> Vec<Step> {
        let Some(d) = self.downloads.get_mut(&id) else {
            return Vec::new();
        };
        let digest: [u8; 32] = std::mem::take(&mut d.hasher).finalize().into();
        if digest != d.offer.sha256 {
            return self.bad(id, BadFile::Hash);
        }
        if let Err(e) = d.out.sync_all() {
            let why = format!("/save: cannot write {}: {e}", d.tmp.display());
            return self.fail(id, why);
        }
        let Some(d) = self.take_download(&id) else {
            return Vec::new();
        };
        match link_unique(&d.tmp, &d.dest) {
            Ok(saved) => {
                let _ = std::fs::remove_file(&d.tmp);
                self.outcome(&d.room, &id, crate::offers::Outcome::Saved(saved.clone()));
                vec![
                    Step::Event(serde_json::json!({
                        "type": "file_saved",
                        "room": d.room.as_str(),
                        "id": d.id.to_hex(),
                        "name": d.offer.name,
                        "size": d.offer.size,
                        "from": d.from.to_string(),
                        "path": saved.display().to_string(),
                    })),
                    Step::Notice(
                        d.room.clone(),
                        format!(
                            "saved {} ({}) from {} to {}: whole, and its SHA-256 is the one {} signed",
                            crate::display::sanitize(&d.offer.name),
                            crate::display::human_size(d.offer.size),
                            crate::display::sanitize(&d.nick),
                            saved.display(),
                            crate::display::sanitize(&d.nick),
                        ),
                    ),
                ]
            }
            Err(e) => {
                let _ = std::fs::remove_file(&d.tmp);
                self.failed += 1;
                let why = format!("/save: cannot save {}: {e}", d.dest.display());
                self.outcome(&d.room, &id, crate::offers::Outcome::Failed(why.clone()));
                vec![Step::Failed(why)]
            }
        }
    }

    /// A file that is not what its offer says: nothing is kept.
    fn bad(&mut self, id: [u8; 16], what: BadFile) -> Vec<Step> {
        let Some(d) = self.take_download(&id) else {
            return Vec::new();
        };
        self.failed += 1;
        let _ = std::fs::remove_file(&d.tmp);
        self.outcome(
            &d.room,
            &id,
            crate::offers::Outcome::Failed(format!("bad_file ({})", what_text(&what))),
        );
        vec![
            failed(&d.room, &d.id, &d.offer.name, "bad_file"),
            Step::Bad {
                room: d.room,
                from: d.from,
                nick: d.nick,
                what,
            },
        ]
    }

    /// A download that cannot go on: its partial file is deleted.
    fn fail(&mut self, id: [u8; 16], why: String) -> Vec<Step> {
        let mut steps = Vec::new();
        self.failed += 1;
        if let Some(d) = self.take_download(&id) {
            let _ = std::fs::remove_file(&d.tmp);
            self.outcome(&d.room, &id, crate::offers::Outcome::Failed(why.clone()));
            steps.push(failed(&d.room, &d.id, &d.offer.name, &why));
        }
        steps.push(Step::Failed(why));
        steps
    }

    /// The relay refused a file request.
    fn on_refused(&mut self, id: [u8; 16], reason: FileRefusal) -> Vec<Step> {
        let why = refusal_text(reason);
        if let Some(u) = self.take_upload(&id) {
            self.failed += 1;
            let text = format!(
                "/send {}: the relay refused it: {why}; nothing was offered",
                u.path.display()
            );
            return vec![failed(&u.room, &u.id, &u.name, &why), Step::Failed(text)];
        }
        if self.downloads.contains_key(&id) {
            return self.fail(id, format!("/save: the relay refused it: {why}"));
        }
        Vec::new()
    }
}

/// A download's state is kept again every this many chunks (2 MiB): a
/// restart fetches at most that much again.
const KEEP_EVERY: u32 = 64;

impl Download {
    /// What a restart needs.
    fn saved(&self) -> Saved {
        Saved::Download {
            room: self.room.clone(),
            offer: self.offer.clone(),
            from: *self.from.as_bytes(),
            nick: self.nick.clone(),
            tmp: self.tmp.clone(),
            dest: self.dest.clone(),
            taken: self.next_take,
        }
    }

    /// Asks for chunks up to the window, a range at a time: ranges of a
    /// quarter of the window (at most [`DOWNLOAD_RANGE`]), each asked once
    /// it fits whole (or the last, shorter one).
    fn ask(&mut self) -> Vec<Step> {
        let mut steps = Vec::new();
        let window = self.window.size();
        let range = (window / 4).clamp(1, DOWNLOAD_RANGE);
        loop {
            let left = self.offer.chunks.saturating_sub(self.next_ask);
            let count = left.min(range);
            if count == 0 || self.in_flight + count > window {
                return steps;
            }
            steps.push(Step::Send(ClientMsg::FileGetRange {
                room: self.room.clone(),
                file: self.id.0,
                first: self.next_ask,
                count,
            }));
            self.next_ask += count;
            self.in_flight += count;
        }
    }
}

/// A `file_progress` event: `done` of `total` chunks.
fn progress(
    room: &RoomName,
    id: &FileId,
    name: &str,
    direction: &str,
    done: u64,
    total: u32,
) -> Step {
    Step::Event(serde_json::json!({
        "type": "file_progress",
        "room": room.as_str(),
        "id": id.to_hex(),
        "name": name,
        "direction": direction,
        "done_chunks": done,
        "chunks": total,
    }))
}

/// A `file_failed` event.
fn failed(room: &RoomName, id: &FileId, name: &str, why: &str) -> Step {
    Step::Event(serde_json::json!({
        "type": "file_failed",
        "room": room.as_str(),
        "id": id.to_hex(),
        "name": name,
        "reason": why,
    }))
}

/// Opens a file to send and hashes it: the open file, its size and its
/// SHA-256 (read to the end; a file that changes meanwhile is refused).
fn hash_file(path: &Path) -> Result<(File, u64, [u8; 32]), String> {
    let shown = path.display();
    let mut f = File::open(path).map_err(|e| format!("cannot open {shown}: {e}"))?;
    let meta = f
        .metadata()
        .map_err(|e| format!("cannot read {shown}: {e}"))?;
    if !meta.is_file() {
        return Err(format!("{shown} is not a file"));
    }
    let size = meta.len();
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut read = 0u64;
    loop {
        let n = f
            .read(&mut buf)
            .map_err(|e| format!("cannot read {shown}: {e}"))?;
        if n == 0 {
            break;
        }
        read += n as u64;
        hasher.update(&buf[..n]);
    }
    if read != size {
        return Err(format!("{shown} changed while it was read; send it again"));
    }
    Ok((f, size, hasher.finalize().into()))
}

/// Reads and seals chunk `index` of an upload (its plaintext padded).
fn read_chunk(u: &Upload, index: u32) -> std::io::Result<Vec<u8>> {
    let range = chunk_range(u.size, index);
    let len = usize::try_from(range.end - range.start).unwrap_or(CHUNK_PLAIN);
    let mut data = vec![0u8; len];
    u.file.read_exact_at(&mut data, range.start)?;
    let plain = padded_chunk(&data, padded_len(u.size), index)
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    seal_chunk(&u.key, &u.id, index, u.total, &plain)
        .map_err(|e| std::io::Error::other(e.to_string()))
}

/// Creates a new file, 0600, failing if it exists.
fn create_private(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
}

/// Puts `tmp` in place at `dest`, or `dest (1)`, `dest (2)`, ... if that
/// exists: a hard link fails rather than replace a file, so nothing is
/// ever overwritten, even by a file that appears meanwhile.
fn link_unique(tmp: &Path, dest: &Path) -> std::io::Result<PathBuf> {
    let dir = dest.parent().unwrap_or_else(|| Path::new("."));
    let name = dest
        .file_name()
        .map_or_else(|| "file".to_owned(), |n| n.to_string_lossy().into_owned());
    let (stem, ext) = match name.rfind('.') {
        Some(i) if i > 0 => (&name[..i], &name[i..]),
        _ => (name.as_str(), ""),
    };
    for n in 0..1000 {
        let candidate = if n == 0 {
            dir.join(&name)
        } else {
            dir.join(format!("{stem} ({n}){ext}"))
        };
        match std::fs::hard_link(tmp, &candidate) {
            Ok(()) => return Ok(candidate),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
    }
    Err(std::io::Error::other(
        "a thousand files of that name exist already",
    ))
}

/// Longest name a saved file gets, in bytes.
const MAX_SAVED_NAME: usize = 200;

/// A name a sender chose, made safe to create in a folder: no path
/// separators or `..`, no control, bidi or invisible characters, no leading
/// dot (hidden files) or `-`, at most [`MAX_SAVED_NAME`] bytes.
#[must_use]
pub fn safe_name(offered: &str) -> String {
    let mut out = String::new();
    for c in offered.chars() {
        let bad = c.is_control()
            || matches!(c, '/' | '\\' | '\0')
            || matches!(
                c,
                '\u{202A}'..='\u{202E}'
                    | '\u{2066}'..='\u{2069}'
                    | '\u{200B}'..='\u{200F}'
                    | '\u{061C}'
                    | '\u{2028}'
                    | '\u{2029}'
                    | '\u{FEFF}'
            );
        out.push(if bad { '_' } else { c });
    }
    let trimmed = out.trim().trim_start_matches(['.', '-']).to_owned();
    let mut name = if trimmed.is_empty() || trimmed.chars().all(|c| c == '_') {
        "file".to_owned()
    } else {
        trimmed
    };
    if name.len() > MAX_SAVED_NAME {
        let mut cut = MAX_SAVED_NAME;
        while !name.is_char_boundary(cut) {
            cut -= 1;
        }
        name.truncate(cut);
    }
    name
}

/// A media type guessed from a name's extension (informative only).
fn media_type(name: &str) -> &'static str {
    let ext = name.rsplit('.').next().unwrap_or("").to_ascii_lowercase();
    match ext.as_str() {
        "txt" | "md" | "log" => "text/plain",
        "pdf" => "application/pdf",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "zip" => "application/zip",
        "gz" => "application/gzip",
        "json" => "application/json",
        _ => "application/octet-stream",
    }
}

/// What was wrong with a bad file, in a few words for `/files`.
fn what_text(what: &BadFile) -> String {
    match what {
        BadFile::Offer => "its offer does not hold together".to_owned(),
        BadFile::Chunk { index } => format!("chunk {index} did not open"),
        BadFile::Hash => "its SHA-256 is not the signed one".to_owned(),
    }
}

/// Why the relay refused, for the user.
fn refusal_text(reason: FileRefusal) -> String {
    match reason {
        FileRefusal::NotJoined => "this client is not in that room at the relay".to_owned(),
        FileRefusal::TooLarge { max } => format!(
            "it takes files of at most {} sealed",
            crate::display::human_size(max)
        ),
        FileRefusal::OverQuota { quota: 0, .. } => {
            "you have as many files stored there as it allows; wait until some expire".to_owned()
        }
        FileRefusal::OverQuota { quota, used } => format!(
            "your files there would pass your quota ({} stored of {}); wait until some expire",
            crate::display::human_size(used),
            crate::display::human_size(quota)
        ),
        FileRefusal::Unknown => "it does not hold that file (it may have expired)".to_owned(),
        FileRefusal::NotOwner => "another identity uses that file id".to_owned(),
        FileRefusal::Mismatch => "the file's size does not match what was declared".to_owned(),
        FileRefusal::BadChunk { index } => format!("chunk {index} is not one it accepts"),
        FileRefusal::Missing { index } => {
            format!("it does not hold chunk {index} (the upload did not finish)")
        }
        FileRefusal::StorageFailed => "its storage failed; try again later".to_owned(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn hostile_names_are_saved_safely() {
        assert_eq!(safe_name("../../etc/passwd"), "_.._etc_passwd");
        assert_eq!(safe_name("report.pdf"), "report.pdf");
        assert_eq!(safe_name(".bashrc"), "bashrc");
        assert_eq!(safe_name("-rf"), "rf");
        assert_eq!(safe_name(".."), "file");
        assert_eq!(safe_name(""), "file");
        assert_eq!(safe_name("a\x1b[2Jb\u{202e}txt.exe"), "a_[2Jb_txt.exe");
        assert_eq!(safe_name("C:\\windows\\x"), "C:_windows_x");
        let long = "é".repeat(300);
        let n = safe_name(&long);
        assert!(n.len() <= MAX_SAVED_NAME && n.chars().all(|c| c == 'é'));
    }

    /// A file of `chunks` chunks offered in #r, and its sealed chunks.
    fn offered(size: u64) -> (OfferedFile, Vec<Vec<u8>>) {
        let (key, id) = (FileKey::random(), FileId::random());
        let data = vec![7u8; usize::try_from(size).unwrap()];
        let padded = padded_len(size);
        let total = chunk_count(padded);
        let sealed = (0..total)
            .map(|i| {
                let r = chunk_range(size, i);
                let plain =
                    padded_chunk(&data[r.start as usize..r.end as usize], padded, i).unwrap();
                seal_chunk(&key, &id, i, total, &plain).unwrap()
            })
            .collect();
        let offer = FileOffer {
            id: id.0,
            name: "f.bin".into(),
            size,
            media_type: "application/octet-stream".into(),
            chunks: total,
            sha256: Sha256::digest(&data).into(),
            key: key.to_bytes(),
        };
        let of = OfferedFile {
            seq: 1,
            from: Fingerprint::from_bytes([1; 32]),
            nick: "alice".into(),
            offer,
            received_at_ms: 0,
        };
        (of, sealed)
    }

    #[test]
    fn chunks_a_relay_pushes_unasked_are_not_held() {
        let dir = tempfile::tempdir().unwrap();
        let mut t = Transfers::new(dir.path().to_path_buf(), None);
        let room = RoomName::new("r").unwrap();
        let (of, sealed) = offered(300 * CHUNK_PLAIN as u64);
        t.save(&room, &of, Some(dir.path())).unwrap();
        let chunk = |index: u32| RelayMsg::FileChunk {
            room: room.clone(),
            file: of.offer.id,
            index,
            data: sealed[index as usize].clone(),
        };
        let total = u32::try_from(sealed.len()).unwrap();
        assert!(total > DOWNLOAD_WINDOW * 2);
        // Chunks past the window, pushed unasked, are dropped.
        for i in DOWNLOAD_WINDOW..total {
            t.on_relay(&chunk(i));
        }
        assert!(t.downloads[&of.offer.id].early.is_empty());
        // Asked ones, out of order and repeated, are taken once.
        t.on_relay(&chunk(1));
        t.on_relay(&chunk(1));
        assert_eq!(t.downloads[&of.offer.id].early.len(), 1);
        t.on_relay(&chunk(0));
        assert_eq!(t.downloads[&of.offer.id].next_take, 2);
        // Then the rest, as asked, makes the whole file.
        for i in 2..total {
            t.on_relay(&chunk(i));
        }
        assert!(t.downloads.is_empty());
        assert_eq!(
            std::fs::read(dir.path().join("f.bin")).unwrap(),
            vec![7u8; 300 * CHUNK_PLAIN]
        );
    }

    #[test]
    fn a_window_starts_small_grows_with_the_link_and_shrinks_when_it_slows() {
        let mut w = Window::new(UPLOAD_WINDOW);
        assert_eq!(
            w.size(),
            MIN_WINDOW,
            "a transfer starts at 256 KiB in flight"
        );
        // Completions coming fast: it doubles with them, up to its maximum.
        w.completed(8);
        assert_eq!(w.size(), 16);
        w.completed(8);
        assert_eq!(w.size(), 32);
        w.completed(1000);
        assert_eq!(w.size(), UPLOAD_WINDOW);
        // The interval ends (made to, rather than slept through): fitted
        // to it, still the maximum; then a slow one brings it down to
        // twice what completed then, and never below the minimum.
        w.since -= WINDOW_INTERVAL;
        w.completed(1);
        assert_eq!(w.size(), UPLOAD_WINDOW);
        w.since -= WINDOW_INTERVAL;
        w.completed(5);
        assert_eq!(w.size(), 10);
        w.since -= WINDOW_INTERVAL;
        w.completed(1);
        assert_eq!(w.size(), MIN_WINDOW);
        assert_eq!(Window::new(4).size(), 4, "nor above a smaller maximum");
    }

    #[test]
    fn a_save_asks_small_ranges_first_and_larger_ones_as_chunks_come() {
        let dir = tempfile::tempdir().unwrap();
        let mut t = Transfers::new(dir.path().to_path_buf(), None);
        let room = RoomName::new("r").unwrap();
        let (of, sealed) = offered(300 * CHUNK_PLAIN as u64);
        let asks = |steps: &[Step]| -> Vec<(u32, u32)> {
            steps
                .iter()
                .filter_map(|s| match s {
                    Step::Send(ClientMsg::FileGetRange { first, count, .. }) => {
                        Some((*first, *count))
                    }
                    _ => None,
                })
                .collect()
        };
        let first = t.save(&room, &of, Some(dir.path())).unwrap();
        assert_eq!(asks(&first), [(0, 2), (2, 2), (4, 2), (6, 2)]);
        let mut asked = 8;
        let mut largest = 0;
        for i in 0..u32::try_from(sealed.len()).unwrap() {
            let steps = t
                .on_relay(&RelayMsg::FileChunk {
                    room: room.clone(),
                    file: of.offer.id,
                    index: i,
                    data: sealed[i as usize].clone(),
                })
                .unwrap();
            for (first, count) in asks(&steps) {
                assert_eq!(first, asked, "ranges follow one another");
                asked += count;
                largest = largest.max(count);
            }
            assert!(
                asked - i - 1 <= DOWNLOAD_WINDOW,
                "never more than the window asked"
            );
        }
        assert_eq!(largest, DOWNLOAD_RANGE, "ranges grew to the largest");
        assert!(t.downloads.is_empty(), "saved");
    }

    #[test]
    fn a_save_never_replaces_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let tmp = dir.path().join(".x.part");
        std::fs::write(&tmp, b"new").unwrap();
        let dest = dir.path().join("notes.txt");
        std::fs::write(&dest, b"old").unwrap();
        std::fs::write(dir.path().join("notes (1).txt"), b"older").unwrap();
        let saved = link_unique(&tmp, &dest).unwrap();
        assert_eq!(saved, dir.path().join("notes (2).txt"));
        assert_eq!(std::fs::read(&dest).unwrap(), b"old");
        assert_eq!(std::fs::read(&saved).unwrap(), b"new");
    }
}
