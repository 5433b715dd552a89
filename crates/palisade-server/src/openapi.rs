//! Schemas of query parameters for the OpenAPI document, written by hand so
//! that they say exactly what the server accepts: schemathesis checks that
//! valid values are accepted and invalid ones refused, so a schema that is
//! stricter or looser than the parser is a bug in the document.
//!
//! Query values arrive as strings, and several filters take an empty value
//! as "no filter" (django-filter's rule), so most schemas here allow `""`.

use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{
    AnyOfBuilder, KnownFormat, ObjectBuilder, Schema, SchemaFormat, Type,
};
use utoipa::{PartialSchema, ToSchema};

/// The characters Rust's `str::trim` removes (Unicode `White_Space`), as a
/// regex class: filters that trim their value accept these around it. Not
/// `\s`, which in Python (schemathesis) also matches U+001C–U+001F.
const WS: &str =
    "[\\t\\n\\x0b\\x0c\\r \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]";

fn text(description: &str) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some(description))
}

/// An empty value: the filter is not applied.
fn empty() -> Schema {
    text("Empty: no filter.").max_length(Some(0)).into()
}

/// A query value that is a UUID (32 hex or hyphenated), or empty.
pub struct UuidFilter;

impl PartialSchema for UuidFilter {
    fn schema() -> RefOr<Schema> {
        AnyOfBuilder::new()
            .item(crate::render::uuid_input("A UUID."))
            .item(empty())
            .into()
    }
}

impl ToSchema for UuidFilter {}

/// A calendar date filter: `YYYY-MM-DD` (Django also reads `MM/DD/YYYY`
/// and `MM/DD/YY`), or empty.
pub struct DateFilter;

impl PartialSchema for DateFilter {
    fn schema() -> RefOr<Schema> {
        AnyOfBuilder::new()
            .item(
                text("A UTC calendar day, YYYY-MM-DD.")
                    .format(Some(SchemaFormat::KnownFormat(KnownFormat::Date))),
            )
            .item(empty())
            .into()
    }
}

impl ToSchema for DateFilter {}

/// `max_severity`: one of the five severities (exact), or empty.
pub struct SeverityFilter;

impl PartialSchema for SeverityFilter {
    fn schema() -> RefOr<Schema> {
        text("`none` (not flagged), `low`, `medium`, `high` or `critical`; empty: no filter.")
            .enum_values(Some(["", "none", "low", "medium", "high", "critical"]))
            .into()
    }
}

impl ToSchema for SeverityFilter {}

/// `o`: comma-separated `created`, `-created`, `modified`, `-modified`;
/// white space around a term and empty terms are ignored.
pub struct ThreadOrdering;

impl PartialSchema for ThreadOrdering {
    fn schema() -> RefOr<Schema> {
        let term = format!("{WS}*(-?(created|modified){WS}*)?");
        text("Comma-separated `created`, `-created`, `modified`, `-modified`.")
            .pattern(Some(format!("^{term}(,{term})*$")))
            .examples(["-modified", "created,-modified"])
            .into()
    }
}

impl ToSchema for ThreadOrdering {}

/// Free text without NUL (`Null characters are not allowed.`).
pub struct SearchText;

impl PartialSchema for SearchText {
    fn schema() -> RefOr<Schema> {
        text("Any text without a NUL character.")
            .pattern(Some("^[^\\x00]*$"))
            .into()
    }
}

impl ToSchema for SearchText {}

/// `page`: a 1-based number or `last`; anything else (or a page past the
/// end) is 404 `Invalid page.`.
pub struct PageNumber;

impl PartialSchema for PageNumber {
    fn schema() -> RefOr<Schema> {
        text("A page number from 1, or `last`; empty: the first page.")
            .pattern(Some(format!("^{WS}*(last|\\+?[0-9]+)?{WS}*$")))
            .examples(["1", "last"])
            .into()
    }
}

impl ToSchema for PageNumber {}

/// A parameter the server never refuses: values it cannot use fall back to
/// the default (`page_size`) or disable the filter (the booleans).
pub struct Lenient;

impl PartialSchema for Lenient {
    fn schema() -> RefOr<Schema> {
        text("Any value is accepted; see the parameter's description.").into()
    }
}

impl ToSchema for Lenient {}
