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

fn main() -> ExitCode {
    let cli = Cli::parse();
    devtel_daemon::init_tracing(cli.verbose);
    match cli.command {
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
