//! JWT bearer auth: who may call what.
//!
//! Off unless `[serve.auth]` names a key. Then every path outside `serve.open_paths` needs
//! `Authorization: Bearer <token>`, verified with exactly the configured algorithm (HS256 secret or
//! RS256 public key), so `alg: none` and algorithm-swap tokens are refused; `exp` is required.
//! Roles come from the `role` claim (a string) or `roles` (a list): `reader` may call every read
//! endpoint and SQL, `admin` everything, including `/v1/admin/*`, `POST /v1/runs` and appending
//! rows. Missing, malformed, expired or
//! wrongly signed tokens get 401; a valid token without the needed role gets 403.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

use crate::api::error::ApiError;
use crate::config::serve::{AuthConfig, AuthKey};
use crate::error::{Error, Result};

/// What a token lets its bearer do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    Reader,
    Admin,
}

impl Role {
    fn parse(name: &str) -> Option<Role> {
        match name {
            "reader" => Some(Role::Reader),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

#[derive(Debug, Deserialize)]
struct Claims {
    #[serde(default)]
    role: Option<String>,
    #[serde(default)]
    roles: Vec<String>,
}

/// Checks tokens against the configured key.
pub struct Verifier {
    key: DecodingKey,
    validation: Validation,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("algorithms", &self.validation.algorithms)
            .finish_non_exhaustive()
    }
}

impl Verifier {
    pub fn try_new(config: &AuthConfig) -> Result<Verifier> {
        let (key, algorithm) = match &config.key {
            AuthKey::Hs256Secret(secret) => (
                DecodingKey::from_secret(secret.as_bytes()),
                Algorithm::HS256,
            ),
            AuthKey::Rs256PublicKeyFile(path) => {
                let pem = std::fs::read(path).map_err(|e| Error::io(path, e))?;
                let key = DecodingKey::from_rsa_pem(&pem).map_err(|e| {
                    Error::Usage(format!(
                        "serve.auth.rs256_public_key_file {}: not an RSA public key in PEM: {e}",
                        path.display()
                    ))
                })?;
                (key, Algorithm::RS256)
            }
        };
        let mut validation = Validation::new(algorithm);
        validation.leeway = 5;
        if let Some(issuer) = &config.issuer {
            validation.set_issuer(&[issuer]);
        }
        match &config.audience {
            Some(audience) => validation.set_audience(&[audience]),
            None => validation.validate_aud = false,
        }
        Ok(Verifier { key, validation })
    }

    /// The highest role a token grants.
    pub fn verify(&self, token: &str) -> std::result::Result<Role, ApiError> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation)
            .map_err(|e| unauthorized(&format!("invalid token: {e}")))?;
        let claims = data.claims;
        claims
            .role
            .iter()
            .chain(&claims.roles)
            .filter_map(|r| Role::parse(r))
            .max()
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::FORBIDDEN,
                    "forbidden",
                    "the token has no role (expected role = \"reader\" or \"admin\")",
                )
            })
    }
}

fn unauthorized(message: &str) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
}

/// The role a request needs: admin for `/v1/admin/*`, starting runs and appending rows.
fn required_role(method: &axum::http::Method, path: &str) -> Role {
    let writes = method == axum::http::Method::POST
        && (path == "/v1/runs" || (path.starts_with("/v1/tables/") && path.ends_with("/rows")));
    if path.starts_with("/v1/admin/") || writes {
        Role::Admin
    } else {
        Role::Reader
    }
}

/// What [`require_token`] checks requests against.
#[derive(Debug)]
pub struct Gate {
    /// `None`: auth is off.
    pub verifier: Option<Verifier>,
    /// Paths that answer without a token (`serve.open_paths`).
    pub open_paths: Vec<String>,
}

/// The token of an `Authorization: Bearer <token>` header, trimmed.
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
}

/// Middleware enforcing the rules of the module docs.
pub async fn require_token(
    State(gate): State<Arc<Gate>>,
    request: Request,
    next: Next,
) -> Response {
    let Some(verifier) = &gate.verifier else {
        return next.run(request).await;
    };
    let path = request.uri().path();
    // The dashboard signs its users in itself (`ui::session`: cookie or bearer, CSRF checks).
    let dashboard = crate::api::ui::is_dashboard_path(path);
    if dashboard || gate.open_paths.iter().any(|p| p == path) {
        return next.run(request).await;
    }
    let token = bearer_token(request.headers());
    let outcome = match token {
        None => Err(unauthorized(
            "missing bearer token (Authorization: Bearer <jwt>)",
        )),
        Some(token) => verifier.verify(token),
    };
    match outcome {
        Ok(role) if role >= required_role(request.method(), path) => next.run(request).await,
        Ok(_) => ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("{path} needs the admin role"),
        )
        .into_response(),
        Err(e) => {
            let challenge = e.status == StatusCode::UNAUTHORIZED;
            let mut response = e.into_response();
            if challenge {
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            response
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::Method;

    #[test]
    fn predictions_and_model_reads_need_a_reader_writes_an_admin() {
        for (method, path) in [
            (Method::GET, "/v1/models"),
            (Method::GET, "/v1/models/penguin_species"),
            (Method::POST, "/v1/models/penguin_species/predict"),
            (Method::POST, "/v1/query"),
            (Method::GET, "/v1/tables/gold.x/rows"),
        ] {
            assert_eq!(
                required_role(&method, path),
                Role::Reader,
                "{method} {path}"
            );
        }
        for (method, path) in [
            (Method::POST, "/v1/runs"),
            (Method::POST, "/v1/tables/bronze.x/rows"),
            (Method::POST, "/v1/admin/refresh"),
        ] {
            assert_eq!(required_role(&method, path), Role::Admin, "{method} {path}");
        }
    }
}
