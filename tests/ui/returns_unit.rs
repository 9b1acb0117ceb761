use retry_runtime::retry_on_failure;

#[retry_on_failure]
async fn call() {}

fn main() {
    let _ = call();
}
