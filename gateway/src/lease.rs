//! The publisher role among gateway replicas: at most one replica of a group publishes the
//! retained unit and device documents, and the role moves within seconds when its holder
//! dies. The lease is a PostgreSQL session-level advisory lock on the group's name in the
//! store the replicas share — nothing for operations to run besides that server.
//!
//! - A replica that is not publisher tries the lock every `interval`
//!   (`pg_try_advisory_lock`, never waiting in the server).
//! - Having got it, it waits `grace` before it publishes, probing its session meanwhile. A
//!   holder whose session ended (killed, restarted, cut off) learns it at its next probe at the
//!   latest, so with `grace` ≥ `interval` + `probe_timeout` an old holder that is still alive
//!   has stopped publishing before a new one starts: no two writers.
//! - The holder probes its session every `interval`; an answer missing for `probe_timeout`, or
//!   the connection ending, makes it a follower at once. It connects again (with backoff) and
//!   competes like any other replica.
//! - A holder that dies releases the lock with its session: at once when its process is
//!   killed (the kernel closes its socket), after the server's TCP keepalive otherwise
//!   (`keepalive` below, set for the session).
//!
//! [`Lease`] is the pure core (what to do next, which role); [`run`] is the I/O.

use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// A replica's part in its group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Ingests and serves, does not publish the retained documents.
    Follower,
    /// Holds the lease: publishes the retained documents.
    Publisher,
}

/// Timing of the lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// How often a follower tries the lock and a holder probes its session.
    pub interval: Duration,
    /// Longest wait for an answer of the server.
    pub probe_timeout: Duration,
    /// Time between getting the lock and publishing (at least `interval + probe_timeout`).
    pub grace: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            interval: Duration::from_secs(1),
            probe_timeout: Duration::from_secs(2),
            grace: Duration::from_secs(3),
        }
    }
}

impl Settings {
    /// `grace` raised to `interval + probe_timeout` if it was shorter.
    pub fn safe(self) -> Settings {
        Settings {
            grace: self.grace.max(self.interval + self.probe_timeout),
            ..self
        }
    }
}

/// What the lease loop does at its next tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Try to take the lock.
    TryLock,
    /// Check that the session (and with it the lock) is still there.
    Probe,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Free,
    Waiting { since: Instant },
    Held,
}

/// The lease's pure core: fed what the server answered, says what to do and which role holds.
#[derive(Debug, Clone)]
pub struct Lease {
    settings: Settings,
    state: State,
}

impl Lease {
    /// Without the lock.
    pub fn new(settings: Settings) -> Lease {
        Lease {
            settings: settings.safe(),
            state: State::Free,
        }
    }

    /// The next thing to ask the server.
    pub fn next(&self) -> Action {
        match self.state {
            State::Free => Action::TryLock,
            State::Waiting { .. } | State::Held => Action::Probe,
        }
    }

    /// The answer to [`Action::TryLock`].
    pub fn tried(&mut self, now: Instant, got: bool) {
        if got && self.state == State::Free {
            self.state = State::Waiting { since: now };
        }
    }

    /// The answer to [`Action::Probe`] came in time.
    pub fn probed(&mut self, now: Instant) {
        if let State::Waiting { since } = self.state {
            if now.duration_since(since) >= self.settings.grace {
                self.state = State::Held;
            }
        }
    }

    /// The session ended or did not answer in time: the lock is not ours any more.
    pub fn lost(&mut self) {
        self.state = State::Free;
    }

    /// The role now.
    pub fn role(&self) -> Role {
        match self.state {
            State::Held => Role::Publisher,
            State::Free | State::Waiting { .. } => Role::Follower,
        }
    }
}

/// Server-side TCP keepalive of the lease's session: a holder cut off from the server loses
/// the lock after about idle + interval × count = 8 s, well after it stopped publishing.
const KEEPALIVE: &str =
    "SET tcp_keepalives_idle = 5; SET tcp_keepalives_interval = 1; SET tcp_keepalives_count = 3";

/// Holds or competes for the lease of `group` on the server of `config` until `shutdown`,
/// reporting the role on `role` (the sender's value is the current role). Ending the session
/// on shutdown releases the lock at once.
pub async fn run(
    config: tokio_postgres::Config,
    group: String,
    settings: Settings,
    role: watch::Sender<Role>,
    shutdown: CancellationToken,
) {
    let mut attempt = 0u32;
    let set = |r: Role| {
        role.send_if_modified(|now| {
            let changed = *now != r;
            *now = r;
            changed
        })
    };
    while !shutdown.is_cancelled() {
        let connected = tokio::select! {
            _ = shutdown.cancelled() => break,
            c = tokio::time::timeout(settings.probe_timeout * 2, config.connect(tokio_postgres::NoTls)) => c,
        };
        let (client, connection) = match connected {
            Ok(Ok(pair)) => pair,
            Ok(Err(error)) => {
                let retry = devtel_daemon::backoff(
                    attempt,
                    settings.interval * 10,
                    devtel_daemon::jitter(),
                );
                warn!(%error, ?retry, group, "lease: no connection to PostgreSQL");
                attempt = attempt.saturating_add(1);
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(retry) => continue,
                }
            }
            Err(_) => {
                warn!(group, "lease: connecting to PostgreSQL timed out");
                attempt = attempt.saturating_add(1);
                continue;
            }
        };
        attempt = 0;
        let mut connection = tokio::spawn(connection);
        if let Err(error) = client.batch_execute(KEEPALIVE).await {
            warn!(%error, "lease: session keepalive not set");
        }
        let mut lease = Lease::new(settings);
        let mut tick = tokio::time::interval(settings.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let session_alive = tokio::select! {
                _ = shutdown.cancelled() => false,
                _ = &mut connection => false,
                _ = tick.tick() => match lease.next() {
                    Action::TryLock => tokio::time::timeout(
                        settings.probe_timeout,
                        client.query_one(
                            "SELECT pg_try_advisory_lock(hashtextextended($1, 0))",
                            &[&group],
                        ),
                    )
                    .await
                    .ok()
                    .and_then(Result::ok)
                    .map(|row| lease.tried(Instant::now(), row.get::<_, bool>(0)))
                    .is_some(),
                    Action::Probe => tokio::time::timeout(
                        settings.probe_timeout,
                        client.simple_query("SELECT 1"),
                    )
                    .await
                    .ok()
                    .and_then(Result::ok)
                    .map(|_| lease.probed(Instant::now()))
                    .is_some(),
                },
            };
            if !session_alive {
                // Ending the session (below) releases the lock if the server still has it.
                lease.lost();
            }
            let now = lease.role();
            if set(now) {
                info!(group, role = ?now, "lease: role changed");
            }
            if !session_alive {
                break;
            }
        }
        connection.abort();
        drop(client);
    }
    set(Role::Follower);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pg_harness::TempPostgres;

    fn fast() -> Settings {
        Settings {
            interval: Duration::from_millis(50),
            probe_timeout: Duration::from_millis(500),
            grace: Duration::from_millis(600),
        }
    }

    #[test]
    fn the_lock_makes_a_publisher_only_after_the_grace() {
        let start = Instant::now();
        let mut lease = Lease::new(fast());
        assert_eq!(lease.next(), Action::TryLock);
        lease.tried(start, false);
        assert_eq!(
            (lease.next(), lease.role()),
            (Action::TryLock, Role::Follower)
        );
        lease.tried(start, true);
        assert_eq!(
            (lease.next(), lease.role()),
            (Action::Probe, Role::Follower)
        );
        lease.probed(start + Duration::from_millis(599));
        assert_eq!(lease.role(), Role::Follower);
        lease.probed(start + Duration::from_millis(600));
        assert_eq!(lease.role(), Role::Publisher);
        lease.lost();
        assert_eq!(
            (lease.next(), lease.role()),
            (Action::TryLock, Role::Follower)
        );
        // A grace shorter than a probe round is raised to it.
        let short = Settings {
            grace: Duration::ZERO,
            ..fast()
        };
        assert_eq!(short.safe().grace, Duration::from_millis(550));
    }

    /// Every role change of the replicas, in order, with the time it was seen.
    type RoleLog = std::sync::Arc<std::sync::Mutex<Vec<(std::time::Instant, &'static str, Role)>>>;

    /// Records every role change of a replica with the time it took effect.
    fn watch_roles(name: &'static str, mut rx: watch::Receiver<Role>, log: RoleLog) {
        tokio::spawn(async move {
            while rx.changed().await.is_ok() {
                let role = *rx.borrow_and_update();
                log.lock()
                    .unwrap()
                    .push((std::time::Instant::now(), name, role));
            }
        });
    }

    async fn until(what: &str, mut ok: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !ok() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Two replicas on a real PostgreSQL: one publisher; its session killed by the server (as
    /// when its process dies), the other takes over within the grace and a few intervals, and
    /// the publisher intervals never overlap. Shutting the holder down releases at once.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_publisher_and_the_role_moves_when_its_session_dies() {
        let pg = TempPostgres::start();
        let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut replicas = Vec::new();
        for name in ["a", "b"] {
            let (tx, rx) = watch::channel(Role::Follower);
            watch_roles(name, rx.clone(), log.clone());
            let stop = CancellationToken::new();
            tokio::spawn(run(pg.config(), "devtel".into(), fast(), tx, stop.clone()));
            replicas.push((name, rx, stop));
        }
        let publishers = |replicas: &Vec<(
            &'static str,
            watch::Receiver<Role>,
            CancellationToken,
        )>|
         -> Vec<&'static str> {
            replicas
                .iter()
                .filter(|(_, rx, _)| *rx.borrow() == Role::Publisher)
                .map(|(n, _, _)| *n)
                .collect::<Vec<_>>()
        };
        until("a publisher", || publishers(&replicas).len() == 1).await;
        let first = publishers(&replicas)[0];
        // Stays one for a while (no flapping).
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(publishers(&replicas), vec![first]);

        // The server ends the holder's session.
        let admin = pg.connect().await;
        let killed = admin
            .query_one(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_locks WHERE locktype = 'advisory' AND granted",
                &[],
            )
            .await
            .unwrap()
            .get::<_, i64>(0);
        assert_eq!(killed, 1, "one session holds the lock");
        let moved = Instant::now();
        // The holder learns it at once; some replica (the old holder, reconnected, may win
        // the race again) publishes after the grace.
        until("the holder to step down", || {
            publishers(&replicas).is_empty()
        })
        .await;
        assert!(
            moved.elapsed() < fast().grace,
            "stepped down after {:?}",
            moved.elapsed()
        );
        until("a publisher again", || publishers(&replicas).len() == 1).await;
        let took = moved.elapsed();
        assert!(
            took >= fast().grace,
            "took over after {took:?}, before the grace"
        );
        let second = publishers(&replicas)[0];

        // The holder stops (as its process ends): its session ends with it and the other
        // replica takes over.
        let holder = replicas.iter().find(|(n, _, _)| *n == second).unwrap();
        holder.2.cancel();
        let other = if second == "a" { "b" } else { "a" };
        until("the other replica publishing", || {
            publishers(&replicas) == vec![other]
        })
        .await;

        // Publisher intervals never overlapped.
        let log = log.lock().unwrap().clone();
        let mut holding: Option<&str> = None;
        for (_, name, role) in &log {
            match role {
                Role::Publisher => {
                    assert!(
                        holding.is_none(),
                        "{name} published while {holding:?} did: {log:?}"
                    );
                    holding = Some(name);
                }
                Role::Follower => {
                    if holding == Some(*name) {
                        holding = None;
                    }
                }
            }
        }
        assert!(
            log.iter().filter(|(_, _, r)| *r == Role::Publisher).count() >= 3,
            "{log:?}"
        );
        for (_, _, stop) in &replicas {
            stop.cancel();
        }
    }
}
