/// A type of the host's crate, outside the hot module, with no `hotmod::Describe`.
pub struct Pool;

#[hotmod::hot_module]
pub mod net {
    // A hot method's receiver crosses the boundary, so its type needs a description: a field
    // without one is an error whose note names `not_hot` as the way out.
    pub struct Server {
        pub pool: super::Pool,
    }

    impl Server {
        pub fn ready(&self) -> bool {
            true
        }
    }
}

fn main() {}
