//! Commits: the events that move a room from one epoch to the next.
//!
//! - [`validate`]: is a sequenced commit honoured (PROTOCOL.md §9.2.6)?
//! - [`apply`]: take it (new roster, unwrap our key) or skip it.
//! - [`build`]: the commits we make, when we are the designated member.
//! - [`confirm`]: key confirmation, made by the committer, checked by
//!   every member that holds the new key.

pub mod apply;
pub mod build;
pub mod confirm;
pub mod validate;

pub(crate) use validate::CommitVerdict;

use hush_proto::e2e::{AddCommit, Commit, HistoryEnvelope, KeyEnvelope};

/// A commit of either kind, as members apply it.
pub(crate) enum CommitBody {
    /// A whole roster and a fresh key.
    Full(Commit),
    /// The parent's roster plus newcomers, under a derived key.
    Add(AddCommit),
}

impl CommitBody {
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
