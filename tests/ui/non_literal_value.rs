use retry_runtime::retry_on_failure;

const DELAY: f64 = 1.0;

#[retry_on_failure(initial_delay = DELAY)]
async fn call() -> Result<(), String> {
    Ok(())
}

fn main() {
    let _ = call();
}
