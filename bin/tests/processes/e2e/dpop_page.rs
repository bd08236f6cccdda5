//! What the DPoP browser test (`browser_dpop.rs`) reads from the demo page:
//! `#session-binding`, a probe on the page's `fetch` that keeps what the
//! client sent and got (its `Authorization` scheme, its `DPoP` proof, the
//! answer), the key pair the client keeps in IndexedDB, clients made in the
//! page without WebCrypto or IndexedDB; and the proofs and tokens decoded
//! here, with the RFC 7638 thumbprint computed here.

use anyhow::{Context, Result, bail, ensure};
use data_encoding::BASE64URL_NOPAD;
use serde_json::Value;

use integration_tests::dpop::token_hash;

use super::webdriver::Browser;

/// Where `web/auth-client.js` keeps its key pair.
const KEY_DB: &str = "authd-dpop";
const KEY_STORE: &str = "keys";
const KEY_ID: &str = "session-key";

/// `#session-binding` as the page shows it.
#[derive(Debug)]
pub(super) struct Binding {
    /// "true", "false", or "" when signed out.
    pub bound: String,
    /// The thumbprint of the page's key, "" before it loaded.
    pub jkt: String,
    /// The client's `dpopState`: "pending", "ready", "off", "unavailable".
    pub key: String,
    pub text: String,
}

pub(super) async fn binding(browser: &Browser) -> Result<Binding> {
    let v = browser
        .eval(
            "const e = document.getElementById('session-binding');\
             return e && [e.dataset.bound, e.dataset.jkt, e.dataset.key, e.textContent];",
        )
        .await?;
    let field = |i: usize| -> Result<String> {
        Ok(v[i]
            .as_str()
            .with_context(|| format!("#session-binding: {v}"))?
            .to_owned())
    };
    Ok(Binding {
        bound: field(0)?,
        jkt: field(1)?,
        key: field(2)?,
        text: field(3)?,
    })
}

/// Checks that `#session-binding` says bound by the key `jkt`, in the words
/// the page uses.
pub(super) fn check_bound(shown: &Binding, jkt: &str) -> Result<()> {
    ensure!(
        shown.bound == "true" && shown.key == "ready" && shown.jkt == jkt,
        "the page does not show a session bound by {jkt}: {shown:?}"
    );
    let prefix: String = jkt.chars().take(12).collect();
    ensure!(
        shown.text == format!("DPoP-bound (key {prefix}\u{2026})"),
        "{shown:?}"
    );
    Ok(())
}

/// The thumbprint of the key the page's session is bound by, after
/// checking that the page shows it bound (DPoP is on by default).
pub(super) async fn bound_key(browser: &Browser) -> Result<String> {
    let shown = binding(browser).await?;
    check_bound(&shown, &shown.jkt)?;
    ensure!(
        shown.jkt.len() == 43,
        "a thumbprint of {} characters",
        shown.jkt.len()
    );
    Ok(shown.jkt)
}

/// Wraps the page's `fetch` (the client calls it by name, so it calls the
/// wrapper): every request is kept in `window.__sent` with its method,
/// path, `Authorization` scheme, `DPoP` header, status and JSON answer.
/// Read back by the test, which plays the one who copies tokens out.
pub(super) async fn install_probe(browser: &Browser) -> Result<()> {
    browser
        .eval(
            "if (!window.__sent) {\
               const native = window.fetch.bind(window); window.__sent = [];\
               window.fetch = async (input, init) => {\
                 const h = (init && init.headers) || {};\
                 const e = { method: (init && init.method) || 'GET',\
                   path: new URL(String(input), location.href).pathname,\
                   scheme: String(h.Authorization || '').split(' ')[0], dpop: h.DPoP || null,\
                   status: 0, body: null };\
                 window.__sent.push(e);\
                 const res = await native(input, init);\
                 e.status = res.status;\
                 try { e.body = await res.clone().json(); } catch (_) {}\
                 return res;\
               };\
             }\
             return true;",
        )
        .await?;
    Ok(())
}

/// A request the page made, as the probe saw it.
#[derive(Debug, Clone)]
pub(super) struct Sent {
    pub method: String,
    pub path: String,
    /// `Authorization`'s scheme, "" without one.
    pub scheme: String,
    /// The `DPoP` header.
    pub dpop: Option<String>,
    pub status: u64,
    pub body: Value,
}

impl Sent {
    /// The `DPoP` proof it carried.
    pub fn proof(&self) -> Result<&str> {
        self.dpop
            .as_deref()
            .with_context(|| format!("{} {} without a DPoP proof", self.method, self.path))
    }

    /// The access token of a token response.
    pub fn access_token(&self) -> Result<&str> {
        self.body["accessToken"]
            .as_str()
            .with_context(|| format!("{} {}: no token response", self.method, self.path))
    }
}

/// Everything the probe saw since it was installed, in order.
pub(super) async fn sent(browser: &Browser) -> Result<Vec<Sent>> {
    let v = browser.eval("return window.__sent || [];").await?;
    let list = v.as_array().context("the probe's list")?;
    Ok(list
        .iter()
        .map(|e| Sent {
            method: e["method"].as_str().unwrap_or_default().to_owned(),
            path: e["path"].as_str().unwrap_or_default().to_owned(),
            scheme: e["scheme"].as_str().unwrap_or_default().to_owned(),
            dpop: e["dpop"].as_str().map(str::to_owned),
            status: e["status"].as_u64().unwrap_or_default(),
            body: e["body"].clone(),
        })
        .collect())
}

/// The last request to `path` the probe saw.
pub(super) async fn last_sent(browser: &Browser, method: &str, path: &str) -> Result<Sent> {
    let all = sent(browser).await?;
    all.iter()
        .rev()
        .find(|s| s.method == method && s.path == path)
        .cloned()
        .with_context(|| format!("the page sent no {method} {path}: {all:?}"))
}

/// The JSON of a JWS part.
fn json_part(part: &str) -> Result<Value> {
    let bytes = BASE64URL_NOPAD
        .decode(part.as_bytes())
        .context("a JWS part that is not base64url")?;
    serde_json::from_slice(&bytes).context("a JWS part that is not JSON")
}

/// The claims of a JWT (read, not verified).
pub(super) fn claims_of(token: &str) -> Result<Value> {
    json_part(token.split('.').nth(1).context("a token of one part")?)
}

/// A proof's header and claims, after its shape is checked: three parts,
/// an ES256 signature of 64 bytes (r || s).
pub(super) fn decode_proof(proof: &str) -> Result<(Value, Value)> {
    let parts: Vec<&str> = proof.split('.').collect();
    ensure!(parts.len() == 3, "a proof of {} parts", parts.len());
    let signature = BASE64URL_NOPAD
        .decode(parts[2].as_bytes())
        .context("the proof's signature")?;
    ensure!(
        signature.len() == 64,
        "an ES256 signature of {} bytes (JWS wants r || s, 64)",
        signature.len()
    );
    Ok((json_part(parts[0])?, json_part(parts[1])?))
}

/// The RFC 7638 thumbprint of a P-256 JWK: SHA-256 of its required members
/// in lexicographic order, no whitespace (written out here, apart from the
/// client's and the server's code).
pub(super) fn thumbprint(jwk: &Value) -> Result<String> {
    let member = |name: &str| -> Result<&str> {
        jwk[name]
            .as_str()
            .with_context(|| format!("a JWK without {name}: {jwk}"))
    };
    ensure!(
        member("kty")? == "EC" && member("crv")? == "P-256",
        "not a P-256 key: {jwk}"
    );
    let canonical = format!(
        r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
        member("x")?,
        member("y")?
    );
    Ok(token_hash(&canonical))
}

/// Checks a proof the page sent: the header RFC 9449 asks for with a public
/// JWK of exactly `kty`, `crv`, `x`, `y` whose thumbprint is `jkt`; `htm`
/// and `htu`; a fresh `iat`; a `jti` of at least 128 bits; and `ath`, the
/// hash of `token` when one went with it, absent otherwise. Returns the `jti`.
pub(super) fn check_proof(
    proof: &str,
    jkt: &str,
    htm: &str,
    htu: &str,
    token: Option<&str>,
) -> Result<String> {
    let (header, claims) = decode_proof(proof)?;
    ensure!(
        header["typ"] == "dpop+jwt" && header["alg"] == "ES256",
        "{header}"
    );
    let jwk = &header["jwk"];
    let mut members: Vec<&String> = jwk.as_object().context("no jwk")?.keys().collect();
    members.sort();
    ensure!(
        members == ["crv", "kty", "x", "y"],
        "the proof's jwk holds {members:?}"
    );
    ensure!(thumbprint(jwk)? == jkt, "a proof by another key: {header}");
    ensure!(
        claims["htm"] == htm && claims["htu"] == htu,
        "htm/htu {claims}, wanted {htm} {htu}"
    );
    let iat = claims["iat"].as_i64().context("no iat")?;
    let now = integration_tests::clock::unix_now();
    ensure!((now - iat).abs() <= 30, "iat {iat}, now {now}");
    let jti = claims["jti"].as_str().context("no jti")?;
    let jti_bits = BASE64URL_NOPAD.decode(jti.as_bytes()).map(|b| b.len() * 8);
    ensure!(
        jti_bits.is_ok_and(|bits| bits >= 128),
        "a jti of too few bits: {jti}"
    );
    match token {
        Some(token) => ensure!(
            claims["ath"] == token_hash(token).as_str(),
            "the proof's ath is not the token's hash: {claims}"
        ),
        None => ensure!(claims.get("ath").is_none(), "an ath without a token"),
    }
    Ok(jti.to_owned())
}

/// The key pair in the page's IndexedDB: whether each half is extractable,
/// its algorithm and usages, the public JWK, and what exporting the private
/// key gave (the DOMException's name when refused).
pub(super) async fn stored_key(browser: &Browser) -> Result<Value> {
    let v = browser
        .eval_async(&format!(
            "const req = (r) => new Promise((ok, no) => {{ r.onsuccess = () => ok(r.result); r.onerror = () => no(r.error); }});\
             const db = await req(indexedDB.open('{KEY_DB}'));\
             const pair = await req(db.transaction('{KEY_STORE}').objectStore('{KEY_STORE}').get('{KEY_ID}'));\
             db.close();\
             if (!pair) return null;\
             let privateExport = 'exported';\
             try {{ await crypto.subtle.exportKey('jwk', pair.privateKey); }} catch (e) {{ privateExport = e.name; }}\
             return {{ privateExtractable: pair.privateKey.extractable, publicExtractable: pair.publicKey.extractable,\
               algorithm: pair.privateKey.algorithm, usages: pair.privateKey.usages,\
               isCryptoKey: pair.privateKey instanceof CryptoKey,\
               publicJwk: await crypto.subtle.exportKey('jwk', pair.publicKey), privateExport }};"
        ))
        .await?;
    if v.is_null() {
        bail!("no key pair in IndexedDB {KEY_DB}/{KEY_STORE}/{KEY_ID}");
    }
    Ok(v)
}

/// A second client made in the page while `hidden` (`indexedDB` or
/// `crypto`) is taken away, on a channel of its own (not the page's tabs):
/// its DPoP state once it gave up on a key, then its login as `username`
/// (logged out again). Answers `{state, problem, thumbprint, tokenType, bound}`.
pub(super) async fn client_without(
    browser: &Browser,
    hidden: &str,
    username: &str,
    password: &str,
) -> Result<Value> {
    let (hidden, username, password) = (
        Value::from(hidden),
        Value::from(username),
        Value::from(password),
    );
    browser
        .eval_async(&format!(
            "const name = {hidden}; const own = Object.getOwnPropertyDescriptor(window, name);\
             Object.defineProperty(window, name, {{ value: undefined, configurable: true, writable: true }});\
             let client;\
             try {{\
               client = new AuthClient({{}});\
               if (client.channel) {{ client.channel.close(); client.channel = null; }}\
               await client.dpopKey;\
             }} finally {{\
               if (own) Object.defineProperty(window, name, own); else delete window[name];\
             }}\
             const body = await client.login({username}, {password});\
             const out = {{ state: client.dpopState, problem: client.dpopProblem, thumbprint: client.dpopThumbprint,\
               tokenType: body.tokenType, bound: client.dpopBound }};\
             await client.logout();\
             return out;"
        ))
        .await
}
