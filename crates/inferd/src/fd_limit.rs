//! The open-file limit, raised to fit the connection cap. Many distributions start processes
//! with a soft limit of 1024 file descriptors; at that limit `accept` fails long before
//! `--max-connections` is reached. As Go's runtime does, raise the soft limit up to the hard
//! one, and say so when even that cannot hold the cap.

use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};

/// File descriptors needed besides the HTTP and gRPC connections: listeners, model files,
/// the metrics and management ports, the runtime's own.
const RESERVE: u64 = 1024;

pub fn fit(max_connections: usize) {
    // Both the HTTP and the gRPC port may each hold `max_connections`.
    let wanted = (max_connections as u64)
        .saturating_mul(2)
        .saturating_add(RESERVE);
    let limit = getrlimit(Resource::Nofile);
    let current = limit.current.unwrap_or(u64::MAX);
    if current >= wanted {
        return;
    }
    let target = limit.maximum.map_or(wanted, |hard| hard.min(wanted));
    let raised = target > current
        && setrlimit(
            Resource::Nofile,
            Rlimit {
                current: Some(target),
                maximum: limit.maximum,
            },
        )
        .is_ok();
    let now = if raised { target } else { current };
    if now < wanted {
        tracing::warn!(
            open_files = now,
            max_connections,
            "the open-file limit cannot hold --max-connections on both ports; accepts will \
             fail and pause before the cap (raise `ulimit -n` or lower --max-connections)"
        );
    } else {
        tracing::debug!(open_files = now, "open-file limit raised");
    }
}
