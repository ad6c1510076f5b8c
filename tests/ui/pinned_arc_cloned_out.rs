// The repro `Arc::clone(&*p)`: `*p` is the `dyn Speaker`, so the `Arc` (whose drop and vtable
// live in the library) cannot be cloned out of its `Pinned`.
use std::sync::Arc;

#[hotmod::hot_module]
pub mod voices {
    use std::sync::Arc;
    pub trait Speaker: Send + Sync {
        fn speak(&self) -> String;
    }
    struct Loud;
    impl Speaker for Loud {
        fn speak(&self) -> String {
            "LOUD".into()
        }
    }
    pub fn shared() -> hotmod::Pinned<Arc<dyn Speaker>> {
        hotmod::Pinned::new(Arc::new(Loud))
    }
}

fn main() {
    let p = voices::shared();
    let kept: Arc<dyn voices::Speaker> = Arc::clone(&*p);
    drop(p);
    println!("{}", kept.speak());
}
