//! The application error type: every failure a handler can return, rendered
//! as the DRF-style JSON body and status the reference uses.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use palisade_store::StoreError;
use serde_json::{Map, Value, json};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 401 with `WWW-Authenticate: Token`.
    #[error("unauthenticated: {0}")]
    Unauthenticated(&'static str),
    /// 404 `{"detail": …}`; also what a caller gets for objects it may not see.
    #[error("not found: {0}")]
    NotFound(&'static str),
    /// 405 `{"detail":"Method \"X\" not allowed."}`.
    #[error("method {0} not allowed")]
    MethodNotAllowed(String),
    /// 400 `{"field": ["message", …], …}` in field order.
    #[error("invalid input: {0:?}")]
    Validation(Vec<(String, String)>),
    /// 400 `{"detail": "JSON parse error - …"}`: the body is not JSON.
    #[error("malformed body: {0}")]
    ParseError(String),
    /// 413: the body is larger than the API accepts.
    #[error("request body too large")]
    PayloadTooLarge,
    /// 415: the body is not `application/json`.
    #[error("unsupported media type {0:?}")]
    UnsupportedMediaType(String),
    /// 409 `{"detail": …}`: the request is valid but cannot run now (quota
    /// spent, provider not configured, a reply already being generated).
    #[error("conflict: {0}")]
    Conflict(String),
    /// 429 with `Retry-After`: the user has as many answers running as
    /// allowed (`PALISADE_MAX_GENERATIONS_PER_USER`).
    #[error("too many generations for this user")]
    TooManyGenerations,
    /// 424 `{"detail":"Extension is disabled."}`: chat is switched off.
    #[error("chat is disabled")]
    ChatDisabled,
    /// 400 with a bare JSON array body, as DRF renders a `ValidationError`
    /// raised with a plain message outside a serializer.
    #[error("rejected: {0}")]
    Rejected(&'static str),
    /// 403 with DRF's message: authenticated, but not staff.
    #[error("permission denied")]
    PermissionDenied,
    /// A bug (a task panicked); logged, answered with a generic 500.
    #[error("internal error: {0}")]
    Internal(String),
    /// Anything the store could not do; logged, answered with a generic 500.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ApiError {
    /// DRF's body for a detail object that does not exist or is not visible.
    pub fn not_found() -> ApiError {
        ApiError::NotFound("Not found.")
    }

    pub fn invalid(field: &str, message: impl Into<String>) -> ApiError {
        ApiError::Validation(vec![(field.to_owned(), message.into())])
    }
}

/// A DRF-style `{"detail": …}` answer.
pub(crate) fn detail(status: StatusCode, text: &str) -> Response {
    (status, Json(json!({ "detail": text }))).into_response()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            ApiError::Unauthenticated(text) => {
                let mut response = detail(StatusCode::UNAUTHORIZED, text);
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Token"));
                response
            }
            ApiError::NotFound(text) => detail(StatusCode::NOT_FOUND, text),
            ApiError::MethodNotAllowed(method) => detail(
                StatusCode::METHOD_NOT_ALLOWED,
                &format!("Method \"{method}\" not allowed."),
            ),
            ApiError::Validation(errors) => {
                let mut body = Map::new();
                for (field, message) in errors {
                    let entry = body
                        .entry(field)
                        .or_insert_with(|| Value::Array(Vec::new()));
                    if let Value::Array(list) = entry {
                        list.push(Value::String(message));
                    }
                }
                (StatusCode::BAD_REQUEST, Json(Value::Object(body))).into_response()
            }
            ApiError::ParseError(text) => detail(
                StatusCode::BAD_REQUEST,
                &format!("JSON parse error - {text}"),
            ),
            ApiError::PayloadTooLarge => detail(
                StatusCode::PAYLOAD_TOO_LARGE,
                "Request body too large: at most 1 MiB is accepted.",
            ),
            ApiError::UnsupportedMediaType(media) => detail(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                &format!("Unsupported media type \"{media}\" in request."),
            ),
            ApiError::Conflict(text) => detail(StatusCode::CONFLICT, &text),
            ApiError::TooManyGenerations => {
                let mut response = detail(
                    StatusCode::TOO_MANY_REQUESTS,
                    "Too many answers are being generated for you at once. Wait for one to finish.",
                );
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
                response
            }
            ApiError::ChatDisabled => {
                detail(StatusCode::FAILED_DEPENDENCY, "Extension is disabled.")
            }
            ApiError::Rejected(text) => {
                (StatusCode::BAD_REQUEST, Json(json!([text]))).into_response()
            }
            ApiError::PermissionDenied => detail(
                StatusCode::FORBIDDEN,
                "You do not have permission to perform this action.",
            ),
            ApiError::Internal(err) => {
                tracing::error!(error = %err, "internal error");
                detail(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "A server error occurred.",
                )
            }
            ApiError::Store(StoreError::Unavailable(err)) => {
                tracing::warn!(error = %err, "database unavailable");
                let mut response = detail(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "The database is unavailable. Please try again shortly.",
                );
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
                response
            }
            ApiError::Store(err) => {
                tracing::error!(error = %err, "store failure");
                detail(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "A server error occurred.",
                )
            }
        }
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
