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
///
/// On the wire (JSON, apalis's codec) a job of one sale's orders is
/// written compactly, the sale once and each order as a triple:
/// `{"sale_id":"s","sold":[["<order id>","<user id>",<purchased at, epoch
/// millis>],…]}`, about 75 bytes an order against 160 as objects. Redis
/// copies a job's bytes in and out (push, fetch) and holds them until the
/// job is acked: half the bytes is about 0.6x of Redis's time per push
/// (`docs/profile/job-push.md`). Orders of several sales, or times finer
/// than a millisecond (never from the purchase script, whose clock is in
/// millis), go as objects, `{"orders":[{order_id, sale_id, user_id,
/// purchased_at}, …]}`, the only form before; either form decodes, so jobs
/// queued by an older api are persisted by a newer worker. (An older worker
/// cannot read the compact form: upgrade the workers first.)
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "Wire")]
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

/// One order of the compact form: order id, user id, purchase time in epoch millis.
type Sold = (OrderId, UserId, i64);

/// Either form of a job, as decoded (see [`PersistOrders`]).
#[derive(Deserialize)]
struct Wire {
    #[serde(default)]
    orders: Vec<PersistOrder>,
    #[serde(default)]
    sale_id: Option<SaleId>,
    #[serde(default)]
    sold: Vec<Sold>,
}

impl TryFrom<Wire> for PersistOrders {
    type Error = String;

    fn try_from(wire: Wire) -> Result<Self, Self::Error> {
        let mut orders = wire.orders;
        if !wire.sold.is_empty() {
            let sale_id = wire.sale_id.ok_or("`sold` orders without a `sale_id`")?;
            orders.reserve(wire.sold.len());
            for (order_id, user_id, millis) in wire.sold {
                let purchased_at = crate::time::from_millis(millis)
                    .ok_or_else(|| format!("purchase time {millis} ms is out of range"))?;
                orders.push(PersistOrder {
                    order_id,
                    sale_id: sale_id.clone(),
                    user_id,
                    purchased_at,
                });
            }
        }
        Ok(Self { orders })
    }
}

impl Serialize for PersistOrders {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut job = serializer.serialize_struct("PersistOrders", 2)?;
        match self.compact_sale() {
            Some(sale_id) => {
                job.serialize_field("sale_id", sale_id)?;
                job.serialize_field("sold", &CompactOrders(&self.orders))?;
            }
            None => job.serialize_field("orders", &self.orders)?,
        }
        job.end()
    }
}

impl PersistOrders {
    /// The sale of every order, when the job can go compactly: one sale,
    /// whole milliseconds.
    fn compact_sale(&self) -> Option<&SaleId> {
        let sale_id = &self.orders.first()?.sale_id;
        self.orders
            .iter()
            .all(|o| {
                &o.sale_id == sale_id && o.purchased_at.timestamp_subsec_nanos() % 1_000_000 == 0
            })
            .then_some(sale_id)
    }
}

/// A job's orders as [`Sold`] triples.
struct CompactOrders<'a>(&'a [PersistOrder]);

impl Serialize for CompactOrders<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(
            self.0
                .iter()
                .map(|o| (&o.order_id, &o.user_id, o.purchased_at.timestamp_millis())),
        )
    }
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

    fn order(sale: &str, user: &str, millis: i64) -> PersistOrder {
        PersistOrder {
            order_id: OrderId::new(),
            sale_id: SaleId::parse(sale).expect("valid sale id"),
            user_id: UserId::parse(user).expect("valid user id"),
            purchased_at: crate::time::from_millis(millis).expect("in range"),
        }
    }

    #[test]
    fn a_job_of_one_sale_goes_compactly_and_round_trips() {
        let job = PersistOrders {
            orders: vec![
                order("s1", "u1", 1_772_359_200_123),
                order("s1", "u \"2\" ü", 1_772_359_200_124),
            ],
        };
        let json = serde_json::to_string(&job).expect("serializes");
        let first = &job.orders[0];
        assert!(
            json.starts_with(&format!(
                r#"{{"sale_id":"s1","sold":[["{}","u1",1772359200123],"#,
                first.order_id.as_uuid()
            )),
            "{json}"
        );
        assert!(!json.contains("purchased_at"), "{json}");
        assert_eq!(serde_json::from_str::<PersistOrders>(&json).ok(), Some(job));
    }

    #[test]
    fn a_job_of_several_sales_or_finer_times_goes_as_objects() {
        let sales = PersistOrders {
            orders: vec![order("s1", "u1", 1), order("s2", "u1", 2)],
        };
        let mut fine = order("s1", "u1", 1_772_359_200_123);
        fine.purchased_at += chrono::Duration::microseconds(5);
        let fine = PersistOrders { orders: vec![fine] };
        for job in [sales, fine] {
            let json = serde_json::to_string(&job).expect("serializes");
            assert!(json.starts_with(r#"{"orders":[{"order_id":"#), "{json}");
            assert_eq!(serde_json::from_str::<PersistOrders>(&json).ok(), Some(job));
        }
    }

    #[test]
    fn a_job_in_the_object_form_an_older_api_pushed_still_decodes() {
        let json = r#"{"orders":[{"order_id":"0191d2a4-6a8e-7c3b-9d3e-3f1f2c4b5a6d","sale_id":"s","user_id":"u","purchased_at":"2026-01-01T00:00:00.5Z"}]}"#;
        let job: PersistOrders = serde_json::from_str(json).expect("decodes");
        assert_eq!(job.orders.len(), 1);
        assert_eq!(job.orders[0].user_id.as_str(), "u");
        assert_eq!(
            job.orders[0].purchased_at.timestamp_millis(),
            1_767_225_600_500
        );
    }

    #[test]
    fn a_compact_job_without_its_sale_or_with_a_bad_order_does_not_decode() {
        let id = "0191d2a4-6a8e-7c3b-9d3e-3f1f2c4b5a6d";
        for json in [
            format!(r#"{{"sold":[["{id}","u",1]]}}"#),
            format!(r#"{{"sale_id":"s","sold":[["{id}","",1]]}}"#),
            r#"{"sale_id":"s","sold":[["not-a-uuid","u",1]]}"#.to_owned(),
            format!(r#"{{"sale_id":"s","sold":[["{id}","u",{}]]}}"#, i64::MAX),
            format!(r#"{{"sale_id":"s:1","sold":[["{id}","u",1]]}}"#),
        ] {
            assert!(
                serde_json::from_str::<PersistOrders>(&json).is_err(),
                "{json}"
            );
        }
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
