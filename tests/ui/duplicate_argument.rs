use retry_runtime::retry_on_failure;

#[retry_on_failure(max_attempts = 3, initial_delay = 1.0, max_attempts = 5)]
async fn call() -> Result<(), String> {
    Ok(())
}

fn main() {
    let _ = call();
}
