// A returned struct whose field is an alias of a reference, in a submodule.
#[hotmod::hot_module]
pub mod items {
    pub mod model {
        pub type Label = &'static str;

        pub struct Item {
            pub id: u32,
            pub label: Label,
        }
    }

    pub fn item() -> model::Item {
        model::Item { id: 1, label: "a literal" }
    }
}

fn main() {}
