//! Live stock for every open storefront, at one Redis read per tick per replica.
//!
//! A background task reads the stock every [`TICK`] into a `watch` channel;
//! purchases answered by this replica report the stock they left at once.
//! Each `GET /api/sale/events` stream watches the channel (no Redis call of
//! its own) and emits a `status` event only when what it would show changed,
//! checking the phase each second so countdowns turn active on time.

use std::{sync::Arc, time::Duration};

use actix_web_lab::sse;
use chrono::Utc;
use futures::Stream;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::{inventory::Inventory, state::Sale, status::SaleStatus};

/// How often a replica reads the stock for its open pages.
pub const TICK: Duration = Duration::from_millis(250);

/// How often a stream re-checks the phase without a stock change.
const PHASE_CHECK: Duration = Duration::from_secs(1);

#[derive(Clone)]
pub struct SaleFeed {
    stock: Arc<watch::Sender<Option<u64>>>,
}

impl Default for SaleFeed {
    fn default() -> Self {
        Self {
            stock: Arc::new(watch::channel(None).0),
        }
    }
}

impl SaleFeed {
    /// Records a stock reading; open streams wake only if it changed.
    pub fn observe(&self, stock: u64) {
        self.stock.send_if_modified(|current| {
            let changed = *current != Some(stock);
            *current = Some(stock);
            changed
        });
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
                if let Ok(Some(stock)) = inventory.stock().await {
                    feed.observe(u64::try_from(stock).unwrap_or(0).min(total));
                }
            }
        });
    }

    /// The event stream of one open page; it ends when `shutdown` fires, so
    /// open pages never hold up a graceful stop (browsers reconnect to
    /// another replica by themselves).
    pub fn events(
        &self,
        sale: Sale,
        shutdown: CancellationToken,
    ) -> impl Stream<Item = sse::Event> + 'static {
        let state = StreamState {
            shutdown,
            stock: self.stock.subscribe(),
            sale,
            last: None,
            phase_check: tokio::time::interval(PHASE_CHECK),
            _open: OpenStream::new(),
        };
        futures::stream::unfold(state, |mut state| async move {
            loop {
                tokio::select! {
                    _ = state.shutdown.cancelled() => return None,
                    changed = state.stock.changed() => if changed.is_err() { return None },
                    _ = state.phase_check.tick() => {}
                }
                let Some(stock) = *state.stock.borrow_and_update() else {
                    continue;
                };
                let status = SaleStatus::at(&state.sale, stock as i64, Utc::now());
                if state.last.as_ref() == Some(&status) {
                    continue;
                }
                let json = serde_json::to_string(&status).unwrap_or_default();
                state.last = Some(status);
                let event = sse::Event::Data(sse::Data::new(json).event("status"));
                return Some((event, state));
            }
        })
    }
}

struct StreamState {
    shutdown: CancellationToken,
    stock: watch::Receiver<Option<u64>>,
    sale: Sale,
    last: Option<SaleStatus>,
    phase_check: tokio::time::Interval,
    _open: OpenStream,
}

/// Counts open streams in `flash_sale_sse_clients` while alive.
struct OpenStream;

impl OpenStream {
    fn new() -> Self {
        metrics::gauge!("flash_sale_sse_clients").increment(1.0);
        Self
    }
}

impl Drop for OpenStream {
    fn drop(&mut self) {
        metrics::gauge!("flash_sale_sse_clients").decrement(1.0);
    }
}
