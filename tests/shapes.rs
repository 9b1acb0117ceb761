//! Every fn shape the attribute supports, each run on tokio's paused clock so that the backoff
//! sleeps take no real time and the elapsed (virtual) time is exact.

use std::cell::Cell;
use std::fmt::Display;
use std::sync::atomic::{AtomicU32, Ordering::SeqCst};
use std::time::Duration;

use retry_runtime::retry_on_failure;
use tokio::time::Instant;

#[derive(Debug, PartialEq, Eq)]
struct Flaky(u32);

/// Fails until `counter` reaches `succeed_on`, counting attempts.
fn attempt(counter: &AtomicU32, succeed_on: u32) -> Result<u32, Flaky> {
    let n = counter.fetch_add(1, SeqCst) + 1;
    if n >= succeed_on {
        Ok(n)
    } else {
        Err(Flaky(n))
    }
}

static FREE_FN_CALLS: AtomicU32 = AtomicU32::new(0);

#[retry_on_failure(max_attempts = 4, initial_delay = 1, jitter = "none")]
async fn free_fn() -> Result<u32, Flaky> {
    attempt(&FREE_FN_CALLS, 3)
}

#[tokio::test(start_paused = true)]
async fn free_fn_retries_until_success_with_exact_backoff() {
    let start = Instant::now();
    assert_eq!(free_fn().await, Ok(3));
    assert_eq!(FREE_FN_CALLS.load(SeqCst), 3);
    // Two sleeps without jitter: 1 s, then 2 s.
    assert_eq!(start.elapsed(), Duration::from_secs(3));
}

static EXHAUSTED_CALLS: AtomicU32 = AtomicU32::new(0);

#[retry_on_failure(max_attempts = 3, initial_delay = 0.5, jitter = "none")]
async fn always_fails() -> Result<u32, Flaky> {
    attempt(&EXHAUSTED_CALLS, u32::MAX)
}

#[tokio::test(start_paused = true)]
async fn exhausted_attempts_return_the_last_error() {
    let start = Instant::now();
    assert_eq!(always_fails().await, Err(Flaky(3)));
    assert_eq!(EXHAUSTED_CALLS.load(SeqCst), 3);
    assert_eq!(start.elapsed(), Duration::from_millis(500 + 1000));
}

struct Client {
    calls: AtomicU32,
    succeed_on: u32,
}

impl Client {
    #[retry_on_failure(initial_delay = 0.1, jitter = "none")]
    async fn by_ref(&self, prompt: &str) -> Result<String, Flaky> {
        let n = attempt(&self.calls, self.succeed_on)?;
        Ok(format!("{prompt}#{n}"))
    }
}

#[tokio::test(start_paused = true)]
async fn ref_self_method() {
    let c = Client {
        calls: AtomicU32::new(0),
        succeed_on: 2,
    };
    assert_eq!(c.by_ref("hi").await.as_deref(), Ok("hi#2"));
}

struct Counter {
    attempts: u32,
    log: Vec<u32>,
}

impl Counter {
    /// A `&mut self` body that mutates state: each attempt sees the previous attempt's writes,
    /// through a fresh reborrow.
    #[retry_on_failure(max_attempts = 5, initial_delay = 0.01, jitter = "none")]
    async fn by_mut(&mut self, succeed_on: u32) -> Result<u32, Flaky> {
        self.attempts += 1;
        self.log.push(self.attempts);
        tokio::task::yield_now().await;
        if self.attempts < succeed_on {
            return Err(Flaky(self.attempts));
        }
        Ok(self.attempts)
    }
}

#[tokio::test(start_paused = true)]
async fn mut_self_method_is_reborrowed_each_attempt() {
    let mut c = Counter {
        attempts: 0,
        log: vec![],
    };
    assert_eq!(c.by_mut(4).await, Ok(4));
    assert_eq!(c.log, [1, 2, 3, 4]);
    // The borrow ended with the call.
    c.attempts = 0;
    assert_eq!(c.by_mut(9).await, Err(Flaky(5)));
}

/// Generics, a where clause, lifetimes and `impl Trait` arguments.
#[retry_on_failure(max_attempts = 2, initial_delay = 0.01)]
async fn generic<'a, T, U: Display>(
    items: &'a [T],
    label: impl AsRef<str>,
    extra: U,
    tries: &AtomicU32,
) -> Result<(&'a T, String), Flaky>
where
    T: PartialEq + std::fmt::Debug,
{
    let n = attempt(tries, 2)?;
    let first = items.first().ok_or(Flaky(0))?;
    Ok((first, format!("{}-{extra}-{n}", label.as_ref())))
}

#[tokio::test(start_paused = true)]
async fn generics_lifetimes_where_clauses_and_impl_trait() {
    let tries = AtomicU32::new(0);
    let items = vec![7u8, 8];
    let (first, text) = generic(&items, String::from("x"), 1.5, &tries)
        .await
        .unwrap();
    assert_eq!((*first, text.as_str()), (7, "x-1.5-2"));
}

mod visibility {
    use super::*;

    /// Doc comments and other attributes are kept.
    #[retry_on_failure(max_attempts = 1)]
    #[must_use = "a result"]
    #[inline(never)]
    pub async fn public(v: u32) -> Result<u32, Flaky> {
        Ok(v)
    }

    #[retry_on_failure(max_attempts = 1)]
    pub(crate) async fn crate_visible(v: u32) -> Result<u32, Flaky> {
        Err(Flaky(v))
    }
}

#[tokio::test(start_paused = true)]
async fn visibility_and_attributes_are_kept() {
    assert_eq!(visibility::public(4).await, Ok(4));
    assert_eq!(visibility::crate_visible(5).await, Err(Flaky(5)));
}

trait Provider {
    fn complete(
        &self,
        prompt: &str,
    ) -> impl std::future::Future<Output = Result<String, Flaky>> + Send;
}

struct Native {
    calls: AtomicU32,
}

impl Provider for Native {
    #[retry_on_failure(initial_delay = 0.2, jitter = "none")]
    async fn complete(&self, prompt: &str) -> Result<String, Flaky> {
        attempt(&self.calls, 3).map(|n| format!("{prompt}:{n}"))
    }
}

#[tokio::test(start_paused = true)]
async fn async_fn_in_trait_impl() {
    let p = Native {
        calls: AtomicU32::new(0),
    };
    let start = Instant::now();
    assert_eq!(p.complete("q").await.as_deref(), Ok("q:3"));
    assert_eq!(start.elapsed(), Duration::from_millis(200 + 400));
}

#[async_trait::async_trait]
trait DynProvider: Send + Sync {
    async fn complete(&self, prompt: &str) -> Result<String, Flaky>;
    async fn bump(&mut self) -> Result<u32, Flaky>;
}

struct ViaAsyncTrait {
    calls: AtomicU32,
    bumps: u32,
}

#[async_trait::async_trait]
impl DynProvider for ViaAsyncTrait {
    #[retry_on_failure(initial_delay = 0.2, jitter = "none")]
    async fn complete(&self, prompt: &str) -> Result<String, Flaky> {
        attempt(&self.calls, 2).map(|n| format!("{prompt}:{n}"))
    }

    #[retry_on_failure(max_attempts = 4, initial_delay = 1, jitter = "none")]
    async fn bump(&mut self) -> Result<u32, Flaky> {
        self.bumps += 1;
        if self.bumps < 3 {
            return Err(Flaky(self.bumps));
        }
        Ok(self.bumps)
    }
}

#[tokio::test(start_paused = true)]
async fn methods_inside_an_async_trait_impl() {
    let mut p = ViaAsyncTrait {
        calls: AtomicU32::new(0),
        bumps: 0,
    };
    let start = Instant::now();
    let dynamic: &dyn DynProvider = &p;
    assert_eq!(dynamic.complete("q").await.as_deref(), Ok("q:2"));
    assert_eq!(start.elapsed(), Duration::from_millis(200));
    assert_eq!(p.bump().await, Ok(3));
    assert_eq!(start.elapsed(), Duration::from_millis(200 + 1000 + 2000));
}

#[derive(Debug, PartialEq)]
enum ParseFailure {
    Parse,
    Early,
}

impl From<std::num::ParseIntError> for ParseFailure {
    fn from(_: std::num::ParseIntError) -> Self {
        ParseFailure::Parse
    }
}

static QUESTION_MARK_CALLS: AtomicU32 = AtomicU32::new(0);

/// `?` (with a `From` conversion) and `return` end the attempt, not the call.
#[retry_on_failure(max_attempts = 3, initial_delay = 0.01)]
async fn question_mark_and_return(inputs: &[&str]) -> Result<i64, ParseFailure> {
    let n = QUESTION_MARK_CALLS.fetch_add(1, SeqCst) as usize;
    if n == 0 {
        return Err(ParseFailure::Early);
    }
    let v: i64 = inputs[n].parse()?;
    Ok(v)
}

#[tokio::test(start_paused = true)]
async fn question_mark_and_return_end_the_attempt() {
    assert_eq!(question_mark_and_return(&["", "nope", "42"]).await, Ok(42));
    assert_eq!(QUESTION_MARK_CALLS.load(SeqCst), 3);
}

#[tokio::test(start_paused = true)]
async fn annotated_methods_can_be_spawned() {
    let c = std::sync::Arc::new(Client {
        calls: AtomicU32::new(0),
        succeed_on: 2,
    });
    let c2 = c.clone();
    let handle = tokio::spawn(async move { c2.by_ref("spawned").await });
    assert_eq!(handle.await.unwrap().as_deref(), Ok("spawned#2"));

    let mut counter = Counter {
        attempts: 0,
        log: vec![],
    };
    let handle = tokio::spawn(async move { counter.by_mut(2).await });
    assert_eq!(handle.await.unwrap(), Ok(2));
}

/// A body that consumes an owned argument opts into a clone per attempt.
#[retry_on_failure(max_attempts = 3, initial_delay = 0.01, clone = [prompt])]
async fn consumes(prompt: String, tries: &AtomicU32) -> Result<Vec<u8>, Flaky> {
    let bytes = prompt.into_bytes();
    attempt(tries, 2)?;
    Ok(bytes)
}

#[tokio::test(start_paused = true)]
async fn clone_gives_each_attempt_its_own_copy() {
    let tries = AtomicU32::new(0);
    assert_eq!(consumes("abc".into(), &tries).await, Ok(b"abc".to_vec()));
    assert_eq!(tries.load(SeqCst), 2);
}

thread_local! {
    static LOCAL: Cell<u32> = const { Cell::new(0) };
}

/// `anyhow::Result<T>` is an alias of `Result`: accepted.
#[retry_on_failure(max_attempts = 2, initial_delay = 0)]
async fn anyhow_alias() -> anyhow::Result<u32> {
    LOCAL.with(|c| c.set(c.get() + 1));
    anyhow::ensure!(LOCAL.with(Cell::get) >= 2, "not yet");
    Ok(LOCAL.with(Cell::get))
}

#[tokio::test(start_paused = true)]
async fn anyhow_result_alias_works() {
    assert_eq!(anyhow_alias().await.unwrap(), 2);
}

/// `impl Trait` in the return type.
#[retry_on_failure(max_attempts = 1)]
async fn returns_impl_trait() -> Result<impl Display, Flaky> {
    Ok(5)
}

#[tokio::test(start_paused = true)]
async fn impl_trait_in_return_position() {
    assert_eq!(returns_impl_trait().await.unwrap().to_string(), "5");
}

/// The expansion names everything by absolute path: a local `mod core` or a shadowed `Result`
/// does not break it.
mod hygiene {
    #![allow(dead_code)]
    mod core {}
    mod std {}
    type Option = ();
    struct Ok;
    struct Err;

    #[retry_runtime::retry_on_failure(max_attempts = 2, initial_delay = 0, max_time = 5)]
    pub async fn works() -> ::core::result::Result<u8, ()> {
        ::core::result::Result::Ok(1)
    }
}

#[tokio::test(start_paused = true)]
async fn expansion_uses_absolute_paths() {
    assert_eq!(hygiene::works().await, Ok(1));
}
