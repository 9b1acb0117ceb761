use retry_runtime::retry_on_failure;

use retry_runtime::RetryPolicy;

static POLICY: RetryPolicy = RetryPolicy::DEFAULT;

#[retry_on_failure(config = POLICY, max_attempts = 5, jitter = "none")]
async fn call() -> Result<(), String> {
    Ok(())
}

fn main() {
    let _ = call();
}
