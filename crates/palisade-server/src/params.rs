//! Query-string parsing with the reference's (Django's) rules: the last value
//! of a repeated key wins, empty values mean "no filter", some invalid values
//! are ignored and others are 400s with Django's messages.

use std::convert::Infallible;

use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;
use chrono::NaiveDate;
use uuid::Uuid;

use crate::error::ApiError;

/// The decoded query string, in order. Extracting it never fails.
#[derive(Debug, Default, Clone)]
pub struct QueryParams(pub Vec<(String, String)>);

impl<S: Send + Sync> FromRequestParts<S> for QueryParams {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Infallible> {
        let query = parts.uri.query().unwrap_or_default();
        Ok(QueryParams(
            form_urlencoded::parse(query.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        ))
    }
}

/// The `{uuid}` segment of an object's path. Anything that is not a UUID —
/// including a segment that does not even decode to UTF-8 — is `None`, which
/// handlers answer with 404 as the reference does (nothing can match it).
pub struct PathUuid(pub Option<Uuid>);

impl<S: Send + Sync> FromRequestParts<S> for PathUuid {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Infallible> {
        let segment = Path::<String>::from_request_parts(parts, state).await.ok();
        Ok(PathUuid(segment.and_then(|Path(id)| parse_uuid(&id))))
    }
}

impl QueryParams {
    /// The last value of `key`, as Django's `QueryDict.get` returns it.
    pub fn last(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The last value of `key`, unless it is empty (django-filter skips those).
    pub fn non_empty(&self, key: &str) -> Option<&str> {
        self.last(key).filter(|v| !v.is_empty())
    }

    pub fn all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Django's `NullBooleanSelect`: these spellings mean true or false, anything
/// else means "no value" and the filter is skipped.
pub fn django_bool(value: &str) -> Option<bool> {
    match value {
        "true" | "True" | "2" => Some(true),
        "false" | "False" | "3" => Some(false),
        _ => None,
    }
}

/// A UUID in the 32-hex or hyphenated form (the reference accepts both).
pub fn parse_uuid(value: &str) -> Option<Uuid> {
    let value = value.trim();
    if value.len() == 32 || value.len() == 36 {
        Uuid::try_parse(value).ok()
    } else {
        None
    }
}

/// Collects the 400 messages of a query string, field by field, so one
/// response reports every invalid filter as Django's form would.
#[derive(Default)]
pub struct Problems(Vec<(String, String)>);

impl Problems {
    pub fn add(&mut self, field: &str, message: impl Into<String>) {
        self.0.push((field.to_owned(), message.into()));
    }

    pub fn into_result(self) -> Result<(), ApiError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(ApiError::Validation(self.0))
        }
    }

    /// Parses an optional UUID filter (`user=`, `thread=`).
    pub fn uuid(&mut self, params: &QueryParams, field: &str) -> Option<Uuid> {
        let value = params.non_empty(field)?;
        let parsed = parse_uuid(value);
        if parsed.is_none() {
            self.add(field, "Enter a valid UUID.");
        }
        parsed
    }

    /// Parses an optional date filter in Django's default input formats.
    pub fn date(&mut self, params: &QueryParams, field: &str) -> Option<NaiveDate> {
        let value = params.non_empty(field)?.trim();
        let parsed = ["%Y-%m-%d", "%m/%d/%Y", "%m/%d/%y"]
            .iter()
            .find_map(|format| NaiveDate::parse_from_str(value, format).ok());
        if parsed.is_none() {
            self.add(field, "Enter a valid date.");
        }
        parsed
    }

    /// Parses an optional choice; `parse` returns `None` for a bad value.
    pub fn choice<T>(
        &mut self,
        params: &QueryParams,
        field: &str,
        parse: impl Fn(&str) -> Option<T>,
    ) -> Option<T> {
        let value = params.non_empty(field)?;
        let parsed = parse(value);
        if parsed.is_none() {
            self.add(field, invalid_choice(value));
        }
        parsed
    }
}

pub fn invalid_choice(value: &str) -> String {
    format!("Select a valid choice. {value} is not one of the available choices.")
}

/// Bodies larger than this are refused before parsing (the longest valid
/// input is 50,000 characters, at most 4 bytes each, plus JSON escaping).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// How much of a body is read before it is refused: a little over the limit
/// is read to its end, so the client (still sending) surely receives the
/// 413 rather than a reset connection; beyond this the connection is cut.
pub const BODY_READ_LIMIT: usize = 4 * MAX_BODY_BYTES;

/// A request body as DRF's parsers read it: JSON, or (where a view allows
/// it) a URL-encoded form. Other content types get 415, malformed JSON 400
/// `JSON parse error - …`.
pub enum Body {
    Json(serde_json::Value),
    /// Fields in order; a repeated key keeps every value (the last wins on
    /// lookup, as with Django's `QueryDict`).
    Form(Vec<(String, String)>),
}

/// The media type of a request without parameters, lowercased.
fn media_essence(request: &axum::extract::Request) -> (String, String) {
    let media = request
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let essence = media
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    (media, essence)
}

async fn read_body<S: Send + Sync>(
    request: axum::extract::Request,
    state: &S,
) -> Result<axum::body::Bytes, ApiError> {
    use axum::extract::FromRequest;
    // The router stops reading at BODY_READ_LIMIT (`DefaultBodyLimit`); a
    // body between the two limits is read and then refused.
    let bytes = axum::body::Bytes::from_request(request, state)
        .await
        .map_err(|err| {
            if err.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge
            } else {
                ApiError::ParseError(err.body_text())
            }
        })?;
    if bytes.len() > MAX_BODY_BYTES {
        return Err(ApiError::PayloadTooLarge);
    }
    Ok(bytes)
}

impl Body {
    /// Reads a JSON body, or a form body when `accept_form` is set.
    pub async fn read<S: Send + Sync>(
        request: axum::extract::Request,
        state: &S,
        accept_form: bool,
    ) -> Result<Body, ApiError> {
        let (media, essence) = media_essence(&request);
        match essence.as_str() {
            "application/json" => {
                let bytes = read_body(request, state).await?;
                serde_json::from_slice(&bytes)
                    .map(Body::Json)
                    .map_err(|err| ApiError::ParseError(json_error_text(&err)))
            }
            "application/x-www-form-urlencoded" if accept_form => {
                let bytes = read_body(request, state).await?;
                Ok(Body::Form(
                    form_urlencoded::parse(&bytes).into_owned().collect(),
                ))
            }
            _ => Err(ApiError::UnsupportedMediaType(media)),
        }
    }
}

/// serde_json's description of a parse error, except for a `\u` escape of
/// an unpaired UTF-16 surrogate, which it reports as "unexpected end of hex
/// escape" or (for a lone low surrogate) "lone leading surrogate": both
/// misleading, so that case gets a message of its own.
fn json_error_text(err: &serde_json::Error) -> String {
    let text = err.to_string();
    if text.starts_with("unexpected end of hex escape")
        || text.starts_with("lone leading surrogate in hex escape")
    {
        format!(
            "invalid \\u escape at line {} column {}: a UTF-16 surrogate (\\ud800-\\udfff) \
             must be part of a high-low pair",
            err.line(),
            err.column()
        )
    } else {
        text
    }
}

/// A JSON request body (see [`Body`]); other content types get 415.
pub struct JsonBody(pub serde_json::Value);

impl<S: Send + Sync> axum::extract::FromRequest<S> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(request: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        match Body::read(request, state, false).await? {
            Body::Json(value) => Ok(JsonBody(value)),
            // `read` without forms only returns JSON.
            Body::Form(_) => Err(ApiError::UnsupportedMediaType(
                "application/x-www-form-urlencoded".to_owned(),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_forms() {
        let hex = "3f2c8a1e9b7d4c6a8e5f1a2b3c4d5e6f";
        let hyphenated = "3f2c8a1e-9b7d-4c6a-8e5f-1a2b3c4d5e6f";
        assert_eq!(parse_uuid(hex), parse_uuid(hyphenated));
        assert!(parse_uuid(hex).is_some());
        assert!(parse_uuid("{3f2c8a1e-9b7d-4c6a-8e5f-1a2b3c4d5e6f}").is_none());
        assert!(parse_uuid("not-a-uuid").is_none());
    }

    #[test]
    fn surrogate_errors_are_explained() {
        let message = |body: &str| {
            let err = serde_json::from_str::<serde_json::Value>(body).unwrap_err();
            json_error_text(&err)
        };
        for body in [
            r#"{"input": "\ud800"}"#,
            r#"{"input": "\udc00"}"#,
            r#""\ud800\u0041""#,
        ] {
            let text = message(body);
            assert!(
                text.starts_with("invalid \\u escape at line 1"),
                "{body}: {text}"
            );
            assert!(text.ends_with("must be part of a high-low pair"), "{text}");
        }
        // A pair is fine; other errors keep serde_json's words.
        assert!(serde_json::from_str::<serde_json::Value>(r#""\ud83d\ude00""#).is_ok());
        assert!(message("{").starts_with("EOF while parsing"));
    }

    #[test]
    fn booleans_follow_django() {
        assert_eq!(django_bool("True"), Some(true));
        assert_eq!(django_bool("3"), Some(false));
        assert_eq!(django_bool("yes"), None);
        assert_eq!(django_bool("1"), None);
    }
}
