//! A directory of static demo files (a browser client), served at `/`.
//!
//! Not poem's `StaticFilesEndpoint`: it serves hidden files (a `.env` left in
//! the directory would be public), walks subdirectories, refuses `HEAD` and
//! checks the disk with blocking calls on the async threads; this serves one
//! flat directory of plain names and nothing else.

use std::path::PathBuf;

use poem::http::StatusCode;
use poem::{Endpoint, Request, Response};

/// Serves the files directly inside one directory; `/` is `index.html`, or
/// the project's `client-demo.html` when there is no `index.html`.
#[derive(Debug, Clone)]
pub struct Demo {
    dir: PathBuf,
}

impl Demo {
    /// Serves `dir`.
    pub fn new(dir: PathBuf) -> Self {
        Self { dir }
    }
}

fn content_type(name: &str) -> &'static str {
    match name.rsplit('.').next() {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("json") => "application/json",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        _ => "application/octet-stream",
    }
}

impl Endpoint for Demo {
    type Output = Response;

    async fn call(&self, req: Request) -> poem::Result<Response> {
        if req.method() != poem::http::Method::GET && req.method() != poem::http::Method::HEAD {
            return Err(poem::Error::from_status(StatusCode::METHOD_NOT_ALLOWED));
        }
        let name = req.uri().path().trim_start_matches('/');
        let name = match name {
            "" if tokio::fs::try_exists(self.dir.join("index.html"))
                .await
                .unwrap_or(false) =>
            {
                "index.html"
            }
            "" => "client-demo.html",
            name => name,
        };
        // One plain file name: no separators, no hidden files, no `..`.
        let plain = !name.starts_with('.')
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
        if !plain {
            return Err(poem::Error::from_status(StatusCode::NOT_FOUND));
        }
        match tokio::fs::read(self.dir.join(name)).await {
            Ok(bytes) => Ok(Response::builder()
                .content_type(content_type(name))
                .header("cache-control", "no-cache")
                .body(bytes)),
            Err(_) => Err(poem::Error::from_status(StatusCode::NOT_FOUND)),
        }
    }
}
