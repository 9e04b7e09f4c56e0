//! Facility management's dashboard, served by the gateway on its HTTP listener: server-rendered
//! HTML (maud: templates checked at compile time and escaped), charts as SVG made here, one
//! small stylesheet and one small script (a refresh of `<main>` without a full reload), all
//! inside the binary — no files to install, no CDN, nothing to build with Node.js.
//!
//! German by default; English by `Accept-Language` or the switch (`?lang=en`, kept in a
//! cookie). Every page shows the "as of" time (the newest poll the gateway has seen).
//!
//! | route | page |
//! |---|---|
//! | `GET /` | overview: the unit tree with status, availability, pages, seats, supplies to order |
//! | `GET /units/{unit}` | a unit: its devices by kind, charts of the month |
//! | `GET /devices/{device}` | a device: identity, state in words, supplies, trays, counters, history |
//! | `GET /supplies?unit=` | supplies to order over all units (printable); `/supplies.csv` |
//! | `GET /collectors` | each site's collector: online, last seen, backlog, missing readings |
//! | `GET /reports/monthly?month=` | the printable cost-allocation report, a page per cost centre |

pub mod i18n;
mod pages;
pub mod svg;

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use maud::{html, Markup, DOCTYPE};
use serde::Deserialize;

use crate::aggregate::Aggregator;
use crate::Shared;
use i18n::Lang;

/// The stylesheet (screen and print).
const STYLE: &str = include_str!("style.css");
/// The refresh script.
const SCRIPT: &str = include_str!("refresh.js");

/// How often a page refreshes its `<main>` by default, seconds (`[dashboard] refresh`).
pub const REFRESH_SECONDS: u32 = 60;

/// The cookie that keeps the language switch.
const LANG_COOKIE: &str = "devtel_lang";

/// The dashboard's routes.
pub fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/", get(overview))
        .route("/units/{unit}", get(unit))
        .route("/devices/{device}", get(device))
        .route("/supplies", get(supplies))
        .route("/supplies.csv", get(supplies_csv))
        .route("/collectors", get(collectors))
        .route("/reports/monthly", get(report))
        .route("/assets/style.css", get(style))
        .route("/assets/refresh.js", get(script))
        .route("/login", get(login_form).post(login))
}

#[derive(Debug, Deserialize)]
struct LoginForm {
    token: String,
}

fn login_page(message: Option<&str>) -> Markup {
    html! {
        (DOCTYPE)
        html lang="de" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { "devtel – Anmeldung / Sign in" }
                link rel="stylesheet" href="/assets/style.css";
            }
            body {
                main {
                    h1 { "devtel" }
                    @if let Some(m) = message {
                        p role="alert" { (m) }
                    }
                    form method="post" action="/login" {
                        label for="token" { "Zugangsschlüssel / Access token" }
                        " "
                        input id="token" name="token" type="password" autocomplete="current-password" required;
                        " "
                        button type="submit" { "Anmelden / Sign in" }
                    }
                }
            }
        }
    }
}

/// The sign-in page: the gateway's token, kept in an HttpOnly cookie for the dashboard.
async fn login_form() -> Response {
    respond_markup(StatusCode::OK, login_page(None))
}

async fn login(
    State(shared): State<Arc<Shared>>,
    axum::Form(form): axum::Form<LoginForm>,
) -> Response {
    if !shared.guard.locked() || !shared.guard.accepts(form.token.trim()) {
        return respond_markup(
            StatusCode::UNAUTHORIZED,
            login_page(Some("Falscher Zugangsschlüssel / Wrong token")),
        );
    }
    let cookie = format!(
        "{}={}; Path=/; HttpOnly; SameSite=Strict",
        crate::guard::TOKEN_COOKIE,
        form.token.trim()
    );
    let mut r = (StatusCode::SEE_OTHER, [(header::LOCATION, "/")], "").into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

fn respond_markup(status: StatusCode, page: Markup) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        page.into_string(),
    )
        .into_response()
}

/// Query parameters the pages take.
#[derive(Debug, Default, Deserialize)]
pub struct PageQuery {
    /// `de` or `en`: switches the language (and keeps it in a cookie).
    pub lang: Option<String>,
    /// The supplies list's unit filter.
    pub unit: Option<String>,
    /// The report's month, `YYYY-MM`.
    pub month: Option<String>,
}

/// What a page is rendered for.
#[derive(Debug, Clone)]
pub struct Ctx {
    /// The language.
    pub lang: Lang,
    /// Whether the switch was used (the answer sets the cookie).
    pub switched: bool,
    /// The request path (for the switch link).
    pub path: String,
    /// Query parameters other than `lang`, already encoded (for the switch link).
    pub query: Vec<(String, String)>,
    /// Seconds between refreshes of `<main>`.
    pub refresh_s: u32,
    /// Whether single dock seats may be shown (the request carries the seats token).
    pub seats: bool,
}

impl Ctx {
    /// The language from `?lang=`, else the cookie, else `Accept-Language`.
    pub fn new(headers: &HeaderMap, path: &str, q: &PageQuery) -> Ctx {
        let from_query = q.lang.as_deref().and_then(Lang::parse);
        let from_cookie = headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .find_map(|c| c.trim().strip_prefix(LANG_COOKIE)?.strip_prefix('='))
            .and_then(Lang::parse);
        let from_header = headers
            .get(header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok())
            .map(Lang::from_accept_language);
        let mut query = Vec::new();
        if let Some(u) = &q.unit {
            query.push(("unit".to_string(), u.clone()));
        }
        if let Some(m) = &q.month {
            query.push(("month".to_string(), m.clone()));
        }
        Ctx {
            lang: from_query
                .or(from_cookie)
                .or(from_header)
                .unwrap_or(Lang::De),
            switched: from_query.is_some(),
            path: path.to_string(),
            query,
            refresh_s: REFRESH_SECONDS,
            seats: false,
        }
    }

    /// With the seats scope when the request carries the seats token.
    pub fn scoped(mut self, shared: &Shared, headers: &HeaderMap) -> Ctx {
        self.seats = shared.guard.seat_scope(headers);
        self
    }

    /// With the configured refresh period (`[dashboard] refresh`).
    pub fn refresh(mut self, shared: &Shared) -> Ctx {
        if shared.dashboard_refresh_s > 0 {
            self.refresh_s = shared.dashboard_refresh_s;
        }
        self
    }

    /// Shorthand for [`Lang::t`].
    pub fn t(&self, de: &'static str, en: &'static str) -> &'static str {
        self.lang.t(de, en)
    }

    /// The link that switches to the other language on this page.
    fn switch_href(&self) -> String {
        let mut q: Vec<String> = self
            .query
            .iter()
            .map(|(k, v)| format!("{k}={}", encode(v)))
            .collect();
        q.push(format!("lang={}", self.lang.other().code()));
        format!("{}?{}", self.path, q.join("&"))
    }
}

/// At most 64 characters of a name from the request, for an error page.
fn short(s: &str) -> String {
    s.chars().take(64).collect()
}

/// Percent-encodes a path segment or query value.
pub fn encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Which navigation entry a page belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    /// Overview and units, devices.
    Overview,
    /// Supplies to order.
    Supplies,
    /// The monthly report.
    Report,
    /// Collectors.
    Collectors,
}

/// A page around `main`: header with navigation, "as of" and the language switch.
pub fn layout(
    ctx: &Ctx,
    title: &str,
    as_of: Option<String>,
    nav: Nav,
    refresh: bool,
    main: Markup,
) -> Markup {
    let item = |n: Nav, href: &str, label: &str| {
        html! {
            li { a href=(href) aria-current=[(n == nav).then_some("page")] { (label) } }
        }
    };
    html! {
        (DOCTYPE)
        html lang=(ctx.lang.code()) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                link rel="icon" href="data:,";
                title { (title) " – devtel" }
                link rel="stylesheet" href="/assets/style.css";
                @if refresh {
                    script src="/assets/refresh.js" data-every=(ctx.refresh_s) defer {}
                }
            }
            body {
                header class="top" {
                    a class="brand" href="/" { "devtel" }
                    nav aria-label=(ctx.t("Hauptnavigation", "Main navigation")) {
                        ul {
                            (item(Nav::Overview, "/", ctx.t("Übersicht", "Overview")))
                            (item(Nav::Supplies, "/supplies", ctx.t("Toner bestellen", "Supplies to order")))
                            (item(Nav::Report, "/reports/monthly", ctx.t("Monatsbericht", "Monthly report")))
                            (item(Nav::Collectors, "/collectors", ctx.t("Standorte", "Collectors")))
                        }
                    }
                    p id="as-of" class="as-of" {
                        (ctx.t("Stand: ", "As of: "))
                        @match &as_of {
                            Some(t) => time { (t) },
                            None => span { (ctx.t("noch keine Messwerte", "no readings yet")) },
                        }
                    }
                    a class="lang" href=(ctx.switch_href()) lang=(ctx.lang.other().code())
                        hreflang=(ctx.lang.other().code()) {
                        (ctx.t("English", "Deutsch"))
                    }
                }
                main id="main" { (main) }
            }
        }
    }
}

/// An HTML answer, setting the language cookie when the switch was used.
pub fn respond(ctx: &Ctx, status: StatusCode, page: Markup) -> Response {
    let mut resp = (
        status,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        page.into_string(),
    )
        .into_response();
    if ctx.switched {
        let cookie = format!(
            "{LANG_COOKIE}={}; Path=/; Max-Age=31536000; SameSite=Lax",
            ctx.lang.code()
        );
        if let Ok(v) = HeaderValue::from_str(&cookie) {
            resp.headers_mut().insert(header::SET_COOKIE, v);
        }
    }
    resp
}

/// A page that says what is wrong (unknown unit or device, bad parameter).
fn problem(ctx: &Ctx, status: StatusCode, message: String) -> Response {
    let page = layout(
        ctx,
        ctx.t("Nicht gefunden", "Not found"),
        None,
        Nav::Overview,
        false,
        html! {
            h1 { (if status == StatusCode::NOT_FOUND { ctx.t("Nicht gefunden", "Not found") } else { ctx.t("Ungültige Anfrage", "Bad request") }) }
            p { (message) }
            p { a href="/" { (ctx.t("Zur Übersicht", "To the overview")) } }
        },
    );
    respond(ctx, status, page)
}

/// 404: `what` (e.g. "Unbekannte Einheit") named `name`.
fn unknown(ctx: &Ctx, what: &'static str, name: &str) -> Response {
    problem(
        ctx,
        StatusCode::NOT_FOUND,
        format!("{what} {:?}", short(name)),
    )
}

/// The `unit` filter of a list: `None` for all units; `Err` names a unit nobody knows.
fn unit_filter<'a>(agg: &Aggregator, q: &'a PageQuery) -> Result<Option<&'a str>, &'a str> {
    match q.unit.as_deref().filter(|u| !u.is_empty()) {
        Some(u) if !agg.has_unit(u) => Err(u),
        unit => Ok(unit),
    }
}

fn unavailable(ctx: &Ctx) -> Response {
    problem(
        ctx,
        StatusCode::SERVICE_UNAVAILABLE,
        ctx.t("Zustand nicht verfügbar", "State unavailable").into(),
    )
}

async fn style() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        STYLE,
    )
        .into_response()
}

async fn script() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        SCRIPT,
    )
        .into_response()
}

async fn overview(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Query(q): Query<PageQuery>,
) -> Response {
    let ctx = Ctx::new(&headers, "/", &q).refresh(&shared);
    let Ok(agg) = shared.read() else {
        return unavailable(&ctx);
    };
    respond(&ctx, StatusCode::OK, pages::overview(&ctx, &agg))
}

async fn unit(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<PageQuery>,
) -> Response {
    let ctx = Ctx::new(&headers, &format!("/units/{}", encode(&id)), &q).refresh(&shared);
    let Ok(agg) = shared.read() else {
        return unavailable(&ctx);
    };
    let Some(devices) = pages::device_docs(&agg, &id) else {
        return unknown(&ctx, ctx.t("Unbekannte Einheit", "Unknown unit"), &id);
    };
    match pages::unit(&ctx, &agg, &id, devices) {
        Some(page) => respond(&ctx, StatusCode::OK, page),
        None => unknown(&ctx, ctx.t("Unbekannte Einheit", "Unknown unit"), &id),
    }
}

async fn device(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<PageQuery>,
) -> Response {
    let ctx = Ctx::new(&headers, &format!("/devices/{}", encode(&id)), &q)
        .refresh(&shared)
        .scoped(&shared, &headers);
    let Ok(agg) = shared.read() else {
        return unavailable(&ctx);
    };
    match pages::device(&ctx, &agg, &id) {
        Some(page) => respond(&ctx, StatusCode::OK, page),
        None => unknown(&ctx, ctx.t("Unbekanntes Gerät", "Unknown device"), &id),
    }
}

/// The unit a supplies list is filtered to, and its rows: (unit, supply to order).
type SupplyRows = (Option<String>, Vec<(String, crate::aggregate::SupplyOrder)>);

/// The `?unit=` filter of the supplies list and its rows; an error page for an unknown unit.
fn supply_rows(agg: &Aggregator, ctx: &Ctx, q: &PageQuery) -> Result<SupplyRows, Box<Response>> {
    match unit_filter(agg, q).map(|u| u.map(str::to_string)) {
        Ok(unit) => {
            let rows = pages::to_order(agg, unit.as_deref());
            Ok((unit, rows))
        }
        Err(u) => {
            let u = u.to_string();
            Err(Box::new(unknown(
                ctx,
                ctx.t("Unbekannte Einheit", "Unknown unit"),
                &u,
            )))
        }
    }
}

async fn supplies(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Query(q): Query<PageQuery>,
) -> Response {
    let ctx = Ctx::new(&headers, "/supplies", &q).refresh(&shared);
    let Ok(agg) = shared.read() else {
        return unavailable(&ctx);
    };
    let (unit, rows) = match supply_rows(&agg, &ctx, &q) {
        Ok(found) => found,
        Err(answer) => return *answer,
    };
    respond(
        &ctx,
        StatusCode::OK,
        pages::supplies(&ctx, &agg, unit.as_deref(), rows),
    )
}

async fn supplies_csv(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Query(q): Query<PageQuery>,
) -> Response {
    let ctx = Ctx::new(&headers, "/supplies.csv", &q).refresh(&shared);
    let Ok(agg) = shared.read() else {
        return unavailable(&ctx);
    };
    let (_, rows) = match supply_rows(&agg, &ctx, &q) {
        Ok(found) => found,
        Err(answer) => return *answer,
    };
    crate::http::csv_attachment(
        "devtel-toner-bestellen.csv",
        pages::supplies_csv(&ctx, &agg, rows),
    )
}

async fn collectors(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Query(q): Query<PageQuery>,
) -> Response {
    let ctx = Ctx::new(&headers, "/collectors", &q).refresh(&shared);
    let statuses = match shared.collectors.lock() {
        Ok(c) => c.clone(),
        Err(_) => return unavailable(&ctx),
    };
    let Ok(agg) = shared.read() else {
        return unavailable(&ctx);
    };
    respond(
        &ctx,
        StatusCode::OK,
        pages::collectors(&ctx, &agg, &statuses),
    )
}

async fn report(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Query(q): Query<PageQuery>,
) -> Response {
    let ctx = Ctx::new(&headers, "/reports/monthly", &q).refresh(&shared);
    let Ok(agg) = shared.read() else {
        return unavailable(&ctx);
    };
    let month = match crate::http::report_month(&agg, q.month.as_deref()) {
        Ok(m) => m,
        Err(e) => {
            drop(agg);
            return problem(&ctx, StatusCode::BAD_REQUEST, e);
        }
    };
    match crate::report::monthly(&agg, &shared.prices, month) {
        Ok(r) => respond(&ctx, StatusCode::OK, pages::report(&ctx, &agg, &r, month)),
        Err(e) => {
            drop(agg);
            problem(&ctx, StatusCode::BAD_REQUEST, e.to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    fn app() -> Router {
        let (agg, prices) = crate::report::tests::fleet();
        let mut shared = Shared::new(agg);
        shared.prices = prices;
        crate::http::router(Arc::new(shared))
    }

    async fn get(uri: &str, headers: &[(&str, &str)]) -> (StatusCode, HeaderMap, String) {
        let mut req = Request::builder().uri(uri);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = app()
            .oneshot(req.body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        (status, headers, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn pages_in_german_by_default_and_english_by_switch_or_header() {
        let (status, headers, body) = get("/", &[]).await;
        assert_eq!(status, StatusCode::OK);
        assert!(headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/html"));
        assert!(body.contains("<html lang=\"de\">"), "{body}");
        assert!(body.contains("Übersicht") && body.contains("Kostenstelle"));
        // The as-of time: the newest poll, 1 Dec 08:00 UTC = 09:00 in Berlin.
        assert!(
            body.contains("Stand: ") && body.contains("01.12.2026, 09:00"),
            "{body}"
        );
        // Every unit is a link, in tree order.
        let at = |s: &str| body.find(s).unwrap_or_else(|| panic!("{s} missing"));
        assert!(at("href=\"/units/ba\"") < at("href=\"/units/ba.fb2\""));
        assert!(at("href=\"/units/ba.fb2\"") < at("href=\"/units/ba.fb2.it\""));
        let (_, headers, body) = get("/?lang=en", &[]).await;
        assert!(body.contains("<html lang=\"en\">") && body.contains("Overview"));
        assert!(headers[header::SET_COOKIE]
            .to_str()
            .unwrap()
            .starts_with("devtel_lang=en"));
        let (_, _, body) = get("/", &[("cookie", "devtel_lang=en")]).await;
        assert!(body.contains("Supplies to order"));
        let (_, _, body) = get("/", &[("accept-language", "en-GB,en;q=0.9")]).await;
        assert!(body.contains("As of: ") && body.contains("1 Dec 2026, 09:00"));
    }

    #[tokio::test]
    async fn unit_device_supplies_collectors_and_report_pages() {
        let (status, _, body) = get("/units/ba.fb2", &[]).await;
        assert_eq!(status, StatusCode::OK);
        assert!(body.contains("Unit ba.fb2") && body.contains("href=\"/devices/a\""));
        assert!(body.contains("<svg class=\"chart\""), "charts");
        let (status, _, body) = get("/devices/a", &[]).await;
        assert_eq!(status, StatusCode::OK);
        assert!(body.contains("MX-3570N") && body.contains("Zähler"));
        // Counters in German format: 2.400 mono at the last poll.
        assert!(body.contains("2.400"), "{body}");
        let (status, _, body) = get("/devices/nope", &[]).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert!(body.contains("Unbekanntes Gerät"));
        // A hostile name is escaped and cut short on the error page.
        let long = format!("%3Cscript%3E{}", "x".repeat(5_000));
        let (status, _, body) = get(&format!("/units/{long}"), &[]).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert!(!body.contains("<script>") && body.contains("&lt;script&gt;"));
        // Only the language switch links to the same path again; the message is cut short.
        assert_eq!(body.matches(&"x".repeat(5_000)).count(), 1);
        let (status, _, _) = get("/supplies?unit=ba", &[]).await;
        assert_eq!(status, StatusCode::OK);
        let (status, _, _) = get("/supplies?unit=nope", &[]).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (status, headers, body) = get("/supplies.csv", &[]).await;
        assert_eq!(status, StatusCode::OK);
        assert!(headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/csv"));
        assert!(body.starts_with("\u{feff}Einheit;"));
        let (status, _, body) = get("/collectors", &[]).await;
        assert_eq!(status, StatusCode::OK);
        assert!(body.contains("data-collector=\"c\""));
        let (status, _, body) = get("/reports/monthly?month=2026-11", &[]).await;
        assert_eq!(status, StatusCode::OK);
        assert!(body.contains("Kostenstelle 2000") && body.contains("Kostenstelle 1000"));
        assert!(
            body.contains("38,57 €") && body.contains("50,91 €"),
            "{body}"
        );
        assert!(
            body.contains("31.10.2026, 23:30"),
            "start read shown with its time"
        );
        let (status, _, body) = get("/reports/monthly?month=2026-13", &[]).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(body.contains("YYYY-MM"));
        let (status, _, body) = get("/api/reports/monthly?month=2026-11&format=csv", &[]).await;
        assert_eq!(status, StatusCode::OK);
        assert!(body.starts_with("\u{feff}Art;Monat;Kostenstelle"));
        let (status, _, body) = get("/api/reports/monthly?month=2026-11", &[]).await;
        assert_eq!(status, StatusCode::OK);
        let json: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(json["cost_cents"], 5_091);
        let (status, _, _) = get("/api/reports/monthly?month=2027-01", &[]).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let (status, headers, _) = get("/assets/style.css", &[]).await;
        assert_eq!(status, StatusCode::OK);
        assert!(headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/css"));
    }

    #[test]
    fn the_switch_link_keeps_the_query() {
        let q = PageQuery {
            unit: Some("ba fb".into()),
            ..PageQuery::default()
        };
        let ctx = Ctx::new(&HeaderMap::new(), "/supplies", &q);
        assert_eq!(ctx.switch_href(), "/supplies?unit=ba%20fb&lang=en");
    }
}
