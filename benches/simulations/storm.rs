//! (a) The retry storm: 2000 clients call at t = 0 a provider that accepts 100 requests/s with
//! a burst of 100 and answers in 20 ms; each client retries until it succeeds (1 s initial delay,
//! factor 2, cap 10 s). Runs on tokio's paused clock.
//!
//! Our side is driven exactly as `#[retry_on_failure]` expands (`retry_workspace::drive`): `Gate::admit` before each
//! attempt (sleeping a `Wait`), the attempt, `CallState::step` with the gate's `settle` and the
//! observer, `__private::sleep` between attempts. The baselines are backon and tokio-retry2 with
//! the same schedule.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use retry_runtime::{
    AdaptiveThrottle, CircuitOpen, Gate, Jitter, Observer, RetryBudget, RetryPolicy, Retryable,
};
use tokio::task::JoinSet;
use tokio::time::Instant;

pub const CLIENTS: usize = 2000;
const RATE: u64 = 100;
const BURST: u64 = 100;
const LATENCY: Duration = Duration::from_millis(20);
/// One token of the provider's bucket, in nanoseconds of refill: integer arithmetic keeps the
/// bucket exact at 10 ms spacing.
const TOKEN_NANOS: u64 = 1_000_000_000 / RATE;

#[derive(Debug)]
pub enum ProviderError {
    RateLimited,
    CircuitOpen,
}

impl Retryable for ProviderError {
    fn is_retryable(&self) -> bool {
        matches!(self, ProviderError::RateLimited)
    }
    fn is_rate_limited(&self) -> bool {
        matches!(self, ProviderError::RateLimited)
    }
}

impl From<CircuitOpen> for ProviderError {
    fn from(_: CircuitOpen) -> Self {
        ProviderError::CircuitOpen
    }
}

/// The rate-limited provider: decides at arrival, answers after `LATENCY`.
pub struct Provider {
    /// (tokens in nanoseconds of refill, time of the last refill)
    bucket: Mutex<(u64, Instant)>,
    calls: AtomicU64,
}

impl Provider {
    fn new() -> Provider {
        Provider {
            bucket: Mutex::new((BURST * TOKEN_NANOS, Instant::now())),
            calls: AtomicU64::new(0),
        }
    }

    pub async fn call(&self) -> Result<(), ProviderError> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let accepted = {
            let mut b = self.bucket.lock().unwrap();
            let now = Instant::now();
            let refill = u64::try_from((now - b.1).as_nanos()).unwrap_or(u64::MAX);
            let tokens = b.0.saturating_add(refill).min(BURST * TOKEN_NANOS);
            let accepted = tokens >= TOKEN_NANOS;
            *b = (tokens - if accepted { TOKEN_NANOS } else { 0 }, now);
            accepted
        };
        tokio::time::sleep(LATENCY).await;
        if accepted {
            Ok(())
        } else {
            Err(ProviderError::RateLimited)
        }
    }
}

/// One call, exactly as the attribute drives it, with `gate` and `observer`.
async fn ours<G: Gate, O: Observer<ProviderError>>(
    policy: &RetryPolicy,
    gate: G,
    observer: O,
    provider: &Provider,
) -> Result<(), ProviderError> {
    retry_workspace::drive::retry_call(policy, gate, observer, || provider.call()).await
}

/// What is compared.
#[derive(Clone, Copy, Debug)]
pub enum Variant {
    /// Our attribute with this jitter and nothing shared.
    Jitter(Jitter),
    /// Full jitter plus a default `RetryBudget`.
    Budget,
    /// Full jitter plus a default (open-start) `AdaptiveThrottle`.
    Throttle,
    /// Full jitter plus an `AdaptiveThrottle` that starts paced at a guess of the provider's
    /// quota (requests per second): the quota itself, or a guess off by some factor.
    ThrottleGuess(u32),
    /// Full jitter plus an `AdaptiveThrottle` that starts at the provider's quota and never goes
    /// above it (`max_rate`): the quota known for certain.
    ThrottleCeiling,
    /// backon's `ExponentialBuilder`, with or without its jitter.
    Backon { jitter: bool },
    /// tokio-retry2's `ExponentialFactorBackoff`, with or without its `jitter`.
    TokioRetry2 { jitter: bool },
}

impl Variant {
    pub fn name(self) -> String {
        match self {
            Variant::Jitter(j) if j == Jitter::default() => {
                format!("ours, jitter = \"{}\" (default)", j.name())
            }
            Variant::Jitter(j) => format!("ours, jitter = \"{}\"", j.name()),
            Variant::Budget => "ours + `RetryBudget::new()`".into(),
            Variant::Throttle => "ours + `AdaptiveThrottle::new()`".into(),
            Variant::ThrottleGuess(rate) => {
                let guess = match u64::from(rate) {
                    RATE => "the quota".to_string(),
                    r if r > RATE => format!("{}x the quota", r / RATE),
                    r => format!("1/{} of the quota", RATE / r.max(1)),
                };
                format!("ours + `AdaptiveThrottle::new().initial_rate({rate}.0)` ({guess})")
            }
            Variant::ThrottleCeiling => {
                "ours + `AdaptiveThrottle::new().initial_rate(100.0).max_rate(100.0)` (the quota, known)"
                    .into()
            }
            Variant::Backon { jitter: true } => "backon 1.6, `with_jitter()`".into(),
            Variant::Backon { jitter: false } => "backon 1.6, no jitter".into(),
            Variant::TokioRetry2 { jitter: true } => "tokio-retry2 0.9, `.map(jitter)`".into(),
            Variant::TokioRetry2 { jitter: false } => "tokio-retry2 0.9, no jitter".into(),
        }
    }

    pub const ALL: [Variant; 15] = [
        Variant::Jitter(Jitter::Full),
        Variant::Jitter(Jitter::Equal),
        Variant::Jitter(Jitter::Decorrelated),
        Variant::Jitter(Jitter::None),
        Variant::Budget,
        Variant::Throttle,
        Variant::ThrottleCeiling,
        Variant::ThrottleGuess(RATE as u32),
        Variant::ThrottleGuess(RATE as u32 * 10),
        Variant::ThrottleGuess(RATE as u32 / 4),
        Variant::ThrottleGuess(RATE as u32 * 4),
        Variant::Backon { jitter: true },
        Variant::Backon { jitter: false },
        Variant::TokioRetry2 { jitter: true },
        Variant::TokioRetry2 { jitter: false },
    ];
}

fn policy(jitter: Jitter) -> RetryPolicy {
    RetryPolicy::builder()
        .max_attempts(u32::MAX) // "until it succeeds"
        .initial_delay(Duration::from_secs(1))
        .backoff_factor(2.0)
        .max_delay(Duration::from_secs(10))
        .jitter(jitter)
        .build()
        .expect("valid policy")
}

async fn baseline(variant: Variant, provider: &Provider) -> Result<(), ProviderError> {
    match variant {
        Variant::Backon { jitter } => {
            use backon::{ExponentialBuilder, Retryable as _};
            let mut b = ExponentialBuilder::default()
                .with_min_delay(Duration::from_secs(1))
                .with_factor(2.0)
                .with_max_delay(Duration::from_secs(10))
                .without_max_times();
            if jitter {
                b = b.with_jitter();
            }
            (|| provider.call())
                .retry(b)
                .sleep(tokio::time::sleep)
                .await
        }
        Variant::TokioRetry2 { jitter } => {
            use tokio_retry2::strategy::ExponentialFactorBackoff;
            use tokio_retry2::{Retry, RetryError};
            let base =
                ExponentialFactorBackoff::from_millis(1000, 2.0).max_delay(Duration::from_secs(10));
            let action = || async { provider.call().await.map_err(RetryError::transient) };
            if jitter {
                Retry::spawn(base.map(tokio_retry2::strategy::jitter), action).await
            } else {
                Retry::spawn(base, action).await
            }
        }
        _ => unreachable!("not a baseline"),
    }
}

/// The figures of one run.
pub struct Run {
    pub calls: u64,
    /// Completion time of each client that succeeded, seconds since t = 0.
    pub completions: Vec<f64>,
}

pub fn run(variant: Variant) -> Run {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let start = Instant::now();
        let provider = Arc::new(Provider::new());
        let budget = Arc::new(RetryBudget::new());
        let throttle = Arc::new(match variant {
            Variant::ThrottleGuess(rate) => AdaptiveThrottle::new().initial_rate(f64::from(rate)),
            Variant::ThrottleCeiling => AdaptiveThrottle::new()
                .initial_rate(RATE as f64)
                .max_rate(RATE as f64),
            _ => AdaptiveThrottle::new(),
        });
        let mut set = JoinSet::new();
        for _ in 0..CLIENTS {
            let (provider, budget, throttle) = (provider.clone(), budget.clone(), throttle.clone());
            set.spawn(async move {
                let p = &*provider;
                let full = policy(Jitter::Full);
                let result = match variant {
                    Variant::Jitter(j) => ours(&policy(j), (), (), p).await,
                    Variant::Budget => ours(&full, (), &*budget, p).await,
                    Variant::Throttle | Variant::ThrottleGuess(_) | Variant::ThrottleCeiling => {
                        ours(&full, &*throttle, (), p).await
                    }
                    Variant::Backon { .. } | Variant::TokioRetry2 { .. } => {
                        baseline(variant, p).await
                    }
                };
                result.ok().map(|()| start.elapsed().as_secs_f64())
            });
        }
        let mut completions = Vec::with_capacity(CLIENTS);
        while let Some(done) = set.join_next().await {
            if let Some(t) = done.expect("client task") {
                completions.push(t);
            }
        }
        completions.sort_by(f64::total_cmp);
        Run {
            calls: provider.calls.load(Ordering::Relaxed),
            completions,
        }
    })
}

/// Averages of several runs.
pub struct Summary {
    pub variant: Variant,
    pub calls_per_client: f64,
    pub success: f64,
    pub makespan: f64,
    pub mean_completion: f64,
    /// The first run, for the plot.
    pub example: Run,
}

pub fn summarize(variant: Variant, runs: usize) -> Summary {
    let mut all: Vec<Run> = (0..runs).map(|_| run(variant)).collect();
    let n = runs as f64;
    let clients = CLIENTS as f64;
    let mean = |f: &dyn Fn(&Run) -> f64| all.iter().map(f).sum::<f64>() / n;
    let calls_per_client = mean(&|r| r.calls as f64 / clients);
    let success = mean(&|r| r.completions.len() as f64 / clients);
    let makespan = mean(&|r| r.completions.last().copied().unwrap_or(0.0));
    let mean_completion =
        mean(&|r| r.completions.iter().sum::<f64>() / r.completions.len().max(1) as f64);
    Summary {
        variant,
        calls_per_client,
        success,
        makespan,
        mean_completion,
        example: all.swap_remove(0),
    }
}
