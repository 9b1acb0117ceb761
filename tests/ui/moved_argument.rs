use retry_runtime::retry_on_failure;

#[retry_on_failure]
async fn send(body: String) -> Result<usize, String> {
    let bytes = body.into_bytes();
    Ok(bytes.len())
}

fn main() {
    let _ = send(String::new());
}
