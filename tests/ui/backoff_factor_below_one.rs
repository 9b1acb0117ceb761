use retry_runtime::retry_on_failure;

#[retry_on_failure(backoff_factor = 0.5)]
async fn call() -> Result<(), String> {
    Ok(())
}

fn main() {
    let _ = call();
}
