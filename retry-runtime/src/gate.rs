//! Admission before each attempt: how a shared mechanism (a circuit breaker, a client-side
//! throttle) lets an attempt through, makes it wait, or turns it away, and learns its outcome.

use std::fmt;
use std::time::Duration;

use crate::Classification;

/// How an attempt ended, as a [`Gate`] learns it. A permit dropped without
/// [`Gate::settle`] (the call was cancelled mid-attempt) must be treated as neither.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// The attempt returned `Ok`.
    Success,
    /// The attempt returned an error with this classification.
    Failure(Classification),
}

/// The answer of a [`Gate`] before an attempt.
#[derive(Debug)]
pub enum Admission<P> {
    /// Go ahead now, holding the permit for the duration of the attempt.
    Proceed(P),
    /// Go ahead after sleeping this long (pacing), holding the permit meanwhile.
    Wait(Duration, P),
    /// Do not touch the provider: the call ends with this error.
    Reject(CircuitOpen),
}

/// Something consulted before every attempt and told how each attempt ended.
///
/// The permit is held while the attempt runs. If the call's future is dropped mid-attempt, the
/// permit is dropped without [`settle`](Gate::settle): implementations release whatever it holds
/// in `Drop`, so that cancellation leaves the shared state consistent.
pub trait Gate {
    /// What an admitted attempt holds until it is settled.
    type Permit;

    /// Asks to run one attempt.
    fn admit(&self) -> Admission<Self::Permit>;

    /// Reports how the attempt admitted with `permit` ended.
    fn settle(&self, permit: Self::Permit, outcome: AttemptOutcome);

    /// Asked again after the caller waited out an [`Admission::Wait`]: whether the attempt may go
    /// now with `permit`, or must wait again. A gate whose schedule changed while the caller
    /// slept (a throttle whose rate moved) books the attempt anew here. By default the wait
    /// was the whole story: [`Admission::Proceed`].
    #[inline(always)]
    fn confirm(&self, permit: Self::Permit) -> Admission<Self::Permit> {
        Admission::Proceed(permit)
    }

    /// What the next attempt would meet if it asked now: asked after a failed attempt is
    /// settled, so that a call gives up with its error, rather than sleep, when the next attempt
    /// would be turned away (an open breaker) or would start past `max_time` (a throttle's wait).
    #[inline(always)]
    fn outlook(&self) -> Outlook {
        Outlook::CLEAR
    }
}

/// What an attempt asking a [`Gate`] now would meet.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Outlook {
    /// How long from now attempts are turned away, if they are (an open breaker's cool-down).
    pub shut_for: Option<Duration>,
    /// How long an admitted attempt would wait for its turn (a throttle's pacing).
    pub wait_for: Duration,
}

impl Outlook {
    /// Admitted at once.
    pub const CLEAR: Outlook = Outlook {
        shut_for: None,
        wait_for: Duration::ZERO,
    };

    /// The outlook through two gates: turned away if either turns away, waiting for both.
    pub fn and(self, other: Outlook) -> Outlook {
        Outlook {
            shut_for: self.shut_for.max(other.shut_for),
            wait_for: self.wait_for.saturating_add(other.wait_for),
        }
    }
}

impl<G: Gate + ?Sized> Gate for &G {
    type Permit = G::Permit;
    #[inline(always)]
    fn admit(&self) -> Admission<Self::Permit> {
        (**self).admit()
    }
    #[inline(always)]
    fn settle(&self, permit: Self::Permit, outcome: AttemptOutcome) {
        (**self).settle(permit, outcome);
    }
    #[inline(always)]
    fn outlook(&self) -> Outlook {
        (**self).outlook()
    }
}

/// No gate: every attempt proceeds at once. Lets an expansion build `(breaker, throttle)` with
/// `()` for a mechanism that is not configured; it compiles to nothing.
impl Gate for () {
    type Permit = ();
    #[inline(always)]
    fn admit(&self) -> Admission<()> {
        Admission::Proceed(())
    }
    #[inline(always)]
    fn settle(&self, (): (), _: AttemptOutcome) {}
}

impl<A: Gate, B: Gate> Gate for (A, B) {
    type Permit = (A::Permit, B::Permit);

    /// Admits through `A` then `B`; waits add up. If `B` rejects, `A`'s permit is dropped, which
    /// releases it.
    fn admit(&self) -> Admission<Self::Permit> {
        let (a_wait, a) = match self.0.admit() {
            Admission::Proceed(p) => (Duration::ZERO, p),
            Admission::Wait(d, p) => (d, p),
            Admission::Reject(r) => return Admission::Reject(r),
        };
        match self.1.admit() {
            Admission::Proceed(b) if a_wait.is_zero() => Admission::Proceed((a, b)),
            Admission::Proceed(b) => Admission::Wait(a_wait, (a, b)),
            Admission::Wait(d, b) => Admission::Wait(a_wait.saturating_add(d), (a, b)),
            Admission::Reject(r) => Admission::Reject(r),
        }
    }

    /// Confirms through `A` then `B`; while `A` still asks for a wait, `B` is asked next time.
    fn confirm(&self, (a, b): Self::Permit) -> Admission<Self::Permit> {
        let a = match self.0.confirm(a) {
            Admission::Proceed(a) => a,
            Admission::Wait(d, a) => return Admission::Wait(d, (a, b)),
            Admission::Reject(r) => return Admission::Reject(r),
        };
        match self.1.confirm(b) {
            Admission::Proceed(b) => Admission::Proceed((a, b)),
            Admission::Wait(d, b) => Admission::Wait(d, (a, b)),
            Admission::Reject(r) => Admission::Reject(r),
        }
    }

    fn settle(&self, (a, b): Self::Permit, outcome: AttemptOutcome) {
        self.0.settle(a, outcome);
        self.1.settle(b, outcome);
    }

    fn outlook(&self) -> Outlook {
        self.0.outlook().and(self.1.outlook())
    }
}

/// The error of a call turned away by an open [`CircuitBreaker`](crate::CircuitBreaker) without
/// touching the provider. A fn with `circuit_breaker = ..` returns it through its error type's
/// `From<CircuitOpen>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CircuitOpen {
    /// The breaker's name.
    pub name: &'static str,
    /// How long until the breaker lets a probe call through.
    pub retry_in: Duration,
}

impl fmt::Display for CircuitOpen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "circuit breaker `{}` is open; the next probe call is allowed in {:?}",
            self.name, self.retry_in
        )
    }
}

impl std::error::Error for CircuitOpen {}

/// The error type of a fn with `circuit_breaker = ..`: it must be able to carry a [`CircuitOpen`].
#[diagnostic::on_unimplemented(
    message = "`circuit_breaker` needs the error type `{Self}` to implement `From<CircuitOpen>`",
    label = "a call turned away by the open breaker is returned as this error type",
    note = "add a variant such as `#[error(transparent)] CircuitOpen(#[from] retry_runtime::CircuitOpen)`, or implement `From<retry_runtime::CircuitOpen> for {Self}`"
)]
pub trait FromCircuitOpen {
    /// Converts the rejection into this error.
    fn from_circuit_open(open: CircuitOpen) -> Self;
}

// `do_not_recommend` makes rustc report the unmet `FromCircuitOpen` (and its message above) rather
// than the `From` bound of this impl.
#[diagnostic::do_not_recommend]
impl<E: From<CircuitOpen>> FromCircuitOpen for E {
    #[inline]
    fn from_circuit_open(open: CircuitOpen) -> Self {
        E::from(open)
    }
}
