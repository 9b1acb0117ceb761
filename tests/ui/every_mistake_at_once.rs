use retry_runtime::retry_on_failure;

#[retry_on_failure(max_attempts = 0, initial_delay = -2, backoff_factor = 0.9, jitter = "random", max_tries = 4)]
async fn call() -> Result<(), String> {
    Ok(())
}

fn main() {
    let _ = call();
}
