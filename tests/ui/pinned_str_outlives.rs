// A `&str` lent by a `Pinned<&'static str>` is borrowed from the `Pinned`: it cannot be kept
// past it, as a `&'static str` or after the `Pinned` is dropped.
#[hotmod::hot_module]
pub mod names {
    pub fn name() -> hotmod::Pinned<&'static str> {
        hotmod::Pinned::new("a literal in the library's read-only data")
    }
}

struct Kept {
    name: &'static str,
}

fn keep(p: &hotmod::Pinned<&'static str>) -> Kept {
    Kept { name: p.get() }
}

fn main() {
    let p = names::name();
    let s: &str = &p;
    drop(p);
    println!("{s} {}", keep(&names::name()).name);
}
