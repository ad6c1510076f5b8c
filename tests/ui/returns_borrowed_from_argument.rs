#[hotmod::hot_module]
pub mod words {
    pub fn first(words: &[String]) -> &str {
        &words[0]
    }
}

fn main() {}
