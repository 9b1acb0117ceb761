use retry_runtime::retry_on_failure;

#[derive(Debug)]
struct NotAnError;

#[retry_on_failure(retry_on = [std::io::Error])]
async fn call() -> Result<(), NotAnError> {
    Err(NotAnError)
}

fn main() {
    let _ = call();
}
