// `Pinned` has no `DerefMut`: a `&mut Box<dyn Speaker>` is a place the box could be moved out of.
use std::ops::DerefMut;

#[hotmod::hot_module]
pub mod voices {
    pub trait Speaker: Send {
        fn speak(&self) -> String;
    }
    struct Loud;
    impl Speaker for Loud {
        fn speak(&self) -> String {
            "LOUD".into()
        }
    }
    pub fn speaker() -> hotmod::Pinned<Box<dyn Speaker>> {
        hotmod::Pinned::new(Box::new(Loud))
    }
}

fn main() {
    let mut p = voices::speaker();
    let boxed = p.deref_mut();
    println!("{}", boxed.speak());
}
