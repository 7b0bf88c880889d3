//! The load itself: closed-loop workers (one request after another per connection) or
//! open-loop workers (requests due on a fixed schedule, latency counted from when each was due),
//! warm-up, the stop conditions, and Ctrl-C.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;
use tonic::transport::Channel;

use crate::args::{Config, Stop};
use crate::grpc::{self, proto};
use crate::http::{HttpConn, HttpPayload};
use crate::payload::Payloads;
use crate::stats::{Collector, ErrorKind, Recorder, Tally};
use crate::target::Target;

/// Pause after a failed connect, so that a server that is down is not hammered in a hot loop
/// that would also starve the server sharing this machine.
const CONNECT_BACKOFF: Duration = Duration::from_millis(10);

/// The schedule every worker follows.
#[derive(Debug)]
pub struct Plan {
    pub load_start: Instant,
    pub measure_start: Instant,
    deadline: Option<Instant>,
    /// Measured requests left to start (`--requests`).
    budget: Option<AtomicU64>,
    /// Open loop: the interval between due times, and the next request's number.
    period: Option<Duration>,
    ticket: AtomicU64,
    timeout: Duration,
    stopped: AtomicBool,
    stop_notify: Notify,
}

impl Plan {
    pub fn new(cfg: &Config) -> Plan {
        let load_start = Instant::now();
        let measure_start = load_start + cfg.args.warmup;
        let (deadline, budget) = match cfg.stop {
            Stop::After(d) => (Some(measure_start + d), None),
            Stop::Requests(n) => (None, Some(AtomicU64::new(n))),
        };
        Plan {
            load_start,
            measure_start,
            deadline,
            budget,
            period: cfg.args.rate.map(|r| Duration::from_secs_f64(1.0 / r)),
            ticket: AtomicU64::new(0),
            timeout: cfg.args.timeout,
            stopped: AtomicBool::new(false),
            stop_notify: Notify::new(),
        }
    }

    /// Ends the run early (Ctrl-C): no new request starts.
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::Relaxed);
        self.stop_notify.notify_waiters();
    }

    pub fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::Relaxed)
    }

    /// Takes one measured request from the `--requests` budget; false once it is spent.
    fn claim(&self) -> bool {
        match &self.budget {
            None => true,
            Some(left) => left
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
                .is_ok(),
        }
    }

    fn past_deadline(&self, t: Instant) -> bool {
        self.deadline.is_some_and(|d| t >= d)
    }
}

/// A worker's way to the server.
enum Client {
    Http {
        conn: HttpConn,
        payloads: Arc<Vec<HttpPayload>>,
    },
    Grpc {
        client: grpc::Client<Channel>,
        payloads: Arc<Vec<proto::ModelInferRequest>>,
    },
}

impl Client {
    async fn prepare(&mut self, timeout: Duration) -> Result<(), ErrorKind> {
        match self {
            Client::Http { conn, .. } => conn.ensure_connected(timeout).await,
            Client::Grpc { .. } => Ok(()),
        }
    }

    async fn send(&mut self, i: usize, timeout: Duration) -> Result<(), ErrorKind> {
        match self {
            Client::Http { conn, payloads } => {
                conn.post(&payloads[i % payloads.len()], timeout).await
            }
            Client::Grpc { client, payloads } => {
                let request = payloads[i % payloads.len()].clone();
                match tokio::time::timeout(timeout, client.model_infer(request)).await {
                    Err(_) => Err(ErrorKind::Timeout),
                    Ok(Err(status)) => Err(grpc::classify(&status)),
                    Ok(Ok(_)) => Ok(()),
                }
            }
        }
    }
}

/// What the load measured.
#[derive(Debug)]
pub struct Measured {
    pub tally: Tally,
    pub elapsed: Duration,
    pub interrupted: bool,
}

/// Runs the workers to the end of the plan and returns the totals.
pub async fn run(
    cfg: &Config,
    target: Arc<Target>,
    payloads: Payloads,
    channels: Vec<Channel>,
    plan: Arc<Plan>,
    collector: Arc<Collector>,
) -> Measured {
    let workers = cfg.args.concurrency;
    let (http, grpc_payloads) = match payloads {
        Payloads::Http(p) => (Some(Arc::new(p)), None),
        Payloads::Grpc(p) => (None, Some(Arc::new(p))),
    };
    let mut handles = Vec::with_capacity(workers);
    for w in 0..workers {
        let client = match (&http, &grpc_payloads) {
            (Some(p), _) => Client::Http {
                conn: HttpConn::new(Arc::clone(&target), cfg.args.reconnect_every),
                payloads: Arc::clone(p),
            },
            (None, Some(p)) => Client::Grpc {
                client: grpc::Client::new(channels[w % channels.len()].clone()),
                payloads: Arc::clone(p),
            },
            (None, None) => unreachable!("payloads are either HTTP or gRPC"),
        };
        let plan = Arc::clone(&plan);
        let recorder = collector.recorder(w);
        handles.push(tokio::spawn(async move {
            if plan.period.is_some() {
                open_loop(client, w, &plan, &recorder).await
            } else {
                closed_loop(client, w, &plan, &recorder).await
            }
        }));
    }
    let mut last = plan.measure_start;
    for handle in handles {
        if let Ok(finished) = handle.await {
            last = last.max(finished);
        }
    }
    Measured {
        tally: collector.finish(),
        elapsed: last.saturating_duration_since(plan.measure_start),
        interrupted: plan.is_stopped(),
    }
}

/// One request after another; latency from when each was sent. Returns when it finished.
async fn closed_loop(
    mut client: Client,
    worker: usize,
    plan: &Plan,
    recorder: &Recorder,
) -> Instant {
    let mut i = worker;
    loop {
        let now = Instant::now();
        if plan.is_stopped() || plan.past_deadline(now) {
            return now;
        }
        let measured = now >= plan.measure_start;
        if measured && !plan.claim() {
            return now;
        }
        if let Err(kind) = client.prepare(plan.timeout).await {
            if measured {
                recorder.record(now.elapsed(), Err(kind));
            }
            tokio::time::sleep(CONNECT_BACKOFF).await;
            continue;
        }
        let sent = Instant::now();
        let result = client.send(i, plan.timeout).await;
        if measured {
            recorder.record(sent.elapsed(), result);
        }
        i = i.wrapping_add(1);
    }
}

/// Requests due every `period` across all workers; each worker takes the next due time, waits
/// for it, sends, and records latency from the due time, so time spent queued behind a slow
/// answer counts (coordinated omission is not hidden). Returns when it finished.
async fn open_loop(mut client: Client, worker: usize, plan: &Plan, recorder: &Recorder) -> Instant {
    let period = plan.period.unwrap_or(Duration::from_secs(1));
    let mut i = worker;
    loop {
        let n = plan.ticket.fetch_add(1, Ordering::Relaxed);
        let due = plan.load_start + period.mul_f64(n as f64);
        if plan.is_stopped() || plan.past_deadline(due) {
            return Instant::now();
        }
        let measured = due >= plan.measure_start;
        if measured && !plan.claim() {
            return Instant::now();
        }
        if due > Instant::now() {
            tokio::select! {
                () = tokio::time::sleep_until(due) => {}
                () = plan.stop_notify.notified() => return Instant::now(),
            }
        }
        if measured {
            recorder.record_send_lag(due.elapsed());
        }
        let result = match client.prepare(plan.timeout).await {
            Ok(()) => client.send(i, plan.timeout).await,
            Err(kind) => Err(kind),
        };
        if measured {
            recorder.record(due.elapsed(), result);
        }
        i = i.wrapping_add(1);
    }
}
