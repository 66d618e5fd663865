//! REST adapter of LLM usage (API §17) and budgets (extension).

use actix::Addr;
use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::{Value, json};

use super::actor::LlmLedger;
use super::messages::*;
use super::model::{BudgetIn, GroupBy, NewUsage, Scope, Selector, UsageFilter};
use crate::error::ApiResult;
use crate::http::{Caller, JsonBody, Query, instant_param, method_not_allowed, parse_limit};

/// Registers the LLM usage and budget routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/api/llm/usage")
            .route(web::post().to(record))
            .route(web::get().to(list))
            .default_service(web::to(method_not_allowed("GET, POST"))),
    )
    .service(
        web::resource("/api/llm/usage/summary")
            .route(web::get().to(summary))
            .default_service(web::to(method_not_allowed("GET"))),
    )
    .service(
        web::resource("/api/llm/budgets")
            .route(web::get().to(list_budgets))
            .default_service(web::to(method_not_allowed("GET"))),
    )
    .service(
        web::resource("/api/llm/budgets/{scope}")
            .route(web::get().to(get_budget))
            .route(web::put().to(put_budget))
            .route(web::delete().to(delete_budget))
            .default_service(web::to(method_not_allowed("GET, PUT, DELETE"))),
    );
}

type Ledger = web::Data<Addr<LlmLedger>>;

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct UsageQuery {
    instance: Option<String>,
    project: Option<String>,
    session_tag: Option<String>,
    from: Option<String>,
    to: Option<String>,
    limit: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct SummaryQuery {
    group_by: Option<String>,
    from: Option<String>,
    to: Option<String>,
}

async fn record(
    ledger: Ledger,
    caller: Caller,
    JsonBody(body): JsonBody<Value>,
) -> ApiResult<HttpResponse> {
    let mut usage = NewUsage::parse(&body)?;
    if usage.instance_id.is_empty()
        && let Some(id) = caller.id()
    {
        usage.instance_id = id.to_string();
    }
    let recorded = ledger.send(RecordUsage { usage, caller }).await??;
    let u = &recorded.usage;
    let over_budget = !recorded.exceeded.is_empty();
    let mut out = json!({"id": u.id, "recorded": true, "over_budget": over_budget});
    if over_budget {
        out["exceeded"] = json!(recorded.exceeded);
    }
    Ok(HttpResponse::Ok().json(out))
}

async fn list(ledger: Ledger, q: Query<UsageQuery>) -> ApiResult<HttpResponse> {
    let q = q.into_inner();
    let filter = UsageFilter {
        from: instant_param("from", q.from.as_deref())?,
        to: instant_param("to", q.to.as_deref())?,
        selector: Selector::pick(q.instance, q.project, q.session_tag),
    };
    let limit = parse_limit(q.limit.as_deref(), 50);
    let items = ledger.send(ListUsage { filter, limit }).await??;
    let out: Vec<_> = items.iter().map(|u| u.out()).collect();
    Ok(HttpResponse::Ok().json(out))
}

async fn summary(ledger: Ledger, q: Query<SummaryQuery>) -> ApiResult<HttpResponse> {
    let q = q.into_inner();
    let group_by = GroupBy::parse(q.group_by.as_deref())?;
    let from = instant_param("from", q.from.as_deref())?;
    let to = instant_param("to", q.to.as_deref())?;
    let s = ledger.send(SummarizeUsage { group_by, from, to }).await??;
    Ok(HttpResponse::Ok().json(json!({
        "group_by": group_by.as_str(),
        "from": q.from.unwrap_or_default(),
        "to": q.to.unwrap_or_default(),
        "groups": s.groups,
        "total": s.total,
    })))
}

async fn list_budgets(ledger: Ledger) -> ApiResult<HttpResponse> {
    let all = ledger.send(ListBudgets).await??;
    Ok(HttpResponse::Ok().json(all))
}

async fn get_budget(ledger: Ledger, scope: web::Path<String>) -> ApiResult<HttpResponse> {
    let scope = Scope::parse(&scope.into_inner())?;
    let status = ledger.send(GetBudget { scope }).await??;
    Ok(HttpResponse::Ok().json(status))
}

async fn put_budget(
    ledger: Ledger,
    caller: Caller,
    scope: web::Path<String>,
    JsonBody(body): JsonBody<Value>,
) -> ApiResult<HttpResponse> {
    let scope = Scope::parse(&scope.into_inner())?;
    let budget = BudgetIn::parse(&body)?;
    let status = ledger
        .send(PutBudget {
            scope,
            budget,
            caller,
        })
        .await??;
    Ok(HttpResponse::Ok().json(status))
}

async fn delete_budget(
    ledger: Ledger,
    caller: Caller,
    scope: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let scope = Scope::parse(&scope.into_inner())?;
    let name = scope.to_string();
    ledger.send(DeleteBudget { scope, caller }).await??;
    Ok(HttpResponse::Ok().json(json!({"deleted": name})))
}
