#[hotmod::hot_module]
pub mod callbacks {
    pub struct Callback {
        pub run: fn(u32) -> u32,
    }

    fn double(x: u32) -> u32 {
        x * 2
    }

    pub fn callback() -> Callback {
        Callback { run: double }
    }
}

fn main() {}
