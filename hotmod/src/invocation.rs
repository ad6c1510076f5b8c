//! Calling a trampoline of either kind and re-raising the module's panic in the caller. Used by
//! every call path (`pin.rs`) and by the runtime's own calls into a library (the on_load gate,
//! state hand-over and marks).

use std::mem::{ManuallyDrop, MaybeUninit};
use std::ptr;

use crate::abi::{
    HandleTrampoline, PanicMessage, RawTrampoline, Returned, Trampoline, CALL_MEMORY,
};

/// How the host calls one function's trampoline: the kind the macro picked for it, and a call
/// through a trampoline of that kind. [`Memory`] for memory trampolines; the macro generates
/// one implementation per function with a register trampoline (it spreads the argument tuple
/// into the trampoline's parameters).
///
/// # Safety
/// `KIND` must be the kind of trampoline `invoke` calls ([`crate::abi::CALL_MEMORY`] or
/// [`crate::abi::CALL_REGISTERS`]), and `invoke` must call it with exactly the arguments `A`
/// and return type `Returned<R>` the generated trampoline of the same function has.
pub unsafe trait Invoke<A, R> {
    /// `FnEntry::kind` of the function's trampoline.
    const KIND: u32;

    /// Calls `trampoline` with `args`.
    ///
    /// # Safety
    /// `trampoline` must be a verified trampoline of kind `KIND` taking `A` and returning `R`, in
    /// a library that stays loaded during the call.
    unsafe fn invoke(trampoline: RawTrampoline, args: A) -> Returned<R>;
}

/// Calls memory trampolines: the argument tuple and the return slot travel by pointer.
pub struct Memory;

// SAFETY: `invoke` calls a `Trampoline` (the memory kind) with a pointer to an owned `A` and
// room for an `R`, as `abi::trampoline` expects.
unsafe impl<A, R> Invoke<A, R> for Memory {
    const KIND: u32 = CALL_MEMORY;

    #[inline(always)]
    unsafe fn invoke(trampoline: RawTrampoline, args: A) -> Returned<R> {
        // SAFETY: the caller guarantees the trampoline is of the memory kind, whose real type is
        // `Trampoline`; function pointers of both types have the same size.
        let trampoline = unsafe { std::mem::transmute::<RawTrampoline, Trampoline>(trampoline) };
        // SAFETY: forwarded from the caller.
        unsafe { invoke_memory(trampoline, args) }
    }
}

/// Calls a memory trampoline.
///
/// # Safety
/// `trampoline` must be a verified trampoline taking `A` and returning `R`, in a library that
/// stays loaded during the call.
#[inline(always)]
unsafe fn invoke_memory<A, R>(trampoline: Trampoline, args: A) -> Returned<R> {
    let mut args = ManuallyDrop::new(args);
    let mut value = MaybeUninit::<R>::uninit();
    // SAFETY: `args` is an initialised `A` whose ownership passes to the trampoline (we never
    // drop it: `ManuallyDrop`); `value` has room for an `R`.
    let panic = unsafe {
        trampoline(
            ptr::from_mut::<A>(&mut args).cast(),
            value.as_mut_ptr().cast(),
        )
    };
    Returned { value, panic }
}

/// Calls a function through a host's handle (`abi::HandleOps`, `FnEntry::handle`): `args` moves
/// to the host, the result comes back as from a memory trampoline.
///
/// # Safety
/// `trampoline` is the host's `FnEntry::handle` of a function taking `A` and returning `R`
/// (the loader verified the library's copy of the function equal to the host's), and `handle`
/// a live host handle of that function's module.
#[inline]
pub(crate) unsafe fn invoke_through<A, R>(
    trampoline: HandleTrampoline,
    handle: *const (),
    args: A,
) -> Returned<R> {
    let mut args = ManuallyDrop::new(args);
    let mut value = MaybeUninit::<R>::uninit();
    // SAFETY: as in `invoke_memory`: `args` passes to the trampoline, `value` has room for an
    // `R`; `handle` is what the trampoline expects (the caller's contract).
    let panic = unsafe {
        trampoline(
            handle,
            ptr::from_mut::<A>(&mut args).cast(),
            value.as_mut_ptr().cast(),
        )
    };
    Returned { value, panic }
}

impl<R> Returned<R> {
    /// The return value, or the module's panic re-raised here.
    ///
    /// # Safety
    /// `self` came from a trampoline call (so `value` is initialised exactly when `panic` is
    /// null, and a non-null `panic` is an unowned boxed message).
    #[inline(always)]
    pub(crate) unsafe fn finish(self) -> R {
        if !self.panic.is_null() {
            // SAFETY: non-null: the trampoline boxed a message and nobody owns it yet.
            unsafe { resume_panic(self.panic) }
        }
        // SAFETY: null `panic`: the trampoline returned and wrote the value.
        unsafe { self.value.assume_init() }
    }

    /// The return value, or the module's panic message.
    ///
    /// # Safety
    /// As for [`Returned::finish`].
    pub(crate) unsafe fn into_result(self) -> Result<R, String> {
        if self.panic.is_null() {
            // SAFETY: null `panic`: the trampoline returned and wrote the value.
            Ok(unsafe { self.value.assume_init() })
        } else {
            // SAFETY: non-null: the trampoline boxed a message and nobody owns it yet.
            Err(unsafe { take_message(self.panic) })
        }
    }
}

/// Runs a memory trampoline outside the call paths (the on_load gate, state hand-over). `Err`
/// carries the message of a panic inside the module.
///
/// # Safety
/// `trampoline` must be a verified trampoline taking `A` and returning `R`, in a library that
/// stays loaded during the call.
pub(crate) unsafe fn invoke<A, R>(trampoline: Trampoline, args: A) -> Result<R, String> {
    // SAFETY: the caller's contract; the result comes from that call.
    unsafe { invoke_memory::<A, R>(trampoline, args).into_result() }
}

/// Takes ownership of a panic's message.
///
/// # Safety
/// `message` is a non-null [`PanicMessage`] a trampoline returned, not taken yet.
unsafe fn take_message(message: PanicMessage) -> String {
    // SAFETY: the trampoline made it with `Box::into_raw`; the caller's contract says once.
    *unsafe { Box::from_raw(message) }
}

/// Re-raises a module's panic on the caller's thread as an ordinary panic whose payload is the
/// module's message (a `String`). The module's own panic hook already reported it.
///
/// # Safety
/// As for [`take_message`].
#[cold]
#[inline(never)]
unsafe fn resume_panic(message: PanicMessage) -> ! {
    // SAFETY: the caller's contract.
    let message = unsafe { take_message(message) };
    std::panic::resume_unwind(Box::new(message))
}
