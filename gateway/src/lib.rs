//! devtel gateway: subscribes to collector telemetry, aggregates it per administrative unit,
//! publishes retained JSON unit documents for MQTT integrators and serves an HTTP API.
//!
//! # Layout
//! - [`config`]: the TOML file, validated into [`config::Config`].
//! - [`aggregate`]: the I/O-free aggregator and the JSON documents derived from it.
//! - [`ingest`]: from an MQTT message to the aggregator, with counted rejections.
//! - [`mqtt`]: the MQTT client: subscription, message intake, retained document publishing.
//! - [`deliveries`]: which envelopes arrived per collector and epoch (repeats, missing ones).
//! - [`http`]: the HTTP API (`/healthz`, `/api/units`, `/api/units/{unit}`, `/api/collectors`).
//!
//! [`run`] starts the MQTT and HTTP sides on a shared [`Shared`] state and stops both on
//! the shutdown token.

pub mod aggregate;
pub mod calendar;
pub mod config;
pub mod deliveries;
pub mod http;
pub mod ingest;
pub mod ledger;
pub mod meter;
pub mod mqtt;
#[cfg(test)]
mod testdata;
pub mod units;

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use anyhow::Context;
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::aggregate::Aggregator;
use crate::config::Config;
use crate::ingest::IngestStats;

/// State shared by the MQTT and HTTP sides. The mutex is a std one: nothing awaits while
/// holding it, and every critical section is a short in-memory update or read.
#[derive(Debug, Default)]
pub struct Shared {
    /// Per-device state and unit rollups.
    pub aggregator: Mutex<Aggregator>,
    /// Ingest counters.
    pub stats: IngestStats,
    /// Whether the MQTT connection is up (for `/healthz`).
    pub mqtt_connected: AtomicBool,
    /// The latest retained status of every collector site (`devtel/v1/collectors/{site}`).
    pub collectors: Mutex<std::collections::BTreeMap<String, serde_json::Value>>,
}

/// Runs the gateway until `shutdown` is cancelled.
///
/// # Errors
/// When the HTTP listener cannot be bound.
pub async fn run(config: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    let shared = Arc::new(Shared::default());
    let listener = tokio::net::TcpListener::bind(config.http_listen)
        .await
        .with_context(|| format!("binding the HTTP API to {}", config.http_listen))?;
    let bound = listener.local_addr().context("reading the HTTP address")?;
    info!(http = %bound, broker = %format!("{}:{}", config.broker_host, config.broker_port), "gateway started");

    let mqtt = tokio::spawn(mqtt::run(config.clone(), shared.clone(), shutdown.clone()));
    let app = http::router(shared.clone());
    let http_shutdown = shutdown.clone();
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { http_shutdown.cancelled().await })
        .await
        .context("serving HTTP")?;
    if let Err(error) = mqtt.await {
        tracing::warn!(%error, "MQTT task ended abnormally");
    }
    info!("gateway stopped");
    Ok(())
}
