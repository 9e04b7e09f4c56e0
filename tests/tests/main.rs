//! devtel's end-to-end tests: real Mosquitto, real snmpsim serving recordings of real devices,
//! and the collector and gateway as real processes. One test binary (see Cargo.toml).
//!
//! Prerequisites (installed by `scripts/setup-test-env.sh`, which `scripts/test.sh` runs):
//! `mosquitto` on PATH or in /usr/sbin, snmpsim in `.venv/`, the binaries built
//! (`cargo build --workspace --bins`), and `../shared/corpus` beside the project.

mod util;

/// Copier readings flow from snmpsim through collector, Mosquitto and gateway.
mod pipeline;

/// devtel's own SNMP simulator against snmpsim, the reference player of the recordings.
mod simulator;

/// SNMPv3 (USM) against net-snmp's snmpd.
mod snmpv3;

/// Delivery guarantees: broker outages, SIGKILL, a full spool, TLS and passwords.
mod delivery;

/// The gateway's figures survive SIGKILL at random points exactly.
mod durability;

/// Two gateway replicas on one PostgreSQL and one shared subscription: SIGKILLs and a
/// stopped store end with the figures of one gateway.
mod replicas;

/// End to end: a reading leaves the site only when the gateway stored it; no message can stop
/// ingest.
mod zero_loss;

/// The dashboard in headless Chromium against the API; the monthly report's CSV adds up.
mod dashboard;

/// Site identity: the broker's per-site users and the gateway's own check.
mod security;

/// The one-command demo, with no broker installed.
mod demo;

/// The Debian packages install, verify and purge.
mod packaging;
