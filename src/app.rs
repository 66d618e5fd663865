//! The composition root: config -> database -> migrations -> actors -> HTTP server.
//! `main` and the integration tests both build the server through [`Application::build`].

use std::net::TcpListener;
use std::time::{Duration, Instant};

use actix::{Actor, Addr};
use actix_web::dev::{Server, ServerHandle};
use actix_web::middleware::from_fn;
use actix_web::{App, HttpServer, web};
use sea_orm::DatabaseConnection;

use crate::audit::AuditLog;
use crate::batch::Outbox;
use crate::compliance::{ComplianceDeps, ComplianceMonitor};
use crate::config::Config;
use crate::contracts::ContractClient;
use crate::events::{BusSettings, EventBus, SubscriberSettings};
use crate::http::{AuthToken, BodyLimit, ServerInfo};
use crate::instances::InstanceRegistry;
use crate::liveness::{LivenessMonitor, LivenessSettings};
use crate::llm::LlmLedger;
use crate::metrics::{AgentMetrics, TokenTax};
use crate::rules::RuleBook;
use crate::specs::{SchemaCache, SpecRegistry};
use crate::state::StateStore;
use crate::templates::TemplateLibrary;
use crate::webhooks::{DispatchSettings, WebhookDispatcher};

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot create data directory {path}: {source}")]
    DataDir {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot open database {path}: {source}")]
    Database {
        path: String,
        source: sea_orm::DbErr,
    },
    #[error("cannot migrate database: {0}")]
    Migrate(sea_orm::DbErr),
    #[error("cannot load stored data: {0}")]
    Load(sea_orm::DbErr),
    #[error("cannot set up metrics: {0}")]
    Metrics(String),
    #[error("cannot listen on {bind}: {source}")]
    Bind {
        bind: String,
        source: std::io::Error,
    },
}

/// The addresses of every domain actor, handed to the HTTP layer as app data.
#[derive(Clone)]
pub struct Domains {
    pub state: Addr<StateStore>,
    pub specs: Addr<SpecRegistry>,
    pub rules: Addr<RuleBook>,
    pub events: Addr<EventBus>,
    pub instances: Addr<InstanceRegistry>,
    pub metrics: Addr<AgentMetrics>,
    pub liveness: Addr<LivenessMonitor>,
    pub compliance: Addr<ComplianceMonitor>,
    pub templates: Addr<TemplateLibrary>,
    pub webhooks: Addr<WebhookDispatcher>,
    pub audit: Addr<AuditLog>,
    pub llm: Addr<LlmLedger>,
}

/// A built, bound, not yet running server.
pub struct Application {
    port: u16,
    server: Server,
    /// The dashboard listener's port and server, when it is enabled.
    dashboard: Option<(u16, Server)>,
    db: DatabaseConnection,
    domains: Domains,
}

/// Creates `dir` (and parents) with mode 0700 where it does not exist yet.
pub fn ensure_data_dir(dir: &std::path::Path) -> std::io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)
}

impl Application {
    /// Binds the listeners, opens storage, runs migrations and starts the actors.
    /// Port 0 in `config.bind` picks a free port; see [`Application::port`].
    pub async fn build(config: Config) -> Result<Application, StartError> {
        // Listeners first: a taken port fails the start before any actor runs.
        let listener = TcpListener::bind(&config.bind).map_err(|source| StartError::Bind {
            bind: config.bind.clone(),
            source,
        })?;
        let port = listener
            .local_addr()
            .map_err(|source| StartError::Bind {
                bind: config.bind.clone(),
                source,
            })?
            .port();

        let dashboard_listener = bind_dashboard(&config)?;

        ensure_data_dir(&config.data_dir).map_err(|source| StartError::DataDir {
            path: config.data_dir.display().to_string(),
            source,
        })?;
        let db_path = config.database_path();
        let db = crate::db::connect(&db_path, config.db_pool_size)
            .await
            .map_err(|source| StartError::Database {
                path: db_path.display().to_string(),
                source,
            })?;
        crate::db::migrate(&db).await.map_err(StartError::Migrate)?;

        let audit_committed = std::sync::Arc::new(std::sync::atomic::AtomicI64::new(0));
        let audit = AuditLog::load(db.clone(), audit_committed.clone())
            .await
            .map_err(StartError::Load)?
            .start();
        let bus_settings = BusSettings {
            batch_max: config.write_batch_max,
            retention: config.event_retention,
            prune_interval: config.prune_interval,
        };
        let bus_outbox = Outbox::new(None, audit_committed);
        let events = EventBus::load(db.clone(), bus_outbox.clone(), bus_settings)
            .await
            .map_err(StartError::Load)?
            .start();
        let outbox = bus_outbox.with_bus(events.clone());
        let state = StateStore::load(db.clone(), outbox.clone(), config.write_batch_max)
            .await
            .map_err(StartError::Load)?
            .start();
        let specs = SpecRegistry::load(db.clone(), outbox.clone(), config.write_batch_max)
            .await
            .map_err(StartError::Load)?
            .start();
        let rules = RuleBook::load(db.clone(), outbox.clone())
            .await
            .map_err(StartError::Load)?
            .start();
        let metrics = AgentMetrics::new(db.clone(), outbox.clone(), config.write_batch_max).start();
        let instances = InstanceRegistry::load(db.clone(), outbox.clone(), config.write_batch_max)
            .await
            .map_err(StartError::Load)?
            .start();
        let liveness = LivenessMonitor::start(
            instances.clone(),
            LivenessSettings {
                stale_after: config.stale_after,
                interval: config.liveness_interval,
            },
        );
        let compliance = ComplianceMonitor::start(
            db.clone(),
            ComplianceDeps {
                instances: instances.clone(),
                specs: specs.clone(),
                outbox: outbox.clone(),
            },
            config.compliance_interval,
        );
        let templates =
            TemplateLibrary::load(db.clone(), outbox.clone(), rules.clone(), specs.clone())
                .await
                .map_err(StartError::Load)?
                .start();
        let contract_client = web::Data::new(ContractClient::new().map_err(|e| {
            StartError::Load(sea_orm::DbErr::Custom(format!(
                "cannot create HTTP client: {e}"
            )))
        })?);
        let webhooks = WebhookDispatcher::start(
            db.clone(),
            events.clone(),
            outbox.clone(),
            DispatchSettings {
                timeout: config.webhook_timeout,
                schedule: config.webhook_retry_schedule.clone(),
                block_private: config.webhook_block_private,
            },
        )
        .await
        .map_err(|e| StartError::Load(sea_orm::DbErr::Custom(e)))?;
        let llm = LlmLedger::load(db.clone(), outbox.clone(), config.write_batch_max)
            .await
            .map_err(StartError::Load)?
            .start();
        let domains = Domains {
            state,
            specs,
            rules,
            events,
            instances,
            metrics,
            liveness,
            compliance,
            templates,
            webhooks,
            audit,
            llm,
        };

        let mcp_hosts = crate::mcp::allowed_hosts(&config.bind, &config.mcp_allowed_hosts);
        if mcp_hosts.is_empty() {
            tracing::warn!("MCP accepts any Host header (mcp_allowed_hosts contains *)");
        }
        let mcp = crate::mcp::service(
            crate::mcp::Koor::new(
                domains.instances.clone(),
                domains.rules.clone(),
                domains.specs.clone(),
                crate::mcp::api_base(&config.bind, port),
            ),
            mcp_hosts,
            config.max_body_bytes,
        );

        let info = web::Data::new(ServerInfo {
            started: Instant::now(),
            api_bind: config.bind.clone(),
            dashboard_bind: config.dashboard_bind.clone(),
        });
        let shared = Shared {
            info,
            token: web::Data::new(AuthToken(config.auth_token.clone())),
            limit: web::Data::new(BodyLimit(config.max_body_bytes)),
            domains: domains.clone(),
            schemas: web::Data::new(SchemaCache::default()),
            tax: web::Data::new(TokenTax::default()),
            contract_client,
            subscribers: web::Data::new(SubscriberSettings {
                buffer: config.subscriber_buffer,
            }),
            telemetry: web::Data::new(
                crate::telemetry::HttpTelemetry::new()
                    .map_err(|e| StartError::Metrics(e.to_string()))?,
            ),
            db: web::Data::new(db.clone()),
        };

        let api = shared.clone();
        let server = HttpServer::new(move || {
            App::new()
                .configure(|cfg| api.install(cfg))
                // The last `wrap` runs first: timing, auth and size checks, who is calling,
                // then call counting.
                .wrap(from_fn(crate::metrics::count_calls))
                .wrap(from_fn(crate::http::identify))
                .wrap(from_fn(crate::http::gate))
                .wrap(from_fn(crate::telemetry::observe))
                .configure(api_routes)
                .configure(crate::telemetry::routes)
                .service(mcp.clone().scope_with_path("/mcp"))
                .default_service(web::to(crate::http::not_found))
        });
        let server = server
            .workers(workers())
            .shutdown_timeout(5)
            .client_request_timeout(Duration::from_secs(10))
            .keep_alive(Duration::from_secs(60))
            .listen(listener)
            .map_err(|source| StartError::Bind {
                bind: config.bind.clone(),
                source,
            })?
            .run();
        let dashboard = dashboard_listener
            .map(|l| dashboard(&config, l, shared))
            .transpose()?;

        Ok(Application {
            port,
            server,
            dashboard,
            db,
            domains,
        })
    }

    /// The bound API port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The bound dashboard port, when the dashboard is enabled.
    pub fn dashboard_port(&self) -> Option<u16> {
        self.dashboard.as_ref().map(|(port, _)| *port)
    }

    /// A handle to stop the server (both listeners).
    pub fn handle(&self) -> Handle {
        Handle {
            api: self.server.handle(),
            dashboard: self.dashboard.as_ref().map(|(_, s)| s.handle()),
        }
    }

    /// The domain actors (for tests that drive them directly).
    pub fn domains(&self) -> Domains {
        self.domains.clone()
    }

    /// Serves until SIGINT/SIGTERM (or [`ServerHandle::stop`]): stops accepting, lets
    /// in-flight requests finish for up to 5 s, then closes storage.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let dashboard = self.dashboard.map(|(_, server)| {
            let handle = server.handle();
            (handle, actix_web::rt::spawn(server))
        });
        let result = self.server.await;
        if let Some((handle, task)) = dashboard {
            // The API has stopped (signal or handle): the dashboard goes with it.
            handle.stop(true).await;
            let _ = task.await;
        }
        self.db.close().await.map_err(std::io::Error::other)?;
        result
    }
}

/// Stops a running [`Application`].
#[derive(Clone)]
pub struct Handle {
    api: ServerHandle,
    dashboard: Option<ServerHandle>,
}

impl Handle {
    /// Stops both listeners, gracefully (in-flight requests get up to 5 s) or not.
    pub async fn stop(&self, graceful: bool) {
        if let Some(d) = &self.dashboard {
            d.stop(graceful).await;
        }
        self.api.stop(graceful).await;
    }
}

/// Every piece of app data the HTTP layer needs, built once and installed in the apps of
/// both listeners (each worker of each listener gets cheap clones).
#[derive(Clone)]
struct Shared {
    info: web::Data<ServerInfo>,
    token: web::Data<AuthToken>,
    limit: web::Data<BodyLimit>,
    domains: Domains,
    schemas: web::Data<SchemaCache>,
    tax: web::Data<TokenTax>,
    contract_client: web::Data<ContractClient>,
    subscribers: web::Data<SubscriberSettings>,
    telemetry: web::Data<crate::telemetry::HttpTelemetry>,
    db: web::Data<DatabaseConnection>,
}

impl Shared {
    fn install(&self, cfg: &mut web::ServiceConfig) {
        let d = &self.domains;
        cfg.app_data(self.info.clone())
            .app_data(self.token.clone())
            .app_data(self.limit.clone())
            .app_data(web::Data::new(d.state.clone()))
            .app_data(web::Data::new(d.events.clone()))
            .app_data(web::Data::new(d.specs.clone()))
            .app_data(self.schemas.clone())
            .app_data(web::Data::new(d.rules.clone()))
            .app_data(web::Data::new(d.instances.clone()))
            .app_data(web::Data::new(d.metrics.clone()))
            .app_data(web::Data::new(d.liveness.clone()))
            .app_data(self.tax.clone())
            .app_data(web::Data::new(d.compliance.clone()))
            .app_data(web::Data::new(d.templates.clone()))
            .app_data(web::Data::new(d.webhooks.clone()))
            .app_data(web::Data::new(d.audit.clone()))
            .app_data(web::Data::new(d.llm.clone()))
            .app_data(self.contract_client.clone())
            .app_data(self.subscribers.clone())
            .app_data(self.telemetry.clone())
            .app_data(self.db.clone());
    }
}

/// `/health` and the REST API (everything under `/api`), the same on both listeners.
fn api_routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/health")
            .route(web::get().to(crate::http::health))
            .default_service(web::to(crate::http::method_not_allowed("GET"))),
    )
    .configure(crate::state::routes)
    .configure(crate::specs::routes)
    .configure(crate::rules::routes)
    .configure(crate::contracts::routes)
    .configure(crate::compliance::routes)
    .configure(crate::templates::routes)
    .configure(crate::webhooks::routes)
    .configure(crate::events::routes)
    .configure(crate::instances::routes)
    .configure(crate::liveness::routes)
    .configure(crate::metrics::routes)
    .configure(crate::audit::routes)
    .configure(crate::llm::routes);
}

/// Binds the dashboard's address (API §19), or `None` when it is disabled. A default
/// address that is taken (a second server on the machine) is a warning; an address the
/// operator chose is a startup error.
fn bind_dashboard(config: &Config) -> Result<Option<TcpListener>, StartError> {
    if config.dashboard_bind.is_empty() {
        return Ok(None);
    }
    match TcpListener::bind(&config.dashboard_bind) {
        Ok(l) => Ok(Some(l)),
        Err(e) if !config.dashboard_bind_explicit => {
            tracing::warn!(
                bind = %config.dashboard_bind,
                error = %e,
                "dashboard disabled: its default address is not available"
            );
            Ok(None)
        }
        Err(source) => Err(StartError::Bind {
            bind: config.dashboard_bind.clone(),
            source,
        }),
    }
}

/// Builds the dashboard server on its bound listener.
fn dashboard(
    config: &Config,
    listener: TcpListener,
    shared: Shared,
) -> Result<(u16, Server), StartError> {
    let bind_error = |source| StartError::Bind {
        bind: config.dashboard_bind.clone(),
        source,
    };
    let port = listener.local_addr().map_err(bind_error)?.port();
    let guard = web::Data::new(crate::dashboard::Guard::new(
        config.auth_token.clone(),
        crate::dashboard::SessionKey::random(),
        &config.dashboard_bind,
        port,
    ));
    let server = HttpServer::new(move || {
        App::new()
            .configure(|cfg| shared.install(cfg))
            .app_data(guard.clone())
            // Not counted in the token tax (API §16) and not timed under the API's
            // series; the gate defers to the dashboard's guard.
            .wrap(from_fn(crate::http::identify))
            .wrap(from_fn(crate::http::gate))
            .configure(api_routes)
            .configure(crate::dashboard::routes)
            .default_service(web::to(crate::http::not_found))
    })
    .workers(1)
    .shutdown_timeout(5)
    .client_request_timeout(Duration::from_secs(10))
    .keep_alive(Duration::from_secs(60))
    .disable_signals()
    .listen(listener)
    .map_err(bind_error)?
    .run();
    tracing::info!(bind = %config.dashboard_bind, port, "dashboard listening");
    Ok((port, server))
}

fn workers() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .clamp(1, 16)
}
