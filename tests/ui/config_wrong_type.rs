use retry_runtime::retry_on_failure;

struct Settings {
    attempts: u32,
}

impl Settings {
    #[retry_on_failure(config = self.attempts)]
    async fn call(&self) -> Result<(), String> {
        Ok(())
    }
}

fn main() {
    let s = Settings { attempts: 3 };
    let _ = s.call();
}
