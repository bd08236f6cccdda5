//! A typed client of the REST API, for the in-process app and for real
//! processes alike: requests by path, the contract's operations, responses
//! read completely, the `refreshToken` cookie, problem+json assertions.
//!
//! Every response that passes through [`TestRequest::send`] is checked: no
//! request of the suite may get a 5xx (except the documented `503` of the
//! health check), so a 500 anywhere fails the test that caused it, and every
//! answer must match the OpenAPI document (see [`crate::document`]).

use std::time::Duration;

use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// A client of one REST origin (`http://127.0.0.1:<port>`, or Nginx's).
#[derive(Debug, Clone)]
pub struct ApiClient {
    /// The origin requests go to.
    pub base: String,
    http: reqwest::Client,
}

impl ApiClient {
    /// A client of `base` that follows no redirect and gives up after 30 s.
    ///
    /// # Panics
    /// If the TLS backend cannot start.
    pub fn new(base: impl Into<String>) -> Self {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30))
            .build()
            .expect("client");
        Self::with_http(base, http)
    }

    /// A client of `base` on a `reqwest` client of the caller's (one that
    /// trusts a test certificate, say).
    pub fn with_http(base: impl Into<String>, http: reqwest::Client) -> Self {
        Self {
            base: base.into(),
            http,
        }
    }

    /// A request to `path` (e.g. `/api/login`).
    pub fn request(&self, method: Method, path: &str) -> TestRequest {
        TestRequest {
            builder: self
                .http
                .request(method.clone(), format!("{}{path}", self.base)),
            method,
            path: path.into(),
        }
    }

    /// `GET path`.
    pub fn get(&self, path: &str) -> TestRequest {
        self.request(Method::GET, path)
    }

    /// `POST path`.
    pub fn post(&self, path: &str) -> TestRequest {
        self.request(Method::POST, path)
    }

    /// `DELETE path`.
    pub fn delete(&self, path: &str) -> TestRequest {
        self.request(Method::DELETE, path)
    }

    /// `POST /api/register`.
    pub async fn register(&self, username: &str, password: &str) -> TestResponse {
        self.post("/api/register")
            .json(&json!({"username": username, "password": password}))
            .send()
            .await
    }

    /// `POST /api/login`.
    pub async fn login(&self, username: &str, password: &str) -> TestResponse {
        self.post("/api/login")
            .json(&json!({"username": username, "password": password}))
            .send()
            .await
    }

    /// `POST /api/refresh` with this refresh token.
    pub async fn refresh(&self, refresh: &str) -> TestResponse {
        self.post("/api/refresh")
            .refresh_cookie(refresh)
            .send()
            .await
    }

    /// `GET /api/protected` with this access token.
    pub async fn protected(&self, access: &str) -> TestResponse {
        self.get("/api/protected").bearer(access).send().await
    }

    /// Registers and logs in a fresh user; returns (access token, refresh token, user id).
    pub async fn signed_in(&self, username: &str) -> SignedIn {
        let r = self.register(username, PASSWORD).await;
        assert_eq!(r.status, StatusCode::CREATED, "register: {}", r.text);
        let user_id = r.json()["id"].as_str().expect("id").to_owned();
        let r = self.login(username, PASSWORD).await;
        assert_eq!(r.status, StatusCode::OK, "login: {}", r.text);
        SignedIn {
            access: r.access_token(),
            refresh: r.refresh_cookie().expect("refresh cookie"),
            user_id,
        }
    }
}

/// A response, read completely.
#[derive(Debug, Clone)]
pub struct TestResponse {
    /// Status.
    pub status: StatusCode,
    /// Headers.
    pub headers: reqwest::header::HeaderMap,
    /// Body text.
    pub text: String,
}

impl TestResponse {
    /// The body as JSON (`Null` when it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or(Value::Null)
    }

    /// One header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The `Set-Cookie` header.
    pub fn set_cookie(&self) -> Option<&str> {
        self.header("set-cookie")
    }

    /// The value of the `refreshToken` cookie that was set.
    pub fn refresh_cookie(&self) -> Option<String> {
        refresh_cookie_in(&self.headers).map(|(value, _)| value)
    }

    /// The `accessToken` of a token response.
    pub fn access_token(&self) -> String {
        self.json()["accessToken"]
            .as_str()
            .unwrap_or_else(|| panic!("no accessToken in {}", self.text))
            .to_owned()
    }

    /// Asserts a problem+json error with `status` and `code`.
    #[track_caller]
    pub fn assert_problem(&self, status: u16, code: &str) {
        assert_eq!(self.status.as_u16(), status, "status of {}", self.text);
        assert!(
            self.header("content-type")
                .is_some_and(|c| c.starts_with("application/problem+json")),
            "content type of a {status}: {:?}",
            self.header("content-type")
        );
        let body = self.json();
        assert_eq!(body["code"], code, "code in {}", self.text);
        assert_eq!(body["status"], status, "status field in {}", self.text);
        for field in ["type", "title", "detail"] {
            assert!(
                body[field].is_string(),
                "problem field {field} in {}",
                self.text
            );
        }
    }
}

/// A request being built.
#[derive(Debug)]
pub struct TestRequest {
    builder: reqwest::RequestBuilder,
    method: Method,
    path: String,
}

impl TestRequest {
    /// Adds a header.
    #[must_use]
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.builder = self.builder.header(name, value);
        self
    }

    /// `Authorization: Bearer <token>`.
    #[must_use]
    pub fn bearer(self, token: &str) -> Self {
        let value = format!("Bearer {token}");
        self.header("authorization", &value)
    }

    /// `Cookie: refreshToken=<token>`.
    #[must_use]
    pub fn refresh_cookie(self, token: &str) -> Self {
        let value = format!("refreshToken={token}");
        self.header("cookie", &value)
    }

    /// A JSON body.
    #[must_use]
    pub fn json(mut self, body: &Value) -> Self {
        self.builder = self.builder.json(body);
        self
    }

    /// A raw body with a content type.
    #[must_use]
    pub fn body(mut self, content_type: &str, body: impl Into<reqwest::Body>) -> Self {
        self.builder = self.builder.header("content-type", content_type).body(body);
        self
    }

    /// Sends it; fails the test on a 5xx (other than the health check's 503
    /// and `503 database_unavailable`) and on an answer that does not match
    /// the OpenAPI document.
    pub async fn send(self) -> TestResponse {
        let (method, path) = (self.method.clone(), self.path.clone());
        let response = self.send_unchecked().await;
        // The health check's 503, and a database outage's (contract v3):
        // answers that tests provoke on purpose.
        let allowed = response.status == StatusCode::SERVICE_UNAVAILABLE
            && (path == "/api/health" || response.text.contains("\"database_unavailable\""));
        assert!(
            !response.status.is_server_error() || allowed,
            "the server answered {} to {method} {path} ({})",
            response.status,
            response.text
        );
        if let Err(e) = crate::document::check(
            method.as_str(),
            &path,
            response.status.as_u16(),
            &response.headers,
            &response.text,
        ) {
            panic!("{method} {path}: the answer is not the documented one: {e}");
        }
        response
    }

    /// Sends it without the 5xx check (for the sabotage tests).
    pub async fn send_unchecked(self) -> TestResponse {
        let response = self
            .builder
            .send()
            .await
            .expect("the request reaches the server");
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.expect("a body");
        TestResponse {
            status,
            headers,
            text,
        }
    }
}

/// The password the helpers register users with.
pub const PASSWORD: &str = "correct horse battery staple";

/// A logged-in user's tokens.
#[derive(Debug, Clone)]
pub struct SignedIn {
    /// Access token.
    pub access: String,
    /// Refresh token (the cookie's value).
    pub refresh: String,
    /// The user's id.
    pub user_id: String,
}

/// The `refreshToken` cookie a response sets: its value and the whole
/// `Set-Cookie` header (for the attribute checks).
pub fn refresh_cookie_in(headers: &HeaderMap) -> Option<(String, String)> {
    headers
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|raw| {
            let value = raw.split(';').next()?.strip_prefix("refreshToken=")?;
            Some((value.to_owned(), raw.to_owned()))
        })
}
