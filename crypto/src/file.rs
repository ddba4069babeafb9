//! Sealing files: fixed-size chunks under a fresh per-file key (issue #16).
//!
//! A member who sends a file to a room pads it, cuts it into chunks, seals
//! every chunk under a fresh [`FileKey`] and hands the sealed chunks to the
//! relay, which stores them under the file's public [`FileId`]. The key, the
//! id and the real size travel inside the room's sealed, signed message, so
//! the relay only ever holds ciphertext of a bucketed length.
//!
//! ```text
//!   sender                                                  receiver
//!   ──────                                                  ────────
//!   file (size bytes)                                       size, FileId, FileKey
//!     │ chunk_range(size, i)                                  (from the signed message)
//!     ▼                                                       │ padded_len(size) → chunk_count
//!   padded_chunk(data, padded_len(size), i)                   ▼
//!     │ zeros up to CHUNK_PLAIN (or to the last chunk's end)  open_chunk(key, id, i, total, sealed)
//!     ▼                                                       │ AES-256-GCM, nonce = i ‖ last?
//!   seal_chunk(key, id, i, total, plain) ──▶ relay ──▶ sealed │ AAD = label ‖ id ‖ total
//!     AES-256-GCM, nonce = i (88-bit BE) ‖ last? (1 byte)     ▼
//!     AAD = "hush/v2/file-chunk" ‖ id ‖ total (u32 BE)      unpad_chunk(opened, size, i)
//!                                                             │ real bytes; padding must be zero
//!                                                             ▼
//!                                                           file (size bytes)
//! ```
//!
//! The construction is age's STREAM: the chunk index is the nonce, so a
//! relay that reorders chunks makes them fail to open; the last chunk is
//! sealed with a distinct final-flag byte in its nonce, so a file cut short
//! (chunk `total - 2` presented as the last) or extended (a chunk presented
//! past the end) fails; and the file id and chunk count are associated
//! data, so a chunk from another file, or the same file announced with a
//! different count, fails too.
//!
//! The receiver takes the chunk count from the size in the signed message
//! (`chunk_count(padded_len(size))`), never from the relay, and asks the
//! relay for exactly that many chunks: a relay that withholds chunks then
//! leaves the file incomplete rather than shorter.
//!
//! Padding follows Signal's attachment buckets, so the relay learns a file's
//! size only to within about 5%: see [`padded_len`].
//!
//! One [`FileKey`] seals exactly one file, once. The nonces are derived from
//! the chunk index alone, so sealing two different plaintexts at the same
//! index under one key would reuse an AES-GCM nonce; [`FileKey::random`] for
//! every file is the only correct use.
//!
//! A sealed chunk proves only that it was made by someone holding the file
//! key, and every member of the room receives that key. To bind the chunks
//! to the member who sent the file, the sender puts the [`SealedDigest`] of
//! its sealed chunks into its signed message and every receiver checks it
//! before accepting the file (as Signal does with its attachment digest).

use core::cmp::Ordering;
use core::fmt;
use std::ops::Range;
use std::sync::OnceLock;

use subtle::ConstantTimeEq;

use crate::seal::{NONCE_LEN, SealingKey};
use crate::secret::Secret32;

/// Plaintext bytes per chunk (the last chunk may be shorter): 32 KiB, so a
/// sealed chunk plus its message fits the default 64 KiB link frame.
pub const CHUNK_PLAIN: usize = 32 * 1024;

/// A sealed chunk is its plaintext plus this tag.
pub const CHUNK_OVERHEAD: usize = 16;

/// Largest file hush seals: 4 GiB.
///
/// Padded, that is 4 376 541 760 bytes (`floor(1.05^455)`), 133 562
/// chunks: far inside the `u32` chunk count and the 88-bit nonce counter, and every chunk is its
/// own AES-GCM message, far below its per-message limit. How much a relay
/// is willing to store is a policy of the relay, decided elsewhere.
pub const MAX_FILE_BYTES: u64 = 1 << 32;

/// The smallest padded size, Signal's floor: every file of up to 541 bytes
/// is padded to 541 (`floor(1.05^129)`).
pub const MIN_PADDED_LEN: u64 = 541;

/// Length of a [`SealedDigest`].
pub const DIGEST_LEN: usize = 32;

/// Domain-separation label at the start of every chunk's associated data.
const AAD_LABEL: &[u8] = b"hush/v2/file-chunk";

/// Label of the [`SealedDigest`] transcript.
const DIGEST_LABEL: &str = "hush/v2/file-digest";

/// A failure to seal, open or unpad a file chunk. Opening failures are
/// deliberately coarse ([`FileError::Open`] says only *that* a chunk did not
/// open).
#[derive(Debug, thiserror::Error, Clone, Copy, PartialEq, Eq)]
pub enum FileError {
    /// A chunk (plain, sealed or opened) has the wrong length for its place
    /// in the file, or a padded length is not one [`padded_len`] produces.
    #[error("file chunk has the wrong length")]
    BadLength,
    /// A chunk did not open: altered bytes, wrong key, wrong file, wrong
    /// index or wrong chunk count.
    #[error("file chunk did not open (tampered, or wrong key, file, index or count)")]
    Open,
    /// The padding of an opened chunk is not all zeros: the sender hid
    /// extra data in it.
    #[error("file chunk padding is not zero")]
    BadPadding,
    /// The file (or its chunk count) is larger than [`MAX_FILE_BYTES`] allows.
    #[error("file is larger than hush seals ({MAX_FILE_BYTES} bytes)")]
    TooLarge,
    /// The chunk index is not below the chunk count, or the count is zero.
    #[error("file chunk index out of range")]
    BadIndex,
    /// AES-GCM refused to seal (it cannot for a chunk-sized plaintext).
    #[error("file chunk sealing failed")]
    Internal,
}

/// A file's random identifier (public: the relay stores chunks under it).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct FileId(pub [u8; 16]);

impl FileId {
    /// A fresh random id from the OS CSPRNG.
    #[must_use]
    pub fn random() -> Self {
        let mut id = [0u8; 16];
        crate::random_bytes(&mut id);
        Self(id)
    }

    /// The id as 32 lowercase hex digits.
    #[must_use]
    pub fn to_hex(&self) -> String {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut s = String::with_capacity(32);
        for b in self.0 {
            s.push(char::from(DIGITS[usize::from(b >> 4)]));
            s.push(char::from(DIGITS[usize::from(b & 0x0f)]));
        }
        s
    }

    /// Parses exactly 32 hex digits (either case); `None` for anything
    /// else (wrong length, a sign, whitespace, a non-hex character).
    #[must_use]
    pub fn from_hex(s: &str) -> Option<Self> {
        fn digit(c: u8) -> Option<u8> {
            match c {
                b'0'..=b'9' => Some(c - b'0'),
                b'a'..=b'f' => Some(c - b'a' + 10),
                b'A'..=b'F' => Some(c - b'A' + 10),
                _ => None,
            }
        }
        let bytes = s.as_bytes();
        if bytes.len() != 32 {
            return None;
        }
        let mut id = [0u8; 16];
        for (out, pair) in id.iter_mut().zip(bytes.chunks_exact(2)) {
            *out = (digit(pair[0])? << 4) | digit(pair[1])?;
        }
        Some(Self(id))
    }
}

/// A fresh 256-bit key for one file; zeroized on drop; never Debug-prints
/// the key. One key seals one file, once (see the module documentation).
#[derive(Clone)]
pub struct FileKey(Secret32);

impl FileKey {
    /// A fresh random key from the OS CSPRNG: make one for every file.
    #[must_use]
    pub fn random() -> Self {
        Self(Secret32::random())
    }

    /// Takes ownership of key bytes (as received in a room message). The
    /// caller should zeroize its own copy.
    #[must_use]
    pub fn from_bytes(b: [u8; 32]) -> Self {
        Self(Secret32::from_bytes(b))
    }

    /// The key bytes, to put into the room's sealed message. The caller
    /// should zeroize the copy once it is sent.
    #[must_use]
    pub fn to_bytes(&self) -> [u8; 32] {
        *self.0.expose_secret()
    }

    fn cipher(&self) -> SealingKey {
        SealingKey::new(&self.0)
    }
}

impl PartialEq for FileKey {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}
impl Eq for FileKey {}

impl fmt::Debug for FileKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FileKey(<redacted>)")
    }
}

// ───────────────────────────── padding ─────────────────────────────

/// Every bucket `floor(1.05^k)` from [`MIN_PADDED_LEN`] up to the largest
/// one that fits a `u64`, ascending and distinct. Computed once, exactly,
/// in integers: floating-point `powf` differs between platforms, and a
/// sender and a receiver that disagree on a bucket disagree on the chunk
/// count.
fn buckets() -> &'static [u64] {
    static TABLE: OnceLock<Vec<u64>> = OnceLock::new();
    TABLE.get_or_init(build_buckets)
}

/// `floor(21^k / 20^k)` for k = 0, 1, …, carried as the quotient `q`, the
/// remainder `r = 21^k mod 20^k` and the divisor `d = 20^k` (`r` and `d`
/// as little-endian base-2^32 integers). From `21·q = 20·a + b`:
/// `21^(k+1) / 20^(k+1) = a + (b·d + 21·r) / (20·d)`, and the second term
/// is below 2.05, so at most two subtractions of `20·d` finish each step.
fn build_buckets() -> Vec<u64> {
    let mut out = Vec::new();
    let mut q: u128 = 1;
    let mut r: Vec<u32> = Vec::new();
    let mut d: Vec<u32> = vec![1];
    while let Ok(bucket) = u64::try_from(q) {
        if bucket >= MIN_PADDED_LEN && out.last() != Some(&bucket) {
            out.push(bucket);
        }
        let t = 21 * q;
        let (a, b) = (t / 20, (t % 20) as u32);
        let mut n = big_mul_small(&d, b);
        big_add_assign(&mut n, &big_mul_small(&r, 21));
        d = big_mul_small(&d, 20);
        let mut f = 0u128;
        while big_cmp(&n, &d) != Ordering::Less {
            big_sub_assign(&mut n, &d);
            f += 1;
        }
        q = a + f;
        r = n;
    }
    out
}

fn big_trim(a: &mut Vec<u32>) {
    while a.last() == Some(&0) {
        a.pop();
    }
}

fn big_mul_small(a: &[u32], m: u32) -> Vec<u32> {
    let mut out = Vec::with_capacity(a.len() + 1);
    let mut carry = 0u64;
    for &limb in a {
        let v = u64::from(limb) * u64::from(m) + carry;
        out.push(v as u32);
        carry = v >> 32;
    }
    out.push(carry as u32);
    big_trim(&mut out);
    out
}

fn big_add_assign(a: &mut Vec<u32>, b: &[u32]) {
    if a.len() < b.len() {
        a.resize(b.len(), 0);
    }
    let mut carry = 0u64;
    for (i, limb) in a.iter_mut().enumerate() {
        let v = u64::from(*limb) + u64::from(b.get(i).copied().unwrap_or(0)) + carry;
        *limb = v as u32;
        carry = v >> 32;
    }
    if carry != 0 {
        a.push(carry as u32);
    }
}

/// `a -= b`; the caller guarantees `a >= b`.
fn big_sub_assign(a: &mut Vec<u32>, b: &[u32]) {
    let mut borrow = 0i64;
    for (i, limb) in a.iter_mut().enumerate() {
        let mut v = i64::from(*limb) - i64::from(b.get(i).copied().unwrap_or(0)) - borrow;
        borrow = 0;
        if v < 0 {
            v += 1 << 32;
            borrow = 1;
        }
        *limb = v as u32;
    }
    big_trim(a);
}

fn big_cmp(a: &[u32], b: &[u32]) -> Ordering {
    // Both operands are trimmed, so the longer one is the larger.
    a.len()
        .cmp(&b.len())
        .then_with(|| a.iter().rev().cmp(b.iter().rev()))
}

/// The size the plaintext is padded to before sealing, so exact sizes do
/// not leak: Signal's buckets, `max(541, floor(1.05^ceil(log_1.05(len))))`
/// (at most ~5% more).
///
/// That is the smallest `floor(1.05^k)` that is at least `len` (and at
/// least 541), computed exactly in integers, so it is the same on every
/// platform. Monotonic, `>= len`, and the same for every `len` in a bucket;
/// every bucket is its own padded length. Beyond the largest bucket that
/// fits a `u64` (far past [`MAX_FILE_BYTES`]) it saturates at `u64::MAX`.
#[must_use]
pub fn padded_len(len: u64) -> u64 {
    let table = buckets();
    let i = table.partition_point(|&b| b < len);
    table.get(i).copied().unwrap_or(u64::MAX)
}

/// Chunks of a padded length: `ceil(padded / CHUNK_PLAIN)`, at least 1
/// (saturating at `u32::MAX` for lengths far past [`MAX_FILE_BYTES`]).
#[must_use]
pub fn chunk_count(padded_len: u64) -> u32 {
    let chunks = padded_len.div_ceil(CHUNK_PLAIN as u64).max(1);
    u32::try_from(chunks).unwrap_or(u32::MAX)
}

/// The most chunks a file of at most [`MAX_FILE_BYTES`] has.
#[must_use]
pub fn max_chunk_count() -> u32 {
    chunk_count(padded_len(MAX_FILE_BYTES))
}

/// Plaintext length of chunk `index` of a file padded to `padded`, if
/// `padded` is a padded length hush produces for a file it seals and
/// `index` is one of its chunks.
fn plain_chunk_len(padded: u64, index: u32) -> Result<usize, FileError> {
    if padded > padded_len(MAX_FILE_BYTES) {
        return Err(FileError::TooLarge);
    }
    if padded_len(padded) != padded {
        return Err(FileError::BadLength);
    }
    let total = chunk_count(padded);
    if index >= total {
        return Err(FileError::BadIndex);
    }
    let start = u64::from(index) * CHUNK_PLAIN as u64;
    let len = (padded - start).min(CHUNK_PLAIN as u64);
    usize::try_from(len).map_err(|_| FileError::TooLarge)
}

/// The sealed bytes of a whole file of `size` real bytes: padded, plus a
/// tag per chunk (what a relay stores for it).
#[must_use]
pub fn sealed_len(size: u64) -> u64 {
    let padded = padded_len(size);
    padded.saturating_add(u64::from(chunk_count(padded)).saturating_mul(CHUNK_OVERHEAD as u64))
}

/// Sealed length of chunk `index` of a file padded to `padded_len`; `None`
/// if `padded_len` is not a length [`padded_len`] produces for a file of at
/// most [`MAX_FILE_BYTES`], or `index` is past the last chunk.
#[must_use]
pub fn sealed_chunk_len(padded_len: u64, index: u32) -> Option<usize> {
    plain_chunk_len(padded_len, index)
        .ok()
        .map(|n| n + CHUNK_OVERHEAD)
}

// ───────────────────────────── sealing ─────────────────────────────

/// STREAM nonce: chunk counter (88 bits, big-endian) ‖ 0x01 for the last
/// chunk, 0x00 otherwise.
fn chunk_nonce(index: u32, last: bool) -> [u8; NONCE_LEN] {
    let mut n = [0u8; NONCE_LEN];
    n[7..11].copy_from_slice(&index.to_be_bytes());
    n[11] = u8::from(last);
    n
}

/// `"hush/v2/file-chunk" ‖ id ‖ total (u32 BE)`: every part has a fixed
/// length, so no two files' associated data can coincide.
fn chunk_aad(id: &FileId, total: u32) -> [u8; AAD_LABEL.len() + 16 + 4] {
    let mut aad = [0u8; AAD_LABEL.len() + 16 + 4];
    aad[..AAD_LABEL.len()].copy_from_slice(AAD_LABEL);
    aad[AAD_LABEL.len()..AAD_LABEL.len() + 16].copy_from_slice(&id.0);
    aad[AAD_LABEL.len() + 16..].copy_from_slice(&total.to_be_bytes());
    aad
}

/// Checks `index` of `total` and returns the allowed plaintext lengths:
/// exactly [`CHUNK_PLAIN`] for a non-last chunk, 1 to [`CHUNK_PLAIN`] for
/// the last.
fn chunk_place(index: u32, total: u32) -> Result<Range<usize>, FileError> {
    if total > max_chunk_count() {
        return Err(FileError::TooLarge);
    }
    if total == 0 || index >= total {
        return Err(FileError::BadIndex);
    }
    if index == total - 1 {
        Ok(1..CHUNK_PLAIN + 1)
    } else {
        Ok(CHUNK_PLAIN..CHUNK_PLAIN + 1)
    }
}

/// Seals chunk `index` (0-based) of `total`.
///
/// STREAM (age): the 12-byte AES-256-GCM nonce is an 11-byte big-endian
/// chunk counter followed by one byte, 0x01 for the last chunk
/// (`index == total-1`) and 0x00 otherwise. The AAD binds the file:
/// `"hush/v2/file-chunk" ‖ file id ‖ total (u32 BE)`. So chunks cannot be
/// reordered, truncated (a non-last chunk cannot pass as last), extended,
/// or swapped between files. Output is ciphertext ‖ 16-byte tag.
///
/// # Errors
/// [`FileError::BadIndex`] unless `index < total`; [`FileError::TooLarge`]
/// if `total` exceeds [`max_chunk_count`]; [`FileError::BadLength`] unless
/// `plain` is [`CHUNK_PLAIN`] bytes (1 to [`CHUNK_PLAIN`] for the last
/// chunk): build it with [`padded_chunk`].
pub fn seal_chunk(
    key: &FileKey,
    id: &FileId,
    index: u32,
    total: u32,
    plain: &[u8],
) -> Result<Vec<u8>, FileError> {
    if !chunk_place(index, total)?.contains(&plain.len()) {
        return Err(FileError::BadLength);
    }
    let aad = chunk_aad(id, total);
    key.cipher()
        .seal_at(chunk_nonce(index, index == total - 1), &aad, plain)
        .map_err(|_| FileError::Internal)
}

/// Opens chunk `index` of `total`; any tampering, wrong index/total/file/key
/// is an error.
///
/// # Errors
/// [`FileError::BadIndex`] / [`FileError::TooLarge`] as for [`seal_chunk`];
/// [`FileError::BadLength`] if `sealed` cannot be a chunk at that place;
/// [`FileError::Open`] for everything else (altered bytes, another key,
/// another file, another index or count, a non-last chunk presented as the
/// last or the last as a non-last).
pub fn open_chunk(
    key: &FileKey,
    id: &FileId,
    index: u32,
    total: u32,
    sealed: &[u8],
) -> Result<Vec<u8>, FileError> {
    let allowed = chunk_place(index, total)?;
    let Some(plain_len) = sealed.len().checked_sub(CHUNK_OVERHEAD) else {
        return Err(FileError::BadLength);
    };
    if !allowed.contains(&plain_len) {
        return Err(FileError::BadLength);
    }
    let aad = chunk_aad(id, total);
    key.cipher()
        .open_at(chunk_nonce(index, index == total - 1), &aad, sealed)
        .map_err(|_| FileError::Open)
}

// ─────────────────────────── chunk helpers ───────────────────────────

/// Byte range of the real file that chunk `index` carries, for a file of
/// `size` real bytes (empty range, at `size`, in the padding area).
#[must_use]
pub fn chunk_range(size: u64, index: u32) -> Range<u64> {
    let start = u64::from(index).saturating_mul(CHUNK_PLAIN as u64);
    let end = start.saturating_add(CHUNK_PLAIN as u64);
    start.min(size)..end.min(size)
}

/// The plaintext of chunk `index` for a file whose real bytes are
/// `data_chunk` (the slice of the real file for that chunk's range, see
/// [`chunk_range`]; possibly shorter or empty in the padding area): pads
/// with zeros to the chunk's plaintext length.
///
/// # Errors
/// [`FileError::TooLarge`] past [`MAX_FILE_BYTES`]; [`FileError::BadLength`]
/// if `padded_len` is not a length [`padded_len`] produces or `data_chunk`
/// is longer than the chunk; [`FileError::BadIndex`] past the last chunk.
pub fn padded_chunk(data_chunk: &[u8], padded_len: u64, index: u32) -> Result<Vec<u8>, FileError> {
    let len = plain_chunk_len(padded_len, index)?;
    if data_chunk.len() > len {
        return Err(FileError::BadLength);
    }
    let mut plain = Vec::with_capacity(len);
    plain.extend_from_slice(data_chunk);
    plain.resize(len, 0);
    Ok(plain)
}

/// After opening: the real bytes of an opened chunk (drops padding), and
/// checks that the padding bytes are all zero.
///
/// # Errors
/// [`FileError::BadPadding`] if a padding byte is not zero (a sender hiding
/// extra data); [`FileError::BadLength`] if `opened` is not exactly the
/// chunk's plaintext length for a file of `size` bytes;
/// [`FileError::TooLarge`] past [`MAX_FILE_BYTES`]; [`FileError::BadIndex`]
/// past the last chunk.
pub fn unpad_chunk(opened: &[u8], size: u64, index: u32) -> Result<&[u8], FileError> {
    if size > MAX_FILE_BYTES {
        return Err(FileError::TooLarge);
    }
    let len = plain_chunk_len(padded_len(size), index)?;
    if opened.len() != len {
        return Err(FileError::BadLength);
    }
    let range = chunk_range(size, index);
    let real = usize::try_from(range.end - range.start).map_err(|_| FileError::TooLarge)?;
    let (data, padding) = opened.split_at(real.min(opened.len()));
    if padding.iter().any(|&b| b != 0) {
        return Err(FileError::BadPadding);
    }
    Ok(data)
}

// ─────────────────────────── sealed digest ───────────────────────────

/// SHA-256 over a file's sealed chunks, in order, bound to the file id and
/// chunk count: the sender puts it into its signed room message, and a
/// receiver accepts the file only if the chunks it opened hash to it. That
/// stops another member of the room (who holds the file key too) from
/// replacing chunks at the relay.
#[derive(Clone)]
pub struct SealedDigest {
    transcript: crate::Transcript,
    next: u32,
    total: u32,
}

impl SealedDigest {
    /// A digest of file `id`, of `total` chunks.
    #[must_use]
    pub fn new(id: &FileId, total: u32) -> Self {
        let mut transcript = crate::Transcript::new(DIGEST_LABEL);
        transcript.absorb(&id.0);
        transcript.absorb(&total.to_be_bytes());
        Self {
            transcript,
            next: 0,
            total,
        }
    }

    /// Absorbs sealed chunk `index`, which must be the next one.
    ///
    /// # Errors
    /// [`FileError::BadIndex`] if chunks arrive out of order or past the
    /// last.
    pub fn absorb(&mut self, index: u32, sealed: &[u8]) -> Result<(), FileError> {
        if index != self.next || index >= self.total {
            return Err(FileError::BadIndex);
        }
        self.transcript.absorb(sealed);
        self.next += 1;
        Ok(())
    }

    /// The digest, once every chunk has been absorbed.
    #[must_use]
    pub fn finish(&self) -> Option<[u8; DIGEST_LEN]> {
        (self.next == self.total).then(|| self.transcript.finish())
    }

    /// Whether every chunk has been absorbed and they hash to `expected`
    /// (compared in constant time).
    #[must_use]
    pub fn matches(&self, expected: &[u8; DIGEST_LEN]) -> bool {
        self.finish().is_some_and(|d| bool::from(d.ct_eq(expected)))
    }
}

impl fmt::Debug for SealedDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SealedDigest")
            .field("next", &self.next)
            .field("total", &self.total)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// Seals a whole file the way a sender must: returns the chunks.
    fn seal_file(key: &FileKey, id: &FileId, data: &[u8]) -> Vec<Vec<u8>> {
        let size = data.len() as u64;
        let padded = padded_len(size);
        let total = chunk_count(padded);
        (0..total)
            .map(|i| {
                let r = chunk_range(size, i);
                let plain =
                    padded_chunk(&data[r.start as usize..r.end as usize], padded, i).unwrap();
                let sealed = seal_chunk(key, id, i, total, &plain).unwrap();
                assert_eq!(Some(sealed.len()), sealed_chunk_len(padded, i));
                sealed
            })
            .collect()
    }

    /// Opens a whole file the way a receiver must.
    fn open_file(
        key: &FileKey,
        id: &FileId,
        size: u64,
        chunks: &[Vec<u8>],
    ) -> Result<Vec<u8>, FileError> {
        let total = chunk_count(padded_len(size));
        if chunks.len() != total as usize {
            return Err(FileError::BadIndex);
        }
        let mut out = Vec::new();
        for (i, sealed) in (0..total).zip(chunks) {
            let opened = open_chunk(key, id, i, total, sealed)?;
            out.extend_from_slice(unpad_chunk(&opened, size, i)?);
        }
        Ok(out)
    }

    fn data(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 + 3) as u8).collect()
    }

    fn sealed_file(len: usize) -> (FileKey, FileId, Vec<Vec<u8>>) {
        let (key, id) = (FileKey::random(), FileId::random());
        let chunks = seal_file(&key, &id, &data(len));
        (key, id, chunks)
    }

    #[test]
    fn round_trips_every_size_class() {
        for len in [
            0,
            1,
            540,
            541,
            542,
            CHUNK_PLAIN - 1,
            CHUNK_PLAIN,
            CHUNK_PLAIN + 1,
            3 * CHUNK_PLAIN + 5,
            (1 << 20) + 3,
        ] {
            let (key, id) = (FileKey::random(), FileId::random());
            let original = data(len);
            let chunks = seal_file(&key, &id, &original);
            assert_eq!(
                chunks.len() as u32,
                chunk_count(padded_len(len as u64)),
                "{len}"
            );
            let opened = open_file(&key, &id, len as u64, &chunks).unwrap();
            assert_eq!(opened, original, "{len}");
        }
    }

    #[test]
    fn buckets_are_exact_powers_of_1_05() {
        let table = buckets();
        // One bucket per k = 129..=909: floor(1.05^129) = 541 is the first
        // at least 541, floor(1.05^909) the last that fits a u64.
        assert_eq!(table.len(), 909 - 129 + 1);
        assert!(table.windows(2).all(|w| w[0] < w[1]));
        // Exact values, from arbitrary-precision 21^k // 20^k.
        for (k, exact) in [
            (129, 541),
            (130, 568),
            (200, 17_292),
            (300, 2_273_996),
            (454, 4_168_135_010),
            (455, 4_376_541_760),
            (629, 21_284_777_516_806), // f64 powi says ...807
            (700, 680_000_683_062_860),
            (909, 18_242_016_935_203_915_529),
        ] {
            assert_eq!(table[k - 129], exact, "k = {k}");
        }
        // Independent check against f64 wherever its error (about
        // k ulps) cannot reach an integer boundary.
        let mut checked = 0;
        for (k, &b) in (129..).zip(table) {
            let x = 1.05f64.powi(k);
            let margin = x * 1e-12;
            let frac = x - x.floor();
            if frac > margin && frac < 1.0 - margin {
                assert_eq!(b, x.floor() as u64, "k = {k}");
                checked += 1;
            }
            if x > 1e15 {
                break;
            }
        }
        assert!(checked > 350, "{checked}");
        // The whole table, against arbitrary-precision arithmetic:
        // sha256(b"".join((21**k // 20**k).to_bytes(8, "big")
        //                  for k in range(129, 910))).
        let bytes: Vec<u8> = table.iter().flat_map(|b| b.to_be_bytes()).collect();
        let hex: String = crate::sha256(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(
            hex,
            "f1797915596a038464d49839d8baee54d76decf04c3b9aa00c3b956af51f97ef"
        );
    }

    #[test]
    fn padded_len_floor_and_bounds() {
        for len in 0..=541 {
            assert_eq!(padded_len(len), 541, "{len}");
        }
        assert_eq!(padded_len(542), 568); // floor(1.05^130) = 568
        let mut prev = 0;
        let mut len = 0u64;
        while len <= MAX_FILE_BYTES + (1 << 20) {
            let p = padded_len(len);
            assert!(p >= len, "{len}");
            assert!(p >= prev, "not monotonic at {len}");
            if len >= 1000 {
                assert!(p as f64 <= 1.06 * len as f64, "{len} -> {p}");
            }
            prev = p;
            len = len * 17 / 16 + 1 + (len % 7);
        }
        assert_eq!(padded_len(u64::MAX), u64::MAX);
        assert_eq!(padded_len(u64::MAX - 1), u64::MAX);
        assert!(chunk_count(padded_len(MAX_FILE_BYTES)) < u32::MAX);
    }

    #[test]
    fn padded_len_is_stable_within_a_bucket() {
        let table = buckets();
        for w in table.windows(2).take_while(|w| w[0] <= 2 * MAX_FILE_BYTES) {
            let (lo, hi) = (w[0], w[1]);
            // Every length in (lo, hi] pads to hi; lo pads to itself.
            assert_eq!(padded_len(lo), lo);
            assert_eq!(padded_len(hi), hi);
            for len in [lo + 1, lo + (hi - lo) / 2 + 1, hi - 1] {
                if len > lo && len <= hi {
                    assert_eq!(padded_len(len), hi, "{len} in ({lo}, {hi}]");
                }
            }
        }
        // Exhaustive over small lengths.
        let mut prev = 0;
        for len in 0..200_000u64 {
            let p = padded_len(len);
            assert!(p >= len && p >= prev);
            if p != prev {
                assert!(table.binary_search(&p).is_ok());
            }
            prev = p;
        }
    }

    #[test]
    fn chunk_geometry() {
        assert_eq!(chunk_count(0), 1);
        assert_eq!(chunk_count(541), 1);
        assert_eq!(chunk_count(CHUNK_PLAIN as u64), 1);
        assert_eq!(chunk_count(CHUNK_PLAIN as u64 + 1), 2);
        assert_eq!(chunk_count(u64::MAX), u32::MAX);
        let p = padded_len(3 * CHUNK_PLAIN as u64 + 5);
        let total = chunk_count(p);
        assert_eq!(total, 4);
        assert_eq!(sealed_chunk_len(p, 0), Some(CHUNK_PLAIN + CHUNK_OVERHEAD));
        let last = (p - 3 * CHUNK_PLAIN as u64) as usize;
        assert_eq!(sealed_chunk_len(p, 3), Some(last + CHUNK_OVERHEAD));
        assert_eq!(sealed_chunk_len(p, 4), None);
        assert_eq!(sealed_chunk_len(p + 1, 0), None, "not a bucket");
        assert_eq!(sealed_chunk_len(u64::MAX, 0), None);
        assert_eq!(chunk_range(10, 0), 0..10);
        assert_eq!(chunk_range(10, 1), 10..10);
        let c = CHUNK_PLAIN as u64;
        assert_eq!(chunk_range(c + 1, 1), c..c + 1);
        let start = u64::from(u32::MAX) * c;
        assert_eq!(chunk_range(u64::MAX, u32::MAX), start..start + c);
        assert_eq!(padded_len(MAX_FILE_BYTES), 4_376_541_760);
        assert_eq!(max_chunk_count(), 133_562);
    }

    #[test]
    fn flipped_bit_fails() {
        let (key, id, chunks) = sealed_file(2 * CHUNK_PLAIN);
        let total = chunks.len() as u32;
        for i in 0..total {
            let sealed = &chunks[i as usize];
            for pos in [0, sealed.len() / 2, sealed.len() - 1] {
                let mut bad = sealed.clone();
                bad[pos] ^= 0x01;
                assert_eq!(open_chunk(&key, &id, i, total, &bad), Err(FileError::Open));
            }
        }
    }

    #[test]
    fn reordered_chunks_fail() {
        let (key, id, chunks) = sealed_file(4 * CHUNK_PLAIN + 100);
        let total = chunks.len() as u32;
        for i in 0..total {
            for j in 0..total {
                let r = open_chunk(&key, &id, j, total, &chunks[i as usize]);
                if i == j {
                    assert!(r.is_ok());
                } else {
                    assert!(r.is_err(), "chunk {i} opened as {j}");
                }
            }
        }
        // Two equal-length chunks swapped: lengths match, AES-GCM refuses.
        let mut swapped = chunks.clone();
        swapped.swap(0, 1);
        assert_eq!(
            open_file(&key, &id, 4 * CHUNK_PLAIN as u64 + 100, &swapped),
            Err(FileError::Open)
        );
    }

    #[test]
    fn truncation_fails() {
        let size = 3 * CHUNK_PLAIN;
        let (key, id, chunks) = sealed_file(size);
        let total = chunks.len() as u32;
        assert!(total >= 3);
        // Drop the last chunk and present chunk total-2 as the last of a
        // file of total-1 chunks: the final flag and the count both differ.
        let short = total - 1;
        assert_eq!(
            open_chunk(&key, &id, short - 1, short, &chunks[short as usize - 1]),
            Err(FileError::Open)
        );
        // Even with the right count, a non-last chunk is not the last.
        for i in 0..total - 1 {
            assert!(open_chunk(&key, &id, i, i + 1, &chunks[i as usize]).is_err());
        }
        // A truncated chunk does not open either.
        let last = chunks.last().unwrap();
        assert!(open_chunk(&key, &id, total - 1, total, &last[..last.len() - 1]).is_err());
    }

    #[test]
    fn extension_fails() {
        let (key, id, chunks) = sealed_file(2 * CHUNK_PLAIN + 9);
        let total = chunks.len() as u32;
        // Every chunk presented as part of a file one chunk longer.
        for i in 0..total {
            assert!(open_chunk(&key, &id, i, total + 1, &chunks[i as usize]).is_err());
        }
        // A chunk appended past the end.
        assert_eq!(
            open_chunk(&key, &id, total, total, &chunks[0]),
            Err(FileError::BadIndex)
        );
        // A chunk appended past the end of a file announced one longer:
        // any chunk of this file at index `total` of `total + 1` fails.
        for c in &chunks {
            assert!(open_chunk(&key, &id, total, total + 1, c).is_err());
        }
        // The real last chunk presented as a non-last one.
        let last = chunks.last().unwrap();
        assert!(open_chunk(&key, &id, total - 1, total + 1, last).is_err());
        // A full-length last chunk passes the length check as a non-last
        // one, so the final flag and the count must refuse it.
        let full = vec![5u8; CHUNK_PLAIN];
        let sealed_last = seal_chunk(&key, &id, 1, 2, &full).unwrap();
        assert_eq!(
            open_chunk(&key, &id, 1, 3, &sealed_last),
            Err(FileError::Open)
        );
        let sealed_mid = seal_chunk(&key, &id, 1, 3, &full).unwrap();
        assert_eq!(
            open_chunk(&key, &id, 1, 2, &sealed_mid),
            Err(FileError::Open)
        );
    }

    #[test]
    fn wrong_total_fails() {
        let (key, id, chunks) = sealed_file(3 * CHUNK_PLAIN + 5);
        let total = chunks.len() as u32;
        for other in [1, total - 1, total + 1, total + 100, max_chunk_count()] {
            for i in 0..total.min(other) {
                assert!(open_chunk(&key, &id, i, other, &chunks[i as usize]).is_err());
            }
        }
        assert_eq!(
            open_chunk(&key, &id, 0, 0, &chunks[0]),
            Err(FileError::BadIndex)
        );
        assert_eq!(
            open_chunk(&key, &id, 0, max_chunk_count() + 1, &chunks[0]),
            Err(FileError::TooLarge)
        );
    }

    #[test]
    fn chunks_of_another_file_or_key_fail() {
        let size = 2 * CHUNK_PLAIN + 1;
        let original = data(size);
        let key = FileKey::random();
        let (id_a, id_b) = (FileId::random(), FileId::random());
        let a = seal_file(&key, &id_a, &original);
        // Same key (a misuse, but the id still separates them), other id.
        let b = seal_file(&key, &id_b, &original);
        let total = a.len() as u32;
        for i in 0..total {
            let i_ = i as usize;
            assert_eq!(
                open_chunk(&key, &id_b, i, total, &a[i_]),
                Err(FileError::Open)
            );
            assert_eq!(
                open_chunk(&key, &id_a, i, total, &b[i_]),
                Err(FileError::Open)
            );
            let other_key = FileKey::random();
            assert_eq!(
                open_chunk(&other_key, &id_a, i, total, &a[i_]),
                Err(FileError::Open)
            );
        }
        // Replaying chunk 1 of another file (same size, other key and id)
        // into this one.
        let (key_c, id_c, c) = sealed_file(size);
        let mut mixed = a.clone();
        mixed[1] = c[1].clone();
        assert_eq!(
            open_file(&key, &id_a, size as u64, &mixed),
            Err(FileError::Open)
        );
        assert!(open_file(&key_c, &id_c, size as u64, &c).is_ok());
    }

    #[test]
    fn nonzero_padding_is_refused() {
        let size = 1000u64;
        let (key, id) = (FileKey::random(), FileId::random());
        let padded = padded_len(size);
        let mut plain = padded_chunk(&data(size as usize), padded, 0).unwrap();
        *plain.last_mut().unwrap() = 1;
        let sealed = seal_chunk(&key, &id, 0, 1, &plain).unwrap();
        let opened = open_chunk(&key, &id, 0, 1, &sealed).unwrap();
        assert_eq!(unpad_chunk(&opened, size, 0), Err(FileError::BadPadding));
        // A chunk entirely in the padding area.
        let size = 2 * CHUNK_PLAIN as u64;
        let padded = padded_len(size);
        let total = chunk_count(padded);
        assert!(chunk_range(size, total - 1).is_empty());
        let mut plain = padded_chunk(&[], padded, total - 1).unwrap();
        plain[0] = 0x80;
        assert_eq!(
            unpad_chunk(&plain, size, total - 1),
            Err(FileError::BadPadding)
        );
        plain[0] = 0;
        let real = chunk_range(size, total - 1);
        assert_eq!(
            unpad_chunk(&plain, size, total - 1).unwrap().len() as u64,
            real.end - real.start
        );
        // An opened chunk of the wrong length for the announced size.
        assert_eq!(
            unpad_chunk(&plain[1..], size, total - 1),
            Err(FileError::BadLength)
        );
        assert_eq!(unpad_chunk(&plain, size, total), Err(FileError::BadIndex));
        assert_eq!(
            unpad_chunk(&plain, MAX_FILE_BYTES + 1, 0),
            Err(FileError::TooLarge)
        );
    }

    #[test]
    fn lengths_are_checked() {
        let (key, id) = (FileKey::random(), FileId::random());
        let full = vec![0u8; CHUNK_PLAIN];
        assert!(seal_chunk(&key, &id, 0, 2, &full).is_ok());
        assert_eq!(
            seal_chunk(&key, &id, 0, 2, &full[1..]),
            Err(FileError::BadLength)
        );
        assert_eq!(seal_chunk(&key, &id, 1, 2, &[]), Err(FileError::BadLength));
        assert_eq!(
            seal_chunk(&key, &id, 1, 2, &[0; CHUNK_PLAIN + 1]),
            Err(FileError::BadLength)
        );
        assert_eq!(seal_chunk(&key, &id, 2, 2, &full), Err(FileError::BadIndex));
        assert_eq!(seal_chunk(&key, &id, 0, 0, &full), Err(FileError::BadIndex));
        assert_eq!(
            seal_chunk(&key, &id, 0, u32::MAX, &full),
            Err(FileError::TooLarge)
        );
        for n in [0, 1, CHUNK_OVERHEAD] {
            assert_eq!(
                open_chunk(&key, &id, 0, 1, &vec![0; n]),
                Err(FileError::BadLength)
            );
        }
        assert_eq!(
            open_chunk(&key, &id, 0, 2, &[0; CHUNK_PLAIN + CHUNK_OVERHEAD - 1]),
            Err(FileError::BadLength)
        );
        assert_eq!(padded_chunk(&[0; 542], 541, 0), Err(FileError::BadLength));
        assert_eq!(padded_chunk(&[], 542, 0), Err(FileError::BadLength));
        assert_eq!(padded_chunk(&[], 541, 1), Err(FileError::BadIndex));
        assert_eq!(
            padded_chunk(&[], padded_len(MAX_FILE_BYTES + (1 << 30)), 0),
            Err(FileError::TooLarge)
        );
        assert_eq!(padded_chunk(&[7], 541, 0).unwrap().len(), 541);
    }

    #[test]
    fn nonces_never_repeat_across_indices() {
        let (key, id) = (FileKey::random(), FileId::random());
        let total = 6;
        let plain = vec![0x42u8; CHUNK_PLAIN];
        let mut seen = std::collections::HashSet::new();
        for i in 0..total {
            let sealed = seal_chunk(&key, &id, i, total, &plain).unwrap();
            // Equal plaintexts, distinct keystreams and tags.
            assert!(
                seen.insert(sealed[..32].to_vec()),
                "keystream repeated at {i}"
            );
            assert!(seen.insert(sealed[sealed.len() - 16..].to_vec()));
        }
        // The last flag alone changes the nonce: chunk 0 of 1 vs of 2.
        let a = seal_chunk(&key, &id, 0, 1, &plain).unwrap();
        let b = seal_chunk(&key, &id, 0, 2, &plain).unwrap();
        assert_ne!(a[..CHUNK_PLAIN], b[..CHUNK_PLAIN]);
        assert_eq!(
            chunk_nonce(5, false)[..],
            [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5, 0][..]
        );
        assert_eq!(
            chunk_nonce(0x0102_0304, true)[..],
            [0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4, 1][..]
        );
    }

    #[test]
    fn file_id_hex_round_trip() {
        for _ in 0..20 {
            let id = FileId::random();
            let hex = id.to_hex();
            assert_eq!(hex.len(), 32);
            assert!(
                hex.bytes()
                    .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
            );
            assert_eq!(FileId::from_hex(&hex), Some(id));
            assert_eq!(FileId::from_hex(&hex.to_uppercase()), Some(id));
        }
        let id = FileId([
            0x00, 0x01, 0xab, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10, 0x9f,
        ]);
        assert_eq!(id.to_hex(), "0001abff00000000000000000000109f");
        assert_ne!(FileId::random(), FileId::random());
    }

    #[test]
    fn file_id_rejects_bad_hex() {
        let good = "0001abff00000000000000000000109f";
        for bad in [
            "",
            &good[..31],
            &good[..30],
            &format!("{good}0"),
            &format!("{good}00"),
            "0001abff00000000000000000000109g",
            "+001abff00000000000000000000109f",
            " 001abff00000000000000000000109f",
            "0001abff0000000000000000000010\u{e9}",
            "0x01abff00000000000000000000109f",
        ] {
            assert_eq!(FileId::from_hex(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn file_key_debug_hides_the_key() {
        let key = FileKey::from_bytes([0xab; 32]);
        let shown = format!("{key:?}");
        assert!(!shown.contains("ab") && !shown.contains("171"), "{shown}");
        assert_eq!(key.to_bytes(), [0xab; 32]);
        assert_eq!(FileKey::from_bytes(key.to_bytes()), key);
        assert_ne!(FileKey::random(), FileKey::random());
    }

    #[test]
    fn sealed_digest_binds_the_chunks() {
        let (_, id, chunks) = sealed_file(2 * CHUNK_PLAIN + 1);
        let total = chunks.len() as u32;
        let digest_of = |id: &FileId, total: u32, chunks: &[Vec<u8>]| {
            let mut d = SealedDigest::new(id, total);
            for (i, c) in (0..).zip(chunks) {
                d.absorb(i, c).unwrap();
            }
            d
        };
        let d = digest_of(&id, total, &chunks);
        let expected = d.finish().unwrap();
        assert!(d.matches(&expected));
        // A replaced chunk, another id, another count: another digest.
        let mut replaced = chunks.clone();
        replaced[1][0] ^= 1;
        assert!(!digest_of(&id, total, &replaced).matches(&expected));
        assert!(!digest_of(&FileId::random(), total, &chunks).matches(&expected));
        // Incomplete, out of order, or past the end.
        let mut partial = SealedDigest::new(&id, total);
        partial.absorb(0, &chunks[0]).unwrap();
        assert_eq!(partial.finish(), None);
        assert!(!partial.matches(&expected));
        assert_eq!(partial.absorb(2, &chunks[2]), Err(FileError::BadIndex));
        let mut full = digest_of(&id, total, &chunks);
        assert_eq!(full.absorb(total, &chunks[0]), Err(FileError::BadIndex));
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(32))]

            /// Any size round-trips, and flipping any one bit of any one
            /// sealed chunk makes the file fail to open.
            #[test]
            fn any_size_round_trips_and_any_flip_fails(
                len in 0usize..(3 * CHUNK_PLAIN + 700),
                which in any::<prop::sample::Index>(),
                pos in any::<prop::sample::Index>(),
                bit in 0u8..8,
            ) {
                let (key, id) = (FileKey::random(), FileId::random());
                let original = data(len);
                let chunks = seal_file(&key, &id, &original);
                prop_assert_eq!(&open_file(&key, &id, len as u64, &chunks).unwrap(), &original);
                let mut bad = chunks.clone();
                let c = which.index(bad.len());
                let p = pos.index(bad[c].len());
                bad[c][p] ^= 1 << bit;
                prop_assert_eq!(open_file(&key, &id, len as u64, &bad), Err(FileError::Open));
            }

            /// padded_len is monotonic, never shrinks, adds at most 5%
            /// above the floor, and is idempotent (a bucket pads to itself).
            #[test]
            fn padded_len_properties(a in 0u64..=MAX_FILE_BYTES, b in 0u64..=MAX_FILE_BYTES) {
                let (lo, hi) = (a.min(b), a.max(b));
                let (pl, ph) = (padded_len(lo), padded_len(hi));
                prop_assert!(pl <= ph && pl >= lo && ph >= hi);
                prop_assert_eq!(padded_len(pl), pl);
                if hi > MIN_PADDED_LEN {
                    prop_assert!(u128::from(ph) * 100 <= u128::from(hi) * 105);
                }
            }
        }
    }
}
