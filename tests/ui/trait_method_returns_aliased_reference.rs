// A method of a trait object returns what outlives the `Pinned` (an alias of `&'static`).
#[hotmod::hot_module]
pub mod speakers {
    pub type Label = &'static str;

    pub trait Speaker: Send + Sync {
        fn label(&self) -> Label;
    }

    struct Voice;

    impl Speaker for Voice {
        fn label(&self) -> Label {
            "a literal"
        }
    }

    pub fn speaker() -> hotmod::Pinned<Box<dyn Speaker>> {
        hotmod::Pinned::new(Box::new(Voice))
    }
}

fn main() {}
