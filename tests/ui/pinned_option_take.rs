// The repro `Option::take` through `DerefMut`: a `Pinned` holds only a pointer it can lend the
// pointee of (`hotmod::Pinnable`); an `Option` is none, in host code as in a hot function.
#[hotmod::hot_module]
pub mod voices {
    pub trait Speaker: Send {
        fn speak(&self) -> String;
    }
}

fn steal(p: &mut hotmod::Pinned<Option<Box<dyn voices::Speaker>>>) -> Option<Box<dyn voices::Speaker>> {
    p.take()
}

fn main() {
    let _ = steal;
}
