use retry_runtime::retry_on_failure;

#[retry_on_failure(max_delay = 1e400)]
async fn call() -> Result<(), String> {
    Ok(())
}

fn main() {
    let _ = call();
}
