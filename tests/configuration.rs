//! Configuration beyond literals, at run time: environment variables (each test with its own
//! prefix, so that tests running in parallel never see each other's variables), the closure API
//! on tokio's paused clock, its blocking variant, attempt timeouts, and the no-sleep test switch.

use std::cell::Cell;
use std::future::{Future, IntoFuture};
use std::pin::pin;
use std::sync::{Arc, Barrier, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use retry_runtime::{
    retry_on_failure, testing, AttemptTimedOut, Backoff, Classification, EnvPolicy, EnvWarning,
    GiveUpReason, Jitter, Observer, PolicyError, RetryEvent, RetryPolicy, Retryable,
};
use retry_workspace::alloc_count::{allocations_during, PerThreadCounting};
use retry_workspace::attempt_log::AttemptLog;
use tokio::time::Instant;

const fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// 100 ms, 200 ms, 400 ms, ... capped at 1 s, no jitter: every delay is exact.
fn exact(max_attempts: u32) -> RetryPolicy {
    RetryPolicy::builder()
        .max_attempts(max_attempts)
        .initial_delay(ms(100))
        .max_delay(ms(1000))
        .jitter(Jitter::None)
        .build()
        .unwrap()
}

/// When each attempt started, relative to the log's creation.
type Log = AttemptLog;

#[derive(Debug, PartialEq, thiserror::Error)]
enum ProviderError {
    #[error("unavailable")]
    Unavailable,
    #[error("rate limited")]
    RateLimited { retry_after: Duration },
    #[error("bad key")]
    BadKey,
    #[error(transparent)]
    Timeout(#[from] AttemptTimedOut),
}

impl Retryable for ProviderError {
    fn is_retryable(&self) -> bool {
        !matches!(self, ProviderError::BadKey)
    }
    fn retry_after(&self) -> Option<Duration> {
        match self {
            ProviderError::RateLimited { retry_after } => Some(*retry_after),
            _ => None,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Environment

#[test]
fn env_policy_reads_the_process_environment_once() {
    // A prefix no other test uses: the process environment is shared by every test thread.
    std::env::set_var("CFGTEST_ONCE_MAX_RETRIES", "7");
    std::env::set_var("CFGTEST_ONCE_RETRY_JITTER", "equal");
    static POLICY: EnvPolicy = EnvPolicy::new("CFGTEST_ONCE", RetryPolicy::DEFAULT)
        .with_warning_sink(|w| panic!("unexpected warning: {w}"));
    assert_eq!(POLICY.get().max_attempts(), 7);
    assert_eq!(POLICY.get().jitter(), Jitter::Equal);
    // Changing the environment afterwards changes nothing: it was read once.
    std::env::set_var("CFGTEST_ONCE_MAX_RETRIES", "2");
    assert_eq!(POLICY.get().max_attempts(), 7);
    assert_eq!(POLICY.base(), &RetryPolicy::DEFAULT);
}

#[test]
fn from_env_is_strict_and_names_the_variable() {
    std::env::set_var("CFGTEST_STRICT_RETRY_INITIAL_DELAY", "abc");
    let err = RetryPolicy::from_env("CFGTEST_STRICT").unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"CFGTEST_STRICT_RETRY_INITIAL_DELAY="abc": initial_delay must be a number of seconds, found "abc""#
    );
    assert!(matches!(
        err.problem(),
        PolicyError::Invalid {
            field: "initial_delay",
            ..
        }
    ));
    assert_eq!(
        RetryPolicy::from_env("CFGTEST_UNSET"),
        Ok(RetryPolicy::DEFAULT)
    );
}

static WARNINGS: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// The lenient loader as the attribute's `env_prefix` uses it, over an injected environment whose
/// values are all unusable: the compiled-in policy survives intact, one warning per variable.
#[test]
fn bad_environment_keeps_the_compiled_in_policy() {
    // As the attribute builds it from validated literals: 4 attempts, 1 s, 8 s, factor 2.
    const BASE: RetryPolicy = retry_runtime::__private::policy(
        4,
        1_000_000_000,
        8_000_000_000,
        2.0,
        Backoff::Exponential,
        Jitter::Full,
        None,
        None,
    );
    static POLICY: EnvPolicy = EnvPolicy::new("BAD", BASE)
        .with_lookup(|name| {
            let value = match name {
                "BAD_MAX_RETRIES" => "0",
                "BAD_RETRY_INITIAL_DELAY" => "NaN",
                "BAD_RETRY_MAX_DELAY" => "-1",
                "BAD_RETRY_BACKOFF_FACTOR" => "0.5",
                "BAD_RETRY_JITTER" => "sometimes",
                "BAD_RETRY_BACKOFF" => "abc",
                "BAD_RETRY_MAX_TIME" => "0",
                _ => return None,
            };
            Some(value.to_owned())
        })
        .with_warning_sink(|w: &EnvWarning| WARNINGS.lock().unwrap().push(w.to_string()));
    for _ in 0..3 {
        assert_eq!(*POLICY.get(), BASE);
    }
    let warnings = WARNINGS.lock().unwrap();
    assert_eq!(warnings.len(), 7, "{warnings:#?}");
    assert_eq!(
        warnings[0],
        r#"ignoring BAD_MAX_RETRIES="0": max_attempts must be at least 1, found 0; keeping max_attempts = 4"#
    );
    assert_eq!(
        warnings[2],
        r#"ignoring BAD_RETRY_MAX_DELAY="-1": max_delay must be a finite number of seconds, at least 0, found -1; keeping max_delay = 8s"#
    );
}

// ---------------------------------------------------------------------------------------------
// The closure API

#[tokio::test(start_paused = true)]
async fn closure_sleeps_the_exact_schedule() {
    let log = Log::new();
    let result: Result<usize, ProviderError> = exact(5)
        .retry(|| async {
            let n = log.record();
            if n < 5 {
                Err(ProviderError::Unavailable)
            } else {
                Ok(n)
            }
        })
        .await;
    assert_eq!(result, Ok(5));
    assert_eq!(log.gaps(), [ms(100), ms(200), ms(400), ms(800)]);
}

#[tokio::test(start_paused = true)]
async fn closure_returns_the_last_error_when_attempts_run_out() {
    let log = Log::new();
    let result: Result<(), ProviderError> = exact(3)
        .retry(|| async {
            log.record();
            Err(ProviderError::Unavailable)
        })
        .await;
    assert_eq!(result, Err(ProviderError::Unavailable));
    assert_eq!(log.gaps(), [ms(100), ms(200)]);
    assert_eq!(log.start().elapsed(), ms(300));
}

#[tokio::test(start_paused = true)]
async fn when_stops_at_the_first_error_it_rejects() {
    let log = Log::new();
    let result = exact(5)
        .retry(|| async {
            match log.record() {
                1 => Err(ProviderError::Unavailable),
                _ => Err::<(), _>(ProviderError::BadKey),
            }
        })
        .when(|e: &ProviderError| *e == ProviderError::Unavailable)
        .await;
    assert_eq!(result, Err(ProviderError::BadKey));
    assert_eq!(log.count(), 2);
}

#[tokio::test(start_paused = true)]
async fn classified_uses_retryable_and_honours_retry_after() {
    let log = Log::new();
    let result = exact(5)
        .retry(|| async {
            match log.record() {
                1 => Err(ProviderError::RateLimited {
                    retry_after: ms(3000),
                }),
                2 => Err(ProviderError::Unavailable),
                _ => Err::<(), _>(ProviderError::BadKey),
            }
        })
        .classified()
        .await;
    assert_eq!(result, Err(ProviderError::BadKey));
    assert_eq!(log.count(), 3);
    let gaps = log.gaps();
    // The server's 3 s, plus a small spread so that clients told the same do not return together.
    assert!(gaps[0] >= ms(3000) && gaps[0] <= ms(3600), "{gaps:?}");
    assert_eq!(gaps[1], ms(200));
}

#[tokio::test(start_paused = true)]
async fn classify_closure_and_notify_see_every_retry() {
    let events = Mutex::new(Vec::new());
    let log = Log::new();
    let result = exact(4)
        .retry(|| async {
            log.record();
            Err::<(), _>(503)
        })
        .name("openai.complete")
        .classify(|status: &i32| Classification::from_bool(*status >= 500))
        .notify(|status: &i32, event: &RetryEvent| {
            events
                .lock()
                .unwrap()
                .push((*status, event.attempt, event.delay, event.name))
        })
        .await;
    assert_eq!(result, Err(503));
    let name = "openai.complete";
    assert_eq!(
        *events.lock().unwrap(),
        [
            (503, 1, ms(100), name),
            (503, 2, ms(200), name),
            (503, 3, ms(400), name)
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn observers_see_start_and_give_up() {
    #[derive(Default)]
    struct Counts {
        started: Cell<u32>,
        gave_up: Cell<Option<(GiveUpReason, u32)>>,
    }
    impl<E> Observer<E> for Counts {
        fn on_start(&self) {
            self.started.set(self.started.get() + 1);
        }
        fn on_give_up(&self, _: &E, reason: GiveUpReason, attempts: u32) {
            self.gave_up.set(Some((reason, attempts)));
        }
    }
    let counts = Counts::default();
    let result: Result<(), &str> = exact(3)
        .retry(|| async { Err("down") })
        .observe(&counts)
        .await;
    assert_eq!(result, Err("down"));
    assert_eq!(counts.started.get(), 1);
    assert_eq!(counts.gave_up.get(), Some((GiveUpReason::Exhausted, 3)));
}

#[tokio::test(start_paused = true)]
async fn retry_if_ok_polls_until_done() {
    let log = Log::new();
    let result: Result<&str, ()> = exact(5)
        .retry(|| async { Ok(if log.record() < 3 { "pending" } else { "done" }) })
        .retry_if_ok(|status: &&str| *status == "pending")
        .await;
    assert_eq!(result, Ok("done"));
    assert_eq!(log.gaps(), [ms(100), ms(200)]);
}

#[tokio::test(start_paused = true)]
async fn closure_respects_max_time() {
    let log = Log::new();
    let policy = exact(10).to_builder().max_time(ms(1000)).build().unwrap();
    let result: Result<(), &str> = policy
        .retry(|| async {
            log.record();
            Err("down")
        })
        .await;
    assert_eq!(result, Err("down"));
    // 100 + 200 + 400 = 700 ms; the next 800 ms would end past 1 s.
    assert_eq!(log.gaps(), [ms(100), ms(200), ms(400)]);
}

/// The closure may borrow mutably; each attempt gets a fresh future.
#[tokio::test(start_paused = true)]
async fn closure_may_mutate_its_environment() {
    let mut calls = 0;
    let result: Result<u32, u32> = exact(3)
        .retry(|| {
            calls += 1;
            let n = calls;
            async move {
                if n < 2 {
                    Err(n)
                } else {
                    Ok(n)
                }
            }
        })
        .await;
    assert_eq!(result, Ok(2));
    assert_eq!(calls, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closure_future_is_send() {
    fn assert_send<T: Send>(_: &T) {}
    let policy = RetryPolicy::builder()
        .initial_delay(ms(1))
        .max_delay(ms(2))
        .build()
        .unwrap();
    let shared = Arc::new(Mutex::new(0));
    let counter = Arc::clone(&shared);
    let fut = policy
        .retry(move || {
            let counter = Arc::clone(&counter);
            async move {
                let mut n = counter.lock().unwrap();
                *n += 1;
                if *n < 3 {
                    Err(ProviderError::Unavailable)
                } else {
                    Ok(*n)
                }
            }
        })
        .classified()
        .notify(|_: &ProviderError, _: &RetryEvent| {})
        .into_future();
    assert_send(&fut);
    let handle = tokio::spawn(fut);
    assert_eq!(handle.await.unwrap(), Ok(3));
}

// ---------------------------------------------------------------------------------------------
// No allocation when the first attempt succeeds

#[global_allocator]
static GLOBAL: PerThreadCounting = PerThreadCounting;

#[test]
fn first_try_success_does_not_allocate() {
    let policy = RetryPolicy::DEFAULT;
    let (ready, allocations) = allocations_during(|| {
        let fut = pin!(policy
            .retry(|| async { Ok::<_, ProviderError>(42) })
            .classified()
            .into_future());
        fut.poll(&mut Context::from_waker(Waker::noop()))
    });
    assert_eq!(ready, Poll::Ready(Ok(42)));
    assert_eq!(allocations, 0);

    let (result, allocations) = allocations_during(|| {
        policy
            .retry_blocking(|| Ok::<_, ProviderError>(7))
            .when(|_: &ProviderError| true)
            .call()
    });
    assert_eq!(result, Ok(7));
    assert_eq!(allocations, 0);
}

// ---------------------------------------------------------------------------------------------
// Blocking

#[test]
fn blocking_closure_sleeps_between_attempts() {
    let policy = RetryPolicy::builder()
        .max_attempts(3)
        .initial_delay(ms(20))
        .max_delay(ms(100))
        .jitter(Jitter::None)
        .build()
        .unwrap();
    let started = std::time::Instant::now();
    let mut calls = 0;
    let result: Result<(), &str> = policy
        .retry_blocking(|| {
            calls += 1;
            Err("down")
        })
        .call();
    assert_eq!((result, calls), (Err("down"), 3));
    // 20 ms then 40 ms of real sleep.
    assert!(started.elapsed() >= ms(60), "{:?}", started.elapsed());
}

#[test]
fn blocking_closure_gives_up_on_a_rejected_error() {
    let mut calls = 0;
    let result = RetryPolicy::DEFAULT
        .retry_blocking(|| {
            calls += 1;
            Err::<(), _>(ProviderError::BadKey)
        })
        .classified()
        .call();
    assert_eq!((result, calls), (Err(ProviderError::BadKey), 1));
}

// ---------------------------------------------------------------------------------------------
// Attempt timeouts

#[tokio::test(start_paused = true)]
async fn slow_attempts_are_cut_off_and_retried() {
    let log = Log::new();
    let result: Result<usize, ProviderError> = exact(3)
        .retry(|| async {
            let n = log.record();
            if n < 3 {
                tokio::time::sleep(Duration::from_secs(60)).await;
            }
            Ok(n)
        })
        .attempt_timeout(ms(1000))
        .classified()
        .await;
    assert_eq!(result, Ok(3));
    // Each slow attempt lasts exactly the timeout, then the usual sleep.
    assert_eq!(log.gaps(), [ms(1000 + 100), ms(1000 + 200)]);
}

#[tokio::test(start_paused = true)]
async fn the_last_timeout_is_returned_as_the_callers_error() {
    let result: Result<(), ProviderError> = exact(2)
        .retry(std::future::pending)
        .attempt_timeout(ms(250))
        .await;
    assert_eq!(
        result,
        Err(ProviderError::Timeout(AttemptTimedOut { after: ms(250) }))
    );
    assert_eq!(
        result.unwrap_err().to_string(),
        "the attempt did not finish within 250ms"
    );
}

// ---------------------------------------------------------------------------------------------
// The no-sleep switch

#[retry_on_failure(
    max_attempts = 4,
    initial_delay = 5.0,
    max_delay = 60.0,
    jitter = "none"
)]
async fn always_down(log: &Log) -> Result<(), ProviderError> {
    log.record();
    Err(ProviderError::Unavailable)
}

/// Sleeps 5 s, 10 s, 20 s: 35 s of paused-clock time, or none at all under the switch.
async fn attribute_run() -> (usize, Duration) {
    let log = Log::new();
    let _ = always_down(&log).await;
    (log.count(), log.start().elapsed())
}

#[tokio::test(start_paused = true)]
async fn without_the_switch_the_attribute_sleeps() {
    assert_eq!(attribute_run().await, (4, Duration::from_secs(35)));
}

#[tokio::test(start_paused = true)]
async fn with_the_switch_the_attribute_does_not_sleep() {
    let _guard = testing::no_sleep();
    assert_eq!(attribute_run().await, (4, Duration::ZERO));
}

/// Both at once on two threads, forced to overlap: the switch of one does not leak into the other.
/// The real clock, not a paused one: a leak would show as 35 s of sleeping skipped or taken.
#[test]
fn the_switch_is_scoped_to_its_thread() {
    let policy = RetryPolicy::builder()
        .max_attempts(3)
        .initial_delay(ms(50))
        .max_delay(ms(50))
        .jitter(Jitter::None)
        .build()
        .unwrap();
    let barrier = Barrier::new(2);
    let run = |no_sleep: bool| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let _guard = no_sleep.then(testing::no_sleep);
        barrier.wait();
        let started = std::time::Instant::now();
        let result: Result<(), &str> =
            rt.block_on(policy.retry(|| async { Err("down") }).into_future());
        assert_eq!(result, Err("down"));
        let blocking_started = std::time::Instant::now();
        let _ = policy.retry_blocking(|| Err::<(), _>("down")).call();
        (started.elapsed(), blocking_started.elapsed())
    };
    let (skipped, slept) = std::thread::scope(|s| {
        let a = s.spawn(|| run(true));
        let b = s.spawn(|| run(false));
        (a.join().unwrap(), b.join().unwrap())
    });
    assert!(skipped.0 < ms(50) && skipped.1 < ms(50), "{skipped:?}");
    assert!(slept.0 >= ms(100) && slept.1 >= ms(100), "{slept:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_sleeping_covers_a_spawned_task() {
    let policy = RetryPolicy::builder()
        .max_attempts(4)
        .initial_delay(Duration::from_secs(30))
        .max_delay(Duration::from_secs(30))
        .build()
        .unwrap();
    let started = std::time::Instant::now();
    let task = tokio::spawn(testing::without_sleeping(
        policy.retry(|| async { Err::<(), _>("down") }),
    ));
    assert_eq!(task.await.unwrap(), Err("down"));
    assert!(started.elapsed() < Duration::from_secs(5));
}

// ---- The attribute's own configuration keys: env_prefix, attempt_timeout, blocking fns. ----

#[derive(Debug, PartialEq)]
enum CallError {
    Down,
    TimedOut(Duration),
}

impl From<AttemptTimedOut> for CallError {
    fn from(t: AttemptTimedOut) -> Self {
        CallError::TimedOut(t.after)
    }
}

#[retry_on_failure(
    env_prefix = "ATTR_ENV_OK",
    max_attempts = 2,
    initial_delay = 1,
    jitter = "none"
)]
async fn env_configured(log: &Log) -> Result<(), CallError> {
    log.record();
    Err(CallError::Down)
}

#[tokio::test(start_paused = true)]
async fn env_prefix_overrides_the_literals_once() {
    // Unique to this test: no other test reads ATTR_ENV_OK_*.
    std::env::set_var("ATTR_ENV_OK_MAX_RETRIES", "4");
    std::env::set_var("ATTR_ENV_OK_RETRY_INITIAL_DELAY", "0.25");
    let log = Log::new();
    assert_eq!(env_configured(&log).await, Err(CallError::Down));
    assert_eq!(log.gaps(), [ms(250), ms(500), ms(1000)]);

    // Read once: a later change is not seen.
    std::env::set_var("ATTR_ENV_OK_MAX_RETRIES", "9");
    let log = Log::new();
    env_configured(&log).await.unwrap_err();
    assert_eq!(log.gaps().len(), 3);
}

#[retry_on_failure(
    env_prefix = "ATTR_ENV_BAD",
    max_attempts = 3,
    initial_delay = 0.5,
    jitter = "none"
)]
async fn env_badly_configured(log: &Log) -> Result<(), CallError> {
    log.record();
    Err(CallError::Down)
}

#[tokio::test(start_paused = true)]
async fn bad_env_values_keep_the_literals() {
    std::env::set_var("ATTR_ENV_BAD_MAX_RETRIES", "NaN");
    std::env::set_var("ATTR_ENV_BAD_RETRY_INITIAL_DELAY", "-1");
    std::env::set_var("ATTR_ENV_BAD_RETRY_BACKOFF_FACTOR", "0.5");
    let log = Log::new();
    env_badly_configured(&log).await.unwrap_err();
    assert_eq!(log.gaps(), [ms(500), ms(1000)]);
}

#[retry_on_failure(
    env_prefix = "ATTR_ENV_DEADLINE",
    max_attempts = 10,
    initial_delay = 1,
    jitter = "none"
)]
async fn env_deadline(log: &Log) -> Result<(), CallError> {
    log.record();
    Err(CallError::Down)
}

#[tokio::test(start_paused = true)]
async fn env_can_add_a_deadline_the_literals_did_not_have() {
    std::env::set_var("ATTR_ENV_DEADLINE_RETRY_MAX_TIME", "3.5");
    let log = Log::new();
    env_deadline(&log).await.unwrap_err();
    // 1 s + 2 s = 3 s; a 4 s sleep would end at 7 s > 3.5 s.
    assert_eq!(log.gaps(), [ms(1000), ms(2000)]);
}

struct Slow {
    replies_after: Vec<Duration>,
}

impl Slow {
    #[retry_on_failure(
        max_attempts = 4,
        initial_delay = 1,
        jitter = "none",
        attempt_timeout = 2
    )]
    async fn call(&self, log: &Log) -> Result<usize, CallError> {
        let n = log.record();
        tokio::time::sleep(self.replies_after[n - 1]).await;
        Ok(n)
    }
}

#[tokio::test(start_paused = true)]
async fn attempt_timeout_cuts_slow_attempts_and_retries_them() {
    let slow = Slow {
        replies_after: vec![Duration::from_secs(60), Duration::from_secs(3), ms(500)],
    };
    let log = Log::new();
    let start = Instant::now();
    assert_eq!(slow.call(&log).await, Ok(3));
    // Attempt 1 cut at 2 s, sleep 1 s; attempt 2 at 3 s cut at 5 s, sleep 2 s; attempt 3 at 7 s
    // answers after 0.5 s.
    assert_eq!(log.gaps(), [ms(3000), ms(4000)]);
    assert_eq!(start.elapsed(), ms(7500));
}

#[tokio::test(start_paused = true)]
async fn the_last_attempt_timeout_is_the_callers_error() {
    let slow = Slow {
        replies_after: vec![Duration::from_secs(60); 4],
    };
    let log = Log::new();
    assert_eq!(
        slow.call(&log).await,
        Err(CallError::TimedOut(Duration::from_secs(2)))
    );
    assert_eq!(log.gaps().len(), 3);
}

struct Counter {
    calls: u32,
}

impl Counter {
    /// A blocking `&mut self` method: same keys, `std::thread::sleep` between attempts.
    #[retry_on_failure(max_attempts = 4, initial_delay = 0.02, jitter = "none")]
    fn bump(&mut self, succeed_on: u32) -> Result<u32, CallError> {
        self.calls += 1;
        if self.calls < succeed_on {
            return Err(CallError::Down);
        }
        Ok(self.calls)
    }
}

#[test]
fn blocking_fns_retry_with_a_blocking_sleep() {
    let mut c = Counter { calls: 0 };
    let start = std::time::Instant::now();
    assert_eq!(c.bump(3), Ok(3));
    // Two real sleeps: 20 ms then 40 ms.
    assert!(start.elapsed() >= ms(60), "{:?}", start.elapsed());

    let mut c = Counter { calls: 0 };
    assert_eq!(c.bump(10), Err(CallError::Down));
    assert_eq!(c.calls, 4);
}

#[retry_on_failure(max_attempts = 5, initial_delay = 30, max_delay = 60)]
fn blocking_and_slow(calls: &Cell<u32>) -> Result<(), CallError> {
    calls.set(calls.get() + 1);
    Err(CallError::Down)
}

#[test]
fn blocking_fns_honour_the_no_sleep_switch() {
    let _no_sleep = testing::no_sleep();
    let calls = Cell::new(0);
    let start = std::time::Instant::now();
    assert_eq!(blocking_and_slow(&calls), Err(CallError::Down));
    assert_eq!(calls.get(), 5);
    assert!(start.elapsed() < Duration::from_secs(1));
}
