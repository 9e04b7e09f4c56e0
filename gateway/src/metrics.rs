//! `/metrics` in the Prometheus text exposition format (version 0.0.4).

use std::fmt::Write;
use std::sync::atomic::Ordering;

use crate::Shared;

fn metric(out: &mut String, name: &str, kind: &str, help: &str, samples: &[(String, f64)]) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
    for (labels, value) in samples {
        let _ = writeln!(out, "{name}{labels} {value}");
    }
}

/// A label value with `\`, `"` and newlines escaped.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn one(v: f64) -> Vec<(String, f64)> {
    vec![(String::new(), v)]
}

/// Renders every gateway metric.
pub fn render(shared: &Shared) -> String {
    let c = shared.stats.snapshot();
    // One copy for all the figures' metrics.
    let figures = shared.read().ok();
    let (devices, units, unassigned, late, as_of) = figures
        .as_deref()
        .map(|a| {
            (
                a.device_count(),
                a.unit_ids().len(),
                a.unassigned_readings(),
                a.late_readings(),
                a.as_of_ms(),
            )
        })
        .unwrap_or_default();
    let mut out = String::new();
    metric(
        &mut out,
        "devtel_gateway_messages_received_total",
        "counter",
        "MQTT messages received (telemetry and collector statuses).",
        &one(c.received as f64),
    );
    metric(
        &mut out,
        "devtel_gateway_readings_total",
        "counter",
        "Readings by outcome: applied to the current state, stale (older than the current one; history only), duplicate (redelivery, not counted again).",
        &[
            ("{outcome=\"applied\"}".into(), c.applied as f64),
            ("{outcome=\"stale\"}".into(), c.stale as f64),
            ("{outcome=\"duplicate\"}".into(), c.duplicates as f64),
        ],
    );
    metric(
        &mut out,
        "devtel_gateway_conflicts_total",
        "counter",
        "Envelopes that repeated a stored (collector, epoch, seq) with other bytes: kept aside (GET /api/conflicts), not stored, not counted as duplicates.",
        &one(c.conflicts as f64),
    );
    metric(
        &mut out,
        "devtel_gateway_repeats_unverified_total",
        "counter",
        "Repeats of envelopes too old to be compared with the stored bytes, taken as redeliveries.",
        &one(c.repeats_unverified as f64),
    );
    let mut rejected: Vec<(String, f64)> = crate::ingest::Rejection::ALL
        .iter()
        .map(|r| r.name())
        .map(|cause| {
            (
                format!("{{cause=\"{cause}\"}}"),
                c.rejected.get(cause).copied().unwrap_or(0) as f64,
            )
        })
        .collect();
    rejected.sort_by(|a, b| a.0.cmp(&b.0));
    metric(
        &mut out,
        "devtel_gateway_rejected_total",
        "counter",
        "Messages rejected, by cause (each copied to devtel/v1/deadletter/{cause}/...).",
        &rejected,
    );
    metric(
        &mut out,
        "devtel_gateway_unassigned_readings_total",
        "counter",
        "Readings for a unit that is not configured, counted in the unit \"unassigned\" (since start, including the replay).",
        &one(unassigned as f64),
    );
    metric(
        &mut out,
        "devtel_gateway_late_readings_total",
        "counter",
        "Readings that arrived later than the late window (counted as polls; pages stay in the covering interval).",
        &one(late as f64),
    );
    metric(
        &mut out,
        "devtel_gateway_dead_letters_total",
        "counter",
        "Messages copied to the dead-letter topic.",
        &one(c.dead_lettered as f64),
    );
    metric(
        &mut out,
        "devtel_gateway_held_back_total",
        "counter",
        "QoS 1 messages not taken while the ingest queue was full (the broker sent beyond the Receive Maximum); not acknowledged, they come again after a reconnect.",
        &one(c.held_back as f64),
    );
    metric(
        &mut out,
        "devtel_gateway_redelivery_reconnects_total",
        "counter",
        "Reconnects made so that the broker sends held-back messages again.",
        &one(c.redelivery_reconnects as f64),
    );
    metric(
        &mut out,
        "devtel_gateway_acks_published_total",
        "counter",
        "Acknowledgements published to collectors (devtel/v1/acks/{site}/{collector}) after commits.",
        &one(c.acks_published as f64),
    );
    metric(
        &mut out,
        "devtel_gateway_documents_not_published_total",
        "counter",
        "Unit or device documents not published (larger than the broker's packet limit, or refused by the MQTT client's queue).",
        &one(c.documents_not_published as f64),
    );
    metric(
        &mut out,
        "devtel_gateway_events_published_total",
        "counter",
        "Events published on devtel/v1/events/{unit}/{device} (device unreachable and back, supply low or empty, cartridge replaced, SLA at risk and met).",
        &one(c.events_published as f64),
    );
    metric(
        &mut out,
        "devtel_gateway_store_commits_total",
        "counter",
        "Store transactions committed.",
        &one(c.commits as f64),
    );
    metric(
        &mut out,
        "devtel_gateway_store_committed_messages_total",
        "counter",
        "Messages in committed store transactions.",
        &one(c.committed_messages as f64),
    );
    metric(
        &mut out,
        "devtel_gateway_store_commit_seconds_total",
        "counter",
        "Time spent in store commits.",
        &one(c.commit_seconds),
    );
    metric(
        &mut out,
        "devtel_gateway_store_commit_seconds_max",
        "gauge",
        "The slowest store commit since start.",
        &one(c.commit_seconds_max),
    );
    metric(
        &mut out,
        "devtel_gateway_store_errors_total",
        "counter",
        "Failed store commits (the batch stays unacknowledged and is retried).",
        &one(c.store_errors as f64),
    );
    metric(
        &mut out,
        "devtel_gateway_lag_seconds",
        "gauge",
        "Time from the newest committed reading's poll to its commit.",
        &one(c.lag_seconds),
    );
    metric(
        &mut out,
        "devtel_gateway_newest_poll_timestamp_seconds",
        "gauge",
        "Poll time of the newest reading seen.",
        &one(as_of as f64 / 1000.0),
    );
    metric(
        &mut out,
        "devtel_gateway_devices",
        "gauge",
        "Devices known.",
        &one(devices as f64),
    );
    metric(
        &mut out,
        "devtel_gateway_units",
        "gauge",
        "Units known (configured, or reported when none are configured).",
        &one(units as f64),
    );
    if let Some(path) = &shared.store_path {
        // The database with its write-ahead log (what the disk holds for it).
        let bytes: u64 = ["", "-wal"]
            .iter()
            .filter_map(|suffix| {
                let mut p = path.clone().into_os_string();
                p.push(suffix);
                std::fs::metadata(p).ok()
            })
            .map(|m| m.len())
            .sum();
        metric(
            &mut out,
            "devtel_gateway_store_bytes",
            "gauge",
            "Size of the store on disk (database and write-ahead log).",
            &one(bytes as f64),
        );
    }
    if let Some(r) = &shared.replica {
        let labels = format!(
            "{{replica=\"{}\",group=\"{}\"}}",
            escape(&r.name),
            escape(r.group.as_deref().unwrap_or(""))
        );
        let with = |v: f64| vec![(labels.clone(), v)];
        metric(
            &mut out,
            "devtel_gateway_replica_publisher",
            "gauge",
            "1 while this replica holds the publisher lease (publishes the retained documents).",
            &with(f64::from(u8::from(r.publishes()))),
        );
        metric(
            &mut out,
            "devtel_gateway_replica_cursor",
            "gauge",
            "Every envelope with an id up to this is applied to this replica's figures.",
            &with(r.cursor.load(Ordering::Relaxed) as f64),
        );
        metric(
            &mut out,
            "devtel_gateway_replica_cursor_lag_envelopes",
            "gauge",
            "Envelopes committed to the store that this replica had not applied at its last follow step.",
            &with(r.lag() as f64),
        );
        metric(
            &mut out,
            "devtel_gateway_replica_followed_timestamp_seconds",
            "gauge",
            "When this replica last read what the others committed (0: not yet).",
            &with(r.followed_at_ms.load(Ordering::Relaxed) as f64 / 1000.0),
        );
        metric(
            &mut out,
            "devtel_gateway_replica_followed_envelopes_total",
            "counter",
            "Envelopes other replicas committed that this one applied.",
            &with(r.followed.load(Ordering::Relaxed) as f64),
        );
        metric(
            &mut out,
            "devtel_gateway_replica_follow_errors_total",
            "counter",
            "Follow steps that could not read the store (tried again at the next).",
            &with(r.follow_errors.load(Ordering::Relaxed) as f64),
        );
        metric(
            &mut out,
            "devtel_gateway_replica_descriptions_fetched_total",
            "counter",
            "Descriptions read from the store for compact readings whose described envelope another replica received.",
            &with(r.descriptions_fetched.load(Ordering::Relaxed) as f64),
        );
        metric(
            &mut out,
            "devtel_gateway_replica_claims_fetched_total",
            "counter",
            "Site claims another replica made, read from the store for readings that came here.",
            &with(r.claims_fetched.load(Ordering::Relaxed) as f64),
        );
        metric(
            &mut out,
            "devtel_gateway_replica_lookup_errors_total",
            "counter",
            "Lookups of descriptions or site claims in the store that failed.",
            &with(r.lookup_errors.load(Ordering::Relaxed) as f64),
        );
    }
    let raw = shared.raw_range.lock().map(|r| *r).unwrap_or_default();
    metric(
        &mut out,
        "devtel_gateway_raw_pruned_envelopes_total",
        "counter",
        "Raw envelopes deleted by the raw retention ([store] raw_retention).",
        &one(raw.pruned_envelopes as f64),
    );
    if let Some(oldest) = raw.oldest_poll_ms {
        metric(
            &mut out,
            "devtel_gateway_raw_retained_from_timestamp_seconds",
            "gauge",
            "Poll time of the oldest raw envelope the store holds (the history API's reach).",
            &one(oldest as f64 / 1000.0),
        );
    }
    if let Some(from) = figures.as_deref().and_then(|a| {
        a.figures_from()
            .and_then(|d| a.settings().ledger.calendar.day_bounds(d))
    }) {
        metric(
            &mut out,
            "devtel_gateway_figures_retained_from_timestamp_seconds",
            "gauge",
            "Start of the first day whose figures are held (figures retention).",
            &one(from.0 as f64 / 1000.0),
        );
    }
    let taken_ms = shared.snapshot_taken_ms.load(Ordering::Relaxed);
    metric(
        &mut out,
        "devtel_gateway_snapshot_timestamp_seconds",
        "gauge",
        "When the newest stored snapshot of the figures was taken (0: none yet).",
        &one(taken_ms as f64 / 1000.0),
    );
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    if taken_ms > 0 {
        metric(
            &mut out,
            "devtel_gateway_snapshot_age_seconds",
            "gauge",
            "Age of the newest stored snapshot of the figures.",
            &one(now_ms.saturating_sub(taken_ms) as f64 / 1000.0),
        );
    }
    metric(
        &mut out,
        "devtel_gateway_snapshot_through_envelope",
        "gauge",
        "The envelope id the newest stored snapshot covers; a start replays only those after it.",
        &one(shared.snapshot_through.load(Ordering::Relaxed) as f64),
    );
    metric(
        &mut out,
        "devtel_gateway_mqtt_connected",
        "gauge",
        "1 while connected to the broker.",
        &one(f64::from(u8::from(
            shared.mqtt_connected.load(Ordering::Relaxed),
        ))),
    );
    let holds = &shared.lock_holds;
    metric(
        &mut out,
        "devtel_gateway_read_lock_hold_max_seconds",
        "gauge",
        "The longest a reader (HTTP request, publication, snapshot) held the aggregator's lock to take its copy (ingest waits meanwhile), since start.",
        &one(holds.max_us.load(Ordering::Relaxed) as f64 / 1e6),
    );
    metric(
        &mut out,
        "devtel_gateway_read_lock_holds_total",
        "counter",
        "Readers' holds of the aggregator's lock, all and those over 5 ms.",
        &[
            (
                "{took=\"any\"}".into(),
                holds.count.load(Ordering::Relaxed) as f64,
            ),
            (
                "{took=\"over_5ms\"}".into(),
                holds.slow.load(Ordering::Relaxed) as f64,
            ),
        ],
    );
    if let Some(b) = &shared.broker {
        let n = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed) as f64;
        metric(
            &mut out,
            "devtel_gateway_broker_refused_total",
            "counter",
            "The embedded broker's refusals: connect (user or password), publish and subscribe (not the user's topics), retained (max_retained kept already).",
            &[
                ("{what=\"connect\"}".into(), n(&b.connects_refused)),
                ("{what=\"publish\"}".into(), n(&b.publishes_refused)),
                ("{what=\"subscribe\"}".into(), n(&b.subscribes_refused)),
                ("{what=\"retained\"}".into(), n(&b.retained_refused)),
            ],
        );
    }
    out
}
