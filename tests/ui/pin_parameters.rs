// A `Pinned` or a `Handle` in a hot function's parameter, anywhere in its type: its drop would
// run inside module code.
#[hotmod::hot_module]
pub mod other {
    pub fn one() -> u32 {
        1
    }
}

#[hotmod::hot_module]
pub mod uses {
    pub trait Speaker: Send {
        fn speak(&self) -> String;
    }

    pub fn takes_pinned(speaker: hotmod::Pinned<Box<dyn Speaker>>) -> String {
        speaker.speak()
    }

    pub fn takes_handle(handle: crate::other::Handle) -> u32 {
        handle.one()
    }

    pub fn takes_nested(name: Option<hotmod::Pinned<&'static str>>) -> usize {
        name.map_or(0, |name| name.len())
    }

    pub fn takes_borrowed(handles: &[(u32, crate::other::Handle)]) -> usize {
        handles.len()
    }
}

fn main() {}
