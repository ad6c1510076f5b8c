//! The README's quickstart module: one hot module with a struct and four functions.

/// Greetings, reloadable.
#[hotmod::hot_module]
pub mod hello {
    /// A reply: `text` is the input repeated `count` times.
    pub struct Reply {
        /// The repeated text.
        pub text: String,
        /// How many times.
        pub count: u32,
    }

    /// `hello {name}`.
    pub fn greet(name: &str) -> String {
        format!("hello {name}")
    }

    /// The answer.
    pub fn answer() -> u32 {
        42
    }

    /// `to` repeated `times` times.
    pub fn reply(to: &str, times: u32) -> Reply {
        Reply {
            text: to.repeat(times as usize),
            count: times,
        }
    }

    /// Adds one to the caller's counter.
    pub fn bump(counter: &mut u64) {
        *counter += 1
    }
}
