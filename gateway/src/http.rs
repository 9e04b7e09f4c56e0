//! The HTTP API. Handlers read the shared state and serialize documents from the aggregator;
//! they hold the lock only while copying.
//!
//! | route | answer |
//! |---|---|
//! | `GET /healthz` | `{"status":"ok","mqtt_connected":bool,"devices":n,"ingest":{...}}` |
//! | `GET /api/units` | array of unit summaries (the unit document without `devices`) |
//! | `GET /api/units/{unit}` | the unit document with its devices; 404 for an unknown unit |
//! | `GET /api/collectors` | per collector: its retained status (online/offline, counters) and, per epoch, envelopes received, repeats dropped and sequence numbers missing |

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use crate::Shared;

/// The API router over `shared`.
pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/api/units", get(units))
        .route("/api/units/{unit}", get(unit))
        .route("/api/collectors", get(collectors))
        .with_state(shared)
}

async fn healthz(State(shared): State<Arc<Shared>>) -> Json<serde_json::Value> {
    let devices = shared
        .aggregator
        .lock()
        .map(|a| a.device_count())
        .unwrap_or(0);
    Json(json!({
        "status": "ok",
        "mqtt_connected": shared.mqtt_connected.load(Ordering::Relaxed),
        "devices": devices,
        "ingest": shared.stats.snapshot(),
    }))
}

async fn units(State(shared): State<Arc<Shared>>) -> Response {
    let docs = match shared.aggregator.lock() {
        Ok(agg) => agg.units(),
        Err(_) => return internal(),
    };
    let summaries: Vec<_> = docs
        .into_iter()
        .map(|d| {
            json!({
                "unit": d.unit,
                "updated_at_ms": d.updated_at_ms,
                "devices_total": d.devices_total,
                "status": d.status,
                "pages": d.pages,
            })
        })
        .collect();
    Json(summaries).into_response()
}

async fn unit(State(shared): State<Arc<Shared>>, Path(unit): Path<String>) -> Response {
    let doc = match shared.aggregator.lock() {
        Ok(agg) => agg.unit(&unit),
        Err(_) => return internal(),
    };
    match doc {
        Some(doc) => Json(doc).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            Json(json!({"error": format!("unknown unit {unit:?}")})),
        )
            .into_response(),
    }
}

async fn collectors(State(shared): State<Arc<Shared>>) -> Response {
    let deliveries = match shared.aggregator.lock() {
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

fn internal() -> Response {
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        Json(json!({"error": "state unavailable"})),
    )
        .into_response()
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
    async fn units_list_unit_document_and_404() {
        let shared = Arc::new(Shared::default());
        let mut e = Envelope::new("c".try_into().unwrap(), 1, 0, 42);
        e.readings
            .push(Reading::NoResponse(NoResponse {
                device: "d1".try_into().unwrap(),
                unit: "u1".try_into().unwrap(),
                kind: DeviceKind::Copier,
                cause: NoResponseCause::Network,
            }))
            .unwrap();
        shared.aggregator.lock().unwrap().ingest(&e);
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
}
