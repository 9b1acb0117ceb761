//! What the `#[retry_on_failure]` expansion calls. Not public API: names and signatures change
//! without notice.

use std::fmt;
use std::ops::ControlFlow;
use std::time::Duration;

use crate::{Backoff, Classification, GiveUpEvent, Jitter, OnRetry, RetryEvent, RetryPolicy};

pub use crate::call::{CallState, DynCallState, IsResult};
pub use crate::classify::{
    ClassifierOf, Probe, ViaDefault, ViaDefaultType, ViaRetryable, ViaRetryableType,
};
pub use crate::context::{AttemptContext, ContextState};
pub use crate::describe::{
    ByTypeName, Describe, DescribeOpaque, DescribeViaDebug, DescribeViaDisplay, ErrorRef,
};
pub use crate::inspect::{
    InspectRequired, InspectViaAsRef, InspectViaError, InspectViaTrait, Inspector,
};
pub use crate::optional::Off;
pub use crate::per_thread::CounterCache;
pub use crate::stats::{CallRecorder, FnStats, FnStatsKey, Keyed};
pub use crate::tracing_observer::TracingCall;
pub use std::thread_local;
pub use tokio::time::Instant;

/// The policy of an attribute whose literals the macro has already validated and split into
/// `(seconds, nanoseconds)`; `const` so that it costs nothing at run time, and written for a cheap
/// const evaluation, which every annotated fn pays at compile time.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub const fn literal_policy(
    max_attempts: u32,
    initial_delay: (u64, u32),
    max_delay: (u64, u32),
    backoff_factor: f64,
    backoff: Backoff,
    jitter: Jitter,
    max_time: Option<(u64, u32)>,
    max_retry_after: Option<(u64, u32)>,
) -> RetryPolicy {
    let max_time = match max_time {
        Some((secs, nanos)) => Some(Duration::new(secs, nanos)),
        None => None,
    };
    let max_retry_after = match max_retry_after {
        Some((secs, nanos)) => Duration::new(secs, nanos),
        None => RetryPolicy::DEFAULT.max_retry_after,
    };
    RetryPolicy {
        max_attempts,
        initial_delay: Duration::new(initial_delay.0, initial_delay.1),
        max_delay: Duration::new(max_delay.0, max_delay.1),
        backoff_factor,
        backoff,
        jitter,
        max_time,
        max_retry_after,
    }
}

// The attribute names `RetryPolicy::DEFAULT` for a fn whose literals are these values
// (`is_default` in retry-macro's expand.rs): they must stay the constant's.
const _: () = {
    let d = RetryPolicy::DEFAULT;
    assert!(d.max_attempts == 3);
    assert!(d.initial_delay.as_nanos() == 1_000_000_000);
    assert!(d.max_delay.as_nanos() == 10_000_000_000);
    assert!(d.backoff_factor == 2.0);
    assert!(matches!(d.backoff, Backoff::Exponential));
    assert!(matches!(d.jitter, Jitter::Full));
    assert!(d.max_time.is_none());
    assert!(d.max_retry_after.as_nanos() == 120_000_000_000);
};

/// A policy from validated values in nanoseconds; `const`. The attribute uses [`literal_policy`],
/// which is cheaper to evaluate at compile time.
#[allow(clippy::too_many_arguments)]
pub const fn policy(
    max_attempts: u32,
    initial_delay_nanos: u64,
    max_delay_nanos: u64,
    backoff_factor: f64,
    backoff: Backoff,
    jitter: Jitter,
    max_time_nanos: Option<u64>,
    max_retry_after_nanos: Option<u64>,
) -> RetryPolicy {
    let max_time = match max_time_nanos {
        Some(n) => Some(Duration::from_nanos(n)),
        None => None,
    };
    let max_retry_after = match max_retry_after_nanos {
        Some(n) => Duration::from_nanos(n),
        None => RetryPolicy::DEFAULT.max_retry_after,
    };
    RetryPolicy {
        max_attempts,
        initial_delay: Duration::from_nanos(initial_delay_nanos),
        max_delay: Duration::from_nanos(max_delay_nanos),
        backoff_factor,
        backoff,
        jitter,
        max_time,
        max_retry_after,
    }
}

/// The policy of an attribute's validated literals, as a type whose constant [`POLICY`] the
/// expansion references: `&LiteralPolicy::<..>::POLICY`. rustc evaluates an associated constant
/// once per set of generic arguments, so the fns of a crate that share their literals (the usual
/// case: a handful of settings per provider) share one evaluation, where a `const` item in each
/// fn is evaluated per fn, a noticeable part of its compile time. Three arguments, as each costs
/// a little to lower:
///
/// - `SHAPE_FACTOR`: `max_attempts << 96 | has_max_time << 81 | has_max_retry_after << 80 |
///   backoff << 72 | jitter << 64 | backoff_factor bits` (the enums by declaration order);
/// - `DELAYS`: `initial_delay << 64 | max_delay`;
/// - `LIMITS`: `max_time << 64 | max_retry_after`;
///
/// durations in nanoseconds, saturated by the macro at `u64::MAX`.
///
/// [`POLICY`]: LiteralPolicy::POLICY
pub struct LiteralPolicy<const SHAPE_FACTOR: u128, const DELAYS: u128, const LIMITS: u128>;

impl<const SHAPE_FACTOR: u128, const DELAYS: u128, const LIMITS: u128>
    LiteralPolicy<SHAPE_FACTOR, DELAYS, LIMITS>
{
    /// The policy.
    pub const POLICY: RetryPolicy = policy(
        (SHAPE_FACTOR >> 96) as u32,
        (DELAYS >> 64) as u64,
        DELAYS as u64,
        f64::from_bits(SHAPE_FACTOR as u64),
        match (SHAPE_FACTOR >> 72) as u8 {
            0 => Backoff::Exponential,
            1 => Backoff::Constant,
            2 => Backoff::Linear,
            _ => Backoff::Fibonacci,
        },
        match (SHAPE_FACTOR >> 64) as u8 {
            0 => Jitter::Full,
            1 => Jitter::Equal,
            2 => Jitter::Decorrelated,
            _ => Jitter::None,
        },
        if SHAPE_FACTOR & (1 << 81) != 0 {
            Some((LIMITS >> 64) as u64)
        } else {
            None
        },
        if SHAPE_FACTOR & (1 << 80) != 0 {
            Some(LIMITS as u64)
        } else {
            None
        },
    );
}

pub use crate::env::EnvPolicy;
/// The sleep between two attempts of a blocking fn: `std::thread::sleep`, skipped under
/// [`testing::no_sleep`](crate::testing::no_sleep).
pub use crate::sleep::sleep_blocking;
/// The sleep between two attempts of an async fn: tokio's timer, skipped under
/// [`testing::no_sleep`](crate::testing::no_sleep).
pub use crate::sleep::{sleep, Sleep};
/// `attempt_timeout = ..`: `with_timeout(after, attempt, timeout_error())` wraps each attempt's
/// future; `timeout_error()` (spanned at the key) requires the fn's error type to implement
/// `From<AttemptTimedOut>`, with `FromAttemptTimeout`'s message when it does not.
pub use crate::timeout::{timeout_error, with_timeout, WithTimeout};

/// `config = <expr>`: the policy behind a `RetryPolicy`, a reference to one, an `Arc` of one or an
/// `EnvPolicy`, with one clear message for anything else.
#[inline(always)]
pub fn config<P: AsPolicy + ?Sized>(source: &P) -> &RetryPolicy {
    source.as_policy()
}

/// What `config = <expr>` accepts.
#[diagnostic::on_unimplemented(
    message = "`config = ..` needs a `RetryPolicy`, found `{Self}`",
    label = "expected a `RetryPolicy`, `&RetryPolicy`, `Arc<RetryPolicy>`, `LazyLock<RetryPolicy>` or `EnvPolicy`",
    note = "build one with `RetryPolicy::builder()`, `RetryPolicy::from_env(..)` or `EnvPolicy::new(..)`"
)]
pub trait AsPolicy {
    /// The policy to run the call with.
    fn as_policy(&self) -> &RetryPolicy;
}

impl AsPolicy for RetryPolicy {
    #[inline(always)]
    fn as_policy(&self) -> &RetryPolicy {
        self
    }
}

impl AsPolicy for EnvPolicy {
    #[inline(always)]
    fn as_policy(&self) -> &RetryPolicy {
        self.get()
    }
}

impl<P: AsPolicy + ?Sized> AsPolicy for &P {
    #[inline(always)]
    fn as_policy(&self) -> &RetryPolicy {
        (**self).as_policy()
    }
}

impl<P: AsPolicy + ?Sized> AsPolicy for std::sync::Arc<P> {
    #[inline(always)]
    fn as_policy(&self) -> &RetryPolicy {
        (**self).as_policy()
    }
}

impl<P: AsPolicy + ?Sized> AsPolicy for Box<P> {
    #[inline(always)]
    fn as_policy(&self) -> &RetryPolicy {
        (**self).as_policy()
    }
}

impl<P: AsPolicy + ?Sized> AsPolicy for std::rc::Rc<P> {
    #[inline(always)]
    fn as_policy(&self) -> &RetryPolicy {
        (**self).as_policy()
    }
}

/// `static POLICY: LazyLock<RetryPolicy> = LazyLock::new(|| ..)`, the usual way to build a shared
/// policy once.
impl<P: AsPolicy, F: FnOnce() -> P> AsPolicy for std::sync::LazyLock<P, F> {
    #[inline(always)]
    fn as_policy(&self) -> &RetryPolicy {
        std::sync::LazyLock::force(self).as_policy()
    }
}

/// Tells the observers a call is starting; `R` names the fn's result type so that the observers'
/// error type is known.
#[inline(always)]
pub fn start<R: IsResult, O: crate::Observer<R::Err>>(observer: &O) {
    observer.on_start();
}

/// `settle` when the fn has no gate.
#[inline(always)]
pub fn no_gate(_: crate::AttemptOutcome) {}

/// `retry_if_ok` when the attribute has none: an `Ok` is always final.
#[inline(always)]
pub fn never<T: ?Sized>(_: &T) -> bool {
    false
}

/// Calls a `retry_if` predicate; going through a generic fn lets an unannotated closure
/// (`|e| e.is_timeout()`) get its parameter type from the error.
#[inline(always)]
pub fn test<E: ?Sized, F: FnOnce(&E) -> bool>(predicate: F, err: &E) -> bool {
    predicate(err)
}

/// The attribute's lists and the error's own verdict, in the documented order (the crate docs'
/// "Classification" section): `give_up` is whether a `give_up_on` type matched; `retry` is `None`
/// without `retry_on`/`retry_if`, else whether one of them accepted the error; `class` is the
/// error's own verdict (its `Retryable` impl, or "retry" without one), asked for only when it
/// decides or supplies the `Retry-After` hint of an accepted error.
#[inline]
pub fn decide(
    give_up: bool,
    retry: Option<bool>,
    class: impl FnOnce() -> Classification,
) -> Classification {
    match (give_up, retry) {
        (true, _) | (false, Some(false)) => Classification::give_up(),
        (false, Some(true)) => {
            let own = class();
            Classification::retry()
                .with_retry_after(own.retry_after_hint())
                .with_rate_limited(own.is_rate_limited())
        }
        (false, None) => class(),
    }
}

/// The error a call turned away by an open breaker returns; spanned at the `circuit_breaker`
/// expression, so that a missing `From<CircuitOpen>` is reported there with
/// [`FromCircuitOpen`](crate::FromCircuitOpen)'s message.
#[cold]
pub fn circuit_open<R>(open: crate::CircuitOpen) -> R::Err
where
    R: IsResult,
    R::Err: crate::FromCircuitOpen,
{
    <R::Err as crate::FromCircuitOpen>::from_circuit_open(open)
}

/// `throttle = ..` without a breaker: a throttle only ever paces, so its admission is a wait and
/// a permit, without a rejection to handle.
#[inline]
pub fn pace(throttle: &crate::AdaptiveThrottle) -> (Option<Duration>, crate::ThrottlePermit<'_>) {
    throttle.acquire()
}

/// After an [`Admission::Wait`](crate::Admission::Wait): sleeps it out and asks the gate to
/// [`confirm`](crate::Gate::confirm), as often as it asks for another wait. `Err` if it turns the
/// attempt away meanwhile. With sleeping disabled ([`testing`](crate::testing)) the clock does
/// not move, so the first wait is the only one.
pub async fn wait_admitted<G: crate::Gate>(
    gate: &G,
    mut wait: Duration,
    mut permit: G::Permit,
) -> Result<G::Permit, crate::CircuitOpen> {
    loop {
        sleep(wait).await;
        (wait, permit) = match confirm_after_wait(gate, permit) {
            ControlFlow::Break(admitted) => return admitted,
            ControlFlow::Continue(again) => again,
        };
    }
}

/// [`wait_admitted`] for a blocking fn.
pub fn wait_admitted_blocking<G: crate::Gate>(
    gate: &G,
    mut wait: Duration,
    mut permit: G::Permit,
) -> Result<G::Permit, crate::CircuitOpen> {
    loop {
        sleep_blocking(wait);
        (wait, permit) = match confirm_after_wait(gate, permit) {
            ControlFlow::Break(admitted) => return admitted,
            ControlFlow::Continue(again) => again,
        };
    }
}

/// One step of [`wait_admitted`] once a wait is over: admitted (or turned away), or another wait.
fn confirm_after_wait<G: crate::Gate>(
    gate: &G,
    permit: G::Permit,
) -> ControlFlow<Result<G::Permit, crate::CircuitOpen>, (Duration, G::Permit)> {
    if crate::testing::sleeping_disabled() {
        return ControlFlow::Break(Ok(permit));
    }
    match gate.confirm(permit) {
        crate::Admission::Proceed(p) => ControlFlow::Break(Ok(p)),
        crate::Admission::Wait(d, p) => ControlFlow::Continue((d, p)),
        crate::Admission::Reject(open) => ControlFlow::Break(Err(open)),
    }
}

/// `throttle = ..` without a breaker, after [`pace`] asked for a wait: [`wait_admitted`], for a
/// gate that never rejects.
pub async fn wait_paced<'t>(
    throttle: &'t crate::AdaptiveThrottle,
    wait: Duration,
    permit: crate::ThrottlePermit<'t>,
) -> crate::ThrottlePermit<'t> {
    match wait_admitted(&throttle, wait, permit).await {
        Ok(p) => p,
        Err(_) => unreachable!("a throttle never rejects"),
    }
}

/// [`wait_paced`] for a blocking fn.
pub fn wait_paced_blocking<'t>(
    throttle: &'t crate::AdaptiveThrottle,
    wait: Duration,
    permit: crate::ThrottlePermit<'t>,
) -> crate::ThrottlePermit<'t> {
    match wait_admitted_blocking(&throttle, wait, permit) {
        Ok(p) => p,
        Err(_) => unreachable!("a throttle never rejects"),
    }
}

/// `circuit_breaker = <expr>`: the expansion passes `&<expr>`; deref coercion accepts a
/// `static`, a `&CircuitBreaker`, an `Arc<CircuitBreaker>` and the like, and a wrong type is
/// reported at the expression.
#[inline(always)]
pub fn breaker(b: &crate::CircuitBreaker) -> &crate::CircuitBreaker {
    b
}

/// `budget = <expr>`, as [`breaker`].
#[inline(always)]
pub fn budget(b: &crate::RetryBudget) -> &crate::RetryBudget {
    b
}

/// `throttle = <expr>`, as [`breaker`].
#[inline(always)]
pub fn throttle(t: &crate::AdaptiveThrottle) -> &crate::AdaptiveThrottle {
    t
}

/// `on_retry = f`: `R`, the fn's return type, fixes the closure's argument types, so that a
/// closure's body can call methods on the error without annotations.
#[inline(always)]
pub fn on_retry<R, F>(f: F) -> OnRetry<F>
where
    R: IsResult,
    F: Fn(&R::Err, &RetryEvent),
{
    OnRetry::new(f)
}

/// `on_give_up = f`: as [`on_retry`], gives the closure its argument types, in a call of its own
/// so that a closure of the wrong shape is reported at the closure; the expansion then wraps it
/// in an [`OnGiveUp`](crate::OnGiveUp) with the fn's name and the call's clock.
#[inline(always)]
pub fn give_up_hook<R, F>(f: F) -> F
where
    R: IsResult,
    F: Fn(&R::Err, &GiveUpEvent),
{
    f
}

/// `on_success = f`: as [`give_up_hook`].
#[inline(always)]
pub fn success_hook<F: Fn(&crate::SuccessEvent)>(f: F) -> F {
    f
}

/// The call's tracing span and observer (nothing without the `tracing` feature). `fmt` is the
/// expansion's `|e, f| (&&ErrorRef(e)).__retry_describe(f)`, its types fixed by `R`.
#[inline(always)]
pub fn tracing_call<R, F>(name: &'static str, fmt: F) -> TracingCall<F>
where
    R: IsResult,
    F: Fn(&R::Err, &mut fmt::Formatter<'_>) -> fmt::Result,
{
    TracingCall::new(name, fmt)
}

/// The call's tracing observer for a fn whose return type has an `impl Trait` in it: the error
/// type is only known from the first attempt, so errors are shown by type name.
#[inline(always)]
pub fn tracing_call_by_type_name(name: &'static str) -> TracingCall<ByTypeName> {
    TracingCall::new(name, ByTypeName)
}

/// The call's metrics observer, reporting under `stats`'s name.
#[cfg(feature = "metrics")]
#[inline(always)]
pub fn metrics_call(stats: &'static FnStats) -> crate::metrics_observer::MetricsCall {
    crate::metrics_observer::MetricsCall::new(stats)
}

/// Nothing without the `metrics` feature.
#[cfg(not(feature = "metrics"))]
#[inline(always)]
pub fn metrics_call(_stats: &'static FnStats) {}

/// `fallback = f`: turns the call's final error into its result; `R` fixes the closure's
/// argument type. An `Ok` passes through untouched.
#[inline(always)]
pub fn recover<R, F>(result: R, f: F) -> R
where
    R: IsResult,
    F: FnOnce(R::Err) -> Result<R::Ok, R::Err>,
{
    match result.into_result() {
        Ok(ok) => R::from_result(Ok(ok)),
        Err(err) => R::from_result(f(err)),
    }
}
