#[hotmod::hot_module]
pub mod shapes {
    pub fn largest<T: PartialOrd>(items: Vec<T>) -> Option<T> {
        items.into_iter().reduce(|a, b| if a >= b { a } else { b })
    }
}

fn main() {}
