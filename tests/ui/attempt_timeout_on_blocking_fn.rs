use retry_runtime::retry_on_failure;

#[retry_on_failure(attempt_timeout = 5)]
fn call() -> Result<(), String> {
    Ok(())
}

fn main() {
    let _ = call();
}
