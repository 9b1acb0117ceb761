use retry_runtime::retry_on_failure;

#[derive(Debug)]
struct ProviderError;

#[retry_on_failure(attempt_timeout = 30)]
async fn call() -> Result<(), ProviderError> {
    Ok(())
}

fn main() {
    let _ = call();
}
