//! The API's description: the OpenAPI 3 document (hand-written, `openapi.json` beside this
//! file, checked against the router by the tests) and a self-contained HTML page rendered from
//! it, with no script and no external asset, so `/docs` works offline.

use std::fmt::Write;
use std::sync::OnceLock;

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

/// The OpenAPI document served at `/openapi.json`.
pub const OPENAPI_JSON: &str = include_str!("openapi.json");

pub async fn document() -> Response {
    let mut response = OPENAPI_JSON.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

pub async fn docs_page() -> Response {
    static PAGE: OnceLock<String> = OnceLock::new();
    let page = PAGE.get_or_init(|| render(OPENAPI_JSON));
    let mut response = page.clone().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    response
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;\
padding:0 1rem;line-height:1.45;color:#222}code,pre{font-family:ui-monospace,monospace;\
background:#f4f4f4;border-radius:3px}code{padding:0 .2em}pre{padding:.6em;overflow-x:auto}\
h2{border-bottom:1px solid #ccc;margin-top:2.5rem}.op{border:1px solid #ddd;border-radius:5px;\
padding:.2rem 1rem;margin:1rem 0}.m{display:inline-block;min-width:3.5rem;font-weight:bold}\
.get{color:#0a6}.post{color:#06c}table{border-collapse:collapse}td,th{border:1px solid #ddd;\
padding:.2em .5em;text-align:left;vertical-align:top}";

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
    out
}

/// Escapes `text` and turns Markdown's `code` spans and blank-line paragraphs into HTML.
fn prose(text: &str) -> String {
    let mut out = String::new();
    for paragraph in text.split("\n\n") {
        out.push_str("<p>");
        for (i, part) in escape(paragraph).split('`').enumerate() {
            if i % 2 == 1 {
                let _ = write!(out, "<code>{part}</code>");
            } else {
                out.push_str(part);
            }
        }
        out.push_str("</p>");
    }
    out
}

fn str_of<'a>(value: &'a Value, key: &str) -> &'a str {
    value.get(key).and_then(Value::as_str).unwrap_or("")
}

/// Follows a local `$ref` (`#/components/...`).
fn deref<'a>(root: &'a Value, value: &'a Value) -> &'a Value {
    match value.get("$ref").and_then(Value::as_str) {
        Some(path) => path
            .trim_start_matches("#/")
            .split('/')
            .try_fold(root, |v, key| v.get(key))
            .unwrap_or(value),
        None => value,
    }
}

fn pretty(value: &Value) -> String {
    escape(&serde_json::to_string_pretty(value).unwrap_or_default())
}

fn render(json: &str) -> String {
    let Ok(root) = serde_json::from_str::<Value>(json) else {
        return "<!doctype html><title>inferd</title><p>The API description is unavailable.</p>"
            .to_owned();
    };
    let info = &root["info"];
    let mut html = String::with_capacity(64 * 1024);
    let _ = write!(
        html,
        "<!doctype html><html lang=en><head><meta charset=utf-8><title>{}</title>\
         <style>{STYLE}</style></head><body><h1>{}</h1>{}<p>Version {}. Machine-readable: \
         <a href=\"/openapi.json\">/openapi.json</a> (OpenAPI {}).</p>",
        escape(str_of(info, "title")),
        escape(str_of(info, "title")),
        prose(str_of(info, "description")),
        escape(str_of(info, "version")),
        escape(str_of(&root, "openapi")),
    );
    let empty = serde_json::Map::new();
    let paths = root["paths"].as_object().unwrap_or(&empty);
    let tags = root["tags"].as_array().cloned().unwrap_or_default();
    html.push_str("<nav><ul>");
    for tag in &tags {
        let name = str_of(tag, "name");
        let _ = write!(
            html,
            "<li><a href=\"#{0}\">{0}</a>: {1}</li>",
            escape(name),
            escape(str_of(tag, "description"))
        );
    }
    html.push_str("<li><a href=\"#schemas\">schemas</a></li></ul></nav>");
    for tag in &tags {
        let name = str_of(tag, "name");
        let _ = write!(
            html,
            "<h2 id=\"{0}\">{0}</h2>{1}",
            escape(name),
            prose(str_of(tag, "description"))
        );
        for (path, item) in paths {
            for method in ["get", "post"] {
                let Some(op) = item.get(method) else { continue };
                let in_tag = op["tags"]
                    .as_array()
                    .is_some_and(|t| t.iter().any(|t| t == name));
                if in_tag {
                    operation(&mut html, &root, path, method, op);
                }
            }
        }
    }
    html.push_str("<h2 id=schemas>Schemas</h2>");
    if let Some(schemas) = root["components"]["schemas"].as_object() {
        for (name, schema) in schemas {
            let _ = write!(
                html,
                "<h3 id=\"schema-{0}\">{0}</h3><pre>{1}</pre>",
                escape(name),
                pretty(schema)
            );
        }
    }
    html.push_str("</body></html>");
    html
}

fn operation(html: &mut String, root: &Value, path: &str, method: &str, op: &Value) {
    let _ = write!(
        html,
        "<div class=op><h3><span class=\"m {method}\">{}</span> <code>{}</code></h3>{}{}",
        method.to_uppercase(),
        escape(path),
        prose(str_of(op, "summary")),
        prose(str_of(op, "description")),
    );
    if let Some(params) = op["parameters"].as_array() {
        html.push_str(
            "<table><tr><th>parameter</th><th>in</th><th>required</th><th>description</th></tr>",
        );
        for param in params {
            let param = deref(root, param);
            let _ = write!(
                html,
                "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(str_of(param, "name")),
                escape(str_of(param, "in")),
                param["required"].as_bool().unwrap_or(false),
                escape(str_of(param, "description")),
            );
        }
        html.push_str("</table>");
    }
    if let Some(content) = op["requestBody"]["content"].as_object() {
        for (media, body) in content {
            let schema = body["schema"]["$ref"]
                .as_str()
                .and_then(|r| r.rsplit('/').next());
            let _ = write!(html, "<p>Request body <code>{}</code>", escape(media));
            if let Some(schema) = schema {
                let _ = write!(html, ": <a href=\"#schema-{0}\">{0}</a>", escape(schema));
            }
            html.push_str("</p>");
            if let Some(example) = body.get("example") {
                let _ = write!(html, "<pre>{}</pre>", pretty(example));
            }
            if let Some(examples) = body["examples"].as_object() {
                for (name, example) in examples {
                    let _ = write!(
                        html,
                        "<p>{}:</p><pre>{}</pre>",
                        escape(name),
                        pretty(&example["value"])
                    );
                }
            }
        }
    }
    if let Some(responses) = op["responses"].as_object() {
        html.push_str("<p>Responses:</p><ul>");
        for (status, response) in responses {
            let response = deref(root, response);
            let _ = write!(
                html,
                "<li><b>{}</b> {}</li>",
                escape(status),
                escape(str_of(response, "description"))
            );
        }
        html.push_str("</ul>");
    }
    html.push_str("</div>");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_documents_every_path_and_loads_nothing_from_outside() {
        let page = render(OPENAPI_JSON);
        let root: Value = serde_json::from_str(OPENAPI_JSON).unwrap();
        for path in root["paths"].as_object().unwrap().keys() {
            assert!(
                page.contains(&format!("<code>{}</code>", escape(path))),
                "{path}"
            );
        }
        assert!(
            !page.contains("http://") && !page.contains("https://") && !page.contains("<script")
        );
    }
}
