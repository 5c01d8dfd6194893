//! Access: who is asking (a token from `[[api.token]]`) and may they (its role).
//! A request names its token as `Authorization: Bearer TOKEN`, or — for the web page,
//! whose `<audio>` and `EventSource` cannot send headers — in the `callwarden_token`
//! cookie set by `POST /api/login` (HttpOnly, SameSite=Strict). Roles nest: supervisor
//! (calls, stats, violations, register, policy check, live events) < auditor (also
//! recordings, audio, the playback log) < admin (also approvals). No token or an unknown
//! one → 401 with `WWW-Authenticate: Bearer`; a known token without the role → 403.
//! `/metrics` is open to loopback peers (when the server knows the peer, i.e. under
//! `serve`) and to any valid token otherwise.
//!
//! The default, with no `[[api.token]]` in the config ("local mode"): a request is let in
//! as the admin `local` (the name the playback log records) only when its peer is a
//! loopback address AND its `Host` header names a loopback host (`localhost`, `127.x`,
//! `[::1]`, any port) — so a web page elsewhere that rebinds its DNS name to 127.0.0.1
//! gets nothing; everything else is 401. `serve` refuses to listen on a non-loopback
//! address without tokens, so the default cannot be exposed by accident. A change (not
//! GET/HEAD) in local mode also needs `X-Requested-With`, as with the cookie: a
//! cross-site form cannot send it. The shipped page works unchanged: its `whoami`
//! answers `local (admin)` and it never shows the login form.
//! Invariants: tokens are compared in constant time, every configured token is compared
//! (no early exit that tells which one nearly matched); a request authenticated by the
//! cookie that changes something (not GET/HEAD) must also carry `X-Requested-With`, which
//! a cross-site form cannot send (with SameSite=Strict this is belt and braces).

use super::{ApiError, AppState};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use callwarden_core::config::{Role, Token};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use subtle::ConstantTimeEq;

pub const COOKIE: &str = "callwarden_token";

/// The token a request was made with: its name (written to the playback log) and role.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Principal {
    pub name: String,
    pub role: Role,
}

/// What a group of routes needs.
#[derive(Copy, Clone, Debug)]
pub enum Need {
    Role(Role),
    /// `/metrics`: a loopback peer, or any valid token.
    LoopbackOrToken,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Source {
    Header,
    Cookie,
    /// No tokens configured, a loopback peer (local mode).
    Local,
}

/// The principal of local mode (no tokens configured, loopback only).
pub const LOCAL: &str = "local";

/// The `Host` header names this machine: `localhost`, an IPv4 loopback address or `[::1]`,
/// with or without a port. No Host (HTTP/1.0) is refused: a browser always sends one.
pub fn loopback_host(headers: &HeaderMap) -> bool {
    let Some(h) = headers.get(header::HOST).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let h = h.trim();
    let name = if let Some(rest) = h.strip_prefix('[') {
        match rest.split_once(']') {
            Some((inside, port)) if port.is_empty() || port.starts_with(':') => inside,
            _ => return false,
        }
    } else {
        match h.rsplit_once(':') {
            Some((n, port)) if valid_port(port) => n,
            Some(_) => return false,
            None => h,
        }
    };
    if h.starts_with('[') && !h.rsplit_once("]:").is_none_or(|(_, port)| valid_port(port)) {
        return false;
    }
    if name.eq_ignore_ascii_case("localhost") {
        return true;
    }
    name.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// A Host header's port: 1 to 5 digits, 1..=65535.
fn valid_port(p: &str) -> bool {
    p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()) && p.parse::<u16>().is_ok_and(|n| n > 0)
}

/// The token in the request: the Authorization header first, then the cookie.
fn presented(headers: &HeaderMap) -> Option<(String, Source)> {
    if let Some(v) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        let v = v.trim();
        let (scheme, rest) = v.split_once(' ').unwrap_or((v, ""));
        if scheme.eq_ignore_ascii_case("bearer") && !rest.trim().is_empty() {
            return Some((rest.trim().to_string(), Source::Header));
        }
    }
    for v in headers.get_all(header::COOKIE) {
        let Ok(v) = v.to_str() else { continue };
        for part in v.split(';') {
            if let Some((k, val)) = part.trim().split_once('=') {
                if k == COOKIE && !val.is_empty() {
                    return Some((val.to_string(), Source::Cookie));
                }
            }
        }
    }
    None
}

/// The configured token equal to `given`, compared in constant time against each.
pub fn find_token<'a>(tokens: &'a [Token], given: &str) -> Option<&'a Token> {
    let mut found = None;
    for t in tokens {
        // ct_eq on slices of different lengths is false without looking at the bytes; the
        // length of a secret token is not what protects it.
        if bool::from(t.token.as_bytes().ct_eq(given.as_bytes())) && found.is_none() {
            found = Some(t);
        }
    }
    found
}

fn unauthorized(msg: &str) -> Response {
    let mut res = ApiError::new(StatusCode::UNAUTHORIZED, msg).into_response();
    res.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"callwarden\""));
    res
}

/// Who is asking: the principal of the request, and where its credentials came from.
fn principal_of(cfg: &super::ApiConfig, req: &Request) -> (Option<(Principal, Source)>, bool, bool) {
    let token = presented(req.headers());
    let loopback_peer = req.extensions().get::<ConnectInfo<SocketAddr>>().is_some_and(|c| c.0.ip().is_loopback());
    let principal = if cfg.tokens.is_empty() {
        (loopback_peer && loopback_host(req.headers()))
            .then(|| (Principal { name: LOCAL.to_string(), role: Role::Admin }, Source::Local))
    } else {
        token.as_ref().and_then(|(t, src)| {
            find_token(&cfg.tokens, t).map(|t| (Principal { name: t.name.clone(), role: t.role }, *src))
        })
    };
    (principal, token.is_some(), loopback_peer)
}

/// Route layer: let the request through with its `Principal`, or answer 401/403.
pub async fn require(State((state, need)): State<(AppState, Need)>, mut req: Request, next: Next) -> Response {
    let cfg = state.config();
    let (principal, has_token, loopback_peer) = principal_of(&cfg, &req);
    match need {
        Need::LoopbackOrToken => {
            // A loopback peer must also name a loopback host, as everywhere: a page
            // elsewhere rebinding its name to 127.0.0.1 reads nothing.
            if principal.is_none() && !(loopback_peer && loopback_host(req.headers())) {
                return unauthorized("/metrics: only from loopback (with a loopback Host), or with a valid token");
            }
        }
        Need::Role(role) => {
            let Some((p, src)) = principal else {
                return unauthorized(if cfg.tokens.is_empty() {
                    "no [[api.token]] is configured: the API answers loopback clients only (http://127.0.0.1:PORT/)"
                } else if has_token {
                    "unknown token"
                } else {
                    "a token is needed: Authorization: Bearer TOKEN (or log in on the page)"
                });
            };
            if p.role < role {
                return ApiError::new(
                    StatusCode::FORBIDDEN,
                    format!("token {:?} has role {}; this needs {}", p.name, role_name(p.role), role_name(role)),
                )
                .into_response();
            }
            let safe = matches!(*req.method(), Method::GET | Method::HEAD);
            if src != Source::Header && !safe && !req.headers().contains_key("x-requested-with") {
                return ApiError::new(
                    StatusCode::FORBIDDEN,
                    "a change made without an Authorization header needs X-Requested-With",
                )
                .into_response();
            }
            req.extensions_mut().insert(p);
        }
    }
    next.run(req).await
}

pub fn role_name(r: Role) -> &'static str {
    match r {
        Role::Supervisor => "supervisor",
        Role::Auditor => "auditor",
        Role::Admin => "admin",
    }
}

/// `GET /api/whoami` (open): the principal, or `{"name": null, "role": null}` when the
/// request has none — the page asks this first and shows its login form on null, so a
/// first visit makes no failed (401) request that the browser would log as an error.
/// `login`: whether tokens are configured, i.e. whether the page's login (and so its "Log
/// out") means anything; false in local mode.
pub async fn whoami(State(state): State<AppState>, req: Request) -> Json<serde_json::Value> {
    let cfg = state.config();
    let login = !cfg.tokens.is_empty();
    match principal_of(&cfg, &req).0 {
        Some((p, _)) => Json(serde_json::json!({ "name": p.name, "role": p.role, "login": login })),
        None => Json(serde_json::json!({ "name": null, "role": null, "login": login })),
    }
}

#[derive(Deserialize)]
pub struct Login {
    token: String,
}

/// `POST /api/login {"token": "..."}`: sets the page's cookie when the token is valid.
pub async fn login(State(state): State<AppState>, req: Request) -> Response {
    use axum::extract::FromRequest;
    // Guessing tokens is slowed to `LOGIN_FAILURES` a minute per address (429 beyond).
    let ip = req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
    let now = std::time::Instant::now();
    if ip.is_some_and(|ip| !state.logins().allowed(ip, now)) {
        return ApiError::new(StatusCode::TOO_MANY_REQUESTS, "too many failed logins from this address; wait a minute")
            .into_response();
    }
    let body = match Json::<Login>::from_request(req, &state).await {
        Ok(Json(b)) => b,
        Err(e) => return e.into_response(),
    };
    let cfg = state.config();
    let Some(t) = find_token(&cfg.tokens, body.token.trim()) else {
        if let Some(ip) = ip {
            state.logins().failed(ip, now);
        }
        return unauthorized("unknown token");
    };
    // Only characters a cookie value may hold are accepted as tokens through the page.
    if !t.token.bytes().all(|b| b.is_ascii_graphic() && !matches!(b, b';' | b',' | b'"' | b'\\')) {
        return ApiError::bad_request("this token has characters a cookie cannot carry; use the Authorization header")
            .into_response();
    }
    let cookie = format!("{COOKIE}={}; Path=/; HttpOnly; SameSite=Strict", t.token);
    let Ok(value) = HeaderValue::from_str(&cookie) else {
        return ApiError::internal("cannot build the cookie").into_response();
    };
    let mut res = Json(Principal { name: t.name.clone(), role: t.role }).into_response();
    res.headers_mut().insert(header::SET_COOKIE, value);
    res
}

/// `POST /api/logout`: clears the cookie.
pub async fn logout() -> Response {
    let mut res = StatusCode::NO_CONTENT.into_response();
    res.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("callwarden_token=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
    );
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tok(name: &str, token: &str, role: Role) -> Token {
        Token { name: name.into(), token: token.into(), role }
    }

    #[test]
    fn finds_exact_token_only() {
        let ts = vec![tok("a", "secret-a", Role::Supervisor), tok("b", "secret-b", Role::Admin)];
        assert_eq!(find_token(&ts, "secret-b").map(|t| t.name.as_str()), Some("b"));
        assert!(find_token(&ts, "secret-").is_none());
        assert!(find_token(&ts, "secret-bb").is_none());
        assert!(find_token(&ts, "").is_none());
    }

    #[test]
    fn header_then_cookie() {
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, HeaderValue::from_static("x=1; callwarden_token=c1; y=2"));
        assert_eq!(presented(&h), Some(("c1".into(), Source::Cookie)));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer  h1 "));
        assert_eq!(presented(&h), Some(("h1".into(), Source::Header)));
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(presented(&h), None);
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer"));
        assert_eq!(presented(&h), None);
    }

    #[test]
    fn loopback_hosts_only() {
        let host = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::HOST, HeaderValue::from_str(v).unwrap());
            loopback_host(&h)
        };
        for ok in ["127.0.0.1:8080", "127.0.0.1", "localhost:1", "LOCALHOST", "[::1]:8080", "[::1]", "127.1.2.3:9"] {
            assert!(host(ok), "{ok}");
        }
        for bad in
            ["evil.example:8080", "192.168.1.5:8080", "[::2]:80", "localhost.evil.com", "[::1", "", "0.0.0.0:8080"]
        {
            assert!(!host(bad), "{bad}");
        }
        assert!(!loopback_host(&HeaderMap::new()));
        // The port must be a port.
        for bad in
            ["localhost:abc", "127.0.0.1:0", "127.0.0.1:65536", "[::1]:x", "[::1]:", "localhost:", "127.0.0.1:+80"]
        {
            assert!(!host(bad), "{bad}");
        }
    }

    #[test]
    fn roles_nest() {
        assert!(Role::Supervisor < Role::Auditor && Role::Auditor < Role::Admin);
    }

    proptest::proptest! {
        #[test]
        fn header_parsing_never_panics(s in "\\PC{0,60}") {
            let mut h = HeaderMap::new();
            if let Ok(v) = HeaderValue::from_str(&s) {
                h.insert(header::AUTHORIZATION, v.clone());
                h.insert(header::COOKIE, v);
            }
            let _ = presented(&h);
        }
    }
}
