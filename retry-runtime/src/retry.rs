//! The closure API, for code that retries without the attribute:
//! `policy.retry(|| async { .. }).await` and `policy.retry_blocking(|| ..).call()`.
//!
//! [`Retry`] is a builder: its methods choose how errors are classified, who is told about retries
//! and whether attempts have a deadline; awaiting it runs the call. It drives the same engine as
//! `#[retry_on_failure]` ([`CallState::step`](crate::CallState::step) and the same sleep), so a policy behaves the same
//! through either. The types below only name the choices; they are rarely written out.

use std::future::{Future, IntoFuture};
use std::ops::ControlFlow;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use pin_project_lite::pin_project;

use crate::sleep::{sleep, sleep_blocking, Sleep};
use crate::timeout::{timeout_error, FromAttemptTimeout, WithTimeout};
use crate::{
    AttemptTimedOut, Classification, DynCallState, GiveUpReason, IsResult, Observer, RetryEvent,
    RetryPolicy, Retryable,
};

impl RetryPolicy {
    /// Retries `attempt`, a closure returning a future of a `Result`, under this policy. Await the
    /// returned [`Retry`], after choosing with its methods how errors are classified
    /// ([`when`](Retry::when), [`classify`](Retry::classify), [`classified`](Retry::classified);
    /// by default every error is retried) and who hears of retries ([`notify`](Retry::notify)).
    ///
    /// The future is `Send` when the closure and its futures are, and a call whose first attempt
    /// succeeds does not allocate.
    ///
    /// ```
    /// use retry_runtime::{Jitter, RetryPolicy};
    /// use std::time::Duration;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let policy = RetryPolicy::builder().max_attempts(5).jitter(Jitter::None).build()?;
    /// let mut calls = 0;
    /// let answer = policy
    ///     .retry(|| {
    ///         calls += 1;
    ///         let n = calls;
    ///         async move { if n < 3 { Err(format!("503 on call {n}")) } else { Ok(n) } }
    ///     })
    ///     .when(|e: &String| e.starts_with("503"))
    ///     .notify(|e: &String, ev| println!("{e}; retrying in {:?}", ev.delay))
    ///     .await?;
    /// assert_eq!(answer, 3);
    /// # Ok(())
    /// # }
    /// ```
    pub fn retry<F>(&self, attempt: F) -> Retry<F> {
        Retry {
            policy: *self,
            name: std::any::type_name::<F>(),
            attempt,
            classify: RetryAll,
            retry_ok: NeverRetryOk,
            observer: (),
            timeout: NoTimeout,
        }
    }

    /// Retries `attempt`, a closure returning a `Result`, blocking the thread between attempts.
    /// Takes the same methods as [`retry`](Self::retry) (except
    /// [`attempt_timeout`](Retry::attempt_timeout)); [`call`](Retry::call) runs it.
    ///
    /// ```
    /// use retry_runtime::RetryPolicy;
    /// use std::time::Duration;
    ///
    /// let policy = RetryPolicy::builder()
    ///     .initial_delay(Duration::from_millis(1))
    ///     .max_delay(Duration::from_millis(5))
    ///     .build()?;
    /// let mut calls = 0;
    /// let result = policy
    ///     .retry_blocking(|| {
    ///         calls += 1;
    ///         std::fs::read_to_string("/definitely/not/here")
    ///     })
    ///     .when(|e: &std::io::Error| e.kind() != std::io::ErrorKind::NotFound)
    ///     .call();
    /// assert!(result.is_err());
    /// assert_eq!(calls, 1); // NotFound is not worth a retry
    /// # Ok::<(), retry_runtime::PolicyError>(())
    /// ```
    pub fn retry_blocking<F>(&self, attempt: F) -> Retry<F> {
        self.retry(attempt)
    }
}

/// A retrying call being set up; see [`RetryPolicy::retry`]. Await it (async closures) or
/// [`call`](Retry::call) it (blocking closures) to run it.
///
/// The type parameters record the choices: `C` how errors are classified, `K` whether an `Ok`
/// asks for another attempt, `O` who observes the call, `T` whether attempts have a deadline.
#[derive(Clone, Debug)]
#[must_use = "a retrying call does nothing until it is awaited or called"]
pub struct Retry<F, C = RetryAll, K = NeverRetryOk, O = (), T = NoTimeout> {
    policy: RetryPolicy,
    name: &'static str,
    attempt: F,
    classify: C,
    retry_ok: K,
    observer: O,
    timeout: T,
}

impl<F, C, K, O, T> Retry<F, C, K, O, T> {
    /// The same call with other choices.
    fn with<C2, K2, O2, T2>(
        self,
        choose: impl FnOnce(C, K, O, T) -> (C2, K2, O2, T2),
    ) -> Retry<F, C2, K2, O2, T2> {
        let (classify, retry_ok, observer, timeout) =
            choose(self.classify, self.retry_ok, self.observer, self.timeout);
        Retry {
            policy: self.policy,
            name: self.name,
            attempt: self.attempt,
            classify,
            retry_ok,
            observer,
            timeout,
        }
    }

    /// Retries only the errors for which `predicate` is true; others are returned at once.
    ///
    /// `E` is the closure's error type; the type parameters of this and the methods below only
    /// help the compiler infer the closures' argument types.
    pub fn when<E, P>(self, predicate: P) -> Retry<F, When<P>, K, O, T>
    where
        P: FnMut(&E) -> bool,
    {
        self.with(|_, k, o, t| (When(predicate), k, o, t))
    }

    /// Classifies each error with `classify`, which may also pass on the server's `Retry-After`
    /// and flag rate limiting (see [`Classification`]).
    pub fn classify<E, P>(self, classify: P) -> Retry<F, ClassifyWith<P>, K, O, T>
    where
        P: FnMut(&E) -> Classification,
    {
        self.with(|_, k, o, t| (ClassifyWith(classify), k, o, t))
    }

    /// Classifies errors with their [`Retryable`] impl, as the attribute does by default.
    pub fn classified(self) -> Retry<F, ByRetryable, K, O, T> {
        self.with(|_, k, o, t| (ByRetryable, k, o, t))
    }

    /// Also retries an `Ok` value for which `predicate` is true (a poll that is not finished
    /// yet); after the last attempt that `Ok` is returned as is.
    pub fn retry_if_ok<V, P>(self, predicate: P) -> Retry<F, C, RetryIfOk<P>, O, T>
    where
        P: FnMut(&V) -> bool,
    {
        self.with(|c, _, o, t| (c, RetryIfOk(predicate), o, t))
    }

    /// Calls `notify` with the error and the [`RetryEvent`] before each retry's sleep.
    pub fn notify<E, N>(self, notify: N) -> Retry<F, C, K, (O, Notify<N>), T>
    where
        N: Fn(&E, &RetryEvent),
    {
        self.observe(Notify(notify))
    }

    /// Adds an [`Observer`] (statistics, a retry budget, logging) that sees the call's start,
    /// each retry, and its end.
    pub fn observe<O2>(self, observer: O2) -> Retry<F, C, K, (O, O2), T> {
        self.with(|c, k, o, t| (c, k, (o, observer), t))
    }

    /// The name reported in [`RetryEvent::name`]; by default the closure's type name.
    pub fn name(mut self, name: &'static str) -> Self {
        self.name = name;
        self
    }

    /// Cuts each attempt off after `after`; a cut-off attempt fails with
    /// [`AttemptTimedOut`], converted into the closure's error type,
    /// which is retried like any other error the classifier accepts.
    ///
    /// ```
    /// use retry_runtime::{AttemptTimedOut, RetryPolicy};
    /// use std::time::Duration;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let mut calls = 0;
    /// let result: Result<(), std::io::Error> = RetryPolicy::DEFAULT
    ///     .retry(|| {
    ///         calls += 1;
    ///         std::future::pending() // never answers
    ///     })
    ///     .attempt_timeout(Duration::from_secs(5))
    ///     .await;
    /// assert_eq!(result.unwrap_err().kind(), std::io::ErrorKind::TimedOut);
    /// assert_eq!(calls, 3);
    /// # }
    /// ```
    pub fn attempt_timeout<Fut>(
        self,
        after: Duration,
    ) -> Retry<F, C, K, O, AttemptTimeout<Fut::Output>>
    where
        F: FnMut() -> Fut,
        Fut: IntoFuture,
        Fut::Output: IsResult,
        <Fut::Output as IsResult>::Err: FromAttemptTimeout,
    {
        let on_timeout = timeout_error::<Fut::Output>();
        self.with(|c, k, o, _| (c, k, o, AttemptTimeout { after, on_timeout }))
    }
}

impl<F, C, K, O> Retry<F, C, K, O, NoTimeout> {
    /// Runs a blocking retrying call (see [`RetryPolicy::retry_blocking`]): attempts on the
    /// current thread, with `std::thread::sleep` between them.
    pub fn call<R>(mut self) -> R
    where
        F: FnMut() -> R,
        R: IsResult,
        C: Classify<R::Err>,
        K: RetryOk<R::Ok>,
        O: Observer<R::Err>,
    {
        let mut call = DynCallState::new(&self.policy);
        self.observer.on_start();
        loop {
            let result = (self.attempt)();
            match step(
                &mut call,
                &self.policy,
                self.name,
                result,
                &mut self.classify,
                &mut self.retry_ok,
                &self.observer,
            ) {
                ControlFlow::Break(done) => return done,
                ControlFlow::Continue(delay) => sleep_blocking(delay),
            }
        }
    }
}

impl<F, Fut, C, K, O, T> IntoFuture for Retry<F, C, K, O, T>
where
    F: FnMut() -> Fut,
    Fut: IntoFuture,
    Fut::Output: IsResult,
    C: Classify<<Fut::Output as IsResult>::Err>,
    K: RetryOk<<Fut::Output as IsResult>::Ok>,
    O: Observer<<Fut::Output as IsResult>::Err>,
    T: WrapAttempt<Fut::IntoFuture>,
{
    type Output = Fut::Output;
    type IntoFuture = RetryFuture<F, C, K, O, T, T::Attempt>;

    fn into_future(self) -> Self::IntoFuture {
        RetryFuture {
            call: DynCallState::new(&self.policy),
            started: false,
            policy: self.policy,
            name: self.name,
            attempt: self.attempt,
            classify: self.classify,
            retry_ok: self.retry_ok,
            observer: self.observer,
            timeout: self.timeout,
            state: State::Start,
        }
    }
}

/// One step of the engine with this module's classifier and `Ok` predicate.
#[inline(always)]
fn step<R, C, K, O>(
    call: &mut DynCallState,
    policy: &RetryPolicy,
    name: &'static str,
    result: R,
    classify: &mut C,
    retry_ok: &mut K,
    observer: &O,
) -> ControlFlow<R, Duration>
where
    R: IsResult,
    C: Classify<R::Err>,
    K: RetryOk<R::Ok>,
    O: Observer<R::Err>,
{
    call.step(
        policy,
        name,
        result,
        |e| classify.classify(e),
        |ok| retry_ok.retry_ok(ok),
        |_| {},
        observer,
    )
}

pin_project! {
    /// The future of a retrying call: [`Retry`] awaited.
    #[must_use = "futures do nothing unless polled"]
    #[derive(Debug)]
    pub struct RetryFuture<F, C, K, O, T, A> {
        call: DynCallState,
        started: bool,
        policy: RetryPolicy,
        name: &'static str,
        attempt: F,
        classify: C,
        retry_ok: K,
        observer: O,
        timeout: T,
        #[pin]
        state: State<A>,
    }
}

pin_project! {
    #[project = StateProj]
    #[derive(Debug)]
    enum State<A> {
        // The next attempt is to be started.
        Start,
        Attempt { #[pin] attempt: A },
        Sleep { #[pin] sleep: Sleep },
        Done,
    }
}

impl<F, Fut, C, K, O, T> Future for RetryFuture<F, C, K, O, T, T::Attempt>
where
    F: FnMut() -> Fut,
    Fut: IntoFuture,
    Fut::Output: IsResult,
    C: Classify<<Fut::Output as IsResult>::Err>,
    K: RetryOk<<Fut::Output as IsResult>::Ok>,
    O: Observer<<Fut::Output as IsResult>::Err>,
    T: WrapAttempt<Fut::IntoFuture>,
{
    type Output = Fut::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Fut::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Start => {
                    if !*this.started {
                        *this.started = true;
                        this.observer.on_start();
                    }
                    let attempt = this.timeout.wrap((this.attempt)().into_future());
                    this.state.set(State::Attempt { attempt });
                }
                StateProj::Attempt { attempt } => {
                    let result = ready!(attempt.poll(cx));
                    match step(
                        this.call,
                        this.policy,
                        this.name,
                        result,
                        this.classify,
                        this.retry_ok,
                        &*this.observer,
                    ) {
                        ControlFlow::Break(done) => {
                            this.state.set(State::Done);
                            return Poll::Ready(done);
                        }
                        ControlFlow::Continue(delay) => {
                            this.state.set(State::Sleep {
                                sleep: sleep(delay),
                            });
                        }
                    }
                }
                StateProj::Sleep { sleep } => {
                    ready!(sleep.poll(cx));
                    this.state.set(State::Start);
                }
                // As an `async fn` does: polling a finished future is a bug in the caller.
                StateProj::Done => panic!("`RetryFuture` polled after completion"),
            }
        }
    }
}

/// How a [`Retry`] judges an error.
pub trait Classify<E> {
    /// The verdict on one failed attempt.
    fn classify(&mut self, err: &E) -> Classification;
}

/// Retries every error (the default of [`RetryPolicy::retry`]).
#[derive(Clone, Copy, Debug, Default)]
pub struct RetryAll;

impl<E> Classify<E> for RetryAll {
    #[inline(always)]
    fn classify(&mut self, _: &E) -> Classification {
        Classification::retry()
    }
}

/// Classifies with the error's [`Retryable`] impl; see [`Retry::classified`].
#[derive(Clone, Copy, Debug, Default)]
pub struct ByRetryable;

impl<E: Retryable> Classify<E> for ByRetryable {
    #[inline]
    fn classify(&mut self, err: &E) -> Classification {
        err.classification()
    }
}

/// Retries the errors a predicate accepts; see [`Retry::when`].
#[derive(Clone, Copy, Debug)]
pub struct When<P>(P);

impl<E, P: FnMut(&E) -> bool> Classify<E> for When<P> {
    #[inline]
    fn classify(&mut self, err: &E) -> Classification {
        Classification::from_bool((self.0)(err))
    }
}

/// Classifies with a closure; see [`Retry::classify`].
#[derive(Clone, Copy, Debug)]
pub struct ClassifyWith<P>(P);

impl<E, P: FnMut(&E) -> Classification> Classify<E> for ClassifyWith<P> {
    #[inline]
    fn classify(&mut self, err: &E) -> Classification {
        (self.0)(err)
    }
}

/// Whether an `Ok` value asks for another attempt.
pub trait RetryOk<T> {
    /// `true` to retry after this `Ok`.
    fn retry_ok(&mut self, ok: &T) -> bool;
}

/// Every `Ok` is final (the default).
#[derive(Clone, Copy, Debug, Default)]
pub struct NeverRetryOk;

impl<T> RetryOk<T> for NeverRetryOk {
    #[inline(always)]
    fn retry_ok(&mut self, _: &T) -> bool {
        false
    }
}

/// Retries the `Ok` values a predicate accepts; see [`Retry::retry_if_ok`].
#[derive(Clone, Copy, Debug)]
pub struct RetryIfOk<P>(P);

impl<T, P: FnMut(&T) -> bool> RetryOk<T> for RetryIfOk<P> {
    #[inline]
    fn retry_ok(&mut self, ok: &T) -> bool {
        (self.0)(ok)
    }
}

/// An [`Observer`] calling a closure before each retry; see [`Retry::notify`].
#[derive(Clone, Copy, Debug)]
pub struct Notify<N>(N);

impl<E, N: Fn(&E, &RetryEvent)> Observer<E> for Notify<N> {
    #[inline]
    fn on_retry(&self, err: &E, event: &RetryEvent) -> Result<(), GiveUpReason> {
        (self.0)(err, event);
        Ok(())
    }
}

/// What each attempt's future becomes: itself, or itself with a deadline.
pub trait WrapAttempt<A: Future> {
    /// The future actually polled.
    type Attempt: Future<Output = A::Output>;
    /// Wraps one attempt.
    fn wrap(&self, attempt: A) -> Self::Attempt;
}

/// Attempts run as long as they take (the default).
#[derive(Clone, Copy, Debug, Default)]
pub struct NoTimeout;

impl<A: Future> WrapAttempt<A> for NoTimeout {
    type Attempt = A;
    #[inline(always)]
    fn wrap(&self, attempt: A) -> A {
        attempt
    }
}

/// Each attempt is cut off after this long; see [`Retry::attempt_timeout`]. `R` is the attempt's
/// result type, into which a timeout is converted.
#[derive(Debug)]
pub struct AttemptTimeout<R> {
    after: Duration,
    on_timeout: fn(AttemptTimedOut) -> R,
}

impl<R> Clone for AttemptTimeout<R> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<R> Copy for AttemptTimeout<R> {}

impl<A: Future> WrapAttempt<A> for AttemptTimeout<A::Output> {
    type Attempt = WithTimeout<A, A::Output>;
    #[inline]
    fn wrap(&self, attempt: A) -> Self::Attempt {
        WithTimeout::new(self.after, attempt, self.on_timeout)
    }
}
