//! Prometheus metrics at `GET /metrics` (text exposition format 0.0.4), behind the same
//! auth as every other route.
//!
//! Two kinds of series: request series ([`HttpTelemetry`]: counts by method, route
//! pattern and status, and latency histograms), updated by the [`observe`] middleware on
//! every request; and domain series (WebSocket subscribers, events published, webhook
//! attempts by outcome and queue depth, instances by status, database pool use), read
//! from the owning actors at scrape time, so no domain keeps a second set of counters. The
//! database pool's use comes from a [`PoolStats`] reader that the composition root builds, so
//! no HTTP code holds the database connection.

use std::time::Instant;

use actix::Addr;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{Error, HttpResponse, web};
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

use crate::error::{ApiError, ApiResult};
use crate::events::{EventBus, GetBusStats};
use crate::instances::{CountInstances, InstanceRegistry};
use crate::webhooks::{GetDispatchStats, WebhookDispatcher};

/// Latency buckets in seconds: fine at the low end, where a local server lives.
const LATENCY_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// The route label of a request that matched no route.
const UNMATCHED: &str = "unmatched";

/// Request series, shared by every HTTP worker.
pub struct HttpTelemetry {
    registry: Registry,
    requests: IntCounterVec,
    latency: HistogramVec,
    rate_limited: IntCounterVec,
}

impl HttpTelemetry {
    /// Empty series.
    pub fn new() -> Result<Self, prometheus::Error> {
        let requests = IntCounterVec::new(
            Opts::new(
                "koor_http_requests_total",
                "HTTP requests by method, route pattern and status.",
            ),
            &["method", "route", "status"],
        )?;
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "koor_http_request_duration_seconds",
                "Time from request to response headers, by method and route pattern.",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["method", "route"],
        )?;
        let rate_limited = IntCounterVec::new(
            Opts::new(
                "koor_rate_limited_total",
                "Requests refused with 429 by the rate limit, by principal kind.",
            ),
            &["principal_kind"],
        )?;
        let registry = Registry::new();
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(latency.clone()))?;
        registry.register(Box::new(rate_limited.clone()))?;
        Ok(Self {
            registry,
            requests,
            latency,
            rate_limited,
        })
    }

    /// Counts one request refused by the rate limit.
    pub fn rate_limited(&self, principal_kind: &str) {
        self.rate_limited.with_label_values(&[principal_kind]).inc();
    }

    /// Records one finished request.
    pub fn observe(&self, method: &str, route: &str, status: u16, seconds: f64) {
        self.requests
            .with_label_values(&[method, route, status.to_string().as_str()])
            .inc();
        self.latency
            .with_label_values(&[method, route])
            .observe(seconds);
    }
}

/// The database pool's connections at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolUse {
    /// Connections open now, idle or in use.
    pub open: u32,
    /// Open connections not in use.
    pub idle: usize,
    /// The configured pool size.
    pub max: u32,
}

/// A future measuring the database's disk use.
pub type DiskFuture = std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<crate::db::DiskUse, sea_orm::DbErr>> + Send>,
>;

/// Reads the database pool's use, and the database's disk use, at scrape time. Cheap to
/// clone.
#[derive(Clone)]
pub struct PoolStats(
    std::sync::Arc<dyn Fn() -> PoolUse + Send + Sync>,
    Option<std::sync::Arc<dyn Fn() -> DiskFuture + Send + Sync>>,
);

impl PoolStats {
    /// A reader calling `read` on every scrape.
    pub fn new(read: impl Fn() -> PoolUse + Send + Sync + 'static) -> Self {
        Self(std::sync::Arc::new(read), None)
    }

    /// Also measures the disk use with `disk` on every scrape.
    pub fn with_disk(mut self, disk: impl Fn() -> DiskFuture + Send + Sync + 'static) -> Self {
        self.1 = Some(std::sync::Arc::new(disk));
        self
    }

    /// The pool's use now.
    pub fn read(&self) -> PoolUse {
        (self.0)()
    }

    /// The disk use now (`None` without a disk reader).
    pub async fn disk(&self) -> Result<Option<crate::db::DiskUse>, sea_orm::DbErr> {
        match &self.1 {
            Some(disk) => disk().await.map(Some),
            None => Ok(None),
        }
    }
}

/// A route pattern as a label: `/api/state/{key:.+}` becomes `/api/state/:key` (no
/// braces or regexes in label values, which some exposition parsers mishandle).
pub fn route_label(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len());
    let mut rest = pattern;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let Some(close) = rest[open..].find('}') else {
            out.push_str(&rest[open..]);
            return out;
        };
        let inner = &rest[open + 1..open + close];
        out.push(':');
        out.push_str(inner.split(':').next().unwrap_or(inner));
        rest = &rest[open + close + 1..];
    }
    out.push_str(rest);
    out
}

/// Times every request and counts it under its route pattern (`/api/state/:key`, not the
/// concrete path, so the number of series stays bounded). Outermost, so rejected requests
/// (401, 413) are counted too.
pub async fn observe(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let started = Instant::now();
    let telemetry = req.app_data::<web::Data<HttpTelemetry>>().cloned();
    let method = req.method().clone();
    // A span per request: with `--log-level debug`, the handler's and the commit's events
    // (`group_commit`, `commit`) can be followed back to the request that caused them.
    let span = tracing::debug_span!("request", method = %method, path = %req.path());
    let res = tracing::Instrument::instrument(next.call(req), span).await?;
    if let Some(t) = telemetry {
        let route = res.request().match_pattern();
        t.observe(
            method.as_str(),
            route
                .as_deref()
                .map_or(UNMATCHED.into(), route_label)
                .as_str(),
            res.status().as_u16(),
            started.elapsed().as_secs_f64(),
        );
    }
    Ok(res)
}

/// Registers `GET /metrics`.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/metrics")
            .route(web::get().to(scrape))
            .default_service(web::to(crate::http::method_not_allowed("GET"))),
    );
}

fn gauge(registry: &Registry, name: &str, help: &str, value: i64) -> Result<(), prometheus::Error> {
    let g = IntGauge::new(name, help)?;
    g.set(value);
    registry.register(Box::new(g))
}

fn counter(
    registry: &Registry,
    name: &str,
    help: &str,
    value: u64,
) -> Result<(), prometheus::Error> {
    let c = IntCounter::new(name, help)?;
    c.inc_by(value);
    registry.register(Box::new(c))
}

/// The domain series, read from their owners now.
async fn domain_series(
    events: &Addr<EventBus>,
    instances: &Addr<InstanceRegistry>,
    webhooks: &Addr<WebhookDispatcher>,
    pool: &PoolStats,
) -> ApiResult<Registry> {
    let bus = events.send(GetBusStats).await?;
    let counts = instances.send(CountInstances).await?;
    let hooks = webhooks.send(GetDispatchStats).await??;
    let disk = pool.disk().await.map_err(ApiError::internal)?;
    let pool = pool.read();
    let build = || -> Result<Registry, prometheus::Error> {
        let r = Registry::new();
        gauge(
            &r,
            "koor_websocket_subscribers",
            "Open event subscriptions (WebSocket sessions).",
            bus.subscribers as i64,
        )?;
        counter(
            &r,
            "koor_events_published_total",
            "Events committed since the server started.",
            bus.published,
        )?;
        gauge(
            &r,
            "koor_last_event_id",
            "Highest event id ever assigned.",
            bus.last_event_id,
        )?;
        let attempts = IntCounterVec::new(
            Opts::new(
                "koor_webhook_attempts_total",
                "Webhook delivery attempts since the server started, by outcome.",
            ),
            &["outcome"],
        )?;
        for (outcome, n) in [
            ("delivered", hooks.delivered),
            ("retrying", hooks.retrying),
            ("failed", hooks.failed),
        ] {
            attempts.with_label_values(&[outcome]).inc_by(n);
        }
        r.register(Box::new(attempts))?;
        gauge(
            &r,
            "koor_webhook_queue_depth",
            "Webhook deliveries waiting to be attempted.",
            hooks.queue_depth as i64,
        )?;
        let by_status = IntGaugeVec::new(
            Opts::new("koor_instances", "Registered agent instances by status."),
            &["status"],
        )?;
        for (status, n) in [
            ("pending", counts.pending),
            ("active", counts.active),
            ("stale", counts.stale),
        ] {
            by_status.with_label_values(&[status]).set(n as i64);
        }
        r.register(Box::new(by_status))?;
        let connections = IntGaugeVec::new(
            Opts::new(
                "koor_db_pool_connections",
                "Database pool connections by state (max is the configured size).",
            ),
            &["state"],
        )?;
        let open = i64::from(pool.open);
        let idle = pool.idle as i64;
        connections.with_label_values(&["open"]).set(open);
        connections.with_label_values(&["idle"]).set(idle);
        connections
            .with_label_values(&["in_use"])
            .set((open - idle).max(0));
        connections
            .with_label_values(&["max"])
            .set(i64::from(pool.max));
        r.register(Box::new(connections))?;
        if let Some(disk) = &disk {
            disk_series(&r, disk)?;
        }
        Ok(r)
    };
    build().map_err(ApiError::internal)
}

/// The database's disk use: its size, SQLite's WAL, and rows (and on PostgreSQL bytes)
/// per table.
fn disk_series(r: &Registry, disk: &crate::db::DiskUse) -> Result<(), prometheus::Error> {
    gauge(
        r,
        "koor_db_size_bytes",
        "Size of the database (SQLite: the main file; PostgreSQL: pg_database_size).",
        disk.database_bytes,
    )?;
    if let Some(wal) = disk.wal_bytes {
        gauge(
            r,
            "koor_db_wal_size_bytes",
            "Size of the SQLite write-ahead log file.",
            wal,
        )?;
    }
    for (name, help, values) in [
        ("koor_db_table_rows", "Rows per table.", &disk.rows),
        (
            "koor_db_table_size_bytes",
            "Bytes per table with its indexes (PostgreSQL: pg_total_relation_size).",
            &disk.table_bytes,
        ),
    ] {
        if values.is_empty() {
            continue;
        }
        let per_table = IntGaugeVec::new(Opts::new(name, help), &["table"])?;
        for (table, n) in values {
            per_table.with_label_values(&[table.as_str()]).set(*n);
        }
        r.register(Box::new(per_table))?;
    }
    Ok(())
}

async fn scrape(
    http: web::Data<HttpTelemetry>,
    events: web::Data<Addr<EventBus>>,
    instances: web::Data<Addr<InstanceRegistry>>,
    webhooks: web::Data<Addr<WebhookDispatcher>>,
    pool: web::Data<PoolStats>,
) -> ApiResult<HttpResponse> {
    let domains = domain_series(&events, &instances, &webhooks, &pool).await?;
    let mut families = http.registry.gather();
    families.extend(domains.gather());
    let encoder = TextEncoder::new();
    let mut body = Vec::new();
    encoder
        .encode(&families, &mut body)
        .map_err(ApiError::internal)?;
    Ok(HttpResponse::Ok()
        .content_type(encoder.format_type())
        .body(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_labels_name_parameters_without_braces() {
        let cases = [
            ("/api/state/{key:.+}", "/api/state/:key"),
            (
                "/api/instances/{id}/activate",
                "/api/instances/:id/activate",
            ),
            (
                "/api/rules/{project}/{rule_id}/accept",
                "/api/rules/:project/:rule_id/accept",
            ),
            ("/health", "/health"),
            ("/odd/{unclosed", "/odd/{unclosed"),
        ];
        for (pattern, want) in cases {
            assert_eq!(route_label(pattern), want, "{pattern}");
        }
    }
}
