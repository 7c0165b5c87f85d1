//! What every handler shares.

use chrono::{DateTime, Utc};
use diesel_async::{pooled_connection::bb8, AsyncPgConnection};
use domain::{SaleId, SalePhase, SaleWindow};

use crate::{
    error::ApiError,
    inventory::{AttemptLimit, Inventory},
    queue::OrderQueue,
};

pub type PgPool = bb8::Pool<AsyncPgConnection>;

pub struct AppState {
    pub sale: Sale,
    pub inventory: Inventory,
    pub queue: OrderQueue,
    pub db: PgPool,
    pub attempt_limit: AttemptLimit,
}

/// The sale as armed in Redis (which wins over this replica's settings).
#[derive(Debug, Clone)]
pub struct Sale {
    pub id: SaleId,
    pub total_stock: u64,
    pub window: SaleWindow,
}

impl Sale {
    /// The 400 of a purchase outside the window, or `Ok` inside it.
    pub fn ensure_active(&self, now: DateTime<Utc>) -> Result<(), ApiError> {
        match self.window.phase_at(now) {
            SalePhase::Upcoming => Err(ApiError::SaleNotStarted),
            SalePhase::Active => Ok(()),
            SalePhase::Ended => Err(ApiError::SaleEnded),
        }
    }
}
