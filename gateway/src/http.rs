//! The HTTP API. Handlers read the shared state and serialize documents from the aggregator;
//! they hold the lock only while copying.
//!
//! | route | answer |
//! |---|---|
//! | `GET /healthz` | `{"status":"ok","mqtt_connected":bool,"devices":n,"ingest":{...}}` |
//! | `GET /api/units` | array of unit summaries (the unit document without `devices`) |
//! | `GET /api/units/{unit}` | the unit document with its devices; 404 for an unknown unit |

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
