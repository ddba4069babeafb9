//! # hush-wipe: heap cells that are zeroed when dropped
//!
//! Audit L7 asks that every AES-GCM key schedule in hush be wiped when the
//! key is dropped. RustCrypto's types implement `ZeroizeOnDrop`; `ring`'s
//! `LessSafeKey`, which hush-crypto uses because it seals 2.6–2.7× as fast
//! on this CPU kind (docs/PERFORMANCE.md), holds its round keys and GHASH
//! table inline and has no `Drop` at all. [`Wiped`] closes that gap:
//!
//! ```text
//!   Wiped::new(value) ──▶ Box<MaybeUninit<T>>   (one heap copy, never moved)
//!   wiped.get()       ──▶ &T                    (while it lives)
//!   drop(wiped)       ──▶ T's own drop, then every byte of the box set to 0
//!                         with volatile writes (zeroize), then the box freed
//! ```
//!
//! What it does not do: wipe what `T` itself owns on the heap (use it for
//! flat values such as key schedules), or wipe copies the compiler left on
//! the stack while the value was built, which no Rust wrapper can reach
//! (the same holds for `ZeroizeOnDrop` types). The whole workspace forbids
//! `unsafe` except this crate, where it is denied but for the two blocks
//! below.

use std::mem::MaybeUninit;

use zeroize::Zeroize;

/// A value on the heap whose bytes are zeroed when it is dropped.
pub struct Wiped<T> {
    // Initialised from `new` until `drop`, which drops it in place and
    // then zeroes it; nothing else touches it.
    cell: Box<MaybeUninit<T>>,
}

impl<T> Wiped<T> {
    /// Moves `value` into a fresh heap cell.
    #[must_use]
    pub fn new(value: T) -> Self {
        Self {
            cell: Box::new(MaybeUninit::new(value)),
        }
    }

    /// The value.
    #[must_use]
    pub fn get(&self) -> &T {
        #[allow(unsafe_code)]
        // SAFETY: `cell` is initialised in `new` and stays initialised
        // until `drop`, after which no `&self` can exist.
        unsafe {
            self.cell.assume_init_ref()
        }
    }

    /// Drops the value in place and zeroes its bytes. Only `drop` calls
    /// it, once; the cell is uninitialised (all zeros) afterwards.
    fn wipe(&mut self) {
        #[allow(unsafe_code)]
        // SAFETY: the cell is initialised (see `get`), and this is the one
        // place it is dropped: `wipe` runs once, from `Drop::drop`, and
        // nothing reads the cell as a `T` after it.
        unsafe {
            self.cell.assume_init_drop();
        }
        // `MaybeUninit<T>: Zeroize` writes zeros over all its bytes with
        // volatile writes and a compiler fence, in safe code.
        self.cell.zeroize();
    }
}

impl<T> Drop for Wiped<T> {
    fn drop(&mut self) {
        self.wipe();
    }
}

/// Marker: dropping a `Wiped` zeroes it.
impl<T> zeroize::ZeroizeOnDrop for Wiped<T> {}

impl<T> core::fmt::Debug for Wiped<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Wiped(<redacted>)")
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn the_value_is_readable_while_it_lives() {
        let w = Wiped::new([7u8; 48]);
        assert_eq!(w.get(), &[7u8; 48]);
    }

    #[test]
    fn wiping_runs_the_values_drop_once_and_leaves_only_zeros() {
        static DROPS: AtomicUsize = AtomicUsize::new(0);
        struct Schedule([u64; 30]);
        impl Drop for Schedule {
            fn drop(&mut self) {
                DROPS.fetch_add(1, Ordering::SeqCst);
            }
        }
        let mut w = Wiped::new(Schedule([0x5a5a_5a5a_5a5a_5a5a; 30]));
        assert_eq!(w.get().0[29], 0x5a5a_5a5a_5a5a_5a5a);
        w.wipe();
        assert_eq!(DROPS.load(Ordering::SeqCst), 1);
        // After `wipe` every byte of the cell is an initialised zero, so it
        // may be read as bytes (a test-only view; the product never reads
        // a wiped cell).
        let size = std::mem::size_of::<Schedule>();
        let bytes: Vec<u8> = (0..size)
            .map(|i| {
                #[allow(unsafe_code)]
                // SAFETY: `i < size`, inside the cell, and every byte was
                // just written (zeroize writes each one).
                unsafe {
                    w.cell.as_ptr().cast::<u8>().add(i).read_volatile()
                }
            })
            .collect();
        assert!(bytes.iter().all(|b| *b == 0), "{bytes:?}");
        // Dropping `w` now would drop the schedule a second time: forget
        // the box instead (its bytes are zeros; nothing is leaked but 240
        // bytes of test memory).
        std::mem::forget(w);
        assert_eq!(DROPS.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn dropping_runs_the_values_drop_exactly_once() {
        static DROPS: AtomicUsize = AtomicUsize::new(0);
        struct Counted;
        impl Drop for Counted {
            fn drop(&mut self) {
                DROPS.fetch_add(1, Ordering::SeqCst);
            }
        }
        drop(Wiped::new(Counted));
        assert_eq!(DROPS.load(Ordering::SeqCst), 1);
    }
}
