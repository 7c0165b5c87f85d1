//! Building the application: connections, arming the sale, the HTTP server.

use std::{net::TcpListener, time::Duration};

use actix_cors::Cors;
use actix_web::{
    dev::{Server, ServerHandle},
    error::JsonPayloadError,
    http::header,
    middleware::from_fn,
    web, App, HttpServer,
};
use anyhow::Context;
use domain::{config::redacted, SaleKeys};
use tokio_util::sync::CancellationToken;
use utoipa::OpenApi;
use utoipa_actix_web::AppExt;
use utoipa_swagger_ui::SwaggerUi;

use crate::{
    arming::{self, Healer, Wanted},
    db,
    error::{self, ApiError},
    feed::SaleFeed,
    inventory::{AttemptLimit, Inventory},
    limits::ip::{self, ClientAddress},
    observe,
    openapi::ApiDoc,
    queue::OrderQueue,
    routes::{self, IpLimits},
    settings::Settings,
    state::AppState,
};

/// Largest purchase body accepted; `{"userId": "<64 chars>"}` is far below.
pub const JSON_LIMIT: usize = 4096;

/// The api, bound to its port and ready to run.
pub struct Application {
    port: u16,
    server: Server,
    shutdown: CancellationToken,
}

/// Stops a running [`Application`] gracefully.
#[derive(Clone)]
pub struct Stopper {
    shutdown: CancellationToken,
    handle: ServerHandle,
}

impl Stopper {
    /// Ends the live streams, then lets in-flight requests finish (30 s at
    /// most) and stops.
    pub async fn stop(&self) {
        self.shutdown.cancel();
        self.handle.stop(true).await;
    }
}

impl Application {
    /// Connects to Redis, arms the sale (unless armed already) and binds the
    /// HTTP listener. `settings.port = 0` picks a free port (tests).
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        crate::metrics::handle();
        let keys = SaleKeys::new(&settings.sale.id);
        let inventory = Inventory::connect(&settings.redis, settings.redis_pool_size, keys)
            .await
            .with_context(|| format!("connecting to Redis at {}", redacted(&settings.redis.url)))?;
        let db = db::pool(&settings.database);
        let wanted = Wanted {
            id: settings.sale.id.clone(),
            total: settings.sale.stock,
            window: settings.sale.window,
        };
        let sale = arming::ensure_armed(&inventory, &db, &wanted)
            .await
            .context("arming the sale")?;
        let queue = OrderQueue::spawn(&settings.queue_redis, &settings.queue)
            .context("creating the queue connection")?;
        let shutdown = CancellationToken::new();
        let feed = SaleFeed::default();
        feed.spawn_reader(inventory.clone(), sale.total_stock);
        let metrics = crate::metrics::SaleMetrics::new(sale.id.as_str());
        let stock_changes = std::sync::Arc::new(crate::recent::StockChanges::default());
        let healer = Healer::new(inventory.clone(), db.clone(), wanted, stock_changes.clone());
        let state = web::Data::new(AppState {
            sale,
            metrics,
            inventory,
            queue,
            db,
            attempt_limit: AttemptLimit {
                max_attempts: settings.limits.user_max_attempts,
                window_seconds: settings.limits.user_window_seconds,
            },
            feed,
            shutdown: shutdown.clone(),
            sold_out: Default::default(),
            stock_changes,
            healer,
        });

        let listener = TcpListener::bind((settings.host.as_str(), settings.port))
            .with_context(|| format!("binding {}:{}", settings.host, settings.port))?;
        let port = listener
            .local_addr()
            .context("reading the bound port")?
            .port();
        let server = server(listener, state, &settings)?;
        tracing::info!(port, sale.id = %settings.sale.id, "api listening");
        Ok(Self {
            port,
            server,
            shutdown,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops the server gracefully (in-flight requests finish).
    pub fn stopper(&self) -> Stopper {
        Stopper {
            shutdown: self.shutdown.clone(),
            handle: self.server.handle(),
        }
    }

    /// Serves until stopped; SIGTERM or Ctrl-C stop it gracefully.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let stopper = self.stopper();
        tokio::spawn(async move {
            wait_for_signal().await;
            tracing::info!("shutdown requested; ending live streams and finishing requests");
            stopper.stop().await;
        });
        self.server.await
    }
}

fn server(
    listener: TcpListener,
    state: web::Data<AppState>,
    settings: &Settings,
) -> anyhow::Result<Server> {
    // Limiters are built once here, outside the factory closure, so that
    // every actix worker thread shares them.
    let key = ClientAddress::new(settings.limits.trusted_proxies.clone());
    let limits = IpLimits {
        per_second: ip::limiter(
            settings.limits.ip_per_second,
            Duration::from_secs(1),
            key.clone(),
        ),
        per_10_seconds: ip::limiter(
            settings.limits.ip_per_10_seconds,
            Duration::from_secs(10),
            key.clone(),
        ),
        unused: ip::limiter(1, Duration::from_secs(1), key).context("building a rate limiter")?,
    };
    let active: Vec<_> = [&limits.per_second, &limits.per_10_seconds]
        .into_iter()
        .flatten()
        .cloned()
        .collect();
    ip::spawn_housekeeping(active);
    let origins = settings.cors_origins.clone();

    let server = HttpServer::new(move || {
        let (app, doc) = App::new()
            .into_utoipa_app()
            .openapi(ApiDoc::openapi())
            .app_data(state.clone())
            .app_data(web::Data::new(state.on_this_thread()))
            .app_data(json_config())
            .configure(routes::configure(limits.clone()))
            .split_for_parts();
        app.service(SwaggerUi::new("/api/docs/{_:.*}").url("/api/openapi.json", doc))
            .default_service(web::to(error::not_found))
            .wrap(from_fn(error::error_bodies))
            .wrap(cors(&origins))
            .wrap(from_fn(observe::requests))
    })
    .listen(listener)
    .context("starting the HTTP server")?
    .shutdown_timeout(30)
    // Signals are ours (run_until_stopped): SSE streams must end first.
    .disable_signals()
    .run();
    Ok(server)
}

fn json_config() -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(JSON_LIMIT)
        .error_handler(|err, _req| {
            let error = match err {
                JsonPayloadError::OverflowKnownLength { .. }
                | JsonPayloadError::Overflow { .. } => {
                    ApiError::PayloadTooLarge { limit: JSON_LIMIT }
                }
                JsonPayloadError::ContentType => ApiError::UnsupportedMediaType,
                _ => ApiError::MalformedJson,
            };
            error.into()
        })
}

fn cors(origins: &[String]) -> Cors {
    let cors = Cors::default()
        .allowed_methods(["GET", "POST"])
        .allowed_headers([header::CONTENT_TYPE, header::ACCEPT])
        .max_age(3600);
    if origins.iter().any(|o| o == "*") {
        return cors.allow_any_origin();
    }
    origins
        .iter()
        .fold(cors.supports_credentials(), |cors, origin| {
            cors.allowed_origin(origin)
        })
}

/// SIGTERM (orchestrators) or Ctrl-C.
async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = ctrl_c.await;
}
