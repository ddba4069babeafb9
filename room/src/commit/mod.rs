//! Commits: the events that move a room from one epoch to the next.
//!
//! - [`validate`]: is a sequenced commit honoured (PROTOCOL.md §9.2.6)?
//! - [`apply`]: take it (new roster, unwrap our key) or void it.
//! - [`build`]: the commits we make, when we are the designated member.

pub mod apply;
pub mod build;
pub mod validate;

use std::collections::BTreeMap;

use hush_crypto::Fingerprint;
use hush_proto::e2e::{AddCommit, Commit, HistoryEnvelope, KeyEnvelope};

use crate::action::Action;
use crate::epochs::RosterEntry;

/// Why a commit is not honoured.
pub(crate) enum CommitFault {
    /// Sequenced but invalid: its epoch inherits the previous one.
    Void(Box<Action>),
    /// Not the relay's next epoch for us: a sign of a forked history.
    Fork(Box<Action>),
    /// Valid, but the first roster we see of a room whose earlier history
    /// is gone: accepted as first seen, with this notice.
    Anchor(Box<Action>, BTreeMap<Fingerprint, RosterEntry>),
    /// An add-only commit extending a roster we never saw (the relay
    /// pruned the commits that built it): nothing to judge it by, and
    /// nothing of ours changes. The next full commit anchors us.
    Unjudgeable,
}

impl CommitFault {
    pub(crate) fn void(warning: Action) -> Self {
        Self::Void(Box::new(warning))
    }
    pub(crate) fn fork(warning: Action) -> Self {
        Self::Fork(Box::new(warning))
    }
    pub(crate) fn anchor(notice: Action, roster: BTreeMap<Fingerprint, RosterEntry>) -> Self {
        Self::Anchor(Box::new(notice), roster)
    }
}

/// A commit of either kind, as members apply it.
pub(crate) enum CommitBody {
    /// A whole roster and a fresh key.
    Full(Commit),
    /// The parent's roster plus newcomers, under a derived key.
    Add(AddCommit),
}

impl CommitBody {
    pub(crate) fn parent_epoch(&self) -> u64 {
        match self {
            Self::Full(c) => c.parent_epoch,
            Self::Add(a) => a.parent_epoch,
        }
    }
    pub(crate) fn envelopes(&self) -> &[KeyEnvelope] {
        match self {
            Self::Full(c) => &c.envelopes,
            Self::Add(a) => &a.envelopes,
        }
    }
    pub(crate) fn history(&self) -> &[HistoryEnvelope] {
        match self {
            Self::Full(c) => &c.history,
            Self::Add(a) => &a.history,
        }
    }
}
