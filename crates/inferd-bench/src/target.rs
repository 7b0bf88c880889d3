//! Where requests go: `--url` parsed into host, port and the request path for each protocol.

use http::Uri;

use crate::args::Protocol;
use crate::error::{config, BenchError};

/// A parsed `--url` together with the path each request and the metadata call use.
#[derive(Debug, Clone)]
pub struct Target {
    pub host: String,
    pub port: u16,
    /// `host:port` as the `Host` header carries it.
    pub authority: String,
    /// `http://host:port`, for gRPC and for the report.
    pub base: String,
    /// Path (and query) every load request is sent to; unused by gRPC.
    pub path: String,
    /// Whether `--url` named the endpoint itself rather than the server.
    pub explicit_path: bool,
}

impl Target {
    pub fn parse(
        url: &str,
        protocol: Protocol,
        model: Option<&str>,
        version: Option<&str>,
    ) -> Result<Target, BenchError> {
        let with_scheme = if url.contains("://") {
            url.to_string()
        } else {
            format!("http://{url}")
        };
        let uri: Uri = with_scheme
            .parse()
            .map_err(|e| config(format!("--url `{url}` is not a URL: {e}")))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some(other) => {
                return Err(config(format!(
                    "--url scheme `{other}` is not supported: use http:// (inside a cluster, the Service's plain port)"
                )))
            }
            None => return Err(config(format!("--url `{url}` has no scheme"))),
        }
        let host = uri
            .host()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| config(format!("--url `{url}` has no host")))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let port = uri.port_u16().unwrap_or(80);
        let authority = uri
            .authority()
            .map(|a| a.as_str().to_string())
            .unwrap_or_else(|| host.clone());
        let given = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
        let explicit_path = given != "/" && !given.is_empty();
        if let Some(model) = model {
            check_name("--model", model)?;
        }
        if let Some(version) = version {
            check_name("--model-version", version)?;
        }
        let path = if explicit_path {
            given.to_string()
        } else {
            match protocol {
                Protocol::Seed => "/predict".to_string(),
                Protocol::V2Json | Protocol::V2Binary => {
                    format!("{}/infer", v2_model_path(required(model)?, version))
                }
                Protocol::V1 => format!("/v1/models/{}:predict", required(model)?),
                Protocol::V2Grpc => String::new(),
            }
        };
        Ok(Target {
            base: format!("http://{authority}"),
            host,
            port,
            authority,
            path,
            explicit_path,
        })
    }

    /// The full URL of the load requests, for messages and the report.
    pub fn url(&self) -> String {
        format!("{}{}", self.base, self.path)
    }
}

/// `/v2/models/{model}[/versions/{version}]`.
pub fn v2_model_path(model: &str, version: Option<&str>) -> String {
    match version {
        Some(v) => format!("/v2/models/{model}/versions/{v}"),
        None => format!("/v2/models/{model}"),
    }
}

fn required(model: Option<&str>) -> Result<&str, BenchError> {
    model.ok_or_else(|| {
        config("this protocol needs --model (or a full endpoint in --url and --body)")
    })
}

/// Model names and versions go into paths unescaped, so only path-safe characters are taken.
fn check_name(flag: &str, name: &str) -> Result<(), BenchError> {
    let ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if ok {
        Ok(())
    } else {
        Err(config(format!(
            "{flag} `{name}` may contain only letters, digits, `-`, `_` and `.`"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derives_paths_from_protocol_and_model() {
        let t = Target::parse("http://inferd", Protocol::Seed, None, None).unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.path.as_str()),
            ("inferd", 80, "/predict")
        );
        let t = Target::parse("127.0.0.1:8080", Protocol::V2Json, Some("iris"), Some("2")).unwrap();
        assert_eq!(
            t.url(),
            "http://127.0.0.1:8080/v2/models/iris/versions/2/infer"
        );
        let t = Target::parse("http://h:1/", Protocol::V1, Some("iris"), None).unwrap();
        assert_eq!(t.path, "/v1/models/iris:predict");
        let t = Target::parse("http://h:1/custom?x=1", Protocol::V2Json, None, None).unwrap();
        assert!(t.explicit_path);
        assert_eq!(t.path, "/custom?x=1");
    }

    #[test]
    fn rejects_bad_urls_and_names() {
        assert!(Target::parse("https://h/predict", Protocol::Seed, None, None).is_err());
        assert!(Target::parse("http://", Protocol::Seed, None, None).is_err());
        assert!(Target::parse("not a url", Protocol::Seed, None, None).is_err());
        assert!(Target::parse("http://h", Protocol::V2Json, None, None).is_err());
        assert!(Target::parse("http://h", Protocol::V2Json, Some("../x"), None).is_err());
    }
}
