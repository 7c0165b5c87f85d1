//! Routes, grouped by resource and registered from [`configure`]. Each
//! handler carries its OpenAPI description, and utoipa-actix-web collects
//! the document from exactly the services registered here: a route cannot
//! be served without being documented. The one exception runs the other
//! way: with `METRICS_PORT` set, `/metrics` is served by [`metrics_port`]
//! on its own port and `ApiDoc` lists it still.

mod events;
mod health;
pub(crate) mod metrics;
pub mod purchases;
mod root;
mod sale;

use actix_governor::Governor;
use actix_web::middleware::{from_fn, Condition};
use utoipa_actix_web::{scope, service_config::ServiceConfig};

use crate::limits::ip::IpLimit;

/// The per-address limits of the purchase endpoints (`None` = off).
#[derive(Clone)]
pub struct IpLimits {
    pub per_second: Option<IpLimit>,
    pub per_10_seconds: Option<IpLimit>,
    /// Stands in for a limit that is off; `Condition` never calls it.
    pub unused: IpLimit,
}

/// The public port's routes; `/metrics` among them unless it has a port
/// of its own. `signing_in`: buyers sign in (`BUYER_AUTH=jwt`); else
/// [`purchases::signed_in`] has nothing to check and is not run (its boxed
/// future was ~1,500 instructions of every purchase and sold-out answer).
pub fn configure(
    limits: IpLimits,
    metrics_here: bool,
    signing_in: bool,
) -> impl FnOnce(&mut ServiceConfig) {
    move |cfg| {
        let governor = |limit: &Option<IpLimit>| {
            Condition::new(
                limit.is_some(),
                Governor::new(limit.as_ref().unwrap_or(&limits.unused)),
            )
        };
        cfg.service(root::info)
            .service(root::config)
            .service(sale::status)
            .service(events::events)
            .service(health::check)
            .service(
                scope("/api/purchases")
                    // Innermost: the address limits run first, so a flood
                    // of bad tokens costs no signature checks past them.
                    .wrap(Condition::new(signing_in, from_fn(purchases::signed_in)))
                    .wrap(governor(&limits.per_second))
                    .wrap(governor(&limits.per_10_seconds))
                    .service(purchases::create::create)
                    // Before `/{user_id}`, which would take "me" as an id.
                    .service(purchases::status::mine)
                    .service(purchases::status::status),
            );
        if metrics_here {
            cfg.service(metrics::render);
        }
    }
}

/// The routes of `METRICS_PORT`: `/metrics` alone.
pub fn metrics_port(cfg: &mut actix_web::web::ServiceConfig) {
    cfg.service(metrics::render);
}
