//! The error collector the passes share (after serde_derive's `internals::Ctxt`): parsing and
//! validation push every mistake they find and carry on, so one compile reports all of them
//! instead of the first.

use std::cell::RefCell;
use std::fmt::Display;

use quote::ToTokens;

/// Errors found so far. [`Ctxt::check`] must be called before it is dropped: a dropped `Ctxt`
/// that was never checked would have swallowed errors, so it panics.
pub struct Ctxt {
    /// `None` once checked.
    errors: RefCell<Option<Vec<syn::Error>>>,
}

impl Ctxt {
    pub fn new() -> Ctxt {
        Ctxt {
            errors: RefCell::new(Some(Vec::new())),
        }
    }

    /// An error on the tokens of `object`.
    pub fn error_spanned_by(&self, object: impl ToTokens, message: impl Display) {
        self.syn_error(syn::Error::new_spanned(object.into_token_stream(), message));
    }

    pub fn syn_error(&self, error: syn::Error) {
        self.errors
            .borrow_mut()
            .as_mut()
            .expect("Ctxt used after check")
            .push(error);
    }

    /// All errors found, combined into one `syn::Error` that emits each of them.
    pub fn check(self) -> syn::Result<()> {
        let mut errors = self
            .errors
            .borrow_mut()
            .take()
            .expect("Ctxt checked twice")
            .into_iter();
        let Some(mut combined) = errors.next() else {
            return Ok(());
        };
        for error in errors {
            combined.combine(error);
        }
        Err(combined)
    }
}

impl Drop for Ctxt {
    fn drop(&mut self) {
        if !std::thread::panicking() && self.errors.borrow().is_some() {
            panic!("hotmod-macros: a Ctxt was dropped without check()");
        }
    }
}
