//! The examples' scenarios, run as tests: each fault script must produce the attempts and the
//! outcome the example's output claims, as the fake provider saw them.
//!
//! These run on the real clock (a real socket does not mix with tokio's paused clock), with the
//! examples' scaled-down delays: tens to hundreds of milliseconds, one second for the demo's
//! `Retry-After: 1`.

use std::time::Duration;

use retry_runtime::{stats, GiveUpReason};

#[path = "../examples/provider.rs"]
#[allow(dead_code)] // `main`, and helpers only the demo prints with
mod provider;

const HELLO: &str = "Hello! How can I assist you today?";

/// The idempotency keys and retry counts a call's attempts sent.
fn sent_headers(
    requests: &[retry_workspace::fake_provider::Recorded],
) -> (Vec<String>, Vec<String>) {
    let keys = requests
        .iter()
        .map(|r| r.idempotency_key.clone().unwrap_or_default())
        .collect();
    let counts = requests
        .iter()
        .map(|r| r.retry_count.clone().unwrap_or_default())
        .collect();
    (keys, counts)
}

/// `cargo run --example provider`, scenario by scenario. One test, because the scenarios share
/// the client's circuit breaker and the `openai.chat` statistics, as they do in the demo.
#[tokio::test]
async fn provider_demo_survives_its_fault_script() {
    use provider::ApiError;
    let demo = provider::Demo::start().await.expect("the demo starts");

    // 1. 429 with Retry-After: 1 -> retried no sooner than a second later, then 200.
    let o = demo.rate_limited().await;
    assert_eq!(o.statuses(), [429, 200]);
    assert_eq!(o.result.as_deref().ok(), Some(HELLO));
    let gap = o.requests[1].at - o.requests[0].at;
    assert!(
        gap >= Duration::from_secs(1),
        "Retry-After undercut: {gap:?}"
    );
    assert!(gap < Duration::from_millis(1500), "{gap:?}");
    let (keys, counts) = sent_headers(&o.requests);
    assert_eq!(keys[0].len(), 36, "a UUID idempotency key: {keys:?}");
    assert_eq!(keys[0], keys[1], "one key for every attempt of a call");
    assert_eq!(counts, ["0", "1"]);
    let first_key = keys[0].clone();

    // 2. 503 -> retried after the backoff (100 ms with equal jitter: 50..100 ms), then 200.
    let o = demo.unavailable().await;
    assert_eq!(o.statuses(), [503, 200]);
    assert_eq!(o.result.as_deref().ok(), Some(HELLO));
    let gap = o.requests[1].at - o.requests[0].at;
    assert!(gap >= Duration::from_millis(50), "{gap:?}");
    let (keys, _) = sent_headers(&o.requests);
    assert_ne!(keys[0], first_key, "a new call, a new key");

    // 3. An answer that takes 2 s -> the attempt is cut off at 300 ms, the retry gets a 200.
    let o = demo.slow().await;
    assert_eq!(o.statuses(), [200, 200]);
    assert!(o.requests[0].slow && !o.requests[1].slow);
    assert_eq!(o.result.as_deref().ok(), Some(HELLO));
    assert!(
        o.took >= provider::ATTEMPT_TIMEOUT && o.took < Duration::from_secs(1),
        "{:?}",
        o.took
    );

    // 4. A bad key -> 401, one attempt.
    let o = demo.bad_key().await;
    assert_eq!(o.statuses(), [401]);
    assert!(
        matches!(&o.result, Err(ApiError::Status { status, code, .. }) if status.as_u16() == 401 && code == "invalid_api_key"),
        "{:?}",
        o.result
    );

    // 5. 429 insufficient_quota -> one attempt: a 429 the HTTP table alone would have retried.
    let o = demo.out_of_credit().await;
    assert_eq!(o.statuses(), [429]);
    assert!(
        matches!(&o.result, Err(ApiError::Status { code, .. }) if code == "insufficient_quota"),
        "{:?}",
        o.result
    );

    // 6. Healthy -> one attempt.
    let o = demo.healthy().await;
    assert_eq!(
        (o.statuses(), o.result.as_deref().ok()),
        (vec![200], Some(HELLO))
    );

    // 7. Three 503s open the breaker: the call that opened it returns its 503 at once (no sleep
    // just to be turned away), the next call never reaches the provider, and after the
    // cool-down a probe call succeeds and closes it.
    let [first, second, third] = demo.outage().await;
    assert_eq!(first.statuses(), [503, 503, 503]);
    assert!(
        matches!(&first.result, Err(ApiError::Status { status, .. }) if status.as_u16() == 503),
        "{:?}",
        first.result
    );
    // Two sleeps (at most 100 ms and 200 ms with equal jitter), not a third.
    assert!(first.took < Duration::from_millis(450), "{:?}", first.took);
    assert!(second.requests.is_empty());
    assert!(
        matches!(second.result, Err(ApiError::CircuitOpen(_))),
        "{:?}",
        second.result
    );
    assert!(second.took < Duration::from_millis(50), "{:?}", second.took);
    assert_eq!(
        (third.statuses(), third.result.as_deref().ok()),
        (vec![200], Some(HELLO))
    );
    assert!(demo.client.breaker().is_closed());

    // The statistics table's figures.
    let snap = stats::snapshot();
    let s = snap.get("openai.chat").expect("openai.chat is listed");
    assert_eq!(s.calls, 9);
    assert_eq!((s.succeeded_first_attempt, s.succeeded_after_retry), (2, 3));
    assert_eq!(s.gave_up.get(GiveUpReason::NotRetryable), 2);
    assert_eq!(s.gave_up.get(GiveUpReason::CircuitOpen), 2);
    assert_eq!(s.gave_up.total(), 4);
    assert_eq!(s.attempts, 2 + 2 + 2 + 1 + 1 + 1 + 3 + 1);
    assert_eq!((s.retries, s.max_retries), (1 + 1 + 1 + 2, 2));
    assert_eq!(s.unfinished, 0);
    let table = snap.to_string();
    assert!(
        table.contains("openai.chat gave up: not_retryable 2, circuit_open 2"),
        "{table}"
    );
}

#[path = "../examples/aicore_style.rs"]
#[allow(dead_code)] // `main`, and helpers only the example prints with
mod aicore_style;

/// `cargo run --example aicore_style`: the `LLM_*` variables are honoured, `give_up_on` and
/// `retry_on` decide, and the breaker opens. One test: the scenarios share the breaker.
#[tokio::test]
async fn aicore_style_honours_the_environment_and_its_lists() {
    use aicore_style::LlmError;
    // Before the first call of `complete`, which reads them once. Overwritten, so that a
    // developer's own LLM_* variables do not change the test; no other test reads them.
    aicore_style::set_demo_environment(true);
    let demo = aicore_style::Demo::start()
        .await
        .expect("the example starts");

    // Four failures then an answer: 5 attempts, as LLM_MAX_RETRIES=5 allows (3 compiled in).
    let o = demo.env_allows_five_attempts().await;
    assert_eq!(o.statuses(), [429, 503, 200, 502, 200]);
    assert!(o.requests[2].slow, "the third attempt timed out");
    assert_eq!(o.result.as_deref().ok(), Some(HELLO));
    // LLM_RETRY_MAX_DELAY=0.2 caps each wait (the compiled-in cap is 10 s), beside the 200 ms
    // timeout of the third attempt.
    let span = o.requests[4].at - o.requests[0].at;
    assert!(
        span < Duration::from_millis(200 + 4 * 200 + 300),
        "{span:?}"
    );

    // give_up_on = [AuthenticationError]: one attempt.
    let o = demo.bad_key_gives_up().await;
    assert_eq!(o.statuses(), [401]);
    assert!(
        matches!(o.result, Err(LlmError::Authentication(_))),
        "{:?}",
        o.result
    );

    // retry_on = [RateLimitError, TimeoutError]: a 503 is returned at once, a 429 retried.
    let [unavailable, limited] = demo.strict_lists().await;
    assert_eq!(unavailable.statuses(), [503]);
    assert!(
        matches!(unavailable.result, Err(LlmError::Status(_))),
        "{:?}",
        unavailable.result
    );
    assert_eq!(limited.statuses(), [429, 200]);
    assert_eq!(limited.result.as_deref().ok(), Some(HELLO));

    // Five 503s in a row: 5 attempts, the breaker opens, the next call sends nothing.
    let [failing, rejected] = demo.outage_opens_the_breaker().await;
    assert_eq!(failing.statuses(), [503; 5]);
    assert!(
        matches!(failing.result, Err(LlmError::Status(_))),
        "{:?}",
        failing.result
    );
    assert!(rejected.requests.is_empty());
    assert!(
        matches!(rejected.result, Err(LlmError::CircuitOpen(_))),
        "{:?}",
        rejected.result
    );

    let snap = stats::snapshot();
    let s = snap.get("llm.complete").expect("listed");
    assert_eq!((s.calls, s.succeeded_after_retry), (4, 1));
    assert_eq!(s.gave_up.get(GiveUpReason::Exhausted), 1);
    assert_eq!(s.gave_up.get(GiveUpReason::NotRetryable), 1);
    assert_eq!(s.gave_up.get(GiveUpReason::CircuitOpen), 1);
    assert_eq!(s.attempts, 5 + 1 + 5);
    let s = snap.get("llm.complete_strict").expect("listed");
    assert_eq!(
        (
            s.calls,
            s.attempts,
            s.gave_up.get(GiveUpReason::NotRetryable)
        ),
        (2, 3, 1)
    );
}

#[path = "../examples/backoff_style.rs"]
#[allow(dead_code)] // `main`
mod backoff_style;

/// `cargo run --example backoff_style`: only the listed errors are retried, and `max_time = 60`
/// ends a call whose server asks for a longer wait, at once.
#[tokio::test]
async fn backoff_style_retries_only_the_listed_errors_within_max_time() {
    use backoff_style::OpenAIError;
    let demo = backoff_style::Demo::start()
        .await
        .expect("the example starts");

    let o = demo.transient_errors().await;
    assert_eq!(o.statuses(), [429, 200, 429, 200]);
    assert!(o.requests[1].slow, "the second attempt timed out");
    assert_eq!(
        o.result.as_ref().map(|c| c.content.as_str()).ok(),
        Some(HELLO)
    );
    assert!(o.took < Duration::from_secs(1), "{:?}", o.took);

    let o = demo.other_errors().await;
    assert_eq!(o.statuses(), [500]);
    assert!(
        matches!(&o.result, Err(OpenAIError::Status(e)) if e.status == 500),
        "{:?}",
        o.result
    );

    let o = demo.past_max_time().await;
    assert_eq!(o.statuses(), [429]);
    assert!(
        matches!(o.result, Err(OpenAIError::RateLimit(_))),
        "{:?}",
        o.result
    );
    assert!(
        o.took < Duration::from_secs(1),
        "gave up without waiting: {:?}",
        o.took
    );
}
