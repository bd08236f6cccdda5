//! Problem details (RFC 9457) for every error of the REST edge, and the
//! catch-all that turns framework errors (parse errors, 404, 405, 413) into them.

use application::ports::StorageUnavailable;
use poem::http::{HeaderValue, StatusCode, header};
use poem::{IntoResponse, Response};
use poem_openapi::Object;

pub use crate::problem::{CHALLENGE, CHALLENGE_INVALID, Code, PROBLEM_JSON};

/// An error body: `{"type","title","status","code","detail"}`.
#[derive(Debug, Clone, Object)]
pub struct Problem {
    /// A URI naming the kind of problem: `urn:authd:problem:<code>`.
    #[oai(rename = "type")]
    pub kind: String,
    /// A short summary of the kind of problem.
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// The machine-readable code clients switch on (see the contract).
    pub code: String,
    /// A human-readable explanation of this occurrence.
    pub detail: String,
}

impl Problem {
    /// The problem `code` (which decides the status) with human `detail`.
    pub fn new(code: Code, detail: impl Into<String>) -> Self {
        Self {
            kind: code.type_uri(),
            title: code.title().to_owned(),
            status: code.status(),
            code: code.as_str().to_owned(),
            detail: detail.into(),
        }
    }

    /// The generic body of a 5xx; the cause was logged, not sent.
    pub fn internal() -> Self {
        Self::new(Code::InternalError, "An unexpected error occurred.")
    }

    /// `400 bad_request`.
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(Code::BadRequest, detail)
    }

    /// `401 invalid_token`.
    pub fn invalid_token() -> Self {
        Self::new(
            Code::InvalidToken,
            "The access token is missing, invalid or expired.",
        )
    }

    /// A plain poem response carrying this problem (for errors outside the operations).
    pub fn into_poem_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::json!({
            "type": self.kind,
            "title": self.title,
            "status": self.status,
            "code": self.code,
            "detail": self.detail,
        });
        Response::builder()
            .status(status)
            .content_type(PROBLEM_JSON)
            .body(body.to_string())
    }
}

/// Logs an unexpected error with its whole chain and returns the generic
/// body. When the database could not be reached, the edge answers `503
/// database_unavailable` instead (see [`super::edge`]).
pub fn internal(error: &anyhow::Error) -> Problem {
    if StorageUnavailable::in_chain(error) {
        tracing::warn!(error = ?error, "the database cannot be reached");
        super::edge::storage_unavailable();
    } else {
        tracing::error!(error = ?error, "unexpected error");
    }
    Problem::internal()
}

/// Turns any error that escaped the operations into problem+json: malformed
/// or wrongly typed input is `400 bad_request`, unknown paths `404`, wrong
/// methods `405`, big bodies `413`, a missing or refused bearer token `401`.
pub async fn from_poem_error(error: poem::Error) -> Response {
    let status = error.status();
    match status {
        StatusCode::NOT_FOUND => {
            Problem::new(Code::NotFound, "No such resource.").into_poem_response()
        }
        StatusCode::METHOD_NOT_ALLOWED => Problem::new(
            Code::MethodNotAllowed,
            "This method is not allowed on this resource.",
        )
        .into_poem_response(),
        StatusCode::PAYLOAD_TOO_LARGE => Problem::new(
            Code::PayloadTooLarge,
            "The request body is larger than 16 KiB.",
        )
        .into_poem_response(),
        StatusCode::UNAUTHORIZED => {
            let challenge =
                if let Some(binding) = error.downcast_ref::<super::bearer::RefusedBinding>() {
                    binding.challenge
                } else if error.is::<super::bearer::RefusedToken>() {
                    CHALLENGE_INVALID
                } else {
                    CHALLENGE
                };
            let mut r = Problem::invalid_token().into_poem_response();
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge),
            );
            r
        }
        s if s.is_server_error() => {
            tracing::error!(error = ?error, status = s.as_u16(), "request failed");
            Problem::internal().into_poem_response()
        }
        // Parse errors (body, query, path, content type) and anything else a client did wrong.
        _ => Problem::bad_request(client_detail(&error)).into_poem_response(),
    }
}

/// A description of a client error that never repeats what was submitted:
/// poem-openapi's parse messages quote the offending value (a password sent
/// as an object came back in the answer), so only the kind of error and, for
/// parameters, the parameter's declared name are used.
fn client_detail(error: &poem::Error) -> String {
    use poem_openapi::error::{
        ContentTypeError, ParseParamError, ParsePathError, ParseRequestPayloadError,
    };
    if error.is::<ParseRequestPayloadError>() {
        "The request body is not valid for this operation: see /api/openapi.json.".to_owned()
    } else if let Some(e) = error.downcast_ref::<ParseParamError>() {
        format!("The parameter `{}` is not valid.", e.name)
    } else if let Some(e) = error.downcast_ref::<ParsePathError>() {
        format!("The path parameter `{}` is not valid.", e.name)
    } else if error.is::<ContentTypeError>() {
        "The request body must be application/json.".to_owned()
    } else {
        "The request is malformed.".to_owned()
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        self.into_poem_response()
    }
}
