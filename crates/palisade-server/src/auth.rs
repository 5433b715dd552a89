//! API tokens: how they are made, stored and checked.
//!
//! A token is 64 hex characters (32 random bytes). The database keeps only
//! its first 12 characters, as a lookup key, and the SHA-256 of the whole
//! token, so a leaked database yields no usable token. The hash comparison is
//! constant-time so response timing says nothing about how close a guess was.

use std::time::Duration;

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use palisade_store::{NewToken, Store, StoreError, StoredToken, User};
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::AppState;
use crate::error::ApiError;

const TOKEN_HEX_LEN: usize = 64;
const PREFIX_LEN: usize = 12;

fn hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// Creates a token for `user`, valid for `ttl` (forever when `None`), and
/// returns the secret, which is not stored anywhere.
pub async fn issue_token(
    store: &dyn Store,
    user: &User,
    ttl: Option<Duration>,
) -> Result<String, StoreError> {
    let expires = match ttl {
        None => None,
        Some(ttl) => {
            let ttl = chrono::Duration::from_std(ttl)
                .map_err(|_| StoreError::Conflict(format!("token lifetime {ttl:?} is too long")))?;
            Some(palisade_store::now() + ttl)
        }
    };
    // A prefix collision (48 random bits) is astronomically unlikely, but
    // retrying costs nothing and keeps the unique index authoritative.
    let mut attempts = 0;
    loop {
        let mut secret = [0u8; TOKEN_HEX_LEN / 2];
        rand::rng().fill_bytes(&mut secret);
        let token = hex::encode(secret);
        let new = NewToken {
            prefix: token[..PREFIX_LEN].to_owned(),
            hash: hash(&token),
            expires,
        };
        match store.insert_token(user.id, &new).await {
            Ok(_) => return Ok(token),
            Err(StoreError::Conflict(_)) if attempts < 3 => attempts += 1,
            Err(err) => return Err(err),
        }
    }
}

/// Finds the active user a presented token belongs to, and the token's row.
async fn authenticate(store: &dyn Store, token: &str) -> Result<(StoredToken, User), ApiError> {
    const INVALID: ApiError = ApiError::Unauthenticated("Invalid token.");
    if token.len() != TOKEN_HEX_LEN || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(INVALID);
    }
    let token = token.to_ascii_lowercase();
    let Some((stored, user)) = store.token_by_prefix(&token[..PREFIX_LEN]).await? else {
        return Err(INVALID);
    };
    if !bool::from(stored.hash.ct_eq(&hash(&token))) {
        return Err(INVALID);
    }
    if !user.is_active {
        return Err(ApiError::Unauthenticated("User inactive or deleted."));
    }
    if stored.expires.is_some_and(|at| at <= palisade_store::now()) {
        return Err(ApiError::Unauthenticated("Token has expired."));
    }
    Ok((stored, user))
}

/// The authenticated caller. Extracting it answers 401 with DRF's messages:
/// `Authorization: Token <key>` (or `Bearer <key>`) is required.
pub struct AuthUser(pub User);

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let (_token, user) = credentials(parts, state).await?;
        Ok(AuthUser(user))
    }
}

/// The authenticated caller and the token they presented, for the one
/// endpoint that acts on the token itself (logout).
pub struct AuthToken {
    pub user: User,
    pub token: StoredToken,
}

impl FromRequestParts<AppState> for AuthToken {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let (token, user) = credentials(parts, state).await?;
        Ok(AuthToken { user, token })
    }
}

/// Reads the `Authorization` header and checks the token it carries.
async fn credentials(parts: &Parts, state: &AppState) -> Result<(StoredToken, User), ApiError> {
    let missing = ApiError::Unauthenticated("Authentication credentials were not provided.");
    let Some(header) = parts.headers.get(AUTHORIZATION) else {
        return Err(missing);
    };
    let Ok(header) = header.to_str() else {
        return Err(ApiError::Unauthenticated(
            "Invalid token header. Token string should not contain invalid characters.",
        ));
    };
    let mut words = header.split_whitespace();
    let scheme = words.next().unwrap_or_default();
    if !scheme.eq_ignore_ascii_case("token") && !scheme.eq_ignore_ascii_case("bearer") {
        // Another scheme is not ours to judge: the request is simply anonymous.
        return Err(missing);
    }
    let (Some(token), None) = (words.next(), words.next()) else {
        return Err(ApiError::Unauthenticated(
            if header.split_whitespace().count() == 1 {
                "Invalid token header. No credentials provided."
            } else {
                "Invalid token header. Token string should not contain spaces."
            },
        ));
    };
    authenticate(state.store.as_ref(), token).await
}

pub use crate::password::set_password;
