//! Shared HTTP plumbing: the auth and size gate, body extractors, query helpers, the JSON
//! 404/405 fallbacks and `/health`.

mod access;
mod body;
pub mod bounds;
mod caller;
mod gate;
mod health;
pub mod hosts;
pub mod openapi;
mod query;
mod ratelimit;

pub use body::{JsonBody, RawBody};
pub use caller::{
    Agent, Caller, INSTANCE_HEADER, INSTANCE_TOKEN_HEADER, Principal, StrictIdentity, forbidden,
    identify, strict_identity,
};
pub(crate) use gate::bearer;
pub use gate::{Access, AuthToken, BodyLimit, bearer_matches, gate, token_matches};
pub use health::{ServerInfo, advertised_url, health};
pub use query::{Query, instant_param, parse_limit, parse_query};
pub use ratelimit::Limits;

use actix_web::{HttpRequest, HttpResponse};

use crate::error::{ApiError, ApiResult};

/// Default service of the whole app: every unknown route is a JSON 404.
pub async fn not_found(req: HttpRequest) -> ApiResult<HttpResponse> {
    Err(ApiError::not_found(format!(
        "no route for {} {}",
        req.method(),
        req.path()
    )))
}

/// A resource's default service: a known path with an unsupported method is a JSON 405
/// with an `Allow` header listing `allow`.
pub fn method_not_allowed(
    allow: &'static str,
) -> impl Fn() -> std::future::Ready<ApiResult<HttpResponse>> + Clone + 'static {
    move || std::future::ready(Err(ApiError::method_not_allowed(allow)))
}
