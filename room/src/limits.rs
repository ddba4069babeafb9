//! Bounds on everything a peer or the relay can make a member hold.

/// Messages typed before admission, kept to send once admitted.
pub(crate) const MAX_QUEUED_TEXTS: usize = 100;

/// Events after the commit that replaced an epoch during which a message
/// still sealed in that epoch, by someone the commit removed, is shown:
/// it was in flight. Later ones are refused.
pub(crate) const STALE_EPOCH_GRACE: u64 = 100;

/// Replay-detection entries kept before those of epochs older than the
/// previous one are forgotten.
pub(crate) const MAX_SEEN: usize = 200_000;

/// (sender, session) pairs whose membership-event counter is remembered;
/// beyond it the lowest (by fingerprint) is forgotten (its replays then
/// fall to the epoch window of the membership rules).
pub(crate) const MAX_MEMBERSHIP_SESSIONS: usize = 4096;

/// Members whose last kick is remembered (to refuse invites signed
/// before it).
pub(crate) const MAX_KICKED: usize = 10_000;

/// Join requests waiting for a commit; more are ignored until it lands.
pub(crate) const MAX_PENDING_JOINS: usize = 64;

/// Bytes a commit we build may take, leaving room in a relay frame for
/// the event's envelope and the signed body's framing.
pub(crate) const fn commit_budget(max_frame: usize) -> usize {
    hush_proto::msg::max_event_body(max_frame).saturating_sub(2048)
}

/// Join requests kept while they wait for the creator's invite.
pub(crate) const MAX_UNINVITED: usize = 100;

/// Messages kept that we could not read yet, in case a shared-history
/// admission hands us their keys.
pub(crate) const MAX_BACKLOG: usize = 10_000;

/// Body bytes kept in that backlog.
pub(crate) const MAX_BACKLOG_BYTES: usize = 32 * 1024 * 1024;

/// Events received ahead of a gap, kept until the gap fills.
pub(crate) const MAX_REORDER: usize = 10_000;

/// Body bytes of the events held ahead of a gap (audit L4: 10 000 frames
/// of 64 KiB would be 640 MB).
pub(crate) const MAX_REORDER_BYTES: usize = 64 * 1024 * 1024;

/// Nicknames remembered of people who are not (yet) members (join
/// requests): anyone can send one.
pub(crate) const MAX_NICKS: usize = 20_000;

/// Message counters remembered per (sender, run, epoch) before those of
/// epochs older than the previous one are forgotten.
pub(crate) const MAX_COUNTER_SLOTS: usize = 200_000;

/// Chain heads remembered, to check the heads senders sign against our
/// own. A sender's view older than this many events is not checked.
pub(crate) const MAX_HEADS: usize = 50_000;

/// File offers a room remembers for `/files` and `/save` (the oldest
/// give way).
pub const MAX_OFFERED_FILES: usize = 256;

/// Longest file name an offer may carry, in bytes (a name is shown and,
/// sanitised, becomes a file name: 255 is what file systems allow).
pub const MAX_FILE_NAME_BYTES: usize = 255;

/// Longest media type an offer may carry, in bytes (RFC 6838 allows 127
/// for each half).
pub const MAX_MEDIA_TYPE_BYTES: usize = 255;

/// Whether a verified file offer holds together: a name and media type of
/// sane length, a size hush can seal, and the chunk count that size
/// gives. Anything else is a `bad_file` warning and is never offered.
pub(crate) fn file_offer_holds(offer: &hush_proto::e2e::FileOffer) -> bool {
    use hush_crypto::file::{MAX_FILE_BYTES, chunk_count, padded_len};
    !offer.name.is_empty()
        && offer.name.len() <= MAX_FILE_NAME_BYTES
        && offer.media_type.len() <= MAX_MEDIA_TYPE_BYTES
        && offer.size <= MAX_FILE_BYTES
        && offer.chunks == chunk_count(padded_len(offer.size))
}
