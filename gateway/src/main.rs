//! `devtel-gateway`: parse the command line, load the config, run. Everything else lives in
//! the library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use devtel_gateway::config::{Config, EXAMPLE};

/// Aggregates devtel telemetry per administrative unit; serves MQTT documents and an HTTP API.
#[derive(Debug, Parser)]
#[command(name = "devtel-gateway", version, about)]
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
    /// Run the gateway until stopped (SIGINT/SIGTERM).
    Run {
        /// Configuration file (TOML).
        #[arg(short, long, env = "DEVTEL_GATEWAY_CONFIG")]
        config: PathBuf,
    },
    /// Validate a configuration file and exit.
    CheckConfig {
        /// Configuration file (TOML).
        #[arg(short, long)]
        config: PathBuf,
    },
    /// Copy the store to a new file while the gateway runs (an online backup, checked).
    /// To restore: stop the gateway, put the copy in place of the database file (removing
    /// its -wal and -shm files), start it.
    Backup {
        /// Configuration file (TOML): the store to copy.
        #[arg(short, long, env = "DEVTEL_GATEWAY_CONFIG")]
        config: PathBuf,
        /// The new file (never overwritten).
        to: PathBuf,
    },
    /// Write Mosquitto's access files for the configured [[sites]]: one user per site, each
    /// allowed its own topics only, the gateway's user, and read-only users for integrators
    /// (--integrator NAME: the unit and device documents). Writes DIR/acl, DIR/passwd
    /// (hashes), DIR/mosquitto.conf (the lines to include) and DIR/passwords/{user} (each
    /// password, mode 0600: copy a site's to its collector's [mqtt] password_file). Existing
    /// passwords are kept; no password is printed.
    BrokerAccess {
        /// Configuration file (TOML) with the [[sites]].
        #[arg(short, long, env = "DEVTEL_GATEWAY_CONFIG")]
        config: PathBuf,
        /// Directory for the files.
        #[arg(long)]
        out: PathBuf,
        /// The gateway's broker user name.
        #[arg(long, default_value = devtel_gateway::broker_access::DEFAULT_GATEWAY_USER)]
        gateway_user: String,
        /// A read-only user for an integrator (repeatable): it may subscribe to
        /// devtel/v1/units/# and devtel/v1/devices/#, nothing else.
        #[arg(long = "integrator", value_name = "NAME")]
        integrators: Vec<String>,
    },
    /// Print an example configuration with every key documented.
    PrintExampleConfig,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    cli.log.init();
    match cli.command {
        Command::PrintExampleConfig => {
            print!("{EXAMPLE}");
            ExitCode::SUCCESS
        }
        Command::CheckConfig { config } => {
            match devtel_daemon::load_config(&config, Config::from_toml) {
                Ok(c) => {
                    let units = &c.core.units;
                    let top = units.defs().filter(|d| d.parent.is_none()).count();
                    println!("{}: ok", config.display());
                    println!(
                        "  broker      {} (client id {})",
                        c.mqtt.describe(),
                        c.client_id
                    );
                    println!("  http        {}", c.http_listen);
                    match &c.postgres {
                        None => println!("  store       {}", c.store_path.display()),
                        Some(p) => println!("  store       {} (PostgreSQL)", p.shown),
                    }
                    if let Some(group) = &c.group {
                        println!("  cluster     replica {} of group {group}: telemetry from $share/{group}/…, the lease holder publishes", c.client_id);
                    }
                    println!("  time zone   {}", c.core.ledger.calendar.tz_name());
                    println!(
                        "  sla target  {} % over {} days",
                        c.core.sla_target_percent, c.core.availability_days
                    );
                    if units.is_configured() {
                        println!(
                            "  units       {} ({top} top-level); others count as \"unassigned\"",
                            units.defs().count()
                        );
                    } else {
                        println!("  units       none configured: every unit a collector sends is a top-level unit");
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => devtel_daemon::config_error(&e),
            }
        }
        Command::Backup { config, to } => {
            match devtel_daemon::load_config(&config, Config::from_toml) {
                Ok(c) if c.postgres.is_some() => {
                    eprintln!("error: the store is on PostgreSQL: back it up with the server's own tools (pg_dump, or its streaming replication and base backups; see the README)");
                    ExitCode::FAILURE
                }
                Ok(c) => match devtel_gateway::store::backup(&c.store_path, &to) {
                    Ok(b) => {
                        println!(
                            "{} -> {}: {} envelopes, {} bytes, integrity ok",
                            c.store_path.display(),
                            to.display(),
                            b.envelopes,
                            b.bytes
                        );
                        ExitCode::SUCCESS
                    }
                    Err(e) => {
                        eprintln!("error: {e}");
                        ExitCode::FAILURE
                    }
                },
                Err(e) => devtel_daemon::config_error(&e),
            }
        }
        Command::BrokerAccess {
            config,
            out,
            gateway_user,
            integrators,
        } => match devtel_daemon::load_config(&config, Config::from_toml) {
            Ok(c) => {
                let sites: Vec<String> = c.sites.iter().map(|s| s.id.clone()).collect();
                match devtel_gateway::broker_access::write(
                    &out,
                    &sites,
                    &gateway_user,
                    &integrators,
                    c.home_assistant.as_deref(),
                ) {
                    Ok(w) => {
                        println!(
                            "{}: acl, passwd, mosquitto.conf; passwords/ made for {:?}, kept for {:?}",
                            out.display(),
                            w.new_users,
                            w.kept_users
                        );
                        ExitCode::SUCCESS
                    }
                    Err(e) => {
                        eprintln!("error: {e}");
                        ExitCode::FAILURE
                    }
                }
            }
            Err(e) => devtel_daemon::config_error(&e),
        },
        Command::Run { config } => match devtel_daemon::load_config(&config, Config::from_toml) {
            Ok(config) => {
                devtel_daemon::run_until_signal(devtel_daemon::Threads::PerCore, |shutdown| {
                    devtel_gateway::run(config, shutdown)
                })
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
