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
        // every route the router declares (read from its source, so a new one cannot be missed)
        let src = include_str!("lib.rs");
        let routes: Vec<&str> = src
            .split(".route(")
            .skip(1)
            .filter_map(|r| r.trim_start().strip_prefix('"')?.split('"').next())
            .filter(|r| r.starts_with("/v1") || *r == "/healthz" || *r == "/metrics")
            .collect();
        assert!(routes.len() >= 25, "{routes:?}");
        for p in routes {
            assert!(paths.contains_key(p), "{p} missing from openapi.json");
        }
    }
}
