//! The composition root: config -> database -> migrations -> actors -> HTTP servers.
//! `main` and the integration tests both build the server through [`Application::build`];
//! `domains` starts every domain actor, `server` builds the API and dashboard listeners.

mod domains;
mod follower;
mod server;

use actix_web::dev::{Server, ServerHandle};
use sea_orm::DatabaseConnection;

pub use domains::Domains;
use server::{Listener, Membership, Servers};

use crate::config::Config;
use crate::telemetry::{PoolStats, PoolUse};

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

/// A built, bound, not yet running server.
pub struct Application {
    port: u16,
    server: Server,
    /// The dashboard listener's port and server, when it is enabled.
    dashboard: Option<(u16, Server)>,
    db: DatabaseConnection,
    /// The domain actors (none on a follower until it leads).
    domains: Option<Domains>,
    /// The lead of a PostgreSQL cluster, while this member holds it from the start.
    leadership: Option<crate::cluster::election::Leadership>,
    /// A follower's servers and lead once it takes over (see [`follower`]).
    promotion: Option<follower::Promotion>,
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
        let api = Listener::bind(&config.bind)?;
        let dashboard = Listener::bind_dashboard(&config)?;

        ensure_data_dir(&config.data_dir).map_err(|source| StartError::DataDir {
            path: config.data_dir.display().to_string(),
            source,
        })?;
        let target = config.database();
        let advertised = crate::http::advertised_url(&config, api.port);
        let crate::db::Target::Postgres(url) = &target else {
            let db = open(&target, &config).await?;
            let view = crate::cluster::View::new(crate::cluster::Role::Single, advertised, 0);
            let membership = Membership {
                view,
                election: None,
                signals: true,
            };
            return Self::lead(config, db, target, membership, api, dashboard, None).await;
        };
        // One member of a cluster on PostgreSQL (API §27): every session of this process
        // is tagged with its member id.
        let member = crate::cluster::Member::new(advertised.clone());
        let tagged = crate::cluster::tagged_url(url, &member.id);
        let db = open(&crate::db::Target::Postgres(tagged.clone()), &config).await?;
        let election = crate::cluster::election::Election::new(url, member, config.failover);
        let leadership = election
            .try_lead()
            .await
            .map_err(|source| StartError::Database {
                path: target.describe(),
                source,
            })?;
        let Some(leadership) = leadership else {
            let view = crate::cluster::View::new(crate::cluster::Role::Follower, String::new(), 0);
            let stats = storage_stats(db.clone(), target);
            let port = api.port;
            let (servers, promotion) =
                follower::start(&config, &db, &tagged, election, view, stats, api, dashboard)
                    .await?;
            let Servers { api, dashboard } = servers;
            return Ok(Application {
                port,
                server: api,
                dashboard,
                db,
                domains: None,
                leadership: None,
                promotion: Some(promotion),
            });
        };
        let view =
            crate::cluster::View::new(crate::cluster::Role::Leader, advertised, leadership.epoch);
        let membership = Membership {
            view,
            election: Some(election),
            signals: true,
        };
        Self::lead(
            config,
            db,
            target,
            membership,
            api,
            dashboard,
            Some(leadership),
        )
        .await
    }

    /// The leader's (or single server's) start: every domain actor and the full servers.
    async fn lead(
        config: Config,
        db: DatabaseConnection,
        target: crate::db::Target,
        membership: Membership,
        api: Listener,
        dashboard: Option<Listener>,
        leadership: Option<crate::cluster::election::Leadership>,
    ) -> Result<Application, StartError> {
        let domains = domains::start(&db, &config).await?;
        let port = api.port;
        let Servers { api, dashboard } = server::build(
            &config,
            &domains,
            storage_stats(db.clone(), target),
            membership,
            api,
            dashboard,
        )?;
        Ok(Application {
            port,
            server: api,
            dashboard,
            db,
            domains: Some(domains),
            leadership,
            promotion: None,
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

    /// The domain actors (for tests that drive them directly); `None` on a follower.
    pub fn domains(&self) -> Option<Domains> {
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
        if let Some(promotion) = self.promotion {
            promotion.stop().await;
        }
        let closed = self.db.close().await.map_err(std::io::Error::other);
        if let Some(leadership) = self.leadership {
            leadership.release();
        }
        closed?;
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

/// Opens the database and applies the migrations.
async fn open(
    target: &crate::db::Target,
    config: &Config,
) -> Result<DatabaseConnection, StartError> {
    let db = crate::db::open(target, config.db_pool_size)
        .await
        .map_err(|source| StartError::Database {
            path: target.describe(),
            source,
        })?;
    crate::db::migrate(&db).await.map_err(StartError::Migrate)?;
    Ok(db)
}

/// Reads the pool statistics and the disk use for `/metrics`; the HTTP layer gets this
/// reader, never the connection.
fn storage_stats(db: DatabaseConnection, target: crate::db::Target) -> PoolStats {
    let disk_db = db.clone();
    let target = std::sync::Arc::new(target);
    pool_stats(db).with_disk(move || {
        let db = disk_db.clone();
        let target = target.clone();
        Box::pin(async move { crate::db::disk_use(&db, &target).await })
    })
}

/// Reads the pool statistics for `/metrics`.
fn pool_stats(db: DatabaseConnection) -> PoolStats {
    PoolStats::new(move || match db.get_database_backend() {
        sea_orm::DbBackend::Postgres => {
            let pool = db.get_postgres_connection_pool();
            PoolUse {
                open: pool.size(),
                idle: pool.num_idle(),
                max: pool.options().get_max_connections(),
            }
        }
        _ => {
            let pool = db.get_sqlite_connection_pool();
            PoolUse {
                open: pool.size(),
                idle: pool.num_idle(),
                max: pool.options().get_max_connections(),
            }
        }
    })
}
