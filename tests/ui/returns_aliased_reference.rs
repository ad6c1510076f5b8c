// The alias hides the `&'static` from the attribute, not from the compiler.
#[hotmod::hot_module]
pub mod labels {
    pub type Label = &'static str;

    pub fn label() -> Label {
        "a literal in the library's read-only data"
    }
}

fn main() {}
