// `attempt_timeout` returns a cut-off attempt as the caller's error type, which must therefore
// implement `From<AttemptTimedOut>`. Without it, the message says so in those words, at the call
// that asks for the timeout (the attribute's `attempt_timeout = ..` uses the same bound).
use std::time::Duration;

#[derive(Debug)]
struct ProviderError;

#[tokio::main]
async fn main() {
    let _ = retry_runtime::RetryPolicy::DEFAULT
        .retry(|| async { Err::<(), _>(ProviderError) })
        .attempt_timeout(Duration::from_secs(5))
        .await;

    // What the expansion calls for each attempt; the error lands on `timeout_error()`, which the
    // expansion places on the attribute's `attempt_timeout` key.
    let _ = retry_runtime::__private::with_timeout(
        Duration::from_secs(5),
        async { Err::<(), _>(ProviderError) },
        retry_runtime::__private::timeout_error(),
    )
    .await;
}
