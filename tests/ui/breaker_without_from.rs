use retry_runtime::retry_on_failure;

use retry_runtime::CircuitBreaker;

static OPENAI: CircuitBreaker = CircuitBreaker::new("openai");

#[derive(Debug)]
struct ProviderError;

#[retry_on_failure(circuit_breaker = OPENAI)]
async fn call() -> Result<(), ProviderError> {
    Ok(())
}

fn main() {
    let _ = call();
}
