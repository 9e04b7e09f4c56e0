use std::fs;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::util::*;

/// Units of the test: a district office, a department with a sub-office, an IT unit.
const UNITS: &str = r#"
[[units]]
id = "ba"
name = "Bezirksamt"

[[units]]
id = "ba.fb2"
name = "Fachbereich 2 – Bürgerdienste"
parent = "ba"
cost_centre = "2000"

[[units]]
id = "ba.fb2.bsz"
name = "Bürgeramt Mitte"
parent = "ba.fb2"

[[units]]
id = "ba.it"
name = "IT-Service"
parent = "ba"
cost_centre = "9100"

[[prices]]
mono = 0.012
colour = 0.085

[[prices]]
model = "SHARP MX-3570N"
mono = 0.009
colour = 0.061
monthly_fee = 25.0

[dashboard]
refresh = "3s"
"#;

/// (recording = community, device id, unit).
const COPIERS: &[(&str, &str, &str)] = &[
    ("sharp", "sharp-3og", "ba.fb2.bsz"),
    ("ricoh_mpc3002", "ricoh-2og", "ba.fb2.bsz"),
    ("konica_c250i", "konica-eg", "ba.fb2"),
    ("utax", "utax-1og", "ba.it"),
    ("jetdirect_m130nw", "hp-keller", "ba.it"),
    ("epson", "epson-3og", "ba.fb2.bsz"),
];

/// The CSV's rows as cells (the dialect of docs/api.md: BOM, `;`, CRLF, no quoted `;` here).
fn csv_rows(text: &str) -> Vec<Vec<String>> {
    assert!(text.starts_with('\u{feff}'), "byte-order mark");
    text.trim_start_matches('\u{feff}')
        .split("\r\n")
        .filter(|l| !l.is_empty())
        .map(|l| l.split(';').map(str::to_string).collect())
        .collect()
}

fn column(rows: &[Vec<String>], name: &str) -> usize {
    rows[0]
        .iter()
        .position(|h| h == name)
        .unwrap_or_else(|| panic!("column {name} in {:?}", rows[0]))
}

fn sum(rows: &[Vec<String>], kind: &str, col: usize) -> i64 {
    rows.iter()
        .filter(|r| r[0] == kind)
        .map(|r| r[col].replace(',', "").parse::<i64>().unwrap())
        .sum()
}

/// The setup script installs these (Debian's Chromium, the npm packages).
fn browser_tools_present() -> bool {
    std::path::Path::new("/usr/bin/chromium").exists()
        && root()
            .join("tests/browser/node_modules/playwright-core")
            .exists()
}

#[test]
fn the_dashboard_shows_the_api_figures_in_a_real_browser_and_the_report_adds_up() {
    assert!(
        browser_tools_present(),
        "Chromium or tests/browser/node_modules missing: run scripts/setup-test-env.sh"
    );
    let dir = temp_dir("dashboard");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (_broker, broker_port) = broker(&dir);
    let (_sim, sim_port) = rt.block_on(own_simulator_with(&dir, &["--advance-counters", "3"]));
    let http = free_tcp_port();
    let mut gateway = start_gateway_as(&dir, "gateway", broker_port, http, UNITS);

    let spool = dir.join("spool");
    let mut conf = format!(
        "site = \"rathaus\"\ncollector_id = \"rathaus-1\"\nbroker = \"mqtt://127.0.0.1:{broker_port}\"\npoll_interval = \"1s\"\n[spool]\ndir = \"{}\"\n[snmp]\ntimeout = \"500ms\"\nretries = 0\n",
        spool.display()
    );
    for (recording, id, unit) in COPIERS {
        conf.push_str(&format!(
            "[[devices]]\nid = \"{id}\"\nkind = \"copier\"\naddress = \"127.0.0.1\"\nport = {sim_port}\ncommunity = \"{recording}\"\nunit = \"{unit}\"\n"
        ));
    }
    // A copier that never answers (nothing listens there), a phone adapter, a desk switch.
    let dead = free_udp_port();
    conf.push_str(&format!(
        "[[devices]]\nid = \"copier-aus\"\nkind = \"copier\"\naddress = \"127.0.0.1\"\nport = {dead}\ncommunity = \"public\"\nunit = \"ba.it\"\n\
         [[devices]]\nid = \"ata-foyer\"\nkind = \"phone\"\naddress = \"127.0.0.1\"\nport = {sim_port}\ncommunity = \"grandstream-ht_ht814v2\"\nunit = \"ba.fb2.bsz\"\n\
         [[devices]]\nid = \"switch-desks\"\nkind = \"dock\"\naddress = \"127.0.0.1\"\nport = {sim_port}\ncommunity = \"tplink_sg2008\"\nunit = \"ba.it\"\nseats = [\"2\", \"3\", \"4\", \"5\", \"6\", \"7\", \"8\"]\n"
    ));
    let conf_path = dir.join("collector.toml");
    fs::write(&conf_path, conf).unwrap();
    let mut collector = Proc::spawn(
        "collector",
        &dir,
        Command::new(bin("devtel-collector"))
            .args(["run", "--config"])
            .arg(&conf_path),
    );
    // Every device seen, pages counted, then the collector stops: the figures hold still.
    wait_for(
        "all devices with pages this month",
        Duration::from_secs(60),
        || {
            collector.assert_running();
            gateway.assert_running();
            let devices = http_json(http, "/api/devices")?;
            let devices = devices.as_array()?;
            let sharp = devices.iter().find(|d| d["device"] == "sharp-3og")?;
            (devices.len() == COPIERS.len() + 3
                && sharp["pages_month"]["total"].as_i64()? > 0
                && devices
                    .iter()
                    .any(|d| d["device"] == "copier-aus" && d["status"] == "unreachable"))
            .then_some(())
        },
    );
    assert!(
        collector.terminate(Duration::from_secs(10)),
        "collector stops cleanly"
    );
    // What the collector sent last is applied.
    let settled = |http: u16| {
        let mut last = String::new();
        wait_for("figures settled", Duration::from_secs(10), || {
            std::thread::sleep(Duration::from_millis(500));
            let now = http_get(http, "/api/units")?.1;
            (now == std::mem::replace(&mut last, now.clone())).then_some(now)
        })
    };
    settled(http);

    // The browser part.
    let shots = root().join("target/dashboard-screenshots");
    let out = Command::new("node")
        .arg(root().join("tests/browser/dashboard.mjs"))
        .env("DEVTEL_BASE", format!("http://127.0.0.1:{http}"))
        .env("DEVTEL_UNIT", "ba.fb2.bsz")
        .env("DEVTEL_DEVICE", "sharp-3og")
        .env("DEVTEL_SHOTS", &shots)
        .env("DEVTEL_REFRESH_S", "3")
        .output()
        .expect("node (scripts/setup-test-env.sh installs the browser test's tools)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    assert!(
        out.status.success(),
        "browser test failed (screenshots in {}):\n{stdout}\n{stderr}",
        shots.display()
    );
    if std::env::var_os("DEVTEL_UPDATE_SCREENSHOTS").is_some() {
        let docs = root().join("docs/screenshots");
        fs::create_dir_all(&docs).unwrap();
        for name in ["overview.png", "unit.png"] {
            fs::copy(shots.join(name), docs.join(name)).unwrap();
        }
    }

    // The report's CSV: device rows sum to the cost-centre rows and the total, and the total
    // pages equal /api/consumption of the top unit for the same month.
    let units = http_json(http, "/api/units").unwrap();
    let as_of = units[0]["as_of"].as_str().unwrap().to_string();
    let month = &as_of[..7];
    let (status, csv) = http_get(
        http,
        &format!("/api/reports/monthly?month={month}&format=csv"),
    )
    .unwrap();
    assert_eq!(status, 200, "{csv}");
    let rows = csv_rows(&csv);
    assert!(
        rows.iter().all(|r| r.len() == rows[0].len()),
        "every row has every column"
    );
    let (total, mono, colour, cost) = (
        column(&rows, "Seiten gesamt"),
        column(&rows, "Seiten s/w"),
        column(&rows, "Seiten Farbe"),
        column(&rows, "Kosten (EUR)"),
    );
    let gesamt = rows.iter().find(|r| r[0] == "Gesamt").expect("total row");
    let consumption = http_json(
        http,
        &format!("/api/consumption?unit=ba&from={month}-01&to={as_of}"),
    )
    .unwrap();
    for (col, key) in [(total, "total"), (mono, "mono"), (colour, "colour")] {
        let whole: i64 = gesamt[col].parse().unwrap();
        assert_eq!(sum(&rows, "Gerät", col), whole, "{key}: device rows");
        assert_eq!(
            sum(&rows, "Summe Kostenstelle", col),
            whole,
            "{key}: cost centres"
        );
        assert_eq!(
            consumption["pages"][key].as_i64().unwrap(),
            whole,
            "{key}: CSV total against /api/consumption"
        );
    }
    assert!(
        gesamt[total].parse::<i64>().unwrap() > 0,
        "pages were printed"
    );
    let cents = |s: &str| s.replace(',', "").parse::<i64>().unwrap();
    assert_eq!(sum(&rows, "Gerät", cost), cents(&gesamt[cost]));
    // Each cost centre's rows sum to its own total row.
    for centre in ["2000", "9100"] {
        let cc = column(&rows, "Kostenstelle");
        let devices: i64 = rows
            .iter()
            .filter(|r| r[0] == "Gerät" && r[cc] == centre)
            .map(|r| r[total].parse::<i64>().unwrap())
            .sum();
        let row = rows
            .iter()
            .find(|r| r[0] == "Summe Kostenstelle" && r[cc] == centre)
            .unwrap_or_else(|| panic!("cost centre {centre} in {csv}"));
        assert_eq!(
            devices,
            row[total].parse::<i64>().unwrap(),
            "cost centre {centre}"
        );
    }
    // The Bürgeramt has no cost centre of its own: it is billed to its department's.
    let unit_col = column(&rows, "Einheit-ID");
    let cc = column(&rows, "Kostenstelle");
    assert!(rows
        .iter()
        .filter(|r| r[unit_col] == "ba.fb2.bsz")
        .all(|r| r[cc] == "2000"));

    // Reproducible: the same month gives the same report after a restart.
    let report: Value = http_json(http, &format!("/api/reports/monthly?month={month}")).unwrap();
    assert!(
        gateway.terminate(Duration::from_secs(20)),
        "gateway stops cleanly"
    );
    drop(gateway);
    let gateway = start_gateway_as(&dir, "gateway", broker_port, http, UNITS);
    let again: Value = http_json(http, &format!("/api/reports/monthly?month={month}")).unwrap();
    assert_eq!(again, report, "the report after a restart");
    drop(gateway);
}
