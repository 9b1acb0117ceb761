use retry_runtime::retry_on_failure;

#[retry_on_failure(env_prefix = "llm-retry")]
async fn call() -> Result<(), String> {
    Ok(())
}

fn main() {
    let _ = call();
}
