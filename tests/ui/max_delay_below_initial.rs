use retry_runtime::retry_on_failure;

#[retry_on_failure(initial_delay = 5, max_delay = 2.5)]
async fn call() -> Result<(), String> {
    Ok(())
}

fn main() {
    let _ = call();
}
