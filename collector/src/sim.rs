//! devtel's own SNMP simulator: serves snmpsim recordings (`*.snmprec`) over SNMP v1/v2c.
//!
//! One UDP socket answers for every recording; the community selects it (the file name without
//! `.snmprec`, as with snmpsim). It answers GET, GETNEXT and GETBULK from an in-memory ordered map,
//! so it needs nothing installed and is fast enough to load-test the poller.
//!
//! Design constraints:
//! - Request handling ([`Agents::respond`]) is a pure function from request bytes to response
//!   bytes; the socket loop only moves datagrams.
//! - Malformed requests, unknown communities and unsupported PDU types get no answer (as from a
//!   real agent) and are counted.
//! - v1 semantics: a missing object fails the PDU with noSuchName and its index; v2c: per-varbind
//!   noSuchInstance / endOfMibView. GETBULK responses are capped at [`MAX_BULK_VARBINDS`].

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use snmp2::{MessageType, Pdu};
use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::snmp::{Oid, Value, VarbindSet};
use devtel_devices::snmprec;

use crate::snmp::ber;

/// Most varbinds in one GETBULK response.
pub const MAX_BULK_VARBINDS: usize = 256;

const NO_SUCH_NAME: i64 = 2;

/// The recordings, by community.
#[derive(Default)]
pub struct Agents {
    by_community: HashMap<Vec<u8>, VarbindSet>,
    /// Requests answered.
    pub answered: AtomicU64,
    /// Requests dropped (malformed, unknown community, unsupported type).
    pub dropped: AtomicU64,
    /// Counter32 values grow by this much per second since `started` (0: recordings as is).
    advance_per_second: u32,
    started: Option<std::time::Instant>,
    /// Where INTEGER values are page counters (advanced with the Counter32 ones).
    integer_counters: Vec<Oid>,
    /// devtel's simulated devices ([`crate::fleet`]), by community, and their clock.
    living: HashMap<Vec<u8>, std::sync::Mutex<crate::fleet::Living>>,
    clock: crate::fleet::SimClock,
    living_started: Option<std::time::Instant>,
}

/// Loading recordings failed.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The folder or a file could not be read.
    #[error("reading {path}: {source}")]
    Io {
        /// The path.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// No `*.snmprec` file in the folder.
    #[error("no .snmprec recordings in {0}")]
    Empty(String),
}

impl Agents {
    /// Loads every `*.snmprec` in `dir`. Broken lines are skipped and logged.
    ///
    /// # Errors
    /// When the folder cannot be read or holds no recording.
    pub fn load(dir: &Path) -> Result<Agents, SimError> {
        let io = |source| SimError::Io {
            path: dir.display().to_string(),
            source,
        };
        let mut agents = Agents::default();
        for entry in std::fs::read_dir(dir).map_err(io)? {
            let path = entry.map_err(io)?.path();
            let (Some(stem), Some("snmprec")) = (
                path.file_stem().and_then(|s| s.to_str()),
                path.extension().and_then(|e| e.to_str()),
            ) else {
                continue;
            };
            let text = std::fs::read_to_string(&path).map_err(|source| SimError::Io {
                path: path.display().to_string(),
                source,
            })?;
            let (set, errors) = snmprec::parse(&text);
            for e in &errors {
                debug!(file = %path.display(), error = %e, "recording line skipped");
            }
            agents.insert(stem, set);
        }
        if agents.by_community.is_empty() {
            return Err(SimError::Empty(dir.display().to_string()));
        }
        Ok(agents)
    }

    /// Makes every Counter32 (prtMarkerLifeCount, interface octets, ...) and every vendor
    /// page counter answered as INTEGER ([`devtel_devices::vendor::page_counter_objects`])
    /// grow by `per_second` for each whole second from now on, as a printing fleet's counters
    /// do; Counter32 values wrap at 2³² like a real one, INTEGERs stop at 2³¹ - 1.
    pub fn advance_counters(&mut self, per_second: u32) {
        self.advance_per_second = per_second;
        self.started = Some(std::time::Instant::now());
        self.integer_counters = devtel_devices::vendor::page_counter_objects();
    }

    /// Serves devtel's simulated fleet ([`crate::fleet::demo_fleet`]) beside the recordings,
    /// each device under its id as community, living by `clock` from now on.
    pub fn add_fleet(&mut self, fleet: Vec<crate::fleet::Spec>, clock: crate::fleet::SimClock) {
        for (i, spec) in fleet.into_iter().enumerate() {
            let community = spec.id.as_bytes().to_vec();
            let living = crate::fleet::Living::new(spec, i as u64 + 1, clock.start);
            self.living.insert(community, std::sync::Mutex::new(living));
        }
        self.clock = clock;
        self.living_started = Some(std::time::Instant::now());
    }

    /// Adds (or replaces) the agent answering for `community`.
    pub fn insert(&mut self, community: &str, varbinds: VarbindSet) {
        self.by_community
            .insert(community.as_bytes().to_vec(), varbinds);
    }

    /// The recording served under `community`.
    pub fn recording(&self, community: &str) -> Option<&VarbindSet> {
        self.by_community.get(community.as_bytes())
    }

    /// Number of agents.
    pub fn len(&self) -> usize {
        self.by_community.len() + self.living.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The response to one request datagram, or `None` when it gets no answer.
    pub fn respond(&self, request: &[u8]) -> Option<Vec<u8>> {
        let response = self.respond_inner(request);
        let counter = if response.is_some() {
            &self.answered
        } else {
            &self.dropped
        };
        counter.fetch_add(1, Ordering::Relaxed);
        response
    }

    fn respond_inner(&self, request: &[u8]) -> Option<Vec<u8>> {
        let pdu = Pdu::from_bytes(request).ok()?;
        let version = pdu.version().ok()?;
        let v1 = match version {
            snmp2::Version::V1 => true,
            snmp2::Version::V2C => false,
            _ => return None,
        };
        let living;
        let agent = match self.by_community.get(pdu.community) {
            Some(recorded) => recorded,
            None => {
                let device = self.living.get(pdu.community)?;
                let elapsed = self.living_started.map(|t| t.elapsed()).unwrap_or_default();
                let minute = self.clock.minute(elapsed);
                // A simulated device that is switched off does not answer.
                living = device.lock().ok()?.at(minute)?;
                &living
            }
        };
        let mut oids = Vec::new();
        for (name, _) in pdu.varbinds.clone() {
            let parts: Vec<u32> = name
                .iter()?
                .map(|p| u32::try_from(p).ok())
                .collect::<Option<_>>()?;
            oids.push(Oid::from(parts));
        }
        let mut out: Vec<(Oid, Value)> = Vec::with_capacity(oids.len());
        let mut error: Option<(i64, i64)> = None;
        match pdu.message_type {
            MessageType::GetRequest => {
                for (i, oid) in oids.iter().enumerate() {
                    match agent.get(oid) {
                        Some(v) => out.push((oid.clone(), v.clone())),
                        None if v1 => {
                            error = Some((NO_SUCH_NAME, i as i64 + 1));
                            break;
                        }
                        None => out.push((oid.clone(), Value::NoSuchInstance)),
                    }
                }
            }
            MessageType::GetNextRequest => {
                for (i, oid) in oids.iter().enumerate() {
                    match agent.next_after(oid) {
                        Some((o, v)) => out.push((o.clone(), v.clone())),
                        None if v1 => {
                            error = Some((NO_SUCH_NAME, i as i64 + 1));
                            break;
                        }
                        None => out.push((oid.clone(), Value::EndOfMibView)),
                    }
                }
            }
            MessageType::GetBulkRequest if !v1 => {
                // For GETBULK, snmp2 reports non-repeaters and max-repetitions in these fields.
                let non_repeaters = (pdu.error_status as usize).min(oids.len());
                let max_repetitions = pdu.error_index as usize;
                for oid in &oids[..non_repeaters] {
                    out.push(next_or_end(agent, oid));
                }
                let mut cursors: Vec<Oid> = oids[non_repeaters..].to_vec();
                'rows: for _ in 0..max_repetitions {
                    if cursors.is_empty() {
                        break;
                    }
                    let mut all_ended = true;
                    for cursor in cursors.iter_mut() {
                        if out.len() >= MAX_BULK_VARBINDS {
                            break 'rows;
                        }
                        let (oid, value) = next_or_end(agent, cursor);
                        if value != Value::EndOfMibView {
                            all_ended = false;
                        }
                        *cursor = oid.clone();
                        out.push((oid, value));
                    }
                    if all_ended {
                        break;
                    }
                }
            }
            _ => return None,
        }
        if let (Some(started), 1..) = (self.started, self.advance_per_second) {
            let secs = u32::try_from(started.elapsed().as_secs()).unwrap_or(u32::MAX);
            let add = secs.wrapping_mul(self.advance_per_second);
            for (oid, value) in &mut out {
                match value {
                    Value::Counter32(v) => *v = v.wrapping_add(add),
                    Value::Integer(v)
                        if *v >= 0 && self.integer_counters.iter().any(|p| oid.starts_with(p)) =>
                    {
                        *v = v.saturating_add(i64::from(add)).min(i64::from(i32::MAX));
                    }
                    _ => {}
                }
            }
        }
        let (error_status, error_index) = error.unwrap_or((0, 0));
        if error.is_some() {
            // v1 error responses echo the request's varbinds.
            out = oids.iter().map(|o| (o.clone(), Value::Null)).collect();
        }
        Some(encode_response(
            version as i64,
            pdu.community,
            pdu.req_id,
            error_status,
            error_index,
            &out,
        ))
    }
}

fn next_or_end(agent: &VarbindSet, oid: &Oid) -> (Oid, Value) {
    match agent.next_after(oid) {
        Some((o, v)) => (o.clone(), v.clone()),
        None => (oid.clone(), Value::EndOfMibView),
    }
}

fn encode_response(
    version: i64,
    community: &[u8],
    req_id: i32,
    error_status: i64,
    error_index: i64,
    varbinds: &[(Oid, Value)],
) -> Vec<u8> {
    let mut list = Vec::new();
    for (oid, value) in varbinds {
        let mut pair = ber::oid(oid.as_slice());
        pair.extend(ber::value(value));
        list.extend(ber::tlv(ber::SEQUENCE, &pair));
    }
    let mut pdu = ber::integer(i64::from(req_id));
    pdu.extend(ber::integer(error_status));
    pdu.extend(ber::integer(error_index));
    pdu.extend(ber::tlv(ber::SEQUENCE, &list));
    let mut message = ber::integer(version);
    message.extend(ber::tlv(ber::OCTET_STRING, community));
    message.extend(ber::tlv(ber::RESPONSE, &pdu));
    ber::tlv(ber::SEQUENCE, &message)
}

/// Answers requests on `socket` until `shutdown`.
pub async fn serve(socket: UdpSocket, agents: Arc<Agents>, shutdown: CancellationToken) {
    let mut buf = vec![0u8; 65_535];
    loop {
        let (len, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            received = socket.recv_from(&mut buf) => match received {
                Ok(r) => r,
                Err(error) => {
                    warn!(%error, "simulator receive failed");
                    continue;
                }
            },
        };
        if let Some(response) = agents.respond(&buf[..len]) {
            if let Err(error) = socket.send_to(&response, peer).await {
                debug!(%error, %peer, "simulator send failed");
            }
        }
    }
    info!(
        answered = agents.answered.load(Ordering::Relaxed),
        dropped = agents.dropped.load(Ordering::Relaxed),
        "simulator stopped"
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snmp::client::{Client, Options, Target, Version};
    use crate::snmp::oid;

    fn agents() -> Arc<Agents> {
        let text = "1.3.6.1.2.1.1.1.0|4|Printer X\n\
                    1.3.6.1.2.1.1.3.0|67|4200\n\
                    1.3.6.1.2.1.43.11.1.1.9.1.1|2|-3\n\
                    1.3.6.1.2.1.43.11.1.1.9.1.2|2|40\n\
                    1.3.6.1.2.1.43.11.1.1.9.1.10|2|7\n\
                    1.3.6.1.2.1.43.12.1.1.4.1.1|4|black\n";
        let mut a = Agents::default();
        a.insert("rec", snmprec::parse(text).0);
        Arc::new(a)
    }

    async fn start(agents: Arc<Agents>) -> (u16, CancellationToken) {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let port = socket.local_addr().unwrap().port();
        let token = CancellationToken::new();
        tokio::spawn(serve(socket, agents, token.clone()));
        (port, token)
    }

    async fn client(port: u16, version: Version, community: &str) -> Client {
        let target = Target {
            host: "127.0.0.1".into(),
            port,
            version,
            community: community.into(),
            usm: None,
        };
        let opts = Options {
            timeout: std::time::Duration::from_millis(300),
            retries: 0,
            max_repetitions: 2,
            max_rows: 100,
        };
        Client::new(target, opts).await.unwrap()
    }

    #[tokio::test]
    async fn the_collector_walks_and_gets_over_v2c_and_v1() {
        let (port, stop) = start(agents()).await;
        for version in [Version::V2c, Version::V1] {
            let mut c = client(port, version, "rec").await;
            let mut vb = VarbindSet::new();
            // Bulk walk with max-repetitions 2 (v2c) or GetNext (v1): several round trips.
            let n = c
                .walk(&oid("1.3.6.1.2.1.43.11.1.1.9"), &mut vb)
                .await
                .unwrap();
            assert_eq!(n, 3, "{version:?}");
            assert_eq!(
                vb.get(&oid("1.3.6.1.2.1.43.11.1.1.9.1.1")),
                Some(&Value::Integer(-3))
            );
            assert_eq!(
                vb.get(&oid("1.3.6.1.2.1.43.11.1.1.9.1.10")),
                Some(&Value::Integer(7))
            );
            // A GET with one missing object: v2c answers the rest, v1 is retried without it.
            c.get(
                &[
                    oid("1.3.6.1.2.1.1.1.0"),
                    oid("1.3.6.1.2.1.1.2.0"),
                    oid("1.3.6.1.2.1.1.3.0"),
                ],
                &mut vb,
            )
            .await
            .unwrap();
            assert_eq!(
                vb.get(&oid("1.3.6.1.2.1.1.1.0")),
                Some(&Value::OctetString(b"Printer X".to_vec()))
            );
            assert_eq!(
                vb.get(&oid("1.3.6.1.2.1.1.3.0")),
                Some(&Value::TimeTicks(4200))
            );
            assert_eq!(vb.get(&oid("1.3.6.1.2.1.1.2.0")), None);
        }
        stop.cancel();
    }

    #[tokio::test]
    async fn unknown_communities_and_garbage_get_no_answer() {
        let agents = agents();
        let (port, stop) = start(agents.clone()).await;
        let mut c = client(port, Version::V2c, "nope").await;
        let err = c
            .get(&[oid("1.3.6.1.2.1.1.1.0")], &mut VarbindSet::new())
            .await
            .unwrap_err();
        assert!(
            matches!(err, crate::snmp::client::SnmpError::Timeout { .. }),
            "{err}"
        );
        for garbage in [
            &b""[..],
            b"\x30\x03\x02\x01",
            b"\xff\xff\xff",
            &[0x30, 0x82, 0xff, 0xff, 0x02],
        ] {
            assert_eq!(agents.respond(garbage), None);
        }
        assert_eq!(agents.dropped.load(Ordering::Relaxed), 5);
        stop.cancel();
    }

    #[tokio::test]
    async fn integer_page_counters_advance_and_other_integers_do_not() {
        let text = "1.3.6.1.2.1.1.1.0|4|HP LaserJet\n\
                    1.3.6.1.2.1.25.3.2.1.5.1|2|2\n\
                    1.3.6.1.2.1.43.10.2.1.4.1.1|65|1000\n\
                    1.3.6.1.4.1.11.2.3.9.4.2.1.4.1.2.5.0|2|900\n\
                    1.3.6.1.4.1.367.3.2.1.2.19.5.1.2.1|2|10\n\
                    1.3.6.1.4.1.367.3.2.1.2.19.5.1.9.1|2|5000\n";
        let mut a = Agents::default();
        a.insert("rec", snmprec::parse(text).0);
        a.advance_counters(4);
        a.started = Some(std::time::Instant::now() - std::time::Duration::from_secs(3));
        let (port, stop) = start(Arc::new(a)).await;
        let mut c = client(port, Version::V2c, "rec").await;
        let mut vb = VarbindSet::new();
        c.walk(&oid("1.3.6.1"), &mut vb).await.unwrap();
        let at = |o: &str| vb.get(&oid(o)).cloned();
        assert_eq!(
            at("1.3.6.1.2.1.43.10.2.1.4.1.1"),
            Some(Value::Counter32(1012))
        );
        assert_eq!(
            at("1.3.6.1.4.1.11.2.3.9.4.2.1.4.1.2.5.0"),
            Some(Value::Integer(912))
        );
        assert_eq!(
            at("1.3.6.1.4.1.367.3.2.1.2.19.5.1.9.1"),
            Some(Value::Integer(5012))
        );
        // A state and a counter table's type column stay as recorded.
        assert_eq!(at("1.3.6.1.2.1.25.3.2.1.5.1"), Some(Value::Integer(2)));
        assert_eq!(
            at("1.3.6.1.4.1.367.3.2.1.2.19.5.1.2.1"),
            Some(Value::Integer(10))
        );
        stop.cancel();
    }

    #[tokio::test]
    async fn the_simulated_fleet_answers_by_device_id_and_the_switched_off_copier_not() {
        let mut a = Agents::default();
        // Monday 14:30 simulated: the LaserJet of the Jugendamt is off.
        let clock = crate::fleet::SimClock {
            speed: 1,
            start: 14 * 60 + 30,
        };
        a.add_fleet(crate::fleet::demo_fleet(), clock);
        assert_eq!(a.len(), crate::fleet::demo_fleet().len());
        let (port, stop) = start(Arc::new(a)).await;
        let mut c = client(port, Version::V2c, "mfp-rathaus-eg").await;
        let mut vb = VarbindSet::new();
        c.get(&[oid("1.3.6.1.2.1.1.1.0")], &mut vb).await.unwrap();
        let descr = vb
            .get(&oid("1.3.6.1.2.1.1.1.0"))
            .and_then(Value::as_text)
            .unwrap();
        assert!(descr.starts_with("RICOH MP C3004"), "{descr}");
        let mut off = client(port, Version::V2c, "printer-jugendamt-3og").await;
        assert!(off.get(&[oid("1.3.6.1.2.1.1.1.0")], &mut vb).await.is_err());
        stop.cancel();
    }

    /// Walking all of a plan's subtrees together collects exactly what walking them one by one
    /// does, on every recorded device, for every kind's plan, at any repetitions (the
    /// simulator also truncates big answers, as agents do).
    #[tokio::test]
    async fn walking_subtrees_together_collects_what_walking_each_collects() {
        use devtel_devices::KINDS;
        let agents =
            Arc::new(Agents::load(&devtel_devices::corpus::dir().join("snmprec")).unwrap());
        let (port, stop) = start(agents).await;
        let transport = crate::snmp::transport::Transport::bind().await.unwrap();
        let mut compared = 0;
        for name in devtel_devices::corpus::names() {
            for kind in KINDS {
                let mut roots = kind.plan().walk;
                roots.extend(
                    kind.follow_up(&devtel_devices::corpus::varbinds(&name))
                        .walk,
                );
                for (version, repetitions) in [
                    (Version::V2c, 1),
                    (Version::V2c, 3),
                    (Version::V2c, 25),
                    (Version::V1, 1),
                ] {
                    let target = Target {
                        host: "127.0.0.1".into(),
                        port,
                        version,
                        community: name.clone(),
                        usm: None,
                    };
                    let opts = Options {
                        timeout: std::time::Duration::from_secs(2),
                        retries: 1,
                        max_repetitions: repetitions,
                        max_rows: 10_000,
                    };
                    let mut one_by_one = VarbindSet::new();
                    let mut c = Client::new(target.clone(), opts).await.unwrap();
                    for root in &roots {
                        c.walk(root, &mut one_by_one).await.unwrap();
                    }
                    // Together, and through the collector's shared socket.
                    let mut together = VarbindSet::new();
                    let mut c = Client::new(target, opts)
                        .await
                        .unwrap()
                        .over(transport.clone());
                    let n = c.walk_all(&roots, &mut together).await.unwrap();
                    assert_eq!(n, together.len(), "{name} {version:?} {repetitions}");
                    assert_eq!(
                        together,
                        one_by_one,
                        "{name} {:?} {version:?} {repetitions}",
                        kind.kind()
                    );
                    compared += together.len();
                }
            }
        }
        assert!(compared > 15_000, "{compared}");
        stop.cancel();
    }

    /// The shared socket hands an answer only to the request it answers: one from another
    /// address with the same request-id is dropped and counted, the agent's own still
    /// arrives; and a port nobody listens on is a network error, not a timeout (the last
    /// attempt goes out of a connected socket, which hears the ICMP refusal).
    #[tokio::test]
    async fn the_shared_socket_takes_answers_only_from_the_agent_asked() {
        use crate::snmp::transport::Transport;
        let transport = Transport::bind().await.unwrap();
        // A slow agent: answers after 200 ms, so that an impostor can answer first.
        let agent = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let agent_addr = agent.local_addr().unwrap();
        let impostor = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let agents = agents();
        let (request_tx, mut request_rx) =
            tokio::sync::mpsc::channel::<(Vec<u8>, std::net::SocketAddr)>(4);
        tokio::spawn(async move {
            let mut buf = vec![0u8; 65_535];
            while let Ok((n, from)) = agent.recv_from(&mut buf).await {
                let request = buf[..n].to_vec();
                let _ = request_tx.send((request.clone(), from)).await;
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                if let Some(reply) = agents.respond(&request) {
                    let _ = agent.send_to(&reply, from).await;
                }
            }
        });
        let target = Target {
            host: "127.0.0.1".into(),
            port: agent_addr.port(),
            version: Version::V2c,
            community: "rec".into(),
            usm: None,
        };
        let opts = Options {
            timeout: std::time::Duration::from_secs(2),
            retries: 1,
            max_repetitions: 25,
            max_rows: 100,
        };
        let mut client = Client::new(target, opts)
            .await
            .unwrap()
            .over(transport.clone());
        let poll = tokio::spawn(async move {
            let mut vb = VarbindSet::new();
            client
                .get(&[oid("1.3.6.1.2.1.1.1.0")], &mut vb)
                .await
                .map(|()| vb)
        });
        // The impostor answers the request with a forged value and the same request-id.
        let (request, from) = request_rx.recv().await.unwrap();
        let pdu = snmp2::Pdu::from_bytes(&request).unwrap();
        let forged = encode_response(
            1,
            b"rec",
            pdu.req_id,
            0,
            0,
            &[(
                oid("1.3.6.1.2.1.1.1.0"),
                Value::OctetString(b"forged".to_vec()),
            )],
        );
        impostor.send_to(&forged, from).await.unwrap();
        let vb = poll.await.unwrap().unwrap();
        assert_eq!(
            vb.get(&oid("1.3.6.1.2.1.1.1.0")),
            Some(&Value::OctetString(b"Printer X".to_vec()))
        );
        assert_eq!(transport.unmatched(), 1);

        // Nobody listens: the first attempt times out on the shared socket, the last one is
        // refused on a connected one.
        let closed = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let port = closed.local_addr().unwrap().port();
        drop(closed);
        let target = Target {
            host: "127.0.0.1".into(),
            port,
            version: Version::V2c,
            community: "rec".into(),
            usm: None,
        };
        let quick = Options {
            timeout: std::time::Duration::from_millis(300),
            ..opts
        };
        let mut client = Client::new(target, quick).await.unwrap().over(transport);
        let mut vb = VarbindSet::new();
        let error = client
            .get(&[oid("1.3.6.1.2.1.1.1.0")], &mut vb)
            .await
            .unwrap_err();
        assert!(
            matches!(error, crate::snmp::client::SnmpError::Network(_)),
            "{error}"
        );
    }
}
