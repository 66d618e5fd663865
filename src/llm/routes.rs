//! REST adapter of LLM usage (API §17) and budgets (extension).

use actix::Addr;
use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde::de::{DeserializeOwned, IgnoredAny};
use serde_json::{Value, json};

use super::actor::LlmLedger;
use super::messages::*;
use super::model::{
    BudgetIn, GroupBy, LlmError, NewUsage, Period, REQUEST_TYPES, Scope, Selector, UsageFilter,
};
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

/// A body field as sent: absent or `null`, a value of the expected type, or any other
/// value, which the conversion refuses with a message naming the field (serde's own
/// message would not name it).
#[derive(Debug, Default, Deserialize)]
#[serde(untagged)]
enum Field<T> {
    #[default]
    Absent,
    Given(T),
    Other(IgnoredAny),
}

impl<T> Field<T> {
    /// The value, if any; a value of another type is refused with `wrong`.
    fn value(self, wrong: impl FnOnce() -> String) -> Result<Option<T>, LlmError> {
        match self {
            Field::Absent => Ok(None),
            Field::Given(v) => Ok(Some(v)),
            Field::Other(_) => Err(LlmError::Invalid(wrong())),
        }
    }
}

impl Field<String> {
    /// An optional string.
    fn string(self, name: &str) -> Result<Option<String>, LlmError> {
        self.value(|| format!("{name} must be a string"))
    }

    /// A non-empty string.
    fn required(self, name: &str) -> Result<String, LlmError> {
        self.string(name)?
            .filter(|s| !s.is_empty())
            .ok_or_else(|| LlmError::Invalid(format!("{name} is required (a non-empty string)")))
    }
}

impl Field<i64> {
    /// An integer ≥ 0 (a fraction, a negative number or a non-number is refused).
    fn count(self, name: &str) -> Result<Option<i64>, LlmError> {
        let wrong = || format!("{name} must be a non-negative integer");
        match self.value(wrong)? {
            Some(v) if v < 0 => Err(LlmError::Invalid(wrong())),
            v => Ok(v),
        }
    }
}

impl Field<f64> {
    /// A finite number ≥ 0.
    fn amount(self, name: &str) -> Result<Option<f64>, LlmError> {
        let wrong = || format!("{name} must be a non-negative number");
        match self.value(wrong)? {
            // `+ 0.0` turns a negative zero into zero.
            Some(v) if v.is_finite() && v >= 0.0 => Ok(Some(v + 0.0)),
            Some(_) => Err(LlmError::Invalid(wrong())),
            None => Ok(None),
        }
    }
}

/// Reads a request body into the DTO `T`, refusing anything but a JSON object (a derived
/// struct would also take an array).
fn object<T: DeserializeOwned>(body: Value) -> Result<T, LlmError> {
    if !body.is_object() {
        return Err(LlmError::Invalid(
            "request body must be a JSON object".into(),
        ));
    }
    serde_json::from_value(body).map_err(|e| LlmError::Invalid(e.to_string()))
}

/// Body of `POST /api/llm/usage` (API §17); unknown fields are ignored.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RecordUsageIn {
    instance_id: Field<String>,
    project: Field<String>,
    provider: Field<String>,
    model: Field<String>,
    tokens_in: Field<i64>,
    tokens_out: Field<i64>,
    cost_usd: Field<f64>,
    request_type: Field<String>,
    session_tag: Field<String>,
}

impl TryFrom<RecordUsageIn> for NewUsage {
    type Error = LlmError;

    /// `provider` and `model` are required; counts and the cost default to 0 and the
    /// request type to the first of [`REQUEST_TYPES`].
    fn try_from(b: RecordUsageIn) -> Result<Self, LlmError> {
        let provider = b.provider.required("provider")?;
        let model = b.model.required("model")?;
        let request_type = match b.request_type.string("request_type")? {
            None => REQUEST_TYPES[0].to_string(),
            Some(t) if t.is_empty() => REQUEST_TYPES[0].to_string(),
            Some(t) if REQUEST_TYPES.contains(&t.as_str()) => t,
            Some(t) => {
                return Err(LlmError::Invalid(format!(
                    "request_type must be completion or embedding, got {t:?}"
                )));
            }
        };
        Ok(NewUsage {
            provider,
            model,
            instance_id: b.instance_id.string("instance_id")?.unwrap_or_default(),
            project: b.project.string("project")?.unwrap_or_default(),
            session_tag: b.session_tag.string("session_tag")?.unwrap_or_default(),
            tokens_in: b.tokens_in.count("tokens_in")?.unwrap_or(0),
            tokens_out: b.tokens_out.count("tokens_out")?.unwrap_or(0),
            cost_usd: b.cost_usd.amount("cost_usd")?.unwrap_or(0.0),
            request_type,
        })
    }
}

/// Body of `PUT /api/llm/budgets/{scope}`; unknown fields are ignored.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct PutBudgetIn {
    period: Field<String>,
    max_tokens: Field<i64>,
    max_cost_usd: Field<f64>,
}

impl TryFrom<PutBudgetIn> for BudgetIn {
    type Error = LlmError;

    /// `period` (`day` default, or `month`), `max_tokens` (integer > 0) and `max_cost_usd`
    /// (number > 0), at least one of the two limits.
    fn try_from(b: PutBudgetIn) -> Result<Self, LlmError> {
        let period = match b.period.string("period")? {
            None => Period::Day,
            Some(p) if p.is_empty() => Period::Day,
            Some(p) => Period::parse(&p).ok_or_else(|| {
                LlmError::Invalid(format!("period must be day or month, got {p:?}"))
            })?,
        };
        let max_tokens = match b.max_tokens.count("max_tokens") {
            Ok(Some(v)) if v > 0 => Some(v),
            Ok(None) => None,
            _ => {
                return Err(LlmError::Invalid(
                    "max_tokens must be a positive integer".into(),
                ));
            }
        };
        let max_cost_usd = match b.max_cost_usd.amount("max_cost_usd") {
            Ok(Some(v)) if v > 0.0 => Some(v),
            Ok(None) => None,
            _ => {
                return Err(LlmError::Invalid(
                    "max_cost_usd must be a positive number".into(),
                ));
            }
        };
        if max_tokens.is_none() && max_cost_usd.is_none() {
            return Err(LlmError::Invalid(
                "a budget needs max_tokens, max_cost_usd or both".into(),
            ));
        }
        Ok(BudgetIn {
            period,
            max_tokens,
            max_cost_usd,
        })
    }
}

async fn record(
    ledger: Ledger,
    caller: Caller,
    JsonBody(body): JsonBody<Value>,
) -> ApiResult<HttpResponse> {
    let mut usage = NewUsage::try_from(object::<RecordUsageIn>(body)?)?;
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
    let budget = BudgetIn::try_from(object::<PutBudgetIn>(body)?)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(body: Value) -> Result<NewUsage, LlmError> {
        NewUsage::try_from(object::<RecordUsageIn>(body)?)
    }

    fn budget(body: Value) -> Result<BudgetIn, LlmError> {
        BudgetIn::try_from(object::<PutBudgetIn>(body)?)
    }

    #[test]
    fn usage_bodies_get_defaults() {
        let u = usage(json!({"provider": "openai", "model": "gpt-4", "extra": [1]})).unwrap();
        assert_eq!(
            u,
            NewUsage {
                instance_id: String::new(),
                project: String::new(),
                provider: "openai".into(),
                model: "gpt-4".into(),
                tokens_in: 0,
                tokens_out: 0,
                cost_usd: 0.0,
                request_type: "completion".into(),
                session_tag: String::new(),
            }
        );
        let u = usage(json!({
            "provider": "p", "model": "m", "instance_id": "i", "project": "proj",
            "session_tag": "s", "tokens_in": 10, "tokens_out": 0, "cost_usd": 0.25,
            "request_type": "embedding"
        }))
        .unwrap();
        assert_eq!(
            (u.tokens_in, u.cost_usd, u.request_type.as_str()),
            (10, 0.25, "embedding")
        );
        let u = usage(json!({"provider": "p", "model": "m", "cost_usd": 3})).unwrap();
        assert_eq!(u.cost_usd, 3.0);
        let u = usage(json!({
            "provider": "p", "model": "m", "project": null, "tokens_in": null,
            "cost_usd": -0.0, "request_type": ""
        }))
        .unwrap();
        assert_eq!(
            (u.project.as_str(), u.tokens_in, u.request_type.as_str()),
            ("", 0, "completion")
        );
        assert!(u.cost_usd.is_sign_positive());
    }

    #[test]
    fn usage_bodies_are_refused_naming_the_field() {
        let cases = [
            (json!([]), "request body must be a JSON object"),
            (json!("x"), "request body must be a JSON object"),
            (json!(null), "request body must be a JSON object"),
            (json!({"model": "m"}), "provider is required"),
            (
                json!({"provider": "", "model": "m"}),
                "provider is required",
            ),
            (
                json!({"provider": 1, "model": "m"}),
                "provider must be a string",
            ),
            (json!({"provider": "p"}), "model is required"),
            (
                json!({"provider": "p", "model": "m", "project": 3}),
                "project must be a string",
            ),
            (
                json!({"provider": "p", "model": "m", "instance_id": {}}),
                "instance_id must be a string",
            ),
            (
                json!({"provider": "p", "model": "m", "tokens_in": -1}),
                "tokens_in must be a non-negative integer",
            ),
            (
                json!({"provider": "p", "model": "m", "tokens_out": 1.5}),
                "tokens_out must be a non-negative integer",
            ),
            (
                json!({"provider": "p", "model": "m", "tokens_in": "10"}),
                "tokens_in must be a non-negative integer",
            ),
            (
                json!({"provider": "p", "model": "m", "tokens_in": 1e30}),
                "tokens_in must be a non-negative integer",
            ),
            (
                json!({"provider": "p", "model": "m", "tokens_in": u64::MAX}),
                "tokens_in must be a non-negative integer",
            ),
            (
                json!({"provider": "p", "model": "m", "cost_usd": -0.5}),
                "cost_usd must be a non-negative number",
            ),
            (
                json!({"provider": "p", "model": "m", "cost_usd": "1"}),
                "cost_usd must be a non-negative number",
            ),
            (
                json!({"provider": "p", "model": "m", "request_type": "chat"}),
                "request_type must be completion or embedding",
            ),
            (
                json!({"provider": "p", "model": "m", "request_type": 1}),
                "request_type must be a string",
            ),
        ];
        for (body, message) in cases {
            let e = usage(body.clone()).unwrap_err();
            assert!(matches!(e, LlmError::Invalid(_)), "{body}");
            assert!(e.to_string().starts_with(message), "{body}: {e}");
        }
    }

    #[test]
    fn budget_bodies_need_a_positive_limit() {
        let b = budget(json!({"max_tokens": 1000, "max_cost_usd": null})).unwrap();
        assert_eq!(
            b,
            BudgetIn {
                period: Period::Day,
                max_tokens: Some(1000),
                max_cost_usd: None
            }
        );
        let b = budget(json!({"period": "month", "max_cost_usd": 2.5})).unwrap();
        assert_eq!(
            (b.period, b.max_tokens, b.max_cost_usd),
            (Period::Month, None, Some(2.5))
        );
        let cases = [
            (json!([]), "request body must be a JSON object"),
            (json!({}), "a budget needs max_tokens, max_cost_usd or both"),
            (
                json!({"period": "week", "max_tokens": 1}),
                "period must be day or month",
            ),
            (
                json!({"period": 1, "max_tokens": 1}),
                "period must be a string",
            ),
            (
                json!({"max_tokens": 0}),
                "max_tokens must be a positive integer",
            ),
            (
                json!({"max_tokens": -5}),
                "max_tokens must be a positive integer",
            ),
            (
                json!({"max_tokens": 1.5}),
                "max_tokens must be a positive integer",
            ),
            (
                json!({"max_tokens": "10"}),
                "max_tokens must be a positive integer",
            ),
            (
                json!({"max_cost_usd": 0}),
                "max_cost_usd must be a positive number",
            ),
            (
                json!({"max_cost_usd": -1.0}),
                "max_cost_usd must be a positive number",
            ),
            (
                json!({"max_cost_usd": "1"}),
                "max_cost_usd must be a positive number",
            ),
        ];
        for (body, message) in cases {
            let e = budget(body.clone()).unwrap_err();
            assert!(e.to_string().starts_with(message), "{body}: {e}");
        }
    }
}
