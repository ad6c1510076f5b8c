#[hotmod::hot_module]
pub mod limits {
    pub const fn max_users() -> u32 {
        100
    }
}

fn main() {}
