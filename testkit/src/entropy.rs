//! Random generators to hand a [`Room`](hush_room::Room), which has none
//! of its own: the OS generator, as the client uses, and a seeded one
//! whose every byte a test can predict.

use hush_room::Entropy;

/// The OS generator, as `hush client` uses it: every member drawn this
/// way gets its own session salt and epoch keys.
pub fn os() -> Entropy {
    Entropy::from_fn(hush_crypto::random_bytes)
}

/// A deterministic stream for `seed`: block `i` is
/// SHA-256(seed ‖ i as 8 bytes big-endian), and each fill takes the next
/// bytes of the stream. Two rooms given the same seed draw the same
/// secrets: give members that must differ different seeds.
pub fn seeded(seed: &[u8]) -> Entropy {
    let mut stream = SeededStream {
        seed: seed.to_vec(),
        block: 0,
        buffered: Vec::new(),
    };
    Entropy::from_fn(move |buf| stream.fill(buf))
}

/// The bytes [`seeded`] gives for `seed`, from the start: its first `n`.
pub fn seeded_bytes(seed: &[u8], n: usize) -> Vec<u8> {
    let mut stream = SeededStream {
        seed: seed.to_vec(),
        block: 0,
        buffered: Vec::new(),
    };
    let mut out = vec![0; n];
    stream.fill(&mut out);
    out
}

struct SeededStream {
    seed: Vec<u8>,
    block: u64,
    /// Unread bytes of the last block.
    buffered: Vec<u8>,
}

impl SeededStream {
    fn fill(&mut self, buf: &mut [u8]) {
        for byte in buf.iter_mut() {
            if self.buffered.is_empty() {
                let mut input = self.seed.clone();
                input.extend_from_slice(&self.block.to_be_bytes());
                self.block += 1;
                self.buffered = hush_crypto::sha256(&input).to_vec();
                self.buffered.reverse();
            }
            *byte = self.buffered.pop().expect("a refilled block");
        }
    }
}
