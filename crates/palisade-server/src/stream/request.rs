//! The stream request body and its validation, with DRF's messages
//! (reference 3.1): field errors first, all of them, then the first failing
//! cross-field rule.

use serde_json::Value;
use uuid::Uuid;

use crate::error::ApiError;
use crate::params::{Body, parse_uuid};

/// Longest accepted `input`, in characters, after trimming.
pub const MAX_INPUT_CHARS: usize = 50_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Reload,
    Edit,
}

/// A validated stream request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamRequest {
    /// Trimmed, 1 to 50,000 characters.
    pub input: String,
    pub thread: Option<Uuid>,
    pub mode: Option<Mode>,
    pub edit_message: Option<Uuid>,
}

/// A form as the JSON object DRF's fields would see: the last value of each
/// key, and an empty value of a nullable field as null (DRF's HTML-input
/// rule), so `thread_uuid=` means "no thread".
fn form_to_json(fields: &[(String, String)]) -> Value {
    let mut object = serde_json::Map::new();
    for (key, value) in fields {
        let value = if value.is_empty() && key != "input" {
            Value::Null
        } else {
            Value::String(value.clone())
        };
        object.insert(key.clone(), value);
    }
    Value::Object(object)
}

/// DRF's message for text containing U+0000 (its `CharField` refuses it,
/// and PostgreSQL could not store it).
pub const NUL_MESSAGE: &str = "Null characters are not allowed.";

/// DRF's `CharField(trim_whitespace=True, max_length=50000)`: the value, or
/// every message its validators give (length, then NUL).
fn input_field(value: Option<&Value>) -> Result<String, Vec<&'static str>> {
    let text = match value {
        None => return Err(vec!["This field is required."]),
        Some(Value::Null) => return Err(vec!["This field may not be null."]),
        Some(Value::String(s)) => s.trim().to_owned(),
        // DRF turns numbers into their text; booleans and containers are refused.
        Some(Value::Number(n)) => n.to_string(),
        Some(_) => return Err(vec!["Not a valid string."]),
    };
    if text.is_empty() {
        return Err(vec!["This field may not be blank."]);
    }
    let mut problems = Vec::new();
    if text.chars().count() > MAX_INPUT_CHARS {
        problems.push("Ensure this field has no more than 50000 characters.");
    }
    if text.contains('\0') {
        problems.push(NUL_MESSAGE);
    }
    if problems.is_empty() {
        Ok(text)
    } else {
        Err(problems)
    }
}

/// DRF's `UUIDField(required=False, allow_null=True)`.
fn uuid_field(value: Option<&Value>) -> Result<Option<Uuid>, &'static str> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => parse_uuid(s).map(Some).ok_or("Must be a valid UUID."),
        Some(_) => Err("Must be a valid UUID."),
    }
}

/// DRF's `ChoiceField(choices=["reload", "edit"], allow_null=True)`.
fn mode_field(value: Option<&Value>) -> Result<Option<Mode>, String> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s == "reload" => Ok(Some(Mode::Reload)),
        Some(Value::String(s)) if s == "edit" => Ok(Some(Mode::Edit)),
        Some(Value::String(s)) => Err(format!("\"{s}\" is not a valid choice.")),
        Some(other) => Err(format!("\"{other}\" is not a valid choice.")),
    }
}

impl StreamRequest {
    /// Validates a JSON or form body.
    pub fn from_body(body: &Body) -> Result<StreamRequest, ApiError> {
        match body {
            Body::Json(value) => Self::from_json(value),
            Body::Form(fields) => Self::from_json(&form_to_json(fields)),
        }
    }

    /// Validates a parsed JSON body.
    pub fn from_json(body: &Value) -> Result<StreamRequest, ApiError> {
        let fields = match body {
            Value::Object(map) => map,
            other => {
                // DRF names the Python type it got.
                let got = match other {
                    Value::Array(_) => "list",
                    Value::String(_) => "str",
                    Value::Number(n) if n.is_f64() => "float",
                    Value::Number(_) => "int",
                    Value::Bool(_) => "bool",
                    _ => "NoneType",
                };
                return Err(ApiError::invalid(
                    "non_field_errors",
                    format!("Invalid data. Expected a dictionary, but got {got}."),
                ));
            }
        };
        let mut errors = Vec::new();
        let input = input_field(fields.get("input"))
            .map_err(|messages| {
                for m in messages {
                    errors.push(("input".to_owned(), m.to_owned()));
                }
            })
            .ok();
        let thread = uuid_field(fields.get("thread_uuid"))
            .map_err(|m| errors.push(("thread_uuid".to_owned(), m.to_owned())))
            .ok();
        let mode = mode_field(fields.get("mode"))
            .map_err(|m| errors.push(("mode".to_owned(), m)))
            .ok();
        let edit_message = uuid_field(fields.get("edit_message_uuid"))
            .map_err(|m| errors.push(("edit_message_uuid".to_owned(), m.to_owned())))
            .ok();
        let (Some(input), Some(thread), Some(mode), Some(edit_message)) =
            (input, thread, mode, edit_message)
        else {
            return Err(ApiError::Validation(errors));
        };
        if mode.is_some() && thread.is_none() {
            return Err(ApiError::invalid(
                "mode",
                "mode requires thread_uuid to be provided.",
            ));
        }
        if mode == Some(Mode::Edit) && edit_message.is_none() {
            return Err(ApiError::invalid(
                "edit_message_uuid",
                "edit_message_uuid is required when mode='edit'.",
            ));
        }
        if mode != Some(Mode::Edit) && edit_message.is_some() {
            return Err(ApiError::invalid(
                "edit_message_uuid",
                "edit_message_uuid is only valid with mode='edit'.",
            ));
        }
        Ok(StreamRequest {
            input,
            thread,
            mode,
            edit_message,
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn errors(body: Value) -> Vec<(String, String)> {
        match StreamRequest::from_json(&body) {
            Err(ApiError::Validation(errors)) => errors,
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    fn one(field: &str, message: &str) -> Vec<(String, String)> {
        vec![(field.to_owned(), message.to_owned())]
    }

    const THREAD: &str = "3f2c8a1e9b7d4c6a8e5f1a2b3c4d5e6f";

    #[test]
    fn input_rules() {
        assert_eq!(errors(json!({})), one("input", "This field is required."));
        assert_eq!(
            errors(json!({"input": null})),
            one("input", "This field may not be null.")
        );
        assert_eq!(
            errors(json!({"input": "  \n"})),
            one("input", "This field may not be blank.")
        );
        assert_eq!(
            errors(json!({"input": true})),
            one("input", "Not a valid string.")
        );
        let ok = StreamRequest::from_json(&json!({"input": "  hi  "})).unwrap();
        assert_eq!(ok.input, "hi");
        assert_eq!(
            StreamRequest::from_json(&json!({"input": 42}))
                .unwrap()
                .input,
            "42"
        );
        let max = "é".repeat(MAX_INPUT_CHARS);
        assert!(StreamRequest::from_json(&json!({"input": max})).is_ok());
        let over = "é".repeat(MAX_INPUT_CHARS + 1);
        assert_eq!(
            errors(json!({"input": over})),
            one(
                "input",
                "Ensure this field has no more than 50000 characters."
            )
        );
    }

    #[test]
    fn nul_characters_are_refused() {
        assert_eq!(
            errors(json!({"input": "a\u{0}b"})),
            one("input", "Null characters are not allowed.")
        );
        let both = format!("{}\u{0}", "x".repeat(MAX_INPUT_CHARS));
        assert_eq!(
            errors(json!({ "input": both })),
            [
                (
                    "input".to_owned(),
                    "Ensure this field has no more than 50000 characters.".to_owned()
                ),
                ("input".to_owned(), NUL_MESSAGE.to_owned()),
            ]
        );
    }

    #[test]
    fn field_errors_are_all_reported() {
        let found = errors(json!({"thread_uuid": "nope", "mode": "x", "edit_message_uuid": 5}));
        assert_eq!(
            found,
            [
                ("input".to_owned(), "This field is required.".to_owned()),
                ("thread_uuid".to_owned(), "Must be a valid UUID.".to_owned()),
                ("mode".to_owned(), "\"x\" is not a valid choice.".to_owned()),
                (
                    "edit_message_uuid".to_owned(),
                    "Must be a valid UUID.".to_owned()
                ),
            ]
        );
    }

    #[test]
    fn cross_field_rules_in_order() {
        assert_eq!(
            errors(json!({"input": "a", "mode": "reload"})),
            one("mode", "mode requires thread_uuid to be provided.")
        );
        assert_eq!(
            errors(json!({"input": "a", "mode": "edit", "thread_uuid": THREAD})),
            one(
                "edit_message_uuid",
                "edit_message_uuid is required when mode='edit'."
            )
        );
        assert_eq!(
            errors(json!({"input": "a", "edit_message_uuid": THREAD})),
            one(
                "edit_message_uuid",
                "edit_message_uuid is only valid with mode='edit'."
            )
        );
        let edit = StreamRequest::from_json(&json!({
            "input": "a", "mode": "edit", "thread_uuid": THREAD,
            "edit_message_uuid": "3f2c8a1e-9b7d-4c6a-8e5f-1a2b3c4d5e6f",
        }))
        .unwrap();
        assert_eq!(edit.mode, Some(Mode::Edit));
        assert_eq!(edit.edit_message, edit.thread);
        let plain = StreamRequest::from_json(&json!({"input": "a", "mode": null})).unwrap();
        assert_eq!((plain.mode, plain.thread), (None, None));
    }

    #[test]
    fn body_must_be_an_object() {
        assert_eq!(
            errors(json!(["input"])),
            one(
                "non_field_errors",
                "Invalid data. Expected a dictionary, but got list."
            )
        );
        assert_eq!(
            errors(json!("input")),
            one(
                "non_field_errors",
                "Invalid data. Expected a dictionary, but got str."
            )
        );
    }
}
