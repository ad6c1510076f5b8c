//! Unix other than Linux: hotmod reads no ACLs there; the mode bits decide (see
//! `unix_security.rs` and docs/guarantees.md).

use std::path::Path;

use super::unix_security::AclEntry;

/// Never an ACL.
pub(crate) fn access_acl(_path: &Path) -> std::io::Result<Option<Vec<AclEntry>>> {
    Ok(None)
}
