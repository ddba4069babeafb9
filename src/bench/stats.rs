//! Counting and summarising what the bench members measured: the shared
//! [`Tally`], latency clocks and the percentiles and medians the result
//! tables print. No workload logic; every bench file may use it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// What the members measured.
#[derive(Default)]
pub(crate) struct Tally {
    pub(crate) published: AtomicU64,
    pub(crate) deliveries: AtomicU64,
    pub(crate) bytes: AtomicU64,
}

impl Tally {
    /// Once publishing has stopped, lets the last deliveries arrive: waits
    /// (up to 10 s) until every published event reached all `members`, or
    /// deliveries stop growing.
    pub(crate) async fn drain(&self, members: usize) {
        let drain_until = Instant::now() + Duration::from_secs(10);
        let mut last = 0;
        while Instant::now() < drain_until {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let now = self.deliveries.load(Ordering::Relaxed);
            let want = self.published.load(Ordering::Relaxed) * members as u64;
            if now >= want || (now == last && now > 0) {
                break;
            }
            last = now;
        }
    }
}

/// Nanoseconds since `t0`: the send time a bench body carries.
pub(crate) fn ns_since(t0: Instant) -> u64 {
    u64::try_from(t0.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// Microseconds from `sent_ns` (a [`ns_since`] reading) to now.
pub(crate) fn latency_us(t0: Instant, sent_ns: u64) -> u64 {
    ns_since(t0).saturating_sub(sent_ns) / 1000
}

/// The `p` percentile (0.0..=1.0) of sorted microseconds, in milliseconds.
pub(crate) fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i.min(sorted.len() - 1)] as f64 / 1000.0
}

/// A duration in milliseconds.
pub(crate) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The median of `v` (the upper one of an even count; zero if empty).
pub(crate) fn median(v: &[Duration]) -> Duration {
    let mut v = v.to_vec();
    v.sort_unstable();
    v.get(v.len() / 2).copied().unwrap_or_default()
}
