//! Live stock for every open storefront, encoded once and shared.
//!
//! A background task reads the stock every [`TICK`] into a `watch` channel;
//! purchases answered by this replica report the stock they left at once.
//! One publisher task turns that into the status event every page shows:
//! it encodes the event once (`event: status` + the `SaleStatus` JSON) and
//! shares the bytes with every open stream through a second `watch`
//! channel. It looks at the stock once a [`STOCK_EVERY`] (the latest stock
//! wins; a purchase never wakes it), at a phase change (upcoming → active
//! → ended, on Redis's clock) at its instant, and sends a keep-alive
//! comment after [`KEEP_ALIVE`] without an event. A stream only copies the shared bytes to
//! its connection: no Redis call, no JSON, no timer of its own.
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

use actix_web::web::Bytes;
use chrono::Utc;
use futures::Stream;
use tokio::{sync::watch, time::Instant};
use tokio_util::sync::CancellationToken;

use crate::{inventory::Inventory, sale::Sale, status::SaleStatus};

/// How often a replica reads the stock for its open pages.
pub const TICK: Duration = Duration::from_millis(250);

/// The most often a stock change is sent to the open pages.
pub const STOCK_EVERY: Duration = Duration::from_secs(1);

/// How often the publisher looks for the first stock known.
const FIRST_LOOK: Duration = Duration::from_millis(50);

/// How long a stream may go without a byte before a keep-alive comment
/// (proxies close streams idle for longer).
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// The first bytes of every stream: browsers reconnect after 3 s.
const RETRY: &[u8] = b"retry: 3000\n\n";
const KEEP_ALIVE_COMMENT: &[u8] = b": keep-alive\n\n";

/// What every open stream sends, made once by the publisher.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Frame {
    /// `event: status` with the `SaleStatus` JSON, ready to write.
    status: Bytes,
    /// Which status this is (a stream sends each once).
    status_seq: u64,
    /// Bumped for a keep-alive comment.
    keep_alive_seq: u64,
}

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
    /// The published event; open streams watch it.
    frames: Arc<watch::Sender<Option<Frame>>>,
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
            frames: Arc::new(watch::channel(None).0),
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

    /// Reads the stock every [`TICK`] and publishes the status event of
    /// `sale`, for as long as the process runs.
    pub fn spawn_reader(&self, inventory: Inventory, sale: Sale) {
        let feed = self.clone();
        let total = sale.total_stock;
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(TICK);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                // Nobody watching: no Redis read.
                if feed.frames.receiver_count() == 0 {
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
        tokio::spawn(publish(self.clone(), sale));
    }

    /// The event stream of one open page, or `None` (counted in
    /// `flash_sale_sse_refused_total`) when this replica has all the streams
    /// its cap allows: the retry interval, the current status at once, then
    /// each status the publisher makes (and its keep-alives). It ends when
    /// `shutdown` fires, so open pages never hold up a graceful stop
    /// (browsers reconnect to another replica by themselves); its place is
    /// freed when it is dropped.
    pub fn events(
        &self,
        shutdown: CancellationToken,
    ) -> Option<impl Stream<Item = Result<Bytes, std::convert::Infallible>> + 'static> {
        let Some(open) = OpenStream::claim(&self.open, self.max_clients) else {
            crate::metrics::sse_refused();
            return None;
        };
        let state = StreamState {
            shutdown,
            frames: self.frames.subscribe(),
            sent: None,
            _open: open,
        };
        let retry = futures::stream::once(async { Ok(Bytes::from_static(RETRY)) });
        let frames = futures::stream::unfold(state, |mut state| async move {
            loop {
                let frame = state.frames.borrow_and_update().clone();
                if let Some(frame) = frame {
                    match state.sent {
                        // This status was sent: only a keep-alive may be new.
                        Some((status, keep_alive)) if status == frame.status_seq => {
                            if keep_alive != frame.keep_alive_seq {
                                state.sent = Some((status, frame.keep_alive_seq));
                                let comment = Bytes::from_static(KEEP_ALIVE_COMMENT);
                                return Some((Ok(comment), state));
                            }
                        }
                        _ => {
                            state.sent = Some((frame.status_seq, frame.keep_alive_seq));
                            return Some((Ok(frame.status), state));
                        }
                    }
                }
                tokio::select! {
                    _ = state.shutdown.cancelled() => return None,
                    changed = state.frames.changed() => if changed.is_err() { return None },
                }
            }
        });
        Some(futures::StreamExt::chain(retry, frames))
    }
}

/// Publishes the status event of `sale`: looks at the stock once a
/// [`STOCK_EVERY`] and at the instant of each phase change, and sends the
/// status when it differs from the last one sent; a keep-alive after
/// [`KEEP_ALIVE`] without one. A purchase never wakes it (that was a
/// thread switch per purchase): it only stores the stock it left.
async fn publish(feed: SaleFeed, sale: Sale) {
    let mut last: Option<SaleStatus> = None;
    let mut sent_at = Instant::now();
    let mut seq = 0u64;
    loop {
        let mut phase_change = None;
        let known = *feed.stock.borrow();
        if let Some(known) = known {
            let redis_now = crate::clock::now() + known.clock_offset;
            let status = SaleStatus::at(&sale, known.stock as i64, redis_now);
            if last.as_ref() != Some(&status) {
                seq += 1;
                feed.frames.send_replace(Some(Frame {
                    status: status_event(&status),
                    status_seq: seq,
                    keep_alive_seq: 0,
                }));
                last = Some(status);
                sent_at = Instant::now();
            }
            phase_change = next_phase_change(&sale, redis_now);
        }
        if sent_at.elapsed() >= KEEP_ALIVE {
            feed.frames.send_if_modified(|frame| match frame {
                Some(frame) => {
                    frame.keep_alive_seq += 1;
                    true
                }
                None => false,
            });
            sent_at = Instant::now();
        }
        // Until the first status is out, look often: a page opening on a
        // fresh replica gets it as soon as the first reading is in.
        let every = if last.is_none() {
            FIRST_LOOK
        } else {
            STOCK_EVERY
        };
        let wake = phase_change.map_or(every, |until| until.min(every));
        tokio::time::sleep(wake).await;
    }
}

/// How long until the sale's phase changes, on Redis's clock (`None`: it ended).
fn next_phase_change(sale: &Sale, redis_now: chrono::DateTime<Utc>) -> Option<Duration> {
    let next = if redis_now < sale.window.starts_at {
        sale.window.starts_at
    } else if redis_now <= sale.window.ends_at {
        sale.window.ends_at + chrono::Duration::milliseconds(1)
    } else {
        return None;
    };
    (next - redis_now).to_std().ok()
}

/// The status event's bytes, as a stream writes them.
fn status_event(status: &SaleStatus) -> Bytes {
    let json = serde_json::to_string(status).unwrap_or_default();
    Bytes::from(format!("event: status\ndata: {json}\n\n"))
}

struct StreamState {
    shutdown: CancellationToken,
    frames: watch::Receiver<Option<Frame>>,
    /// The status and keep-alive last sent.
    sent: Option<(u64, u64)>,
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
    use futures::StreamExt;

    use super::*;

    /// A feed publishing an active sale of 10 whose stock is `stock`.
    fn feed_of_an_active_sale(stock: u64) -> SaleFeed {
        let feed = SaleFeed::new(None);
        let now = Utc::now();
        let sale = Sale {
            id: domain::SaleId::parse("feed-test").expect("sale id"),
            total_stock: 10,
            window: domain::SaleWindow {
                starts_at: now - chrono::Duration::hours(1),
                ends_at: now + chrono::Duration::hours(1),
            },
        };
        feed.observe_reading(stock, now);
        tokio::spawn(publish(feed.clone(), sale));
        feed
    }

    /// The next status event of `stream` (skipping the retry line and keep-alives).
    async fn next_status(
        stream: &mut (impl Stream<Item = Result<Bytes, std::convert::Infallible>> + Unpin),
    ) -> Bytes {
        loop {
            let Some(Ok(bytes)) = stream.next().await else {
                panic!("the stream ended");
            };
            if bytes.starts_with(b"event: status") {
                return bytes;
            }
        }
    }

    fn stock_of(event: &Bytes) -> u64 {
        let text = std::str::from_utf8(event).expect("utf-8");
        let json = text
            .lines()
            .find_map(|l| l.strip_prefix("data: "))
            .expect("data line");
        let status: serde_json::Value = serde_json::from_str(json).expect("json");
        status["stockRemaining"].as_u64().expect("stock")
    }

    #[tokio::test]
    async fn every_stream_writes_the_one_encoded_event() {
        let feed = feed_of_an_active_sale(7);
        let mut first = Box::pin(feed.events(CancellationToken::new()).expect("stream"));
        let mut second = Box::pin(feed.events(CancellationToken::new()).expect("stream"));

        let (a, b) = (
            next_status(&mut first).await,
            next_status(&mut second).await,
        );

        assert_eq!(stock_of(&a), 7);
        assert_eq!(
            a.as_ptr(),
            b.as_ptr(),
            "both streams write the same bytes, encoded once"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn stock_changes_reach_a_page_at_most_once_a_second_the_latest_winning() {
        let feed = feed_of_an_active_sale(9);
        let mut stream = Box::pin(feed.events(CancellationToken::new()).expect("stream"));
        assert_eq!(stock_of(&next_status(&mut stream).await), 9);
        let started = Instant::now();
        // Everything the page is sent in the next 3 s, as it arrives.
        let page = tokio::spawn(async move {
            let mut seen = Vec::new();
            let _ = tokio::time::timeout(Duration::from_secs(3), async {
                loop {
                    let event = next_status(&mut stream).await;
                    seen.push((stock_of(&event), started.elapsed()));
                }
            })
            .await;
            seen
        });

        for stock in [8, 7, 6, 5] {
            feed.observe(stock);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let seen = page.await.expect("page");

        let stocks: Vec<u64> = seen.iter().map(|(stock, _)| *stock).collect();
        assert_eq!(stocks, [5], "one update, the latest stock: {seen:?}");
        assert!(seen[0].1 >= STOCK_EVERY, "{seen:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_quiet_stream_gets_a_keep_alive_comment() {
        let feed = feed_of_an_active_sale(3);
        let mut stream = Box::pin(feed.events(CancellationToken::new()).expect("stream"));
        next_status(&mut stream).await;

        let next = tokio::time::timeout(KEEP_ALIVE * 2, stream.next()).await;

        assert_eq!(
            next,
            Ok(Some(Ok(Bytes::from_static(KEEP_ALIVE_COMMENT)))),
            "a comment within {KEEP_ALIVE:?} of quiet"
        );
    }

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
