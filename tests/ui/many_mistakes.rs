// Independent mistakes in one module: #[hot_module] reports every one of them in one compile,
// not only the first.
#[hotmod::hot_module(watch, reload_on_save)]
pub mod shop {
    pub struct Handle;

    pub struct Receipt {
        pub note: &'static str,
    }

    pub async fn fetch(id: u32) -> u32 {
        id
    }

    pub fn largest<T: PartialOrd>(a: T, b: T) -> T {
        if a >= b {
            a
        } else {
            b
        }
    }

    pub const fn double(x: u32) -> u32 {
        x * 2
    }

    pub fn receipt() -> Receipt {
        Receipt { note: "thanks" }
    }
}

fn main() {}
