#[hotmod::hot_module]
pub mod names {
    pub fn name() -> &'static str {
        "a literal in the library's read-only data"
    }
}

fn main() {}
