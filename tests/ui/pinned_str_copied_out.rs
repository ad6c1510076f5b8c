// The repro `let s: &'static str = *p; drop(p);`: `*p` is the `str`, not the `&'static str`.
#[hotmod::hot_module]
pub mod names {
    pub fn name() -> hotmod::Pinned<&'static str> {
        hotmod::Pinned::new("a literal in the library's read-only data")
    }
}

fn main() {
    let p = names::name();
    let s: &'static str = *p;
    drop(p);
    println!("{s}");
}
