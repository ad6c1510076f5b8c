//! Values that point into a generation's code or static data, kept safe.
//!
//! A trait object's vtable, a function pointer, a closure, a `&'static str` literal: all of these
//! live in the library of the generation that made them and dangle once it is unloaded. A hot
//! function that returns such a value wraps it in [`Pinned`], which carries a pin of the
//! generation that produced it: the library stays mapped for as long as the value lives, however
//! many reloads happen meanwhile. `#[hot_module]` refuses, at compile time, return types that
//! point into the library without this wrapper.

//!
//! Written once for both builds: without reloading there is one generation, the compiled-in
//! code, and `generation()` is always `Some(0)`.

use std::fmt;
use std::ops::{Deref, DerefMut};

use crate::imp;

/// A value returned by a hot function that keeps the generation that made it loaded while it
/// lives: return `hotmod::Pinned<Box<dyn Shape>>` instead of `Box<dyn Shape>`.
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
/// }
///
/// let shape = shapes::square(3.0);
/// assert_eq!(shape.area(), 9.0);
/// assert_eq!(shape.generation(), Some(0));
/// ```
pub struct Pinned<T> {
    // Declared first, so it is dropped first: its drop code lives in the pinned library.
    value: T,
    generation: Option<imp::PinnedGeneration>,
}

impl<T> Pinned<T> {
    /// Wraps a value in module code; the host attaches the generation when it returns.
    pub const fn new(value: T) -> Pinned<T> {
        Pinned {
            value,
            generation: None,
        }
    }

    /// The generation that made the value (`None` until it crossed back to the host; always
    /// `Some(0)` when reloading is compiled out).
    pub fn generation(&self) -> Option<u64> {
        imp::made_by(self.generation.as_ref())
    }

    /// Ties the value to the generation that made it, as it reaches the host.
    #[cfg_attr(not(feature = "reload"), allow(dead_code))]
    pub(crate) fn attach(mut self, pin: imp::PinnedGeneration) -> Pinned<T> {
        self.generation = Some(pin);
        self
    }
}

impl<T> Deref for Pinned<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.value
    }
}

impl<T> DerefMut for Pinned<T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.value
    }
}

impl<T: fmt::Debug> fmt::Debug for Pinned<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pinned")
            .field("value", &self.value)
            .field("generation", &self.generation())
            .finish()
    }
}
