//! The web page, embedded in the binary: ask with streaming, citations that open their
//! passage, thumbs up/down and corrections, conversations, upload with progress, and an
//! admin view of knowledge bases and keys. Plain HTML, CSS and JavaScript — no build step.

use axum::http::header;
use axum::response::{IntoResponse, Response};

const INDEX: &str = include_str!("../assets/index.html");
const SCRIPT: &str = include_str!("../assets/app.js");
const STYLE: &str = include_str!("../assets/app.css");
const OPENAPI: &str = include_str!("../assets/openapi.json");

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

pub async fn index() -> Response {
    asset("text/html; charset=utf-8", INDEX)
}

pub async fn script() -> Response {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

pub async fn style() -> Response {
    asset("text/css; charset=utf-8", STYLE)
}

pub async fn openapi() -> Response {
    asset("application/json", OPENAPI)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_openapi_description_is_json_and_names_every_route() {
        let v: serde_json::Value = serde_json::from_str(super::OPENAPI).expect("valid JSON");
        let paths = v["paths"].as_object().expect("paths");
        for p in [
            "/v1/chat/completions",
            "/v1/embeddings",
            "/v1/models",
            "/v1/kbs",
            "/v1/kbs/{kb}",
            "/v1/kbs/{kb}/documents",
            "/v1/kbs/{kb}/search",
            "/v1/kbs/{kb}/jobs",
            "/v1/kbs/{kb}/feedback",
            "/v1/jobs/{id}",
            "/v1/conversations",
            "/v1/conversations/{id}",
            "/v1/feedback",
            "/v1/keys",
            "/v1/keys/{id}",
            "/v1/audit",
            "/v1/me",
            "/healthz",
            "/metrics",
        ] {
            assert!(paths.contains_key(p), "{p} missing from openapi.json");
        }
    }
}
