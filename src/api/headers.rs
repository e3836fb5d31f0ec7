//! Security headers on every answer (OWASP API8, security misconfiguration).
//!
//! Every response says what it is (`nosniff`), may not be framed (clickjacking), and sends no
//! referrer to other sites. The content security policy is per kind of answer: the JSON API loads
//! nothing (`default-src 'none'`); dashboard pages load their own stylesheet and nothing else, post
//! forms only to this server, and run no script at all. `style-src-attr 'unsafe-inline'` lets the
//! two computed shades and indents (`style="..."` in compare and lineage) through: a style
//! attribute cannot run script. Dashboard pages are per signed-in user (a cookie, which shared
//! caches do not treat as private the way they treat `Authorization`), so they are `private`:
//! `no-store` when the handler said nothing, `private, no-cache` for pages revalidated by ETag;
//! the stylesheet keeps its `public` caching.
//!
//! A handler that sets one of these headers itself keeps its value.

use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;

const API_POLICY: &str = "default-src 'none'; frame-ancestors 'none'";
const DASHBOARD_POLICY: &str = "default-src 'none'; style-src 'self'; \
    style-src-attr 'unsafe-inline'; img-src 'self' data:; form-action 'self'; \
    frame-ancestors 'none'; base-uri 'none'";

/// Middleware adding the headers of the module docs.
pub async fn security_headers(request: Request, next: Next) -> Response {
    let dashboard = crate::api::ui::is_dashboard_path(request.uri().path());
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    let mut set = |name: HeaderName, value: &'static str| {
        headers
            .entry(name)
            .or_insert_with(|| HeaderValue::from_static(value));
    };
    set(header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(header::X_FRAME_OPTIONS, "DENY");
    // `same-origin`, not `no-referrer`: browsers then still send `Origin` on the dashboard's own
    // form posts, which its CSRF check requires.
    set(header::REFERRER_POLICY, "same-origin");
    if dashboard {
        set(header::CONTENT_SECURITY_POLICY, DASHBOARD_POLICY);
        set(
            HeaderName::from_static("cross-origin-opener-policy"),
            "same-origin",
        );
        // Revalidated pages (`no-cache` with an ETag) stay so, but only in the user's browser.
        let caching = headers
            .get(header::CACHE_CONTROL)
            .and_then(|v| v.to_str().ok());
        let private = match caching {
            None => Some("no-store".to_string()),
            Some(c) if c.contains("public") || c.contains("private") => None,
            Some(c) => Some(format!("private, {c}")),
        };
        if let Some(value) = private.and_then(|v| HeaderValue::from_str(&v).ok()) {
            headers.insert(header::CACHE_CONTROL, value);
        }
    } else {
        set(header::CONTENT_SECURITY_POLICY, API_POLICY);
    }
    response
}
