#[hotmod::hot_module]
pub mod game {
    pub struct State {
        pub frame: u64,
    }

    pub fn update(&mut self) {
        self.frame += 1;
    }
}

fn main() {}
