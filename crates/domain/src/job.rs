//! The job the api pushes and the order worker consumes.

use chrono::{DateTime, Utc};
use std::sync::atomic::{AtomicBool, Ordering};

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
/// job is acked (`docs/profile/job-push.md` measures a push of each form).
/// Orders of several sales, times finer than a millisecond (never from the
/// purchase script, whose clock is in millis), or a process that set
/// [`JobForm::Objects`] write objects, `{"orders":[{order_id, sale_id,
/// user_id, purchased_at}, …]}`, the only form before. Either form decodes;
/// a job in neither (or both, or with a field of neither) does not, so it
/// fails instead of being acked as empty.
///
/// Upgrading from a version that writes only objects: apis and workers of
/// that version read only objects (an api reads the queue when it rebuilds
/// a sale Redis lost; a job it cannot read would be missed, and its units
/// sold again). So roll the new version out with `ORDER_JOB_FORM=objects`
/// first, and switch to `compact` once no process of the old version runs.
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
#[serde(deny_unknown_fields)]
struct Wire {
    orders: Option<Vec<PersistOrder>>,
    sale_id: Option<SaleId>,
    sold: Option<Vec<Sold>>,
}

impl TryFrom<Wire> for PersistOrders {
    type Error = String;

    fn try_from(wire: Wire) -> Result<Self, Self::Error> {
        let (sale_id, sold) = match wire {
            Wire {
                orders: Some(orders),
                sale_id: None,
                sold: None,
            } => return Ok(Self { orders }),
            Wire {
                orders: None,
                sale_id: Some(sale_id),
                sold: Some(sold),
            } => (sale_id, sold),
            _ => return Err("a job is either `orders`, or `sale_id` and `sold`".to_owned()),
        };
        let mut orders = Vec::with_capacity(sold.len());
        for (order_id, user_id, millis) in sold {
            let purchased_at = crate::time::from_millis(millis)
                .ok_or_else(|| format!("purchase time {millis} ms is out of range"))?;
            orders.push(PersistOrder {
                order_id,
                sale_id: sale_id.clone(),
                user_id,
                purchased_at,
            });
        }
        Ok(Self { orders })
    }
}

impl Serialize for PersistOrders {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        match self.compact_sale() {
            Some(sale_id) => {
                let mut job = serializer.serialize_struct("PersistOrders", 2)?;
                job.serialize_field("sale_id", sale_id)?;
                job.serialize_field("sold", &CompactOrders(&self.orders))?;
                job.end()
            }
            None => {
                let mut job = serializer.serialize_struct("PersistOrders", 1)?;
                job.serialize_field("orders", &self.orders)?;
                job.end()
            }
        }
    }
}

impl PersistOrders {
    /// The sale of every order, when the job can go compactly: the process
    /// writes that form, one sale, whole milliseconds (and no leap second,
    /// which millis cannot carry).
    fn compact_sale(&self) -> Option<&SaleId> {
        if OBJECTS.load(Ordering::Relaxed) {
            return None;
        }
        let sale_id = &self.orders.first()?.sale_id;
        self.orders
            .iter()
            .all(|o| {
                let nanos = o.purchased_at.timestamp_subsec_nanos();
                &o.sale_id == sale_id && nanos < 1_000_000_000 && nanos % 1_000_000 == 0
            })
            .then_some(sale_id)
    }
}

/// The form a process writes its jobs in (`ORDER_JOB_FORM`; see
/// [`PersistOrders`] for the upgrade that needs `objects`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum JobForm {
    /// One sale's orders compactly, the rest as objects.
    #[default]
    Compact,
    /// Every job as objects, as versions before the compact form read.
    Objects,
}

impl std::str::FromStr for JobForm {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        match raw {
            "compact" => Ok(Self::Compact),
            "objects" => Ok(Self::Objects),
            other => Err(format!("expected compact or objects, got {other:?}")),
        }
    }
}

/// Whether this process writes every job as objects.
static OBJECTS: AtomicBool = AtomicBool::new(false);

/// Sets the form this process writes its jobs in (once, at start).
pub fn write_jobs_as(form: JobForm) {
    OBJECTS.store(form == JobForm::Objects, Ordering::Relaxed);
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
/// time, once per order of every job in the object form.
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
    fn a_job_in_neither_form_or_in_both_does_not_decode() {
        let id = "0191d2a4-6a8e-7c3b-9d3e-3f1f2c4b5a6d";
        let object = format!(
            r#"{{"order_id":"{id}","sale_id":"s","user_id":"u","purchased_at":"2026-01-01T00:00:00Z"}}"#
        );
        for json in [
            "{}".to_owned(),
            "[]".to_owned(),
            r#"{"orderz":[]}"#.to_owned(),
            format!(r#"{{"orders":[{object}],"sold":[["{id}","v",1]],"sale_id":"s"}}"#),
            format!(r#"{{"orders":[{object}],"sale_id":"s"}}"#),
            format!(r#"{{"orders":[{object}],"v":2}}"#),
            r#"{"sale_id":"s"}"#.to_owned(),
        ] {
            assert!(
                serde_json::from_str::<PersistOrders>(&json).is_err(),
                "{json}"
            );
        }
    }

    #[test]
    fn a_leap_second_or_a_process_writing_objects_goes_as_objects() {
        let mut leap = order("s1", "u1", 1_772_409_599_000);
        leap.purchased_at = chrono::NaiveDate::from_ymd_opt(2026, 3, 1)
            .and_then(|d| d.and_hms_milli_opt(23, 59, 59, 1_500))
            .expect("a leap second")
            .and_utc();
        let leap = PersistOrders { orders: vec![leap] };
        let json = serde_json::to_string(&leap).expect("serializes");
        assert!(json.starts_with(r#"{"orders":"#), "{json}");
        assert_eq!(
            serde_json::from_str::<PersistOrders>(&json).ok(),
            Some(leap)
        );

        let job = PersistOrders {
            orders: vec![order("s1", "u1", 1_772_359_200_123)],
        };
        write_jobs_as(JobForm::Objects);
        let objects = serde_json::to_string(&job);
        write_jobs_as(JobForm::Compact);
        let objects = objects.expect("serializes");
        assert!(objects.starts_with(r#"{"orders":"#), "{objects}");
        assert_eq!(
            serde_json::from_str::<PersistOrders>(&objects).ok(),
            Some(job)
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
