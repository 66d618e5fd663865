//! The one table from error kind to HTTP status, and the JSON error body
//! `{"error": "...", "code": N}` every failure is answered with.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use serde_json::{Map, Value, json};

/// What went wrong, as far as a client is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    BadRequest,
    Unauthorized,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    Conflict,
    Gone,
    PreconditionFailed,
    PayloadTooLarge,
    Unprocessable,
    TooManyRequests,
    Unavailable,
    Internal,
}

impl ErrorKind {
    /// The table: every error kind has exactly one status.
    pub fn status(self) -> StatusCode {
        match self {
            ErrorKind::BadRequest => StatusCode::BAD_REQUEST,
            ErrorKind::Unauthorized => StatusCode::UNAUTHORIZED,
            ErrorKind::Forbidden => StatusCode::FORBIDDEN,
            ErrorKind::NotFound => StatusCode::NOT_FOUND,
            ErrorKind::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ErrorKind::Conflict => StatusCode::CONFLICT,
            ErrorKind::Gone => StatusCode::GONE,
            ErrorKind::PreconditionFailed => StatusCode::PRECONDITION_FAILED,
            ErrorKind::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorKind::Unprocessable => StatusCode::UNPROCESSABLE_ENTITY,
            ErrorKind::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
            ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// Implemented by every domain error so that `?` turns it into an [`ApiError`].
pub trait DomainError: std::error::Error + Send + Sync + 'static {
    /// The kind (and so the status) of this error.
    fn kind(&self) -> ErrorKind;

    /// Extra members for the JSON body (e.g. `current_version` on a 412).
    fn details(&self) -> Option<Map<String, Value>> {
        None
    }
}

/// An error on its way to becoming an HTTP response (boxed: handlers return it often,
/// and a small `Err` keeps every `Result` small).
#[derive(Debug)]
pub struct ApiError(Box<Inner>);

#[derive(Debug)]
struct Inner {
    kind: ErrorKind,
    message: String,
    details: Option<Map<String, Value>>,
    allow: Option<&'static str>,
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

/// Result type of every HTTP handler.
pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    /// An error of `kind` with a message safe to show to clients.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self(Box::new(Inner {
            kind,
            message: message.into(),
            details: None,
            allow: None,
            source: None,
        }))
    }

    /// 400 with `message`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::BadRequest, message)
    }

    /// 404 with `message`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, message)
    }

    /// 413 for a body over `limit` bytes.
    pub fn too_large(limit: usize) -> Self {
        Self::new(ErrorKind::PayloadTooLarge, limit_message(limit))
    }

    /// 405 naming the methods the path supports.
    pub fn method_not_allowed(allow: &'static str) -> Self {
        let mut e = Self::new(ErrorKind::MethodNotAllowed, "method not allowed");
        e.0.allow = Some(allow);
        e
    }

    /// 500 whose cause is logged but never shown to the client.
    pub fn internal(source: impl std::error::Error + Send + Sync + 'static) -> Self {
        let mut e = Self::new(ErrorKind::Internal, "internal server error");
        e.0.source = Some(Box::new(source));
        e
    }

    /// The error kind.
    pub fn kind(&self) -> ErrorKind {
        self.0.kind
    }
}

/// The 413 message for a limit of `limit` bytes ("the 10 MiB limit" for the default).
pub fn limit_message(limit: usize) -> String {
    if limit % (1024 * 1024) == 0 {
        format!("value exceeds the {} MiB limit", limit / (1024 * 1024))
    } else {
        format!("value exceeds the {limit} byte limit")
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.message)
    }
}

impl std::error::Error for ApiError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0
            .source
            .as_ref()
            .map(|s| s.as_ref() as &(dyn std::error::Error + 'static))
    }
}

impl<E: DomainError> From<E> for ApiError {
    fn from(err: E) -> Self {
        let kind = err.kind();
        if matches!(kind, ErrorKind::Internal | ErrorKind::Unavailable) {
            let message = if kind == ErrorKind::Internal {
                "internal server error"
            } else {
                "service temporarily unavailable"
            };
            let mut e = ApiError::new(kind, message);
            e.0.source = Some(Box::new(err));
            return e;
        }
        let mut e = ApiError::new(kind, err.to_string());
        e.0.details = err.details();
        e
    }
}

/// A domain actor's mailbox is closed or full: the server is shutting down or overloaded.
impl DomainError for actix::MailboxError {
    fn kind(&self) -> ErrorKind {
        ErrorKind::Unavailable
    }
}

/// The cause chain of `err`, for logs.
pub fn chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut cur = err.source();
    while let Some(cause) = cur {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        cur = cause.source();
    }
    out
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.0.kind.status()
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        if status.is_server_error() {
            tracing::error!(status = status.as_u16(), error = %chain(self), "request failed");
        }
        let mut body = Map::new();
        body.insert("error".into(), json!(self.0.message));
        body.insert("code".into(), json!(status.as_u16()));
        if let Some(details) = &self.0.details {
            for (k, v) in details {
                body.insert(k.clone(), v.clone());
            }
        }
        let mut resp = HttpResponse::build(status);
        if let Some(allow) = self.0.allow {
            resp.insert_header((header::ALLOW, HeaderValue::from_static(allow)));
        }
        if self.0.kind == ErrorKind::Unauthorized {
            resp.insert_header((header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer")));
        }
        resp.json(Value::Object(body))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_maps_to_its_status() {
        let table = [
            (ErrorKind::BadRequest, 400),
            (ErrorKind::Unauthorized, 401),
            (ErrorKind::NotFound, 404),
            (ErrorKind::MethodNotAllowed, 405),
            (ErrorKind::Conflict, 409),
            (ErrorKind::Gone, 410),
            (ErrorKind::PreconditionFailed, 412),
            (ErrorKind::PayloadTooLarge, 413),
            (ErrorKind::Unprocessable, 422),
            (ErrorKind::Unavailable, 503),
            (ErrorKind::Internal, 500),
        ];
        for (kind, code) in table {
            assert_eq!(kind.status().as_u16(), code, "{kind:?}");
        }
    }

    #[test]
    fn internal_errors_hide_their_cause() {
        let err = ApiError::internal(std::io::Error::other("disk /secret/path failed"));
        assert_eq!(err.to_string(), "internal server error");
        assert!(chain(&err).contains("/secret/path"));
    }

    #[test]
    fn limit_message_names_mebibytes() {
        assert_eq!(
            limit_message(10 * 1024 * 1024),
            "value exceeds the 10 MiB limit"
        );
        assert_eq!(limit_message(1000), "value exceeds the 1000 byte limit");
    }
}
