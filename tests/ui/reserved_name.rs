#[hotmod::hot_module]
pub mod hello {
    pub struct Handle;

    pub fn generation() -> u64 {
        7
    }
}

fn main() {}
