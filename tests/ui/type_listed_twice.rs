use retry_runtime::retry_on_failure;

#[retry_on_failure(retry_on = [std::io::Error, std::fmt::Error, std::io::Error])]
async fn call() -> Result<(), std::io::Error> {
    Ok(())
}

fn main() {
    let _ = call();
}
