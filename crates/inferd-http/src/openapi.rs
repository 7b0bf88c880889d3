//! OpenAPI (being built).
pub async fn document() -> &'static str {
    "{}"
}
pub async fn docs_page() -> &'static str {
    ""
}
