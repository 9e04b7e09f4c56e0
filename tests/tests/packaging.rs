//! The Debian packages: `scripts/package-deb.sh` builds both from the built binaries, `dpkg -i`
//! installs them, the installed binaries check their installed example configs, systemd
//! verifies the installed units and rates their exposure, and `dpkg -P` removes everything.
//! Needs root (CI runs as root) and Debian's dpkg and systemd.

use std::process::Command;

use crate::util::*;

fn run(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{program} {args:?}: {text}");
    text
}

#[test]
fn the_debian_packages_install_verify_and_purge() {
    let uid = run("id", &["-u"]);
    assert_eq!(uid.trim(), "0", "installing packages needs root");
    let dir = temp_dir("deb");
    let bin_dir = bin("devtel-gateway").parent().unwrap().to_path_buf();
    let made = run(
        "bash",
        &[
            root().join("scripts/package-deb.sh").to_str().unwrap(),
            "--bin-dir",
            bin_dir.to_str().unwrap(),
            "--out",
            dir.to_str().unwrap(),
        ],
    );
    let debs: Vec<&str> = made.lines().filter(|l| l.ends_with(".deb")).collect();
    assert_eq!(debs.len(), 2, "{made}");
    let mut install = vec!["-i"];
    install.extend(&debs);
    run("dpkg", &install);
    let result = std::panic::catch_unwind(|| {
        for (name, conf) in [
            ("devtel-gateway", "gateway.toml"),
            ("devtel-collector", "collector.toml"),
        ] {
            let version = run(&format!("/usr/bin/{name}"), &["--version"]);
            assert!(version.starts_with(name), "{version}");
            let checked = run(
                &format!("/usr/bin/{name}"),
                &["check-config", "--config", &format!("/etc/devtel/{conf}")],
            );
            assert!(checked.contains(": ok"), "{checked}");
            let unit = format!("/lib/systemd/system/{name}.service");
            let text = std::fs::read_to_string(&unit).unwrap();
            assert!(
                text.contains(&format!("ExecStart=/usr/bin/{name} run")),
                "{text}"
            );
            run("systemd-analyze", &["verify", &unit]);
            let security = run("systemd-analyze", &["security", "--offline=true", &unit]);
            let level: f64 = security
                .lines()
                .find_map(|l| l.split("exposure level for ").nth(1))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{security}"));
            assert!(level < 3.0, "{name}: exposure {level}\n{security}");
            let conffiles = run("dpkg-query", &["--showformat=${Conffiles}", "--show", name]);
            assert!(
                conffiles.contains(&format!("/etc/devtel/{conf}")),
                "{conffiles}"
            );
        }
    });
    run("dpkg", &["-P", "devtel-gateway", "devtel-collector"]);
    assert!(!std::path::Path::new("/usr/bin/devtel-gateway").exists());
    assert!(!std::path::Path::new("/etc/devtel/gateway.toml").exists());
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}
