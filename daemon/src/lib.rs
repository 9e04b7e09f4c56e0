//! What `devtel-collector` and `devtel-gateway` share at their edges, so each `main.rs` stays a
//! thin shell: logging setup, the runtime with SIGINT/SIGTERM handling, exit codes, the
//! reconnect backoff policy, and the MQTT edge ([`mqtt`]: config section, TLS, MQTT 5 options).

pub mod mqtt;

use std::future::Future;
use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// Exit code for a configuration error (distinct from 1, a runtime failure).
pub const EXIT_CONFIG: u8 = 2;

/// A secret kept in a file (a password, a token): its first line, without the line end, so
/// that `echo secret > file` and an editor's trailing newline both work.
///
/// # Errors
/// When the file cannot be read.
pub fn secret_file(path: &std::path::Path) -> std::io::Result<String> {
    let text = std::fs::read_to_string(path)?;
    Ok(text.lines().next().unwrap_or_default().to_string())
}

/// The `privacy` key of both daemons: what devtel lets out about the people at docked desks
/// (the README's "Security and privacy"). `minimal` (the default): seat occupancy and counts
/// only; `per-seat`: also single seats (a salted pseudonym per seat from the collector; single
/// seats shown by the gateway only to its seats token).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Privacy {
    /// Counts only.
    #[default]
    Minimal,
    /// Also single seats, with the staff council's consent.
    PerSeat,
}

/// Reads and validates a config file; the error says which file (and the parser says which key).
///
/// # Errors
/// When the file cannot be read or `parse` rejects it.
pub fn load_config<C, E>(
    path: &std::path::Path,
    parse: impl FnOnce(&str) -> Result<C, E>,
) -> anyhow::Result<C>
where
    E: std::error::Error + Send + Sync + 'static,
{
    use anyhow::Context;
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    parse(&text).with_context(|| format!("in {}", path.display()))
}

/// Prints a config error and returns [`EXIT_CONFIG`].
pub fn config_error(error: &anyhow::Error) -> ExitCode {
    eprintln!("error: {error:#}");
    ExitCode::from(EXIT_CONFIG)
}

/// How log lines are written (`--log-format`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines (colours only on a terminal).
    #[default]
    Text,
    /// One JSON object per line (journald, Loki, Elasticsearch): `timestamp`, `level`,
    /// `target`, `fields` (with `message`) and `span`s.
    Json,
}

/// The keys of a systemd unit file as `Section.Key` → value (the last one where a key
/// repeats), for the tests that hold the shipped units to the daemons' defaults.
///
/// # Errors
/// The line number of a line that is neither a comment, a section nor `key=value`, or of
/// a key outside a section.
pub fn unit_keys(text: &str) -> Result<std::collections::HashMap<String, String>, String> {
    let mut section = "";
    let mut keys = std::collections::HashMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name;
            continue;
        }
        let (key, value) = line
            .split_once('=')
            .ok_or_else(|| format!("line {}: not key=value: {line}", n + 1))?;
        if section.is_empty() {
            return Err(format!("line {}: key outside a section", n + 1));
        }
        keys.insert(format!("{section}.{key}"), value.to_string());
    }
    Ok(keys)
}

/// The logging options every devtel binary takes (`#[command(flatten)]`).
#[derive(Debug, Clone, clap::Args)]
pub struct LogArgs {
    /// More log output (-v debug, -vv trace). RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Log lines as text or as JSON objects (journald, Loki).
    #[arg(
        long,
        value_enum,
        default_value_t,
        global = true,
        env = "DEVTEL_LOG_FORMAT"
    )]
    pub log_format: LogFormat,
}

impl LogArgs {
    /// Installs the subscriber these options ask for ([`init_tracing`]).
    pub fn init(&self) {
        init_tracing(self.verbose, self.log_format);
    }
}

/// Installs the `tracing` subscriber: stderr, `info` by default, `-v` debug, `-vv` trace;
/// `RUST_LOG` overrides ([`log_filter`]). Colours only on a terminal. The embedded broker's own
/// library logs warnings and errors only unless `RUST_LOG` asks for more (devtel logs what it
/// refuses).
pub fn init_tracing(verbose: u8, format: LogFormat) {
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;

    let rust_log = std::env::var("RUST_LOG").ok();
    let (filter, refused) = log_filter(verbose, rust_log.as_deref());
    let registry = tracing_subscriber::registry().with(filter);
    let layer = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    // Fails only if a subscriber is already installed, which is then the one to keep.
    let _ = match format {
        LogFormat::Text => registry
            .with(layer.with_ansi(std::io::stderr().is_terminal()))
            .try_init(),
        LogFormat::Json => registry
            .with(layer.json().with_current_span(false))
            .try_init(),
    };
    if let Some(error) = refused {
        tracing::warn!(%error, "RUST_LOG ignored; expected e.g. `info` or `warn,devtel_collector=debug`");
    }
}

/// The log filter for `-v` counted `verbose` times, or `RUST_LOG` when set: comma-separated
/// `level` and `target=level` directives (`warn,devtel_gateway::mqtt=debug`). A `RUST_LOG` that
/// does not parse is refused (the error is returned to be logged) and the default applies.
///
/// `tracing-subscriber`'s `Targets` rather than its `EnvFilter`: the same directives for
/// targets and levels without span and field filters, and without the regex engine, which
/// is a fifth of the collector's code on a site box.
pub fn log_filter(
    verbose: u8,
    rust_log: Option<&str>,
) -> (tracing_subscriber::filter::Targets, Option<String>) {
    use tracing_subscriber::filter::{LevelFilter, Targets};

    let default = match verbose {
        0 => Targets::new()
            .with_default(LevelFilter::INFO)
            .with_target("rmqtt", LevelFilter::WARN)
            .with_target("rmqtt_net", LevelFilter::WARN),
        1 => Targets::new().with_default(LevelFilter::DEBUG),
        _ => Targets::new().with_default(LevelFilter::TRACE),
    };
    match rust_log.map(str::trim).filter(|s| !s.is_empty()) {
        None => (default, None),
        Some(directives) => match directives.parse::<Targets>() {
            Ok(targets) => (targets, None),
            Err(e) => (default, Some(format!("{directives:?}: {e}"))),
        },
    }
}

/// Which tokio runtime a daemon runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Threads {
    /// One thread for everything: the collector, whose work is waiting on the network. Besides
    /// a thread's own costs, each thread that allocates gets its own glibc arena, and the
    /// arenas keep memory the process no longer uses (measured: 40 MB peak with two workers
    /// against 32 MB with one arena at 5,000 devices).
    One,
    /// A worker per core: the gateway, which computes documents and serves readers while it
    /// ingests.
    PerCore,
}

/// Builds a runtime and runs `daemon` with a token that SIGINT or SIGTERM cancels. Maps the
/// outcome to an exit code, printing the error chain on failure.
pub fn run_until_signal<F, Fut>(threads: Threads, daemon: F) -> ExitCode
where
    F: FnOnce(CancellationToken) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let mut builder = match threads {
        Threads::One => tokio::runtime::Builder::new_current_thread(),
        Threads::PerCore => tokio::runtime::Builder::new_multi_thread(),
    };
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        let shutdown = CancellationToken::new();
        let signal = shutdown.clone();
        tokio::spawn(async move {
            wait_for_signal().await;
            signal.cancel();
        });
        daemon(shutdown).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Waits for SIGINT or SIGTERM (systemd and container runtimes stop services with SIGTERM).
pub async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(error) => {
            tracing::warn!(%error, "SIGTERM handler unavailable; stopping on SIGINT only");
            if let Err(error) = tokio::signal::ctrl_c().await {
                tracing::warn!(%error, "SIGINT handler unavailable too; stopping now");
            }
        }
    }
    tracing::info!("stop signal received");
}

/// After an MQTT connection error: logs it, then waits the next [`backoff`] delay (capped at
/// 30 s) unless `shutdown` comes first. `failures` counts consecutive errors; reset it to 0 on
/// ConnAck. Returns false when shutting down.
pub async fn pause_before_reconnect(
    failures: &mut u32,
    error: &(dyn std::fmt::Display + Sync),
    shutdown: &CancellationToken,
) -> bool {
    let delay = backoff(*failures, Duration::from_secs(30), jitter());
    *failures = failures.saturating_add(1);
    tracing::warn!(%error, retry_in = ?delay, "MQTT connection error");
    tokio::select! {
        _ = shutdown.cancelled() => false,
        _ = tokio::time::sleep(delay) => true,
    }
}

/// The delay before reconnect attempt `attempt` (0-based): capped exponential backoff with
/// "equal jitter". The ceiling doubles from 1 s (1, 2, 4, ... up to `cap`); the delay is
/// between half the ceiling and the ceiling, placed by `jitter` in `[0, 1)`. Half is fixed so a
/// dead broker is never hammered; half is random so a fleet of collectors that lost the broker
/// together does not come back in lock-step. Pure: the caller supplies the randomness
/// ([`jitter`]).
pub fn backoff(attempt: u32, cap: Duration, jitter: f64) -> Duration {
    let factor = 1u32.checked_shl(attempt.min(16)).unwrap_or(u32::MAX);
    let ceiling = Duration::from_secs(1)
        .checked_mul(factor)
        .map_or(cap, |d| d.min(cap));
    let jitter = if jitter.is_finite() {
        jitter.clamp(0.0, 1.0)
    } else {
        0.0
    };
    ceiling.mul_f64(0.5 + 0.5 * jitter)
}

/// A random number in `[0, 1)` for [`backoff`], from the standard library's randomly seeded
/// hasher (no extra dependency; quality is ample for spreading reconnects).
pub fn jitter() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    (hasher.finish() >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_keys_are_read_by_section_and_bad_lines_named() {
        let keys = unit_keys("# c\n[Unit]\nA=1\n\n[Service]\nExecStart=/x run --c=y\n").unwrap();
        assert_eq!(keys["Unit.A"], "1");
        assert_eq!(keys["Service.ExecStart"], "/x run --c=y");
        assert_eq!(
            unit_keys("[Unit]\nnothing\n").unwrap_err(),
            "line 2: not key=value: nothing"
        );
        assert_eq!(
            unit_keys("A=1\n").unwrap_err(),
            "line 1: key outside a section"
        );
    }

    #[test]
    fn log_filter_takes_rust_log_and_refuses_what_does_not_parse() {
        use tracing::Level;
        let (quiet, refused) = log_filter(0, None);
        assert!(refused.is_none());
        assert!(quiet.would_enable("devtel_collector", &Level::INFO));
        assert!(!quiet.would_enable("devtel_collector", &Level::DEBUG));
        assert!(!quiet.would_enable("rmqtt::broker", &Level::INFO));
        assert!(quiet.would_enable("rmqtt::broker", &Level::WARN));
        assert!(log_filter(1, None).0.would_enable("x", &Level::DEBUG));
        assert!(log_filter(2, Some("  ")).0.would_enable("x", &Level::TRACE));

        let (asked, refused) = log_filter(0, Some("warn,devtel_gateway::mqtt=debug"));
        assert!(refused.is_none());
        assert!(asked.would_enable("devtel_gateway::mqtt", &Level::DEBUG));
        assert!(!asked.would_enable("devtel_gateway::store", &Level::INFO));
        assert!(asked.would_enable("devtel_gateway::store", &Level::WARN));

        let (fallback, refused) = log_filter(0, Some("devtel=loud"));
        assert!(refused.is_some_and(|e| e.contains("devtel=loud")));
        assert!(fallback.would_enable("devtel_collector", &Level::INFO));
        assert!(!fallback.would_enable("devtel_collector", &Level::DEBUG));
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_with_jitter_in_the_upper_half() {
        let cap = Duration::from_secs(30);
        let low: Vec<_> = (0..8).map(|a| backoff(a, cap, 0.0).as_millis()).collect();
        assert_eq!(low, vec![500, 1000, 2000, 4000, 8000, 15000, 15000, 15000]);
        let high: Vec<_> = (0..8)
            .map(|a| backoff(a, cap, 0.999_999).as_millis())
            .collect();
        assert_eq!(
            high,
            vec![999, 1999, 3999, 7999, 15999, 29999, 29999, 29999]
        );
        assert_eq!(backoff(3, cap, 0.5), Duration::from_secs(6));
        assert_eq!(backoff(u32::MAX, cap, 1.0), cap);
        assert_eq!(
            backoff(2, cap, f64::NAN),
            Duration::from_secs(2),
            "garbage jitter: lower bound"
        );
        assert_eq!(backoff(2, cap, -3.0), Duration::from_secs(2));
    }

    #[test]
    fn jitter_stays_in_range_and_varies() {
        let samples: Vec<f64> = (0..1000).map(|_| jitter()).collect();
        assert!(samples.iter().all(|j| (0.0..1.0).contains(j)));
        let mean = samples.iter().sum::<f64>() / samples.len() as f64;
        assert!((0.4..0.6).contains(&mean), "mean {mean}");
        let distinct: std::collections::HashSet<u64> =
            samples.iter().map(|j| j.to_bits()).collect();
        assert!(distinct.len() > 990);
    }
}
