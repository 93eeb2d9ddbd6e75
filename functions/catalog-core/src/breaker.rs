//! A circuit breaker per downstream (DynamoDB, the API Gateway management API).
//!
//! Closed: calls pass; failures are counted in a fixed time window, and a call
//! slower than `slow_call` counts as a failure. When the window holds at least
//! `min_calls` calls and the failure ratio reaches `failure_ratio`, it opens.
//! Open: calls are refused at once (nothing sleeps; the caller returns the
//! message to its queue) until `cooldown` has passed. Half-open: up to
//! `half_open_probes` calls at a time are let through; that many successes
//! close it, one failure opens it again.
//!
//! The state lives in the warm Lambda container, so each container has its own
//! breaker. Every transition is logged with its reason and counts.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::config::{self, ConfigError};

#[derive(Clone, Debug, PartialEq)]
pub struct BreakerConfig {
    pub failure_ratio: f64,
    pub min_calls: u32,
    pub window: Duration,
    pub cooldown: Duration,
    pub half_open_probes: u32,
    pub slow_call: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            failure_ratio: 0.5,
            min_calls: 10,
            window: Duration::from_secs(30),
            cooldown: Duration::from_secs(15),
            half_open_probes: 3,
            slow_call: Duration::from_secs(2),
        }
    }
}

impl BreakerConfig {
    /// Reads `BREAKER_FAILURE_RATIO`, `BREAKER_MIN_CALLS`, `BREAKER_WINDOW_SECS`,
    /// `BREAKER_COOLDOWN_SECS`, `BREAKER_HALF_OPEN_PROBES` and `BREAKER_SLOW_CALL_MS`;
    /// each falls back to its default.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::read(&config::Env::Process)
    }

    pub fn read(env: &config::Env) -> Result<Self, ConfigError> {
        let d = Self::default();
        let config = Self {
            failure_ratio: env.parsed_or("BREAKER_FAILURE_RATIO", d.failure_ratio)?,
            min_calls: env.parsed_or("BREAKER_MIN_CALLS", d.min_calls)?,
            window: Duration::from_secs_f64(
                env.parsed_or("BREAKER_WINDOW_SECS", d.window.as_secs_f64())?,
            ),
            cooldown: Duration::from_secs_f64(
                env.parsed_or("BREAKER_COOLDOWN_SECS", d.cooldown.as_secs_f64())?,
            ),
            half_open_probes: env.parsed_or("BREAKER_HALF_OPEN_PROBES", d.half_open_probes)?,
            slow_call: Duration::from_millis(
                env.parsed_or("BREAKER_SLOW_CALL_MS", d.slow_call.as_millis() as u64)?,
            ),
        };
        config.validated()
    }

    pub fn validated(self) -> Result<Self, ConfigError> {
        let config = self;
        if !(config.failure_ratio > 0.0 && config.failure_ratio <= 1.0) {
            return Err(ConfigError::Invalid {
                name: "BREAKER_FAILURE_RATIO",
                value: config.failure_ratio.to_string(),
                reason: "must be in (0, 1]".to_owned(),
            });
        }
        if config.min_calls == 0 || config.half_open_probes == 0 {
            return Err(ConfigError::Invalid {
                name: "BREAKER_MIN_CALLS/BREAKER_HALF_OPEN_PROBES",
                value: "0".to_owned(),
                reason: "must be at least 1".to_owned(),
            });
        }
        Ok(config)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BreakerState {
    Closed,
    Open,
    HalfOpen,
}

impl BreakerState {
    /// As a metric: 0 closed, 1 half-open, 2 open.
    pub fn as_gauge(self) -> u8 {
        match self {
            BreakerState::Closed => 0,
            BreakerState::HalfOpen => 1,
            BreakerState::Open => 2,
        }
    }

    fn name(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half-open",
        }
    }
}

/// Totals since the container started, for metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BreakerCounts {
    pub successes: u64,
    pub failures: u64,
    pub rejected: u64,
    pub opened: u64,
}

/// What a metrics line reports about a breaker since the previous line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BreakerReport {
    pub state: BreakerState,
    pub openings: u64,
    pub rejected: u64,
}

#[derive(Debug)]
struct Inner {
    state: BreakerState,
    window_started: Instant,
    window_calls: u32,
    window_failures: u32,
    opened_at: Instant,
    probes_in_flight: u32,
    probe_successes: u32,
    counts: BreakerCounts,
    reported: BreakerCounts,
}

/// Proof that a call was admitted; hand it back with the outcome.
#[must_use = "record the call's outcome"]
#[derive(Debug)]
pub struct Permit {
    started: Instant,
    probe: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("circuit breaker for {downstream} is open; calls are refused until it has cooled down")]
pub struct Rejected {
    pub downstream: &'static str,
}

#[derive(Debug)]
pub struct CircuitBreaker {
    downstream: &'static str,
    config: BreakerConfig,
    inner: Mutex<Inner>,
}

impl CircuitBreaker {
    pub fn new(downstream: &'static str, config: BreakerConfig) -> Self {
        let now = Instant::now();
        Self {
            downstream,
            config,
            inner: Mutex::new(Inner {
                state: BreakerState::Closed,
                window_started: now,
                window_calls: 0,
                window_failures: 0,
                opened_at: now,
                probes_in_flight: 0,
                probe_successes: 0,
                counts: BreakerCounts::default(),
                reported: BreakerCounts::default(),
            }),
        }
    }

    pub fn downstream(&self) -> &'static str {
        self.downstream
    }

    pub fn state(&self) -> BreakerState {
        self.inner.lock().unwrap().state
    }

    pub fn counts(&self) -> BreakerCounts {
        self.inner.lock().unwrap().counts
    }

    /// The state now, and openings and refusals since the previous report.
    pub fn report(&self) -> BreakerReport {
        let mut inner = self.inner.lock().unwrap();
        let report = BreakerReport {
            state: inner.state,
            openings: inner.counts.opened - inner.reported.opened,
            rejected: inner.counts.rejected - inner.reported.rejected,
        };
        inner.reported = inner.counts;
        report
    }

    pub fn try_acquire(&self) -> Result<Permit, Rejected> {
        self.try_acquire_at(Instant::now())
    }

    pub fn record(&self, permit: Permit, succeeded: bool) {
        self.record_at(permit, succeeded, Instant::now())
    }

    /// Runs `call` under the breaker; `is_failure` says which errors mean the downstream is unwell.
    pub async fn call<T, E, F>(
        &self,
        call: F,
        is_failure: impl Fn(&E) -> bool,
    ) -> Result<Result<T, E>, Rejected>
    where
        F: std::future::Future<Output = Result<T, E>>,
    {
        let permit = self.try_acquire()?;
        let result = call.await;
        self.record(permit, !matches!(&result, Err(e) if is_failure(e)));
        Ok(result)
    }

    pub fn try_acquire_at(&self, now: Instant) -> Result<Permit, Rejected> {
        let mut inner = self.inner.lock().unwrap();
        match inner.state {
            BreakerState::Closed => Ok(Permit {
                started: now,
                probe: false,
            }),
            BreakerState::Open if now.duration_since(inner.opened_at) >= self.config.cooldown => {
                self.transition(
                    &mut inner,
                    BreakerState::HalfOpen,
                    now,
                    "cool-down elapsed; probing",
                );
                inner.probes_in_flight = 1;
                Ok(Permit {
                    started: now,
                    probe: true,
                })
            }
            BreakerState::HalfOpen if inner.probes_in_flight < self.config.half_open_probes => {
                inner.probes_in_flight += 1;
                Ok(Permit {
                    started: now,
                    probe: true,
                })
            }
            BreakerState::Open | BreakerState::HalfOpen => {
                inner.counts.rejected += 1;
                Err(Rejected {
                    downstream: self.downstream,
                })
            }
        }
    }

    pub fn record_at(&self, permit: Permit, succeeded: bool, now: Instant) {
        let slow = now.duration_since(permit.started) >= self.config.slow_call;
        let failed = !succeeded || slow;
        let mut inner = self.inner.lock().unwrap();
        if failed {
            inner.counts.failures += 1;
        } else {
            inner.counts.successes += 1;
        }
        match inner.state {
            BreakerState::HalfOpen if permit.probe => {
                inner.probes_in_flight = inner.probes_in_flight.saturating_sub(1);
                if failed {
                    let why = if slow {
                        "a probe was too slow"
                    } else {
                        "a probe failed"
                    };
                    self.transition(&mut inner, BreakerState::Open, now, why);
                } else {
                    inner.probe_successes += 1;
                    if inner.probe_successes >= self.config.half_open_probes {
                        self.transition(&mut inner, BreakerState::Closed, now, "probes succeeded");
                    }
                }
            }
            // A call admitted before the breaker opened finishes late: it no longer decides anything.
            BreakerState::HalfOpen | BreakerState::Open => {}
            BreakerState::Closed => {
                if now.duration_since(inner.window_started) >= self.config.window {
                    inner.window_started = now;
                    inner.window_calls = 0;
                    inner.window_failures = 0;
                }
                inner.window_calls += 1;
                if failed {
                    inner.window_failures += 1;
                }
                let ratio = f64::from(inner.window_failures) / f64::from(inner.window_calls);
                if inner.window_calls >= self.config.min_calls && ratio >= self.config.failure_ratio
                {
                    self.transition(&mut inner, BreakerState::Open, now, "failure ratio reached");
                }
            }
        }
    }

    fn transition(&self, inner: &mut Inner, to: BreakerState, now: Instant, reason: &str) {
        let from = inner.state;
        let (calls, failures) = (inner.window_calls, inner.window_failures);
        inner.state = to;
        inner.probe_successes = 0;
        inner.probes_in_flight = 0;
        match to {
            BreakerState::Open => {
                inner.opened_at = now;
                inner.counts.opened += 1;
                tracing::error!(
                    breaker = self.downstream,
                    from = from.name(),
                    to = to.name(),
                    reason,
                    window_calls = calls,
                    window_failures = failures,
                    total_successes = inner.counts.successes,
                    total_failures = inner.counts.failures,
                    "circuit breaker opened"
                );
            }
            BreakerState::Closed => {
                inner.window_started = now;
                inner.window_calls = 0;
                inner.window_failures = 0;
                tracing::warn!(
                    breaker = self.downstream,
                    from = from.name(),
                    to = to.name(),
                    reason,
                    total_successes = inner.counts.successes,
                    total_failures = inner.counts.failures,
                    "circuit breaker closed"
                );
            }
            BreakerState::HalfOpen => {
                tracing::warn!(
                    breaker = self.downstream,
                    from = from.name(),
                    to = to.name(),
                    reason,
                    total_rejected = inner.counts.rejected,
                    "circuit breaker half-open"
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> BreakerConfig {
        BreakerConfig {
            failure_ratio: 0.5,
            min_calls: 4,
            window: Duration::from_secs(10),
            cooldown: Duration::from_secs(5),
            half_open_probes: 2,
            slow_call: Duration::from_secs(1),
        }
    }

    fn call(b: &CircuitBreaker, at: Instant, ok: bool) -> Result<(), Rejected> {
        let permit = b.try_acquire_at(at)?;
        b.record_at(permit, ok, at);
        Ok(())
    }

    #[test]
    fn stays_closed_below_min_calls_and_below_ratio() {
        let b = CircuitBreaker::new("test", config());
        let t = Instant::now();
        for _ in 0..3 {
            call(&b, t, false).unwrap();
        }
        assert_eq!(b.state(), BreakerState::Closed, "3 failures < min_calls");
        let b = CircuitBreaker::new("test", config());
        for ok in [true, true, false, true, true, false, true] {
            call(&b, t, ok).unwrap();
        }
        assert_eq!(b.state(), BreakerState::Closed, "2/7 < 50 %");
    }

    #[test]
    fn opens_at_the_ratio_and_refuses_fast() {
        let b = CircuitBreaker::new("test", config());
        let t = Instant::now();
        for ok in [true, false, true, false] {
            call(&b, t, ok).unwrap();
        }
        assert_eq!(b.state(), BreakerState::Open);
        assert_eq!(
            call(&b, t + Duration::from_secs(1), true),
            Err(Rejected { downstream: "test" })
        );
        assert_eq!(
            b.counts(),
            BreakerCounts {
                successes: 2,
                failures: 2,
                rejected: 1,
                opened: 1
            }
        );
        assert_eq!(
            b.report(),
            BreakerReport {
                state: BreakerState::Open,
                openings: 1,
                rejected: 1
            }
        );
        assert_eq!(
            b.report(),
            BreakerReport {
                state: BreakerState::Open,
                openings: 0,
                rejected: 0
            },
            "reports are deltas"
        );
    }

    #[test]
    fn the_window_forgets_old_failures() {
        let b = CircuitBreaker::new("test", config());
        let t = Instant::now();
        for _ in 0..3 {
            call(&b, t, false).unwrap();
        }
        let later = t + Duration::from_secs(11);
        for ok in [false, true, true] {
            call(&b, later, ok).unwrap();
        }
        assert_eq!(
            b.state(),
            BreakerState::Closed,
            "the three old failures fell out of the window"
        );
    }

    #[test]
    fn slow_calls_count_as_failures() {
        let b = CircuitBreaker::new("test", config());
        let t = Instant::now();
        for _ in 0..4 {
            let permit = b.try_acquire_at(t).unwrap();
            b.record_at(permit, true, t + Duration::from_millis(1500));
        }
        assert_eq!(b.state(), BreakerState::Open);
    }

    fn opened(t: Instant) -> CircuitBreaker {
        let b = CircuitBreaker::new("test", config());
        for _ in 0..4 {
            call(&b, t, false).unwrap();
        }
        assert_eq!(b.state(), BreakerState::Open);
        b
    }

    #[test]
    fn half_open_after_cooldown_limits_probes_and_closes_on_success() {
        let t = Instant::now();
        let b = opened(t);
        assert!(
            b.try_acquire_at(t + Duration::from_secs(4)).is_err(),
            "still cooling down"
        );
        let after = t + Duration::from_secs(5);
        let p1 = b.try_acquire_at(after).unwrap();
        assert_eq!(b.state(), BreakerState::HalfOpen);
        let p2 = b.try_acquire_at(after).unwrap();
        assert!(
            b.try_acquire_at(after).is_err(),
            "only two probes at a time"
        );
        b.record_at(p1, true, after);
        assert_eq!(
            b.state(),
            BreakerState::HalfOpen,
            "one success is not enough"
        );
        b.record_at(p2, true, after);
        assert_eq!(b.state(), BreakerState::Closed);
        call(&b, after, true).unwrap();
    }

    #[test]
    fn a_failed_probe_reopens_and_restarts_the_cooldown() {
        let t = Instant::now();
        let b = opened(t);
        let after = t + Duration::from_secs(5);
        let probe = b.try_acquire_at(after).unwrap();
        b.record_at(probe, false, after);
        assert_eq!(b.state(), BreakerState::Open);
        assert!(b.try_acquire_at(after + Duration::from_secs(4)).is_err());
        assert!(b.try_acquire_at(after + Duration::from_secs(5)).is_ok());
        assert_eq!(b.counts().opened, 2);
    }

    #[test]
    fn late_results_of_calls_admitted_before_opening_change_nothing() {
        let t = Instant::now();
        let b = CircuitBreaker::new("test", config());
        let early = b.try_acquire_at(t).unwrap();
        for _ in 0..4 {
            call(&b, t, false).unwrap();
        }
        b.record_at(early, true, t);
        assert_eq!(b.state(), BreakerState::Open);
    }

    #[tokio::test]
    async fn call_classifies_errors() {
        let b = CircuitBreaker::new(
            "test",
            BreakerConfig {
                min_calls: 2,
                ..config()
            },
        );
        let client_error = |e: &&str| *e != "not found";
        assert_eq!(
            b.call(async { Err::<(), _>("not found") }, client_error)
                .await,
            Ok(Err("not found"))
        );
        assert_eq!(
            b.call(async { Err::<(), _>("not found") }, client_error)
                .await,
            Ok(Err("not found"))
        );
        assert_eq!(
            b.state(),
            BreakerState::Closed,
            "errors that are not the downstream's fault do not count"
        );
        let _ = b.call(async { Err::<(), _>("500") }, client_error).await;
        let _ = b.call(async { Err::<(), _>("500") }, client_error).await;
        assert_eq!(b.state(), BreakerState::Open);
    }

    #[test]
    fn config_rejects_nonsense() {
        assert!(BreakerConfig::default().validated().is_ok());
        assert!(BreakerConfig {
            failure_ratio: 0.0,
            ..config()
        }
        .validated()
        .is_err());
        assert!(BreakerConfig {
            failure_ratio: 1.5,
            ..config()
        }
        .validated()
        .is_err());
        assert!(BreakerConfig {
            min_calls: 0,
            ..config()
        }
        .validated()
        .is_err());
        assert!(BreakerConfig {
            half_open_probes: 0,
            ..config()
        }
        .validated()
        .is_err());
    }
}
