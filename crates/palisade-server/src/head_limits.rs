//! Request heads the API refuses — a target (path and query) over 8 KiB,
//! headers over 32 KiB or more than 100 of them — answered with 414 or 431
//! and a DRF-style body. hyper's own limits (a 64 KiB target, ~400 KiB of
//! headers, `MAX_HEADERS`) stay above these, so a client almost always gets
//! a JSON answer instead of hyper's empty one.

use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::Response;

/// The longest request target (path and query) the API reads.
pub const MAX_TARGET: usize = 8 * 1024;
/// The most header bytes (names and values) the API reads.
pub const MAX_HEADER_BYTES: usize = 32 * 1024;
/// The most headers the API reads.
pub const MAX_HEADERS: usize = 100;
/// What hyper itself accepts, so that requests between the two limits get
/// the JSON answer.
pub const HYPER_MAX_HEADERS: usize = 4 * MAX_HEADERS;

pub async fn check(request: Request, next: Next) -> Response {
    let target = request
        .uri()
        .path_and_query()
        .map_or(0, |target| target.as_str().len());
    if target > MAX_TARGET {
        return refuse(StatusCode::URI_TOO_LONG, "Request-URI too long.");
    }
    let headers = request.headers();
    let bytes: usize = headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum();
    if headers.len() > MAX_HEADERS || bytes > MAX_HEADER_BYTES {
        return refuse(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "Request header fields too large.",
        );
    }
    next.run(request).await
}

fn refuse(status: StatusCode, text: &str) -> Response {
    let mut response = crate::error::detail(status, text);
    // The client may have sent more than it should; start afresh.
    response.headers_mut().insert(
        axum::http::header::CONNECTION,
        axum::http::HeaderValue::from_static("close"),
    );
    response
}
