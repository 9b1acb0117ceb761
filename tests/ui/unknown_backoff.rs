use retry_runtime::retry_on_failure;

#[retry_on_failure(backoff = "quadratic")]
async fn call() -> Result<(), String> {
    Ok(())
}

fn main() {
    let _ = call();
}
