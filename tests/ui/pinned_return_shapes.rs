// What a hot function may return in a `Pinned`: `Box<dyn Trait>`, `Arc<dyn Trait>`,
// `&'static dyn Trait`, `&'static str`, `&'static [u8]`; and only as the whole return type.
#[hotmod::hot_module]
pub mod shapes {
    use std::any::Any;

    pub trait Speaker: Send {
        fn speak(&self) -> String;
    }

    #[derive(Clone, Copy)]
    pub struct Config {
        pub name: &'static str,
    }

    pub struct Holder {
        pub speaker: hotmod::Pinned<Box<dyn Speaker>>,
    }

    struct Loud;

    impl Speaker for Loud {
        fn speak(&self) -> String {
            "HELLO".into()
        }
    }

    pub fn optional() -> hotmod::Pinned<Option<Box<dyn Speaker>>> {
        hotmod::Pinned::new(Some(Box::new(Loud)))
    }

    pub fn boxed_sized() -> hotmod::Pinned<Box<Config>> {
        hotmod::Pinned::new(Box::new(Config { name: "copied out with `*p`" }))
    }

    pub fn static_sized() -> hotmod::Pinned<&'static Config> {
        hotmod::Pinned::new(&Config { name: "copied out with `*p`" })
    }

    pub fn any() -> hotmod::Pinned<Box<dyn Any + Send>> {
        hotmod::Pinned::new(Box::new("downcast and copied out"))
    }

    pub fn closure() -> hotmod::Pinned<Box<dyn Fn() -> &'static str>> {
        hotmod::Pinned::new(Box::new(|| "returned by the call"))
    }

    pub fn maybe() -> Option<hotmod::Pinned<Box<dyn Speaker>>> {
        None
    }

    pub fn holder() -> Holder {
        Holder {
            speaker: hotmod::Pinned::new(Box::new(Loud)),
        }
    }
}

fn main() {}
