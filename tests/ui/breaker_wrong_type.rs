use retry_runtime::{retry_on_failure, CircuitOpen, RetryBudget};

static BUDGET: RetryBudget = RetryBudget::new();

#[derive(Debug)]
struct ProviderError;

impl From<CircuitOpen> for ProviderError {
    fn from(_: CircuitOpen) -> Self {
        ProviderError
    }
}

#[retry_on_failure(circuit_breaker = BUDGET)]
async fn call() -> Result<(), ProviderError> {
    Ok(())
}

fn main() {
    let _ = call();
}
