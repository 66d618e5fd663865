//! The two HTTP listeners: the API (`/health`, REST, `/metrics`, MCP) and the dashboard (API
//! §19). Both serve one set of app data through one server builder; they differ only in
//! their routes, their middleware and their worker count.

use std::net::TcpListener;
use std::time::{Duration, Instant};

use actix_web::body::MessageBody;
use actix_web::dev::{Server, ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::middleware::from_fn;
use actix_web::{App, HttpServer, web};

use super::{Domains, StartError};
use crate::config::Config;
use crate::contracts::ContractClient;
use crate::events::SubscriberSettings;
use crate::http::{Access, AuthToken, BodyLimit, Limits, ServerInfo, StrictIdentity};
use crate::metrics::TokenTax;
use crate::specs::SchemaCache;
use crate::telemetry::{HttpTelemetry, PoolStats};

/// How long a graceful stop lets in-flight requests finish.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a client may take to send a request's head.
const CLIENT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long an idle keep-alive connection stays open.
const KEEP_ALIVE: Duration = Duration::from_secs(60);

/// A bound listener, not yet serving.
pub(super) struct Listener {
    socket: TcpListener,
    /// The configured address, for errors and logs.
    bind: String,
    /// The bound port (the one picked when the address asked for port 0).
    pub(super) port: u16,
}

impl Listener {
    /// Binds `bind` (`host:port`).
    pub(super) fn bind(bind: &str) -> Result<Listener, StartError> {
        Self::try_bind(bind).map_err(|source| StartError::Bind {
            bind: bind.to_string(),
            source,
        })
    }

    /// The same listening socket again (a promoted member serves its leader's servers on
    /// it beside its paused follower servers).
    pub(super) fn try_clone(&self) -> Result<Listener, StartError> {
        let socket = self.socket.try_clone().map_err(|source| StartError::Bind {
            bind: self.bind.clone(),
            source,
        })?;
        Ok(Listener {
            socket,
            bind: self.bind.clone(),
            port: self.port,
        })
    }

    fn try_bind(bind: &str) -> std::io::Result<Listener> {
        let socket = TcpListener::bind(bind)?;
        let port = socket.local_addr()?.port();
        Ok(Listener {
            socket,
            bind: bind.to_string(),
            port,
        })
    }

    /// Binds the dashboard's address, or `None` when it is disabled. A default address that
    /// is taken (a second server on the machine) is a warning; an address the operator chose
    /// is a startup error.
    pub(super) fn bind_dashboard(config: &Config) -> Result<Option<Listener>, StartError> {
        let bind = &config.dashboard_bind;
        if bind.is_empty() {
            return Ok(None);
        }
        match Self::try_bind(bind) {
            Ok(listener) => Ok(Some(listener)),
            Err(error) if !config.dashboard_bind_explicit => {
                tracing::warn!(
                    bind = %bind,
                    %error,
                    "dashboard disabled: its default address is not available"
                );
                Ok(None)
            }
            Err(source) => Err(StartError::Bind {
                bind: bind.clone(),
                source,
            }),
        }
    }
}

/// The built servers: the API and, when enabled, the dashboard with its port.
pub(super) struct Servers {
    pub(super) api: Server,
    pub(super) dashboard: Option<(u16, Server)>,
}

/// How a member takes part in a cluster, for its HTTP layer.
#[derive(Clone)]
pub(super) struct Membership {
    pub(super) view: crate::cluster::View,
    /// The election (PostgreSQL only), for `GET /api/cluster`.
    pub(super) election: Option<crate::cluster::election::Election>,
    /// Whether the API listener stops the process on SIGINT/SIGTERM (a member promoted to
    /// leader serves beside its follower listener, which handles them).
    pub(super) signals: bool,
}

/// Builds the servers on their bound listeners; they serve once awaited.
pub(super) fn build(
    config: &Config,
    domains: &Domains,
    pool: PoolStats,
    membership: Membership,
    api: Listener,
    dashboard: Option<Listener>,
) -> Result<Servers, StartError> {
    let signals = if membership.signals {
        Signals::Handle
    } else {
        Signals::Ignore
    };
    let shared = Shared::new(config, domains, pool, membership)?;
    let api = api_server(config, shared.clone(), api, signals)?;
    let dashboard = dashboard
        .map(|listener| {
            let port = listener.port;
            dashboard_server(config, shared, listener).map(|server| (port, server))
        })
        .transpose()?;
    Ok(Servers { api, dashboard })
}

/// What a follower serves itself (see [`crate::cluster::forward`]).
pub(super) struct FollowerParts {
    pub(super) state: actix::Addr<crate::state::StateStore>,
    pub(super) specs: actix::Addr<crate::specs::SpecRegistry>,
    pub(super) events: actix::Addr<crate::events::EventBus>,
    pub(super) ring: crate::keys::KeyRing,
    pub(super) forwarder: crate::cluster::forward::Forwarder,
    pub(super) pool: PoolStats,
}

/// A follower's servers: the API listener answers the reads it can answer exactly and
/// forwards everything else to the leader; the dashboard listener says where the dashboard
/// is (its sessions belong to the leader).
pub(super) fn build_follower(
    config: &Config,
    parts: FollowerParts,
    membership: Membership,
    api: Listener,
    dashboard: Option<Listener>,
) -> Result<Servers, StartError> {
    let telemetry = HttpTelemetry::new().map_err(|e| StartError::Metrics(e.to_string()))?;
    let info = web::Data::new(ServerInfo {
        started: Instant::now(),
        api_bind: config.bind.clone(),
        dashboard_bind: config.dashboard_bind.clone(),
        cluster: membership.view.clone(),
    });
    let token = web::Data::new(AuthToken(config.auth_token.clone()));
    let access = web::Data::new(Access {
        token: config.auth_token.clone(),
        ring: parts.ring.clone(),
        limits: Limits::new(config.rate_limit, config.rate_burst),
        strict: config.strict_identity,
    });
    let strict = web::Data::new(StrictIdentity(config.strict_identity));
    let limit = web::Data::new(BodyLimit(config.max_body_bytes));
    let state = web::Data::new(parts.state);
    let specs = web::Data::new(parts.specs);
    let events = web::Data::new(parts.events);
    let schemas = web::Data::new(SchemaCache::default());
    let subscribers = web::Data::new(SubscriberSettings {
        buffer: config.subscriber_buffer,
    });
    let telemetry = web::Data::new(telemetry);
    let pool = web::Data::new(parts.pool);
    let openapi = web::Data::new(crate::http::openapi::OpenApiDoc::new());
    let forwarder = web::Data::new(parts.forwarder);
    let election = membership.election.clone().map(web::Data::new);
    let app = move || {
        let mut app = App::new()
            .app_data(info.clone())
            .app_data(token.clone())
            .app_data(access.clone())
            .app_data(strict.clone())
            .app_data(limit.clone())
            .app_data(state.clone())
            .app_data(specs.clone())
            .app_data(events.clone())
            .app_data(schemas.clone())
            .app_data(subscribers.clone())
            .app_data(telemetry.clone())
            .app_data(pool.clone())
            .app_data(openapi.clone())
            .app_data(forwarder.clone())
            .app_data(web::PathConfig::default().error_handler(|e, _| {
                crate::error::ApiError::not_found(format!("not found: {e}")).into()
            }));
        if let Some(election) = &election {
            app = app.app_data(election.clone());
        }
        // The last `wrap` runs first: timing, then the front door, then auth.
        app.wrap(from_fn(crate::http::gate))
            .wrap(from_fn(crate::cluster::forward::route))
            .wrap(from_fn(crate::telemetry::observe))
            .configure(follower_routes)
            .default_service(web::to(crate::http::not_found))
    };
    let api = serve(app, api, api_workers(), Signals::Handle)?;
    let leader = membership.view.clone();
    let dashboard = dashboard
        .map(|listener| {
            let port = listener.port;
            let leader = leader.clone();
            let app = move || {
                let leader = leader.clone();
                App::new().default_service(web::to(move || {
                    let at = leader.get().leader;
                    async move {
                        Err::<actix_web::HttpResponse, _>(crate::error::ApiError::new(
                            crate::error::ErrorKind::Unavailable,
                            format!(
                                "this member follows; the dashboard is served by the leader ({at})"
                            ),
                        ))
                    }
                }))
            };
            serve(app, listener, 1, Signals::Ignore).map(|server| (port, server))
        })
        .transpose()?;
    Ok(Servers { api, dashboard })
}

/// The routes a follower answers itself; the front door forwards the rest.
fn follower_routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/health")
            .route(web::get().to(crate::http::health))
            .default_service(web::to(crate::http::method_not_allowed("GET"))),
    )
    .configure(crate::state::routes)
    .configure(crate::specs::routes)
    .configure(crate::events::routes)
    .configure(crate::cluster::routes)
    .service(
        web::resource("/openapi.json")
            .route(web::get().to(crate::http::openapi::serve))
            .default_service(web::to(crate::http::method_not_allowed("GET"))),
    );
}

/// The API listener: every request is timed, checked by the gate, attributed to its caller
/// and counted in the token tax; MCP is mounted at `/mcp`.
fn api_server(
    config: &Config,
    shared: Shared,
    listener: Listener,
    signals: Signals,
) -> Result<Server, StartError> {
    let mcp_hosts = crate::mcp::allowed_hosts(&config.bind, &config.mcp_allowed_hosts);
    if mcp_hosts.is_empty() {
        tracing::warn!("MCP accepts any Host header (mcp_allowed_hosts contains *)");
    }
    let mcp = crate::mcp::service(
        crate::mcp::Koor::new(
            shared.domains.instances.clone(),
            shared.domains.rules.clone(),
            shared.domains.specs.clone(),
            crate::mcp::api_base(&config.bind, listener.port),
        )
        .with_views(
            shared.domains.topology.clone(),
            shared.domains.events.clone(),
        ),
        mcp_hosts,
        config.max_body_bytes,
    );
    let app = move || {
        App::new()
            .configure(|cfg| shared.install(cfg))
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
    };
    serve(app, listener, api_workers(), signals)
}

/// The dashboard listener: its pages and the same `/health` and REST API, behind the
/// dashboard's session guard; one worker is plenty for one person's browser.
fn dashboard_server(
    config: &Config,
    shared: Shared,
    listener: Listener,
) -> Result<Server, StartError> {
    let guard = web::Data::new(
        crate::dashboard::Guard::new(
            config.auth_token.clone(),
            crate::dashboard::SessionKey::random(),
            &config.dashboard_bind,
            listener.port,
        )
        .with_keys(shared.domains.key_ring.clone()),
    );
    let app = move || {
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
    };
    let (bind, port) = (listener.bind.clone(), listener.port);
    let server = serve(app, listener, 1, Signals::Ignore)?;
    tracing::info!(bind = %bind, port, "dashboard listening");
    Ok(server)
}

/// Whether a server stops by itself on SIGINT/SIGTERM.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Signals {
    Handle,
    /// The dashboard stops with the API instead.
    Ignore,
}

/// The one server builder of both listeners: `workers` threads running `app`, graceful
/// shutdown within [`SHUTDOWN_TIMEOUT`], the same request-head timeout and keep-alive.
fn serve<F, T, B>(
    app: F,
    listener: Listener,
    workers: usize,
    signals: Signals,
) -> Result<Server, StartError>
where
    F: Fn() -> App<T> + Send + Clone + 'static,
    T: ServiceFactory<
            ServiceRequest,
            Config = (),
            Response = ServiceResponse<B>,
            Error = actix_web::Error,
            InitError = (),
        > + 'static,
    B: MessageBody + 'static,
{
    let server = HttpServer::new(app)
        .workers(workers)
        .shutdown_timeout(SHUTDOWN_TIMEOUT.as_secs())
        .client_request_timeout(CLIENT_REQUEST_TIMEOUT)
        .keep_alive(KEEP_ALIVE);
    let server = match signals {
        Signals::Handle => server,
        Signals::Ignore => server.disable_signals(),
    };
    let Listener { socket, bind, .. } = listener;
    Ok(server
        .listen(socket)
        .map_err(|source| StartError::Bind { bind, source })?
        .run())
}

/// API workers: one per core, at most 16.
fn api_workers() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .clamp(1, 16)
}

/// Every piece of app data the HTTP layer needs, built once and installed in the apps of
/// both listeners (each worker of each listener gets cheap clones).
#[derive(Clone)]
struct Shared {
    info: web::Data<ServerInfo>,
    token: web::Data<AuthToken>,
    access: web::Data<Access>,
    strict: web::Data<StrictIdentity>,
    limit: web::Data<BodyLimit>,
    domains: Domains,
    schemas: web::Data<SchemaCache>,
    tax: web::Data<TokenTax>,
    contract_client: web::Data<ContractClient>,
    subscribers: web::Data<SubscriberSettings>,
    telemetry: web::Data<HttpTelemetry>,
    pool: web::Data<PoolStats>,
    openapi: web::Data<crate::http::openapi::OpenApiDoc>,
    election: Option<web::Data<crate::cluster::election::Election>>,
}

impl Shared {
    fn new(
        config: &Config,
        domains: &Domains,
        pool: PoolStats,
        membership: Membership,
    ) -> Result<Shared, StartError> {
        let contract_client = ContractClient::new(&config.outgoing_trust).map_err(|e| {
            StartError::Load(sea_orm::DbErr::Custom(format!(
                "cannot create HTTP client: {e}"
            )))
        })?;
        let telemetry = HttpTelemetry::new().map_err(|e| StartError::Metrics(e.to_string()))?;
        Ok(Shared {
            info: web::Data::new(ServerInfo {
                started: Instant::now(),
                api_bind: config.bind.clone(),
                dashboard_bind: config.dashboard_bind.clone(),
                cluster: membership.view,
            }),
            token: web::Data::new(AuthToken(config.auth_token.clone())),
            access: web::Data::new(Access {
                token: config.auth_token.clone(),
                ring: domains.key_ring.clone(),
                limits: Limits::new(config.rate_limit, config.rate_burst),
                strict: config.strict_identity,
            }),
            strict: web::Data::new(StrictIdentity(config.strict_identity)),
            limit: web::Data::new(BodyLimit(config.max_body_bytes)),
            domains: domains.clone(),
            schemas: web::Data::new(SchemaCache::default()),
            tax: web::Data::new(TokenTax::default()),
            contract_client: web::Data::new(contract_client),
            subscribers: web::Data::new(SubscriberSettings {
                buffer: config.subscriber_buffer,
            }),
            telemetry: web::Data::new(telemetry),
            pool: web::Data::new(pool),
            openapi: web::Data::new(crate::http::openapi::OpenApiDoc::new()),
            election: membership.election.map(web::Data::new),
        })
    }

    fn install(&self, cfg: &mut web::ServiceConfig) {
        let d = &self.domains;
        if let Some(election) = &self.election {
            cfg.app_data(election.clone());
        }
        cfg.app_data(self.info.clone())
            .app_data(self.token.clone())
            .app_data(self.access.clone())
            .app_data(self.strict.clone())
            .app_data(web::Data::new(d.keys.clone()))
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
            .app_data(web::Data::new(d.tasks.clone()))
            .app_data(web::Data::new(d.locks.clone()))
            .app_data(web::Data::new(d.admin.clone()))
            .app_data(web::Data::new(d.topology.clone()))
            .app_data(self.contract_client.clone())
            .app_data(self.subscribers.clone())
            .app_data(self.telemetry.clone())
            .app_data(self.pool.clone())
            .app_data(self.openapi.clone())
            // A path segment that does not parse (a non-numeric id) is a JSON 404 like any
            // unknown id, not actix's plain-text one.
            .app_data(web::PathConfig::default().error_handler(|e, _| {
                crate::error::ApiError::not_found(format!("not found: {e}")).into()
            }));
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
    .configure(crate::llm::routes)
    .configure(crate::tasks::routes)
    .configure(crate::topology::routes)
    .configure(crate::locks::routes)
    .configure(crate::admin::routes)
    .configure(crate::keys::routes)
    .configure(crate::cluster::routes)
    .service(
        web::resource("/openapi.json")
            .route(web::get().to(crate::http::openapi::serve))
            .default_service(web::to(crate::http::method_not_allowed("GET"))),
    );
}
