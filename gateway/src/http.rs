//! The HTTP API. Handlers read the shared state and serialize documents from the aggregator;
//! they hold the lock only while computing a document. History comes from the store through a
//! read-only connection on the blocking pool. The full reference is `docs/api.md`.
//!
//! | route | answer |
//! |---|---|
//! | `GET /healthz` | `{"status":"ok","mqtt_connected":bool,"devices":n,"store":"sqlite"\|"postgres","replica":{...}\|null,"ingest":{...}}` |
//! | `GET /metrics` | Prometheus text format |
//! | `GET /api/units` | every unit's document without its device list |
//! | `GET /api/units/{unit}` | the unit document (figures rolled up over descendants); 404 for an unknown unit |
//! | `GET /api/devices?unit=&kind=` | current state of every device (of a unit and its descendants, of a kind) |
//! | `GET /api/devices/{device}` | one device with its figures |
//! | `GET /api/devices/{device}/history?from=&to=&limit=` | figures per day and the stored readings |
//! | `GET /api/consumption?unit=&from=&to=&by=` | pages, replacements and counter events per period |
//! | `GET /api/collectors` | per collector: retained status and per-epoch delivery counts |
//! | `GET /api/reports/monthly?month=&format=&lang=` | the monthly cost-allocation report (JSON, or CSV for Excel) |
//!
//! The dashboard's pages are in [`crate::dashboard`].

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use jiff::civil::Date;
use serde::Deserialize;
use serde_json::json;

use crate::aggregate::{Aggregator, CounterEvents, PageFigures};
use crate::guard::SeatScope;
use crate::store::Store;
use crate::Shared;

/// Most readings one history request returns.
pub const MAX_HISTORY: usize = 10_000;

/// The API router over `shared`.
pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/api/units", get(units))
        .route("/api/units/{unit}", get(unit))
        .route("/api/devices", get(devices))
        .route("/api/devices/{device}", get(device))
        .route("/api/devices/{device}/history", get(history))
        .route("/api/consumption", get(consumption))
        .route("/api/collectors", get(collectors))
        .route("/api/conflicts", get(conflicts))
        .route("/api/reports/monthly", get(monthly_report))
        .merge(crate::dashboard::routes())
        .layer(axum::middleware::from_fn_with_state(
            shared.guard.clone(),
            crate::guard::check,
        ))
        .with_state(shared)
}

#[derive(Debug, Deserialize)]
struct ReportQuery {
    month: Option<String>,
    format: Option<String>,
    lang: Option<String>,
}

/// The month a report request asks for: `month`, else the month before `as_of`'s (the
/// usual billing question).
pub(crate) fn report_month(agg: &Aggregator, month: Option<&str>) -> Result<Date, String> {
    match month {
        Some(m) => crate::report::parse_month(m).map_err(|e| format!("month: {e}")),
        None => {
            let this = agg.as_of_date().first_of_month();
            Ok(this
                .checked_sub(jiff::Span::new().months(1))
                .unwrap_or(this))
        }
    }
}

async fn monthly_report(
    State(shared): State<Arc<Shared>>,
    Query(q): Query<ReportQuery>,
) -> Response {
    let csv_lang = match q.lang.as_deref() {
        None | Some("de") => crate::report::CsvLang::De,
        Some("en") => crate::report::CsvLang::En,
        Some(other) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!(
                    "lang: {:?} is not de or en",
                    other.chars().take(16).collect::<String>()
                ),
            )
        }
    };
    let csv = match q.format.as_deref() {
        None | Some("json") => false,
        Some("csv") => true,
        Some(_) => return error(StatusCode::BAD_REQUEST, "format: json or csv".into()),
    };
    let report = {
        let Ok(agg) = shared.read() else {
            return internal();
        };
        let month = match report_month(&agg, q.month.as_deref()) {
            Ok(m) => m,
            Err(e) => return error(StatusCode::BAD_REQUEST, e),
        };
        match crate::report::monthly(&agg, &shared.prices, month) {
            Ok(r) => r,
            Err(e) => return error(StatusCode::BAD_REQUEST, format!("month: {e}")),
        }
    };
    if !csv {
        return Json(report).into_response();
    }
    let name = format!("devtel-kostenstellen-{}.csv", report.month);
    csv_attachment(&name, crate::report::csv(&report, csv_lang))
}

/// A CSV answer the browser saves as `filename`.
pub(crate) fn csv_attachment(filename: &str, body: String) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{filename}\""),
            ),
        ],
        body,
    )
        .into_response()
}

fn error(status: StatusCode, message: String) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

fn internal() -> Response {
    error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "state unavailable".into(),
    )
}

async fn healthz(State(shared): State<Arc<Shared>>) -> Json<serde_json::Value> {
    let devices = shared.read().map(|a| a.device_count()).unwrap_or(0);
    Json(json!({
        "status": "ok",
        "mqtt_connected": shared.mqtt_connected.load(Ordering::Relaxed),
        "devices": devices,
        "store": if shared.replica.is_some() { "postgres" } else { "sqlite" },
        "replica": shared.replica.as_ref().map(crate::backend::Replica::status),
        "ingest": shared.stats.snapshot(),
    }))
}

async fn metrics(State(shared): State<Arc<Shared>>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        crate::metrics::render(&shared),
    )
        .into_response()
}

async fn units(State(shared): State<Arc<Shared>>) -> Response {
    // From a copy: ingest goes on meanwhile.
    let Ok(agg) = shared.read() else {
        return internal();
    };
    let docs: Vec<_> = agg.unit_ids().iter().filter_map(|u| agg.unit(u)).collect();
    let summaries: Vec<serde_json::Value> = docs
        .into_iter()
        .filter_map(|mut d| {
            d.devices.clear();
            let mut v = serde_json::to_value(d).ok()?;
            if let Some(o) = v.as_object_mut() {
                o.remove("devices");
            }
            Some(v)
        })
        .collect();
    Json(summaries).into_response()
}

async fn unit(
    State(shared): State<Arc<Shared>>,
    scope: Option<Extension<SeatScope>>,
    Path(unit): Path<String>,
) -> Response {
    let doc = match shared.read() {
        Ok(agg) => agg.unit(&unit),
        Err(_) => return internal(),
    };
    match doc {
        Some(doc) if scope.is_some() => Json(doc).into_response(),
        Some(doc) => Json(doc.without_seats()).into_response(),
        None => error(StatusCode::NOT_FOUND, format!("unknown unit {unit:?}")),
    }
}

#[derive(Debug, Deserialize)]
struct DevicesQuery {
    unit: Option<String>,
    kind: Option<String>,
}

async fn devices(
    State(shared): State<Arc<Shared>>,
    scope: Option<Extension<SeatScope>>,
    Query(q): Query<DevicesQuery>,
) -> Response {
    // From a copy: ingest goes on meanwhile (the list takes 12 ms for 1,000 copiers).
    let Ok(agg) = shared.read() else {
        return internal();
    };
    let ids = match &q.unit {
        Some(u) if !agg.has_unit(u) => {
            return error(StatusCode::NOT_FOUND, format!("unknown unit {u:?}"))
        }
        Some(u) => agg.device_ids_in(u, true),
        None => agg.device_ids(),
    };
    let docs: Vec<_> = ids
        .iter()
        .filter_map(|id| agg.device(id))
        .filter(|d| q.kind.as_deref().is_none_or(|k| d.device.kind == k))
        .map(|d| {
            if scope.is_some() {
                d
            } else {
                d.without_seats()
            }
        })
        .collect();
    Json(docs).into_response()
}

async fn device(
    State(shared): State<Arc<Shared>>,
    scope: Option<Extension<SeatScope>>,
    Path(device): Path<String>,
) -> Response {
    let doc = match shared.read() {
        Ok(agg) => agg.device(&device),
        Err(_) => return internal(),
    };
    match doc {
        Some(doc) if scope.is_some() => Json(doc).into_response(),
        Some(doc) => Json(doc.without_seats()).into_response(),
        None => error(StatusCode::NOT_FOUND, format!("unknown device {device:?}")),
    }
}

/// Parses an optional `YYYY-MM-DD` query parameter.
fn date_param(name: &str, value: Option<&str>, default: Date) -> Result<Date, String> {
    match value {
        None | Some("") => Ok(default),
        Some(v) => v
            .parse::<Date>()
            .map_err(|_| format!("{name}: {v:?} is not a date such as 2026-11-01")),
    }
}

/// Longest range of local days a query may span (a year and a month: this year against the
/// last, a billing year with its closing month).
pub const MAX_RANGE_DAYS: i64 = 400;

/// Longest range of a query by day (a quarter).
pub const MAX_DAILY_RANGE_DAYS: i64 = 92;

fn range(
    agg: &Aggregator,
    from: Option<&str>,
    to: Option<&str>,
    default_from: Date,
    max_days: i64,
) -> Result<(Date, Date), String> {
    let to = date_param("to", to, agg.as_of_date())?;
    let from = date_param("from", from, default_from)?;
    if from > to {
        return Err(format!("from ({from}) is after to ({to})"));
    }
    let days = i64::from(
        from.until((jiff::Unit::Day, to))
            .map_or(i32::MAX, |span| span.get_days()),
    ) + 1;
    if days > max_days {
        return Err(format!(
            "range: {from} to {to} is {days} days, at most {max_days} are answered at once"
        ));
    }
    Ok((from, to))
}

/// Most conflicting repeats one `/api/conflicts` answer lists.
pub const MAX_CONFLICTS_LISTED: usize = 1000;

#[derive(Debug, Deserialize)]
struct ConflictsQuery {
    limit: Option<usize>,
}

/// The conflicting repeats kept aside, newest first: who sent them, when, and what they hold
/// (decoded when they decode, and the bytes in hex).
async fn conflicts(State(shared): State<Arc<Shared>>, Query(q): Query<ConflictsQuery>) -> Response {
    let limit = q.limit.unwrap_or(100).min(MAX_CONFLICTS_LISTED);
    let result = if let Some(replica) = &shared.replica {
        Ok(replica
            .read(async |store| store.conflicts(limit).await)
            .await)
    } else if let Some(path) = shared.store_path.clone() {
        tokio::task::spawn_blocking(move || Store::open_read_only(&path)?.conflicts(limit)).await
    } else {
        return Json(json!({ "conflicts": [] })).into_response();
    };
    let rows = match result {
        Ok(Ok(rows)) => rows,
        Ok(Err(e)) => return error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
        Err(_) => return internal(),
    };
    let list: Vec<serde_json::Value> = rows
        .iter()
        .map(|c| {
            let decoded = devtel_protocol::decode(&c.payload).ok();
            json!({
                "site": c.site,
                "collector": c.collector,
                "epoch": c.epoch,
                "seq": c.seq,
                "received_ms": c.received_ms,
                "timestamp_ms": decoded.as_ref().map(|e| e.timestamp_ms),
                "devices": decoded.as_ref().map(|e| e.readings.iter().map(|r| r.device().to_string()).collect::<Vec<_>>()),
                "payload_hex": c.payload.iter().map(|b| format!("{b:02x}")).collect::<String>(),
            })
        })
        .collect();
    Json(json!({ "conflicts": list })).into_response()
}

#[derive(Debug, Deserialize)]
struct HistoryQuery {
    from: Option<String>,
    to: Option<String>,
    limit: Option<usize>,
}

async fn history(
    State(shared): State<Arc<Shared>>,
    scope: Option<Extension<SeatScope>>,
    Path(device): Path<String>,
    Query(q): Query<HistoryQuery>,
) -> Response {
    let (days, from_ms, to_ms, per_seat) = {
        let Ok(agg) = shared.read() else {
            return internal();
        };
        if agg.device(&device).is_none() {
            return error(StatusCode::NOT_FOUND, format!("unknown device {device:?}"));
        }
        let (from, to) = match range(
            &agg,
            q.from.as_deref(),
            q.to.as_deref(),
            agg.as_of_date(),
            MAX_RANGE_DAYS,
        ) {
            Ok(r) => r,
            Err(message) => return error(StatusCode::BAD_REQUEST, message),
        };
        let cal = &agg.settings().ledger.calendar;
        let from_ms = cal.day_bounds(from).map_or(0, |b| b.0);
        let to_ms = cal.day_bounds(to).map_or(u64::MAX, |b| b.1);
        let days: Vec<_> = agg
            .device_days(&device, from, to)
            .into_iter()
            .map(|(d, f)| json!({ "date": d.to_string(), "figures": f }))
            .collect();
        (days, from_ms, to_ms, agg.settings().per_seat)
    };
    let limit = q.limit.unwrap_or(1000).min(MAX_HISTORY);
    let result = if let Some(replica) = &shared.replica {
        Ok(replica
            .read(async |store| store.history(&device, from_ms, to_ms, limit).await)
            .await)
    } else if let Some(path) = shared.store_path.clone() {
        let dev = device.clone();
        tokio::task::spawn_blocking(move || {
            Store::open_read_only(&path)?.history(&dev, from_ms, to_ms, limit)
        })
        .await
    } else {
        Ok(Ok(Vec::new()))
    };
    let readings = match result {
        Ok(Ok(envelopes)) => envelopes,
        Ok(Err(e)) => return error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
        Err(_) => return internal(),
    };
    // Stored dock readings hold single seats (and, from collectors before privacy, client
    // addresses): shown only as the documents show them.
    let mut readings = readings;
    let seats_shown = per_seat && scope.is_some();
    for r in readings.iter_mut().flat_map(|e| e.readings.iter_mut()) {
        if let devtel_protocol::Reading::Dock(d) = r {
            if !seats_shown {
                d.seats.clear();
            }
            // A pseudonym from today's collectors; an address from older ones is not shown.
            for seat in d.seats.iter_mut() {
                seat.client_mac = seat
                    .client_mac
                    .filter(devtel_protocol::dock::is_locally_administered);
            }
        }
    }
    // Serialized straight from the readings (a JSON value tree per reading cost most of the
    // answer's time: 200 µs per copier reading).
    let readings: Vec<HistoryReading<'_>> = readings
        .iter()
        .flat_map(|e| {
            e.readings
                .iter()
                .filter(|r| r.device() == device)
                .map(move |r| HistoryReading {
                    timestamp_ms: e.timestamp_ms,
                    collector: e.collector.as_str(),
                    epoch: e.epoch,
                    seq: e.seq,
                    reading: r,
                })
        })
        .collect();
    // What the raw retention left: readings polled before this are no longer held.
    let raw = shared.raw_range.lock().map(|r| *r).unwrap_or_default();
    Json(History {
        device: &device,
        days,
        readings,
        limit,
        readings_held_from_ms: raw.oldest_poll_ms,
        readings_pruned_before_received_ms: (raw.pruned_envelopes > 0)
            .then_some(raw.pruned_before_ms),
    })
    .into_response()
}

/// The answer of the history route.
#[derive(serde::Serialize)]
struct History<'a> {
    device: &'a str,
    days: Vec<serde_json::Value>,
    readings: Vec<HistoryReading<'a>>,
    limit: usize,
    readings_held_from_ms: Option<u64>,
    readings_pruned_before_received_ms: Option<u64>,
}

/// One stored reading in the history.
#[derive(serde::Serialize)]
struct HistoryReading<'a> {
    timestamp_ms: u64,
    collector: &'a str,
    epoch: u64,
    seq: u64,
    reading: &'a devtel_protocol::Reading,
}

#[derive(Debug, Deserialize)]
struct ConsumptionQuery {
    unit: Option<String>,
    from: Option<String>,
    to: Option<String>,
    by: Option<String>,
}

async fn consumption(
    State(shared): State<Arc<Shared>>,
    Query(q): Query<ConsumptionQuery>,
) -> Response {
    let Ok(agg) = shared.read() else {
        return internal();
    };
    let Some(unit) = q.unit.as_deref() else {
        return error(StatusCode::BAD_REQUEST, "unit: required".into());
    };
    if !agg.has_unit(unit) {
        return error(StatusCode::NOT_FOUND, format!("unknown unit {unit:?}"));
    }
    let by_month = match q.by.as_deref() {
        None | Some("month") => true,
        Some("day") => false,
        Some(other) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("by: {other:?} is not \"day\" or \"month\""),
            )
        }
    };
    let (from, to) = match range(
        &agg,
        q.from.as_deref(),
        q.to.as_deref(),
        agg.as_of_date().first_of_month(),
        if by_month {
            MAX_RANGE_DAYS
        } else {
            MAX_DAILY_RANGE_DAYS
        },
    ) {
        Ok(r) => r,
        Err(message) => return error(StatusCode::BAD_REQUEST, message),
    };
    let ids = agg.device_ids_in(unit, true);
    let def = agg.settings().units.get(unit).cloned();
    let tz = agg.settings().ledger.calendar.tz_name().to_string();
    // The periods, in order.
    let mut bounds: Vec<(Date, Date)> = Vec::new();
    let mut start = from;
    while start <= to {
        let end = if by_month {
            start.last_of_month().min(to)
        } else {
            start
        };
        bounds.push((start, end));
        match end.tomorrow() {
            Ok(next) => start = next,
            Err(_) => break,
        }
    }
    // From a copy (the answer takes 13 ms for 1,000 copiers by day over 92 days): every
    // figure comes from the same per-device days, so the periods, the devices and the total
    // add up exactly.
    let mut sums = vec![crate::ledger::DayFigures::default(); bounds.len()];
    let mut total = crate::ledger::DayFigures::default();
    let mut per_device = Vec::with_capacity(ids.len());
    for id in &ids {
        let days = agg.device_days(id, from, to);
        let mut own = crate::ledger::DayFigures::default();
        let mut at = 0;
        for (day, f) in &days {
            while bounds.get(at).is_some_and(|(_, end)| end < day) {
                at += 1;
            }
            if let Some(sum) = sums.get_mut(at) {
                *sum += f;
            }
            own += f;
        }
        total += &own;
        per_device.push(json!({ "device": id, "pages": PageFigures::of(&own), "cartridges_replaced": own.cartridges_replaced }));
    }
    let periods: Vec<_> = bounds
        .iter()
        .zip(&sums)
        .map(|((start, end), f)| {
            json!({
                "period": if by_month { start.strftime("%Y-%m").to_string() } else { start.to_string() },
                "from": start.to_string(),
                "to": end.to_string(),
                "pages": PageFigures::of(f),
                "cartridges_replaced": f.cartridges_replaced,
                "counter_events": CounterEvents::of(f),
            })
        })
        .collect();
    let replacements = agg.replacements(&ids, from, to);
    Json(json!({
        "unit": unit,
        "cost_centre": def.and_then(|d| d.cost_centre),
        "from": from.to_string(),
        "to": to.to_string(),
        "timezone": tz,
        "pages": PageFigures::of(&total),
        "cartridges_replaced": total.cartridges_replaced,
        "counter_events": CounterEvents::of(&total),
        "periods": periods,
        "devices": per_device,
        "replacements": replacements,
    }))
    .into_response()
}

async fn collectors(State(shared): State<Arc<Shared>>) -> Response {
    let deliveries = match shared.read() {
        Ok(agg) => agg.deliveries(),
        Err(_) => return internal(),
    };
    let statuses = match shared.collectors.lock() {
        Ok(c) => c.clone(),
        Err(_) => return internal(),
    };
    let mut out = serde_json::Map::new();
    for (collector, epochs) in deliveries {
        out.insert(collector, json!({ "epochs": epochs }));
    }
    // Statuses are per site; each names its collector.
    for (site, status) in statuses {
        let collector = status
            .get("collector")
            .and_then(|c| c.as_str())
            .unwrap_or(&site)
            .to_string();
        let entry = out
            .entry(collector)
            .or_insert_with(|| json!({ "epochs": [] }));
        if let Some(obj) = entry.as_object_mut() {
            obj.insert("status".into(), status);
        }
    }
    Json(serde_json::Value::Object(out)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use devtel_protocol::{DeviceKind, Envelope, NoResponse, NoResponseCause, Reading};
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    async fn get_json(app: Router, uri: &str) -> (StatusCode, serde_json::Value) {
        let response = app
            .oneshot(Request::get(uri).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    #[tokio::test]
    async fn with_a_token_everything_but_healthz_needs_it_and_limits_answer_by_name() {
        let token = "s3cret-token-0123456789";
        let shared = Arc::new(Shared {
            guard: crate::guard::Guard::new(crate::guard::Settings {
                token: Some(crate::guard::Token::new(token.into())),
                ..crate::guard::Settings::default()
            }),
            ..Shared::default()
        });
        let app = || router(shared.clone());
        let send = |req: Request<Body>| async { app().oneshot(req).await.unwrap() };
        let get = |uri: &str| Request::get(uri).body(Body::empty()).unwrap();
        assert_eq!(send(get("/healthz")).await.status(), StatusCode::OK);
        for uri in ["/api/units", "/metrics", "/api/conflicts", "/supplies.csv"] {
            let r = send(get(uri)).await;
            assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{uri}");
            assert_eq!(r.headers()[header::WWW_AUTHENTICATE], "Bearer");
        }
        let wrong = Request::get("/api/units")
            .header(header::AUTHORIZATION, "Bearer s3cret-token-012345678X")
            .body(Body::empty())
            .unwrap();
        assert_eq!(send(wrong).await.status(), StatusCode::UNAUTHORIZED);
        let right = Request::get("/api/units")
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .body(Body::empty())
            .unwrap();
        assert_eq!(send(right).await.status(), StatusCode::OK);
        // A browser is sent to the sign-in page, which sets the cookie.
        let r = send(get("/")).await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        assert_eq!(r.headers()[header::LOCATION], "/login");
        assert_eq!(send(get("/login")).await.status(), StatusCode::OK);
        let form = |t: &str| {
            Request::post("/login")
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(Body::from(format!("token={t}")))
                .unwrap()
        };
        assert_eq!(send(form("nope")).await.status(), StatusCode::UNAUTHORIZED);
        let r = send(form(token)).await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        let cookie = r.headers()[header::SET_COOKIE]
            .to_str()
            .unwrap()
            .to_string();
        assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
        let pair = cookie.split(';').next().unwrap().to_string();
        let with_cookie = Request::get("/")
            .header(header::COOKIE, pair)
            .body(Body::empty())
            .unwrap();
        assert_eq!(send(with_cookie).await.status(), StatusCode::OK);
        // An absurdly long request is refused by name.
        let long = format!("/api/units?x={}", "a".repeat(crate::guard::MAX_URI_LEN));
        let r = send(get(&long)).await;
        assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
        let body = r.into_body().collect().await.unwrap().to_bytes();
        assert!(String::from_utf8_lossy(&body).contains("request too large"));
    }

    #[tokio::test]
    async fn single_seats_only_with_per_seat_privacy_and_the_seats_token() {
        let (token, seat_token) = ("plain-token-0123456789", "seats-token-0123456789");
        let settings = crate::aggregate::CoreSettings {
            per_seat: true,
            ..crate::aggregate::CoreSettings::default()
        };
        let mut agg = Aggregator::with_settings(settings);
        let mut e = Envelope::new(
            "site".try_into().unwrap(),
            "c".try_into().unwrap(),
            1,
            0,
            42,
        );
        e.readings.push(crate::testdata::dock("u", 3, 6)).unwrap();
        agg.ingest(&e);
        let mut shared = Shared::new(agg);
        shared.guard = crate::guard::Guard::new(crate::guard::Settings {
            token: Some(crate::guard::Token::new(token.into())),
            seat_token: Some(crate::guard::Token::new(seat_token.into())),
            ..crate::guard::Settings::default()
        });
        let shared = Arc::new(shared);
        let ask = |uri: &str, t: &str| {
            let req = Request::get(uri)
                .header(header::AUTHORIZATION, format!("Bearer {t}"))
                .body(Body::empty())
                .unwrap();
            let app = router(shared.clone());
            async move {
                let r = app.oneshot(req).await.unwrap();
                assert_eq!(r.status(), StatusCode::OK);
                let bytes = r.into_body().collect().await.unwrap().to_bytes();
                serde_json::from_slice::<serde_json::Value>(&bytes).unwrap()
            }
        };
        let plain = ask("/api/devices/sw", token).await;
        assert_eq!(plain["seats"].as_array().map(Vec::len), Some(0), "{plain}");
        assert_eq!(
            plain["seat_counts"]["occupied"], 3,
            "the counts are for all"
        );
        let scoped = ask("/api/devices/sw", seat_token).await;
        assert_eq!(
            scoped["seats"].as_array().map(Vec::len),
            Some(6),
            "{scoped}"
        );
        let unit = ask("/api/units/u", token).await;
        assert_eq!(
            unit["devices"][0]["seats"].as_array().map(Vec::len),
            Some(0)
        );
        let unit = ask("/api/units/u", seat_token).await;
        assert_eq!(
            unit["devices"][0]["seats"].as_array().map(Vec::len),
            Some(6)
        );
        let all = ask("/api/devices", token).await;
        assert_eq!(all[0]["seats"].as_array().map(Vec::len), Some(0));
    }

    // The lock is held across an await on purpose: it stands for a slow request.
    #[allow(clippy::await_holding_lock)]
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn beyond_the_concurrency_limit_the_answer_is_a_named_503() {
        let shared = Arc::new(Shared {
            guard: crate::guard::Guard::new(crate::guard::Settings {
                max_in_flight: 1,
                timeout: std::time::Duration::from_millis(300),
                ..crate::guard::Settings::default()
            }),
            ..Shared::default()
        });
        // The aggregator's lock held elsewhere: the first request waits for it ...
        let held = shared.write().unwrap();
        let first = tokio::spawn({
            let app = router(shared.clone());
            async move {
                app.oneshot(Request::get("/api/units").body(Body::empty()).unwrap())
                    .await
                    .unwrap()
            }
        });
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        // ... so a second one finds no room.
        let (status, body) = get_json(router(shared.clone()), "/healthz").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        assert!(
            body["error"].as_str().unwrap().starts_with("busy: "),
            "{body}"
        );
        drop(held);
        assert_eq!(first.await.unwrap().status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn units_list_unit_document_and_404() {
        let shared = Arc::new(Shared::default());
        let mut e = Envelope::new(
            "site".try_into().unwrap(),
            "c".try_into().unwrap(),
            1,
            0,
            42,
        );
        e.readings
            .push(Reading::NoResponse(NoResponse {
                device: "d1".try_into().unwrap(),
                unit: "u1".try_into().unwrap(),
                kind: DeviceKind::Copier,
                cause: NoResponseCause::Network,
            }))
            .unwrap();
        shared.write().unwrap().ingest(&e);
        let (status, list) = get_json(router(shared.clone()), "/api/units").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(list[0]["unit"], "u1");
        assert_eq!(list[0]["status"]["unreachable"], 1);
        assert!(list[0].get("devices").is_none());
        let (status, doc) = get_json(router(shared.clone()), "/api/units/u1").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(doc["devices"][0]["device"], "d1");
        assert_eq!(doc["devices"][0]["no_response_cause"], "network");
        let (status, err) = get_json(router(shared.clone()), "/api/units/nope").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert!(err["error"].as_str().unwrap().contains("nope"));
        let (_, health) = get_json(router(shared), "/healthz").await;
        assert_eq!(health["devices"], 1);
    }

    fn copier(seq: u64, ts: u64, pages: u32) -> Envelope {
        let mut r = devtel_protocol::PrinterReading {
            device: "c1".try_into().unwrap(),
            unit: "u1".try_into().unwrap(),
            ..Default::default()
        };
        r.markers
            .push(devtel_protocol::MarkerCounter {
                index: 1,
                unit: None,
                life_count: pages,
            })
            .unwrap();
        let mut e = Envelope::new(
            "site".try_into().unwrap(),
            "c".try_into().unwrap(),
            1,
            seq,
            ts,
        );
        e.readings.push(Reading::Printer(r)).unwrap();
        e
    }

    #[tokio::test]
    async fn consumption_devices_history_and_metrics() {
        let shared = Arc::new(Shared::default());
        {
            let mut agg = shared.write().unwrap();
            // 2026-11-22 and 2026-11-23, 12:00 UTC.
            agg.ingest(&copier(0, 1_795_320_000_000, 1000));
            agg.ingest(&copier(1, 1_795_406_400_000, 1400));
            agg.ingest(&copier(2, 1_795_410_000_000, 1500));
        }
        shared
            .stats
            .reject(crate::ingest::Rejection::Version, "t", 3);
        let app = || router(shared.clone());
        let (status, c) = get_json(
            app(),
            "/api/consumption?unit=u1&from=2026-11-22&to=2026-11-23&by=day",
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{c}");
        assert_eq!(c["pages"]["total"], 500);
        assert_eq!(c["periods"][0]["period"], "2026-11-22");
        assert_eq!(
            c["periods"][0]["pages"]["total"], 0,
            "the first reading is a baseline"
        );
        assert_eq!(c["periods"][1]["pages"]["total"], 500);
        assert_eq!(c["devices"][0]["device"], "c1");
        let (_, m) = get_json(
            app(),
            "/api/consumption?unit=u1&from=2026-11-01&to=2026-11-30",
        )
        .await;
        assert_eq!(m["periods"][0]["period"], "2026-11");
        assert_eq!(m["periods"][0]["pages"]["total"], 500);
        for (uri, want) in [
            (
                "/api/consumption?unit=u1&from=22.11.2026",
                StatusCode::BAD_REQUEST,
            ),
            (
                "/api/consumption?unit=u1&from=2026-11-23&to=2026-11-22",
                StatusCode::BAD_REQUEST,
            ),
            ("/api/consumption?unit=u1&by=week", StatusCode::BAD_REQUEST),
            ("/api/consumption", StatusCode::BAD_REQUEST),
            ("/api/consumption?unit=nope", StatusCode::NOT_FOUND),
            ("/api/devices?unit=nope", StatusCode::NOT_FOUND),
            ("/api/devices/nope", StatusCode::NOT_FOUND),
            ("/api/devices/nope/history", StatusCode::NOT_FOUND),
            // Ranges are bounded: 400 days, 92 by day.
            (
                "/api/consumption?unit=u1&from=0001-01-01&to=9999-12-31&by=day",
                StatusCode::BAD_REQUEST,
            ),
            (
                "/api/consumption?unit=u1&from=2025-10-01&to=2026-11-30",
                StatusCode::BAD_REQUEST,
            ),
            (
                "/api/consumption?unit=u1&from=2026-08-01&to=2026-11-30&by=day",
                StatusCode::BAD_REQUEST,
            ),
            (
                "/api/devices/c1/history?from=0001-01-01&to=9999-12-31",
                StatusCode::BAD_REQUEST,
            ),
        ] {
            let (status, body) = get_json(app(), uri).await;
            assert_eq!(status, want, "{uri}: {body}");
            assert!(body["error"].is_string(), "{uri}: {body}");
        }
        // Up to the bounds they are answered.
        for uri in [
            "/api/consumption?unit=u1&from=2025-11-01&to=2026-12-04",
            "/api/consumption?unit=u1&from=2026-09-01&to=2026-11-30&by=day",
        ] {
            let (status, body) = get_json(app(), uri).await;
            assert_eq!(status, StatusCode::OK, "{uri}: {body}");
        }
        let (_, wide) = get_json(
            app(),
            "/api/consumption?unit=u1&from=0001-01-01&to=9999-12-31&by=day",
        )
        .await;
        assert!(
            wide["error"].as_str().unwrap().starts_with("range: "),
            "{wide}"
        );
        let (_, devices) = get_json(app(), "/api/devices?unit=u1&kind=copier").await;
        assert_eq!(devices.as_array().unwrap().len(), 1);
        assert_eq!(devices[0]["pages_today"]["total"], 500);
        let (_, none) = get_json(app(), "/api/devices?kind=dock").await;
        assert_eq!(none.as_array().unwrap().len(), 0);
        let (_, h) = get_json(
            app(),
            "/api/devices/c1/history?from=2026-11-22&to=2026-11-23",
        )
        .await;
        assert_eq!(h["days"].as_array().unwrap().len(), 2);
        assert_eq!(h["days"][1]["figures"]["polls"], 2);

        let response = app()
            .oneshot(Request::get("/metrics").body(Body::empty()).unwrap())
            .await
            .unwrap();
        let text = String::from_utf8(
            response
                .into_body()
                .collect()
                .await
                .unwrap()
                .to_bytes()
                .to_vec(),
        )
        .unwrap();
        assert!(
            text.contains("devtel_gateway_rejected_total{cause=\"version\"} 1"),
            "{text}"
        );
        assert!(text.contains("devtel_gateway_rejected_total{cause=\"undecodable\"} 0"));
        assert!(text.contains("devtel_gateway_devices 1"));
        assert!(text.contains("# TYPE devtel_gateway_readings_total counter"));
    }
}
