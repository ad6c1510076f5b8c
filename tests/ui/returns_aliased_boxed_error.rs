// A boxed error's vtable lives in the library that boxed it.
#[hotmod::hot_module]
pub mod checks {
    pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

    pub fn check(n: u32) -> Result<u32, BoxError> {
        if n == 0 {
            return Err("zero".into());
        }
        Ok(n)
    }
}

fn main() {}
