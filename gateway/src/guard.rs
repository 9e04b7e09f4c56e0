//! What every HTTP request passes before a handler runs (one middleware layer over the
//! router): a size bound, the bearer token, the concurrency limits and the request timeout.
//! Each refusal is a named JSON error.
//!
//! | check | refusal |
//! |---|---|
//! | request line longer than [`MAX_URI_LEN`] | 413 `{"error":"request too large: ..."}` |
//! | no or a wrong token (when one is configured; required off loopback) | 401, or a redirect to `/login` for a dashboard page |
//! | more than `max_in_flight` requests at once | 503 `{"error":"busy: ..."}` |
//! | more than `max_per_client` at once from one address | 429 `{"error":"too many requests: ..."}` |
//! | no answer within `timeout` | 503 `{"error":"timeout: ..."}` |
//!
//! `/healthz` needs no token (load balancers and monitoring ask it); `/login` and the
//! stylesheet neither. The token is compared in constant time and never logged.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

/// Longest request target (path and query) taken.
pub const MAX_URI_LEN: usize = 8 * 1024;

/// Most client addresses counted one by one; beyond, the others share one count.
pub const MAX_CLIENTS_TRACKED: usize = 4096;

/// Default of `[http] timeout`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default of `[http] max_in_flight`.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 64;
/// Default of `[http] max_per_client`.
pub const DEFAULT_MAX_PER_CLIENT: usize = 16;

/// The cookie a browser keeps the token in (set by `POST /login`).
pub const TOKEN_COOKIE: &str = "devtel_token";

/// A secret that never shows in Debug output.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    /// Wraps a token.
    pub fn new(token: String) -> Token {
        Token(token)
    }

    /// Whether `offered` is the token, in time independent of where they differ.
    pub fn matches(&self, offered: &str) -> bool {
        let (a, b) = (self.0.as_bytes(), offered.as_bytes());
        // The length is not secret (it is the configured token's, at least 16).
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(***)")
    }
}

/// The limits and the token.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Required bearer token (`None`: open, only allowed on loopback).
    pub token: Option<Token>,
    /// A second token that also grants the seats scope: single dock seats, with
    /// `privacy = "per-seat"` (`[http] seat_token_file`).
    pub seat_token: Option<Token>,
    /// Longest a request may take.
    pub timeout: Duration,
    /// Most requests at once.
    pub max_in_flight: usize,
    /// Most requests at once from one address.
    pub max_per_client: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            token: None,
            seat_token: None,
            timeout: DEFAULT_TIMEOUT,
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            max_per_client: DEFAULT_MAX_PER_CLIENT,
        }
    }
}

/// The guard's state.
#[derive(Debug)]
pub struct Guard {
    settings: Settings,
    in_flight: tokio::sync::Semaphore,
    clients: std::sync::Mutex<HashMap<Option<IpAddr>, usize>>,
}

impl Default for Guard {
    fn default() -> Self {
        Guard {
            in_flight: tokio::sync::Semaphore::new(DEFAULT_MAX_IN_FLIGHT),
            settings: Settings::default(),
            clients: std::sync::Mutex::new(HashMap::new()),
        }
    }
}

impl Guard {
    /// A guard with `settings`.
    pub fn new(settings: Settings) -> Arc<Guard> {
        Arc::new(Guard {
            in_flight: tokio::sync::Semaphore::new(settings.max_in_flight.max(1)),
            settings,
            clients: std::sync::Mutex::new(HashMap::new()),
        })
    }

    /// Whether a token is required.
    pub fn locked(&self) -> bool {
        self.settings.token.is_some()
    }

    /// Whether the request carries the token or the seats token (header or cookie); true
    /// when no token is set.
    pub fn authorized(&self, headers: &HeaderMap) -> bool {
        let Some(token) = &self.settings.token else {
            return true;
        };
        offered(headers).any(|t| token.matches(t)) || self.seat_scope(headers)
    }

    /// Whether the request carries the seats token.
    pub fn seat_scope(&self, headers: &HeaderMap) -> bool {
        self.settings
            .seat_token
            .as_ref()
            .is_some_and(|seat| offered(headers).any(|t| seat.matches(t)))
    }

    /// Whether `offered` is the token or the seats token (the login form).
    pub fn accepts(&self, offered: &str) -> bool {
        self.settings
            .token
            .as_ref()
            .is_none_or(|t| t.matches(offered))
            || self
                .settings
                .seat_token
                .as_ref()
                .is_some_and(|t| t.matches(offered))
    }

    fn enter(&self, client: Option<IpAddr>) -> bool {
        let Ok(mut clients) = self.clients.lock() else {
            return true;
        };
        let key = if clients.len() < MAX_CLIENTS_TRACKED || clients.contains_key(&client) {
            client
        } else {
            None
        };
        let n = clients.entry(key).or_default();
        if *n >= self.settings.max_per_client {
            if *n == 0 {
                clients.remove(&key);
            }
            return false;
        }
        *n += 1;
        true
    }

    fn leave(&self, client: Option<IpAddr>) {
        let Ok(mut clients) = self.clients.lock() else {
            return;
        };
        let key = if clients.contains_key(&client) {
            client
        } else {
            None
        };
        if let Some(n) = clients.get_mut(&key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                clients.remove(&key);
            }
        }
    }
}

/// The tokens a request offers: its bearer token and its cookie.
fn offered(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    bearer.into_iter().chain(cookie(headers, TOKEN_COOKIE))
}

/// Marks a request that may see single dock seats (it carries the seats token).
#[derive(Debug, Clone, Copy)]
pub struct SeatScope;

/// A named JSON error.
pub fn refusal(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

/// The value of cookie `name`, if sent.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Paths open without the token.
fn open_path(path: &str) -> bool {
    matches!(path, "/healthz" | "/login" | "/assets/style.css")
}

/// Paths answered with JSON or text for machines (a refusal is JSON, not a redirect).
fn machine_path(path: &str) -> bool {
    path.starts_with("/api/") || path == "/metrics" || path.ends_with(".csv")
}

/// Counts a request in and out of the per-client limit.
struct Entered<'a>(&'a Guard, Option<IpAddr>);

impl Drop for Entered<'_> {
    fn drop(&mut self) {
        self.0.leave(self.1);
    }
}

/// The middleware.
pub async fn check(State(guard): State<Arc<Guard>>, request: Request, next: Next) -> Response {
    let target = request
        .uri()
        .path_and_query()
        .map_or(0, |p| p.as_str().len());
    if target > MAX_URI_LEN {
        return refusal(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request too large: the path and query may be at most {MAX_URI_LEN} bytes"),
        );
    }
    let path = request.uri().path().to_string();
    if !open_path(&path) && !guard.authorized(request.headers()) {
        if machine_path(&path) {
            let mut r = refusal(
                StatusCode::UNAUTHORIZED,
                "unauthorized: send the gateway's token as \"Authorization: Bearer <token>\"",
            );
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
            return r;
        }
        return (
            StatusCode::SEE_OTHER,
            [(header::LOCATION, "/login")],
            "login required",
        )
            .into_response();
    }
    let mut request = request;
    if guard.seat_scope(request.headers()) {
        request.extensions_mut().insert(SeatScope);
    }
    let Ok(_permit) = guard.in_flight.try_acquire() else {
        return refusal(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "busy: {} requests are being answered; try again shortly",
                guard.settings.max_in_flight
            ),
        );
    };
    let client = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    if !guard.enter(client) {
        return refusal(
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "too many requests: at most {} at once from one address",
                guard.settings.max_per_client
            ),
        );
    }
    let _entered = Entered(&guard, client);
    match tokio::time::timeout(guard.settings.timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => refusal(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "timeout: no answer within {} ms",
                guard.settings.timeout.as_millis()
            ),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_matches_exactly_and_never_prints() {
        let t = Token::new("0123456789abcdef".into());
        assert!(t.matches("0123456789abcdef"));
        assert!(!t.matches("0123456789abcdeF"));
        assert!(!t.matches("0123456789abcde"));
        assert!(!t.matches(""));
        assert_eq!(format!("{t:?}"), "Token(***)");
        let s = Settings {
            token: Some(t),
            ..Settings::default()
        };
        assert!(!format!("{s:?}").contains("0123"));
    }

    #[test]
    fn per_client_counts_are_bounded_and_released() {
        let g = Guard::new(Settings {
            max_per_client: 2,
            ..Settings::default()
        });
        let ip = Some(IpAddr::from([10, 0, 0, 1]));
        assert!(g.enter(ip) && g.enter(ip));
        assert!(!g.enter(ip), "a third at once is refused");
        assert!(g.enter(Some(IpAddr::from([10, 0, 0, 2]))));
        g.leave(ip);
        assert!(g.enter(ip));
        for i in 0..(MAX_CLIENTS_TRACKED as u32 + 10) {
            let _ = g.enter(Some(IpAddr::from(i.to_be_bytes())));
        }
        assert!(g.clients.lock().unwrap().len() <= MAX_CLIENTS_TRACKED + 1);
    }

    #[test]
    fn cookies_are_read_by_name() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            "devtel_lang=en; devtel_token=abc".parse().unwrap(),
        );
        assert_eq!(cookie(&h, TOKEN_COOKIE), Some("abc"));
        assert_eq!(cookie(&h, "devtel_lang"), Some("en"));
        assert_eq!(cookie(&h, "x"), None);
    }
}
