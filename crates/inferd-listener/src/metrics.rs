//! Connection metrics, by port: open connections, accepted and closed ones (with the reason
//! the server closed them), how often the connection cap was reached, and accept errors.

use std::sync::LazyLock;

use prometheus::{IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts};

use crate::table::Reason;

struct Families {
    open: IntGaugeVec,
    accepted: IntCounterVec,
    closed: IntCounterVec,
    limit_reached: IntCounterVec,
    accept_errors: IntCounterVec,
}

static FAMILIES: LazyLock<Families> = LazyLock::new(|| {
    let registry = inferd_core::metrics::registry();
    let counter = |name: &str, help: &str, labels: &[&str]| {
        let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric definition");
        registry
            .register(Box::new(c.clone()))
            .expect("metric registered once");
        c
    };
    let open = IntGaugeVec::new(
        Opts::new("inferd_connections", "Connections open now, by port."),
        &["port"],
    )
    .expect("valid metric definition");
    registry
        .register(Box::new(open.clone()))
        .expect("metric registered once");
    Families {
        open,
        accepted: counter(
            "inferd_connections_accepted_total",
            "Connections accepted, by port.",
            &["port"],
        ),
        closed: counter(
            "inferd_connections_closed_total",
            "Connections the server ended, by port and reason: header_timeout, idle, \
             write_timeout, evicted (idle, closed to make room at the connection cap), draining.",
            &["port", "reason"],
        ),
        limit_reached: counter(
            "inferd_connection_limit_reached_total",
            "Times a new connection found the port at its connection cap (accepting paused).",
            &["port"],
        ),
        accept_errors: counter(
            "inferd_accept_errors_total",
            "Failed accepts (out of file descriptors or memory), by port.",
            &["port"],
        ),
    }
});

/// One port's series, looked up once.
#[derive(Clone)]
pub struct PortMetrics {
    pub open: IntGauge,
    pub accepted: IntCounter,
    pub limit_reached: IntCounter,
    pub accept_errors: IntCounter,
    closed: [IntCounter; Reason::ALL.len()],
}

impl PortMetrics {
    pub fn new(port: &str) -> Self {
        let f = &*FAMILIES;
        Self {
            open: f.open.with_label_values(&[port]),
            accepted: f.accepted.with_label_values(&[port]),
            limit_reached: f.limit_reached.with_label_values(&[port]),
            accept_errors: f.accept_errors.with_label_values(&[port]),
            closed: Reason::ALL.map(|r| f.closed.with_label_values(&[port, r.as_str()])),
        }
    }

    pub fn closed(&self, reason: Reason) -> &IntCounter {
        &self.closed[reason as usize]
    }
}
