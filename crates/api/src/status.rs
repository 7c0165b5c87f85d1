//! The sale status as the storefront sees it, shared by `GET
//! /api/sale/status` and the live `GET /api/sale/events` stream.

use std::sync::Mutex;

use actix_web::web::Bytes;
use chrono::{DateTime, Utc};
use domain::{time::iso_millis, SalePhase};
use serde::Serialize;
use utoipa::ToSchema;

use crate::sale::Sale;

/// Where the sale stands relative to its window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    Upcoming,
    Active,
    Ended,
}

impl From<SalePhase> for Phase {
    fn from(phase: SalePhase) -> Self {
        match phase {
            SalePhase::Upcoming => Self::Upcoming,
            SalePhase::Active => Self::Active,
            SalePhase::Ended => Self::Ended,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SaleStatus {
    pub status: Phase,
    /// ISO-8601 UTC with milliseconds.
    #[schema(example = "2026-03-01T10:00:00.000Z")]
    pub starts_at: String,
    #[schema(example = "2026-03-01T11:00:00.000Z")]
    pub ends_at: String,
    pub stock_remaining: u64,
    pub total_stock: u64,
}

impl SaleStatus {
    /// The status at `now` given the stock Redis holds (clamped to 0..=total).
    pub fn at(sale: &Sale, stock: i64, now: DateTime<Utc>) -> Self {
        Self::of(sale, sale.window.phase_at(now).into(), clamped(sale, stock))
    }

    fn of(sale: &Sale, phase: Phase, stock_remaining: u64) -> Self {
        Self {
            status: phase,
            starts_at: iso_millis(sale.window.starts_at),
            ends_at: iso_millis(sale.window.ends_at),
            stock_remaining,
            total_stock: sale.total_stock,
        }
    }
}

/// The stock Redis holds, clamped to 0..=total.
pub fn clamped(sale: &Sale, stock: i64) -> u64 {
    u64::try_from(stock).unwrap_or(0).min(sale.total_stock)
}

/// One thread's last status body, written again only when the phase or the
/// stock moved: every open storefront polls the status, and the window and
/// total of an armed sale never change.
#[derive(Default)]
pub struct StatusBodies(Mutex<Option<(Phase, u64, Bytes)>>);

impl StatusBodies {
    /// The JSON of `sale`'s status in `phase` with `stock` left.
    pub fn body(&self, sale: &Sale, phase: Phase, stock: u64) -> Bytes {
        if let Ok(last) = self.0.lock() {
            if let Some((p, s, body)) = last.as_ref() {
                if (*p, *s) == (phase, stock) {
                    return body.clone();
                }
            }
        }
        let status = SaleStatus::of(sale, phase, stock);
        let body = Bytes::from(serde_json::to_vec(&status).unwrap_or_default());
        if let Ok(mut last) = self.0.lock() {
            *last = Some((phase, stock, body.clone()));
        }
        body
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sale() -> Sale {
        let now = Utc::now();
        Sale {
            id: domain::SaleId::parse("bodies-test").expect("sale id"),
            total_stock: 10,
            window: domain::SaleWindow {
                starts_at: now - chrono::Duration::hours(1),
                ends_at: now + chrono::Duration::hours(1),
            },
        }
    }

    #[test]
    fn a_body_is_written_once_per_phase_and_stock() {
        let (sale, bodies) = (sale(), StatusBodies::default());

        let first = bodies.body(&sale, Phase::Active, 7);
        let again = bodies.body(&sale, Phase::Active, 7);
        let moved = bodies.body(&sale, Phase::Active, 6);

        assert_eq!(first.as_ptr(), again.as_ptr(), "the same bytes, reused");
        let json: serde_json::Value = serde_json::from_slice(&moved).expect("json");
        assert_eq!(json["stockRemaining"], 6);
        assert_eq!(
            json,
            serde_json::to_value(SaleStatus::of(&sale, Phase::Active, 6)).expect("json"),
            "the same JSON as the status it stands for"
        );
    }
}
