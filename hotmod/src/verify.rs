//! Verification of a library's descriptor against the host's, before any call.
//!
//! Order matters: the magic and ABI version are read first (their offsets never change); only
//! when they match is the rest of the descriptor read. Then module path, toolchain identity,
//! every function the host knows (by name: signature text, trampoline kind, and every parameter's
//! and the return type's size and alignment), and every module type that crosses the boundary (size, alignment,
//! field offsets and the definition's text). A library may add functions and types; it may not
//! change or remove any the host was compiled against.

use crate::abi::{
    FnEntry, ModuleDescriptor, RawTrampoline, TypeLayout, ValueLayout, ABI_VERSION, CALL_MEMORY,
    CALL_REGISTERS, MAGIC,
};
use crate::error::Incompatibility;

/// Why a descriptor was refused, without the file and module (the loader adds those).
pub(crate) enum Refusal {
    NotADescriptor,
    AbiVersion { found: u32 },
    OtherModule { found: String },
    Toolchain { expected: String, found: String },
    Incompatible(Vec<Incompatibility>),
}

/// Checks `lib` against `host` and returns the library's trampolines in the host's function
/// order.
///
/// # Safety
/// `lib` must point to a readable descriptor header (magic and ABI version) inside a library
/// that stays loaded while this runs; if the header matches, to a whole descriptor of this ABI
/// version.
pub(crate) unsafe fn verify(
    host: &ModuleDescriptor,
    lib: *const ModuleDescriptor,
) -> Result<Vec<RawTrampoline>, Refusal> {
    // SAFETY: the caller guarantees the header is readable; `magic` and `abi_version` are the
    // first fields of every ABI version.
    let (magic, abi_version) = unsafe {
        (
            std::ptr::addr_of!((*lib).magic).read_unaligned(),
            std::ptr::addr_of!((*lib).abi_version).read_unaligned(),
        )
    };
    if magic != MAGIC {
        return Err(Refusal::NotADescriptor);
    }
    if abi_version != ABI_VERSION {
        return Err(Refusal::AbiVersion { found: abi_version });
    }
    // SAFETY: same ABI version, so the whole descriptor has this layout (caller's contract).
    let lib = unsafe { &*lib };
    // SAFETY: both descriptors' strings and slices (here and below) are statics of libraries
    // that stay loaded while this function runs.
    let (host_path, lib_path) = unsafe { (host.module_path.as_str(), lib.module_path.as_str()) };
    if host_path != lib_path {
        return Err(Refusal::OtherModule {
            found: lib_path.to_owned(),
        });
    }
    // SAFETY: descriptor statics of libraries that stay loaded during `verify` (its contract).
    let (expected, found) = unsafe { (host.toolchain.as_str(), lib.toolchain.as_str()) };
    if expected != found {
        return Err(Refusal::Toolchain {
            expected: expected.to_owned(),
            found: found.to_owned(),
        });
    }

    // SAFETY: descriptor statics of libraries that stay loaded during `verify` (its contract).
    let lib_fns = unsafe { lib.functions.as_slice() };
    let mut table = Vec::new();
    let mut changes = Vec::new();
    // SAFETY: descriptor statics of libraries that stay loaded during `verify` (its contract).
    for want in unsafe { host.functions.as_slice() } {
        // SAFETY: descriptor statics of libraries that stay loaded during `verify` (its contract).
        let name = unsafe { want.name.as_str() };
        // SAFETY: descriptor statics of libraries that stay loaded during `verify` (its contract).
        let expected = unsafe { want.signature.as_str() };
        match lib_fns.iter().find(|have| {
            // SAFETY: descriptor statics of libraries that stay loaded during `verify` (its contract).
            (unsafe { have.name.as_str() }) == name
        }) {
            None => changes.push(Incompatibility::FunctionRemoved {
                name: name.to_owned(),
                expected: expected.to_owned(),
            }),
            // SAFETY: descriptor statics of libraries that stay loaded during `verify` (its contract).
            Some(have) if unsafe { same_function(want, have) } => table.push(have.trampoline),
            Some(have) => {
                // SAFETY: descriptor statics of libraries that stay loaded during `verify` (its contract).
                let found = unsafe { have.signature.as_str() };
                let (expected, found) = if expected != found {
                    (expected.to_owned(), found.to_owned())
                } else {
                    // Same text, different layouts: a type behind a name changed.
                    // SAFETY: descriptor statics of libraries that stay loaded during `verify` (its contract).
                    unsafe { (describe_layouts(want), describe_layouts(have)) }
                };
                changes.push(Incompatibility::FunctionChanged {
                    name: name.to_owned(),
                    expected,
                    found,
                });
            }
        }
    }

    // SAFETY: descriptor statics of libraries that stay loaded during `verify` (its contract).
    let lib_types = unsafe { lib.types.as_slice() };
    // SAFETY: descriptor statics of libraries that stay loaded during `verify` (its contract).
    for want in unsafe { host.types.as_slice() } {
        // SAFETY: descriptor statics of libraries that stay loaded during `verify` (its contract).
        let name = unsafe { want.name.as_str() };
        match lib_types.iter().find(|have| {
            // SAFETY: descriptor statics of libraries that stay loaded during `verify` (its contract).
            (unsafe { have.name.as_str() }) == name
        }) {
            None => changes.push(Incompatibility::TypeRemoved {
                name: name.to_owned(),
            }),
            Some(have) => {
                // SAFETY: descriptor statics of libraries that stay loaded during `verify` (its contract).
                let (want_def, have_def) = unsafe { (definition(want), definition(have)) };
                let changed = if want_def != have_def {
                    Some((format!("`{want_def}`"), format!("`{have_def}`")))
                // SAFETY: descriptor statics of libraries that stay loaded during `verify` (its contract).
                } else if unsafe { same_type_layout(want, have) } {
                    None
                } else {
                    // Compared field by field above; the text only explains the difference.
                    // SAFETY: descriptor statics of libraries that stay loaded during `verify` (its contract).
                    Some(unsafe { (describe_type(want), describe_type(have)) })
                };
                if let Some((expected, found)) = changed {
                    changes.push(Incompatibility::TypeChanged {
                        name: name.to_owned(),
                        expected,
                        found,
                    });
                }
            }
        }
    }

    if changes.is_empty() {
        Ok(table)
    } else {
        Err(Refusal::Incompatible(changes))
    }
}

/// # Safety
/// Both entries' strings and slices must be mapped.
unsafe fn same_function(a: &FnEntry, b: &FnEntry) -> bool {
    // SAFETY: forwarded from the caller.
    unsafe {
        a.signature.as_str() == b.signature.as_str()
            && a.kind == b.kind
            && same_layout(&a.ret, &b.ret)
            && a.params.as_slice().len() == b.params.as_slice().len()
            && a.params
                .as_slice()
                .iter()
                .zip(b.params.as_slice())
                .all(|(x, y)| same_layout(x, y))
    }
}

/// Same size, alignment and fields (name, type text, offset, size), compared as values: a
/// description text could read alike for different layouts (a field type containing `@`).
///
/// # Safety
/// Both layouts' strings and slices must be mapped.
unsafe fn same_type_layout(a: &TypeLayout, b: &TypeLayout) -> bool {
    // SAFETY: forwarded from the caller.
    unsafe {
        let (fa, fb) = (a.fields.as_slice(), b.fields.as_slice());
        a.size == b.size
            && a.align == b.align
            && fa.len() == fb.len()
            && fa.iter().zip(fb).all(|(x, y)| {
                x.name.as_str() == y.name.as_str()
                    && x.ty.as_str() == y.ty.as_str()
                    && x.offset == y.offset
                    && x.size == y.size
            })
    }
}

fn same_layout(a: &ValueLayout, b: &ValueLayout) -> bool {
    a.size == b.size && a.align == b.align
}

/// `fn(Token) -> u32 [Token: 8 bytes, align 8, u32: 4 bytes, align 4]`: for changes the signature
/// text does not show.
///
/// # Safety
/// The entry's strings and slices must be mapped.
unsafe fn describe_layouts(f: &FnEntry) -> String {
    // SAFETY: forwarded from the caller.
    unsafe {
        let layouts: Vec<String> = f
            .params
            .as_slice()
            .iter()
            .chain(std::iter::once(&f.ret))
            .map(|l| format!("{}: {} bytes, align {}", l.name.as_str(), l.size, l.align))
            .collect();
        let kind = match f.kind {
            CALL_MEMORY => "memory".to_owned(),
            CALL_REGISTERS => "registers".to_owned(),
            other => format!("unknown ({other})"),
        };
        format!(
            "{} [{}; {kind} trampoline]",
            f.signature.as_str(),
            layouts.join(", ")
        )
    }
}

/// `{ text: String @0 (24 bytes), count: u32 @24 (4 bytes) } (32 bytes, align 8)`.
///
/// # Safety
/// The layout's strings and slices must be mapped.
unsafe fn describe_type(t: &TypeLayout) -> String {
    // SAFETY: forwarded from the caller.
    unsafe {
        let fields: Vec<String> = t
            .fields
            .as_slice()
            .iter()
            .map(|f| {
                format!(
                    "{}: {} @{} ({} bytes)",
                    f.name.as_str(),
                    f.ty.as_str(),
                    f.offset,
                    f.size
                )
            })
            .collect();
        format!(
            "{{ {} }} ({} bytes, align {})",
            fields.join(", "),
            t.size,
            t.align
        )
    }
}

/// The definition pieces joined.
///
/// # Safety
/// The layout's strings and slices must be mapped.
unsafe fn definition(t: &TypeLayout) -> String {
    // SAFETY: forwarded from the caller.
    unsafe {
        t.definition
            .as_slice()
            .iter()
            .map(|piece| piece.as_str())
            .collect()
    }
}
