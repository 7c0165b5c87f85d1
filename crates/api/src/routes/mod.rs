//! Routes, grouped by resource and registered from [`configure`]. Each
//! handler carries its OpenAPI description, and utoipa-actix-web collects
//! the document from exactly the services registered here: a route cannot
//! be served without being documented.

mod events;
mod health;
mod metrics;
pub mod purchases;
mod root;
mod sale;

use actix_governor::Governor;
use actix_web::middleware::Condition;
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

pub fn configure(limits: IpLimits) -> impl FnOnce(&mut ServiceConfig) {
    move |cfg| {
        let governor = |limit: &Option<IpLimit>| {
            Condition::new(
                limit.is_some(),
                Governor::new(limit.as_ref().unwrap_or(&limits.unused)),
            )
        };
        cfg.service(root::info)
            .service(sale::status)
            .service(events::events)
            .service(health::check)
            .service(metrics::render)
            .service(
                scope("/api/purchases")
                    .wrap(governor(&limits.per_second))
                    .wrap(governor(&limits.per_10_seconds))
                    .service(purchases::create::create)
                    .service(purchases::status::status),
            );
    }
}
