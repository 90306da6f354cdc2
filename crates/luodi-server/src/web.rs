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
    /// Every route the router declares, read from its source.
    fn routes() -> Vec<&'static str> {
        include_str!("lib.rs")
            .split(".route(")
            .skip(1)
            .filter_map(|r| r.trim_start().strip_prefix('"')?.split('"').next())
            .collect()
    }

    /// The string literals that follow each `call` in the page's script.
    fn literals_after<'a>(src: &'a str, call: &str) -> Vec<&'a str> {
        src.split(call)
            .skip(1)
            .filter_map(|r| r.split('"').next())
            .collect()
    }

    #[test]
    fn the_page_calls_only_routes_the_server_has_and_names_only_its_own_elements() {
        let routes = routes();
        // kbApi("/glossary/" + id) (and removeButton's) is /v1/kbs/{kb}/glossary/{id}; a query
        // string is dropped
        let mut kb_calls = literals_after(super::SCRIPT, "kbApi(\"");
        kb_calls.extend(literals_after(super::SCRIPT, "removeButton(\""));
        assert!(kb_calls.len() >= 8, "{kb_calls:?}");
        for sub in kb_calls {
            let sub = sub.split('?').next().unwrap_or(sub);
            let path = if let Some(stem) = sub.strip_suffix('/') {
                format!("/v1/kbs/{{kb}}{stem}/{{id}}")
            } else {
                format!("/v1/kbs/{{kb}}{sub}")
            };
            assert!(
                routes.contains(&path.as_str()),
                "app.js calls {path}, no such route"
            );
        }
        for path in literals_after(super::SCRIPT, "api(\"") {
            let path = path.split('?').next().unwrap_or(path);
            let path = match path.strip_suffix('/') {
                Some(stem) => routes
                    .iter()
                    .find(|r| r.starts_with(&format!("{stem}/{{")))
                    .map_or(path.to_owned(), |r| r.to_string()),
                None => path.to_owned(),
            };
            assert!(
                routes.contains(&path.as_str()),
                "app.js calls {path}, no such route"
            );
        }
        // every $("id") is an element of the page
        for id in literals_after(super::SCRIPT, "$(\"") {
            assert!(
                super::INDEX.contains(&format!("id=\"{id}\"")),
                "app.js uses #{id}, not in index.html"
            );
        }
    }

    #[test]
    fn the_openapi_description_is_json_and_names_every_route() {
        let v: serde_json::Value = serde_json::from_str(super::OPENAPI).expect("valid JSON");
        let paths = v["paths"].as_object().expect("paths");
        // every route the router declares (read from its source, so a new one cannot be missed)
        let routes: Vec<&str> = routes()
            .into_iter()
            .filter(|r| r.starts_with("/v1") || *r == "/healthz" || *r == "/metrics")
            .collect();
        assert!(routes.len() >= 25, "{routes:?}");
        for p in routes {
            assert!(paths.contains_key(p), "{p} missing from openapi.json");
        }
    }
}
