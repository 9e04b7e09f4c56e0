//! SNMPv3 against a real net-snmp `snmpd`: every security level and protocol pair devtel
//! offers, and a clear authentication error (never data) for wrong credentials.

use std::time::Duration;

use devtel_collector::snmp::client::{
    AuthProtocol, Client, Options, PrivProtocol, SnmpError, Target, Usm, Version,
};
use devtel_collector::snmp::{oid, Value, VarbindSet};

use crate::util::*;

fn target(port: u16, usm: Usm) -> Target {
    Target {
        host: "127.0.0.1".into(),
        port,
        version: Version::V3,
        community: String::new(),
        usm: Some(Box::new(usm)),
    }
}

fn usm(user: &str, auth: Option<(&str, &str)>, privacy: Option<(&str, &str)>) -> Usm {
    Usm {
        user: user.into(),
        auth: auth.map(|(p, pw)| (AuthProtocol::parse(p).expect(p), pw.to_string())),
        privacy: privacy.map(|(p, pw)| (PrivProtocol::parse(p).expect(p), pw.to_string())),
        context: String::new(),
    }
}

fn opts() -> Options {
    Options {
        timeout: Duration::from_secs(2),
        retries: 1,
        ..Options::default()
    }
}

/// GET sysDescr.0 and walk the system group.
async fn system(target: Target) -> Result<VarbindSet, SnmpError> {
    system_with(target, opts()).await
}

async fn system_with(target: Target, opts: Options) -> Result<VarbindSet, SnmpError> {
    let mut client = Client::new(target, opts).await?;
    let mut vb = VarbindSet::new();
    client.get(&[oid("1.3.6.1.2.1.1.1.0")], &mut vb).await?;
    client.walk(&oid("1.3.6.1.2.1.1"), &mut vb).await?;
    Ok(vb)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v3_every_level_and_protocol_against_net_snmp() {
    let dir = temp_dir("snmpv3");
    let (mut agent, port) = snmpd(&dir);
    wait_for_agent(&mut agent, port, "ready").await;

    for (user, auth, privacy) in SNMPD_USERS {
        let u = usm(user, *auth, *privacy);
        let level = u.level();
        let vb = system(target(port, u))
            .await
            .unwrap_or_else(|e| panic!("{user} ({level}): {e}\n{}", agent.log()));
        assert_eq!(
            vb.get(&oid("1.3.6.1.2.1.1.1.0")).and_then(Value::as_bytes),
            Some(SNMPD_SYS_DESCR.as_bytes()),
            "{user} ({level})"
        );
        assert_eq!(
            vb.get(&oid("1.3.6.1.2.1.1.2.0")).and_then(Value::as_oid),
            Some(&oid("1.3.6.1.4.1.8072.3.2.10")),
            "{user} ({level}): sysObjectID through the walk"
        );
        // sysDescr..sysServices plus sysORTable rows: a real walk, not one varbind.
        assert!(vb.len() >= 7, "{user}: only {} varbinds", vb.len());
    }

    // A second request on the same client goes through the learnt engine state.
    let mut client = Client::new(
        target(port, usm("devtel", SNMPD_USERS[0].1, SNMPD_USERS[0].2)),
        opts(),
    )
    .await
    .unwrap();
    for _ in 0..3 {
        let mut vb = VarbindSet::new();
        client
            .get(&[oid("1.3.6.1.2.1.1.3.0")], &mut vb)
            .await
            .unwrap();
        assert!(matches!(
            vb.get(&oid("1.3.6.1.2.1.1.3.0")),
            Some(Value::TimeTicks(_))
        ));
    }

    // Wrong credentials: an authentication error, never data. The agent reports a wrong user,
    // auth password or level at once; a wrong privacy password it cannot even decrypt, so it
    // stays silent (net-snmp's own snmpget says "Timeout" there) and devtel names the likely
    // cause after the request timeout instead.
    let wrong = [
        (
            "wrong auth password",
            usm(
                "devtel",
                Some(("SHA-256", "not-the-secret")),
                Some(("AES", "priv-secret-1")),
            ),
        ),
        (
            "wrong auth protocol",
            usm(
                "devtel",
                Some(("SHA-512", "auth-secret-1")),
                Some(("AES", "priv-secret-1")),
            ),
        ),
        (
            "wrong privacy password",
            usm(
                "devtel",
                Some(("SHA-256", "auth-secret-1")),
                Some(("AES", "not-the-secret")),
            ),
        ),
        (
            "unknown user",
            usm(
                "nobody",
                Some(("SHA-256", "auth-secret-1")),
                Some(("AES", "priv-secret-1")),
            ),
        ),
        (
            "level above the user's",
            usm(
                "uauth",
                Some(("SHA-224", "auth-secret-5")),
                Some(("AES", "priv-secret-5")),
            ),
        ),
    ];
    for (case, u) in wrong {
        let started = std::time::Instant::now();
        let short = Options {
            timeout: Duration::from_millis(800),
            retries: 0,
            ..Options::default()
        };
        match system_with(target(port, u), short).await {
            Err(SnmpError::Auth(reason)) => {
                let text = SnmpError::Auth(reason).to_string();
                assert!(text.contains("authentication failed"), "{case}: {text}");
            }
            Err(other) => panic!("{case}: expected an authentication error, got {other}"),
            Ok(vb) => panic!(
                "{case}: expected an authentication error, got {} varbinds",
                vb.len()
            ),
        }
        if case != "wrong privacy password" {
            assert!(
                started.elapsed() < Duration::from_millis(800),
                "{case}: the error must come from the agent's report, not a timeout"
            );
        }
    }
    agent.assert_running();
}

/// `devtel-collector probe` as site IT runs it, over SNMPv3 authPriv (SHA-256 + AES-128).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_cli_over_v3_and_its_auth_error() {
    let dir = temp_dir("probe-v3");
    let (mut agent, port) = snmpd(&dir);
    wait_for_agent(&mut agent, port, "ready").await;
    let run = |auth: &str| {
        std::process::Command::new(bin("devtel-collector"))
            .args([
                "probe",
                "--snmp-version",
                "3",
                "-u",
                "devtel",
                "-a",
                "SHA-256",
            ])
            .args(["-x", "AES", "-p", &port.to_string(), "--json", "127.0.0.1"])
            .env("DEVTEL_SNMP_AUTH_PASSWORD", auth)
            .env("DEVTEL_SNMP_PRIV_PASSWORD", "priv-secret-1")
            .output()
            .expect("running devtel-collector probe")
    };
    let ok = run("auth-secret-1");
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&ok.stdout).unwrap();
    // snmpd is no printer: the probe says so and still identifies what answered.
    assert_eq!(json["kind"], "unknown");
    assert_eq!(json["model"], SNMPD_SYS_DESCR);
    assert_eq!(json["sys_object_id"], "1.3.6.1.4.1.8072.3.2.10");

    let wrong = run("not-the-secret");
    assert_eq!(wrong.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&wrong.stderr);
    assert!(stderr.contains("authentication failed"), "{stderr}");
    assert!(wrong.stdout.is_empty(), "no data on an auth error");
    assert!(
        !stderr.contains("not-the-secret"),
        "the password is never echoed"
    );
}
