// The module's inner attributes stay inside the module: this `deny` reaches the hot function's
// body (the only error here), rather than being printed before `mod`, where `#![…]` is refused.
#[hotmod::hot_module]
pub mod lints {
    #![deny(unused_variables)]

    pub fn answer() -> u32 {
        let unused = 1;
        42
    }
}

fn main() {}
