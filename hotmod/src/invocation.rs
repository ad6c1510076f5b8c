//! Calling a trampoline: room for the return value and a panic's message, and re-raising the
//! module's panic in the caller. Used by every call path (`pin.rs`) and by the runtime's own
//! calls into a library (the on_load gate, state hand-over and marks).

use std::mem::{ManuallyDrop, MaybeUninit};
use std::ptr;

use crate::abi::{PanicSlot, Trampoline};

/// One call through a trampoline: room for the return value and for a panic's message. Whether
/// it panicked comes back in a register (`run`'s result): a call that does not panic touches
/// neither the slot nor anything but its return value here.
pub(crate) struct Invocation<R> {
    ret: MaybeUninit<R>,
    panic: PanicSlot,
}

impl<R> Invocation<R> {
    #[inline(always)]
    pub(crate) fn new() -> Self {
        Invocation {
            ret: MaybeUninit::uninit(),
            panic: PanicSlot::new(),
        }
    }

    /// Runs `trampoline` with `args`; returns whether the module code panicked.
    ///
    /// # Safety
    /// `trampoline` must be a verified trampoline taking `A` and returning `R`, in a library that
    /// stays loaded during the call; `run` must be called at most once.
    #[inline(always)]
    pub(crate) unsafe fn run<A>(&mut self, trampoline: Trampoline, args: A) -> bool {
        let mut args = ManuallyDrop::new(args);
        // SAFETY: `args` is an initialised `A` whose ownership passes to the trampoline (we never
        // drop it: `ManuallyDrop`); `ret` has room for an `R`; `panic` has room for a slot.
        unsafe {
            trampoline(
                ptr::from_mut::<A>(&mut args).cast(),
                self.ret.as_mut_ptr().cast(),
                &mut self.panic,
            )
        }
    }

    /// The return value, or the module's panic re-raised here.
    ///
    /// # Safety
    /// `run` must have returned `panicked`; `finish` is called at most once.
    #[inline(always)]
    pub(crate) unsafe fn finish(&mut self, panicked: bool) -> R {
        if panicked {
            // SAFETY: the trampoline returned `true`, so it wrote the message; taken once.
            unsafe { resume_panic(&mut self.panic) }
        }
        // SAFETY: the trampoline returned `false`, so it wrote the return value; read once.
        unsafe { self.ret.assume_init_read() }
    }
}

/// Runs a trampoline outside the call paths (the on_load gate). `Err` carries the message of a
/// panic inside the module.
///
/// # Safety
/// `trampoline` must be a verified trampoline taking `A` and returning `R`, in a library that
/// stays loaded during the call.
pub(crate) unsafe fn invoke<A, R>(trampoline: Trampoline, args: A) -> Result<R, String> {
    let mut call = Invocation::<R>::new();
    // SAFETY: the caller's contract.
    if unsafe { call.run::<A>(trampoline, args) } {
        // SAFETY: the trampoline returned `true`, so it wrote the message.
        Err(unsafe { call.panic.take() })
    } else {
        // SAFETY: the trampoline returned `false`, so it wrote the return value.
        Ok(unsafe { call.ret.assume_init_read() })
    }
}

/// Re-raises a module's panic on the caller's thread as an ordinary panic whose payload is the
/// module's message (a `String`). The module's own panic hook already reported it.
///
/// # Safety
/// The trampoline `panic` was passed to returned `true`, and the message was not taken yet.
#[cold]
#[inline(never)]
unsafe fn resume_panic(panic: &mut PanicSlot) -> ! {
    // SAFETY: the caller's contract.
    let message = unsafe { panic.take() };
    std::panic::resume_unwind(Box::new(message))
}
