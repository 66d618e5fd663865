//! The token tax (API §16): REST and MCP calls counted in memory, and the middleware that
//! counts them (and credits REST calls to the agent a request names).

use std::sync::atomic::{AtomicU64, Ordering};

use actix::Addr;
use actix_web::Error;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{HttpMessage, web};
use serde::Serialize;

use super::actor::AgentMetrics;
use super::messages::RecordMetrics;
use crate::http::Caller;

/// Tokens an MCP call is estimated to cost, and a REST call to save.
pub const TOKENS_PER_CALL: u64 = 300;

/// In-memory call counters (reset on restart and by `POST /api/metrics/reset`).
#[derive(Debug, Default)]
pub struct TokenTax {
    rest: AtomicU64,
    mcp: AtomicU64,
}

/// The `token_tax` block of `GET /api/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct TokenTaxOut {
    pub mcp_calls: u64,
    pub rest_calls: u64,
    pub total_calls: u64,
    pub mcp_estimated_tokens: u64,
    pub rest_tokens_saved: u64,
    pub savings_percent: f64,
}

/// What a request path counts as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallKind {
    Rest,
    Mcp,
    Uncounted,
}

/// REST: every path under `/api/` except the metrics read/reset and the WebSocket
/// stream; MCP: `/mcp`.
pub fn classify(path: &str) -> CallKind {
    if path == "/mcp" || path.starts_with("/mcp/") {
        return CallKind::Mcp;
    }
    match path {
        "/api/metrics" | "/api/metrics/reset" | "/api/events/subscribe" => CallKind::Uncounted,
        p if p.starts_with("/api/") => CallKind::Rest,
        _ => CallKind::Uncounted,
    }
}

impl TokenTax {
    /// Counts one call of `kind`.
    pub fn count(&self, kind: CallKind) {
        match kind {
            CallKind::Rest => self.rest.fetch_add(1, Ordering::Relaxed),
            CallKind::Mcp => self.mcp.fetch_add(1, Ordering::Relaxed),
            CallKind::Uncounted => 0,
        };
    }

    /// Zeroes both counters.
    pub fn reset(&self) {
        self.rest.store(0, Ordering::Relaxed);
        self.mcp.store(0, Ordering::Relaxed);
    }

    /// The counters and what they imply.
    pub fn snapshot(&self) -> TokenTaxOut {
        let rest = self.rest.load(Ordering::Relaxed);
        let mcp = self.mcp.load(Ordering::Relaxed);
        let total = rest + mcp;
        TokenTaxOut {
            mcp_calls: mcp,
            rest_calls: rest,
            total_calls: total,
            mcp_estimated_tokens: mcp * TOKENS_PER_CALL,
            rest_tokens_saved: rest * TOKENS_PER_CALL,
            savings_percent: if total == 0 {
                0.0
            } else {
                rest as f64 / total as f64 * 100.0
            },
        }
    }
}

/// Counts the call (after auth: it runs inside the gate) and, for a REST call naming a
/// registered instance (resolved by [`crate::http::identify`], which runs first), adds one
/// to that agent's `rest_calls` without delaying the request.
pub async fn count_calls(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let kind = classify(req.path());
    if let Some(tax) = req.app_data::<web::Data<TokenTax>>() {
        tax.count(kind);
    }
    if kind == CallKind::Rest {
        let caller = req
            .extensions()
            .get::<Caller>()
            .and_then(|c| c.id().map(str::to_string));
        if let (Some(id), Some(metrics)) = (caller, req.app_data::<web::Data<Addr<AgentMetrics>>>())
        {
            metrics.do_send(RecordMetrics::one(&id, "rest_calls", 1));
        }
    }
    next.call(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification_follows_the_contract() {
        let cases = [
            ("/api/state/x", CallKind::Rest),
            ("/api/metrics/agents", CallKind::Rest),
            ("/api/metrics", CallKind::Uncounted),
            ("/api/metrics/reset", CallKind::Uncounted),
            ("/api/events/subscribe", CallKind::Uncounted),
            ("/health", CallKind::Uncounted),
            ("/mcp", CallKind::Mcp),
            ("/api", CallKind::Uncounted),
        ];
        for (path, want) in cases {
            assert_eq!(classify(path), want, "{path}");
        }
    }

    #[test]
    fn savings_are_a_share_of_all_calls() {
        let tax = TokenTax::default();
        assert_eq!(tax.snapshot().savings_percent, 0.0);
        for _ in 0..3 {
            tax.count(CallKind::Rest);
        }
        tax.count(CallKind::Mcp);
        let s = tax.snapshot();
        assert_eq!((s.rest_calls, s.mcp_calls, s.total_calls), (3, 1, 4));
        assert_eq!((s.mcp_estimated_tokens, s.rest_tokens_saved), (300, 900));
        assert_eq!(s.savings_percent, 75.0);
        tax.reset();
        assert_eq!(tax.snapshot().total_calls, 0);
    }
}
