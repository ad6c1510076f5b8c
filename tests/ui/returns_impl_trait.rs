#[hotmod::hot_module]
pub mod numbers {
    pub fn evens(below: u64) -> impl Iterator<Item = u64> {
        (0..below).filter(|n| n % 2 == 0)
    }
}

fn main() {}
