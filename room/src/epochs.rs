//! Epochs as a member knows them: each one's roster and, if we were in
//! it, its key.

use std::collections::BTreeMap;
use std::sync::Arc;

use hush_crypto::{Fingerprint, PublicIdentity, Secret32};

/// One epoch as this member knows it.
#[derive(Clone)]
pub(crate) struct Epoch {
    /// Shared: successive epochs mostly repeat a roster.
    pub(crate) roster: Arc<BTreeMap<Fingerprint, RosterEntry>>,
    /// Present if we were a member and unwrapped it.
    pub(crate) key: Option<Secret32>,
}

#[derive(Clone)]
pub(crate) struct RosterEntry {
    /// Shared between the rosters of successive epochs: a big room's
    /// roster is copied for each epoch, its parsed keys are not.
    pub(crate) key: Arc<PublicIdentity>,
    pub(crate) nick: String,
}
