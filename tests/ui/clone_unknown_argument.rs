use retry_runtime::retry_on_failure;

#[retry_on_failure(clone = [prompt, bdy])]
async fn send(prompt: String, body: String) -> Result<usize, String> {
    Ok(prompt.len() + body.len())
}

fn main() {
    let _ = send(String::new(), String::new());
}
