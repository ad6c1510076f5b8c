// `Cow::Borrowed` of a literal points into the library's read-only data.
use std::borrow::Cow;

#[hotmod::hot_module]
pub mod labels {
    use super::Cow;

    pub type Text = Cow<'static, str>;

    pub fn label(n: u32) -> Text {
        if n == 0 {
            Cow::Borrowed("none")
        } else {
            Cow::Owned(n.to_string())
        }
    }
}

fn main() {}
