use retry_runtime::retry_on_failure;

#[derive(Debug, thiserror::Error)]
#[error("rate limited")]
struct RateLimitError;

#[retry_on_failure(retry_on = [RateLimitError, std::io::Error], give_up_on = [RateLimitError])]
async fn call() -> Result<(), std::io::Error> {
    Ok(())
}

fn main() {
    let _ = call();
}
