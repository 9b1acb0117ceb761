//! The delays the attribute sleeps, measured on tokio's paused clock: exact for the schedules
//! without jitter, bounded for the jittered ones, and `max_time` never crossed.

use std::time::Duration;

use retry_runtime::retry_on_failure;
use retry_workspace::attempt_log::AttemptLog;

/// Records when each attempt started, relative to the recorder's creation.
type Recorder = AttemptLog;

fn ms(v: &[u64]) -> Vec<Duration> {
    v.iter().copied().map(Duration::from_millis).collect()
}

#[retry_on_failure(
    max_attempts = 6,
    initial_delay = 0.1,
    max_delay = 1.0,
    jitter = "none"
)]
async fn exponential(r: &Recorder) -> Result<usize, usize> {
    r.attempt(usize::MAX)
}

#[retry_on_failure(
    max_attempts = 5,
    initial_delay = 0.3,
    backoff = "constant",
    jitter = "none"
)]
async fn constant(r: &Recorder) -> Result<usize, usize> {
    r.attempt(usize::MAX)
}

#[retry_on_failure(
    max_attempts = 5,
    initial_delay = 0.25,
    backoff = "linear",
    jitter = "none"
)]
async fn linear(r: &Recorder) -> Result<usize, usize> {
    r.attempt(usize::MAX)
}

#[retry_on_failure(
    max_attempts = 8,
    initial_delay = 0.1,
    max_delay = 1,
    backoff = "fibonacci",
    jitter = "none"
)]
async fn fibonacci(r: &Recorder) -> Result<usize, usize> {
    r.attempt(usize::MAX)
}

#[retry_on_failure(
    max_attempts = 5,
    initial_delay = 0.1,
    backoff_factor = 3,
    jitter = "none"
)]
async fn factor_three(r: &Recorder) -> Result<usize, usize> {
    r.attempt(usize::MAX)
}

#[tokio::test(start_paused = true)]
async fn schedules_without_jitter_are_exact() {
    let r = Recorder::new();
    assert_eq!(exponential(&r).await, Err(6));
    assert_eq!(r.gaps(), ms(&[100, 200, 400, 800, 1000]));

    let r = Recorder::new();
    assert_eq!(constant(&r).await, Err(5));
    assert_eq!(r.gaps(), ms(&[300, 300, 300, 300]));

    let r = Recorder::new();
    assert_eq!(linear(&r).await, Err(5));
    assert_eq!(r.gaps(), ms(&[250, 500, 750, 1000]));

    let r = Recorder::new();
    assert_eq!(fibonacci(&r).await, Err(8));
    assert_eq!(r.gaps(), ms(&[100, 100, 200, 300, 500, 800, 1000]));

    let r = Recorder::new();
    assert_eq!(factor_three(&r).await, Err(5));
    assert_eq!(r.gaps(), ms(&[100, 300, 900, 2700]));
}

#[retry_on_failure(max_attempts = 6, initial_delay = 0.1, max_delay = 1.0)]
async fn full_jitter(r: &Recorder) -> Result<usize, usize> {
    r.attempt(usize::MAX)
}

#[retry_on_failure(
    max_attempts = 6,
    initial_delay = 0.1,
    max_delay = 1.0,
    jitter = "equal"
)]
async fn equal_jitter(r: &Recorder) -> Result<usize, usize> {
    r.attempt(usize::MAX)
}

#[retry_on_failure(
    max_attempts = 6,
    initial_delay = 0.1,
    max_delay = 1.0,
    jitter = "decorrelated"
)]
async fn decorrelated_jitter(r: &Recorder) -> Result<usize, usize> {
    r.attempt(usize::MAX)
}

#[tokio::test(start_paused = true)]
async fn jittered_delays_stay_in_their_ranges_and_vary() {
    let bases = ms(&[100, 200, 400, 800, 1000]);
    let mut full_first = Vec::new();
    let mut decorrelated_longest = Duration::ZERO;
    for _ in 0..200 {
        let r = Recorder::new();
        full_jitter(&r).await.unwrap_err();
        let gaps = r.gaps();
        for (gap, base) in gaps.iter().zip(&bases) {
            assert!(gap <= base, "full jitter slept {gap:?} over base {base:?}");
        }
        full_first.push(gaps[0]);

        let r = Recorder::new();
        equal_jitter(&r).await.unwrap_err();
        for (gap, base) in r.gaps().iter().zip(&bases) {
            assert!(
                *gap >= *base / 2 && gap <= base,
                "equal jitter: {gap:?} for {base:?}"
            );
        }

        let r = Recorder::new();
        decorrelated_jitter(&r).await.unwrap_err();
        let gaps = r.gaps();
        let mut previous = Duration::from_millis(100);
        for gap in gaps {
            let high = (previous * 3).min(Duration::from_secs(1));
            assert!(
                gap >= Duration::from_millis(100) && gap <= high,
                "decorrelated: {gap:?} after {previous:?}"
            );
            previous = gap;
            decorrelated_longest = decorrelated_longest.max(gap);
        }
    }
    // Decorrelated jitter grows from the delay before: a gap over 3 × 100 ms needs a previous
    // delay over 100 ms, so the call carried its previous delay from one retry to the next.
    assert!(
        decorrelated_longest > Duration::from_millis(300),
        "decorrelated never grew: {decorrelated_longest:?}"
    );
    // Randomness is real: 200 first delays in [0, 100 ms] spread out. tokio's timer has 1 ms
    // resolution, so at most 101 distinct values exist; a fixed delay would give 1.
    full_first.sort();
    full_first.dedup();
    assert!(
        full_first.len() > 60,
        "only {} distinct delays",
        full_first.len()
    );
    assert!(full_first[0] < Duration::from_millis(20));
    assert!(full_first[full_first.len() - 1] > Duration::from_millis(80));
}

#[retry_on_failure(max_attempts = 10, initial_delay = 1, jitter = "none", max_time = 2.5)]
async fn with_deadline(r: &Recorder) -> Result<usize, usize> {
    r.attempt(usize::MAX)
}

#[retry_on_failure(max_attempts = 10, initial_delay = 1, jitter = "none", max_time = 3)]
async fn deadline_exactly_reachable(r: &Recorder) -> Result<usize, usize> {
    r.attempt(usize::MAX)
}

#[tokio::test(start_paused = true)]
async fn max_time_never_starts_a_sleep_past_the_deadline() {
    let r = Recorder::new();
    // Attempt 1 at 0 s, sleep 1 s, attempt 2 at 1 s; a 2 s sleep would end at 3 s > 2.5 s.
    assert_eq!(with_deadline(&r).await, Err(2));
    assert_eq!(r.start().elapsed(), Duration::from_secs(1));

    // A sleep ending exactly at the deadline is allowed.
    let r = Recorder::new();
    assert_eq!(deadline_exactly_reachable(&r).await, Err(3));
    assert_eq!(r.start().elapsed(), Duration::from_secs(3));
}

struct Slow;

impl Slow {
    /// Attempts that take time count against `max_time` too.
    #[retry_on_failure(max_attempts = 10, initial_delay = 1, jitter = "none", max_time = 10)]
    async fn call(&self, r: &Recorder) -> Result<usize, usize> {
        tokio::time::sleep(Duration::from_secs(2)).await;
        r.attempt(usize::MAX)
    }
}

#[tokio::test(start_paused = true)]
async fn max_time_counts_attempt_durations() {
    let r = Recorder::new();
    // t=2 fail, sleep 1 → t=3, attempt → t=5 fail, sleep 2 → t=7, attempt → t=9 fail;
    // a 4 s sleep would end at 13 s > 10 s.
    assert_eq!(Slow.call(&r).await, Err(3));
    assert_eq!(r.start().elapsed(), Duration::from_secs(9));
}

#[retry_on_failure(
    max_attempts = 10000,
    initial_delay = 0.001,
    max_delay = 1,
    backoff_factor = 10,
    jitter = "none"
)]
async fn ten_thousand_attempts(r: &Recorder) -> Result<usize, usize> {
    r.attempt(usize::MAX)
}

#[tokio::test(start_paused = true)]
async fn ten_thousand_attempts_with_factor_ten_saturate_at_max_delay() {
    let r = Recorder::new();
    assert_eq!(ten_thousand_attempts(&r).await, Err(10_000));
    let gaps = r.gaps();
    assert_eq!(&gaps[..4], &ms(&[1, 10, 100, 1000])[..]);
    assert!(gaps[4..].iter().all(|g| *g == Duration::from_secs(1)));
    assert_eq!(
        r.start().elapsed(),
        Duration::from_millis(111 + 9996 * 1000)
    );
}

#[retry_on_failure(max_attempts = 1)]
async fn single_attempt(r: &Recorder) -> Result<usize, usize> {
    r.attempt(usize::MAX)
}

#[tokio::test(start_paused = true)]
async fn one_attempt_means_no_retry_and_no_sleep() {
    let r = Recorder::new();
    assert_eq!(single_attempt(&r).await, Err(1));
    assert_eq!(r.start().elapsed(), Duration::ZERO);
}

#[retry_on_failure(initial_delay = 0, max_delay = 0)]
async fn zero_delays(r: &Recorder) -> Result<usize, usize> {
    r.attempt(3)
}

#[tokio::test(start_paused = true)]
async fn zero_delays_retry_immediately() {
    let r = Recorder::new();
    assert_eq!(zero_delays(&r).await, Ok(3));
    assert_eq!(r.start().elapsed(), Duration::ZERO);
}
