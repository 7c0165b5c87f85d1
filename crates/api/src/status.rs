//! The sale status as the storefront sees it, shared by `GET
//! /api/sale/status` and the live `GET /api/sale/events` stream.

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
        Self {
            status: sale.window.phase_at(now).into(),
            starts_at: iso_millis(sale.window.starts_at),
            ends_at: iso_millis(sale.window.ends_at),
            stock_remaining: u64::try_from(stock).unwrap_or(0).min(sale.total_stock),
            total_stock: sale.total_stock,
        }
    }
}
