use retry_runtime::retry_on_failure;

#[retry_on_failure(max_attempts)]
async fn call() -> Result<(), String> {
    Ok(())
}

fn main() {
    let _ = call();
}
