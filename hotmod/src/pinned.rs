//! Values that point into a generation's code or static data, kept safe.
//!
//! A trait object's vtable, a closure, a `&'static str` literal: all of these live in the
//! library of the generation that made them and dangle once it is unloaded. A hot function that
//! returns such a value wraps it in [`Pinned`], which carries a pin of the generation that
//! produced it: the library stays mapped for as long as the value lives, however many reloads
//! happen meanwhile. `#[hot_module]` refuses, at compile time, return types that point into the
//! library without this wrapper.
//!
//! The pin only helps while the library's pointers stay inside the `Pinned`. So a `Pinned` hands
//! out nothing that outlives it: only a borrow of what its pointer points to
//! ([`Pinnable::Target`]: a `dyn Trait`, a `str`, a `[u8]`), never the pointer itself. A
//! `&Box<dyn Trait>` or a `&&'static str` would let the caller copy or clone the pointer out
//! (`*p`, `Arc::clone`, a `Copy` field) and keep it past the last pin; an unsized target can
//! only be borrowed, for no longer than the `Pinned`, and a `&mut` to it cannot move it out
//! (`mem::replace`, `mem::swap` and `Option::take` need a sized place).
//!
//! Written once for both builds: without reloading there is one generation, the compiled-in
//! code, and `generation()` is always `Some(0)`.

use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

use crate::imp;

/// A value returned by a hot function that keeps the generation that made it loaded while it
/// lives: return `hotmod::Pinned<Box<dyn Shape>>` instead of `Box<dyn Shape>`.
///
/// `T` is one of the pointers of [`Pinnable`]: `Box<dyn Trait>`, `Arc<dyn Trait>`,
/// `&'static dyn Trait`, `&'static str` or `&'static [u8]` (as a hot function's return type,
/// `#[hot_module]` accepts exactly these). A `Pinned` derefs to what the pointer points to,
/// borrowed from the `Pinned`: `shape.area()` calls the trait object, `&*name` is a `&str` that
/// lives no longer than `name`. The pointer itself never leaves: there is no `DerefMut`, no
/// `into_inner`, and no `&T`, so a `&'static str` cannot be copied out nor an `Arc` cloned out
/// of a generation's last pin. [`get_mut`](Pinned::get_mut) gives `&mut dyn Trait` for a
/// `Box`, to call `&mut self` methods.
///
/// ```
/// #[hotmod::hot_module]
/// pub mod shapes {
///     pub trait Shape: Send {
///         fn area(&self) -> f64;
///     }
///     struct Square(f64);
///     impl Shape for Square {
///         fn area(&self) -> f64 { self.0 * self.0 }
///     }
///     pub fn square(side: f64) -> hotmod::Pinned<Box<dyn Shape>> {
///         hotmod::Pinned::new(Box::new(Square(side)))
///     }
///     pub fn unit() -> hotmod::Pinned<&'static str> {
///         hotmod::Pinned::new("m²")
///     }
/// }
///
/// let shape = shapes::square(3.0);
/// assert_eq!(shape.area(), 9.0);
/// assert_eq!(shape.generation(), Some(0));
/// let unit = shapes::unit();
/// let text: &str = &unit; // borrowed from `unit`, not `'static`
/// assert_eq!(format!("{} {text}", shape.area()), "9 m²");
/// ```
///
/// Closures, shared objects, static data; [`get_mut`](Pinned::get_mut) reaches `&mut self`
/// methods:
///
/// ```
/// #[hotmod::hot_module]
/// pub mod parts {
///     use std::sync::Arc;
///     pub trait Named: Send + Sync {
///         fn name(&self) -> &str;
///     }
///     struct Part(String);
///     impl Named for Part {
///         fn name(&self) -> &str { &self.0 }
///     }
///     pub fn scale(by: u32) -> hotmod::Pinned<Box<dyn Fn(u32) -> u32 + Send>> {
///         hotmod::Pinned::new(Box::new(move |x| x * by))
///     }
///     pub fn counter() -> hotmod::Pinned<Box<dyn FnMut() -> u32 + Send>> {
///         let mut count = 0;
///         hotmod::Pinned::new(Box::new(move || { count += 1; count }))
///     }
///     pub fn shared() -> hotmod::Pinned<Arc<dyn Named>> {
///         hotmod::Pinned::new(Arc::new(Part("wheel".into())))
///     }
///     struct Blank;
///     impl Named for Blank {
///         fn name(&self) -> &str { "blank" }
///     }
///     pub fn blank() -> hotmod::Pinned<&'static dyn Named> {
///         hotmod::Pinned::new(&Blank)
///     }
///     pub fn icon() -> hotmod::Pinned<&'static [u8]> {
///         hotmod::Pinned::new(b"\x89PNG")
///     }
/// }
///
/// assert_eq!(parts::scale(3)(2), 6);
/// let mut counter = parts::counter();
/// (counter.get_mut())();
/// assert_eq!((counter.get_mut())(), 2);
/// let part = parts::shared();
/// assert_eq!(part.name(), "wheel"); // borrowed from `part`
/// assert_eq!(parts::blank().name(), "blank");
/// assert_eq!(parts::icon()[1..], *b"PNG");
/// ```
///
/// Anything that would take the library's pointer out of the `Pinned` is a compile error:
///
/// ```compile_fail,E0597
/// # #[hotmod::hot_module]
/// # pub mod names {
/// #     pub fn name() -> hotmod::Pinned<&'static str> {
/// #         hotmod::Pinned::new("a literal of the library")
/// #     }
/// # }
/// let name = names::name();
/// let kept: &'static str = &name; // `name` does not live long enough
/// drop(name);
/// println!("{kept}");
/// ```
pub struct Pinned<T: Pinnable> {
    // Declared first, so it is dropped first: its drop code lives in the pinned library.
    value: T,
    /// The pin of the generation that made `value`, released through the runtime that took it.
    hold: Option<imp::HeldPin>,
}

/// The pointers a [`Pinned`] can hold, and what it lends of each: the pointee, never the pointer.
///
/// Implemented for `Box<U>`, `Arc<U>` and `&'static U` (sealed: no other implementations).
/// The lending is sound when `U` is unsized — a trait object, `str`, `[u8]` — because a borrow
/// of an unsized value cannot be copied or moved out, only used for as long as the borrow
/// lasts. A sized `U` could be (a `Copy` value, a field, a clone), which is why
/// `#[hot_module]` refuses a hot function that returns `Pinned<Box<Sized>>`: the type system
/// cannot tell the two apart, the attribute can. A `Pinned` the host makes itself with
/// [`Pinned::new`] holds no library pointer and carries no pin, whatever `U` is.
pub trait Pinnable: sealed::Sealed {
    /// What [`Pinned`] derefs to: `dyn Trait` for `Box<dyn Trait>`, `str` for `&'static str`.
    type Target: ?Sized;

    /// Borrows the pointee for no longer than `self` (`&'static U` becomes `&'_ U`).
    fn project(&self) -> &Self::Target;
}

mod sealed {
    /// Only hotmod implements [`Pinnable`](super::Pinnable).
    pub trait Sealed {}
    impl<U: ?Sized> Sealed for Box<U> {}
    impl<U: ?Sized> Sealed for std::sync::Arc<U> {}
    impl<U: ?Sized> Sealed for &'static U {}
}

impl<U: ?Sized> Pinnable for Box<U> {
    type Target = U;

    fn project(&self) -> &U {
        self
    }
}

/// The `Pinned` holds one count of the `Arc`; it lends the pointee, so the `Arc` itself cannot
/// be cloned out (`Arc::clone(&*p)` does not type-check: `&*p` is `&U`).
impl<U: ?Sized> Pinnable for Arc<U> {
    type Target = U;

    fn project(&self) -> &U {
        self
    }
}

/// The reference's `'static` is shortened to the borrow of the `Pinned`: a library's literal
/// lives only as long as its generation, however its type is spelled.
impl<U: ?Sized> Pinnable for &'static U {
    type Target = U;

    fn project(&self) -> &U {
        self
    }
}

impl<T: Pinnable> Pinned<T> {
    /// Wraps a value in module code; the host attaches the generation when it returns.
    pub const fn new(value: T) -> Pinned<T> {
        Pinned { value, hold: None }
    }

    /// The generation that made the value (`None` until it crossed back to the host; always
    /// `Some(0)` when reloading is compiled out).
    pub fn generation(&self) -> Option<u64> {
        imp::made_by(self.hold.as_ref())
    }

    /// What the value points to, borrowed from the `Pinned` (what `*p` is): the trait object
    /// of a `Box<dyn Trait>`, the `str` of a `&'static str`.
    pub fn get(&self) -> &T::Target {
        self.value.project()
    }

    /// Ties the value to the generation that made it, as it reaches the host. A value that
    /// has a pin already keeps it: it was made by another hot module's generation, which the
    /// host pinned when the library's code called it (`__private::call_pinned`), and that is
    /// where its pointer points.
    #[cfg_attr(not(feature = "reload"), allow(dead_code))]
    pub(crate) fn attach(mut self, hold: imp::HeldPin) -> Pinned<T> {
        if self.hold.is_none() {
            self.hold = Some(hold);
        }
        self
    }
}

impl<U: ?Sized> Pinned<Box<U>> {
    /// The boxed value, mutably, to call its `&mut self` methods (`dyn FnMut`, a stateful
    /// trait object). It cannot be moved out: `dyn Trait` is unsized, and `mem::replace`,
    /// `mem::swap` and `Option::take` need a sized place. There is no `DerefMut`, which would
    /// give `&mut Box<U>`, a place a `Box` can be moved out of.
    pub fn get_mut(&mut self) -> &mut U {
        &mut self.value
    }
}

/// `*p` is the pointee (`dyn Trait`, `str`), borrowed from `p`; see [`Pinnable`].
impl<T: Pinnable> Deref for Pinned<T> {
    type Target = T::Target;

    fn deref(&self) -> &T::Target {
        self.get()
    }
}

impl<T: Pinnable + fmt::Debug> fmt::Debug for Pinned<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pinned")
            .field("value", &self.value)
            .field("generation", &self.generation())
            .finish()
    }
}
