//! The opt-in rollback policy (see [`Module::set_rollback`](crate::Module::set_rollback)).

/// Opt-in rollback: a generation whose calls panic `panics_in_a_row` times in a row within its
/// first `within_first_calls` calls is replaced by the generation that was current before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rollback {
    /// Consecutive panicking calls that trigger the rollback.
    pub panics_in_a_row: u32,
    /// How many calls the new generation is watched for; after that it is trusted.
    pub within_first_calls: u32,
}
