//! Routes, grouped by resource and registered from [`configure`].

mod health;
mod metrics;
mod purchases;
mod root;
mod sale;

use actix_governor::Governor;
use actix_web::{middleware::Condition, web};

use crate::limits::ip::IpLimit;

/// The per-address limits of the purchase endpoints (`None` = off).
#[derive(Clone)]
pub struct IpLimits {
    pub per_second: Option<IpLimit>,
    pub per_10_seconds: Option<IpLimit>,
    /// Stands in for a limit that is off; `Condition` never calls it.
    pub unused: IpLimit,
}

pub fn configure(limits: IpLimits) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg| {
        let governor = |limit: &Option<IpLimit>| {
            Condition::new(
                limit.is_some(),
                Governor::new(limit.as_ref().unwrap_or(&limits.unused)),
            )
        };
        cfg.route("/", web::get().to(root::info))
            .route("/api/sale/status", web::get().to(sale::status))
            .route("/api/health", web::get().to(health::check))
            .route("/metrics", web::get().to(metrics::render))
            .service(
                web::scope("/api/purchases")
                    .wrap(governor(&limits.per_second))
                    .wrap(governor(&limits.per_10_seconds))
                    .route("", web::post().to(purchases::create))
                    .route("/{user_id}", web::get().to(purchases::status)),
            );
    }
}
