//! The open connections of one port, what each is doing, and the sweeper that applies the
//! header, idle and write timeouts to them.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use crate::metrics::PortMetrics;
use crate::ConnectionLimits;

/// Why a connection was ended by the server; the `reason` label of
/// `inferd_connections_closed_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    HeaderTimeout,
    Idle,
    WriteTimeout,
    Evicted,
    Draining,
}

impl Reason {
    pub const ALL: [Reason; 5] = [
        Reason::HeaderTimeout,
        Reason::Idle,
        Reason::WriteTimeout,
        Reason::Evicted,
        Reason::Draining,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Reason::HeaderTimeout => "header_timeout",
            Reason::Idle => "idle",
            Reason::WriteTimeout => "write_timeout",
            Reason::Evicted => "evicted",
            Reason::Draining => "draining",
        }
    }
}

/// What the server wants a connection to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Run,
    /// Finish in-flight requests, then close (HTTP/2: GOAWAY).
    Shutdown(Reason),
    /// Close now: the peer is misbehaving.
    Close(Reason),
}

/// One connection, as the request path updates it (atomics only) and the sweeper reads it.
pub struct Conn {
    id: u64,
    pub in_flight: AtomicU32,
    pub requests: AtomicU64,
    pub bytes_read: AtomicU64,
    /// Set once the client's first bytes are the HTTP/2 preface.
    pub http2: AtomicBool,
    /// Milliseconds since the table's epoch when a write was first refused, 0 while writes go.
    pub write_blocked_since: AtomicU64,
    epoch: Instant,
    action: AtomicU8,
    /// `now_ms` when a graceful shutdown was asked for, 0 before.
    shutdown_at: AtomicU64,
    /// Ended to make room at the connection cap (counted in `Table::evicting` until removed).
    evicted: AtomicBool,
    signal: Notify,
    /// What the sweeper saw last (the sweeper and eviction lock this, never the request path).
    watch: Mutex<Watch>,
}

#[derive(Default)]
struct Watch {
    idle_since: Option<Instant>,
    seen_requests: u64,
    seen_bytes: u64,
    head_started: Option<Instant>,
}

impl Conn {
    pub fn action(&self) -> Action {
        decode(self.action.load(Ordering::Acquire))
    }

    /// Resolves when the server has asked this connection to shut down or close.
    pub async fn signalled(&self) {
        self.signal.notified().await
    }

    /// Milliseconds since the table's epoch, for `write_blocked_since` (never 0).
    pub fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64 + 1
    }

    /// Asks for `action` unless a stronger one was asked already; true if it was new.
    fn request(&self, action: Action) -> bool {
        let code = encode(action);
        if let Action::Shutdown(_) = action {
            let _ = self.shutdown_at.compare_exchange(
                0,
                self.now_ms(),
                Ordering::AcqRel,
                Ordering::Relaxed,
            );
        }
        let previous = self.action.fetch_max(code, Ordering::AcqRel);
        if previous < code {
            self.signal.notify_one();
            true
        } else {
            false
        }
    }
}

impl Conn {
    /// Neither a request nor a byte since it was accepted: closing it loses nothing, and an
    /// HTTP/2 client that never sent its preface would not take part in a graceful close.
    fn silent(&self) -> bool {
        self.requests.load(Ordering::Acquire) == 0 && self.bytes_read.load(Ordering::Acquire) == 0
    }

    /// The way to end an idle connection: a graceful shutdown, or a plain close if silent.
    fn end(&self, reason: Reason) -> Action {
        if self.silent() {
            Action::Close(reason)
        } else {
            Action::Shutdown(reason)
        }
    }
}

fn encode(action: Action) -> u8 {
    match action {
        Action::Run => 0,
        Action::Shutdown(r) => 1 + r as u8,
        Action::Close(r) => 16 + r as u8,
    }
}

fn decode(code: u8) -> Action {
    let reason = |n: u8| Reason::ALL[usize::from(n).min(Reason::ALL.len() - 1)];
    match code {
        0 => Action::Run,
        1..=15 => Action::Shutdown(reason(code - 1)),
        _ => Action::Close(reason(code - 16)),
    }
}

pub struct Table {
    limits: Arc<ConnectionLimits>,
    metrics: PortMetrics,
    epoch: Instant,
    next_id: AtomicU64,
    conns: Mutex<HashMap<u64, Arc<Conn>>>,
    /// Connections evicted and not closed yet: while one is, no other is evicted, so that a
    /// full port closes one connection per new client, not one per retry.
    evicting: AtomicU64,
    empty: Notify,
}

impl Table {
    pub fn new(limits: Arc<ConnectionLimits>, metrics: PortMetrics) -> Arc<Self> {
        Arc::new(Self {
            limits,
            metrics,
            epoch: Instant::now(),
            next_id: AtomicU64::new(0),
            conns: Mutex::new(HashMap::new()),
            evicting: AtomicU64::new(0),
            empty: Notify::new(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<Conn>>> {
        self.conns.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn insert(&self) -> Arc<Conn> {
        let conn = Arc::new(Conn {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            in_flight: AtomicU32::new(0),
            requests: AtomicU64::new(0),
            bytes_read: AtomicU64::new(0),
            http2: AtomicBool::new(false),
            write_blocked_since: AtomicU64::new(0),
            epoch: self.epoch,
            action: AtomicU8::new(0),
            shutdown_at: AtomicU64::new(0),
            evicted: AtomicBool::new(false),
            signal: Notify::new(),
            // A new connection is idle until its first bytes: it may be evicted or time out.
            watch: Mutex::new(Watch {
                idle_since: Some(Instant::now()),
                ..Watch::default()
            }),
        });
        self.lock().insert(conn.id, Arc::clone(&conn));
        self.metrics.accepted.inc();
        self.metrics.open.inc();
        conn
    }

    pub fn remove(&self, conn: &Conn) {
        let now_empty = {
            let mut conns = self.lock();
            conns.remove(&conn.id);
            conns.is_empty()
        };
        self.metrics.open.dec();
        if let Action::Shutdown(reason) | Action::Close(reason) = conn.action() {
            self.metrics.closed(reason).inc();
        }
        // By the flag, not the reason: an evicted connection may end for a stronger one.
        if conn.evicted.load(Ordering::Acquire) {
            self.evicting.fetch_sub(1, Ordering::AcqRel);
        }
        if now_empty {
            self.empty.notify_waiters();
        }
    }

    /// Ends the connection idle the longest, to make room for a new one, unless an evicted
    /// connection is still closing. False if none was evicted.
    pub fn evict_idlest(&self) -> bool {
        if self.evicting.load(Ordering::Acquire) > 0 {
            return false;
        }
        // Chosen and asked under the table's lock, so that the connection is either still in
        // the table (and `remove` will see `evicted`) or not chosen at all.
        let conns = self.lock();
        let idlest = conns
            .values()
            .filter(|c| c.action() == Action::Run && c.in_flight.load(Ordering::Acquire) == 0)
            .filter_map(|c| {
                let w = c.watch.lock().unwrap_or_else(|p| p.into_inner());
                // Idle as the sweeper last saw it, and nothing since: a connection whose
                // next request is arriving is not idle, however long it waited before.
                let quiet = w.seen_requests == c.requests.load(Ordering::Acquire)
                    && w.seen_bytes == c.bytes_read.load(Ordering::Acquire);
                match (w.idle_since, w.head_started) {
                    (Some(since), None) if quiet => Some((since, Arc::clone(c))),
                    _ => None,
                }
            })
            .min_by_key(|(since, _)| *since)
            .map(|(_, c)| c);
        match idlest {
            Some(conn) if conn.request(conn.end(Reason::Evicted)) => {
                conn.evicted.store(true, Ordering::Release);
                self.evicting.fetch_add(1, Ordering::AcqRel);
                true
            }
            _ => false,
        }
    }

    /// Asks every connection to finish and close (the drain).
    pub fn shutdown_all(&self) {
        for conn in self.lock().values() {
            conn.request(Action::Shutdown(Reason::Draining));
        }
    }

    /// Resolves once no connection is open.
    pub async fn closed(&self) {
        loop {
            let notified = self.empty.notified();
            if self.lock().is_empty() {
                return;
            }
            notified.await;
        }
    }

    /// Applies the timeouts, a few times per the shortest one, until aborted.
    pub async fn sweep(self: Arc<Self>) {
        let l = &self.limits;
        let shortest = l
            .header_read_timeout
            .min(l.idle_timeout)
            .min(l.write_timeout);
        let tick = (shortest / 4).clamp(Duration::from_millis(25), Duration::from_secs(1));
        let mut interval = tokio::time::interval(tick);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            interval.tick().await;
            let conns: Vec<Arc<Conn>> = self.lock().values().cloned().collect();
            let now = Instant::now();
            for conn in conns {
                if let Some(action) = self.verdict(&conn, now) {
                    conn.request(action);
                }
            }
        }
    }

    /// What the timeouts say about `conn` at `now`, if anything.
    fn verdict(&self, conn: &Conn, now: Instant) -> Option<Action> {
        let l = &self.limits;
        let blocked = conn.write_blocked_since.load(Ordering::Acquire);
        if blocked != 0
            && conn.now_ms().saturating_sub(blocked) >= l.write_timeout.as_millis() as u64
        {
            return Some(Action::Close(Reason::WriteTimeout));
        }
        match conn.action() {
            Action::Run => {}
            // A graceful close needs the client's help (HTTP/2 waits for GOAWAY's PING to be
            // answered); one that has not ended within the header timeout is forced. The
            // drain is bounded by --shutdown-grace instead: its requests may take longer.
            Action::Shutdown(reason) if reason != Reason::Draining => {
                let asked = conn.shutdown_at.load(Ordering::Acquire);
                let waited = conn.now_ms().saturating_sub(asked);
                return (waited >= l.header_read_timeout.as_millis() as u64)
                    .then_some(Action::Close(reason));
            }
            _ => return None,
        }
        let mut w = conn.watch.lock().unwrap_or_else(|p| p.into_inner());
        if conn.in_flight.load(Ordering::Acquire) > 0 {
            // A request is being handled: its body has its own timeout, inference its deadline.
            w.idle_since = None;
            return None;
        }
        let requests = conn.requests.load(Ordering::Acquire);
        let bytes = conn.bytes_read.load(Ordering::Acquire);
        if w.idle_since.is_none() || requests != w.seen_requests {
            *w = Watch {
                idle_since: Some(now),
                seen_requests: requests,
                seen_bytes: bytes,
                head_started: None,
            };
            return None;
        }
        // HTTP/2 exchanges frames (SETTINGS, PING) between requests; only HTTP/1 bytes mean
        // that a request head is on its way.
        if bytes != w.seen_bytes && !conn.http2.load(Ordering::Acquire) {
            let started = *w.head_started.get_or_insert(now);
            if now.duration_since(started) >= l.header_read_timeout {
                return Some(Action::Close(Reason::HeaderTimeout));
            }
            return None;
        }
        let idle_since = w.idle_since.unwrap_or(now);
        (now.duration_since(idle_since) >= l.idle_timeout).then(|| conn.end(Reason::Idle))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(limits: ConnectionLimits) -> Arc<Table> {
        Table::new(Arc::new(limits), PortMetrics::new("test"))
    }

    #[test]
    fn actions_round_trip_and_only_escalate() {
        for reason in Reason::ALL {
            for action in [Action::Shutdown(reason), Action::Close(reason)] {
                assert_eq!(decode(encode(action)), action);
            }
        }
        let t = table(ConnectionLimits::default());
        let c = t.insert();
        assert!(c.request(Action::Shutdown(Reason::Idle)));
        assert!(c.request(Action::Close(Reason::HeaderTimeout)));
        assert!(!c.request(Action::Shutdown(Reason::Draining)));
        assert_eq!(c.action(), Action::Close(Reason::HeaderTimeout));
    }

    #[test]
    fn a_partial_head_times_out_and_an_idle_connection_shuts_down() {
        let limits = ConnectionLimits {
            header_read_timeout: Duration::from_secs(2),
            idle_timeout: Duration::from_secs(5),
            ..ConnectionLimits::default()
        };
        let t = table(limits);
        let (slow, idle, h2) = (t.insert(), t.insert(), t.insert());
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);

        assert_eq!(t.verdict(&slow, at(0)), None);
        slow.bytes_read.store(3, Ordering::Release);
        assert_eq!(t.verdict(&slow, at(1)), None); // head started at 1 s
        assert_eq!(t.verdict(&slow, at(2)), None);
        assert_eq!(
            t.verdict(&slow, at(3)),
            Some(Action::Close(Reason::HeaderTimeout))
        );

        assert_eq!(t.verdict(&idle, at(0)), None);
        assert_eq!(t.verdict(&idle, at(4)), None);
        // It never said a word: closed outright.
        assert_eq!(t.verdict(&idle, at(5)), Some(Action::Close(Reason::Idle)));

        // HTTP/2 frames between requests are not a request head.
        h2.http2.store(true, Ordering::Release);
        assert_eq!(t.verdict(&h2, at(0)), None);
        h2.bytes_read.store(100, Ordering::Release);
        assert_eq!(t.verdict(&h2, at(3)), None);
        assert_eq!(t.verdict(&h2, at(5)), Some(Action::Shutdown(Reason::Idle)));
    }

    #[test]
    fn requests_in_flight_keep_a_connection_and_restart_its_idle_clock() {
        let limits = ConnectionLimits {
            idle_timeout: Duration::from_secs(5),
            ..ConnectionLimits::default()
        };
        let t = table(limits);
        let c = t.insert();
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        assert_eq!(t.verdict(&c, at(0)), None);
        c.in_flight.store(1, Ordering::Release);
        c.requests.store(1, Ordering::Release);
        assert_eq!(t.verdict(&c, at(60)), None);
        c.in_flight.store(0, Ordering::Release);
        assert_eq!(t.verdict(&c, at(61)), None);
        assert_eq!(t.verdict(&c, at(65)), None);
        assert_eq!(t.verdict(&c, at(66)), Some(Action::Shutdown(Reason::Idle)));
    }

    #[test]
    fn eviction_picks_the_longest_idle_connection_only() {
        let t = table(ConnectionLimits::default());
        let busy = t.insert();
        let older = t.insert();
        std::thread::sleep(Duration::from_millis(2));
        let newer = t.insert();
        busy.in_flight.store(1, Ordering::Release);
        newer.requests.store(1, Ordering::Release); // it has spoken since the sweeper looked
        assert!(t.evict_idlest());
        assert_eq!(older.action(), Action::Close(Reason::Evicted));
        assert!(!t.evict_idlest(), "one eviction at a time");
        t.remove(&older);
        assert!(
            !t.evict_idlest(),
            "a connection whose request is arriving is not idle"
        );
        assert_eq!(t.verdict(&newer, Instant::now()), None); // the sweeper sees it idle again
        assert!(t.evict_idlest());
        assert_eq!(newer.action(), Action::Shutdown(Reason::Evicted));
        assert_eq!(busy.action(), Action::Run);
    }

    #[test]
    fn a_graceful_close_that_does_not_finish_is_forced() {
        let limits = ConnectionLimits {
            header_read_timeout: Duration::from_millis(100),
            ..ConnectionLimits::default()
        };
        let t = table(limits);
        let c = t.insert();
        c.requests.store(1, Ordering::Release);
        assert!(c.request(Action::Shutdown(Reason::Idle)));
        assert_eq!(t.verdict(&c, Instant::now()), None);
        std::thread::sleep(Duration::from_millis(120));
        assert_eq!(
            t.verdict(&c, Instant::now()),
            Some(Action::Close(Reason::Idle))
        );
        // The drain waits for its requests; --shutdown-grace bounds it, not the sweeper.
        let d = t.insert();
        assert!(d.request(Action::Shutdown(Reason::Draining)));
        std::thread::sleep(Duration::from_millis(120));
        assert_eq!(t.verdict(&d, Instant::now()), None);
    }
}
