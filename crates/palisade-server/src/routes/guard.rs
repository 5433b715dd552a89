//! `POST /api/guard/scan/`: staff only — what the input guards make of a
//! text, with matched spans, for operators tuning the allowlist. The same
//! JSON as `palisade scan`.

use axum::Json;
use axum::extract::{FromRequest, Request, State};
use serde_json::Value;

use crate::AppState;
use crate::auth::AuthUser;
use crate::error::{ApiError, ApiResult};
use crate::params::JsonBody;
use crate::render::{BadRequest, Detail, ScanIn};
use crate::stream::request::NUL_MESSAGE;

/// Longest text accepted, in characters: the stream's input limit.
const MAX_TEXT_CHARS: usize = 50_000;

fn text_field(body: &Value) -> Result<&str, ApiError> {
    let message = match body.get("text") {
        Some(Value::String(text)) if text.chars().count() > MAX_TEXT_CHARS => {
            "Ensure this field has no more than 50000 characters."
        }
        Some(Value::String(text)) if text.contains('\0') => NUL_MESSAGE,
        Some(Value::String(text)) => return Ok(text),
        Some(Value::Null) => "This field may not be null.",
        Some(_) => "Not a valid string.",
        None => "This field is required.",
    };
    Err(ApiError::invalid("text", message))
}

/// The guards' verdict for a text: action, severity, injection patterns and
/// PII detections with byte spans, the redacted text and the warning.
#[utoipa::path(
    post, path = "/api/guard/scan/", tag = "guard",
    request_body = ScanIn,
    responses(
        (status = 200, description = "The verdict, as `palisade scan` prints it", body = Object),
        (status = 400, description = "Invalid field, or malformed JSON", body = BadRequest), (status = 401, body = Detail),
        (status = 403, description = "Not staff", body = Detail),
        (status = 415, description = "Body is not application/json", body = Detail),
    ),
    security(("token" = []))
)]
pub async fn scan(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    request: Request,
) -> ApiResult<Json<Value>> {
    // Permission before the body is read, as DRF checks it.
    if !user.is_staff {
        return Err(ApiError::PermissionDenied);
    }
    let JsonBody(body) = JsonBody::from_request(request, &state).await?;
    let text = text_field(&body)?;
    let verdict = crate::input_guard::scan_off_runtime(state.guard.clone(), text.to_owned()).await;
    Ok(Json(palisade_guard::verdict_to_json(&verdict)))
}
