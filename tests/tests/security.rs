//! Sites cannot speak for each other: a Mosquitto with the access files `devtel-gateway
//! broker-access` writes (one user per site) refuses a collector publishing under another
//! site, and when the broker is misconfigured to let it through, the gateway refuses it; an
//! integrator's user reads the documents and nothing else.

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::delivery::{start_collector, COPIERS};
use crate::util::*;

/// A collector `name` speaking as `(site, collector id, broker user)`.
fn collector_conf(
    dir: &Path,
    name: &str,
    (site, collector, user): (&str, &str, &str),
    broker: u16,
    sim: u16,
    device: &str,
) -> std::path::PathBuf {
    let (recording, _) = COPIERS[0];
    let conf = format!(
        "site = \"{site}\"\ncollector_id = \"{collector}\"\nbroker = \"mqtt://127.0.0.1:{broker}\"\npoll_interval = \"1s\"\n[mqtt]\nusername = \"{user}\"\npassword_file = \"{}\"\nreconnect_max = \"2s\"\n[spool]\ndir = \"{}\"\n[snmp]\ntimeout = \"1s\"\nretries = 1\n[[devices]]\nid = \"{device}\"\naddress = \"127.0.0.1\"\nport = {sim}\ncommunity = \"{recording}\"\nunit = \"ba.it\"\n",
        dir.join("access/passwords").join(user).display(),
        dir.join(format!("{name}-spool")).display()
    );
    let path = dir.join(format!("{name}.toml"));
    fs::write(&path, conf).unwrap();
    path
}

fn broker(dir: &Path, port: u16, acl_rewrite: Option<(&str, &str)>) -> Proc {
    let mut access = fs::read_to_string(dir.join("access/mosquitto.conf")).unwrap();
    if let Some((from, to)) = acl_rewrite {
        // A broker misconfigured by hand: its ACL lets every site write everywhere.
        let acl = fs::read_to_string(dir.join("access/acl")).unwrap();
        assert!(acl.contains(from), "{acl}");
        let broken = dir.join("access/acl-broken");
        fs::write(&broken, acl.replace(from, to)).unwrap();
        access = access.replace(
            dir.join("access/acl").to_str().unwrap(),
            broken.to_str().unwrap(),
        );
    }
    mosquitto_with(
        dir,
        "mosquitto",
        &format!("listener {port} 127.0.0.1\npersistence false\n{access}"),
        port,
    )
}

/// What an integrator's client, as `user`, hears in `listen` after subscribing to the
/// documents and to all telemetry, having first published `publish` (topic, retained body)
/// if given: (topic, payload) of every message.
async fn integrator(
    port: u16,
    user: &str,
    password: &str,
    publish: Option<(&str, &str)>,
    listen: Duration,
) -> Vec<(String, Vec<u8>)> {
    use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
    let mut options = MqttOptions::new(format!("e2e-{user}"), "127.0.0.1", port);
    options.set_credentials(user, password);
    options.set_max_packet_size(1 << 20, 1 << 20);
    let (client, mut eventloop) = AsyncClient::new(options, 16);
    if let Some((topic, body)) = publish {
        client
            .publish(topic, QoS::AtLeastOnce, true, body.as_bytes().to_vec())
            .await
            .unwrap();
    }
    for filter in [
        devtel_protocol::topic::UNITS_FILTER,
        "devtel/v1/telemetry/#",
    ] {
        client.subscribe(filter, QoS::AtLeastOnce).await.unwrap();
    }
    let mut heard = Vec::new();
    let until = tokio::time::Instant::now() + listen;
    while let Ok(event) = tokio::time::timeout_at(until, eventloop.poll()).await {
        match event {
            Ok(Event::Incoming(Packet::Publish(p))) => heard.push((p.topic, p.payload.to_vec())),
            Ok(Event::Incoming(Packet::ConnAck(c))) => {
                assert_eq!(c.code, rumqttc::ConnectReturnCode::Success, "{user}")
            }
            Ok(_) => {}
            Err(e) => panic!("{user}: {e}"),
        }
    }
    heard
}

fn received(http: u16) -> u64 {
    http_json(http, "/healthz")
        .and_then(|h| h["ingest"]["received"].as_u64())
        .unwrap_or(0)
}

/// Writes the access files for sites a (collector ca) and b (cb) and integrator erp with
/// `broker-access`, which prints no password; returns the `[[sites]]` TOML.
fn write_access(dir: &Path) -> &'static str {
    let sites = "[[sites]]\nid = \"a\"\ncollectors = [\"ca\"]\n[[sites]]\nid = \"b\"\ncollectors = [\"cb\"]\n";
    fs::write(dir.join("access.toml"), sites).unwrap();
    let made = Command::new(bin("devtel-gateway"))
        .args(["broker-access", "--config"])
        .arg(dir.join("access.toml"))
        .arg("--out")
        .arg(dir.join("access"))
        .args(["--integrator", "erp"])
        .output()
        .unwrap();
    assert!(made.status.success(), "{made:?}");
    let printed = String::from_utf8_lossy(&made.stdout);
    for user in ["devtel-gateway", "a", "b", "erp"] {
        let password = fs::read_to_string(dir.join("access/passwords").join(user)).unwrap();
        assert!(!printed.contains(password.trim()), "no password printed");
    }
    sites
}

/// The integrator erp, while site a publishes: the unit's retained document and no
/// telemetry; what it publishes itself (a forged document) reaches nobody. Returns what it
/// heard.
fn integrator_reads_documents_only(
    rt: &tokio::runtime::Runtime,
    dir: &Path,
    port: u16,
) -> Vec<(String, Vec<u8>)> {
    let erp = fs::read_to_string(dir.join("access/passwords/erp")).unwrap();
    let forged = r#"{"unit":"ba.it","forged":true}"#;
    let heard = rt.block_on(integrator(
        port,
        "erp",
        erp.trim(),
        Some(("devtel/v1/units/ba.it", forged)),
        Duration::from_secs(4),
    ));
    let topics: Vec<&str> = heard.iter().map(|(t, _)| t.as_str()).collect();
    assert!(topics.contains(&"devtel/v1/units/ba.it"), "{topics:?}");
    assert!(
        topics.iter().all(|t| t.starts_with("devtel/v1/units/")),
        "an integrator reads no telemetry: {topics:?}"
    );
    assert!(
        heard.iter().all(|(_, body)| body != forged.as_bytes()),
        "the broker took the integrator's forged document"
    );
    heard
}

/// The gateway's received count once it stopped changing (a collector's last messages,
/// its offline status among them, have arrived).
fn settled(http: u16) -> u64 {
    let mut before = received(http);
    loop {
        std::thread::sleep(Duration::from_millis(1500));
        let now = received(http);
        if now == before {
            return now;
        }
        before = now;
    }
}

#[test]
fn a_site_cannot_publish_for_another_through_the_broker_nor_past_the_gateway() {
    let dir = temp_dir("acl");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let sites = write_access(&dir);

    let port = free_tcp_port();
    let mut mosquitto = broker(&dir, port, None);
    let (_sim, sim) = rt.block_on(own_simulator(&dir));
    let http = free_tcp_port();
    let gateway_mqtt = format!(
        "[mqtt]\nusername = \"devtel-gateway\"\npassword_file = \"{}\"\nreconnect_max = \"1s\"\n{sites}",
        dir.join("access/passwords/devtel-gateway").display()
    );
    let mut gateway = start_gateway_as(&dir, "gateway", port, http, &gateway_mqtt);

    // Site a's collector, with a's user, is heard.
    let conf = collector_conf(&dir, "site-a", ("a", "ca", "a"), port, sim, "a-copier");
    let mut a = start_collector(&dir, "site-a", &conf);
    wait_for("site a's copier", Duration::from_secs(30), || {
        a.assert_running();
        gateway.assert_running();
        http_json(http, "/api/devices/a-copier").filter(|d| d["kind"] == "copier")
    });

    // The integrator, while site a publishes every second: the unit's document, retained,
    // and no telemetry; what it publishes itself (a forged document) reaches nobody.
    let heard = integrator_reads_documents_only(&rt, &dir, port);
    let doc: serde_json::Value = heard
        .iter()
        .find(|(t, _)| t == "devtel/v1/units/ba.it")
        .map(|(_, body)| serde_json::from_slice(body).unwrap())
        .unwrap();
    assert_eq!(doc["devices_total"], 1, "{doc}");
    assert!(a.terminate(Duration::from_secs(10)), "{}", a.log());

    // The same collector set up for site b, still with a's user: the broker refuses its
    // publications, the gateway hears nothing of it. (First a's last messages, its offline
    // status among them, settle.)
    let before = settled(http);
    let conf = collector_conf(&dir, "rogue", ("b", "ca", "a"), port, sim, "b-copier");
    let mut rogue = start_collector(&dir, "rogue", &conf);
    std::thread::sleep(Duration::from_secs(6));
    rogue.assert_running();
    let health = http_json(http, "/healthz").unwrap();
    assert_eq!(received(http), before, "{health}");
    assert!(
        http_json(http, "/api/devices/b-copier").is_none(),
        "the broker let the rogue through"
    );

    // A broker misconfigured to let every site write every site's telemetry: the gateway
    // refuses the rogue itself (collector ca belongs to site a), counted, nothing applied.
    drop(mosquitto);
    mosquitto = broker(
        &dir,
        port,
        Some((
            "pattern write devtel/v1/telemetry/%u/#",
            "pattern write devtel/v1/telemetry/#",
        )),
    );
    let health = wait_for(
        "the rogue refused by the gateway",
        Duration::from_secs(40),
        || {
            rogue.assert_running();
            gateway.assert_running();
            http_json(http, "/healthz").filter(|h| {
                h["ingest"]["rejected"]["foreign_collector"]
                    .as_u64()
                    .unwrap_or(0)
                    >= 3
            })
        },
    );
    assert!(
        http_json(http, "/api/devices/b-copier").is_none(),
        "{health}"
    );
    let rejected = health["ingest"]["rejected"].as_object().unwrap();
    assert_eq!(rejected.len(), 1, "only foreign_collector: {health}");
    let devices = http_json(http, "/api/devices").unwrap();
    assert_eq!(devices.as_array().map(Vec::len), Some(1), "{devices}");
    drop(mosquitto);
}

/// A gateway listening beyond loopback does not start without a token, and with one refuses
/// every request without it but `/healthz`.
#[test]
fn a_gateway_beyond_loopback_needs_its_token() {
    let dir = temp_dir("token");
    let (_broker, broker) = mosquitto(&dir);
    let http = free_tcp_port();
    let conf = |token: &str| {
        let path = dir.join("gateway.toml");
        fs::write(
            &path,
            format!(
                "broker = \"mqtt://127.0.0.1:{broker}\"\nhttp_listen = \"0.0.0.0:{http}\"\n[store]\npath = \"{}\"\n{token}",
                dir.join("gateway.sqlite").display()
            ),
        )
        .unwrap();
        path
    };
    let open = conf("");
    let checked = Command::new(bin("devtel-gateway"))
        .args(["check-config", "--config"])
        .arg(&open)
        .env_remove("DEVTEL_GATEWAY_TOKEN")
        .output()
        .unwrap();
    assert!(!checked.status.success());
    let stderr = String::from_utf8_lossy(&checked.stderr);
    assert!(stderr.contains("http.token_file"), "{stderr}");

    let token = "e2e-token-4f1c9a7d2b";
    fs::write(dir.join("token"), format!("{token}\n")).unwrap();
    let locked = conf(&format!(
        "[http]\ntoken_file = \"{}\"\n",
        dir.join("token").display()
    ));
    let mut gateway = Proc::spawn(
        "gateway",
        &dir,
        Command::new(bin("devtel-gateway"))
            .args(["run", "--config"])
            .arg(&locked)
            .env_remove("DEVTEL_GATEWAY_TOKEN"),
    );
    wait_for("the gateway", Duration::from_secs(20), || {
        gateway.assert_running();
        http_json(http, "/healthz").filter(|h| h["mqtt_connected"] == true)
    });
    for path in [
        "/api/units",
        "/api/devices",
        "/metrics",
        "/api/reports/monthly",
    ] {
        let (status, body) = http_get(http, path).unwrap();
        assert_eq!(status, 401, "{path}: {body}");
        assert!(body.contains("unauthorized"), "{body}");
        let (status, _) = http_get_with(
            http,
            path,
            &[("Authorization", "Bearer wrong-token-000000")],
        )
        .unwrap();
        assert_eq!(status, 401, "{path}");
        let bearer = format!("Bearer {token}");
        let (status, body) = http_get_with(http, path, &[("Authorization", &bearer)]).unwrap();
        assert_eq!(status, 200, "{path}: {body}");
    }
    let (status, _) = http_get(http, "/").unwrap();
    assert_eq!(status, 303, "the dashboard sends a browser to sign in");
    assert!(
        !gateway.log().contains(token),
        "the token is never logged:\n{}",
        gateway.log()
    );
}

/// The embedded broker holds each site to its own topics as the Mosquitto ACL does: with the
/// password file `broker-access` writes, site a's collector is heard, the same collector set
/// up for site b with a's user is refused by the broker, a wrong password is refused, an
/// integrator reads the retained documents and no telemetry and cannot forge one; and a
/// collector comes in over the broker's TLS listener.
#[test]
fn the_embedded_broker_holds_each_site_to_its_own_topics() {
    let dir = temp_dir("embedded-acl");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let sites = write_access(&dir);
    crate::delivery::make_pki(&dir);

    let port = embedded_broker_port();
    let tls = free_tcp_port();
    let (_sim, sim) = rt.block_on(own_simulator(&dir));
    let http = free_tcp_port();
    let d = dir.display();
    let top = format!(
        "{sites}[embedded_broker]\nlisten = \"127.0.0.1:{port}\"\ntls_listen = \"127.0.0.1:{tls}\"\ntls_cert_file = \"{d}/broker.pem\"\ntls_key_file = \"{d}/broker.key\"\npasswd_file = \"{d}/access/passwd\"\n"
    );
    let mut gateway = start_gateway_full(&dir, "gateway", port, http, &top, "", &[]);

    // Site a's collector, with a's user, is heard.
    let conf = collector_conf(&dir, "site-a", ("a", "ca", "a"), port, sim, "a-copier");
    let mut a = start_collector(&dir, "site-a", &conf);
    wait_for("site a's copier", Duration::from_secs(30), || {
        a.assert_running();
        gateway.assert_running();
        http_json(http, "/api/devices/a-copier").filter(|d| d["kind"] == "copier")
    });

    // The integrator: the retained unit document, no telemetry, its forgery taken by nobody.
    integrator_reads_documents_only(&rt, &dir, port);
    assert!(a.terminate(Duration::from_secs(10)), "{}", a.log());

    // Site b's collector with a's user: refused by the broker, nothing reaches the gateway.
    let before = settled(http);
    let conf = collector_conf(&dir, "rogue", ("b", "ca", "a"), port, sim, "b-copier");
    let mut rogue = start_collector(&dir, "rogue", &conf);
    std::thread::sleep(Duration::from_secs(6));
    rogue.assert_running();
    assert_eq!(received(http), before, "{}", gateway.log());
    assert!(http_json(http, "/api/devices/b-copier").is_none());
    drop(rogue);
    let metrics = http_get(http, "/metrics").unwrap().1;
    let refused = metric(
        &metrics,
        "devtel_gateway_broker_refused_total{what=\"publish\"}",
    );
    assert!(refused >= 1.0, "{metrics}");

    // A wrong password is refused, with the collector's hint.
    fs::write(dir.join("access/passwords/wrong"), "not-the-password\n").unwrap();
    let conf = collector_conf(
        &dir,
        "bad-login",
        ("b", "cb", "wrong"),
        port,
        sim,
        "b-copier",
    );
    let conf_text = fs::read_to_string(&conf)
        .unwrap()
        .replace("username = \"wrong\"", "username = \"b\"");
    fs::write(&conf, conf_text).unwrap();
    let mut login = start_collector(&dir, "bad-login", &conf);
    wait_for("the login error", Duration::from_secs(20), || {
        login.assert_running();
        login
            .log()
            .contains("the broker refused mqtt.username / password")
            .then_some(())
    });
    drop(login);

    // Site b over TLS with its own user: heard.
    let conf = collector_conf(&dir, "site-b", ("b", "cb", "b"), port, sim, "b-copier");
    let text = fs::read_to_string(&conf)
        .unwrap()
        .replace(
            &format!("mqtt://127.0.0.1:{port}"),
            &format!("mqtts://127.0.0.1:{tls}"),
        )
        .replace("[mqtt]\n", &format!("[mqtt]\nca_file = \"{d}/ca.pem\"\n"));
    fs::write(&conf, text).unwrap();
    let mut b = start_collector(&dir, "site-b", &conf);
    wait_for("site b's copier over TLS", Duration::from_secs(30), || {
        b.assert_running();
        gateway.assert_running();
        http_json(http, "/api/devices/b-copier").filter(|d| d["kind"] == "copier")
    });
    let metrics = http_get(http, "/metrics").unwrap().1;
    assert!(
        metric(
            &metrics,
            "devtel_gateway_broker_refused_total{what=\"connect\"}"
        ) >= 1.0
    );
    assert!(
        gateway.terminate(Duration::from_secs(15)),
        "{}",
        gateway.log()
    );
}

/// The value of the metric line that starts with `name`.
fn metric(metrics: &str, name: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in\n{metrics}"))
}
