//! The collector's own `/metrics` for site IT (optional: `metrics_listen`), in the Prometheus
//! text exposition format: the counters of the status message ([`Counters`]) and an info
//! series with the site, collector, epoch and version.
//!
//! [`render`] is pure; [`serve`] is the listener (one route; bind it to loopback or a
//! management network: it has no authentication, and it tells nothing about devices or
//! people, only the collector's own counts).
//!
//! The listener is a small HTTP/1.1 responder rather than the gateway's axum stack: one GET
//! per connection, the request head parsed by `httparse` (hyper's parser), at most
//! [`MAX_HEAD`] bytes of it within [`READ_TIMEOUT`], [`MAX_SCRAPES`] connections at a time,
//! then `Connection: close`. What a scraper needs and nothing a site box pays for besides:
//! hyper, axum and tower were about 0.3 MiB of the collector's resident memory once scraped.

use std::fmt::Write as _;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::publisher::{Counters, Identity, Stats};

/// (field of [`Counters`], Prometheus type, help).
const METRICS: &[(&str, &str, &str)] = &[
    (
        "polls",
        "counter",
        "Device polls finished (answered or not).",
    ),
    (
        "timeouts",
        "counter",
        "Polls that ended without an answer before the deadline.",
    ),
    (
        "failed",
        "counter",
        "Polls without a usable answer for another reason (network, authentication, garbage).",
    ),
    ("spooled", "counter", "Readings written to the spool."),
    (
        "published",
        "counter",
        "Publishes handed to the MQTT client (repeats included).",
    ),
    (
        "published_described",
        "counter",
        "Readings published described (in full).",
    ),
    (
        "published_compact",
        "counter",
        "Readings published compact (wire version 5: values against a description).",
    ),
    (
        "published_bytes",
        "counter",
        "Payload bytes of the published readings.",
    ),
    (
        "broker_acked",
        "counter",
        "Publishes the broker acknowledged.",
    ),
    (
        "broker_refused",
        "counter",
        "Publishes the broker refused (e.g. not authorised).",
    ),
    (
        "acknowledged",
        "counter",
        "Readings released from the spool by an acknowledgement.",
    ),
    (
        "rejected",
        "counter",
        "Of those, readings the gateway refused for good.",
    ),
    (
        "resent",
        "counter",
        "Readings published again (not confirmed in time, or at a reconnect).",
    ),
    (
        "awaiting_gateway",
        "gauge",
        "Readings with the broker, not yet confirmed by the gateway.",
    ),
    (
        "awaiting_gateway_oldest_s",
        "gauge",
        "Age of the oldest of those, seconds.",
    ),
    (
        "bad_acks",
        "counter",
        "Messages on the acknowledgement topic that were no valid acknowledgement.",
    ),
    (
        "unknown_acks",
        "counter",
        "Acknowledgements naming nothing the spool holds (repeats, or an old epoch).",
    ),
    (
        "dropped",
        "counter",
        "Readings dropped by the spool's size bound (oldest first).",
    ),
    (
        "corrupt",
        "counter",
        "Spool records found corrupt (skipped).",
    ),
    (
        "spool_unplaced",
        "counter",
        "Readings that could not be placed in the spool.",
    ),
    ("spool_write_errors", "counter", "Spool writes that failed."),
    (
        "spool_sync_failures",
        "counter",
        "Spool fsyncs that failed.",
    ),
    (
        "spool_in_memory",
        "gauge",
        "Readings held in memory while the spool cannot be written.",
    ),
    (
        "lost",
        "counter",
        "Readings lost (counted, logged; 0 unless the process was killed with readings in memory).",
    ),
    ("reconnects", "counter", "MQTT reconnects."),
    ("connection_errors", "counter", "MQTT connection errors."),
    (
        "spool_pending",
        "gauge",
        "Readings in the spool not yet acknowledged.",
    ),
    ("spool_bytes", "gauge", "Bytes the spool holds."),
    (
        "clock_jumps",
        "counter",
        "Jumps of the wall clock seen (NTP steps, a wrong RTC).",
    ),
    (
        "clock_last_jump_ms",
        "gauge",
        "Size of the last clock jump, ms (signed).",
    ),
];

/// `/metrics` for `counters` of the collector `identity`.
pub fn render(identity: &Identity, counters: &Counters) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# HELP devtel_collector_info The collector: site, collector id, this run's epoch, version.\n# TYPE devtel_collector_info gauge\ndevtel_collector_info{{site=\"{}\",collector=\"{}\",epoch=\"{}\",version=\"{}\"}} 1",
        identity.site,
        identity.collector,
        identity.epoch,
        env!("CARGO_PKG_VERSION")
    );
    let values = serde_json::to_value(counters).unwrap_or_default();
    for (field, kind, help) in METRICS {
        let Some(value) = values.get(field).and_then(serde_json::Value::as_f64) else {
            continue;
        };
        let name = if *kind == "counter" {
            format!("devtel_collector_{field}_total")
        } else {
            format!("devtel_collector_{field}")
        };
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
        );
    }
    out
}

/// Longest request head taken (a scraper's GET is a few hundred bytes): 431 beyond.
pub const MAX_HEAD: usize = 8 * 1024;
/// Time a client has to send its request head, and then to take the answer.
pub const READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections answered at the same time; further ones wait in the listen backlog.
pub const MAX_SCRAPES: usize = 4;

/// What a complete request head asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ask {
    /// `GET /metrics` (a query string is ignored); `head_only` for `HEAD`.
    Metrics { head_only: bool },
    /// GET or HEAD of another path: 404.
    NotFound,
    /// Another method: 405.
    NotAllowed,
    /// Not an HTTP/1.x request head: 400.
    Bad,
    /// No end of the head within [`MAX_HEAD`] bytes: 431.
    TooLarge,
}

/// What `head` (the bytes received so far) asks for, `None` while it is incomplete.
pub fn ask(head: &[u8]) -> Option<Ask> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut request = httparse::Request::new(&mut headers);
    match request.parse(head) {
        Ok(httparse::Status::Partial) if head.len() >= MAX_HEAD => Some(Ask::TooLarge),
        Ok(httparse::Status::Partial) => None,
        Ok(httparse::Status::Complete(_)) => {
            let path = request.path.unwrap_or_default();
            let path = path.split_once('?').map_or(path, |(p, _)| p);
            Some(match request.method {
                Some(method @ ("GET" | "HEAD")) if path == "/metrics" => Ask::Metrics {
                    head_only: method == "HEAD",
                },
                Some("GET" | "HEAD") => Ask::NotFound,
                _ => Ask::NotAllowed,
            })
        }
        Err(httparse::Error::TooManyHeaders) => Some(Ask::TooLarge),
        Err(_) => Some(Ask::Bad),
    }
}

/// The whole response to `ask`; `page` renders the metrics when they are asked for.
pub fn response(ask: Ask, page: impl FnOnce() -> String) -> Vec<u8> {
    let (status, extra, body, head_only) = match ask {
        Ask::Metrics { head_only } => (
            "200 OK",
            "Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n",
            page(),
            head_only,
        ),
        Ask::NotFound => ("404 Not Found", "", "only /metrics here\n".into(), false),
        Ask::NotAllowed => (
            "405 Method Not Allowed",
            "Allow: GET, HEAD\r\n",
            "only GET and HEAD\n".into(),
            false,
        ),
        Ask::Bad => (
            "400 Bad Request",
            "",
            "not an HTTP/1.1 request\n".into(),
            false,
        ),
        Ask::TooLarge => (
            "431 Request Header Fields Too Large",
            "",
            format!("request head over {MAX_HEAD} bytes\n"),
            false,
        ),
    };
    let mut out = format!(
        "HTTP/1.1 {status}\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if !head_only {
        out.extend_from_slice(body.as_bytes());
    }
    out
}

/// Serves `/metrics` on `listener` until `shutdown` (bound by the caller, so that a wrong
/// address stops the start).
pub async fn serve(
    listener: TcpListener,
    identity: Identity,
    stats: Arc<Stats>,
    shutdown: CancellationToken,
) {
    if let Ok(addr) = listener.local_addr() {
        info!(listen = %addr, "metrics listening");
    }
    let source = Arc::new((identity, stats));
    let scrapes = Arc::new(Semaphore::new(MAX_SCRAPES));
    loop {
        let permit = tokio::select! {
            _ = shutdown.cancelled() => break,
            permit = scrapes.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
        };
        let stream = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    // Out of file descriptors and the like: wait instead of spinning.
                    warn!(%error, "metrics listener could not accept");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            },
        };
        let (source, stop) = (source.clone(), shutdown.clone());
        tokio::spawn(async move {
            let _permit = permit;
            tokio::select! {
                _ = stop.cancelled() => {}
                answered = answer(stream, || render(&source.0, &source.1.snapshot())) => {
                    if let Err(error) = answered {
                        debug!(%error, "metrics request not answered");
                    }
                }
            }
        });
    }
}

/// Reads one request head from `stream` and answers it.
async fn answer(mut stream: TcpStream, page: impl FnOnce() -> String) -> io::Result<()> {
    let mut head = Vec::with_capacity(512);
    let asked = tokio::time::timeout(READ_TIMEOUT, async {
        let mut chunk = [0u8; 512];
        loop {
            if let Some(ask) = ask(&head) {
                return Ok(ask);
            }
            let room = (MAX_HEAD - head.len()).min(chunk.len());
            let n = stream.read(&mut chunk[..room]).await?;
            if n == 0 {
                return Err(io::Error::from(io::ErrorKind::UnexpectedEof));
            }
            head.extend_from_slice(&chunk[..n]);
        }
    })
    .await
    .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))??;
    let out = response(asked, page);
    tokio::time::timeout(READ_TIMEOUT, async {
        stream.write_all(&out).await?;
        stream.shutdown().await
    })
    .await
    .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))??;
    // Lingering close: take what the client still sends (a refused head's rest; at most 64 KiB
    // within a second), so that closing with unread input does not answer it with a reset,
    // which would destroy the response still in flight. A scraper closes on the end of the
    // response, which ends this at once.
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        let mut sink = [0u8; 512];
        let mut left = 64 * 1024usize;
        while left > 0 {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(n) => left = left.saturating_sub(n),
            }
        }
    })
    .await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_heads_are_read_to_their_end_and_judged() {
        let metrics = Ask::Metrics { head_only: false };
        let get = b"GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\n";
        for end in 0..get.len() - 1 {
            assert_eq!(ask(&get[..end]), None, "{end} bytes are not a whole head");
        }
        assert_eq!(ask(get), Some(metrics));
        assert_eq!(ask(b"GET /metrics?x=1 HTTP/1.0\r\n\r\n"), Some(metrics));
        assert_eq!(
            ask(b"HEAD /metrics HTTP/1.1\r\n\r\n"),
            Some(Ask::Metrics { head_only: true })
        );
        assert_eq!(ask(b"GET / HTTP/1.1\r\n\r\n"), Some(Ask::NotFound));
        assert_eq!(ask(b"GET /metricsx HTTP/1.1\r\n\r\n"), Some(Ask::NotFound));
        assert_eq!(
            ask(b"POST /metrics HTTP/1.1\r\n\r\n"),
            Some(Ask::NotAllowed)
        );
        assert_eq!(
            ask(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"),
            Some(Ask::Bad)
        );
        assert_eq!(ask(b"GET /metrics SMTP/9\r\n\r\n"), Some(Ask::Bad));
        let long = format!("GET /metrics HTTP/1.1\r\nX: {}", "a".repeat(MAX_HEAD));
        assert_eq!(ask(long.as_bytes()), Some(Ask::TooLarge));
        let many: String = (0..40).map(|i| format!("X-{i}: y\r\n")).collect();
        let many = format!("GET /metrics HTTP/1.1\r\n{many}\r\n");
        assert_eq!(ask(many.as_bytes()), Some(Ask::TooLarge));
    }

    #[test]
    fn responses_carry_their_length_and_close() {
        let text = String::from_utf8(response(Ask::Metrics { head_only: false }, || {
            "a 1\n".into()
        }))
        .unwrap();
        assert_eq!(
            text,
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n\
             Content-Length: 4\r\nConnection: close\r\n\r\na 1\n"
        );
        let head = String::from_utf8(response(Ask::Metrics { head_only: true }, || {
            "a 1\n".into()
        }))
        .unwrap();
        assert!(
            head.ends_with("Content-Length: 4\r\nConnection: close\r\n\r\n"),
            "{head}"
        );
        let refused = String::from_utf8(response(Ask::NotAllowed, || unreachable!())).unwrap();
        assert!(refused.starts_with("HTTP/1.1 405 Method Not Allowed\r\nAllow: GET, HEAD\r\n"));
    }

    /// The listener on a real socket: scrapes answered while silent clients hold connections,
    /// hostile heads refused, and the task ends on shutdown.
    #[tokio::test]
    async fn the_listener_answers_scrapes_and_refuses_the_rest() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stats = Arc::new(Stats::default());
        stats.polls.store(12, std::sync::atomic::Ordering::Relaxed);
        let identity = Identity {
            site: "rathaus".try_into().unwrap(),
            collector: "c1".try_into().unwrap(),
            epoch: 7,
            started_ms: 0,
        };
        let stop = CancellationToken::new();
        let server = tokio::spawn(serve(listener, identity, stats, stop.clone()));
        async fn exchange(addr: std::net::SocketAddr, request: &[u8]) -> String {
            let mut stream = TcpStream::connect(addr).await.unwrap();
            stream.write_all(request).await.unwrap();
            let mut out = Vec::new();
            stream.read_to_end(&mut out).await.unwrap();
            String::from_utf8(out).unwrap()
        }
        // Silent clients hold all but one of the slots; scrapes still go through the last.
        let mut silent = Vec::new();
        for _ in 0..MAX_SCRAPES - 1 {
            silent.push(TcpStream::connect(addr).await.unwrap());
        }
        for _ in 0..3 {
            let page = exchange(addr, b"GET /metrics HTTP/1.1\r\nHost: site-box\r\n\r\n").await;
            let (head, body) = page.split_once("\r\n\r\n").unwrap();
            assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
            assert!(
                head.contains(&format!("Content-Length: {}\r\n", body.len())),
                "{head}"
            );
            assert!(body.contains("devtel_collector_polls_total 12\n"), "{body}");
            assert!(body.contains("collector=\"c1\",epoch=\"7\""), "{body}");
        }
        let page = exchange(addr, b"DELETE /metrics HTTP/1.1\r\n\r\n").await;
        assert!(page.starts_with("HTTP/1.1 405 "), "{page}");
        let page = exchange(addr, b"GET /spool HTTP/1.1\r\n\r\n").await;
        assert!(page.starts_with("HTTP/1.1 404 "), "{page}");
        let page = exchange(addr, &[0x16, 0x03, 0x01, 0x00, 0x05, 0x01, b'\r', b'\n']).await;
        assert!(page.starts_with("HTTP/1.1 400 "), "{page}");
        // A head that never ends is cut at MAX_HEAD; the client may still be sending when the
        // answer comes, so it writes from its own task and the answer is read meanwhile.
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let (mut rx, mut tx) = stream.split();
        let flood = vec![b'a'; MAX_HEAD + 4096];
        let send = async {
            let _ = tx.write_all(b"GET /metrics HTTP/1.1\r\nX: ").await;
            let _ = tx.write_all(&flood).await;
        };
        let mut out = Vec::new();
        let (_, read) = tokio::join!(send, rx.read_to_end(&mut out));
        let _ = read;
        let out = String::from_utf8_lossy(&out);
        assert!(out.starts_with("HTTP/1.1 431 "), "{out}");
        drop(silent);
        stop.cancel();
        tokio::time::timeout(Duration::from_secs(5), server)
            .await
            .expect("the listener ends on shutdown")
            .unwrap();
    }

    #[test]
    fn every_counter_is_a_metric_with_help_and_values_are_the_counters() {
        let stats = Stats::default();
        stats.polls.store(7, std::sync::atomic::Ordering::Relaxed);
        stats
            .awaiting_gateway
            .store(3, std::sync::atomic::Ordering::Relaxed);
        let counters = stats.snapshot();
        let fields = serde_json::to_value(counters).unwrap();
        let fields = fields.as_object().unwrap();
        for field in fields.keys() {
            assert!(
                METRICS.iter().any(|(f, _, _)| f == field),
                "{field} has no metric"
            );
        }
        assert_eq!(fields.len(), METRICS.len());
        let identity = Identity {
            site: "rathaus".try_into().unwrap(),
            collector: "c1".try_into().unwrap(),
            epoch: 42,
            started_ms: 0,
        };
        let text = render(&identity, &counters);
        assert!(text.contains("devtel_collector_polls_total 7\n"), "{text}");
        assert!(text.contains(
            "# TYPE devtel_collector_awaiting_gateway gauge\ndevtel_collector_awaiting_gateway 3\n"
        ));
        assert!(
            text.contains("devtel_collector_info{site=\"rathaus\",collector=\"c1\",epoch=\"42\",")
        );
        // Every sample line is `name value` with a declared type before it.
        let mut typed = std::collections::BTreeSet::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                typed.insert(rest.split(' ').next().unwrap().to_string());
            } else if !line.starts_with('#') {
                let name = line.split(['{', ' ']).next().unwrap();
                assert!(typed.contains(name), "{line}");
                assert!(
                    line.rsplit(' ').next().unwrap().parse::<f64>().is_ok(),
                    "{line}"
                );
            }
        }
    }
}
