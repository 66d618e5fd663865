//! REST adapter of the rules domain (API §9 and §10).

use actix::Addr;
use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

use super::actor::RuleBook;
use super::engine::validate;
use super::messages::*;
use super::model::{Rule, RuleIn};
use crate::error::{ApiError, ApiResult};
use crate::http::{Caller, JsonBody, Query, method_not_allowed};

/// Registers the validation and rule lifecycle routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/api/validate/{project}/rules")
            .route(web::get().to(list))
            .route(web::put().to(replace))
            .default_service(web::to(method_not_allowed("GET, PUT"))),
    )
    .service(
        web::resource("/api/validate/{project}")
            .route(web::post().to(check))
            .default_service(web::to(method_not_allowed("POST"))),
    )
    .service(
        web::resource("/api/rules")
            .route(web::get().to(all))
            .default_service(web::to(method_not_allowed("GET"))),
    )
    .service(
        web::resource("/api/rules/propose")
            .route(web::post().to(propose))
            .default_service(web::to(method_not_allowed("POST"))),
    )
    .service(
        web::resource("/api/rules/export")
            .route(web::get().to(export))
            .default_service(web::to(method_not_allowed("GET"))),
    )
    .service(
        web::resource("/api/rules/import")
            .route(web::post().to(import))
            .default_service(web::to(method_not_allowed("POST"))),
    )
    .service(
        web::resource("/api/rules/{project}/{rule_id}/accept")
            .route(web::post().to(accept))
            .default_service(web::to(method_not_allowed("POST"))),
    )
    .service(
        web::resource("/api/rules/{project}/{rule_id}/reject")
            .route(web::post().to(reject))
            .default_service(web::to(method_not_allowed("POST"))),
    )
    .service(
        web::resource("/api/rules/{project}/{rule_id}")
            .route(web::delete().to(delete))
            .default_service(web::to(method_not_allowed("DELETE"))),
    );
}

type Rules = web::Data<Addr<RuleBook>>;

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct StackQuery {
    stack: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct SourceQuery {
    source: Option<String>,
}

/// Body of `POST /api/validate/{project}`.
#[derive(Debug, Deserialize)]
struct ValidateIn {
    content: Option<String>,
    filename: Option<String>,
    stack: Option<String>,
}

fn listing(rules: &[Rule]) -> Vec<super::model::RuleOut<'_>> {
    rules.iter().map(Rule::out).collect()
}

async fn list(
    rules: Rules,
    project: web::Path<String>,
    q: Query<StackQuery>,
) -> ApiResult<HttpResponse> {
    let project = project.into_inner();
    let found = rules
        .send(ListRules {
            project: project.clone(),
            stack: q.into_inner().stack,
        })
        .await?;
    Ok(HttpResponse::Ok().json(json!({"project": project, "rules": listing(&found)})))
}

async fn replace(
    rules: Rules,
    project: web::Path<String>,
    JsonBody(items): JsonBody<Vec<RuleIn>>,
) -> ApiResult<HttpResponse> {
    let project = project.into_inner();
    let count = rules
        .send(ReplaceRules {
            project: project.clone(),
            rules: items,
        })
        .await??;
    Ok(HttpResponse::Ok().json(json!({"project": project, "count": count})))
}

async fn check(
    rules: Rules,
    project: web::Path<String>,
    JsonBody(body): JsonBody<ValidateIn>,
) -> ApiResult<HttpResponse> {
    let project = project.into_inner();
    let content = body
        .content
        .ok_or_else(|| ApiError::bad_request("content is required (a string, may be empty)"))?;
    let selected = rules
        .send(SelectRules {
            project: project.clone(),
            stack: body.stack,
            filename: body.filename.filter(|f| !f.is_empty()),
        })
        .await?;
    let violations = validate(&selected, &content);
    Ok(HttpResponse::Ok().json(json!({
        "project": project,
        "count": violations.len(),
        "violations": violations,
    })))
}

async fn propose(
    rules: Rules,
    caller: Caller,
    JsonBody(body): JsonBody<RuleIn>,
) -> ApiResult<HttpResponse> {
    if caller.restricted() {
        caller.require_project(body.project.as_deref().unwrap_or(""))?;
    }
    let rule = rules.send(ProposeRule { rule: body, caller }).await??;
    Ok(HttpResponse::Ok().json(json!({
        "project": rule.project,
        "rule_id": rule.rule_id,
        "status": rule.status,
    })))
}

async fn decide(
    rules: Rules,
    caller: Caller,
    path: (String, String),
    accept: bool,
) -> ApiResult<HttpResponse> {
    let (project, rule_id) = path;
    let rule = rules
        .send(DecideRule {
            project,
            rule_id,
            accept,
            caller,
        })
        .await??;
    Ok(HttpResponse::Ok().json(json!({
        "project": rule.project,
        "rule_id": rule.rule_id,
        "status": rule.status,
    })))
}

async fn accept(
    rules: Rules,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> ApiResult<HttpResponse> {
    decide(rules, caller, path.into_inner(), true).await
}

async fn reject(
    rules: Rules,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> ApiResult<HttpResponse> {
    decide(rules, caller, path.into_inner(), false).await
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct AllQuery {
    status: Option<String>,
    project: Option<String>,
}

/// `GET /api/rules[?status=S&project=P]` (koor's addition): rules of every project and
/// status, by project then rule_id, e.g. every pending proposal with `status=proposed`.
async fn all(rules: Rules, q: Query<AllQuery>) -> ApiResult<HttpResponse> {
    let q = q.into_inner();
    let nonempty = |v: Option<String>| v.filter(|s| !s.is_empty());
    let found = rules
        .send(AllRules {
            status: nonempty(q.status),
            project: nonempty(q.project),
        })
        .await?;
    Ok(HttpResponse::Ok().json(listing(&found)))
}

/// `DELETE /api/rules/{project}/{rule_id}` (koor's addition): removes one rule of any
/// source and status. Audited as `rule.delete`.
async fn delete(
    rules: Rules,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> ApiResult<HttpResponse> {
    let (project, rule_id) = path.into_inner();
    let rule = rules
        .send(DeleteRule {
            project,
            rule_id,
            caller,
        })
        .await??;
    let resource = format!("{}/{}", rule.project, rule.rule_id);
    Ok(HttpResponse::Ok().json(json!({"deleted": resource})))
}

async fn export(rules: Rules, q: Query<SourceQuery>) -> ApiResult<HttpResponse> {
    let raw = q.into_inner().source.filter(|s| !s.trim().is_empty());
    let sources: Vec<String> = raw
        .as_deref()
        .unwrap_or("local,learned")
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    let found = rules.send(ExportRules { sources }).await?;
    Ok(HttpResponse::Ok().json(listing(&found)))
}

async fn import(
    rules: Rules,
    caller: Caller,
    JsonBody(items): JsonBody<Vec<RuleIn>>,
) -> ApiResult<HttpResponse> {
    if items.is_empty() {
        return Err(ApiError::bad_request(
            "a non-empty JSON array of rules is required",
        ));
    }
    let imported = rules
        .send(ImportRules {
            rules: items,
            project: None,
            caller,
            audit_as: None,
        })
        .await??;
    Ok(HttpResponse::Ok().json(json!({"imported": imported})))
}
