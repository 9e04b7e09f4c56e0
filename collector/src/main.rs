//! `devtel-collector`: parse the command line, load the config, run. Everything else lives in
//! the library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use devtel_collector::config::{Config, EXAMPLE};
use devtel_collector::snmp::client::{Options, Target, Usm, UsmParts, Version};

/// Polls copiers, printers and other devices over SNMP and publishes telemetry over MQTT.
#[derive(Debug, Parser)]
#[command(name = "devtel-collector", version, about)]
#[deny(missing_docs)]
struct Cli {
    #[command(flatten)]
    log: devtel_daemon::LogArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
#[deny(missing_docs)]
enum Command {
    /// Poll the configured devices and publish their readings until stopped (SIGINT/SIGTERM).
    Run {
        /// Configuration file (TOML).
        #[arg(short, long, env = "DEVTEL_COLLECTOR_CONFIG")]
        config: PathBuf,
    },
    /// Validate a configuration file and exit.
    CheckConfig {
        /// Configuration file (TOML).
        #[arg(short, long)]
        config: PathBuf,
    },
    /// Print an example configuration with every key documented.
    PrintExampleConfig,
    /// Poll one device once and print what devtel would report (kind, vendor, model, status,
    /// page counters, supplies, trays, alerts). Exit code 1 when the device does not answer.
    Probe(ProbeArgs),
    /// Sweep addresses and CIDR ranges, classify what answers (copier, phone, dock switch) and
    /// print a ready [[devices]] config snippet. Progress goes to stderr: a bar on a terminal,
    /// one line per device found otherwise.
    Discover(DiscoverArgs),
    /// Serve recorded SNMP walks (*.snmprec) as simulated devices; the community selects the
    /// recording (its file name without .snmprec).
    Simulate {
        /// Folder with *.snmprec recordings.
        #[arg(long)]
        recordings: PathBuf,
        /// UDP address to answer on.
        #[arg(long, default_value = "127.0.0.1:16100")]
        listen: std::net::SocketAddr,
        /// Let every Counter32 (page counters, octets) grow by this much per second, so a
        /// demo or test sees pages being printed. 0 serves the recordings unchanged.
        #[arg(long, default_value_t = 0)]
        advance_counters: u32,
    },
}

/// `probe` arguments.
#[derive(Debug, clap::Args)]
#[deny(missing_docs)]
struct ProbeArgs {
    /// Host name or IP address.
    host: String,
    #[command(flatten)]
    snmp: SnmpArgs,
    /// Print one JSON object (the stable interface; see README) instead of text.
    #[arg(long)]
    json: bool,
}

/// `discover` arguments.
#[derive(Debug, clap::Args)]
#[deny(missing_docs)]
struct DiscoverArgs {
    /// IP addresses and CIDR ranges (10.20.30.0/24), at most 65,536 addresses in all.
    #[arg(required = true)]
    targets: Vec<String>,
    #[command(flatten)]
    snmp: SnmpArgs,
    /// Addresses probed at the same time.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Unit written into the config snippet (edit it per device afterwards).
    #[arg(long, default_value = "unassigned")]
    unit: String,
}

/// SNMP settings of `probe` and `discover`. SNMPv3 passwords can come from the environment
/// instead of the command line (where other users of the machine could read them in the
/// process list).
#[derive(Debug, clap::Args)]
#[deny(missing_docs)]
struct SnmpArgs {
    /// SNMP version: 1, 2c or 3.
    #[arg(long = "snmp-version", default_value = "2c", value_parser = ["1", "2c", "3"])]
    version: String,
    /// Community (v1/v2c). Prefer the environment variable, or `file:PATH` / `env:NAME` as
    /// in the configuration (a command line shows in the process list: a community given
    /// here is warned about); `discover` writes `env:DEVTEL_SNMP_COMMUNITY` into its
    /// snippet, not the community itself.
    #[arg(
        short = 'c',
        long,
        default_value = "public",
        env = "DEVTEL_SNMP_COMMUNITY",
        hide_env_values = true
    )]
    community: String,
    /// UDP port.
    #[arg(short, long, default_value_t = 161)]
    port: u16,
    /// SNMPv3 user.
    #[arg(short = 'u', long)]
    user: Option<String>,
    /// SNMPv3 authentication protocol (MD5, SHA, SHA-224, SHA-256, SHA-384, SHA-512).
    #[arg(short = 'a', long = "auth-protocol", default_value = "SHA")]
    auth_protocol: String,
    /// SNMPv3 authentication password (or `file:PATH` / `env:NAME`; prefer the variable).
    #[arg(
        short = 'A',
        long = "auth-password",
        env = "DEVTEL_SNMP_AUTH_PASSWORD",
        hide_env_values = true
    )]
    auth_password: Option<String>,
    /// SNMPv3 privacy protocol (DES, AES, AES-192, AES-256).
    #[arg(short = 'x', long = "priv-protocol", default_value = "AES")]
    priv_protocol: String,
    /// SNMPv3 privacy password (or `file:PATH` / `env:NAME`; prefer the variable).
    #[arg(
        short = 'X',
        long = "priv-password",
        env = "DEVTEL_SNMP_PRIV_PASSWORD",
        hide_env_values = true
    )]
    priv_password: Option<String>,
    /// SNMPv3 context name.
    #[arg(short = 'n', long, default_value = "")]
    context: String,
    /// Time to wait for one response.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    timeout: std::time::Duration,
    /// Resends after a timeout.
    #[arg(long, default_value_t = 1)]
    retries: u32,
}

impl SnmpArgs {
    /// The target for `host` and the request options; a usage error (exit 2) for bad v3
    /// credentials.
    fn target(&self, host: &str) -> Result<(Target, Options), ExitCode> {
        let secret = |flag: &str, var: &str, value: Option<&str>| {
            let Some(value) = value else {
                return Ok(None);
            };
            let from_env = std::env::var(var).is_ok_and(|v| v == value);
            match command_line_secret(flag, value, from_env || value == "public") {
                Ok((secret, warning)) => {
                    if let Some(w) = warning {
                        eprintln!("warning: {w}");
                    }
                    Ok(Some(secret))
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    Err(ExitCode::from(2))
                }
            }
        };
        let community = secret("community", "DEVTEL_SNMP_COMMUNITY", Some(&self.community))?
            .unwrap_or_default();
        let auth_password = secret(
            "auth-password",
            "DEVTEL_SNMP_AUTH_PASSWORD",
            self.auth_password.as_deref(),
        )?;
        let priv_password = secret(
            "priv-password",
            "DEVTEL_SNMP_PRIV_PASSWORD",
            self.priv_password.as_deref(),
        )?;
        let version = match self.version.as_str() {
            "1" => Version::V1,
            "3" => Version::V3,
            _ => Version::V2c,
        };
        let usm = if version == Version::V3 {
            // The protocols have defaults on the command line; they only count with a password.
            let parts = UsmParts {
                user: self.user.as_deref(),
                auth_protocol: auth_password
                    .is_some()
                    .then_some(self.auth_protocol.as_str()),
                auth_password: auth_password.as_deref(),
                priv_protocol: priv_password
                    .is_some()
                    .then_some(self.priv_protocol.as_str()),
                priv_password: priv_password.as_deref(),
                context: Some(self.context.as_str()),
            };
            match Usm::from_parts(parts) {
                Ok(usm) => Some(usm),
                Err(e) => {
                    eprintln!("error: --{}: {}", e.field.replace('_', "-"), e.reason);
                    return Err(ExitCode::from(2));
                }
            }
        } else {
            None
        };
        let target = Target {
            host: host.to_string(),
            port: self.port,
            version,
            community,
            usm: usm.map(Box::new),
        };
        let opts = Options {
            timeout: self.timeout,
            retries: self.retries,
            ..Options::default()
        };
        Ok((target, opts))
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            eprintln!("error: starting the runtime: {e}");
            ExitCode::FAILURE
        })
}

fn probe(args: ProbeArgs) -> ExitCode {
    let (target, opts) = match args.snmp.target(&args.host) {
        Ok(t) => t,
        Err(code) => return code,
    };
    let version = target.version;
    let runtime = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    match runtime.block_on(devtel_collector::probe::probe(target, opts)) {
        Ok(found) => {
            if args.json {
                println!("{}", devtel_collector::probe::to_json(&found));
            } else {
                print!("{}", devtel_collector::probe::to_text(&args.host, &found));
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!(
                "error: {}:{} (SNMP {}): {e}",
                args.host, args.snmp.port, version
            );
            ExitCode::FAILURE
        }
    }
}

/// Sweeps, shows progress (a bar on a terminal, one line per device found otherwise) on
/// stderr, and prints the config snippet on stdout.
fn discover(args: DiscoverArgs) -> ExitCode {
    use devtel_collector::discover;
    use std::io::IsTerminal;
    let addresses = match discover::expand(&args.targets) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = devtel_protocol::topic::validate_segment(&args.unit) {
        eprintln!("error: --unit {:?}: {e}", args.unit);
        return ExitCode::from(2);
    }
    let (template, opts) = match args.snmp.target("") {
        Ok(t) => t,
        Err(code) => return code,
    };
    let runtime = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let total = addresses.len();
    let bar = std::io::stderr().is_terminal().then(|| {
        let bar = indicatif::ProgressBar::new(total as u64);
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "{bar:40} {pos}/{len} addresses, {msg} ({eta} left)",
        ) {
            bar.set_style(style);
        }
        bar
    });
    let mut answered = 0;
    let found = runtime.block_on(discover::sweep(
        addresses,
        &template,
        opts,
        args.concurrency,
        |address, result| {
            let line = result.as_ref().ok().map(|probed| {
                answered += 1;
                let (kind, text) = discover::describe(probed);
                format!("{address}: {kind} {text}")
            });
            match (&bar, line) {
                (Some(bar), line) => {
                    if let Some(line) = line {
                        bar.println(line);
                    }
                    bar.set_message(format!("{answered} answered"));
                    bar.inc(1);
                }
                (None, Some(line)) => eprintln!("{line}"),
                (None, None) => {}
            }
        },
    ));
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    eprintln!("{total} addresses swept, {} answered", found.len());
    print!("{}", discover::snippet(&found, &template, &args.unit));
    ExitCode::SUCCESS
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    cli.log.init();
    match cli.command {
        Command::Probe(args) => probe(args),
        Command::Discover(args) => discover(args),
        Command::PrintExampleConfig => {
            print!("{EXAMPLE}");
            ExitCode::SUCCESS
        }
        Command::CheckConfig { config } => {
            match devtel_daemon::load_config(&config, Config::from_toml) {
                Ok(c) => {
                    println!(
                        "{}: ok ({} devices; broker {}; released on the {}'s acknowledgement; spool {} up to {} MiB, fsync {})",
                        config.display(),
                        c.devices.len(),
                        c.mqtt.describe(),
                        c.delivery.acknowledge.name(),
                        c.spool.dir.display(),
                        c.spool.max_bytes >> 20,
                        match c.spool.fsync {
                            devtel_collector::spool::Fsync::Always => "always".to_string(),
                            devtel_collector::spool::Fsync::Never => "never".to_string(),
                            devtel_collector::spool::Fsync::Every(d) =>
                                format!("every {}", humantime::format_duration(d)),
                        }
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => devtel_daemon::config_error(&e),
            }
        }
        Command::Simulate {
            recordings,
            listen,
            advance_counters,
        } => {
            let agents = match devtel_collector::sim::Agents::load(&recordings) {
                Ok(mut a) => {
                    a.advance_counters(advance_counters);
                    std::sync::Arc::new(a)
                }
                Err(e) => return devtel_daemon::config_error(&e.into()),
            };
            devtel_daemon::run_until_signal(
                devtel_daemon::Threads::PerCore,
                |shutdown| async move {
                    let socket = tokio::net::UdpSocket::bind(listen)
                        .await
                        .map_err(|e| anyhow::anyhow!("binding {listen}: {e}"))?;
                    tracing::info!(%listen, agents = agents.len(), "simulator answering");
                    devtel_collector::sim::serve(socket, agents, shutdown).await;
                    Ok(())
                },
            )
        }
        Command::Run { config } => match devtel_daemon::load_config(&config, Config::from_toml) {
            Ok(config) => {
                devtel_daemon::run_until_signal(devtel_daemon::Threads::One, |shutdown| {
                    devtel_collector::run(config, shutdown)
                })
            }
            Err(e) => devtel_daemon::config_error(&e),
        },
    }
}

/// A secret given to `--{flag}`: `env:NAME` and `file:PATH` are read as in the
/// configuration; a plain value is taken with a warning, unless it came from the environment
/// variable or is the default (`quiet`): a command line shows in the process list.
fn command_line_secret(
    flag: &str,
    value: &str,
    quiet: bool,
) -> Result<(String, Option<String>), devtel_collector::config::ConfigError> {
    let referenced = value.starts_with("env:") || value.starts_with("file:");
    let secret = devtel_collector::config::secret(flag, value)?;
    let warning = (!referenced && !quiet).then(|| {
        format!("--{flag} on the command line is visible to every user in the process list; use its environment variable or --{flag} file:PATH")
    });
    Ok((secret, warning))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn a_secret_on_the_command_line_is_read_from_a_file_or_warned_about() {
        let dir = std::env::temp_dir().join(format!("devtel-cli-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("community");
        std::fs::write(&file, "s3cret\n").unwrap();
        let by_file = format!("file:{}", file.display());
        let (secret, warning) = command_line_secret("community", &by_file, false).unwrap();
        assert_eq!((secret.as_str(), warning), ("s3cret", None));
        let (secret, warning) = command_line_secret("community", "s3cret", false).unwrap();
        assert_eq!(secret, "s3cret");
        let warning = warning.unwrap();
        assert!(warning.contains("process list") && !warning.contains("s3cret"));
        assert_eq!(
            command_line_secret("community", "s3cret", true).unwrap().1,
            None,
            "from the environment: nothing to warn about"
        );
        let missing = command_line_secret("community", "env:DEVTEL_TEST_UNSET_VAR", false);
        let e = missing.unwrap_err().to_string();
        assert!(
            e.contains("DEVTEL_TEST_UNSET_VAR") && e.contains("community"),
            "{e}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }
}
