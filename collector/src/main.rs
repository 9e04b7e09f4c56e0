//! `devtel-collector`: parse the command line, load the config, run. Everything else lives in
//! the library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use devtel_collector::config::{Config, EXAMPLE};

/// Polls copiers, printers and other devices over SNMP and publishes telemetry over MQTT.
#[derive(Debug, Parser)]
#[command(name = "devtel-collector", version, about)]
#[deny(missing_docs)]
struct Cli {
    /// More log output (-v debug, -vv trace). RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
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
    /// Serve recorded SNMP walks (*.snmprec) as simulated devices; the community selects the
    /// recording (its file name without .snmprec).
    Simulate {
        /// Folder with *.snmprec recordings.
        #[arg(long)]
        recordings: PathBuf,
        /// UDP address to answer on.
        #[arg(long, default_value = "127.0.0.1:16100")]
        listen: std::net::SocketAddr,
    },
}

/// `probe` arguments. SNMPv3 passwords can come from the environment instead of the command
/// line (where other users of the machine could read them in the process list).
#[derive(Debug, clap::Args)]
#[deny(missing_docs)]
struct ProbeArgs {
    /// Host name or IP address.
    host: String,
    /// SNMP version: 1, 2c or 3.
    #[arg(long = "snmp-version", default_value = "2c", value_parser = ["1", "2c", "3"])]
    version: String,
    /// Community (v1/v2c).
    #[arg(short = 'c', long, default_value = "public")]
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
    /// SNMPv3 authentication password.
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
    /// SNMPv3 privacy password.
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
    /// Print one JSON object (the stable interface; see README) instead of text.
    #[arg(long)]
    json: bool,
}

fn probe(args: ProbeArgs) -> ExitCode {
    use devtel_collector::snmp::client::{Options, Target, Usm, UsmParts, Version};
    let version = match args.version.as_str() {
        "1" => Version::V1,
        "3" => Version::V3,
        _ => Version::V2c,
    };
    let usm = if version == Version::V3 {
        // The protocols have defaults on the command line; they only count with a password.
        let parts = UsmParts {
            user: args.user.as_deref(),
            auth_protocol: args
                .auth_password
                .is_some()
                .then_some(args.auth_protocol.as_str()),
            auth_password: args.auth_password.as_deref(),
            priv_protocol: args
                .priv_password
                .is_some()
                .then_some(args.priv_protocol.as_str()),
            priv_password: args.priv_password.as_deref(),
            context: Some(args.context.as_str()),
        };
        match Usm::from_parts(parts) {
            Ok(usm) => Some(usm),
            Err(e) => {
                eprintln!("error: --{}: {}", e.field.replace('_', "-"), e.reason);
                return ExitCode::from(2);
            }
        }
    } else {
        None
    };
    let target = Target {
        host: args.host.clone(),
        port: args.port,
        version,
        community: args.community.clone(),
        usm,
    };
    let opts = Options {
        timeout: args.timeout,
        retries: args.retries,
        ..Options::default()
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the runtime: {e}");
            return ExitCode::FAILURE;
        }
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
            eprintln!("error: {}:{} (SNMP {}): {e}", args.host, args.port, version);
            ExitCode::FAILURE
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    devtel_daemon::init_tracing(cli.verbose);
    match cli.command {
        Command::Probe(args) => probe(args),
        Command::PrintExampleConfig => {
            print!("{EXAMPLE}");
            ExitCode::SUCCESS
        }
        Command::CheckConfig { config } => {
            match devtel_daemon::load_config(&config, Config::from_toml) {
                Ok(c) => {
                    println!("{}: ok ({} devices)", config.display(), c.devices.len());
                    ExitCode::SUCCESS
                }
                Err(e) => devtel_daemon::config_error(&e),
            }
        }
        Command::Simulate { recordings, listen } => {
            let agents = match devtel_collector::sim::Agents::load(&recordings) {
                Ok(a) => std::sync::Arc::new(a),
                Err(e) => return devtel_daemon::config_error(&e.into()),
            };
            devtel_daemon::run_until_signal(|shutdown| async move {
                let socket = tokio::net::UdpSocket::bind(listen)
                    .await
                    .map_err(|e| anyhow::anyhow!("binding {listen}: {e}"))?;
                tracing::info!(%listen, agents = agents.len(), "simulator answering");
                devtel_collector::sim::serve(socket, agents, shutdown).await;
                Ok(())
            })
        }
        Command::Run { config } => match devtel_daemon::load_config(&config, Config::from_toml) {
            Ok(config) => {
                devtel_daemon::run_until_signal(|shutdown| devtel_collector::run(config, shutdown))
            }
            Err(e) => devtel_daemon::config_error(&e),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }
}
