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

/// Mailbox size of the domain actors. Senders using `send` wait when it is full
/// (backpressure); it is large so that bursts from many HTTP workers rarely wait.
pub const MAILBOX_CAPACITY: usize = 1 << 16;

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
    /// Opens storage, runs migrations, starts the actors and binds the listener.
    /// Port 0 in `config.bind` picks a free port; see [`Application::port`].
    pub async fn build(config: Config) -> Result<Application, StartError> {
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

        let audit = AuditLog::load(db.clone(), config.write_batch_max)
            .await
            .map_err(StartError::Load)?
            .start();
        let bus_settings = BusSettings {
            batch_max: config.write_batch_max,
            retention: config.event_retention,
            prune_interval: config.prune_interval,
        };
        let events = EventBus::load(db.clone(), bus_settings)
            .await
            .map_err(StartError::Load)?
            .start();
        let state = StateStore::load(db.clone(), config.write_batch_max, events.clone())
            .await
            .map_err(StartError::Load)?
            .start();
        let specs = SpecRegistry::load(db.clone(), config.write_batch_max, events.clone())
            .await
            .map_err(StartError::Load)?
            .start();
        let rules = RuleBook::load(db.clone(), events.clone())
            .await
            .map_err(StartError::Load)?
            .start();
        let metrics = AgentMetrics::new(db.clone(), config.write_batch_max).start();
        let instances = InstanceRegistry::load(db.clone(), config.write_batch_max, events.clone())
            .await
            .map_err(StartError::Load)?
            .start();
        let liveness = LivenessMonitor::start(
            instances.clone(),
            events.clone(),
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
                events: events.clone(),
                metrics: metrics.clone(),
            },
            config.compliance_interval,
        );
        let templates = TemplateLibrary::load(db.clone(), rules.clone(), specs.clone())
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
            DispatchSettings {
                timeout: config.webhook_timeout,
                schedule: config.webhook_retry_schedule.clone(),
                block_private: config.webhook_block_private,
            },
        )
        .await
        .map_err(|e| StartError::Load(sea_orm::DbErr::Custom(e)))?;
        let llm = LlmLedger::load(db.clone(), config.write_batch_max, events.clone())
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

        let mcp_hosts = crate::mcp::allowed_hosts(&config.bind, &config.mcp_allowed_hosts);
        if mcp_hosts.is_empty() {
            tracing::warn!("MCP accepts any Host header (mcp_allowed_hosts contains *)");
        }
        let mcp = crate::mcp::service(
            crate::mcp::Koor::new(
                domains.instances.clone(),
                domains.rules.clone(),
                domains.specs.clone(),
                domains.audit.clone(),
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
        let token = web::Data::new(AuthToken(config.auth_token.clone()));
        let limit = web::Data::new(BodyLimit(config.max_body_bytes));
        let state_addr = web::Data::new(domains.state.clone());
        let events_addr = web::Data::new(domains.events.clone());
        let specs_addr = web::Data::new(domains.specs.clone());
        let schemas = web::Data::new(SchemaCache::default());
        let rules_addr = web::Data::new(domains.rules.clone());
        let instances_addr = web::Data::new(domains.instances.clone());
        let metrics_addr = web::Data::new(domains.metrics.clone());
        let liveness_addr = web::Data::new(domains.liveness.clone());
        let tax = web::Data::new(TokenTax::default());
        let compliance_addr = web::Data::new(domains.compliance.clone());
        let templates_addr = web::Data::new(domains.templates.clone());
        let webhooks_addr = web::Data::new(domains.webhooks.clone());
        let audit_addr = web::Data::new(domains.audit.clone());
        let llm_addr = web::Data::new(domains.llm.clone());
        let http_telemetry = web::Data::new(
            crate::telemetry::HttpTelemetry::new()
                .map_err(|e| StartError::Metrics(e.to_string()))?,
        );
        let db_data = web::Data::new(db.clone());
        let subscribers = web::Data::new(SubscriberSettings {
            buffer: config.subscriber_buffer,
        });

        let server = HttpServer::new(move || {
            App::new()
                .app_data(info.clone())
                .app_data(token.clone())
                .app_data(limit.clone())
                .app_data(state_addr.clone())
                .app_data(events_addr.clone())
                .app_data(specs_addr.clone())
                .app_data(schemas.clone())
                .app_data(rules_addr.clone())
                .app_data(instances_addr.clone())
                .app_data(metrics_addr.clone())
                .app_data(liveness_addr.clone())
                .app_data(tax.clone())
                .app_data(compliance_addr.clone())
                .app_data(templates_addr.clone())
                .app_data(webhooks_addr.clone())
                .app_data(audit_addr.clone())
                .app_data(llm_addr.clone())
                .app_data(contract_client.clone())
                .app_data(subscribers.clone())
                .app_data(http_telemetry.clone())
                .app_data(db_data.clone())
                // The last `wrap` runs first: timing, auth and size checks, who is calling,
                // then call counting.
                .wrap(from_fn(crate::metrics::count_calls))
                .wrap(from_fn(crate::http::identify))
                .wrap(from_fn(crate::http::gate))
                .wrap(from_fn(crate::telemetry::observe))
                .service(
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
                .configure(crate::llm::routes)
                .configure(crate::telemetry::routes)
                .service(mcp.clone().scope_with_path("/mcp"))
                .default_service(web::to(crate::http::not_found))
        })
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

        Ok(Application {
            port,
            server,
            db,
            domains,
        })
    }

    /// The bound API port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A handle to stop the server.
    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// The domain actors (for tests that drive them directly).
    pub fn domains(&self) -> Domains {
        self.domains.clone()
    }

    /// Serves until SIGINT/SIGTERM (or [`ServerHandle::stop`]): stops accepting, lets
    /// in-flight requests finish for up to 5 s, then closes storage.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let result = self.server.await;
        self.db.close().await.map_err(std::io::Error::other)?;
        result
    }
}

fn workers() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .clamp(1, 16)
}
