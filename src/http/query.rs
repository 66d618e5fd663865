//! Query-string helpers.

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest};
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// Query parameters parsed into `T`; a malformed query string is a JSON 400 (actix's own
/// `web::Query` would answer in plain text).
#[derive(Debug)]
pub struct Query<T>(pub T);

impl<T> Query<T> {
    /// The parsed parameters.
    pub fn into_inner(self) -> T {
        self.0
    }
}

/// Parses the query string of `req` into `T`.
pub fn parse_query<T: DeserializeOwned>(req: &HttpRequest) -> Result<T, ApiError> {
    serde_urlencoded::from_str(req.query_string())
        .map_err(|e| ApiError::bad_request(format!("invalid query string: {e}")))
}

impl<T: DeserializeOwned> FromRequest for Query<T> {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(parse_query(req).map(Query))
    }
}

/// Largest list limit served; larger requests are clamped.
pub const MAX_LIMIT: u64 = 10_000;

/// A list limit (API §1.7): missing, non-numeric or <= 0 means `default`; values above
/// [`MAX_LIMIT`], however many digits they have, are clamped to it.
pub fn parse_limit(raw: Option<&str>, default: u64) -> u64 {
    let Some(v) = raw.map(str::trim) else {
        return default;
    };
    match v.parse::<i64>() {
        Ok(n) if n > 0 => (n as u64).min(MAX_LIMIT),
        Ok(_) => default,
        // Too many digits for an integer: a positive one is clamped like any large value.
        Err(_) => {
            let digits = v.strip_prefix('+').unwrap_or(v);
            if !digits.is_empty()
                && digits.bytes().all(|b| b.is_ascii_digit())
                && digits.bytes().any(|b| b != b'0')
            {
                MAX_LIMIT
            } else {
                default
            }
        }
    }
}

/// An optional instant parameter (`from`, `to`): absent or empty is `None`; anything
/// [`crate::time::parse_instant`] rejects is a 400 naming the parameter.
pub fn instant_param(name: &str, raw: Option<&str>) -> Result<Option<i64>, ApiError> {
    match raw {
        None | Some("") => Ok(None),
        Some(v) => crate::time::parse_instant(v)
            .map(Some)
            .ok_or_else(|| ApiError::bad_request(format!("{name} is not an ISO 8601 time: {v:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_falls_back_and_clamps() {
        let cases = [
            (None, 50),
            (Some("abc"), 50),
            (Some("0"), 50),
            (Some("-3"), 50),
            (Some("7"), 7),
            (Some("999999"), MAX_LIMIT),
            (Some("99999999999999999999"), MAX_LIMIT),
            (Some("+99999999999999999999"), MAX_LIMIT),
            (Some("-99999999999999999999"), 50),
            (Some("1e3"), 50),
            (Some(""), 50),
        ];
        for (raw, want) in cases {
            assert_eq!(parse_limit(raw, 50), want, "{raw:?}");
        }
    }
}
