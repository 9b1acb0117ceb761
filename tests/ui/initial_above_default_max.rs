use retry_runtime::retry_on_failure;

#[retry_on_failure(initial_delay = 30)]
async fn call() -> Result<(), String> {
    Ok(())
}

fn main() {
    let _ = call();
}
