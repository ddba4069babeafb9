//! Finding idle links: one relay-wide sweep instead of a timer per
//! connection.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use hush_proto::msg::encode;
use hush_proto::{CloseReason, RelayMsg};
use tokio::sync::watch;

use crate::hub::{Outbound, Outbox, Stop};

/// Every established connection, for the keepalive sweep: one task walks
/// them every sixth of the idle timeout, pings each link that has been
/// quiet for a third of it, and closes each that has been quiet for all
/// of it (`Closing{Idle}`). So a quiet link is pinged after a third to a
/// half of the idle timeout, and a silent one is closed within a sixth of
/// it after the timeout. A timer per connection would cost every quiet
/// connection a timer entry and its task a wakeup every few seconds.
pub(crate) struct Keepalive {
    /// The keepalive clock's zero.
    started: std::time::Instant,
    idle_ms: u64,
    live: Mutex<HashMap<crate::hub::ConnId, Arc<Outbox>>>,
}

impl Keepalive {
    pub(crate) fn new(idle_timeout: Duration) -> Self {
        Self {
            started: std::time::Instant::now(),
            idle_ms: u64::try_from(idle_timeout.as_millis()).unwrap_or(u64::MAX),
            live: Mutex::new(HashMap::new()),
        }
    }

    /// Milliseconds on the keepalive clock.
    pub(crate) fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    pub(crate) fn register(&self, id: crate::hub::ConnId, outbox: Arc<Outbox>) {
        outbox.heard(self.now_ms());
        self.lock().insert(id, outbox);
    }

    pub(crate) fn unregister(&self, id: crate::hub::ConnId) {
        let mut live = self.lock();
        live.remove(&id);
        // Give back the table's memory after a crowd has left.
        if live.capacity() > 64 && live.len() < live.capacity() / 4 {
            live.shrink_to_fit();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<crate::hub::ConnId, Arc<Outbox>>> {
        self.live.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// How often [`Self::sweep`] runs.
    pub(crate) fn sweep_every(&self) -> Duration {
        Duration::from_millis((self.idle_ms / 6).max(10))
    }

    /// One pass over every connection; `nonce` goes into the pings.
    pub(crate) fn sweep(&self, nonce: u64) {
        self.sweep_at(self.now_ms(), nonce);
    }

    fn sweep_at(&self, now: u64, nonce: u64) {
        let ping: Outbound = encode(&RelayMsg::Ping { nonce }).into();
        for outbox in self.lock().values() {
            let quiet = now.saturating_sub(outbox.last_heard());
            if quiet >= self.idle_ms {
                outbox.stop(Stop::Tell(CloseReason::Idle));
            } else if quiet >= self.idle_ms / 3 {
                outbox.deliver(ping.clone());
            }
        }
    }
}

/// Runs the keepalive sweep until the relay shuts down.
pub(crate) async fn keepalive_sweep(
    keepalive: Arc<Keepalive>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(keepalive.sweep_every());
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut nonce = 0u64;
    loop {
        tokio::select! {
            _ = tick.tick() => {
                nonce += 1;
                keepalive.sweep(nonce);
            }
            _ = shutdown.changed() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sweep_pings_quiet_links_and_closes_silent_ones() {
        let keepalive = Keepalive::new(Duration::from_millis(900));
        let outbox = Arc::new(Outbox::new(16, 1 << 20));
        keepalive.register(7, outbox.clone());
        let heard = outbox.last_heard();
        keepalive.sweep_at(heard + 299, 1);
        assert!(
            outbox.is_empty(),
            "not quiet for a third of the timeout yet"
        );
        keepalive.sweep_at(heard + 300, 2);
        assert!(!outbox.is_empty(), "pinged");
        // The client answered: heard again, so the next sweep lets it be.
        outbox.heard(heard + 400);
        keepalive.sweep_at(heard + 1299, 3);
        let stop = stop_of(&outbox);
        assert_eq!(stop, None);
        keepalive.sweep_at(heard + 1300, 4);
        assert_eq!(stop_of(&outbox), Some(Stop::Tell(CloseReason::Idle)));
        keepalive.unregister(7);
        keepalive.sweep_at(heard + 99_999, 5);
    }

    /// The outbox's stop reason, if it was asked to stop.
    fn stop_of(outbox: &Outbox) -> Option<Stop> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .ok()?;
        rt.block_on(async {
            tokio::time::timeout(Duration::from_millis(1), outbox.stopped())
                .await
                .ok()
        })
    }
}
