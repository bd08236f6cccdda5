//! Every answer the suite gets is held to the OpenAPI document: a
//! documented status of a documented operation must carry a body that
//! matches its schema (types, `required`, `nullable`) and the headers the
//! document marks required. A client generated from the document, or a
//! schema-driven fuzzer, relies on exactly this.
//!
//! The document uses a small part of OpenAPI 3.0 (`$ref`, `allOf`, `type`,
//! `nullable`, `required`, `properties`, `items`), and this checks that
//! part; a keyword it does not know fails loudly rather than passing.

use std::sync::OnceLock;

use reqwest::header::HeaderMap;
use serde_json::Value;

/// The service's OpenAPI document, parsed once.
///
/// # Panics
/// If the generated document is not JSON.
pub fn document() -> &'static Value {
    static DOCUMENT: OnceLock<Value> = OnceLock::new();
    DOCUMENT.get_or_init(|| {
        serde_json::from_str(&adapters::http::openapi_json()).expect("the OpenAPI document")
    })
}

/// Statuses the HTTP edge gives any operation before it runs (a body too
/// large, headers too large, a method the path does not take); the contract
/// says they are problem+json, and their own tests check that.
const EDGE_STATUSES: &[u16] = &[405, 413, 431];

/// Checks an answer to `method path` against the document; `Err` says how it
/// differs. A documented operation must answer one of its documented
/// statuses (or one of [`EDGE_STATUSES`]); paths and methods the document
/// does not describe (the demo page, an unknown path's 404) pass.
///
/// # Errors
/// How the answer differs from the document.
pub fn check(
    method: &str,
    path: &str,
    status: u16,
    headers: &HeaderMap,
    body: &str,
) -> Result<(), String> {
    let doc = document();
    let path = path.split('?').next().unwrap_or(path);
    let Some(operation) = operation(doc, path, &method.to_ascii_lowercase()) else {
        return Ok(());
    };
    let Some(answer) = operation["responses"].get(status.to_string()) else {
        return if EDGE_STATUSES.contains(&status) {
            Ok(())
        } else {
            Err(format!(
                "{status} is not among the operation's documented answers"
            ))
        };
    };
    let answer = resolve(doc, answer);
    for (name, header) in answer["headers"].as_object().into_iter().flatten() {
        if header["required"] == true && !headers.contains_key(name.to_ascii_lowercase().as_str()) {
            return Err(format!("{status} lacks its required header {name}"));
        }
    }
    let Some(content) = answer["content"].as_object() else {
        return Ok(());
    };
    let media = |t: &str| t.split(';').next().unwrap_or_default().trim().to_owned();
    let got = headers
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(media)
        .unwrap_or_default();
    let Some((_, described)) = content.iter().find(|(t, _)| media(t) == got) else {
        let documented: Vec<&String> = content.keys().collect();
        return Err(format!(
            "{status} is {got:?}; the document says {documented:?}"
        ));
    };
    let value: Value =
        serde_json::from_str(body).map_err(|e| format!("{status} is not JSON ({e}): {body}"))?;
    matches(doc, &described["schema"], &value, "body")
        .map_err(|e| format!("{status} differs from its schema: {e}\n  in {body}"))
}

/// The operation for a concrete path, matching `{param}` segments.
fn operation<'d>(doc: &'d Value, path: &str, method: &str) -> Option<&'d Value> {
    let segments: Vec<&str> = path.split('/').collect();
    doc["paths"]
        .as_object()?
        .iter()
        .find(|(template, _)| {
            let parts: Vec<&str> = template.split('/').collect();
            parts.len() == segments.len()
                && parts
                    .iter()
                    .zip(&segments)
                    .all(|(t, s)| t == s || (t.starts_with('{') && t.ends_with('}')))
        })
        .and_then(|(_, item)| item.get(method))
}

/// Follows a local `$ref`.
fn resolve<'d>(doc: &'d Value, node: &'d Value) -> &'d Value {
    match node["$ref"].as_str() {
        Some(r) => {
            let pointer = r.strip_prefix('#').expect("a local reference");
            resolve(doc, doc.pointer(pointer).expect("the reference resolves"))
        }
        None => node,
    }
}

const KNOWN: &[&str] = &[
    "$ref",
    "allOf",
    "type",
    "format",
    "nullable",
    "required",
    "properties",
    "items",
    "title",
    "description",
    "minLength",
    "maxLength",
    "pattern",
    "deprecated",
    "readOnly",
    "writeOnly",
    "example",
    "default",
];

/// Whether `value` matches `schema`; `Err` names the first difference at `at`.
fn matches(doc: &Value, schema: &Value, value: &Value, at: &str) -> Result<(), String> {
    let schema = resolve(doc, schema);
    if let Some(unknown) = schema
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, _)| k)
        .find(|k| !KNOWN.contains(&k.as_str()))
    {
        panic!("the document uses `{unknown}`, which tests/src/document.rs does not check");
    }
    for part in schema["allOf"].as_array().into_iter().flatten() {
        matches(doc, part, value, at)?;
    }
    if value.is_null() {
        return if schema["nullable"] == true || schema.get("type").is_none() {
            Ok(())
        } else {
            Err(format!(
                "{at} is null, and the schema does not say nullable"
            ))
        };
    }
    let fits = match schema["type"].as_str() {
        None => true,
        Some("object") => value.is_object(),
        Some("array") => value.is_array(),
        Some("string") => value.is_string(),
        Some("integer") => value.is_i64() || value.is_u64(),
        Some("number") => value.is_number(),
        Some("boolean") => value.is_boolean(),
        Some(other) => panic!("unknown type {other} in the document"),
    };
    if !fits {
        return Err(format!("{at} is {value}, not of type {}", schema["type"]));
    }
    for name in schema["required"].as_array().into_iter().flatten() {
        let name = name.as_str().unwrap_or_default();
        if value.get(name).is_none() {
            return Err(format!("{at} lacks the required {name}"));
        }
    }
    for (name, property) in schema["properties"].as_object().into_iter().flatten() {
        if let Some(v) = value.get(name) {
            matches(doc, property, v, &format!("{at}.{name}"))?;
        }
    }
    if let (Some(items), Some(values)) = (schema.get("items"), value.as_array()) {
        for (i, v) in values.iter().enumerate() {
            matches(doc, items, v, &format!("{at}[{i}]"))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn problem_headers() -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("content-type", "application/problem+json".parse().unwrap());
        h.insert("www-authenticate", "Bearer".parse().unwrap());
        h
    }

    #[test]
    fn a_documented_answer_passes_and_a_wrong_one_fails() {
        let body = json!({"type": "t", "title": "t", "status": 401, "code": "invalid_token", "detail": "d"});
        let h = problem_headers();
        check("GET", "/api/sessions", 401, &h, &body.to_string()).unwrap();
        let mut missing = body.clone();
        missing.as_object_mut().unwrap().remove("code");
        let e = check("GET", "/api/sessions", 401, &h, &missing.to_string()).unwrap_err();
        assert!(e.contains("code"), "{e}");
        let typed = json!({"type": "t", "title": "t", "status": "401", "code": "c", "detail": "d"});
        assert!(check("GET", "/api/sessions", 401, &h, &typed.to_string()).is_err());
        let mut no_challenge = h.clone();
        no_challenge.remove("www-authenticate");
        let e = check(
            "GET",
            "/api/sessions",
            401,
            &no_challenge,
            &body.to_string(),
        )
        .unwrap_err();
        assert!(e.contains("WWW-AUTHENTICATE"), "{e}");
    }

    #[test]
    fn templates_match_and_nulls_need_nullable() {
        let h = problem_headers();
        let body =
            json!({"type": "t", "title": "t", "status": 404, "code": "not_found", "detail": null});
        let e = check("DELETE", "/api/sessions/x", 404, &h, &body.to_string()).unwrap_err();
        assert!(e.contains("body.detail is null"), "{e}");
        // Not an operation of the document, or the edge's: passes.
        check("GET", "/api/nowhere", 404, &h, "").unwrap();
        check("PATCH", "/api/sessions", 405, &h, "").unwrap();
        check("POST", "/api/login", 413, &h, "").unwrap();
        // An operation's answer the document does not list: fails.
        let e = check("GET", "/api/sessions", 418, &h, "").unwrap_err();
        assert!(e.contains("418 is not among"), "{e}");
    }
}
