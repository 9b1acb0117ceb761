use retry_runtime::retry_on_failure;

trait Provider {
    #[retry_on_failure]
    async fn complete(&self) -> Result<String, String>;
}

fn main() {}
