#[hotmod::hot_module]
pub mod elsewhere;

fn main() {}
