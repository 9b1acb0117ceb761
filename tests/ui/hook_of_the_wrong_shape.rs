use retry_runtime::retry_on_failure;

#[derive(Debug)]
struct Unavailable;

// `on_retry` and `on_give_up` see the error and the event; `on_success` the event only.
#[retry_on_failure(
    on_retry = |event| println!("retrying after attempt {}", event.attempt),
    on_give_up = |err: &String, _event| println!("{err}"),
    on_success = |_err, event| println!("{} attempts", event.attempts),
)]
async fn call() -> Result<u32, Unavailable> {
    Ok(1)
}

fn main() {
    let _ = call();
}
