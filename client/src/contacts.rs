//! Verified contacts: the keys this identity has checked belong to the
//! people who use them, kept across runs and across relays (a person's
//! key is the same on every relay).
//!
//! ```text
//!   /verify NICK --mark ──┐
//!   code exchange ────────┴─▶ Contacts::mark ─▶ StateStore (sealed, DATA/contacts/ID.state)
//!   StateStore ─load at start─▶ Contacts ─▶ is_verified: the mark beside a name (screen, --json)
//!                                        └─▶ impostor: a verified person's name on another key
//! ```
//!
//! A mark says "this key is this person": either the user compared the
//! safety number of `/verify NICK` with them out of band and confirmed it
//! ([`VerifiedBy::Manual`]), or a one-time code exchange proved it
//! ([`VerifiedBy::Code`]). A person may have several verified keys (a new
//! device is verified again, and the old key stays until unmarked).
//!
//! The file is sealed to our own key exactly as the room state is
//! ([`StateStore::save_as`]): one file per identity, so two keys sharing
//! a data folder never see each other's contacts. Each change re-reads
//! the file first, so two runs of one identity (on two relays) keep each
//! other's marks. Without a data folder the contacts live in memory for
//! the run.
//!
//! Names compare by [`hush_room::skeleton`], the folding the client
//! already uses to tell members with the same-looking name apart (case,
//! and digits, Cyrillic or Greek look-alikes): `BOB` and `b0b` are the
//! name of a verified `bob`.
//!
//! It must never mark a key the user did not confirm, nor treat a name
//! alone as proof of anything: every decision is taken on fingerprints.

use std::path::Path;
use std::sync::Arc;

use hush_crypto::{Fingerprint, Identity};
use hush_room::skeleton;
use serde::{Deserialize, Serialize};

use crate::state::{StateError, StateStore};

/// The contacts file's own format (inside the sealed state file).
const CONTACTS_VERSION: u16 = 1;

/// How we came to trust a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum VerifiedBy {
    /// A one-time code exchange (PAKE) proved the key.
    Code,
    /// The user compared the safety number and marked it (`/verify NICK --mark`).
    Manual,
}

impl VerifiedBy {
    /// How the mark was made, in words (`by a code`, `by comparing the
    /// safety number`).
    #[must_use]
    pub fn words(self) -> &'static str {
        match self {
            Self::Code => "by a one-time code",
            Self::Manual => "by comparing the safety number",
        }
    }

    /// The stable tag `--json` shows (`code`, `manual`).
    #[must_use]
    pub fn tag(self) -> &'static str {
        match self {
            Self::Code => "code",
            Self::Manual => "manual",
        }
    }
}

/// One verified key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The key.
    pub fingerprint: Fingerprint,
    /// The name it used when it was verified: the name an impostor would
    /// borrow.
    pub nick: String,
    /// How it was verified.
    pub by: VerifiedBy,
    /// When (ms since the Unix epoch, this machine's clock).
    pub at_ms: u64,
}

/// The pickle of one [`Verified`].
#[derive(Serialize, Deserialize)]
struct VerifiedPickle {
    fingerprint: [u8; 32],
    nick: String,
    by: VerifiedBy,
    at_ms: u64,
}

/// The pickle of [`Contacts`], versioned on its own.
#[derive(Serialize, Deserialize)]
struct ContactsPickle {
    version: u16,
    people: Vec<VerifiedPickle>,
}

/// The verified people of one identity.
pub struct Contacts {
    /// Oldest mark first.
    people: Vec<Verified>,
    /// Where they are saved; `None`: in memory only.
    store: Option<StateStore>,
}

impl Contacts {
    /// The contacts of `identity` saved under `state_dir`, or none yet
    /// (with no `state_dir`: an empty list kept in memory).
    ///
    /// # Errors
    /// [`StateError`] if the file exists but cannot be read or opened
    /// with this identity, or is of another format.
    pub fn load(state_dir: Option<&Path>, identity: Arc<Identity>) -> Result<Self, StateError> {
        let Some(dir) = state_dir else {
            return Ok(Self::in_memory());
        };
        let store = StateStore::for_contacts(dir, identity);
        let people = read(&store)?;
        Ok(Self {
            people,
            store: Some(store),
        })
    }

    /// An empty list that is never saved.
    #[must_use]
    pub fn in_memory() -> Self {
        Self {
            people: Vec::new(),
            store: None,
        }
    }

    /// The file they are saved in, if any.
    #[must_use]
    pub fn path(&self) -> Option<&Path> {
        self.store.as_ref().map(StateStore::path)
    }

    /// Marks `fingerprint` verified as `nick`, and saves at once. Marking
    /// a key again updates its name, how and when.
    ///
    /// # Errors
    /// [`StateError::Io`] if the file cannot be written; the mark still
    /// holds for this run.
    pub fn mark(
        &mut self,
        fingerprint: Fingerprint,
        nick: &str,
        by: VerifiedBy,
        now_ms: u64,
    ) -> Result<(), StateError> {
        self.refresh();
        let entry = Verified {
            fingerprint,
            nick: nick.to_owned(),
            by,
            at_ms: now_ms,
        };
        match self
            .people
            .iter_mut()
            .find(|v| v.fingerprint == fingerprint)
        {
            Some(old) => *old = entry,
            None => self.people.push(entry),
        }
        self.save()
    }

    /// Removes the mark of `fingerprint`, and saves at once. Returns what
    /// was removed (`None`: it was not marked, and nothing is written).
    ///
    /// # Errors
    /// [`StateError::Io`] if the file cannot be written; the mark is
    /// still gone for this run.
    pub fn unmark(&mut self, fingerprint: &Fingerprint) -> Result<Option<Verified>, StateError> {
        self.refresh();
        let Some(i) = self
            .people
            .iter()
            .position(|v| v.fingerprint == *fingerprint)
        else {
            return Ok(None);
        };
        let gone = self.people.remove(i);
        self.save().map(|()| Some(gone))
    }

    /// Whether `fp` is a verified key.
    #[must_use]
    pub fn is_verified(&self, fp: &Fingerprint) -> bool {
        self.get(fp).is_some()
    }

    /// The mark of `fp`, if it is verified.
    #[must_use]
    pub fn get(&self, fp: &Fingerprint) -> Option<&Verified> {
        self.people.iter().find(|v| v.fingerprint == *fp)
    }

    /// A verified person whose name `nick` is, but whose key `fp` is not.
    ///
    /// Names compare by [`skeleton`] (case and look-alike letters
    /// folded). `None` when `fp` is itself verified under that name (a
    /// person's second verified key), or when no verified name matches.
    /// A key verified under *another* name that now borrows a verified
    /// person's name is an impostor too.
    #[must_use]
    pub fn impostor(&self, nick: &str, fp: &Fingerprint) -> Option<&Verified> {
        let name = skeleton(nick);
        let same = |v: &&Verified| skeleton(&v.nick) == name;
        if self
            .people
            .iter()
            .filter(same)
            .any(|v| v.fingerprint == *fp)
        {
            return None;
        }
        self.people.iter().find(same)
    }

    /// The marks a query names: a full fingerprint, a short id, or a
    /// name (by [`skeleton`]), oldest first.
    #[must_use]
    pub fn find(&self, query: &str) -> Vec<&Verified> {
        let q = query.trim();
        let name = skeleton(q);
        self.people
            .iter()
            .filter(|v| {
                v.fingerprint.to_string() == q
                    || v.fingerprint.short_id() == q
                    || skeleton(&v.nick) == name
            })
            .collect()
    }

    /// Every mark, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = &Verified> {
        self.people.iter()
    }

    /// How many keys are marked.
    #[must_use]
    pub fn len(&self) -> usize {
        self.people.len()
    }

    /// No key is marked.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.people.is_empty()
    }

    /// Takes up what another run of the same identity saved meanwhile
    /// (two clients on two relays share the data folder), so a change is
    /// made to the newest list and neither run's marks are lost. A file
    /// that no longer opens leaves the list as it is.
    fn refresh(&mut self) {
        if let Some(people) = self.store.as_ref().and_then(|s| read(s).ok()) {
            self.people = people;
        }
    }

    fn save(&self) -> Result<(), StateError> {
        let Some(store) = &self.store else {
            return Ok(());
        };
        store.save_as(&ContactsPickle {
            version: CONTACTS_VERSION,
            people: self
                .people
                .iter()
                .map(|v| VerifiedPickle {
                    fingerprint: *v.fingerprint.as_bytes(),
                    nick: v.nick.clone(),
                    by: v.by,
                    at_ms: v.at_ms,
                })
                .collect(),
        })
    }
}

/// The marks saved in `store` (none if there is no file).
fn read(store: &StateStore) -> Result<Vec<Verified>, StateError> {
    match store.load_as::<ContactsPickle>()? {
        None => Ok(Vec::new()),
        Some(p) if p.version == CONTACTS_VERSION => Ok(p
            .people
            .into_iter()
            .map(|v| Verified {
                fingerprint: Fingerprint::from_bytes(v.fingerprint),
                nick: v.nick,
                by: v.by,
                at_ms: v.at_ms,
            })
            .collect()),
        Some(p) => Err(StateError::OtherVersion {
            path: store.path().display().to_string(),
            found: p.version,
        }),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn fp(b: u8) -> Fingerprint {
        Fingerprint::from_bytes([b; 32])
    }

    fn alice() -> Arc<Identity> {
        hush_testkit::keys::by_name("alice")
    }

    #[test]
    fn a_mark_is_kept_sealed_and_read_back_by_the_next_run() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Contacts::load(Some(dir.path()), alice()).unwrap();
        assert!(c.is_empty() && !c.is_verified(&fp(1)));
        c.mark(fp(1), "bob", VerifiedBy::Manual, 1_000).unwrap();
        c.mark(fp(2), "carol", VerifiedBy::Code, 2_000).unwrap();
        assert!(c.is_verified(&fp(1)) && c.is_verified(&fp(2)));
        let path = c.path().unwrap().to_path_buf();
        assert!(path.starts_with(dir.path().join("contacts")), "{path:?}");
        // Sealed: the name is not in the file.
        let bytes = std::fs::read(&path).unwrap();
        assert!(!bytes.windows(5).any(|w| w == b"carol"));
        let again = Contacts::load(Some(dir.path()), alice()).unwrap();
        assert_eq!(again.len(), 2);
        assert_eq!(
            again.get(&fp(1)),
            Some(&Verified {
                fingerprint: fp(1),
                nick: "bob".into(),
                by: VerifiedBy::Manual,
                at_ms: 1_000,
            })
        );
        assert_eq!(again.get(&fp(2)).unwrap().by, VerifiedBy::Code);
        // Marking again updates, never duplicates.
        let mut again = again;
        again.mark(fp(1), "bobby", VerifiedBy::Code, 3_000).unwrap();
        assert_eq!(again.len(), 2);
        assert_eq!(again.get(&fp(1)).unwrap().nick, "bobby");
    }

    #[test]
    fn another_identity_cannot_open_them_and_has_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Contacts::load(Some(dir.path()), alice()).unwrap();
        c.mark(fp(1), "bob", VerifiedBy::Manual, 1).unwrap();
        // Bob's contacts live in another file: empty, not an error.
        let bob = Contacts::load(Some(dir.path()), hush_testkit::keys::by_name("bob")).unwrap();
        assert!(bob.is_empty());
        assert_ne!(bob.path(), c.path());
        // Alice's file under bob's name is refused, not misread.
        std::fs::copy(c.path().unwrap(), bob.path().unwrap()).unwrap();
        assert!(matches!(
            Contacts::load(Some(dir.path()), hush_testkit::keys::by_name("bob")),
            Err(StateError::Unreadable(_))
        ));
    }

    #[test]
    fn two_runs_of_one_identity_keep_each_others_marks() {
        let dir = tempfile::tempdir().unwrap();
        let mut one = Contacts::load(Some(dir.path()), alice()).unwrap();
        let mut two = Contacts::load(Some(dir.path()), alice()).unwrap();
        one.mark(fp(1), "bob", VerifiedBy::Manual, 1).unwrap();
        two.mark(fp(2), "carol", VerifiedBy::Manual, 2).unwrap();
        assert!(two.is_verified(&fp(1)), "taken up before the change");
        one.unmark(&fp(2)).unwrap();
        let again = Contacts::load(Some(dir.path()), alice()).unwrap();
        assert!(again.is_verified(&fp(1)) && !again.is_verified(&fp(2)));
    }

    #[test]
    fn without_a_folder_they_live_in_memory() {
        let mut c = Contacts::load(None, alice()).unwrap();
        c.mark(fp(1), "bob", VerifiedBy::Manual, 1).unwrap();
        assert!(c.is_verified(&fp(1)) && c.path().is_none());
    }

    #[test]
    fn an_impostor_is_a_verified_name_on_another_key() {
        let mut c = Contacts::in_memory();
        c.mark(fp(1), "bob", VerifiedBy::Manual, 1).unwrap();
        assert_eq!(c.impostor("bob", &fp(9)).unwrap().fingerprint, fp(1));
        assert!(c.impostor("bob", &fp(1)).is_none(), "bob himself");
        assert!(c.impostor("robert", &fp(9)).is_none(), "another name");
        // Bob's new device, verified too, is not an impostor...
        c.mark(fp(2), "bob", VerifiedBy::Code, 2).unwrap();
        assert!(c.impostor("bob", &fp(2)).is_none());
        // ...but a key verified as someone else borrowing bob's name is.
        c.mark(fp(3), "mallory", VerifiedBy::Manual, 3).unwrap();
        assert_eq!(c.impostor("bob", &fp(3)).unwrap().fingerprint, fp(1));
    }

    #[test]
    fn names_fold_case_and_look_alikes() {
        let mut c = Contacts::in_memory();
        c.mark(fp(1), "Bob", VerifiedBy::Manual, 1).unwrap();
        for twin in ["bob", "BOB", "b0b", "\u{0432}ob", "bOb"] {
            assert!(c.impostor(twin, &fp(9)).is_some(), "{twin}");
        }
        assert!(c.impostor("bobby", &fp(9)).is_none());
        assert_eq!(c.find("BOB").len(), 1);
        assert_eq!(c.find(&fp(1).short_id()).len(), 1);
        assert_eq!(c.find(&fp(1).to_string()).len(), 1);
        assert!(c.find("carol").is_empty());
    }

    #[test]
    fn unmark_removes_one_key_and_is_saved() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Contacts::load(Some(dir.path()), alice()).unwrap();
        c.mark(fp(1), "bob", VerifiedBy::Manual, 1).unwrap();
        c.mark(fp(2), "bob", VerifiedBy::Manual, 2).unwrap();
        assert_eq!(c.unmark(&fp(1)).unwrap().unwrap().fingerprint, fp(1));
        assert!(c.unmark(&fp(1)).unwrap().is_none(), "already gone");
        let again = Contacts::load(Some(dir.path()), alice()).unwrap();
        assert!(!again.is_verified(&fp(1)) && again.is_verified(&fp(2)));
        // The key left verified as bob now flags the unmarked one.
        assert_eq!(again.impostor("bob", &fp(1)).unwrap().fingerprint, fp(2));
    }
}
