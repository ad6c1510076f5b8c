#[hotmod::hot_module]
pub mod callbacks {
    fn tick() {}

    pub fn ticker() -> fn() {
        tick
    }
}

fn main() {}
