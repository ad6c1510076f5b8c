#[hotmod::hot_module]
pub mod raw {
    pub unsafe fn first(bytes: *const u8) -> u8 {
        unsafe { *bytes }
    }
}

fn main() {}
