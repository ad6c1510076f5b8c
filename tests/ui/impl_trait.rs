#[hotmod::hot_module]
pub mod numbers {
    pub fn total(values: impl Iterator<Item = u64>) -> u64 {
        values.sum()
    }
}

fn main() {}
