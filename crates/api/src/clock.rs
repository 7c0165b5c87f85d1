//! This replica's clock. Decisions use Redis's clock instead (the purchase
//! script, status readings); the local one only bridges between readings.

use chrono::{DateTime, Utc};

/// Now, on this replica's clock.
///
/// Debug builds honour `FLASH_SALE_CLOCK_SKEW_MS` so tests can run replicas
/// whose clocks disagree; release builds have no such knob.
pub fn now() -> DateTime<Utc> {
    Utc::now() + skew()
}

#[cfg(debug_assertions)]
fn skew() -> chrono::Duration {
    use std::sync::OnceLock;
    static SKEW: OnceLock<i64> = OnceLock::new();
    let millis = *SKEW.get_or_init(|| {
        std::env::var("FLASH_SALE_CLOCK_SKEW_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    });
    chrono::Duration::milliseconds(millis)
}

#[cfg(not(debug_assertions))]
fn skew() -> chrono::Duration {
    chrono::Duration::zero()
}
