// Methods of a hot module's public types are hot; the ones that cannot be say why, and how to
// keep them compiled into the host instead (`#[hotmod::not_hot]`, as the last impl does).
#[hotmod::hot_module]
pub mod shop {
    pub struct Cart {
        pub items: Vec<String>,
    }

    impl Cart {
        // Generic: the library has no code for the types a host would pick.
        pub fn push<T: ToString>(&mut self, item: T) {
            self.items.push(item.to_string());
        }

        // A reference: it could point into the library's static data.
        pub fn first(&self) -> &str {
            &self.items[0]
        }

        // `const`: evaluated at compile time.
        pub const fn empty() -> Cart {
            Cart { items: Vec::new() }
        }

        // Private: not hot, runs in module code only.
        fn count(&self) -> usize {
            self.items.len()
        }
    }

    // Formatting: a `Formatter` cannot cross.
    impl std::fmt::Display for Cart {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "{} items", self.count())
        }
    }

    pub struct Shelf<T> {
        pub items: Vec<T>,
    }

    // A generic impl.
    impl<T> Shelf<T> {
        pub fn len(&self) -> usize {
            self.items.len()
        }
    }

    pub mod back {
        pub struct Store;

        // In a submodule.
        impl Store {
            pub fn open(&self) -> bool {
                true
            }
        }
    }

    pub struct Tag(pub u32);

    // Opted out: compiles, and stays compiled into the host.
    #[hotmod::not_hot]
    impl std::fmt::Display for Tag {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "#{}", self.0)
        }
    }

    impl Tag {
        #[hotmod::not_hot]
        pub fn id(&self) -> &u32 {
            &self.0
        }
    }
}

fn main() {}

#[hotmod::hot_module]
pub mod clash {
    pub struct Door;

    impl Door {
        pub fn open(&self) -> bool {
            true
        }
    }

    // `Handle::door_open` would call both.
    pub fn door_open(_door: &Door) -> bool {
        false
    }
}

