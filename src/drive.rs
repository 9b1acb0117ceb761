//! A call driven exactly as `#[retry_on_failure]` with a gate and an observer expands, for the
//! tests and simulations of the shared mechanisms (`CircuitBreaker`, `AdaptiveThrottle` as the
//! gate; `RetryBudget` as the observer).

use std::future::Future;
use std::ops::ControlFlow;

use retry_runtime::__private::{self, CallState};
use retry_runtime::{Admission, CircuitOpen, Gate, GiveUpReason, Observer, RetryPolicy, Retryable};

/// Runs `attempt` until the policy, the gate or the observer ends the call: `admit` before each
/// attempt (sleeping through a `Wait` and confirming after it, returning `From<CircuitOpen>` on a
/// `Reject`), then
/// `CallState::step` with the gate's `settle`, then `__private::sleep` before the next attempt.
pub async fn retry_call<T, E, G, O, F, Fut>(
    policy: &RetryPolicy,
    gate: G,
    observer: O,
    mut attempt: F,
) -> Result<T, E>
where
    G: Gate,
    O: Observer<E>,
    E: From<CircuitOpen> + Retryable,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut call = CallState::<()>::new();
    loop {
        let admitted = match gate.admit() {
            Admission::Proceed(p) => Ok(p),
            Admission::Wait(d, p) => __private::wait_admitted(&gate, d, p).await,
            Admission::Reject(open) => Err(open),
        };
        let permit = match admitted {
            Ok(p) => p,
            Err(open) => {
                return call.reject::<Result<T, E>, _>(
                    E::from(open),
                    GiveUpReason::CircuitOpen,
                    &observer,
                )
            }
        };
        let result = attempt().await;
        match call.step(
            policy,
            "drive",
            result,
            |e: &E| e.classification(),
            __private::never,
            |outcome| gate.settle(permit, outcome),
            &observer,
        ) {
            ControlFlow::Break(r) => return r,
            ControlFlow::Continue(d) => __private::sleep(d).await,
        }
    }
}
