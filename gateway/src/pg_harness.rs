//! A real PostgreSQL server for tests and benches (not for operation): Debian's binaries (`scripts/setup-test-env.sh` installs
//! them), a fresh cluster in a temporary folder, on a free port of 127.0.0.1 and a Unix socket
//! in that folder, trust authentication for the user `devtel`. Stopped (fast shutdown) and
//! removed on drop.
//!
//! PostgreSQL refuses to run as root: as root, the cluster belongs to the `postgres` user that
//! Debian's package creates, and `setpriv` runs `initdb` and the server as that user (in place,
//! so that the child is the server itself and its signals reach it).

use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running PostgreSQL server.
pub struct TempPostgres {
    dir: PathBuf,
    port: u16,
    server: Child,
}

/// The newest installed server's `bin` folder.
fn bin_dir() -> PathBuf {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL is not installed: run scripts/setup-test-env.sh")
        .filter_map(|e| {
            let e = e.ok()?;
            let v = e.file_name().to_str()?.parse().ok()?;
            Some((v, e.path().join("bin")))
        })
        .filter(|(_, bin)| bin.join("initdb").exists())
        .collect();
    versions.sort();
    versions
        .pop()
        .map(|(_, bin)| bin)
        .expect("no initdb under /usr/lib/postgresql: run scripts/setup-test-env.sh")
}

/// Whether this process runs as root (`/proc/self` belongs to the effective user).
fn root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .unwrap_or(0)
        == 0
}

/// `program` run as the cluster's owner: ourselves, or `postgres` when we are root.
fn as_owner(program: &Path) -> Command {
    if root() {
        let mut c = Command::new("setpriv");
        c.args([
            "--reuid=postgres",
            "--regid=postgres",
            "--init-groups",
            "--reset-env",
        ])
        .arg(program);
        c
    } else {
        Command::new(program)
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl TempPostgres {
    /// Creates and starts a cluster; panics (the test fails) when it cannot.
    pub fn start() -> TempPostgres {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("devtel-pg-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temporary folder");
        let bin = bin_dir();
        if root() {
            let owned = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&dir)
                .status()
                .expect("chown");
            assert!(owned.success(), "chown of {}", dir.display());
        }
        let data = dir.join("data");
        let out = as_owner(&bin.join("initdb"))
            .arg("-D")
            .arg(&data)
            .args(["-U", "devtel", "--auth=trust", "-E", "UTF8", "--no-sync"])
            .stdout(Stdio::null())
            .output()
            .expect("initdb runs");
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let port = free_port();
        let server = spawn_server(&dir, port);
        let pg = TempPostgres { dir, port, server };
        pg.wait_ready();
        pg
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ready = Command::new(bin_dir().join("pg_isready"))
                .args([
                    "-h",
                    "127.0.0.1",
                    "-p",
                    &self.port.to_string(),
                    "-U",
                    "devtel",
                ])
                .stdout(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if ready {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "PostgreSQL did not start: {}",
                std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The server's TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `postgres://devtel@127.0.0.1:{port}/{dbname}`.
    pub fn url(&self, dbname: &str) -> String {
        format!("postgres://devtel@127.0.0.1:{}/{dbname}", self.port)
    }

    /// Stops the server (fast shutdown: its sessions end) and waits until it has exited.
    pub fn stop(&mut self) {
        let _ = Command::new("kill")
            .args(["-INT", &self.server.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.server.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.server.kill();
        let _ = self.server.wait();
    }

    /// Starts the stopped server again on the same data and port.
    pub fn restart(&mut self) {
        self.server = spawn_server(&self.dir, self.port);
        self.wait_ready();
    }

    /// Connection settings for the `postgres` database as `devtel` over TCP.
    pub fn config(&self) -> tokio_postgres::Config {
        let mut config = tokio_postgres::Config::new();
        config
            .host("127.0.0.1")
            .port(self.port)
            .user("devtel")
            .dbname("postgres")
            .connect_timeout(Duration::from_secs(5));
        config
    }

    /// Connection settings for a new, empty database `name` (dropped first if it exists).
    pub async fn database(&self, name: &str) -> tokio_postgres::Config {
        let admin = self.connect().await;
        for sql in [
            format!("DROP DATABASE IF EXISTS {name}"),
            format!("CREATE DATABASE {name}"),
        ] {
            admin.batch_execute(&sql).await.expect("database");
        }
        let mut config = self.config();
        config.dbname(name);
        config
    }

    /// A connection whose driver runs on the current runtime.
    pub async fn connect(&self) -> tokio_postgres::Client {
        let (client, connection) = self
            .config()
            .connect(tokio_postgres::NoTls)
            .await
            .expect("connects to the test server");
        tokio::spawn(connection);
        client
    }
}

/// The server on the cluster in `dir`, logging to `dir/server.log` (appended).
fn spawn_server(dir: &Path, port: u16) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("server.log"))
        .expect("server log");
    as_owner(&bin_dir().join("postgres"))
        .arg("-D")
        .arg(dir.join("data"))
        .arg("-p")
        .arg(port.to_string())
        .arg("-k")
        .arg(dir)
        .args(["-c", "listen_addresses=127.0.0.1"])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("postgres starts")
}

impl Drop for TempPostgres {
    fn drop(&mut self) {
        // SIGINT: fast shutdown (the server ends its sessions and exits).
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
