//! Signing in to the dashboard. With JWT auth on, `/ui/login` takes a token once and keeps it in
//! an HttpOnly, SameSite=Strict cookie scoped to `/ui`; every other page reads it from there (or
//! from an `Authorization: Bearer` header, as the API does). A page opened without a valid token
//! sends the browser to the login form and back. Forms that change something are POSTs whose
//! `Origin` must be this server (CSRF), and starting a run needs the admin role, as in the API.
//! With auth off the dashboard is open, like the API.
//!
//! The cookie is honoured under `/ui` only: the JSON API keeps taking bearer tokens alone, so no
//! ambient credential ever reaches it.

use std::sync::Arc;

use askama::Template;
use axum::extract::{OriginalUri, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::html::{STYLE_HREF, api_error_page, error_page, html};
use crate::api::auth::{Role, bearer_token};
use crate::api::state::AppState;

/// The cookie holding the dashboard's token.
pub(super) const COOKIE: &str = "strata_token";

/// Who is looking at a page: what it may offer them.
#[derive(Debug, Clone, Copy)]
pub(super) struct Viewer {
    /// `None`: auth is off, everything is allowed.
    role: Option<Role>,
}

impl Viewer {
    pub(super) fn is_admin(self) -> bool {
        self.role.is_none_or(|role| role == Role::Admin)
    }
}

/// Middleware on every `/ui` route (paths here are relative to `/ui`).
pub(super) async fn require_session(
    State(state): State<Arc<AppState>>,
    OriginalUri(original): OriginalUri,
    mut request: Request,
    next: Next,
) -> Response {
    let Some(verifier) = &state.gate.verifier else {
        request.extensions_mut().insert(Viewer { role: None });
        return next.run(request).await;
    };
    let path = request.uri().path();
    if path == "/login" || path.starts_with("/assets/") {
        return next.run(request).await;
    }
    let headers = request.headers();
    let bearer = bearer_token(headers);
    let cookie = cookie_token(headers);
    let reads = matches!(*request.method(), Method::GET | Method::HEAD);
    let role = match bearer.or(cookie.as_deref()).map(|t| verifier.verify(t)) {
        Some(Ok(role)) => role,
        Some(Err(e)) if e.status == StatusCode::FORBIDDEN => {
            return error_page(StatusCode::FORBIDDEN, "Not allowed", &e.message);
        }
        _ if reads => {
            let next_page = original
                .path_and_query()
                .map(|p| p.as_str())
                .unwrap_or("/ui/runs");
            let query = url::form_urlencoded::Serializer::new(String::new())
                .append_pair("next", next_page)
                .finish();
            return Redirect::to(&format!("/ui/login?{query}")).into_response();
        }
        _ => {
            return error_page(
                StatusCode::UNAUTHORIZED,
                "Sign in first",
                "This form needs a valid token: sign in at /ui/login.",
            );
        }
    };
    if !reads {
        // A cookie rides along with any request the browser makes, so a form posted with it
        // must come from our own pages; a bearer header cannot be sent by another site.
        if bearer.is_none() && !same_origin(headers) {
            return error_page(
                StatusCode::FORBIDDEN,
                "Refused",
                "This form was posted from another site (its Origin is not this server).",
            );
        }
        if path != "/logout" && role < Role::Admin {
            return error_page(
                StatusCode::FORBIDDEN,
                "Not allowed",
                "Starting a run needs the admin role; this token is a reader's.",
            );
        }
    }
    request.extensions_mut().insert(Viewer { role: Some(role) });
    next.run(request).await
}

fn cookie_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.to_string())
}

/// Whether a request's `Origin` is the server it was sent to (scheme-agnostic: a proxy may end
/// TLS in front of us). Browsers send `Origin` with every POST, so a missing one is refused.
pub(super) fn same_origin(headers: &HeaderMap) -> bool {
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
    match (host, origin) {
        (Some(host), Some(origin)) => origin
            .strip_prefix("http://")
            .or_else(|| origin.strip_prefix("https://"))
            .is_some_and(|rest| rest == host),
        _ => false,
    }
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage<'a> {
    css_href: &'static str,
    next: &'a str,
    auth_on: bool,
    signed_in: bool,
    error: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(super) struct LoginParams {
    next: Option<String>,
}

/// Where to go after signing in: a dashboard page, never another site.
fn safe_next(next: Option<&str>) -> &str {
    match next {
        Some(next) if next.starts_with("/ui/") && !next.starts_with("//") => next,
        _ => "/ui/runs",
    }
}

pub(super) async fn login_form(
    State(state): State<Arc<AppState>>,
    Query(params): Query<LoginParams>,
    headers: HeaderMap,
) -> Response {
    let signed_in = match (&state.gate.verifier, cookie_token(&headers)) {
        (Some(verifier), Some(token)) => verifier.verify(&token).is_ok(),
        _ => false,
    };
    login_page(
        StatusCode::OK,
        &LoginPage {
            css_href: &STYLE_HREF,
            next: safe_next(params.next.as_deref()),
            auth_on: state.gate.verifier.is_some(),
            signed_in,
            error: None,
        },
    )
}

fn login_page(status: StatusCode, page: &LoginPage) -> Response {
    match html(page) {
        Ok(page) => (status, Html(page)).into_response(),
        Err(e) => api_error_page(e),
    }
}

/// `POST /ui/login` with `token` and `next`: checks the token and keeps it in the cookie.
pub(super) async fn login_post(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let Some(verifier) = &state.gate.verifier else {
        return Redirect::to("/ui/runs").into_response();
    };
    // Login CSRF: another site must not sign a browser in with a token of its choosing.
    if !same_origin(&headers) {
        return error_page(
            StatusCode::FORBIDDEN,
            "Refused",
            "This form was posted from another site (its Origin is not this server).",
        );
    }
    let field = |name: &str| {
        url::form_urlencoded::parse(body.as_bytes())
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.trim().to_string())
    };
    let token = field("token").unwrap_or_default();
    let next = field("next");
    let next = safe_next(next.as_deref());
    // A JWT is three base64url parts; anything else could not be a cookie value anyway.
    let well_formed = !token.is_empty()
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    let checked = if well_formed {
        verifier.verify(&token).map_err(|e| e.message)
    } else {
        Err("paste the whole token (three parts separated by dots)".to_string())
    };
    if let Err(message) = checked {
        return login_page(
            StatusCode::UNAUTHORIZED,
            &LoginPage {
                css_href: &STYLE_HREF,
                next,
                auth_on: true,
                signed_in: false,
                error: Some(message),
            },
        );
    }
    let secure = forwarded_https(&headers);
    let cookie = format!(
        "{COOKIE}={token}; Path=/ui; HttpOnly; SameSite=Strict{}",
        if secure { "; Secure" } else { "" }
    );
    let mut response = Redirect::to(next).into_response();
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

/// `POST /ui/logout`: forgets the cookie.
pub(super) async fn logout_post() -> Response {
    let mut response = Redirect::to("/ui/login").into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("strata_token=; Path=/ui; HttpOnly; SameSite=Strict; Max-Age=0"),
    );
    response
}

/// Behind a proxy that ends TLS, the cookie may be marked Secure.
fn forwarded_https(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("https"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(name.clone(), HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn only_a_post_from_this_server_counts_as_same_origin() {
        let ours = headers(&[
            (header::HOST, "127.0.0.1:8080"),
            (header::ORIGIN, "http://127.0.0.1:8080"),
        ]);
        assert!(same_origin(&ours));
        for origin in ["http://evil.example", "http://127.0.0.1:8081", "null"] {
            let theirs = headers(&[(header::HOST, "127.0.0.1:8080"), (header::ORIGIN, origin)]);
            assert!(!same_origin(&theirs), "{origin}");
        }
        assert!(!same_origin(&headers(&[(header::HOST, "127.0.0.1:8080")])));
    }

    #[test]
    fn after_signing_in_the_browser_only_goes_to_dashboard_pages() {
        assert_eq!(safe_next(Some("/ui/tables/gold.x")), "/ui/tables/gold.x");
        for elsewhere in [
            "https://evil.example/",
            "//evil.example/ui/",
            "/v1/admin/refresh",
        ] {
            assert_eq!(safe_next(Some(elsewhere)), "/ui/runs", "{elsewhere}");
        }
    }

    #[test]
    fn the_token_is_read_from_its_own_cookie() {
        let map = headers(&[(header::COOKIE, "theme=dark; strata_token=a.b.c; x=1")]);
        assert_eq!(cookie_token(&map).as_deref(), Some("a.b.c"));
        assert_eq!(cookie_token(&headers(&[(header::COOKIE, "x=1")])), None);
    }
}
