// Every shape of method the attribute makes hot compiles and behaves as written (generation 0):
// receivers of every kind, patterns in parameters, `Self` in signatures, associated types,
// trait impls of std traits, `Drop`, and the `Handle`'s methods.
use std::sync::atomic::{AtomicUsize, Ordering};

static DROPPED: AtomicUsize = AtomicUsize::new(0);

/// `missing_docs` holds in the module: what the attribute adds to `Handle` for hot methods
/// (trait impl methods without docs included) is documented.
#[deny(missing_docs)]
#[hotmod::hot_module]
pub mod shapes {
    use super::{Ordering, DROPPED};

    /// Counts up to a limit.
    #[derive(Debug, PartialEq)]
    pub struct Counter {
        /// The count.
        pub n: u32,
        /// Where it stops.
        pub limit: u32,
    }

    impl Counter {
        /// `new`.
        pub fn new(limit: u32) -> Self {
            Counter { n: 0, limit }
        }

        /// `with`.
        pub fn with(self: Box<Self>, n: u32) -> Box<Self> {
            Box::new(Counter { n, ..*self })
        }

        /// `consume`.
        pub fn consume(mut self, (a, b): (u32, u32)) -> u32 {
            self.n += a * b;
            self.n
        }

        /// `pair`.
        pub fn pair(&self, other: &Self) -> (u32, u32) {
            (self.n, other.n)
        }

        /// `reset`.
        pub fn reset(&mut self, Wrapper(to): Wrapper) {
            self.n = to;
        }
    }

    /// A tuple struct taken apart in a parameter.
    pub struct Wrapper(pub u32);

    impl Iterator for Counter {
        type Item = u32;

        fn next(&mut self) -> Option<Self::Item> {
            (self.n < self.limit).then(|| {
                self.n += 1;
                self.n
            })
        }
    }

    impl Default for Counter {
        fn default() -> Self {
            Counter::new(3)
        }
    }

    impl From<u32> for Counter {
        fn from(limit: u32) -> Self {
            Self::new(limit)
        }
    }

    /// Counts its drops.
    pub struct Noisy;

    impl Drop for Noisy {
        fn drop(&mut self) {
            DROPPED.fetch_add(1, Ordering::SeqCst);
        }
    }
}

use shapes::{Counter, Noisy, Wrapper};

fn main() {
    let mut c = Counter::new(2);
    assert_eq!(c.next(), Some(1));
    assert_eq!(c.by_ref().collect::<Vec<_>>(), vec![2]);
    assert_eq!(Counter::default().limit, 3);
    assert_eq!(Counter::from(5).limit, 5);
    assert_eq!(Box::new(Counter::new(1)).with(7).n, 7);
    assert_eq!(Counter::new(1).consume((2, 3)), 6);
    assert_eq!(Counter::new(1).pair(&Counter { n: 4, limit: 0 }), (0, 4));
    c.reset(Wrapper(9));
    assert_eq!(c.n, 9);
    drop(Noisy);
    assert_eq!(DROPPED.load(Ordering::SeqCst), 1);

    let handle = shapes::Handle::current();
    let mut d = handle.counter_new(4);
    assert_eq!(handle.counter_iterator_next(&mut d), Some(1));
    assert_eq!(handle.counter_default_default().limit, 3);
    assert_eq!(handle.counter_from_from(8).limit, 8);
    assert_eq!(handle.counter_consume(d, (1, 1)), 2);
}
