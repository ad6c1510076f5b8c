//! The module of the README's quickstart.

#[hotmod::hot_module]
pub mod hello {
    pub struct Reply {
        pub text: String,
        pub count: u32,
    }

    pub fn greet(name: &str) -> String {
        format!("hello {name}")
    }

    pub fn answer() -> u32 {
        42
    }

    pub fn reply(to: &str, times: u32) -> Reply {
        Reply {
            text: to.repeat(times as usize),
            count: times,
        }
    }

    pub fn bump(counter: &mut u64) {
        *counter += 1
    }
}
