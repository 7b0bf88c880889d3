//! The load itself: closed-loop workers (one request after another per connection) or
//! open-loop workers (requests due on a fixed schedule, latency counted from when each was due),
//! warm-up, the stop conditions, and Ctrl-C.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, Mutex};
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
    /// Open loop: the interval between due times.
    period: Option<Duration>,
    timeout: Duration,
    stopped: AtomicBool,
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
            timeout: cfg.args.timeout,
            stopped: AtomicBool::new(false),
        }
    }

    /// Ends the run early (Ctrl-C): no new request starts.
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::Relaxed);
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
    let tickets = plan.period.map(|period| {
        let (tx, rx) = mpsc::unbounded_channel();
        let pacer = Arc::clone(&plan);
        std::thread::Builder::new()
            .name("inferd-bench-pacer".into())
            .spawn(move || pace(&pacer, period, &tx))
            .map(|_| Arc::new(Mutex::new(rx)))
            .ok()
    });
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
        let tickets = tickets.clone();
        handles.push(tokio::spawn(async move {
            match tickets {
                None => closed_loop(client, w, &plan, &recorder).await,
                Some(Some(tickets)) => open_loop(client, w, &plan, &recorder, &tickets).await,
                // No pacer thread, no open loop: end at once with nothing measured.
                Some(None) => Instant::now(),
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

/// Issues the open loop's due times from a thread of its own: `std::thread::sleep` wakes within
/// tens of microseconds where tokio's timer rounds up to the next millisecond, which would add
/// up to a millisecond of the generator's own lateness to every latency. Stops at the deadline,
/// on Ctrl-C, or once every worker has left.
fn pace(plan: &Plan, period: Duration, tickets: &mpsc::UnboundedSender<Instant>) {
    let start = plan.load_start.into_std();
    for n in 0u64.. {
        let due = start + period.mul_f64(n as f64);
        if plan.past_deadline(Instant::from_std(due)) {
            return;
        }
        // Sleep in slices, so that Ctrl-C is noticed at low rates too.
        loop {
            if plan.is_stopped() {
                return;
            }
            let now = std::time::Instant::now();
            if now >= due {
                break;
            }
            std::thread::sleep((due - now).min(Duration::from_millis(100)));
        }
        if tickets.send(Instant::from_std(due)).is_err() {
            return;
        }
    }
}

/// Open loop: each worker takes the next due request off the pacer's queue, sends it, and
/// records latency from when it was due, so time spent queued behind slow answers counts
/// (coordinated omission is not hidden). Returns when it finished.
async fn open_loop(
    mut client: Client,
    worker: usize,
    plan: &Plan,
    recorder: &Recorder,
    tickets: &Mutex<mpsc::UnboundedReceiver<Instant>>,
) -> Instant {
    let mut i = worker;
    loop {
        // Idle workers queue on the lock; the one holding it waits for the next due time.
        let Some(due) = tickets.lock().await.recv().await else {
            return Instant::now();
        };
        if plan.is_stopped() {
            return Instant::now();
        }
        let measured = due >= plan.measure_start;
        if measured && !plan.claim() {
            return Instant::now();
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
