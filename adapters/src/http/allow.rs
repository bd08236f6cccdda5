//! `Allow` on `405` answers (RFC 9110, section 15.5.6): the methods each
//! path allows, read from the OpenAPI document so that they cannot drift
//! from the operations.

/// Allowed methods by path template.
#[derive(Debug, Default, Clone)]
pub struct AllowedMethods {
    paths: Vec<(Vec<String>, String)>,
    /// For paths outside `/api` (the static demo), when it is served.
    outside_api: Option<String>,
}

impl AllowedMethods {
    /// The table of an OpenAPI 3 document (its `paths`), plus `extra` paths
    /// that the document does not list (the document itself, Swagger UI).
    ///
    /// # Errors
    /// `spec` is not JSON.
    pub fn from_spec(spec: &str, extra: &[(&str, &str)]) -> serde_json::Result<Self> {
        let doc: serde_json::Value = serde_json::from_str(spec)?;
        let mut paths = Vec::new();
        if let Some(items) = doc.get("paths").and_then(|p| p.as_object()) {
            for (path, item) in items {
                let Some(item) = item.as_object() else {
                    continue;
                };
                let methods: Vec<String> = ["get", "put", "post", "delete", "patch", "head"]
                    .into_iter()
                    .filter(|m| item.contains_key(*m))
                    .map(str::to_ascii_uppercase)
                    .collect();
                paths.push((segments(path), methods.join(", ")));
            }
        }
        for (path, methods) in extra {
            paths.push((segments(path), (*methods).to_owned()));
        }
        Ok(Self {
            paths,
            outside_api: None,
        })
    }

    /// Paths outside `/api` allow `methods` (the static demo files).
    #[must_use]
    pub fn outside_api(mut self, methods: &str) -> Self {
        self.outside_api = Some(methods.to_owned());
        self
    }

    /// The `Allow` value for a request path, if a route serves it.
    pub fn for_path(&self, path: &str) -> Option<&str> {
        let wanted = segments(path);
        let matched = self.paths.iter().find(|(template, _)| {
            template.len() == wanted.len()
                && template
                    .iter()
                    .zip(&wanted)
                    .all(|(t, w)| (t.starts_with('{') && !w.is_empty()) || t == w)
        });
        match matched {
            Some((_, methods)) => Some(methods),
            None if path != "/api" && !path.starts_with("/api/") => self.outside_api.as_deref(),
            None => None,
        }
    }
}

fn segments(path: &str) -> Vec<String> {
    path.trim_end_matches('/')
        .split('/')
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_come_from_the_document() {
        let spec = r#"{"paths":{"/api/login":{"post":{}},"/api/sessions/{id}":{"delete":{}},
            "/api/sessions":{"get":{},"delete":{}}}}"#;
        let t = AllowedMethods::from_spec(spec, &[("/api/docs", "GET")])
            .unwrap()
            .outside_api("GET, HEAD");
        assert_eq!(t.for_path("/api/login"), Some("POST"));
        assert_eq!(t.for_path("/api/sessions"), Some("GET, DELETE"));
        assert_eq!(t.for_path("/api/sessions/abc"), Some("DELETE"));
        assert_eq!(t.for_path("/api/sessions/abc/x"), None);
        assert_eq!(t.for_path("/api/docs"), Some("GET"));
        assert_eq!(t.for_path("/api/nope"), None);
        assert_eq!(t.for_path("/index.html"), Some("GET, HEAD"));
    }
}
