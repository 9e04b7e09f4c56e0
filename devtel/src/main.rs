//! `devtel`: devtel in one command. `devtel demo` runs, in this one process, the gateway with
//! its embedded MQTT broker, a simulated site (devtel's own living fleet, or recordings of
//! real devices) and a collector polling it, prints the dashboard's address, and stops
//! everything on Ctrl-C. Nothing needs to be installed but the Rust toolchain.
//!
//! The daemons themselves are `devtel-gateway` and `devtel-collector`; this binary only
//! composes their libraries.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;
use tracing::info;

/// devtel in one command.
#[derive(Debug, Parser)]
#[command(name = "devtel", version, about)]
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
    /// Run the demo: gateway with its embedded broker, a simulated site and a collector, in
    /// this process, until Ctrl-C.
    Demo(Demo),
}

/// `devtel demo`.
#[derive(Debug, clap::Args)]
#[deny(missing_docs)]
struct Demo {
    /// Where the dashboard and the HTTP API listen.
    #[arg(long, default_value = "127.0.0.1:8080")]
    http: SocketAddr,
    /// Where the embedded MQTT broker listens (integrators can subscribe there); port 0
    /// picks a free one.
    #[arg(long, default_value = "127.0.0.1:0")]
    mqtt: SocketAddr,
    /// Serve these recordings (snmprec files) instead of devtel's own fleet; every counter
    /// advances. Default: ../shared/corpus/snmprec when it exists.
    #[arg(long)]
    recordings: Option<PathBuf>,
    /// Simulated minutes per real second for devtel's own fleet (1: a working day in 11 min).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=600))]
    speed: u32,
    /// Seconds between the collector's polls.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=3600))]
    poll_seconds: u64,
    /// Keep the demo's database and spool here (default: a temporary folder, removed at
    /// the end).
    #[arg(long)]
    data: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    cli.log.init();
    match cli.command {
        Command::Demo(demo) => {
            devtel_daemon::run_until_signal(devtel_daemon::Threads::PerCore, |stop| {
                run_demo(demo, stop)
            })
        }
    }
}

/// The demo's administrative units: a district office with five departments.
const UNITS: &str = r#"
[[units]]
id = "ba"
name = "Bezirksamt (Demo)"

[[units]]
id = "buergeramt"
name = "Bürgeramt"
parent = "ba"
cost_centre = "1000"

[[units]]
id = "buergeramt.empfang"
name = "Empfang"
parent = "buergeramt"
cost_centre = "1010"

[[units]]
id = "buergeramt.meldewesen"
name = "Meldewesen"
parent = "buergeramt"
cost_centre = "1020"

[[units]]
id = "jugendamt"
name = "Jugendamt"
parent = "ba"
cost_centre = "2000"

[[units]]
id = "jugendamt.team-1"
name = "Jugendamt Team 1"
parent = "jugendamt"
cost_centre = "2010"

[[units]]
id = "jugendamt.team-2"
name = "Jugendamt Team 2"
parent = "jugendamt"
cost_centre = "2020"

[[units]]
id = "ordnungsamt"
name = "Ordnungsamt"
parent = "ba"
cost_centre = "3000"

[[units]]
id = "finanzen"
name = "Finanzen"
parent = "ba"
cost_centre = "4000"

[[units]]
id = "finanzen.kasse"
name = "Kasse"
parent = "finanzen"
cost_centre = "4010"

[[units]]
id = "bauamt"
name = "Bau- und Wohnungsaufsicht"
parent = "ba"
cost_centre = "5000"

[aggregation]
sla_target_percent = 99.9

[dashboard]
refresh = "5s"

[home_assistant]
discovery = true

[[prices]]
mono = 0.012
colour = 0.085

[[prices]]
model = "RICOH MP C3004"
mono = 0.009
colour = 0.061
monthly_fee = 25.00
"#;

/// A device the collector polls: id (also its community), kind, unit.
struct Polled {
    id: String,
    kind: &'static str,
    unit: String,
}

async fn run_demo(demo: Demo, stop: CancellationToken) -> anyhow::Result<()> {
    let (data, temporary) = match &demo.data {
        Some(dir) => (dir.clone(), false),
        None => {
            let dir = std::env::temp_dir().join(format!("devtel-demo-{}", std::process::id()));
            (dir, true)
        }
    };
    std::fs::create_dir_all(&data).with_context(|| format!("creating {}", data.display()))?;
    let result = run_in(&demo, &data, stop).await;
    if temporary {
        let _ = std::fs::remove_dir_all(&data);
    }
    result
}

async fn run_in(demo: &Demo, data: &Path, stop: CancellationToken) -> anyhow::Result<()> {
    // The simulated site.
    let corpus = Path::new("../shared/corpus/snmprec");
    let recordings = demo
        .recordings
        .clone()
        .or_else(|| corpus.is_dir().then(|| corpus.to_path_buf()));
    let (agents, devices) = match &recordings {
        Some(dir) => {
            let mut agents = devtel_collector::sim::Agents::load(dir)
                .with_context(|| format!("loading the recordings in {}", dir.display()))?;
            agents.advance_counters(3);
            let devices = recorded_devices(dir, &agents);
            (agents, devices)
        }
        None => {
            let fleet = devtel_collector::fleet::demo_fleet();
            let devices = fleet
                .iter()
                .map(|s| Polled {
                    id: s.id.clone(),
                    kind: s.kind,
                    unit: s.unit.clone(),
                })
                .collect();
            let mut agents = devtel_collector::sim::Agents::default();
            let clock = devtel_collector::fleet::SimClock {
                speed: demo.speed,
                ..Default::default()
            };
            agents.add_fleet(fleet, clock);
            (agents, devices)
        }
    };
    anyhow::ensure!(!devices.is_empty(), "no device to simulate");
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .context("binding the simulator")?;
    let sim_port = socket.local_addr()?.port();
    let sim = tokio::spawn(devtel_collector::sim::serve(
        socket,
        Arc::new(agents),
        stop.clone(),
    ));

    // The gateway with its broker.
    let mqtt = if demo.mqtt.port() == 0 {
        let probe = std::net::TcpListener::bind(demo.mqtt).context("finding a free MQTT port")?;
        probe.local_addr()?
    } else {
        demo.mqtt
    };
    let recorded_unit = if recordings.is_some() {
        "[[units]]\nid = \"recorded\"\nname = \"Recorded devices\"\nparent = \"ba\"\ncost_centre = \"9000\"\n"
    } else {
        ""
    };
    let gateway_toml = format!(
        "broker = \"embedded\"\nclient_id = \"devtel-demo-gateway\"\nhttp_listen = \"{}\"\n{recorded_unit}{UNITS}\n[embedded_broker]\nlisten = \"{mqtt}\"\n[store]\npath = \"{}\"\n",
        demo.http,
        toml_path(&data.join("gateway.sqlite")),
    );
    let gateway_config = devtel_gateway::config::Config::from_toml(&gateway_toml)
        .context("the demo's gateway configuration")?;
    let gateway = tokio::spawn(devtel_gateway::run(gateway_config, stop.clone()));

    // The collector.
    let mut collector_toml = format!(
        "site = \"rathaus\"\ncollector_id = \"demo-collector\"\nbroker = \"mqtt://{mqtt}\"\npoll_interval = \"{}s\"\n[mqtt]\nreconnect_max = \"2s\"\n[spool]\ndir = \"{}\"\n[snmp]\ntimeout = \"1s\"\nretries = 1\n",
        demo.poll_seconds,
        toml_path(&data.join("spool")),
    );
    for d in &devices {
        collector_toml.push_str(&format!(
            "[[devices]]\nid = \"{}\"\nkind = \"{}\"\naddress = \"127.0.0.1\"\nport = {sim_port}\ncommunity = \"{}\"\nunit = \"{}\"\n",
            d.id, d.kind, d.id, d.unit
        ));
    }
    let collector_config = devtel_collector::config::Config::from_toml(&collector_toml)
        .context("the demo's collector configuration")?;
    let collector = tokio::spawn(devtel_collector::run(collector_config, stop.clone()));

    let source = match &recordings {
        Some(dir) => format!("{} recorded devices from {}", devices.len(), dir.display()),
        None => format!(
            "devtel's simulated fleet of {} devices, {} simulated minute(s) per second",
            devices.len(),
            demo.speed
        ),
    };
    info!(%source, broker = %mqtt, "demo started");
    println!();
    println!("  devtel demo: {source}");
    println!("  dashboard    http://{}/", demo.http);
    println!("  API          http://{}/api/units", demo.http);
    println!("  MQTT         mqtt://{mqtt} (retained documents under devtel/v1/units/#)");
    println!("  stop         Ctrl-C");
    println!();

    // Whichever part ends first (Ctrl-C, or a part failing) stops the others.
    let gateway = async {
        let r = gateway.await;
        stop.cancel();
        r
    };
    let collector = async {
        let r = collector.await;
        stop.cancel();
        r
    };
    let (g, c, s) = tokio::join!(gateway, collector, sim);
    s.context("the simulator task")?;
    c.context("the collector task")?.context("the collector")?;
    g.context("the gateway task")?.context("the gateway")?;
    println!("devtel demo stopped.");
    Ok(())
}

/// A path as a TOML basic string's content.
fn toml_path(p: &Path) -> String {
    p.display()
        .to_string()
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
}

/// The recordings the collector can poll, with the kind their varbinds show; devices of no
/// known kind are left out (logged).
fn recorded_devices(dir: &Path, agents: &devtel_collector::sim::Agents) -> Vec<Polled> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.strip_suffix(".snmprec").map(str::to_string)
        })
        // `name@context` files are a device's further contexts, not devices.
        .filter(|n| !n.contains('@'))
        .collect();
    names.sort();
    for name in names {
        let Some(vb) = agents.recording(&name) else {
            continue;
        };
        let probed = devtel_collector::probe::classify(vb);
        let (kind, description) = devtel_collector::discover::describe(&probed);
        let kind = match kind {
            "copier" => "copier",
            "phone" => "phone",
            "dock" => "dock",
            _ => {
                info!(recording = %name, %description, "recording of no known kind: not polled");
                continue;
            }
        };
        // The recording's name is the device id (and its community): a valid id only.
        let valid = name.len() <= 64
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b));
        if !valid {
            info!(recording = %name, "recording name is not a device id: not polled");
            continue;
        }
        out.push(Polled {
            id: name,
            kind,
            unit: "recorded".into(),
        });
    }
    out
}
