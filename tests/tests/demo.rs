//! The README's first command: `devtel demo` serves a dashboard that lists every simulated
//! device within 30 s with no broker installed (it runs with an empty PATH, from a folder
//! with no recordings beside it), shows them living (pages grow), and stops cleanly.

use std::collections::BTreeSet;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::util::*;

fn demo(dir: &std::path::Path, http: u16, extra: &[&str]) -> Proc {
    let empty = dir.join("empty-path");
    std::fs::create_dir_all(&empty).unwrap();
    let mut command = Command::new(bin("devtel"));
    command
        .args([
            "demo",
            "--http",
            &format!("127.0.0.1:{http}"),
            "--poll-seconds",
            "2",
        ])
        .args(extra)
        .current_dir(dir)
        // No broker, nothing at all on PATH: the demo needs none.
        .env("PATH", &empty)
        .env_remove("DEVTEL_TEST_BROKER");
    Proc::spawn("demo", dir, &mut command)
}

fn total_pages(http: u16, device: &str) -> Option<u64> {
    http_json(http, &format!("/api/devices/{device}"))?["page_count"].as_u64()
}

#[test]
fn the_demo_serves_every_simulated_device_within_30_s_with_no_broker_installed() {
    let dir = temp_dir("demo");
    let http = free_tcp_port();
    let started = Instant::now();
    let mut demo = demo(&dir, http, &["--speed", "10"]);
    let fleet: BTreeSet<String> = devtel_collector::fleet::demo_fleet()
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert!(fleet.len() >= 10);
    wait_for("every simulated device", Duration::from_secs(30), || {
        demo.assert_running();
        let devices = http_json(http, "/api/devices")?;
        let ids: BTreeSet<String> = devices
            .as_array()?
            .iter()
            .filter_map(|d| d["device"].as_str().map(str::to_string))
            .collect();
        (ids == fleet).then_some(())
    });
    eprintln!("all {} devices after {:?}", fleet.len(), started.elapsed());
    // The dashboard's unit pages list them all.
    let units = http_json(http, "/api/units").unwrap();
    let mut listed = String::new();
    for u in units.as_array().unwrap() {
        let id = u["unit"].as_str().unwrap();
        let (status, page) = http_get(http, &format!("/units/{id}")).unwrap();
        assert_eq!(status, 200, "{id}");
        listed.push_str(&page);
    }
    for id in &fleet {
        assert!(listed.contains(id.as_str()), "{id} on no unit page");
    }
    let (status, overview) = http_get(http, "/").unwrap();
    assert_eq!(status, 200);
    assert!(overview.contains("Bezirksamt (Demo)"), "{overview}");
    // Life: at ten simulated minutes a second, a working morning prints pages.
    let device = "mfp-rathaus-eg";
    let before = wait_for("a first count", Duration::from_secs(10), || {
        total_pages(http, device)
    });
    let after = wait_for("pages printed", Duration::from_secs(20), || {
        total_pages(http, device).filter(|p| *p > before)
    });
    assert!(after > before);
    assert!(demo.terminate(Duration::from_secs(20)), "{}", demo.log());
    let out = demo.log();
    assert!(out.contains("devtel demo stopped"), "{out}");
    assert!(out.contains(&format!("http://127.0.0.1:{http}/")), "{out}");
}

/// `devtel demo --recordings DIR` serves the recorded devices, each polled as the kind its
/// recording shows, with every counter advancing: the HP M130nw answers its mono pages as an
/// INTEGER, so its mono figure grows only if INTEGER vendor counters advance too.
#[test]
fn the_demo_on_recordings_polls_each_device_and_advances_integer_counters() {
    let dir = temp_dir("demo-recorded");
    let http = free_tcp_port();
    let recordings = corpus().join("snmprec");
    let mut demo = demo(&dir, http, &["--recordings", recordings.to_str().unwrap()]);
    let recorded = std::fs::read_dir(&recordings)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".snmprec") && !n.contains('@'))
        .count();
    let devices = wait_for("the recorded devices", Duration::from_secs(30), || {
        demo.assert_running();
        let d = http_json(http, "/api/devices")?;
        (d.as_array()?.len() >= recorded).then_some(d)
    });
    let kinds: BTreeSet<&str> = devices
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|d| d["kind"].as_str())
        .collect();
    assert_eq!(
        kinds,
        BTreeSet::from(["copier", "dock", "phone"]),
        "{devices}"
    );
    let mono = wait_for("the HP's mono pages", Duration::from_secs(30), || {
        demo.assert_running();
        let d = http_json(http, "/api/devices/jetdirect_m130nw")?;
        d["pages_today"]["mono"].as_u64().filter(|m| *m > 0)
    });
    assert!(mono > 0);
    assert!(demo.terminate(Duration::from_secs(20)), "{}", demo.log());
}

/// A client on the demo's broker subscribed to `filter`.
async fn subscriber(
    port: u16,
    id: &str,
    filter: &str,
) -> (rumqttc::AsyncClient, rumqttc::EventLoop) {
    let mut options = rumqttc::MqttOptions::new(id, "127.0.0.1", port);
    options.set_max_packet_size(1 << 20, 1 << 20);
    let (client, eventloop) = rumqttc::AsyncClient::new(options, 16);
    client
        .subscribe(filter, rumqttc::QoS::AtLeastOnce)
        .await
        .unwrap();
    (client, eventloop)
}

/// Events reach an integrator on the demo's embedded broker: at 20 simulated minutes a
/// second, the printer that is switched off from 14:00 to 15:30 every working day (21 to
/// 25.5 s after the start) is reported unreachable and back.
#[test]
fn the_demo_publishes_events_when_the_printer_goes_off_and_comes_back() {
    use rumqttc::{Event, Packet};
    let dir = temp_dir("demo-events");
    let (http, mqtt) = (free_tcp_port(), free_tcp_port());
    let mqtt_arg = format!("127.0.0.1:{mqtt}");
    let mut demo = demo(&dir, http, &["--speed", "20", "--mqtt", &mqtt_arg]);
    wait_for("the demo's API", Duration::from_secs(30), || {
        demo.assert_running();
        http_json(http, "/api/devices")
    });
    let rt = tokio::runtime::Runtime::new().unwrap();
    let heard: Vec<serde_json::Value> = rt.block_on(async {
        let (_client, mut eventloop) = subscriber(mqtt, "e2e-events", "devtel/v1/events/#").await;
        let mut heard = Vec::new();
        let until = tokio::time::Instant::now() + Duration::from_secs(60);
        while let Ok(event) = tokio::time::timeout_at(until, eventloop.poll()).await {
            if let Ok(Event::Incoming(Packet::Publish(p))) = event {
                assert!(!p.retain, "events are not retained");
                let e: serde_json::Value = serde_json::from_slice(&p.payload).unwrap();
                assert_eq!(
                    p.topic,
                    format!(
                        "devtel/v1/events/{}/{}",
                        e["unit"].as_str().unwrap(),
                        e["device"].as_str().unwrap()
                    )
                );
                let back =
                    e["event"] == "device_reachable" && e["device"] == "printer-jugendamt-3og";
                heard.push(e);
                if back {
                    break;
                }
            }
        }
        heard
    });
    let of_printer: Vec<&str> = heard
        .iter()
        .filter(|e| e["device"] == "printer-jugendamt-3og")
        .filter_map(|e| e["event"].as_str())
        .filter(|e| e.starts_with("device_"))
        .collect();
    assert_eq!(
        of_printer,
        ["device_unreachable", "device_reachable"],
        "{heard:?}"
    );
    let off = heard
        .iter()
        .find(|e| e["event"] == "device_unreachable")
        .unwrap();
    assert_eq!(off["unit"], "jugendamt.team-2");
    assert_eq!(off["kind"], "copier");
    assert!(off["cause"].is_string(), "{off}");
    // Home Assistant discovery (on in the demo): every device has its retained configs,
    // reading the device's document, available through the site's collector status.
    let discovery: Vec<(String, bool, serde_json::Value)> = rt.block_on(async {
        let (_client, mut eventloop) =
            subscriber(mqtt, "e2e-home-assistant", "homeassistant/#").await;
        let mut configs = Vec::new();
        let until = tokio::time::Instant::now() + Duration::from_secs(3);
        while let Ok(event) = tokio::time::timeout_at(until, eventloop.poll()).await {
            if let Ok(Event::Incoming(Packet::Publish(p))) = event {
                let config: serde_json::Value = serde_json::from_slice(&p.payload).unwrap();
                configs.push((p.topic, p.retain, config));
            }
        }
        configs
    });
    for spec in devtel_collector::fleet::demo_fleet() {
        let mine: Vec<&serde_json::Value> = discovery
            .iter()
            .filter(|(t, retained, _)| *retained && t.contains(&format!("/devtel_{}/", spec.id)))
            .map(|(_, _, c)| c)
            .collect();
        assert!(mine.len() >= 2, "{}: {discovery:?}", spec.id);
        for c in &mine {
            assert_eq!(c["state_topic"], format!("devtel/v1/devices/{}", spec.id));
            assert_eq!(
                c["availability"][0]["topic"],
                "devtel/v1/collectors/rathaus"
            );
        }
        if spec.kind == "copier" {
            let pages = mine
                .iter()
                .find(|c| c["unique_id"] == format!("devtel_{}_page_count", spec.id))
                .unwrap_or_else(|| panic!("{}: page count", spec.id));
            assert_eq!(pages["state_class"], "total_increasing");
        }
    }
    assert!(demo.terminate(Duration::from_secs(20)), "{}", demo.log());
}
