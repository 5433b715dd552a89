//! The OpenAPI 3.1 document (`/api/schema/`) and the interactive docs page
//! (`/api/docs/`). Swagger UI's files come from the `swagger-ui-dist` crate,
//! compiled into the binary: nothing is fetched at build or run time.

use axum::Json;
use axum::Router;
use axum::response::Html;
use axum::routing::get;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::openapi::{
    DateFilter, Lenient, PageNumber, SearchText, SeverityFilter, ThreadOrdering, UuidFilter,
};
use crate::render::{
    ActionName, BadRequest, Detail, FieldErrors, LoginIn, MeOut, MessageOut, RoleName, ScanIn,
    SessionOut, SeverityName, StreamForm, StreamIn, ThreadOut, TokenOut,
};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Palisade",
        description = "Chat-assistant backend serving the Waldur chat API. \
            Authenticate with `Authorization: Token <key>` (or `Bearer <key>`). \
            Unknown methods on every path answer 405 `{\"detail\": \"Method \\\"X\\\" not allowed.\"}`; \
            `GET /api/chat-messages/{uuid}/` exists only to answer 405."
    ),
    paths(
        super::sessions::list, super::sessions::current, super::sessions::retrieve,
        super::threads::list, super::threads::retrieve, super::threads::archive,
        super::threads::unarchive, super::messages::list, super::stream::stream, super::stream::cancel, super::stream::follow,
        super::guard::scan, super::login::obtain_token, super::login::logout, super::login::me,
    ),
    components(schemas(
        LoginIn, TokenOut, MeOut, SessionOut, ThreadOut, MessageOut, SeverityName, ActionName,
        RoleName, Detail, FieldErrors, BadRequest, ScanIn, StreamIn, StreamForm,
        UuidFilter, DateFilter, SeverityFilter, ThreadOrdering, SearchText, PageNumber, Lenient,
    )),
    modifiers(&TokenAuth),
)]
pub struct ApiDoc;

struct TokenAuth;

impl Modify for TokenAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "token",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "Authorization",
                "`Token <key>` or `Bearer <key>`",
            ))),
        );
    }
}

const ASSETS: &str = "/api/docs/assets";

async fn docs_page() -> Html<String> {
    Html(format!(
        r##"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Palisade API</title>
<link rel="stylesheet" href="{ASSETS}/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="{ASSETS}/swagger-ui-bundle.js"></script>
<script>
window.onload = () => {{
  window.ui = SwaggerUIBundle({{ url: "/api/schema/", dom_id: "#swagger-ui" }});
}};
</script>
</body>
</html>"##
    ))
}

pub fn routes() -> Router {
    let assets = swagger_ui_dist::generate_routes(swagger_ui_dist::ApiDefinition {
        uri_prefix: ASSETS,
        api_definition: swagger_ui_dist::OpenApiSource::Uri("/api/schema/"),
        title: Some("Palisade API"),
    });
    Router::new()
        .route("/api/schema/", get(|| async { Json(ApiDoc::openapi()) }))
        .route("/api/docs/", get(docs_page))
        .merge(assets)
}
