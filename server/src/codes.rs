//! Mailboxes for invitation codes: the relay's whole part in a code
//! exchange (PROTOCOL.md §10). It forwards opaque steps between the one
//! connection that opened a mailbox and the first that claims it, and
//! reads nothing of them: SPAKE2 runs end to end, so the relay, which
//! sees every step, still cannot test a guess of the code offline.
//!
//! ```text
//!  CodeOpen ─▶ open: a free number (random, 1..=999 while there is room),
//!              expiry timer ─▶ Expired to the opener
//!  CodeClaim(n) ─▶ the first claim: queued steps to the claimer, its step
//!                  to the opener; any later claim ─▶ Used
//!  CodePost(n) ─▶ forwarded to the other side (a few, each bounded)
//!  CodeClose(n), a side's disconnect ─▶ closed, the other side told
//! ```
//!
//! A closed or expired number is kept as *spent* for an hour, so a code
//! tried again is told "used" or "expired", not handed to a newer code's
//! mailbox where it would spend someone else's code. Mailboxes live in
//! memory only: a relay restart ends every open code (the inviter makes a
//! new one).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use hush_crypto::Fingerprint;
use hush_proto::code::{MAX_NUMBER, MAX_STEP};
use hush_proto::msg::encode;
use hush_proto::{CodeEnd, RelayMsg};

use crate::hub::{ConnId, Peer};

/// How long a spent number stays reserved and says why.
const SPENT_FOR: Duration = Duration::from_secs(3600);
/// Open mailboxes one identity may hold at once.
const OPEN_PER_IDENTITY: usize = 4;
/// Open mailboxes on the relay at once.
const OPEN_IN_ALL: usize = 2000;
/// Claims one identity may make per hour: each spends a code, so a member
/// cannot spend everyone's codes by claiming numbers in turn.
const CLAIMS_PER_HOUR: usize = 20;
/// Mailboxes one identity may open per hour: each number it closes is
/// reserved for an hour, so an identity opening and closing in a loop
/// must not reserve them all.
const OPENS_PER_HOUR: usize = 30;
/// Identities whose recent claims or opens are remembered; beyond, new
/// ones are refused until the oldest age out.
const RATIONED_IDENTITIES: usize = 100_000;
/// How long a claimed exchange may take to finish (its four steps are
/// sub-second; a claimer that goes silent must not hold the mailbox).
const STEP_WINDOW: Duration = Duration::from_secs(120);
/// Steps each side may post (SPAKE2 message, box, failure).
const POSTS_PER_SIDE: u8 = 3;
/// Numbers tried first, so codes stay short.
const SHORT_NUMBERS: u16 = 999;

struct Mailbox {
    opener: Peer,
    claimer: Option<Peer>,
    /// The opener's steps posted before the claim.
    queued: Vec<Vec<u8>>,
    posts: [u8; 2],
    /// Distinguishes this mailbox from a later one with the same number,
    /// for its expiry timer.
    generation: u64,
}

#[derive(Default)]
struct Inner {
    open: HashMap<u16, Mailbox>,
    spent: HashMap<u16, (CodeEnd, Instant)>,
    claims: HashMap<Fingerprint, VecDeque<Instant>>,
    opens: HashMap<Fingerprint, VecDeque<Instant>>,
    generation: u64,
}

/// Takes one of `limit` uses per hour of `who` from `book` at `now`;
/// false if none is left (or the book is full of other identities).
fn ration(
    book: &mut HashMap<Fingerprint, VecDeque<Instant>>,
    who: Fingerprint,
    limit: usize,
    now: Instant,
) -> bool {
    let hour = Duration::from_secs(3600);
    if book.len() >= RATIONED_IDENTITIES && !book.contains_key(&who) {
        book.retain(|_, q| q.back().is_some_and(|t| now.duration_since(*t) < hour));
        if book.len() >= RATIONED_IDENTITIES {
            return false;
        }
    }
    let uses = book.entry(who).or_default();
    while uses
        .front()
        .is_some_and(|at| now.duration_since(*at) >= hour)
    {
        uses.pop_front();
    }
    if uses.len() >= limit {
        return false;
    }
    uses.push_back(now);
    true
}

/// The relay's code mailboxes.
pub(crate) struct Mailboxes {
    inner: Mutex<Inner>,
    expiry: Duration,
}

fn tell(peer: &Peer, msg: &RelayMsg) {
    peer.deliver(encode(msg).into());
}

fn closed(number: u16, reason: CodeEnd) -> RelayMsg {
    RelayMsg::CodeClosed { number, reason }
}

impl Mailboxes {
    /// Mailboxes that stay open `expiry` unclaimed.
    pub(crate) fn new(expiry: Duration) -> Arc<Self> {
        Arc::new(Self {
            inner: Mutex::new(Inner::default()),
            expiry,
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Opens a mailbox for `peer`, answering it `CodeOpened` or
    /// `CodeClosed { Full }`.
    pub(crate) fn open(self: &Arc<Self>, peer: &Peer) {
        let now = Instant::now();
        let mut inner = self.lock();
        inner
            .spent
            .retain(|_, (_, at)| now.duration_since(*at) < SPENT_FOR);
        let mine = inner
            .open
            .values()
            .filter(|m| m.opener.fingerprint == peer.fingerprint)
            .count();
        let number = if mine >= OPEN_PER_IDENTITY
            || inner.open.len() >= OPEN_IN_ALL
            || !ration(&mut inner.opens, peer.fingerprint, OPENS_PER_HOUR, now)
        {
            None
        } else {
            free_number(&mut inner)
        };
        let Some(number) = number else {
            drop(inner);
            tell(peer, &closed(0, CodeEnd::Full));
            return;
        };
        inner.generation += 1;
        let generation = inner.generation;
        inner.open.insert(
            number,
            Mailbox {
                opener: peer.clone(),
                claimer: None,
                queued: Vec::new(),
                posts: [0, 0],
                generation,
            },
        );
        drop(inner);
        let expires_in_ms = u64::try_from(self.expiry.as_millis()).unwrap_or(u64::MAX);
        tell(
            peer,
            &RelayMsg::CodeOpened {
                number,
                expires_in_ms,
            },
        );
        self.expire_after(number, generation, self.expiry);
        crate::metrics::metrics().codes_opened.inc();
    }

    /// Closes mailbox `number` (if it is still the one of `generation`)
    /// once `after` has passed.
    fn expire_after(self: &Arc<Self>, number: u16, generation: u64, after: Duration) {
        let this = Arc::clone(self);
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            this.expire(number, generation);
        });
    }

    /// A mailbox's time is up: unclaimed, or claimed and not finished
    /// within the step window. Both sides are told.
    fn expire(&self, number: u16, generation: u64) {
        let mut inner = self.lock();
        if inner
            .open
            .get(&number)
            .is_none_or(|m| m.generation != generation)
        {
            return;
        }
        if let Some(m) = inner.open.remove(&number) {
            let why = if m.claimer.is_some() {
                CodeEnd::Used
            } else {
                CodeEnd::Expired
            };
            inner.spent.insert(number, (why, Instant::now()));
            drop(inner);
            for side in [Some(m.opener), m.claimer].into_iter().flatten() {
                tell(&side, &closed(number, CodeEnd::Expired));
            }
        }
    }

    /// `peer` claims mailbox `number` with its first step.
    pub(crate) fn claim(self: &Arc<Self>, peer: &Peer, number: u16, data: Vec<u8>) {
        let now = Instant::now();
        let mut inner = self.lock();
        if !ration(&mut inner.claims, peer.fingerprint, CLAIMS_PER_HOUR, now) {
            drop(inner);
            tell(peer, &closed(number, CodeEnd::TooManyClaims));
            return;
        }
        if data.len() > MAX_STEP {
            drop(inner);
            tell(peer, &closed(number, CodeEnd::TooMuch));
            return;
        }
        let refusal = match inner.open.get(&number) {
            None => Some(
                inner
                    .spent
                    .get(&number)
                    .map_or(CodeEnd::Unknown, |(why, _)| *why),
            ),
            Some(m) if m.claimer.is_some() => Some(CodeEnd::Used),
            // Its own code, from any connection of the same key.
            Some(m) if m.opener.fingerprint == peer.fingerprint => Some(CodeEnd::Used),
            Some(_) => None,
        };
        if let Some(why) = refusal {
            drop(inner);
            tell(peer, &closed(number, why));
            return;
        }
        let Some(m) = inner.open.get_mut(&number) else {
            return;
        };
        m.claimer = Some(peer.clone());
        m.posts[1] = 1;
        let queued = std::mem::take(&mut m.queued);
        let opener = m.opener.clone();
        // A claimed exchange gets its own, short, deadline.
        inner.generation += 1;
        let generation = inner.generation;
        if let Some(m) = inner.open.get_mut(&number) {
            m.generation = generation;
        }
        drop(inner);
        self.expire_after(number, generation, STEP_WINDOW.min(self.expiry));
        for data in queued {
            tell(peer, &RelayMsg::CodeData { number, data });
        }
        tell(&opener, &RelayMsg::CodeData { number, data });
        crate::metrics::metrics().codes_claimed.inc();
    }

    /// `peer` posts a step to the other side of `number`.
    pub(crate) fn post(&self, peer: &Peer, number: u16, data: Vec<u8>) {
        let mut inner = self.lock();
        let Some(m) = inner.open.get_mut(&number) else {
            drop(inner);
            tell(peer, &closed(number, CodeEnd::Unknown));
            return;
        };
        let side = if m.opener.id == peer.id {
            0
        } else if m.claimer.as_ref().is_some_and(|c| c.id == peer.id) {
            1
        } else {
            // Not a party to it: nothing about it is said.
            drop(inner);
            tell(peer, &closed(number, CodeEnd::Unknown));
            return;
        };
        if data.len() > MAX_STEP || m.posts[side] >= POSTS_PER_SIDE {
            drop(inner);
            tell(peer, &closed(number, CodeEnd::TooMuch));
            return;
        }
        m.posts[side] += 1;
        let to = if side == 0 {
            m.claimer.clone()
        } else {
            Some(m.opener.clone())
        };
        match to {
            Some(to) => {
                drop(inner);
                tell(&to, &RelayMsg::CodeData { number, data });
            }
            None => m.queued.push(data),
        }
    }

    /// `peer` closes `number` (a party only); the other side is told.
    pub(crate) fn close(&self, peer: &Peer, number: u16) {
        let mut inner = self.lock();
        let party = inner.open.get(&number).is_some_and(|m| {
            m.opener.id == peer.id || m.claimer.as_ref().is_some_and(|c| c.id == peer.id)
        });
        if !party {
            return;
        }
        if let Some(m) = inner.open.remove(&number) {
            inner.spent.insert(number, (CodeEnd::Used, Instant::now()));
            drop(inner);
            for other in [Some(m.opener), m.claimer].into_iter().flatten() {
                if other.id != peer.id {
                    tell(&other, &closed(number, CodeEnd::Closed));
                }
            }
        }
    }

    /// Connection `id` is gone: its mailboxes close, the other sides told.
    pub(crate) fn disconnected(&self, id: ConnId) {
        let mut inner = self.lock();
        let numbers: Vec<u16> = inner
            .open
            .iter()
            .filter(|(_, m)| m.opener.id == id || m.claimer.as_ref().is_some_and(|c| c.id == id))
            .map(|(n, _)| *n)
            .collect();
        let now = Instant::now();
        let mut told = Vec::new();
        for number in numbers {
            if let Some(m) = inner.open.remove(&number) {
                // Unclaimed, nobody tried it: the words were never guessed.
                let why = if m.claimer.is_some() {
                    CodeEnd::Used
                } else {
                    CodeEnd::Gone
                };
                inner.spent.insert(number, (why, now));
                for other in [Some(m.opener), m.claimer].into_iter().flatten() {
                    if other.id != id {
                        told.push((other, number));
                    }
                }
            }
        }
        drop(inner);
        for (other, number) in told {
            tell(&other, &closed(number, CodeEnd::Gone));
        }
    }

    /// Open mailboxes.
    #[cfg(test)]
    pub(crate) fn open_count(&self) -> usize {
        self.lock().open.len()
    }
}

/// A number neither open nor spent: random among the short ones while
/// they are mostly free, else the first free one; with none free, the
/// number spent longest ago is taken back.
fn free_number(inner: &mut Inner) -> Option<u16> {
    if let Some(n) = unused_number(inner) {
        return Some(n);
    }
    let oldest = inner
        .spent
        .iter()
        .min_by_key(|(_, (_, at))| *at)
        .map(|(n, _)| *n)?;
    inner.spent.remove(&oldest);
    Some(oldest)
}

fn unused_number(inner: &Inner) -> Option<u16> {
    let taken = |n: &u16| inner.open.contains_key(n) || inner.spent.contains_key(n);
    let short_taken = (1..=SHORT_NUMBERS).filter(|n| taken(n)).count();
    if short_taken < usize::from(SHORT_NUMBERS) / 2 {
        for _ in 0..64 {
            let bytes = *hush_crypto::Secret32::random().expose_secret();
            let n = 1 + u16::from_be_bytes([bytes[0], bytes[1]]) % SHORT_NUMBERS;
            if !taken(&n) {
                return Some(n);
            }
        }
    }
    (1..=MAX_NUMBER).find(|n| !taken(n))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::hub::Outbox;
    use hush_proto::msg::decode;

    fn peer(id: ConnId, who: u8) -> Peer {
        Peer {
            id,
            fingerprint: Fingerprint::from_bytes([who; 32]),
            outbox: Arc::new(Outbox::new(64, 1 << 20)),
        }
    }

    fn received(p: &Peer) -> Vec<RelayMsg> {
        let mut out = Vec::new();
        p.outbox.drain(|m| {
            out.push(decode(m).unwrap());
            true
        });
        out
    }

    fn opened(boxes: &Arc<Mailboxes>, p: &Peer) -> u16 {
        boxes.open(p);
        match received(p).as_slice() {
            [RelayMsg::CodeOpened { number, .. }] => *number,
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn steps_pass_between_opener_and_the_first_claimer_only() {
        let boxes = Mailboxes::new(Duration::from_secs(60));
        let (alice, bob, mallory) = (peer(1, 1), peer(2, 2), peer(3, 3));
        let n = opened(&boxes, &alice);
        assert!((1..=SHORT_NUMBERS).contains(&n));
        boxes.post(&alice, n, b"pake-a".to_vec());
        assert!(received(&alice).is_empty(), "queued until claimed");
        boxes.claim(&bob, n, b"pake-b".to_vec());
        assert_eq!(
            received(&bob),
            [RelayMsg::CodeData {
                number: n,
                data: b"pake-a".to_vec()
            }]
        );
        assert_eq!(
            received(&alice),
            [RelayMsg::CodeData {
                number: n,
                data: b"pake-b".to_vec()
            }]
        );
        // The one guess is taken: a second claim is refused, a stranger's
        // post is not forwarded.
        boxes.claim(&mallory, n, b"guess".to_vec());
        assert_eq!(received(&mallory), [closed(n, CodeEnd::Used)]);
        boxes.post(&mallory, n, b"x".to_vec());
        assert_eq!(received(&mallory), [closed(n, CodeEnd::Unknown)]);
        assert!(received(&alice).is_empty() && received(&bob).is_empty());
        boxes.post(&bob, n, b"box-b".to_vec());
        assert_eq!(
            received(&alice),
            [RelayMsg::CodeData {
                number: n,
                data: b"box-b".to_vec()
            }]
        );
        boxes.close(&alice, n);
        assert_eq!(received(&bob), [closed(n, CodeEnd::Closed)]);
        assert_eq!(boxes.open_count(), 0);
        // Tried again later: used, and the number is not handed out again.
        boxes.claim(&mallory, n, b"again".to_vec());
        assert_eq!(received(&mallory), [closed(n, CodeEnd::Used)]);
        for _ in 0..OPEN_PER_IDENTITY {
            assert_ne!(opened(&boxes, &alice), n);
        }
    }

    #[tokio::test]
    async fn unknown_expired_and_gone_codes_say_so() {
        let boxes = Mailboxes::new(Duration::from_millis(50));
        let (alice, bob) = (peer(1, 1), peer(2, 2));
        boxes.claim(&bob, 77, Vec::new());
        assert_eq!(received(&bob), [closed(77, CodeEnd::Unknown)]);
        let n = opened(&boxes, &alice);
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(received(&alice), [closed(n, CodeEnd::Expired)]);
        boxes.claim(&bob, n, Vec::new());
        assert_eq!(received(&bob), [closed(n, CodeEnd::Expired)]);
        // The opener's connection drops: the claimer is told.
        let boxes = Mailboxes::new(Duration::from_secs(60));
        let n = opened(&boxes, &alice);
        boxes.claim(&bob, n, Vec::new());
        let _ = received(&alice);
        let _ = received(&bob);
        boxes.disconnected(alice.id);
        assert_eq!(received(&bob), [closed(n, CodeEnd::Gone)]);
        assert_eq!(boxes.open_count(), 0);
    }

    #[tokio::test]
    async fn a_claimer_that_goes_silent_does_not_hold_the_mailbox() {
        let boxes = Mailboxes::new(Duration::from_millis(80));
        let (alice, mallory) = (peer(1, 1), peer(2, 2));
        let n = opened(&boxes, &alice);
        boxes.claim(&mallory, n, b"pake".to_vec());
        let _ = received(&alice);
        let _ = received(&mallory);
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(received(&alice), [closed(n, CodeEnd::Expired)]);
        assert_eq!(received(&mallory), [closed(n, CodeEnd::Expired)]);
        assert_eq!(boxes.open_count(), 0);
    }

    #[tokio::test]
    async fn a_key_cannot_claim_its_own_code_nor_open_codes_without_end() {
        let boxes = Mailboxes::new(Duration::from_secs(60));
        let (alice, alice_again) = (peer(1, 1), peer(9, 1));
        let n = opened(&boxes, &alice);
        boxes.claim(&alice_again, n, Vec::new());
        assert_eq!(received(&alice_again), [closed(n, CodeEnd::Used)]);
        // Opening and closing in a loop reserves numbers: rationed.
        boxes.close(&alice, n);
        for _ in 1..OPENS_PER_HOUR {
            let n = opened(&boxes, &alice);
            boxes.close(&alice, n);
        }
        boxes.open(&alice);
        assert_eq!(received(&alice), [closed(0, CodeEnd::Full)]);
    }

    #[tokio::test]
    async fn limits_hold() {
        let boxes = Mailboxes::new(Duration::from_secs(60));
        let (alice, bob) = (peer(1, 1), peer(2, 2));
        for _ in 0..OPEN_PER_IDENTITY {
            opened(&boxes, &alice);
        }
        boxes.open(&alice);
        assert_eq!(received(&alice), [closed(0, CodeEnd::Full)]);
        let n = opened(&boxes, &bob);
        boxes.claim(&alice, n, vec![0; MAX_STEP + 1]);
        assert_eq!(received(&alice), [closed(n, CodeEnd::TooMuch)]);
        for _ in 0..POSTS_PER_SIDE {
            boxes.post(&bob, n, vec![1]);
        }
        boxes.post(&bob, n, vec![1]);
        assert_eq!(received(&bob), [closed(n, CodeEnd::TooMuch)]);
        // Claims are rationed per identity (each spends someone's code).
        let mallory = peer(3, 3);
        for i in 0..CLAIMS_PER_HOUR {
            boxes.claim(&mallory, 5000 + u16::try_from(i).unwrap(), Vec::new());
        }
        let _ = received(&mallory);
        boxes.claim(&mallory, n, Vec::new());
        assert_eq!(received(&mallory), [closed(n, CodeEnd::TooManyClaims)]);
    }
}
