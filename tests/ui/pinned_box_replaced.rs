// The repro `std::mem::replace(&mut *p, ..)` on a `Pinned<Box<dyn Speaker>>`: there is no
// `DerefMut`, and `get_mut` lends the unsized `dyn Speaker`, which cannot be replaced.
#[hotmod::hot_module]
pub mod voices {
    pub trait Speaker: Send {
        fn speak(&self) -> String;
    }
    pub struct Quiet;
    impl Speaker for Quiet {
        fn speak(&self) -> String {
            String::new()
        }
    }
    pub fn speaker() -> hotmod::Pinned<Box<dyn Speaker>> {
        hotmod::Pinned::new(Box::new(Quiet))
    }
}

use voices::{Quiet, Speaker};

fn main() {
    let mut p = voices::speaker();
    let out: Box<dyn Speaker> = std::mem::replace(&mut *p, Box::new(Quiet));
    drop(p);
    println!("{}", out.speak());
}
