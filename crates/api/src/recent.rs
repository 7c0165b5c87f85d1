//! The last stock reading, answering `GET /api/sale/status` for a moment.
//!
//! Storefronts poll the status (70% of the seed's load mix); one Redis call
//! per poll would make Redis pay for every open page. A reading this thread
//! made less than [`MAX_AGE`] ago
//! answers instead, unless this process has changed the stock since (a
//! purchase confirmed, a sold-out or lost sale seen, a re-arm): a replica's
//! own sales show at once, other replicas' within [`MAX_AGE`]. Redis then
//! sees at most 1 / `MAX_AGE` status reads a second per thread, however
//! many pages poll.

use std::{
    sync::{
        atomic::{AtomicU64, Ordering},
        Mutex,
    },
    time::{Duration, Instant},
};

use domain::Reading;

/// How old a reading may be and still answer.
pub const MAX_AGE: Duration = Duration::from_millis(50);

/// Counts this process's stock changes; a reading taken before the latest
/// one is not used.
#[derive(Default)]
pub struct StockChanges(AtomicU64);

impl StockChanges {
    pub fn seen(&self) {
        self.0.fetch_add(1, Ordering::AcqRel);
    }

    pub fn current(&self) -> u64 {
        self.0.load(Ordering::Acquire)
    }
}

/// One thread's last reading of an armed sale.
#[derive(Default)]
pub struct RecentReading(Mutex<Option<Kept>>);

#[derive(Clone, Copy)]
struct Kept {
    at: Instant,
    changes: u64,
    reading: Reading,
}

impl RecentReading {
    /// The kept reading, its clock moved on by its age, if it is young
    /// enough and no stock change happened since it was taken.
    pub fn fresh(&self, changes: u64) -> Option<Reading> {
        let kept = (*self.0.lock().ok()?)?;
        let age = kept.at.elapsed();
        if kept.changes != changes || age >= MAX_AGE {
            return None;
        }
        let age = chrono::Duration::from_std(age).ok()?;
        Some(Reading {
            now: kept.reading.now + age,
            ..kept.reading
        })
    }

    /// Keeps `reading`, taken from Redis at `at` when the change count was
    /// `changes`; readings of an unarmed sale are never kept.
    pub fn keep(&self, reading: Reading, at: Instant, changes: u64) {
        if reading.stock.is_none() {
            return;
        }
        if let Ok(mut kept) = self.0.lock() {
            *kept = Some(Kept {
                at,
                changes,
                reading,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading(stock: i64) -> Reading {
        Reading {
            stock: Some(stock),
            now: chrono::Utc::now(),
        }
    }

    #[test]
    fn a_young_reading_answers_until_the_stock_changes() {
        let recent = RecentReading::default();
        let changes = StockChanges::default();
        recent.keep(reading(7), Instant::now(), changes.current());

        assert_eq!(
            recent.fresh(changes.current()).and_then(|r| r.stock),
            Some(7)
        );
        changes.seen();
        assert_eq!(recent.fresh(changes.current()), None);
    }

    #[test]
    fn an_old_or_unarmed_reading_never_answers() {
        let recent = RecentReading::default();
        let old = Instant::now()
            .checked_sub(MAX_AGE)
            .unwrap_or_else(Instant::now);
        recent.keep(reading(7), old, 0);
        assert_eq!(recent.fresh(0), None);

        let unarmed = Reading {
            stock: None,
            now: chrono::Utc::now(),
        };
        recent.keep(unarmed, Instant::now(), 0);
        assert_eq!(recent.fresh(0), None);
    }
}
