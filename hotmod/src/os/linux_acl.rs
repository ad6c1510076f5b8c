//! Linux: a file's POSIX access ACL, read from its `system.posix_acl_access` extended attribute.
//!
//! The kernel's format (`include/uapi/linux/posix_acl_xattr.h`), little-endian: a 4-byte version
//! header (2), then 8-byte entries `{ u16 tag, u16 perm, u32 id }`. A file without extended
//! entries has no such attribute (`ENODATA`): its mode bits are its ACL. A file system without
//! ACLs answers `ENOTSUP`: the mode bits are all there is. What the entries allow is decided in
//! `unix_security.rs`; the default ACL of a directory (`system.posix_acl_default`) is not read:
//! it only seeds the access ACL of entries created in it later, and each of those is checked
//! by its own access ACL when it is on a path hotmod checks.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use super::unix_security::{AclEntry, AclTag};

/// The attribute's name, NUL-terminated.
const NAME: &[u8] = b"system.posix_acl_access\0";
/// `POSIX_ACL_XATTR_VERSION`.
const VERSION: u32 = 2;
const HEADER_LEN: usize = 4;
const ENTRY_LEN: usize = 8;

/// The access ACL of `path` (symlinks followed), or `None` if it has none beyond its mode bits
/// or its file system has no ACLs.
pub(crate) fn access_acl(path: &Path) -> io::Result<Option<Vec<AclEntry>>> {
    let c_path = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "the path contains a NUL byte"))?;
    // Room for the header and 16 entries; a larger ACL is measured first.
    let mut buffer = vec![0_u8; HEADER_LEN + 16 * ENTRY_LEN];
    // The ACL may grow between measuring and reading it: a few tries, then give up.
    for _ in 0..8 {
        // SAFETY: `c_path` and `NAME` are NUL-terminated and outlive the call; `buffer` is valid
        // for writes of `buffer.len()` bytes, and getxattr writes at most that many.
        let read = unsafe {
            libc::getxattr(
                c_path.as_ptr(),
                NAME.as_ptr().cast(),
                buffer.as_mut_ptr().cast(),
                buffer.len(),
            )
        };
        if let Ok(len) = usize::try_from(read) {
            return parse(&buffer[..len]).map(Some);
        }
        let error = io::Error::last_os_error();
        match error.raw_os_error() {
            Some(code) if no_acl(code) => return Ok(None),
            Some(libc::ERANGE) => {}
            _ => return Err(error),
        }
        // SAFETY: a null buffer of size 0 only asks for the attribute's size; `c_path` and
        // `NAME` are as above.
        let size = unsafe {
            libc::getxattr(
                c_path.as_ptr(),
                NAME.as_ptr().cast(),
                std::ptr::null_mut(),
                0,
            )
        };
        match usize::try_from(size) {
            Ok(size) => buffer.resize(size.max(HEADER_LEN), 0),
            Err(_) => {
                let error = io::Error::last_os_error();
                match error.raw_os_error() {
                    Some(code) if no_acl(code) => return Ok(None),
                    _ => return Err(error),
                }
            }
        }
    }
    Err(io::Error::other("its ACL kept changing while it was read"))
}

/// Errors that mean "no access ACL": none set, or none possible on this file system.
fn no_acl(code: i32) -> bool {
    code == libc::ENODATA || code == libc::ENOTSUP || code == libc::EOPNOTSUPP
}

/// Parses the attribute's value.
fn parse(bytes: &[u8]) -> io::Result<Vec<AclEntry>> {
    let invalid = |what: String| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("its system.posix_acl_access attribute is malformed: {what}"),
        )
    };
    let Some((header, body)) = bytes.split_at_checked(HEADER_LEN) else {
        return Err(invalid(format!("{} bytes, no header", bytes.len())));
    };
    let version = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
    if version != VERSION {
        return Err(invalid(format!("version {version}, not {VERSION}")));
    }
    if body.len() % ENTRY_LEN != 0 {
        return Err(invalid(format!(
            "{} bytes of entries, not a multiple of {ENTRY_LEN}",
            body.len()
        )));
    }
    body.chunks_exact(ENTRY_LEN)
        .map(|entry| {
            let tag = u16::from_le_bytes([entry[0], entry[1]]);
            let perm = u16::from_le_bytes([entry[2], entry[3]]);
            let id = u32::from_le_bytes([entry[4], entry[5], entry[6], entry[7]]);
            let tag = match tag {
                0x01 => AclTag::UserObj,
                0x02 => AclTag::User,
                0x04 => AclTag::GroupObj,
                0x08 => AclTag::Group,
                0x10 => AclTag::Mask,
                0x20 => AclTag::Other,
                other => return Err(invalid(format!("unknown entry tag {other:#x}"))),
            };
            Ok(AclEntry { tag, perm, id })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(tag: u16, perm: u16, id: u32) -> Vec<u8> {
        let mut bytes = tag.to_le_bytes().to_vec();
        bytes.extend(perm.to_le_bytes());
        bytes.extend(id.to_le_bytes());
        bytes
    }

    #[test]
    fn the_kernel_format_is_parsed() {
        // What `setfacl -m u:65534:rw-` leaves on a 0644 file (read back with getfattr).
        let bytes = [
            "02000000",
            "01000600ffffffff",
            "02000600feff0000",
            "04000400ffffffff",
            "10000600ffffffff",
            "20000400ffffffff",
        ]
        .concat();
        let bytes: Vec<u8> = (0..bytes.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&bytes[i..i + 2], 16).expect("hex"))
            .collect();
        let acl = parse(&bytes).expect("parses");
        let undefined = u32::MAX;
        assert_eq!(
            acl,
            [
                AclEntry {
                    tag: AclTag::UserObj,
                    perm: 6,
                    id: undefined
                },
                AclEntry {
                    tag: AclTag::User,
                    perm: 6,
                    id: 65534
                },
                AclEntry {
                    tag: AclTag::GroupObj,
                    perm: 4,
                    id: undefined
                },
                AclEntry {
                    tag: AclTag::Mask,
                    perm: 6,
                    id: undefined
                },
                AclEntry {
                    tag: AclTag::Other,
                    perm: 4,
                    id: undefined
                },
            ]
        );
    }

    #[test]
    fn malformed_values_are_errors_not_panics() {
        let mut good = 2_u32.to_le_bytes().to_vec();
        good.extend(entry(0x08, 7, 5));
        assert_eq!(parse(&good).expect("parses").len(), 1);
        assert!(parse(&2_u32.to_le_bytes()).expect("no entries").is_empty());
        for bad in [
            &[][..],
            &[2, 0, 0][..],
            &[1, 0, 0, 0][..],
            &good[..good.len() - 1],
        ] {
            let error = parse(bad).expect_err("malformed");
            assert_eq!(error.kind(), io::ErrorKind::InvalidData, "{error}");
        }
        let mut unknown = 2_u32.to_le_bytes().to_vec();
        unknown.extend(entry(0x40, 7, 5));
        let error = parse(&unknown).expect_err("unknown tag");
        assert!(
            error.to_string().contains("unknown entry tag 0x40"),
            "{error}"
        );
    }

    #[test]
    fn a_file_without_extended_entries_has_no_acl() {
        let path = std::env::temp_dir().join(format!("hotmod-acl-unit-{}", std::process::id()));
        std::fs::write(&path, b"x").expect("write");
        let acl = access_acl(&path);
        let _ = std::fs::remove_file(&path);
        assert_eq!(acl.expect("getxattr"), None);
        let missing = access_acl(&path).expect_err("no such file");
        assert_eq!(missing.kind(), io::ErrorKind::NotFound);
    }
}
