//! Password login, compatible with Waldur's `ObtainAuthToken`
//! (`POST /api-auth/password/`), logout, and who the caller is
//! (`GET /api/users/me/`). The browser app uses these; so can any client of
//! the reference that logs in with a password.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Json;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::StatusCode;
use palisade_store::Store;
use serde_json::Value;

use crate::AppState;
use crate::auth::{AuthToken, AuthUser, issue_token};
use crate::error::{ApiError, ApiResult};
use crate::params::Body;
use crate::password::verify_password;
use crate::render::{BadRequest, Detail, LoginIn, MeOut, TokenOut};
use crate::stream::request::NUL_MESSAGE;

/// Failed attempts for one username from one client that lock it out.
pub const LOCKOUT_FAILURES: i64 = 4;
/// How far back failures count, and so how long a lockout lasts.
pub const LOCKOUT_WINDOW: Duration = Duration::from_secs(10 * 60);

const INVALID: ApiError = ApiError::Unauthenticated("Invalid username/password.");
const LOCKED_OUT: ApiError =
    ApiError::Unauthenticated("Username is locked out. Try in 10 minutes.");
const DISABLED: ApiError = ApiError::Unauthenticated("User account is disabled.");

/// One required string field of the login body, with DRF's messages.
fn field<'a>(body: &'a Body, name: &str) -> Result<&'a str, &'static str> {
    let value = match body {
        Body::Json(json) => match json.get(name) {
            Some(Value::String(text)) => Some(text.as_str()),
            Some(Value::Null) => return Err("This field may not be null."),
            Some(_) => return Err("Not a valid string."),
            None => None,
        },
        Body::Form(fields) => fields
            .iter()
            .rev()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str()),
    };
    match value {
        None => Err("This field is required."),
        Some("") => Err("This field may not be blank."),
        Some(text) if text.contains('\0') => Err(NUL_MESSAGE),
        Some(text) => Ok(text),
    }
}

/// The client's address, the key of the lockout beside the username. Behind
/// a proxy this is the proxy's address (see docs/operations.md).
fn client_ip(request: &Request) -> String {
    request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip().to_string())
        .unwrap_or_else(|| "unknown".to_owned())
}

fn window_start() -> palisade_store::Timestamp {
    palisade_store::now()
        - chrono::Duration::from_std(LOCKOUT_WINDOW).unwrap_or(chrono::Duration::minutes(10))
}

/// Exchange a username and password for a new API token.
#[utoipa::path(
    post, path = "/api-auth/password/", tag = "auth",
    request_body = LoginIn,
    responses(
        (status = 200, description = "A new token, valid for `PALISADE_LOGIN_TOKEN_TTL`", body = TokenOut),
        (status = 400, description = "A field is missing, blank or has a NUL character; or malformed JSON", body = BadRequest),
        (status = 401, description = "`Invalid username/password.`, `User account is disabled.` or `Username is locked out. Try in 10 minutes.`", body = Detail),
        (status = 415, body = Detail),
    ),
)]
pub async fn obtain_token(
    State(state): State<AppState>,
    request: Request,
) -> ApiResult<Json<TokenOut>> {
    let ip = client_ip(&request);
    let body = Body::read(request, &state, true).await?;
    let (username, password) = match (field(&body, "username"), field(&body, "password")) {
        (Ok(username), Ok(password)) => (username, password),
        (username, password) => {
            let mut errors = Vec::new();
            if let Err(message) = username {
                errors.push(("username".to_owned(), message.to_owned()));
            }
            if let Err(message) = password {
                errors.push(("password".to_owned(), message.to_owned()));
            }
            return Err(ApiError::Validation(errors));
        }
    };
    let store: &dyn Store = state.store.as_ref();
    let since = window_start();
    if store.count_login_failures(username, &ip, since).await? >= LOCKOUT_FAILURES {
        return Err(LOCKED_OUT);
    }
    let user = store.user_by_username(username).await?;
    let stored = match &user {
        Some(user) => store.password_hash(user.id).await?,
        None => None,
    };
    let user = match user {
        Some(user) if verify_password(stored, password).await => user,
        _ => {
            // Unknown users too: a lockout must not reveal which names exist.
            verify_failed(store, username, &ip, since).await?;
            return Err(INVALID);
        }
    };
    if !user.is_active {
        return Err(DISABLED);
    }
    store.clear_login_failures(username, &ip).await?;
    let token = issue_token(store, &user, Some(state.login_token_ttl)).await?;
    tracing::info!(username = %user.username, client = %ip, "password login");
    Ok(Json(TokenOut { token }))
}

async fn verify_failed(
    store: &dyn Store,
    username: &str,
    ip: &str,
    since: palisade_store::Timestamp,
) -> ApiResult<()> {
    store.record_login_failure(username, ip, since).await?;
    tracing::info!(username = %username, client = %ip, "failed password login");
    Ok(())
}

/// Revoke the token this request is authenticated with.
#[utoipa::path(
    post, path = "/api-auth/logout/", tag = "auth",
    responses((status = 204, description = "The token no longer works"), (status = 401, body = Detail)),
    security(("token" = []))
)]
pub async fn logout(State(state): State<AppState>, auth: AuthToken) -> ApiResult<StatusCode> {
    state.store.revoke_token(auth.token.id).await?;
    tracing::info!(username = %auth.user.username, "logout");
    Ok(StatusCode::NO_CONTENT)
}

/// The authenticated user.
#[utoipa::path(
    get, path = "/api/users/me/", tag = "users",
    responses((status = 200, body = MeOut), (status = 401, body = Detail)),
    security(("token" = []))
)]
pub async fn me(AuthUser(user): AuthUser) -> Json<MeOut> {
    Json(MeOut::new(&user))
}
