#[hotmod::hot_module]
pub fn greet(name: &str) -> String {
    format!("hello {name}")
}

fn main() {}
