//! OpenTelemetry traces of the real `authd` binary: a login that carries a
//! W3C `traceparent` arrives at an in-process OTLP/HTTP receiver as a server
//! span under the caller's span, with the use case, a database call, the
//! password check and the signing below it, and no secret in any attribute;
//! a WebSocket connection with a `traceparent` continues its caller's trace,
//! and each `reauth` on it is a span of its own, exported at once.

use std::collections::HashMap;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use integration_tests::otlp::OtlpReceiver;
use integration_tests::process::{self, Proc};
use integration_tests::ws_client::Connect;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::Span;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;

/// Spans with their service name (from the resource).
fn all_spans(receiver: &OtlpReceiver) -> Vec<(Option<String>, Span)> {
    receiver
        .traces()
        .iter()
        .flat_map(|e| &e.resource_spans)
        .flat_map(|rs| {
            let service = rs
                .resource
                .as_ref()
                .and_then(|res| string_attr(&res.attributes, "service.name"));
            rs.scope_spans
                .iter()
                .flat_map(|ss| &ss.spans)
                .map(move |s| (service.clone(), s.clone()))
        })
        .collect()
}

fn attr<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a any_value::Value> {
    attrs
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v| v.value.as_ref())
}

fn string_attr(attrs: &[KeyValue], key: &str) -> Option<String> {
    match attr(attrs, key) {
        Some(any_value::Value::StringValue(s)) => Some(s.clone()),
        _ => None,
    }
}

fn int_attr(attrs: &[KeyValue], key: &str) -> Option<i64> {
    match attr(attrs, key) {
        Some(any_value::Value::IntValue(i)) => Some(*i),
        _ => None,
    }
}

/// Every string in an attribute value, nested ones included.
fn strings(value: &AnyValue, out: &mut Vec<String>) {
    match &value.value {
        Some(any_value::Value::StringValue(s)) => out.push(s.clone()),
        Some(any_value::Value::ArrayValue(a)) => a.values.iter().for_each(|v| strings(v, out)),
        Some(any_value::Value::KvlistValue(l)) => l
            .values
            .iter()
            .filter_map(|kv| kv.value.as_ref())
            .for_each(|v| strings(v, out)),
        Some(any_value::Value::BytesValue(b)) => out.push(String::from_utf8_lossy(b).into_owned()),
        _ => {}
    }
}

/// Every attribute value of a span and of its events, as text.
fn attribute_texts(span: &Span) -> Vec<String> {
    let mut out = vec![span.name.clone()];
    let attrs = span
        .attributes
        .iter()
        .chain(span.events.iter().flat_map(|e| &e.attributes));
    for kv in attrs {
        out.push(kv.key.clone());
        if let Some(v) = &kv.value {
            strings(v, &mut out);
        }
    }
    out.extend(span.events.iter().map(|e| e.name.clone()));
    out
}

/// Polls the receiver until `pick` finds what it wants in the spans so far.
async fn wait_for_spans<T>(
    receiver: &OtlpReceiver,
    within: Duration,
    pick: impl Fn(&[Span]) -> Option<T>,
) -> Option<T> {
    let deadline = Instant::now() + within;
    loop {
        let spans: Vec<Span> = all_spans(receiver).into_iter().map(|(_, s)| s).collect();
        if let Some(found) = pick(&spans) {
            return Some(found);
        }
        if Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn hex(bytes: &[u8]) -> String {
    data_encoding::HEXLOWER.encode(bytes)
}

/// Whether `ancestor` is `span` or above it in the parent chain.
fn descends_from(span: &Span, ancestor: &[u8], by_id: &HashMap<Vec<u8>, &Span>) -> bool {
    let mut current = span;
    for _ in 0..32 {
        if current.span_id == ancestor {
            return true;
        }
        match by_id.get(&current.parent_span_id) {
            Some(parent) => current = parent,
            None => return false,
        }
    }
    false
}

/// A running `authd serve` with its scratch directory.
struct Authd {
    proc: Proc,
    api_port: u16,
    ws_port: u16,
    dir: std::path::PathBuf,
}

impl Drop for Authd {
    fn drop(&mut self) {
        self.proc.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn start_authd(otlp_port: u16, service_name: &str) -> Result<Authd> {
    let dir = process::temp_dir("authd-traces")?;
    let keys = dir.join("keys");
    // Nothing of the test's own environment may switch telemetry on or off.
    let clean = |cmd: &mut Command| {
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("OTEL_") {
                cmd.env_remove(name);
            }
        }
        cmd.env_remove("RUST_LOG")
            .env_remove("METRICS_ADDR")
            .current_dir(&dir);
    };
    let mut generate = Command::new(crate::authd());
    clean(&mut generate);
    generate
        .args(["keys", "generate", "--bits", "2048", "--out"])
        .arg(&keys);
    process::run(&mut generate).context("authd keys generate")?;

    let ports = process::free_ports(2);
    let mut cmd = Command::new(crate::authd());
    clean(&mut cmd);
    cmd.arg("serve")
        .env(
            "DATABASE_URL",
            format!("sqlite://{}", dir.join("authd.db").display()),
        )
        .env("PRIVATE_KEY_PATH", keys.join("private.pem"))
        .env("PUBLIC_KEY_PATH", keys.join("public.pem"))
        .env("API_ADDR", format!("127.0.0.1:{}", ports[0]))
        .env("WS_ADDR", format!("127.0.0.1:{}", ports[1]))
        .env("COOKIE_SECURE", "false")
        .env("ALLOW_REGISTRATION", "true")
        .env("LOG_FORMAT", "json")
        // Traces carry the service's INFO spans even when the log is quiet:
        // only the edge's request lines are logged.
        .env("RUST_LOG", "warn,adapters::http::edge=info")
        .env(
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            format!("http://127.0.0.1:{otlp_port}"),
        )
        .env("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
        .env("OTEL_SERVICE_NAME", service_name)
        .env("OTEL_BSP_SCHEDULE_DELAY", "100");
    let mut proc = Proc::spawn("authd", cmd, dir.join("authd.log"))?;
    process::wait_listening(&mut proc, ports[0], Duration::from_secs(30))?;
    Ok(Authd {
        proc,
        api_port: ports[0],
        ws_port: ports[1],
        dir,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_spans_arrive_with_parent_links_and_no_secrets() -> Result<()> {
    let receiver = OtlpReceiver::start().await?;
    let service_name = format!("authd-traces-{}", &uuid::Uuid::new_v4().to_string()[..8]);
    let authd = start_authd(receiver.addr.port(), &service_name)?;
    let base = format!("http://127.0.0.1:{}", authd.api_port);
    let http = reqwest::Client::new();

    let username = format!("tracer{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
    let password = format!("Trace-secret-{}", uuid::Uuid::new_v4().simple());
    let credentials = serde_json::json!({ "username": username, "password": password });
    let registered = http
        .post(format!("{base}/api/register"))
        .json(&credentials)
        .send()
        .await?;
    assert_eq!(registered.status(), 201, "{}", registered.text().await?);

    let trace_id = uuid::Uuid::new_v4().simple().to_string();
    let parent_id = &uuid::Uuid::new_v4().simple().to_string()[..16];
    let login = http
        .post(format!("{base}/api/login"))
        .header("traceparent", format!("00-{trace_id}-{parent_id}-01"))
        .json(&credentials)
        .send()
        .await?;
    assert_eq!(login.status(), 200);
    let body: serde_json::Value = login.json().await?;
    let access_token = body["accessToken"]
        .as_str()
        .context("accessToken in the login response")?
        .to_owned();

    // The batch processor sends every 100 ms: wait for the whole login trace.
    let wanted = ["login", "password.verify", "jwt.sign"];
    let deadline = Instant::now() + Duration::from_secs(15);
    let spans = loop {
        let spans = all_spans(&receiver);
        let ours: Vec<&Span> = spans
            .iter()
            .map(|(_, s)| s)
            .filter(|s| hex(&s.trace_id) == trace_id)
            .collect();
        let complete = ours.iter().any(|s| s.kind == SpanKind::Server as i32)
            && wanted.iter().all(|w| ours.iter().any(|s| s.name == *w))
            && ours.iter().any(|s| s.name.starts_with("db."));
        if complete {
            break spans;
        }
        if Instant::now() > deadline {
            let names: Vec<String> = spans
                .iter()
                .map(|(_, s)| format!("{} ({})", s.name, hex(&s.trace_id)))
                .collect();
            bail!(
                "the login trace {trace_id} did not arrive in 15 s; spans received: {names:?}\nauthd log:\n{}",
                authd.proc.log_tail()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };

    let trace: Vec<&(Option<String>, Span)> = spans
        .iter()
        .filter(|(_, s)| hex(&s.trace_id) == trace_id)
        .collect();
    let by_id: HashMap<Vec<u8>, &Span> =
        trace.iter().map(|(_, s)| (s.span_id.clone(), s)).collect();
    for (service, span) in &trace {
        assert_eq!(
            service.as_deref(),
            Some(service_name.as_str()),
            "service.name of {}",
            span.name
        );
    }

    // The server span: a child of the caller's span, named by route.
    let servers: Vec<&Span> = trace
        .iter()
        .map(|(_, s)| s)
        .filter(|s| s.kind == SpanKind::Server as i32)
        .collect();
    assert_eq!(servers.len(), 1, "one server span per request");
    let server = servers[0];
    assert_eq!(server.name, "POST /api/login");
    assert_eq!(
        hex(&server.parent_span_id),
        parent_id,
        "parent = traceparent"
    );
    assert_eq!(
        string_attr(&server.attributes, "http.route").as_deref(),
        Some("/api/login")
    );
    assert_eq!(
        string_attr(&server.attributes, "http.request.method").as_deref(),
        Some("POST")
    );
    assert_eq!(
        int_attr(&server.attributes, "http.response.status_code"),
        Some(200)
    );
    assert!(
        string_attr(&server.attributes, "request_id").is_some_and(|id| !id.is_empty()),
        "request_id on the server span"
    );

    // The use case right under it, and the work under the use case.
    let use_case = trace
        .iter()
        .map(|(_, s)| s)
        .find(|s| s.name == "login")
        .context("login span")?;
    assert_eq!(
        use_case.parent_span_id, server.span_id,
        "login is a child of the server span"
    );
    for name in ["password.verify", "jwt.sign", "db.users.find_by_username"] {
        let span = trace
            .iter()
            .map(|(_, s)| s)
            .find(|s| s.name == name)
            .with_context(|| format!("{name} span"))?;
        assert!(
            descends_from(span, &use_case.span_id, &by_id),
            "{name} is below the login span"
        );
    }
    let db = trace
        .iter()
        .map(|(_, s)| s)
        .find(|s| s.name == "db.users.find_by_username")
        .context("db span")?;
    assert_eq!(
        string_attr(&db.attributes, "db.system").as_deref(),
        Some("sqlite")
    );
    assert_eq!(db.kind, SpanKind::Client as i32);
    // The hashing span lasts as long as the hashing: argon2id is not free.
    let verify = trace
        .iter()
        .map(|(_, s)| s)
        .find(|s| s.name == "password.verify")
        .context("password.verify span")?;
    assert!(
        verify.end_time_unix_nano - verify.start_time_unix_nano > 1_000_000,
        "password.verify covers the hashing (> 1 ms)"
    );

    // The request's log line names the trace, so logs lead to traces.
    let log = authd.proc.log_text();
    let done: Vec<serde_json::Value> = log
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|l| l["message"] == "request done" && l["span"]["path"] == "/api/login")
        .collect();
    assert_eq!(done.len(), 1, "one request line for the login:\n{log}");
    assert_eq!(
        done[0]["span"]["trace_id"],
        trace_id.as_str(),
        "{}",
        done[0]
    );
    let request_id = string_attr(&server.attributes, "request_id");
    assert_eq!(
        done[0]["span"]["request_id"].as_str(),
        request_id.as_deref(),
        "the same request id in the log and the trace"
    );
    assert!(
        !log.contains("\"login\""),
        "use-case spans stay out of a warn-level log"
    );

    // A WebSocket connection continues its caller's trace too (its span ends,
    // and is exported, when the socket closes).
    let ws_trace = uuid::Uuid::new_v4().simple().to_string();
    let ws_parent = &uuid::Uuid::new_v4().simple().to_string()[..16];
    let path = format!("/ws?token={access_token}");
    let mut socket = Connect::with_token(&path)
        .header("traceparent", format!("00-{ws_trace}-{ws_parent}-01"))
        .open(([127, 0, 0, 1], authd.ws_port).into())
        .await?
        .map_err(|r| anyhow::anyhow!("websocket handshake refused with {}", r.status))?;
    let hello = socket.recv_json(Duration::from_secs(5)).await?;
    assert_eq!(hello["type"], "connected");
    // Each reauth is a span of its own, exported while the socket stays open.
    for (token, outcome) in [
        (access_token.as_str(), "success"),
        ("not.a.token", "failure"),
    ] {
        socket
            .send_json(&serde_json::json!({"type": "reauth", "access": token}))
            .await?;
        let answer = socket.recv_json(Duration::from_secs(5)).await?;
        assert_eq!(
            answer["type"] == "reauth_success",
            outcome == "success",
            "{answer}"
        );
    }
    let reauths = wait_for_spans(&receiver, Duration::from_secs(15), |spans| {
        let found: Vec<Span> = spans
            .iter()
            .filter(|s| s.name == "ws.reauth" && hex(&s.trace_id) == ws_trace)
            .cloned()
            .collect();
        (found.len() == 2).then_some(found)
    })
    .await
    .context("two ws.reauth spans while the socket is open")?;
    let mut reauths = reauths;
    reauths.sort_by_key(|s| s.start_time_unix_nano);
    let outcomes: Vec<_> = reauths
        .iter()
        .map(|s| string_attr(&s.attributes, "outcome"))
        .collect();
    assert_eq!(
        outcomes,
        [Some("success".to_owned()), Some("failure".to_owned())]
    );
    socket.close().await;
    let ws = wait_for_spans(&receiver, Duration::from_secs(15), |spans| {
        spans
            .iter()
            .find(|s| s.name == "ws" && hex(&s.trace_id) == ws_trace)
            .cloned()
    })
    .await
    .with_context(|| format!("no ws span in trace {ws_trace} within 15 s"))?;
    assert_eq!(hex(&ws.parent_span_id), ws_parent, "parent = traceparent");
    assert_eq!(ws.kind, SpanKind::Server as i32);
    for reauth in &reauths {
        assert_eq!(
            reauth.parent_span_id, ws.span_id,
            "ws.reauth is a child of ws"
        );
    }

    // No secret anywhere: attributes, event fields, or the raw export bytes
    // (the WebSocket's token travelled in its URL).
    let spans = all_spans(&receiver);
    for (_, span) in &spans {
        for text in attribute_texts(span) {
            assert!(
                !text.contains(&password) && !text.contains(&access_token),
                "a secret in span {}: {text}",
                span.name
            );
        }
    }
    for body in &receiver.raw_traces() {
        for secret in [password.as_bytes(), access_token.as_bytes()] {
            assert!(
                !body.windows(secret.len()).any(|w| w == secret),
                "a secret in an OTLP export"
            );
        }
    }
    drop(authd);
    receiver.stop();
    Ok(())
}
