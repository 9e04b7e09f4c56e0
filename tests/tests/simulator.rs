use std::sync::Arc;
use std::time::Duration;

use devtel_collector::devices::printer;
use devtel_collector::sim::{self, Agents};
use devtel_collector::snmp::client::{Client, Options, Target, Version};
use devtel_collector::snmp::VarbindSet;
use tokio_util::sync::CancellationToken;

use crate::util::*;

/// What the collector fetches for a printer, from one agent.
async fn fetch(port: u16, community: &str, version: Version) -> VarbindSet {
    let target = Target {
        host: "127.0.0.1".into(),
        port,
        version,
        community: community.into(),
        usm: None,
    };
    let opts = Options {
        timeout: Duration::from_secs(2),
        retries: 1,
        ..Options::default()
    };
    let mut client = Client::new(target, opts).await.unwrap();
    let plan = printer::plan();
    let mut vb = VarbindSet::new();
    client
        .get(&plan.get, &mut vb)
        .await
        .unwrap_or_else(|e| panic!("{community}: {e}"));
    for root in &plan.walk {
        client
            .walk(root, &mut vb)
            .await
            .unwrap_or_else(|e| panic!("{community} {root}: {e}"));
    }
    vb
}

/// devtel's own simulator is a stand-in for snmpsim: for every recording, the collector fetches
/// exactly the same varbinds from both, over v2c (GetBulk) and, from ours, over v1 (GetNext).
#[test]
fn own_simulator_answers_like_snmpsim_for_every_recording() {
    let dir = temp_dir("simulator");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (mut snmpsim_proc, snmpsim_port) = snmpsim(&dir);
    rt.block_on(async {
        wait_for_agent(&mut snmpsim_proc, snmpsim_port, "ricoh_mpc3002").await;
        let agents = Arc::new(Agents::load(&corpus().join("snmprec")).unwrap());
        let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let port = socket.local_addr().unwrap().port();
        let stop = CancellationToken::new();
        tokio::spawn(sim::serve(socket, agents.clone(), stop.clone()));

        let mut names: Vec<String> = std::fs::read_dir(corpus().join("snmprec"))
            .unwrap()
            .filter_map(|e| {
                e.ok()?
                    .file_name()
                    .to_str()?
                    .strip_suffix(".snmprec")
                    .map(str::to_string)
            })
            .collect();
        names.sort();
        assert!(names.len() >= 30, "corpus has {} recordings", names.len());
        let mut compared = 0;
        for name in &names {
            // snmpsim stops serving this recording at its corrupt line 23 (a known defect that
            // devtel's reader skips), so the two legitimately differ.
            if name == "okilan_9450g" {
                continue;
            }
            let theirs = fetch(snmpsim_port, name, Version::V2c).await;
            let ours = fetch(port, name, Version::V2c).await;
            assert_eq!(ours, theirs, "{name}: v2c answers differ");
            let ours_v1 = fetch(port, name, Version::V1).await;
            assert_eq!(ours_v1, theirs, "{name}: v1 answers differ");
            compared += usize::from(!theirs.is_empty());
        }
        assert!(compared >= 25, "only {compared} recordings returned data");
        stop.cancel();
    });
}
