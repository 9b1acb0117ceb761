use retry_runtime::retry_on_failure;

#[retry_on_failure]
async fn call() -> u32 {
    7
}

fn main() {
    let _ = call();
}
