// `io::Error::other(..)` boxes a payload whose vtable is in the library.
#[hotmod::hot_module]
pub mod files {
    pub fn size(path: &str) -> std::io::Result<u64> {
        Ok(std::fs::metadata(path)?.len())
    }
}

fn main() {}
