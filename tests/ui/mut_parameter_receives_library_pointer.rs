// Through a `&mut`, module code could store its own closure (code in the library) in host memory.
#[hotmod::hot_module]
pub mod hooks {
    pub fn install(slot: &mut Option<Box<dyn Fn() -> u32>>) {
        *slot = Some(Box::new(|| 42));
    }
}

fn main() {}
