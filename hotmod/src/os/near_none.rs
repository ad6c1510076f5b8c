//! Platforms where hotmod does not steer where a library is mapped (everything but Linux on
//! x86_64, `linux_near.rs`): `dlopen` places it as it always does.

/// Runs `dlopen`.
pub(crate) fn open<T>(_bytes: &[u8], dlopen: impl FnOnce() -> T) -> T {
    dlopen()
}

/// Nothing reserved, nothing to put right.
pub(crate) fn in_child() {}
