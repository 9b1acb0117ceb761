use retry_runtime::retry_on_failure;

#[retry_on_failure]
struct Client {
    key: String,
}

fn main() {
    let _ = Client { key: String::new() }.key;
}
