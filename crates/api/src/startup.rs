//! Building the application: connections, arming the sale, the HTTP server.

use std::{net::TcpListener, time::Duration};

use actix_cors::Cors;
use actix_web::{
    dev::{Server, ServerHandle},
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
    auth::{settings::AuthSettings, BuyerAuth},
    db, error,
    feed::SaleFeed,
    inventory::{AttemptLimit, Inventory},
    limits::ip::{self, ClientAddress},
    observe,
    openapi::ApiDoc,
    queue::OrderQueue,
    routes::{self, IpLimits},
    sale::ArmedSale,
    settings::Settings,
    state::AppState,
};

/// Largest purchase body accepted: `{"userId": "<255 characters>"}` fits even
/// in 4-byte characters escaped as JSON.
pub const JSON_LIMIT: usize = 4096;

/// The api, bound to its port (and `METRICS_PORT`) and ready to run.
pub struct Application {
    port: u16,
    server: Server,
    metrics: Option<MetricsServer>,
    shutdown: CancellationToken,
    queue: OrderQueue,
}

/// `/metrics` on a port of its own.
struct MetricsServer {
    port: u16,
    server: Server,
}

/// Stops a running [`Application`] gracefully.
#[derive(Clone)]
pub struct Stopper {
    shutdown: CancellationToken,
    handle: ServerHandle,
    metrics: Option<ServerHandle>,
    queue: OrderQueue,
}

/// How long a graceful stop waits for the order pushes of purchases already
/// answered (each push gives up within two Redis command timeouts).
const DRAIN_LIMIT: Duration = Duration::from_secs(5);

impl Stopper {
    /// Ends the live streams and pushes the orders already answered 201
    /// (their pushers run on the worker threads, which stop next), then
    /// lets in-flight requests finish (30 s at most) and stops, the metrics
    /// listener with it.
    pub async fn stop(&self) {
        self.shutdown.cancel();
        let left = self.queue.drain(DRAIN_LIMIT).await;
        if left > 0 {
            tracing::warn!(
                orders = left,
                "stopping with order jobs not pushed; the reconciler will persist them"
            );
        }
        let metrics = async {
            if let Some(metrics) = &self.metrics {
                metrics.stop(true).await;
            }
        };
        futures::join!(self.handle.stop(true), metrics);
    }
}

impl Application {
    /// Connects to Redis, arms the sale (unless armed already; in the
    /// background if Redis or PostgreSQL cannot be reached yet) and binds
    /// the HTTP listener. `settings.port = 0` picks a free port (tests).
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        crate::metrics::handle();
        domain::job::write_jobs_as(settings.job_form);
        let shutdown = CancellationToken::new();
        let state = app_state(&settings, shutdown.clone()).await?;
        let queue = state.queue.clone();
        let listener = TcpListener::bind((settings.host.as_str(), settings.port))
            .with_context(|| format!("binding {}:{}", settings.host, settings.port))?;
        let port = listener
            .local_addr()
            .context("reading the bound port")?
            .port();
        // Bound before the public port starts serving: a taken metrics
        // port stops start-up instead of leaving a replica unwatched.
        let metrics = settings
            .metrics_port
            .map(|port| metrics_server(&settings.host, port))
            .transpose()?;
        let server = server(listener, state, &settings)?;
        tracing::info!(
            port,
            metrics.port = metrics.as_ref().map_or(port, |m| m.port),
            sale.id = %settings.sale.id,
            "api listening"
        );
        Ok(Self {
            port,
            server,
            metrics,
            shutdown,
            queue,
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
            metrics: self.metrics.as_ref().map(|m| m.server.handle()),
            queue: self.queue.clone(),
        }
    }

    /// Serves until stopped; SIGTERM or Ctrl-C stop it gracefully.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let stopper = self.stopper();
        tokio::spawn(async move {
            domain::signals::stop_requested().await;
            tracing::info!("shutdown requested; ending live streams and finishing requests");
            stopper.stop().await;
        });
        let metrics = async {
            match self.metrics {
                Some(metrics) => metrics.server.await,
                None => Ok(()),
            }
        };
        futures::try_join!(self.server, metrics).map(|_| ())
    }
}

/// Everything the handlers share. The sale is armed here if Redis (and,
/// for a sale Redis does not hold, PostgreSQL) answer; else the api starts
/// anyway, answers 503 and fails readiness, and arms the sale in the
/// background as soon as they do: started before its dependencies, it
/// serves without a restart.
async fn app_state(
    settings: &Settings,
    shutdown: CancellationToken,
) -> anyhow::Result<web::Data<AppState>> {
    let auth = BuyerAuth::new(&settings.auth)
        .await
        .context("loading the keys that verify buyer tokens")?;
    let keys = SaleKeys::new(&settings.sale.id);
    let inventory = Inventory::start(&settings.redis, settings.redis_pool_size, keys)
        .with_context(|| format!("configuring Redis at {}", redacted(&settings.redis.url)))?;
    let db = db::pool(&settings.database);
    let wanted = Wanted {
        id: settings.sale.id.clone(),
        total: settings.sale.stock,
        window: settings.sale.window,
    };
    let queue = OrderQueue::spawn(&settings.queue_redis, &settings.queue)
        .context("creating the queue connection")?;
    let standing = arming::Standing {
        db: db.clone(),
        queue: domain::queue::connection(&settings.queue_redis)
            .context("creating the queue connection")?,
        queue_name: settings.queue.clone(),
        unpushed: queue.unpushed(),
        // A push is tried twice, each bounded by the command timeout.
        push_limit: settings.queue_redis.command_timeout * 3,
    };
    let feed = SaleFeed::new(settings.sse_max_clients);
    let sale = ArmedSale::default();
    let arming = Arming {
        inventory: inventory.clone(),
        standing: standing.clone(),
        wanted: wanted.clone(),
        sale: sale.clone(),
        feed: feed.clone(),
        shutdown: shutdown.clone(),
    };
    // Redis up: arm now, before listening (a cluster needs its slots first).
    inventory
        .wait_connected(settings.redis.command_timeout)
        .await;
    if let Err(error) = arming.once().await {
        tracing::warn!(
            error = domain::telemetry::chain(&error),
            "the sale cannot be armed yet; answering 503 (and not ready) until it is, retrying every {} ms",
            ARM_RETRY.as_millis()
        );
        tokio::spawn(arming.until_armed());
    }
    let stock_changes = std::sync::Arc::new(crate::recent::StockChanges::default());
    let healer = Healer::new(inventory.clone(), standing, wanted, stock_changes.clone());
    Ok(web::Data::new(AppState {
        metrics: crate::metrics::SaleMetrics::new(settings.sale.id.as_str()),
        sale_id: settings.sale.id.clone(),
        sale,
        inventory,
        queue,
        db,
        attempt_limit: AttemptLimit {
            max_attempts: settings.limits.user_max_attempts,
            window_seconds: settings.limits.user_window_seconds,
        },
        replica_acks: settings.replica_acks,
        feed,
        shutdown,
        sold_out: Default::default(),
        stock_changes,
        healer,
        auth,
        sign_in_url: match &settings.auth {
            AuthSettings::Jwt(jwt) => jwt.sign_in_url.clone(),
            AuthSettings::Open => None,
        },
    }))
}

/// How often a replica whose sale is not armed yet tries again.
const ARM_RETRY: Duration = Duration::from_millis(250);

/// Arming the sale at start, again and again until Redis and PostgreSQL let it.
struct Arming {
    inventory: Inventory,
    standing: arming::Standing,
    wanted: Wanted,
    sale: ArmedSale,
    feed: SaleFeed,
    /// Stopping the api stops the attempts too.
    shutdown: CancellationToken,
}

impl Arming {
    /// One attempt; once armed, the sale is served (and fed to live pages).
    async fn once(&self) -> Result<(), arming::ArmError> {
        let sale = arming::ensure_armed(&self.inventory, &self.standing, &self.wanted).await?;
        self.feed.spawn_reader(self.inventory.clone(), sale.clone());
        self.sale.set(sale);
        Ok(())
    }

    /// Attempts every [`ARM_RETRY`] until one arms the sale or the api
    /// stops; says why it cannot every 10 s meanwhile.
    async fn until_armed(self) {
        let mut said = std::time::Instant::now();
        loop {
            let attempt = async {
                tokio::time::sleep(ARM_RETRY).await;
                self.once().await
            };
            // An attempt under way is dropped too. While Redis is down its
            // only call out is the read-only look; a call fred has already
            // sent still runs (dropping its future does not recall it).
            let attempted = tokio::select! {
                () = self.shutdown.cancelled() => {
                    tracing::info!("stopping; the sale was never armed");
                    return;
                }
                attempted = attempt => attempted,
            };
            match attempted {
                Ok(()) => {
                    tracing::info!(sale.id = %self.wanted.id, "sale armed; serving purchases");
                    return;
                }
                Err(error) if said.elapsed() >= Duration::from_secs(10) => {
                    said = std::time::Instant::now();
                    tracing::warn!(
                        error = domain::telemetry::chain(&error),
                        "the sale still cannot be armed; answering 503"
                    );
                }
                Err(_) => {}
            }
        }
    }
}

/// `/metrics` alone on `host:port`: Prometheus scrapes it there while the
/// public port answers 404 for it.
fn metrics_server(host: &str, port: u16) -> anyhow::Result<MetricsServer> {
    let listener = TcpListener::bind((host, port))
        .with_context(|| format!("binding METRICS_PORT on {host}:{port}"))?;
    let port = listener
        .local_addr()
        .context("reading the bound metrics port")?
        .port();
    let server = HttpServer::new(|| {
        App::new()
            .configure(routes::metrics_port)
            .default_service(web::to(error::not_found))
            .wrap(from_fn(error::error_bodies))
    })
    // A scrape every few seconds needs no more than one thread.
    .workers(1)
    .listen(listener)
    .context("starting the metrics server")?
    .shutdown_timeout(5)
    .disable_signals()
    .run();
    Ok(MetricsServer { port, server })
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
    let metrics_here = settings.metrics_port.is_none();
    let signing_in = state.auth.mode() != "none";

    let server = HttpServer::new(move || {
        let (app, doc) = App::new()
            .into_utoipa_app()
            .openapi(ApiDoc::openapi())
            .app_data(state.clone())
            .app_data(web::Data::new(AppState::on_this_thread(&state)))
            .configure(routes::configure(limits.clone(), metrics_here, signing_in))
            .split_for_parts();
        app.service(SwaggerUi::new("/api/docs/{_:.*}").url("/api/openapi.json", doc))
            .default_service(web::to(error::not_found))
            .wrap(from_fn(error::error_bodies))
            .wrap(cors(&origins))
            .wrap(from_fn(observe::requests))
    })
    // A client that closes its side is gone: without this a closed page's
    // live stream kept its connection and its place under SSE_MAX_CLIENTS
    // until a write to it failed, 15 s later at the soonest (the keep-alive
    // comment). Browsers and the proxies in deploy/ do not half-close a
    // connection and then wait for the answer.
    .h1_allow_half_closed(false)
    .listen(listener)
    .context("starting the HTTP server")?
    .shutdown_timeout(30)
    // Signals are ours (run_until_stopped): SSE streams must end first.
    .disable_signals()
    .run();
    Ok(server)
}

fn cors(origins: &[String]) -> Cors {
    let cors = Cors::default()
        .allowed_methods(["GET", "POST"])
        .allowed_headers([header::CONTENT_TYPE, header::ACCEPT, header::AUTHORIZATION])
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
