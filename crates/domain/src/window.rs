//! The sale window and the phase it gives at a moment.

use chrono::{DateTime, Utc};
use serde::Serialize;

/// Where a sale stands relative to its window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SalePhase {
    Upcoming,
    Active,
    Ended,
}

/// `starts_at..=ends_at`: both ends are inside the sale.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SaleWindow {
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
}

impl SaleWindow {
    pub fn phase_at(&self, now: DateTime<Utc>) -> SalePhase {
        if now < self.starts_at {
            SalePhase::Upcoming
        } else if now > self.ends_at {
            SalePhase::Ended
        } else {
            SalePhase::Active
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    #[test]
    fn window_is_inclusive_at_both_ends() {
        let start = Utc::now();
        let window = SaleWindow {
            starts_at: start,
            ends_at: start + Duration::hours(1),
        };
        assert_eq!(
            window.phase_at(start - Duration::milliseconds(1)),
            SalePhase::Upcoming
        );
        assert_eq!(window.phase_at(start), SalePhase::Active);
        assert_eq!(window.phase_at(window.ends_at), SalePhase::Active);
        assert_eq!(
            window.phase_at(window.ends_at + Duration::milliseconds(1)),
            SalePhase::Ended
        );
    }
}
