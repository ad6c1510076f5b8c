// `get_mut` lends `&mut dyn Speaker`: unsized, so it cannot be swapped or replaced out.
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

fn main() {
    let mut p = voices::speaker();
    let mut mine: Box<dyn voices::Speaker> = Box::new(voices::Quiet);
    std::mem::swap(p.get_mut(), &mut *mine);
}
