//! Swagger UI at `/api/docs` under a strict `Content-Security-Policy`.
//!
//! The UI shares its origin and its path prefix with the refresh cookie
//! (`Path=/api`): a script injected there could refresh and read the access
//! token. Its pages are static, so every inline `<script>` they carry is
//! hashed once (CSP Level 2 `'sha256-...'` sources) and no other script runs.
//! Styles stay `'unsafe-inline'` (the UI sets inline styles; they cannot run code).

use std::collections::HashMap;
use std::sync::Mutex;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use poem::http::{HeaderValue, header};
use poem::{Body, Endpoint, IntoResponse, Request, Response};
use sha2::{Digest as _, Sha256};

/// Wraps poem-openapi's Swagger UI endpoint.
#[derive(Debug)]
pub struct Docs<E> {
    inner: E,
    policies: Mutex<HashMap<String, HeaderValue>>,
}

impl<E> Docs<E> {
    /// The UI served by `inner`.
    pub fn new(inner: E) -> Self {
        Self {
            inner,
            policies: Mutex::new(HashMap::new()),
        }
    }
}

impl<E: Endpoint> Endpoint for Docs<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> poem::Result<Response> {
        let path = req.uri().path().to_owned();
        let response = self.inner.call(req).await?.into_response();
        let html = response
            .headers()
            .get(header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"text/html"));
        if !html {
            return Ok(response);
        }
        let known = self
            .policies
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&path)
            .cloned();
        let (mut response, policy) = match known {
            Some(policy) => (response, policy),
            None => {
                let (parts, body) = response.into_parts();
                let bytes = body.into_bytes().await?;
                let policy = HeaderValue::from_str(&policy_for(&String::from_utf8_lossy(&bytes)))
                    .map_err(|e| {
                    poem::Error::new(e, poem::http::StatusCode::INTERNAL_SERVER_ERROR)
                })?;
                self.policies
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .insert(path, policy.clone());
                (Response::from_parts(parts, Body::from(bytes)), policy)
            }
        };
        response
            .headers_mut()
            .insert(header::CONTENT_SECURITY_POLICY, policy);
        Ok(response)
    }
}

/// The policy of one page: its own inline scripts, nothing else.
pub fn policy_for(html: &str) -> String {
    let hashes: Vec<String> = inline_scripts(html)
        .map(|script| format!("'sha256-{}'", STANDARD.encode(Sha256::digest(script))))
        .collect();
    let scripts = if hashes.is_empty() {
        "'none'".to_owned()
    } else {
        hashes.join(" ")
    };
    format!(
        "default-src 'none'; script-src {scripts}; style-src 'unsafe-inline'; \
         img-src 'self' data:; font-src 'self' data:; connect-src 'self'; \
         base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )
}

/// The text of every inline `<script>` element (those without `src`).
fn inline_scripts(html: &str) -> impl Iterator<Item = &str> {
    let mut rest = html;
    std::iter::from_fn(move || {
        loop {
            let start = rest.find("<script")?;
            let open_end = start + rest[start..].find('>')?;
            let tag = &rest[start..open_end];
            let body_start = open_end + 1;
            let body_end = body_start + rest[body_start..].find("</script>")?;
            let body = &rest[body_start..body_end];
            rest = &rest[body_end + "</script>".len()..];
            if !tag.contains(" src=") {
                return Some(body);
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_each_inline_script_and_nothing_else() {
        let html = r#"<head><script charset="UTF-8">alert(1)</script>
            <script src="/x.js"></script></head><body><script>
  let x = 2;
</script></body>"#;
        let scripts: Vec<&str> = inline_scripts(html).collect();
        assert_eq!(scripts, ["alert(1)", "\n  let x = 2;\n"]);
        let policy = policy_for(html);
        // The CSP spec's own example: sha256 of "alert(1)" (without quotes).
        assert!(
            policy.contains("'sha256-bhHHL3z2vDgxUt0W3dWQOrprscmda2Y5pLsLg4GF+pI='"),
            "{policy}"
        );
        assert!(
            !policy
                .split(';')
                .any(|d| d.contains("script-src") && d.contains("unsafe"))
        );
        assert_eq!(policy.matches("'sha256-").count(), 2);
        assert!(policy_for("<p>no script</p>").contains("script-src 'none'"));
    }
}
