//! Platforms without `fork`: nothing to register.

/// Nothing is registered: the process cannot fork.
pub(crate) fn at_fork(
    _prepare: unsafe extern "C" fn(),
    _parent: unsafe extern "C" fn(),
    _child: unsafe extern "C" fn(),
) -> Result<(), i32> {
    Ok(())
}
