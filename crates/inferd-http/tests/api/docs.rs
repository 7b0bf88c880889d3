//! The OpenAPI document describes exactly the routes the router serves.

use std::collections::BTreeSet;

use crate::common::*;

/// Every (method, path template) the router serves, in OpenAPI's notation.
const ROUTES: &[(&str, &str)] = &[
    ("post", "/predict"),
    ("get", "/v2/health/live"),
    ("get", "/v2/health/ready"),
    ("get", "/v2"),
    ("get", "/v2/models/{model}"),
    ("get", "/v2/models/{model}/ready"),
    ("post", "/v2/models/{model}/infer"),
    ("get", "/v2/models/{model}/versions/{version}"),
    ("get", "/v2/models/{model}/versions/{version}/ready"),
    ("post", "/v2/models/{model}/versions/{version}/infer"),
    ("get", "/v1/models"),
    ("get", "/v1/models/{model}"),
    ("get", "/v1/models/{model}/metadata"),
    ("post", "/v1/models/{model}:predict"),
    ("get", "/v1/models/{model}/versions/{version}"),
    ("get", "/v1/models/{model}/versions/{version}/metadata"),
    ("post", "/v1/models/{model}/versions/{version}:predict"),
    ("get", "/v1/models/{model}/labels/{label}"),
    ("get", "/v1/models/{model}/labels/{label}/metadata"),
    ("post", "/v1/models/{model}/labels/{label}:predict"),
    ("get", "/openapi.json"),
    ("get", "/docs"),
];

/// A concrete path for a template, with values that exist in the test registry.
fn concrete(template: &str) -> String {
    template
        .replace("{model}", "iris")
        .replace("{version}", "1")
        .replace("{label}", "stable")
}

#[tokio::test]
async fn openapi_lists_exactly_the_served_routes() {
    let answer = get("/openapi.json").await;
    assert_eq!(answer.status, 200);
    let doc = answer.json();
    assert_eq!(doc["openapi"], "3.0.3");
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            documented.insert((method.clone(), path.clone()));
        }
    }
    let served: BTreeSet<_> = ROUTES
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    assert_eq!(documented, served);
}

#[tokio::test]
async fn every_documented_get_answers_and_every_post_exists() {
    for (method, template) in ROUTES {
        let path = concrete(template);
        let answer = if *method == "get" {
            get(&path).await
        } else {
            post(&path, "{}").await
        };
        // A POST with an empty object is a 400 from the handler, never a routing 404/405.
        let expected = if *method == "get" { 200 } else { 400 };
        assert_eq!(
            answer.status,
            expected,
            "{method} {path}: {}",
            answer.text()
        );
    }
}

#[tokio::test]
async fn every_ref_resolves() {
    let doc = get("/openapi.json").await.json();
    let text = doc.to_string();
    for piece in text.split("\"$ref\":\"#/").skip(1) {
        let target = &piece[..piece.find('"').unwrap()];
        let found = target.split('/').try_fold(&doc, |v, key| v.get(key));
        assert!(found.is_some(), "dangling $ref {target}");
    }
}

#[tokio::test]
async fn docs_page_is_html() {
    let answer = get("/docs").await;
    assert_eq!(answer.status, 200);
    assert!(answer.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    assert!(answer.text().contains("/v2/models/{model}/infer"));
}
