//! Polling: executes a device kind's [`Plan`](devtel_devices::Plan) against one device within a
//! deadline and turns the outcome into a [`Reading`] — a mapped reading, or a `NoResponse` that
//! says why. A poll never fails as a whole: every device yields exactly one reading per round.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use devtel_devices::{DeviceIdentity, Kind, Plan};
use devtel_protocol::{NoResponse, NoResponseCause, Reading};
use tracing::{debug, warn};

use crate::config::Device;
use crate::snmp::client::{Client, Options, SnmpError};
use crate::snmp::transport::Transport;
use crate::snmp::VarbindSet;

/// Polls every device of `fleet` once, at most `concurrency` at a time, and hands each reading
/// to `each` as it completes. Returns `false` when `shutdown` interrupted the round.
///
/// Memory stays bounded by `concurrency`, not by the fleet: a poll task (whose future holds a
/// whole reading) is only spawned once a permit is free, and finished polls are consumed while
/// the next ones start.
pub async fn poll_fleet<F, Fut>(
    fleet: &Arc<Vec<Device>>,
    opts: Options,
    transport: Option<&Arc<Transport>>,
    deadline: Duration,
    concurrency: usize,
    shutdown: &CancellationToken,
    mut each: F,
) -> bool
where
    F: FnMut(Reading) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let semaphore = Arc::new(Semaphore::new(concurrency.max(1)));
    let mut polls = JoinSet::new();
    for index in 0..fleet.len() {
        let permit = tokio::select! {
            _ = shutdown.cancelled() => { polls.abort_all(); return false; }
            permit = semaphore.clone().acquire_owned() => permit,
        };
        let fleet = fleet.clone();
        let transport = transport.cloned();
        // The reading comes back boxed: a task's memory is the larger of its future and its
        // output, and a reading (up to 15 KB) is much larger than the polling future.
        polls.spawn(async move {
            let _permit = permit;
            Box::new(poll(&fleet[index], opts, transport.as_ref(), deadline).await)
        });
        while let Some(joined) = polls.try_join_next() {
            match joined {
                Ok(reading) => each(*reading).await,
                Err(error) => warn!(%error, "poll task failed"),
            }
        }
    }
    loop {
        let joined = tokio::select! {
            _ = shutdown.cancelled() => { polls.abort_all(); return false; }
            joined = polls.join_next() => joined,
        };
        match joined {
            None => return true,
            Some(Ok(reading)) => each(*reading).await,
            Some(Err(error)) => warn!(%error, "poll task failed"),
        }
    }
}

/// Polls `device` once: at most `deadline` in all. v1/v2c requests go through `transport`, the
/// collector's shared socket, when there is one.
pub async fn poll(
    device: &Device,
    opts: Options,
    transport: Option<&Arc<Transport>>,
    deadline: Duration,
) -> Reading {
    let id = DeviceIdentity {
        device: device.id.clone(),
        unit: device.unit.clone(),
    };
    let no_response = |cause| {
        Reading::NoResponse(NoResponse {
            device: device.id.clone(),
            unit: device.unit.clone(),
            kind: device.kind,
            cause,
        })
    };
    let kind = devtel_devices::of(device.kind);
    let fetched = tokio::time::timeout(deadline, async {
        let mut client = Client::new(device.target.clone(), opts).await?;
        if let Some(transport) = transport {
            client = client.over(transport.clone());
        }
        let mut varbinds = VarbindSet::new();
        fetch(
            &mut client,
            &device.target,
            opts,
            kind,
            &device.contexts,
            &mut varbinds,
        )
        .await
        .map(|()| varbinds)
    })
    .await;
    let varbinds = match fetched {
        Ok(Ok(vb)) => vb,
        Ok(Err(error)) => {
            warn!(device = %device.id, %error, "poll failed");
            return no_response(cause_of(&error));
        }
        Err(_) => {
            warn!(device = %device.id, ?deadline, "poll exceeded the device deadline");
            return no_response(NoResponseCause::Timeout);
        }
    };
    match kind.map(&id, device.seats(), &varbinds) {
        Ok(mapped) => {
            if !mapped.unmatched_seats.is_empty() {
                warn!(device = %device.id, ports = ?mapped.unmatched_seats, "configured seats match no port of the switch");
            }
            if mapped.rejected_fdb_rows > 0 {
                debug!(device = %device.id, rows = mapped.rejected_fdb_rows, "forwarding-database rows without a MAC index ignored");
            }
            mapped.reading
        }
        Err(error) => {
            warn!(device = %device.id, %error, varbinds = varbinds.len(), "answer could not be mapped");
            no_response(NoResponseCause::BadResponse)
        }
    }
}

/// Fetches what `kind` polls: its plan, its follow-up planned from the first answers, then the
/// same plan in the extra SNMP contexts (`configured` ones and those the kind asks for).
///
/// # Errors
/// As [`execute`], for the default context; a context that does not answer is skipped.
pub async fn fetch(
    client: &mut Client,
    target: &crate::snmp::client::Target,
    opts: Options,
    kind: &dyn Kind,
    configured: &[String],
    varbinds: &mut VarbindSet,
) -> Result<(), SnmpError> {
    let plan = kind.plan();
    execute(client, &plan, varbinds).await?;
    let follow_up = kind.follow_up(varbinds);
    if !follow_up.is_empty() {
        execute(client, &follow_up, varbinds).await?;
    }
    let contexts = kind.contexts(configured, varbinds);
    complete_from_contexts(target, opts, &plan, &contexts, varbinds).await;
    Ok(())
}

/// Runs `plan` in each of `contexts` and adds what the default context did not have. A context
/// the device does not know (it stays silent or refuses the community) is logged and skipped:
/// it never turns an answered poll into a failed one.
pub async fn complete_from_contexts(
    target: &crate::snmp::client::Target,
    opts: Options,
    plan: &Plan,
    contexts: &[String],
    varbinds: &mut VarbindSet,
) {
    let once = Options { retries: 0, ..opts };
    for context in contexts {
        let mut extra = VarbindSet::new();
        let result = match Client::new(target.in_context(context), once).await {
            Ok(mut client) => execute(&mut client, plan, &mut extra).await,
            Err(e) => Err(e),
        };
        match result {
            Ok(()) => {
                debug!(host = %target.host, context, n = extra.len(), "context polled");
                varbinds.merge_missing(extra);
            }
            Err(error) => debug!(host = %target.host, context, %error, "context not answered"),
        }
    }
}

/// Runs `plan` (one GET, then the walks) with `client`, adding to `varbinds`.
///
/// # Errors
/// Timeouts, network, authentication and protocol errors. An agent that rejects one subtree
/// (genErr, ...) still answers the others, so a PDU error on a walk only ends that subtree
/// ([`Client::walk_all`]).
pub async fn execute(
    client: &mut Client,
    plan: &Plan,
    varbinds: &mut VarbindSet,
) -> Result<(), SnmpError> {
    client.get(&plan.get, varbinds).await?;
    match client.walk_all(&plan.walk, varbinds).await {
        Ok(n) => debug!(subtrees = plan.walk.len(), n, "walked"),
        Err(SnmpError::ErrorStatus { status, index }) => {
            debug!(status, index, "walk rejected")
        }
        Err(e) => return Err(e),
    }
    Ok(())
}

fn cause_of(error: &SnmpError) -> NoResponseCause {
    match error {
        SnmpError::Timeout { .. } => NoResponseCause::Timeout,
        SnmpError::Network(_) | SnmpError::Resolve(_) => NoResponseCause::Network,
        SnmpError::Protocol(snmp2::Error::CommunityMismatch) | SnmpError::Auth(_) => {
            NoResponseCause::Auth
        }
        SnmpError::Config(_) => NoResponseCause::BadResponse,
        SnmpError::Protocol(_) | SnmpError::ErrorStatus { .. } => NoResponseCause::BadResponse,
    }
}
