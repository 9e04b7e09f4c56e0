//! The collector's own `/metrics` for site IT (optional: `metrics_listen`), in the Prometheus
//! text exposition format: the counters of the status message ([`Counters`]) and an info
//! series with the site, collector, epoch and version.
//!
//! [`render`] is pure; [`serve`] is the listener (one route; bind it to loopback or a
//! management network: it has no authentication, and it tells nothing about devices or
//! people, only the collector's own counts).

use std::fmt::Write as _;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::publisher::{Counters, Identity, Stats};

/// (field of [`Counters`], Prometheus type, help).
const METRICS: &[(&str, &str, &str)] = &[
    (
        "polls",
        "counter",
        "Device polls finished (answered or not).",
    ),
    (
        "timeouts",
        "counter",
        "Polls that ended without an answer before the deadline.",
    ),
    (
        "failed",
        "counter",
        "Polls without a usable answer for another reason (network, authentication, garbage).",
    ),
    ("spooled", "counter", "Readings written to the spool."),
    (
        "published",
        "counter",
        "Publishes handed to the MQTT client (repeats included).",
    ),
    (
        "published_described",
        "counter",
        "Readings published described (in full).",
    ),
    (
        "published_compact",
        "counter",
        "Readings published compact (wire version 5: values against a description).",
    ),
    (
        "published_bytes",
        "counter",
        "Payload bytes of the published readings.",
    ),
    (
        "broker_acked",
        "counter",
        "Publishes the broker acknowledged.",
    ),
    (
        "broker_refused",
        "counter",
        "Publishes the broker refused (e.g. not authorised).",
    ),
    (
        "acknowledged",
        "counter",
        "Readings released from the spool by an acknowledgement.",
    ),
    (
        "rejected",
        "counter",
        "Of those, readings the gateway refused for good.",
    ),
    (
        "resent",
        "counter",
        "Readings published again (not confirmed in time, or at a reconnect).",
    ),
    (
        "awaiting_gateway",
        "gauge",
        "Readings with the broker, not yet confirmed by the gateway.",
    ),
    (
        "awaiting_gateway_oldest_s",
        "gauge",
        "Age of the oldest of those, seconds.",
    ),
    (
        "bad_acks",
        "counter",
        "Messages on the acknowledgement topic that were no valid acknowledgement.",
    ),
    (
        "unknown_acks",
        "counter",
        "Acknowledgements naming nothing the spool holds (repeats, or an old epoch).",
    ),
    (
        "dropped",
        "counter",
        "Readings dropped by the spool's size bound (oldest first).",
    ),
    (
        "corrupt",
        "counter",
        "Spool records found corrupt (skipped).",
    ),
    (
        "spool_unplaced",
        "counter",
        "Readings that could not be placed in the spool.",
    ),
    ("spool_write_errors", "counter", "Spool writes that failed."),
    (
        "spool_sync_failures",
        "counter",
        "Spool fsyncs that failed.",
    ),
    (
        "spool_in_memory",
        "gauge",
        "Readings held in memory while the spool cannot be written.",
    ),
    (
        "lost",
        "counter",
        "Readings lost (counted, logged; 0 unless the process was killed with readings in memory).",
    ),
    ("reconnects", "counter", "MQTT reconnects."),
    ("connection_errors", "counter", "MQTT connection errors."),
    (
        "spool_pending",
        "gauge",
        "Readings in the spool not yet acknowledged.",
    ),
    ("spool_bytes", "gauge", "Bytes the spool holds."),
    (
        "clock_jumps",
        "counter",
        "Jumps of the wall clock seen (NTP steps, a wrong RTC).",
    ),
    (
        "clock_last_jump_ms",
        "gauge",
        "Size of the last clock jump, ms (signed).",
    ),
];

/// `/metrics` for `counters` of the collector `identity`.
pub fn render(identity: &Identity, counters: &Counters) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# HELP devtel_collector_info The collector: site, collector id, this run's epoch, version.\n# TYPE devtel_collector_info gauge\ndevtel_collector_info{{site=\"{}\",collector=\"{}\",epoch=\"{}\",version=\"{}\"}} 1",
        identity.site,
        identity.collector,
        identity.epoch,
        env!("CARGO_PKG_VERSION")
    );
    let values = serde_json::to_value(counters).unwrap_or_default();
    for (field, kind, help) in METRICS {
        let Some(value) = values.get(field).and_then(serde_json::Value::as_f64) else {
            continue;
        };
        let name = if *kind == "counter" {
            format!("devtel_collector_{field}_total")
        } else {
            format!("devtel_collector_{field}")
        };
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
        );
    }
    out
}

/// Serves `/metrics` on `listener` until `shutdown` (bound by the caller, so that a wrong
/// address stops the start).
pub async fn serve(
    listener: tokio::net::TcpListener,
    identity: Identity,
    stats: Arc<Stats>,
    shutdown: CancellationToken,
) {
    if let Ok(addr) = listener.local_addr() {
        info!(listen = %addr, "metrics listening");
    }
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let body = render(&identity, &stats.snapshot());
            async move {
                (
                    [(
                        axum::http::header::CONTENT_TYPE,
                        "text/plain; version=0.0.4; charset=utf-8",
                    )],
                    body,
                )
            }
        }),
    );
    let stop = shutdown.clone();
    if let Err(error) = axum::serve(listener, app)
        .with_graceful_shutdown(async move { stop.cancelled().await })
        .await
    {
        warn!(%error, "metrics listener stopped");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_counter_is_a_metric_with_help_and_values_are_the_counters() {
        let stats = Stats::default();
        stats.polls.store(7, std::sync::atomic::Ordering::Relaxed);
        stats
            .awaiting_gateway
            .store(3, std::sync::atomic::Ordering::Relaxed);
        let counters = stats.snapshot();
        let fields = serde_json::to_value(counters).unwrap();
        let fields = fields.as_object().unwrap();
        for field in fields.keys() {
            assert!(
                METRICS.iter().any(|(f, _, _)| f == field),
                "{field} has no metric"
            );
        }
        assert_eq!(fields.len(), METRICS.len());
        let identity = Identity {
            site: "rathaus".try_into().unwrap(),
            collector: "c1".try_into().unwrap(),
            epoch: 42,
            started_ms: 0,
        };
        let text = render(&identity, &counters);
        assert!(text.contains("devtel_collector_polls_total 7\n"), "{text}");
        assert!(text.contains(
            "# TYPE devtel_collector_awaiting_gateway gauge\ndevtel_collector_awaiting_gateway 3\n"
        ));
        assert!(
            text.contains("devtel_collector_info{site=\"rathaus\",collector=\"c1\",epoch=\"42\",")
        );
        // Every sample line is `name value` with a declared type before it.
        let mut typed = std::collections::BTreeSet::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                typed.insert(rest.split(' ').next().unwrap().to_string());
            } else if !line.starts_with('#') {
                let name = line.split(['{', ' ']).next().unwrap();
                assert!(typed.contains(name), "{line}");
                assert!(
                    line.rsplit(' ').next().unwrap().parse::<f64>().is_ok(),
                    "{line}"
                );
            }
        }
    }
}
