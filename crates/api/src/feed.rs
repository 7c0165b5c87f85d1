//! Live stock for every open storefront, at one Redis read per tick per replica.
//!
//! A background task reads the stock every [`TICK`] into a `watch` channel;
//! purchases answered by this replica report the stock they left at once.
//! Each `GET /api/sale/events` stream watches the channel (no Redis call of
//! its own) and emits a `status` event only when what it would show changed,
//! checking the phase each second so countdowns turn active on time.
//!
//! A replica serves at most `SSE_MAX_CLIENTS` streams at once: each holds a
//! connection, a file descriptor and a few KB, and past the cap a page is
//! better served polling `/api/sale/status` than by a replica out of either.

use std::{
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use actix_web_lab::sse;
use chrono::Utc;
use futures::Stream;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::{inventory::Inventory, sale::Sale, status::SaleStatus};

/// How often a replica reads the stock for its open pages.
pub const TICK: Duration = Duration::from_millis(250);

/// How often a stream re-checks the phase without a stock change.
const PHASE_CHECK: Duration = Duration::from_secs(1);

/// What the feed knows: the stock, and how far Redis's clock is ahead of
/// this replica's (phases are judged on Redis's clock).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Known {
    stock: u64,
    clock_offset: chrono::Duration,
}

#[derive(Clone)]
pub struct SaleFeed {
    stock: Arc<watch::Sender<Option<Known>>>,
    /// Streams open on this replica (every app has its own count; the
    /// `flash_sale_sse_clients` gauge is the process's).
    open: Arc<AtomicUsize>,
    max_clients: Option<usize>,
}

impl SaleFeed {
    /// A feed serving at most `max_clients` streams at once (`None`: no cap).
    pub fn new(max_clients: Option<usize>) -> Self {
        Self {
            stock: Arc::new(watch::channel(None).0),
            open: Arc::default(),
            max_clients,
        }
    }

    /// Records the stock a purchase left; open streams wake only if it changed.
    pub fn observe(&self, stock: u64) {
        self.stock.send_if_modified(|current| {
            let clock_offset = current.map_or(chrono::Duration::zero(), |k| k.clock_offset);
            let next = Some(Known {
                stock,
                clock_offset,
            });
            let changed = current.map(|k| k.stock) != Some(stock);
            *current = next;
            changed
        });
    }

    /// Records a reading of stock and Redis's clock.
    pub fn observe_reading(&self, stock: u64, redis_now: chrono::DateTime<Utc>) {
        let clock_offset = redis_now - crate::clock::now();
        self.stock.send_if_modified(|current| {
            let changed = current.map(|k| k.stock) != Some(stock);
            *current = Some(Known {
                stock,
                clock_offset,
            });
            changed
        });
    }

    /// Now on Redis's clock, as best this replica knows it.
    pub fn redis_now(&self) -> chrono::DateTime<Utc> {
        let offset = self
            .stock
            .borrow()
            .map_or(chrono::Duration::zero(), |k| k.clock_offset);
        crate::clock::now() + offset
    }

    /// Reads the stock every [`TICK`] for as long as the process runs.
    pub fn spawn_reader(&self, inventory: Inventory, total: u64) {
        let feed = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(TICK);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                // Nobody watching: no Redis read.
                if feed.stock.receiver_count() == 0 {
                    continue;
                }
                if let Ok(reading) = inventory.reading().await {
                    if let Some(stock) = reading.stock {
                        feed.observe_reading(
                            u64::try_from(stock).unwrap_or(0).min(total),
                            reading.now,
                        );
                    }
                }
            }
        });
    }

    /// The event stream of one open page, or `None` (counted in
    /// `flash_sale_sse_refused_total`) when this replica has all the streams
    /// its cap allows. It ends when `shutdown` fires, so open pages never
    /// hold up a graceful stop (browsers reconnect to another replica by
    /// themselves); its place is freed when it is dropped.
    pub fn events(
        &self,
        sale: Sale,
        shutdown: CancellationToken,
    ) -> Option<impl Stream<Item = sse::Event> + 'static> {
        let Some(open) = OpenStream::claim(&self.open, self.max_clients) else {
            crate::metrics::sse_refused();
            return None;
        };
        let state = StreamState {
            shutdown,
            stock: self.stock.subscribe(),
            sale,
            last: None,
            phase_check: tokio::time::interval(PHASE_CHECK),
            _open: open,
        };
        Some(futures::stream::unfold(state, |mut state| async move {
            loop {
                tokio::select! {
                    _ = state.shutdown.cancelled() => return None,
                    changed = state.stock.changed() => if changed.is_err() { return None },
                    _ = state.phase_check.tick() => {}
                }
                let Some(known) = *state.stock.borrow_and_update() else {
                    continue;
                };
                let redis_now = crate::clock::now() + known.clock_offset;
                let status = SaleStatus::at(&state.sale, known.stock as i64, redis_now);
                if state.last.as_ref() == Some(&status) {
                    continue;
                }
                let json = serde_json::to_string(&status).unwrap_or_default();
                state.last = Some(status);
                let event = sse::Event::Data(sse::Data::new(json).event("status"));
                return Some((event, state));
            }
        }))
    }
}

struct StreamState {
    shutdown: CancellationToken,
    stock: watch::Receiver<Option<Known>>,
    sale: Sale,
    last: Option<SaleStatus>,
    phase_check: tokio::time::Interval,
    _open: OpenStream,
}

/// One stream's place among the open ones, held while it is alive and
/// counted in `flash_sale_sse_clients`.
struct OpenStream {
    open: Arc<AtomicUsize>,
}

impl OpenStream {
    /// Takes a place if fewer than `max` are taken; the check and the take
    /// are one atomic step, so a crowd arriving at once cannot overshoot.
    fn claim(open: &Arc<AtomicUsize>, max: Option<usize>) -> Option<Self> {
        open.fetch_update(Ordering::AcqRel, Ordering::Acquire, |taken| {
            max.is_none_or(|max| taken < max).then_some(taken + 1)
        })
        .ok()?;
        crate::metrics::sse_clients(1.0);
        Some(Self { open: open.clone() })
    }
}

impl Drop for OpenStream {
    fn drop(&mut self) {
        self.open.fetch_sub(1, Ordering::AcqRel);
        crate::metrics::sse_clients(-1.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_are_given_up_to_the_cap_and_come_back_when_dropped() {
        let open = Arc::default();
        let first = OpenStream::claim(&open, Some(2));
        let second = OpenStream::claim(&open, Some(2));
        assert!(first.is_some() && second.is_some());
        assert!(OpenStream::claim(&open, Some(2)).is_none());

        drop(first);

        assert!(OpenStream::claim(&open, Some(2)).is_some());
        assert_eq!(
            open.load(Ordering::Acquire),
            1,
            "the claim above was dropped"
        );
    }

    #[test]
    fn no_cap_never_refuses() {
        let open = Arc::default();
        let held: Vec<_> = (0..100).map(|_| OpenStream::claim(&open, None)).collect();
        assert!(held.iter().all(Option::is_some));
    }
}
