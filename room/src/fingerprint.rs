//! What members compare out of band: the room fingerprint and the
//! safety number of a pair of members.

use hush_crypto::Fingerprint;

use crate::room::Room;

impl Room {
    /// The room fingerprint: a digest of the room's name, current epoch,
    /// roster and the id of the commit that opened that epoch, as 30
    /// digits. Each commit names its parent's id, back to the room's
    /// creation, so members who read out the same digits share one
    /// membership history and one member list: the relay cannot have
    /// shown them different ones. Membership events are never pruned, so
    /// a member that joined after retention computes the same digits.
    /// `None` before we have seen any epoch.
    #[must_use]
    pub fn room_fingerprint(&self) -> Option<String> {
        let e = self.epochs.now()?;
        let mut t = hush_crypto::Transcript::new("hush/v2/room-fingerprint");
        t.absorb(self.name.as_str().as_bytes());
        t.absorb(&self.epochs.current.to_be_bytes());
        for fp in e.roster.keys() {
            t.absorb(fp.as_bytes());
        }
        t.absorb(&self.commit_id().unwrap_or([0; 32]));
        Some(digits(&t.finish()))
    }

    /// The safety number we share with `other`: the same 30 digits on both
    /// sides (the fingerprints are taken in sorted order). Comparing it out
    /// of band proves each holds the other's real key.
    #[must_use]
    pub fn safety_number(&self, other: &Fingerprint) -> String {
        let me = self.me.fingerprint();
        let (a, b) = if me <= *other {
            (me, *other)
        } else {
            (*other, me)
        };
        let mut t = hush_crypto::Transcript::new("hush/v1/safety-number");
        t.absorb(a.as_bytes());
        t.absorb(b.as_bytes());
        digits(&t.finish())
    }
}

/// 30 decimal digits in six groups of five, from a digest: short enough
/// to read aloud, long enough (about 100 bits) that a match is no accident.
pub(crate) fn digits(digest: &[u8; 32]) -> String {
    digest
        .chunks(5)
        .take(6)
        .map(|c| {
            let n = c.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
            format!("{:05}", n % 100_000)
        })
        .collect::<Vec<_>>()
        .join(" ")
}
