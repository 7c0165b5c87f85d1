//! The job the api pushes and the order worker consumes.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize, Serializer};

use crate::{OrderId, SaleId, UserId};

/// Name of the apalis queue that carries [`PersistOrders`] jobs by default.
///
/// Set explicitly in both binaries: apalis would otherwise name the queue
/// after the Rust type path, which changes with a refactor.
pub const DEFAULT_ORDER_QUEUE: &str = "flash-sale:orders";

/// The job: confirmed purchases to persist as order rows.
///
/// One job carries every order an api process confirmed while its previous
/// push was in flight (group commit): one order when the shop is quiet,
/// hundreds in a rush. The queue's per-job costs (push, fetch, ack) are then
/// paid per batch, not per order. Redelivery is harmless: an order already
/// there is skipped (the worker's insert falls back to ON CONFLICT DO
/// NOTHING on meeting it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersistOrders {
    pub orders: Vec<PersistOrder>,
}

/// Persist one confirmed purchase as an order row.
///
/// Only ids and facts: the order id was minted before the job existed, so a
/// job delivered twice inserts once (the primary key on `order_id`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersistOrder {
    pub order_id: OrderId,
    pub sale_id: SaleId,
    pub user_id: UserId,
    #[serde(serialize_with = "rfc3339")]
    pub purchased_at: DateTime<Utc>,
}

/// The bytes chrono's own `Serialize` writes (RFC 3339, `Z`, as many
/// fraction digits as needed), formatted on the stack first: chrono's impl
/// goes through `collect_str`, which `serde_json` escapes a fragment at a
/// time, once per order of every job.
fn rfc3339<S: Serializer>(at: &DateTime<Utc>, serializer: S) -> Result<S::Ok, S::Error> {
    crate::time::with_rfc3339(at, |text| serializer.serialize_str(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn persist_order_round_trips_through_json() {
        let job = PersistOrder {
            order_id: OrderId::new(),
            sale_id: SaleId::parse("s1").expect("valid sale id"),
            user_id: UserId::parse("u1").expect("valid user id"),
            purchased_at: Utc::now(),
        };
        let json = serde_json::to_string(&job).expect("serializes");
        assert_eq!(serde_json::from_str::<PersistOrder>(&json).ok(), Some(job));
    }

    #[test]
    fn a_batch_job_round_trips_through_json() {
        let order = PersistOrder {
            order_id: OrderId::new(),
            sale_id: SaleId::parse("s1").expect("valid sale id"),
            user_id: UserId::parse("u1").expect("valid user id"),
            purchased_at: Utc::now(),
        };
        let job = PersistOrders {
            orders: vec![order.clone(), order],
        };
        let json = serde_json::to_string(&job).expect("serializes");
        assert_eq!(serde_json::from_str::<PersistOrders>(&json).ok(), Some(job));
    }

    #[test]
    fn purchase_times_are_written_as_chronos_serde_writes_them() {
        #[derive(Serialize)]
        struct Chrono {
            at: DateTime<Utc>,
        }
        let base = crate::time::from_millis(1_772_359_200_000).expect("in range");
        for nanos in [0, 1_000_000, 120_000_000, 123_000, 5, 999_999_999] {
            let at = base + chrono::Duration::nanoseconds(nanos);
            let order = PersistOrder {
                order_id: OrderId::new(),
                sale_id: SaleId::parse("s1").expect("valid sale id"),
                user_id: UserId::parse("u1").expect("valid user id"),
                purchased_at: at,
            };
            let ours = serde_json::to_value(&order).expect("serializes");
            let chrono = serde_json::to_value(Chrono { at }).expect("serializes");
            assert_eq!(ours["purchased_at"], chrono["at"], "{nanos} ns");
        }
    }

    #[test]
    fn persist_order_with_an_invalid_user_id_does_not_deserialize() {
        let json = r#"{"order_id":"0191d2a4-6a8e-7c3b-9d3e-3f1f2c4b5a6d","sale_id":"s","user_id":"","purchased_at":"2026-01-01T00:00:00Z"}"#;
        assert!(serde_json::from_str::<PersistOrder>(json).is_err());
    }
}
