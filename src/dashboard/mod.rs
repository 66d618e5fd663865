//! The dashboard (API §19): a second listener for people, serving a single-page app whose
//! assets are embedded in the binary, the whole REST API on the same origin (so the
//! browser needs no CORS) and a session cookie that stands in for the bearer token.
//!
//! The proxied API is the API itself: the dashboard app mounts the same routes and shares
//! the same actors, so a dashboard request sends the same domain messages as a REST one.
//! It differs in what guards it ([`Guard`], checked by the shared gate):
//! * assets, pages, `/health` and `/session` are public; `/api/*` needs the bearer token
//!   or the session cookie when a token is configured;
//! * the `Host` header must name loopback or the bind host (DNS rebinding), and a request
//!   carrying an `Origin` must come from the dashboard's own origin (cross-site forms and
//!   WebSockets);
//! * requests are not counted in the token tax and MCP is not mounted.
//!
//! In debug builds the assets are read from `src/dashboard/assets/` at each request, so
//! the page can be edited and reloaded without rebuilding.

mod session;

use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use rust_embed::RustEmbed;

pub use session::{Guard, SESSION_COOKIE, SessionKey, SessionWho};

use crate::error::{ApiError, ApiResult};

#[derive(RustEmbed)]
#[folder = "src/dashboard/assets/"]
struct Assets;

/// Paths that are pages of the single-page app: each serves `index.html`, and the app
/// routes on the path.
pub const PAGES: &[&str] = &[
    "/",
    "/state",
    "/rules",
    "/webhooks",
    "/compliance",
    "/audit",
    "/tasks",
    "/locks",
    "/topology",
    "/storage",
    "/cluster",
    "/keys",
];

/// Registers the pages, the assets and the session routes (the API routes are mounted
/// next to them by the composition root).
pub fn routes(cfg: &mut web::ServiceConfig) {
    for page in PAGES {
        cfg.service(
            web::resource(*page)
                .route(web::get().to(index))
                .default_service(web::to(crate::http::method_not_allowed("GET"))),
        );
    }
    cfg.service(
        web::resource("/session")
            .route(web::get().to(session::status))
            .route(web::post().to(session::sign_in))
            .route(web::delete().to(session::sign_out))
            .default_service(web::to(crate::http::method_not_allowed(
                "GET, POST, DELETE",
            ))),
    )
    .service(
        web::resource("/{file}")
            .route(web::get().to(asset))
            .default_service(web::to(crate::http::not_found)),
    );
}

async fn index(req: HttpRequest) -> ApiResult<HttpResponse> {
    serve(&req, "index.html")
}

async fn asset(req: HttpRequest, file: web::Path<String>) -> ApiResult<HttpResponse> {
    let name = file.into_inner();
    if name == "index.html" || !is_asset_name(&name) {
        return crate::http::not_found(req).await;
    }
    serve(&req, &name)
}

/// Plain file names only: no directories, no hidden files.
fn is_asset_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
}

/// Serves an embedded file with its content type and a content-hash ETag; `no-cache` so
/// a browser revalidates (a 304 costs one round trip) and never runs a stale app after an
/// upgrade.
fn serve(req: &HttpRequest, name: &str) -> ApiResult<HttpResponse> {
    let Some(file) = Assets::get(name) else {
        return Err(ApiError::not_found(format!("no dashboard file {name}")));
    };
    let etag = format!("\"{}\"", hex::encode(&file.metadata.sha256_hash()[..16]));
    let fresh = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| crate::state::if_none_match_hits(v, &etag));
    let mut res = if fresh {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    res.insert_header((header::ETAG, etag))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header((
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ));
    if name.ends_with(".html") {
        res.insert_header((
            header::CONTENT_SECURITY_POLICY,
            "default-src 'self'; connect-src 'self'; img-src 'self' data:; \
             style-src 'self'; script-src 'self'; frame-ancestors 'none'",
        ))
        .insert_header((header::X_FRAME_OPTIONS, "DENY"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"));
    }
    if fresh {
        return Ok(res.finish());
    }
    Ok(res
        .content_type(content_type(name))
        .body(file.data.into_owned()))
}

fn content_type(name: &str) -> &'static str {
    match name.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        Some("json") => "application/json",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asset_names_are_plain_files() {
        for ok in ["app.js", "style.css", "favicon.svg", "a_b-c.js"] {
            assert!(is_asset_name(ok), "{ok}");
        }
        for bad in ["", ".env", "..", "a/b.js", "a%2Fb", "x\\y"] {
            assert!(!is_asset_name(bad), "{bad}");
        }
    }

    #[test]
    fn the_app_is_embedded() {
        for name in ["index.html", "app.js", "style.css"] {
            assert!(Assets::get(name).is_some(), "{name} is not embedded");
        }
        assert_eq!(content_type("app.js"), "text/javascript; charset=utf-8");
        assert_eq!(content_type("x.bin"), "application/octet-stream");
    }
}
