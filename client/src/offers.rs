//! The file offers of each room, kept across runs, so `/files` lists
//! offers an earlier run saw and `/save` fetches them.
//!
//! ```text
//!   room shows FileOffered ─▶ remember (room, offer)  ─┐
//!   a save ends            ─▶ outcome saved / failed ──┼─▶ dirty ─▶ flush (once per batch)
//!                                                      └─▶ offers/<relay>-<room>.state,
//!                                                          sealed to our key like a room's state
//!   /files, /save ID       ─▶ the room's list (loaded on first use)
//! ```
//!
//! An offer carries its file's key, so the list is sealed to our identity
//! exactly as a room's state is ([`crate::state::StateStore`]). A room's
//! saved state resumes after the last event it processed, so an offer is
//! seen once; this list is what remembers it. It keeps the newest
//! [`MAX_KNOWN_OFFERS`] of each room. It must never hold an offer the room
//! did not verify (only `FileOffered`, which the room shows after checking
//! the signature and the offer, is remembered).

use std::collections::HashMap;
use std::path::PathBuf;

use hush_crypto::Fingerprint;
use hush_proto::RoomName;
use hush_proto::e2e::FileOffer;
use hush_room::OfferedFile;
use serde::{Deserialize, Serialize};

use crate::files::TransferStore;

/// Offers kept per room (the oldest give way), as many as the room keeps
/// in memory (`hush_room`'s `MAX_OFFERED_FILES`).
pub const MAX_KNOWN_OFFERS: usize = 256;

/// The format of a kept list.
const VERSION: u16 = 1;

/// What became of an offer on this client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// Nothing asked yet (or a save under way: the transfer says how far).
    Offered,
    /// Saved, verified, to this path.
    Saved(PathBuf),
    /// A save failed, and why (a `bad_file` or what stopped it).
    Failed(String),
}

/// One offer as kept.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KnownOffer {
    /// The offer's sequence number in the room.
    pub seq: u64,
    /// Who offered it (verified signature).
    pub from: [u8; 32],
    /// Their nickname then (unsanitized).
    pub nick: String,
    /// The offer, key included.
    pub offer: FileOffer,
    /// When the relay received it.
    pub received_at_ms: u64,
    /// What became of it here.
    pub outcome: Outcome,
}

impl KnownOffer {
    /// The offer as `/save` takes it.
    #[must_use]
    pub fn offered(&self) -> OfferedFile {
        OfferedFile {
            seq: self.seq,
            from: Fingerprint::from_bytes(self.from),
            nick: self.nick.clone(),
            offer: self.offer.clone(),
            received_at_ms: self.received_at_ms,
        }
    }
}

/// The list as written (versioned, so a later format can read it).
#[derive(Serialize, Deserialize)]
struct SavedOffers {
    version: u16,
    offers: Vec<KnownOffer>,
}

#[derive(Default)]
struct RoomOffers {
    /// Oldest first.
    list: Vec<KnownOffer>,
    /// Changed since it was last written.
    dirty: bool,
}

/// Every room's offers, loaded on first use.
#[derive(Default)]
pub struct OfferIndex {
    rooms: HashMap<RoomName, RoomOffers>,
    /// What went wrong reading or writing a list, for the user (once).
    problems: Vec<String>,
}

fn store_of(store: &TransferStore, room: &RoomName) -> crate::state::StateStore {
    crate::state::StateStore::for_offers(
        &store.dir,
        &store.server,
        room.as_str(),
        store.identity.clone(),
    )
}

impl OfferIndex {
    fn room(&mut self, store: Option<&TransferStore>, room: &RoomName) -> &mut RoomOffers {
        if !self.rooms.contains_key(room) {
            let mut loaded = RoomOffers::default();
            if let Some(store) = store {
                let kept = store_of(store, room);
                match kept.load_as::<SavedOffers>() {
                    Ok(Some(saved)) if saved.version == VERSION => loaded.list = saved.offers,
                    Ok(Some(saved)) => self.problems.push(format!(
                        "the file offers kept for #{room} are of another format ({}); /files starts afresh",
                        saved.version
                    )),
                    Ok(None) => {}
                    Err(e) => self.problems.push(format!(
                        "the file offers kept for #{room} cannot be read ({e}); /files starts afresh"
                    )),
                }
            }
            self.rooms.insert(room.clone(), loaded);
        }
        // Inserted just above if it was missing.
        self.rooms.entry(room.clone()).or_default()
    }

    /// Remembers a verified offer (once per file id).
    pub fn remember(&mut self, store: Option<&TransferStore>, room: &RoomName, of: &OfferedFile) {
        let r = self.room(store, room);
        if r.list.iter().any(|k| k.offer.id == of.offer.id) {
            return;
        }
        if r.list.len() >= MAX_KNOWN_OFFERS {
            r.list.remove(0);
        }
        r.list.push(KnownOffer {
            seq: of.seq,
            from: *of.from.as_bytes(),
            nick: of.nick.clone(),
            offer: of.offer.clone(),
            received_at_ms: of.received_at_ms,
            outcome: Outcome::Offered,
        });
        r.dirty = true;
    }

    /// Records what became of a file's save.
    pub fn set_outcome(
        &mut self,
        store: Option<&TransferStore>,
        room: &RoomName,
        id: &[u8; 16],
        outcome: Outcome,
    ) {
        let r = self.room(store, room);
        if let Some(k) = r.list.iter_mut().find(|k| k.offer.id == *id)
            && k.outcome != outcome
        {
            k.outcome = outcome;
            r.dirty = true;
        }
    }

    /// The room's offers, oldest first.
    pub fn list(&mut self, store: Option<&TransferStore>, room: &RoomName) -> &[KnownOffer] {
        &self.room(store, room).list
    }

    /// The offer whose id, in hex, starts with `id` (the short id `/files`
    /// shows, or more), if exactly one does.
    pub fn find(
        &mut self,
        store: Option<&TransferStore>,
        room: &RoomName,
        id: &str,
    ) -> Option<OfferedFile> {
        let id = id.trim().to_ascii_lowercase();
        if id.is_empty() {
            return None;
        }
        let mut found = self.room(store, room).list.iter().filter(|k| {
            let hex: String = k.offer.id.iter().map(|b| format!("{b:02x}")).collect();
            hex.starts_with(&id)
        });
        match (found.next(), found.next()) {
            (Some(one), None) => Some(one.offered()),
            _ => None,
        }
    }

    /// Writes the lists that changed; returns what went wrong, worded for
    /// the user (a failure only loses `/files` history, never a file).
    pub fn flush(&mut self, store: Option<&TransferStore>) -> Vec<String> {
        let mut problems = std::mem::take(&mut self.problems);
        let Some(store) = store else {
            return problems;
        };
        for (room, r) in &mut self.rooms {
            if !r.dirty {
                continue;
            }
            r.dirty = false;
            let saved = SavedOffers {
                version: VERSION,
                offers: r.list.clone(),
            };
            if let Err(e) = store_of(store, room).save_as(&saved) {
                problems.push(format!(
                    "cannot keep #{room}'s file offers for /files in a later run: {e}"
                ));
            }
        }
        problems
    }
}

/// How long ago `then_ms` was, for `/files`: `just now`, `12 min ago`,
/// `5 h ago`, `3 d ago`.
#[must_use]
pub fn age(now_ms: u64, then_ms: u64) -> String {
    let secs = now_ms.saturating_sub(then_ms) / 1000;
    match secs {
        0..60 => "just now".to_owned(),
        60..3600 => format!("{} min ago", secs / 60),
        3600..86_400 => format!("{} h ago", secs / 3600),
        _ => format!("{} d ago", secs / 86_400),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn offer(id: u8, seq: u64) -> OfferedFile {
        OfferedFile {
            seq,
            from: Fingerprint::from_bytes([9; 32]),
            nick: "alice".into(),
            offer: FileOffer {
                id: [id; 16],
                name: format!("f{id}.bin"),
                size: 1000,
                media_type: "application/octet-stream".into(),
                chunks: 1,
                sha256: [1; 32],
                key: [2; 32],
            },
            received_at_ms: 5,
        }
    }

    #[test]
    fn offers_and_their_outcomes_survive_a_restart_sealed() {
        let dir = tempfile::tempdir().unwrap();
        let store = TransferStore {
            dir: dir.path().to_path_buf(),
            server: "127.0.0.1:1".into(),
            identity: hush_testkit::keys::alice(),
        };
        let room = RoomName::new("r").unwrap();
        let mut idx = OfferIndex::default();
        idx.remember(Some(&store), &room, &offer(1, 3));
        idx.remember(Some(&store), &room, &offer(2, 4));
        idx.remember(Some(&store), &room, &offer(1, 3));
        idx.set_outcome(
            Some(&store),
            &room,
            &[1; 16],
            Outcome::Saved("/x/f1.bin".into()),
        );
        assert!(idx.flush(Some(&store)).is_empty());
        // The key never reaches the disk in the clear.
        let kept = store_of(&store, &room);
        let raw = std::fs::read(kept.path()).unwrap();
        assert!(!raw.windows(32).any(|w| w == [2; 32]));

        let mut again = OfferIndex::default();
        let list = again.list(Some(&store), &room);
        assert_eq!(list.len(), 2, "each offer once");
        assert_eq!(list[0].outcome, Outcome::Saved("/x/f1.bin".into()));
        assert_eq!(list[1].outcome, Outcome::Offered);
        let found = again.find(Some(&store), &room, "0202").unwrap();
        assert_eq!(found, offer(2, 4));
        assert!(again.find(Some(&store), &room, "").is_none());
        assert!(again.find(Some(&store), &room, "03").is_none());
        // Another room has its own list.
        let other = RoomName::new("other").unwrap();
        assert!(again.list(Some(&store), &other).is_empty());
    }

    #[test]
    fn a_room_keeps_its_newest_offers_and_an_unreadable_list_is_said() {
        let dir = tempfile::tempdir().unwrap();
        let store = TransferStore {
            dir: dir.path().to_path_buf(),
            server: "s".into(),
            identity: hush_testkit::keys::alice(),
        };
        let room = RoomName::new("r").unwrap();
        let mut idx = OfferIndex::default();
        for i in 0..=MAX_KNOWN_OFFERS {
            let mut of = offer(0, i as u64);
            of.offer.id[..8].copy_from_slice(&(i as u64).to_be_bytes());
            idx.remember(Some(&store), &room, &of);
        }
        let list = idx.list(Some(&store), &room);
        assert_eq!(list.len(), MAX_KNOWN_OFFERS);
        assert_eq!(list[0].seq, 1, "the oldest gave way");
        assert!(idx.flush(Some(&store)).is_empty());
        // Another identity's key cannot open it: said, and /files starts afresh.
        let stranger = TransferStore {
            identity: hush_testkit::keys::mallory(),
            ..store
        };
        let mut idx = OfferIndex::default();
        assert!(idx.list(Some(&stranger), &room).is_empty());
        let problems = idx.flush(Some(&stranger));
        assert_eq!(problems.len(), 1);
        assert!(problems[0].contains("cannot be read"), "{}", problems[0]);
    }

    #[test]
    fn ages_read_as_people_say_them() {
        assert_eq!(age(10_000, 5_000), "just now");
        assert_eq!(age(5_000, 10_000), "just now");
        assert_eq!(age(125_000, 0), "2 min ago");
        assert_eq!(age(3 * 3_600_000 + 1, 0), "3 h ago");
        assert_eq!(age(50 * 3_600_000, 0), "2 d ago");
    }
}
