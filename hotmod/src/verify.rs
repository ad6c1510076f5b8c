//! Verification of a library's descriptor against the host's, before any call.
//!
//! Order matters: the magic and ABI version are read first (their offsets never change); only
//! when they match is the rest of the descriptor read. Then module path and toolchain identity;
//! only with the toolchain equal are the library's describers called (`describe.rs`: functions
//! of the library that return references to its constants, and nothing else). Then every
//! function the host knows, by name: signature text, trampoline kind, and the description of
//! every parameter and the result, compared all the way down (kind, path, size, alignment,
//! `repr`, fields with offsets, variants with discriminants, a trait object's methods and
//! supertraits, an opaque type's identity). A library may add functions; it may not change or
//! remove any the host was compiled against.

use std::collections::HashMap;

use crate::abi::{
    ModuleDescriptor, RawTrampoline, ABI_VERSION, CALL_MEMORY, CALL_REGISTERS, MAGIC,
};
use crate::describe::{Field, Kind, TypeDesc};
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
    let mut walk = Walk::default();
    // SAFETY: descriptor statics of libraries that stay loaded during `verify` (its contract).
    for want in unsafe { host.functions.as_slice() } {
        // SAFETY: descriptor statics of libraries that stay loaded during `verify` (its contract).
        let (name, expected) = unsafe { (want.name.as_str(), want.signature.as_str()) };
        let Some(have) = lib_fns.iter().find(|have| {
            // SAFETY: descriptor statics of libraries that stay loaded during `verify` (its contract).
            (unsafe { have.name.as_str() }) == name
        }) else {
            changes.push(Incompatibility::FunctionRemoved {
                name: name.to_owned(),
                expected: expected.to_owned(),
            });
            continue;
        };
        // SAFETY: descriptor statics of libraries that stay loaded during `verify` (its contract).
        let found = unsafe { have.signature.as_str() };
        if expected != found || want.kind != have.kind {
            let (expected, found) = if expected != found {
                (expected.to_owned(), found.to_owned())
            } else {
                (
                    format!("{expected} ({} trampoline)", kind_name(want.kind)),
                    format!("{found} ({} trampoline)", kind_name(have.kind)),
                )
            };
            changes.push(Incompatibility::FunctionChanged {
                name: name.to_owned(),
                expected,
                found,
            });
            continue;
        }
        // SAFETY: descriptor statics of libraries that stay loaded during `verify` (its contract).
        let (want_params, have_params) =
            unsafe { (want.params.as_slice(), have.params.as_slice()) };
        let slots = want_params
            .iter()
            .zip(have_params)
            .enumerate()
            .map(|(k, pair)| (Slot::Parameter(k + 1), pair))
            .chain(std::iter::once((Slot::Result, (&want.ret, &have.ret))));
        if want_params.len() != have_params.len() {
            // Same text, another count: only a forged descriptor gets here.
            changes.push(Incompatibility::FunctionChanged {
                name: name.to_owned(),
                expected: format!("{expected} ({} parameters)", want_params.len()),
                found: format!("{found} ({} parameters)", have_params.len()),
            });
            continue;
        }
        let mut same = true;
        for (slot, (w, h)) in slots {
            // The toolchain matched above, so the library's describers are functions of this
            // ABI returning descriptions of this layout (`describe.rs`).
            match walk.compare(w(), h()) {
                Ok(()) => {}
                Err(Difference::Explained(change)) => {
                    same = false;
                    if !changes.contains(&change) {
                        changes.push(change);
                    }
                }
                Err(Difference::Mismatch {
                    expected: e,
                    found: f,
                }) => {
                    same = false;
                    changes.push(Incompatibility::FunctionChanged {
                        name: name.to_owned(),
                        expected: format!("{expected} ({slot} {e})"),
                        found: format!("{found} ({slot} {f})"),
                    });
                }
            }
        }
        if same {
            table.push(have.trampoline);
        }
    }

    if changes.is_empty() {
        Ok(table)
    } else {
        Err(Refusal::Incompatible(changes))
    }
}

/// The items the host runs its own copy of whose source differs in `lib` (or that `lib` no longer
/// has): the host keeps running its own code for them, which a load reports.
///
/// # Safety
/// Both descriptors must have been verified (`verify` returned `Ok`) and stay mapped while this
/// runs.
pub(crate) unsafe fn stale_items(host: &ModuleDescriptor, lib: &ModuleDescriptor) -> Vec<String> {
    // SAFETY: verified descriptors of libraries that stay loaded (the caller's contract).
    let (want, have) = unsafe { (host.kept.as_slice(), lib.kept.as_slice()) };
    want.iter()
        .filter_map(|item| {
            // SAFETY: as above.
            let name = unsafe { item.name.as_str() };
            let found = have.iter().find(|other| {
                // SAFETY: as above.
                let other_name = unsafe { other.name.as_str() };
                other_name == name
            });
            match found {
                Some(other) if other.digest == item.digest => None,
                Some(_) => Some(name.to_owned()),
                None => Some(format!("{name} (removed)")),
            }
        })
        .collect()
}

fn kind_name(kind: u32) -> String {
    match kind {
        CALL_MEMORY => "memory".to_owned(),
        CALL_REGISTERS => "registers".to_owned(),
        other => format!("unknown ({other})"),
    }
}

/// Where a type sits in a function's signature.
#[derive(Clone, Copy)]
enum Slot {
    Parameter(usize),
    Result,
}

impl std::fmt::Display for Slot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Slot::Parameter(k) => write!(f, "parameter {k} is"),
            Slot::Result => f.write_str("result is"),
        }
    }
}

/// How two descriptions differ.
#[derive(Clone)]
enum Difference {
    /// The types themselves differ (another type, or another std type's size): the nearest
    /// enclosing struct, enum or trait (or the function) says where.
    Mismatch { expected: String, found: String },
    /// A struct, enum, trait or opaque type changed; the change names it.
    Explained(Incompatibility),
}

/// Compares descriptions all the way down. A pair already under comparison is taken as equal:
/// a recursive type (`struct Node { kids: Vec<Node> }`) is equal when it is equal everywhere
/// else, and every other difference is found on the way. Outcomes are remembered, so that each
/// function that reaches a changed type names it: a difference always (it never rests on an
/// assumption), equality only when no pair still under comparison was assumed equal for it.
#[derive(Default)]
struct Walk {
    known: HashMap<(*const TypeDesc, *const TypeDesc), Outcome>,
    /// How often a pair under comparison was taken as equal.
    assumed: usize,
}

enum Outcome {
    Comparing,
    Equal,
    Differs(Difference),
}

impl Walk {
    fn compare(&mut self, host: &TypeDesc, lib: &TypeDesc) -> Result<(), Difference> {
        let key: (*const TypeDesc, *const TypeDesc) = (host, lib);
        match self.known.get(&key) {
            Some(Outcome::Comparing) => {
                self.assumed += 1;
                return Ok(());
            }
            Some(Outcome::Equal) => return Ok(()),
            Some(Outcome::Differs(difference)) => return Err(difference.clone()),
            None => {}
        }
        self.known.insert(key, Outcome::Comparing);
        let assumed = self.assumed;
        let result = self.compare_new(host, lib);
        match &result {
            Ok(()) if self.assumed == assumed => {
                self.known.insert(key, Outcome::Equal);
            }
            Ok(()) => {
                self.known.remove(&key);
            }
            Err(difference) => {
                self.known.insert(key, Outcome::Differs(difference.clone()));
            }
        }
        result
    }

    /// [`Walk::compare`] of a pair not compared before.
    fn compare_new(&mut self, host: &TypeDesc, lib: &TypeDesc) -> Result<(), Difference> {
        let mismatch = || Difference::Mismatch {
            expected: render(host, 0),
            found: render(lib, 0),
        };
        if host.kind != lib.kind || host.name != lib.name {
            return Err(mismatch());
        }
        let named = matches!(
            host.kind,
            Kind::Struct | Kind::Enum | Kind::Trait | Kind::Opaque
        );
        let changed = || {
            Difference::Explained(Incompatibility::TypeChanged {
                name: host.name.to_owned(),
                expected: summary(host),
                found: summary(lib),
            })
        };
        let own = host.size == lib.size
            && host.align == lib.align
            && host.repr == lib.repr
            && host.args.len() == lib.args.len()
            && host.fields.len() == lib.fields.len()
            && host.variants.len() == lib.variants.len()
            && host.methods.len() == lib.methods.len()
            && same_fields(host.fields, lib.fields)
            && host.variants.iter().zip(lib.variants).all(|(a, b)| {
                a.name == b.name
                    && a.discriminant == b.discriminant
                    && same_fields(a.fields, b.fields)
            })
            && host.methods.iter().zip(lib.methods).all(|(a, b)| {
                a.name == b.name && a.receiver == b.receiver && a.params.len() == b.params.len()
            });
        if !own {
            return Err(if named { changed() } else { mismatch() });
        }
        if !same_identity(host, lib) {
            return Err(Difference::Explained(Incompatibility::TypeChanged {
                name: host.name.to_owned(),
                expected: format!("{} as the host's build of its crate", summary(host)),
                found: "the same type from another build of its crate (other features, another \
                        profile or another version: its `TypeId` differs)"
                    .to_owned(),
            }));
        }
        // Every pair of nested types, in order: arguments (or supertraits), fields, variants'
        // fields, methods' parameters and results.
        let nested = host
            .args
            .iter()
            .zip(lib.args)
            .chain(
                host.fields
                    .iter()
                    .zip(lib.fields)
                    .map(|(a, b)| (&a.ty, &b.ty)),
            )
            .chain(
                host.variants
                    .iter()
                    .zip(lib.variants)
                    .flat_map(|(a, b)| a.fields.iter().zip(b.fields))
                    .map(|(a, b)| (&a.ty, &b.ty)),
            )
            .chain(host.methods.iter().zip(lib.methods).flat_map(|(a, b)| {
                a.params
                    .iter()
                    .zip(b.params)
                    .chain(std::iter::once((&a.ret, &b.ret)))
            }));
        for (a, b) in nested {
            match self.compare(a(), b()) {
                Ok(()) => {}
                Err(Difference::Mismatch { .. }) if named => return Err(changed()),
                Err(other) => return Err(other),
            }
        }
        Ok(())
    }
}

fn same_fields(a: &[Field], b: &[Field]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| x.name == y.name && x.offset == y.offset)
}

fn same_identity(host: &TypeDesc, lib: &TypeDesc) -> bool {
    match (host.identity, lib.identity) {
        (None, None) => true,
        (Some(a), Some(b)) => a() == b(),
        _ => false,
    }
}

/// `Vec<Reply>`, `&str`, `[u8; 4]`, `dyn Speaker`: a type as a user would write it, with paths
/// shortened to their last segment.
fn render(t: &TypeDesc, depth: usize) -> String {
    if depth > 6 {
        return "…".to_owned();
    }
    let arg = |k: usize| {
        t.args
            .get(k)
            .map_or_else(|| "?".to_owned(), |d| render(d(), depth + 1))
    };
    let args = |from: usize, to: usize| -> Vec<String> {
        t.args[from.min(t.args.len())..to.min(t.args.len())]
            .iter()
            .map(|d| render(d(), depth + 1))
            .collect()
    };
    let short = t.name.rsplit("::").next().unwrap_or(t.name);
    match t.kind {
        Kind::Ref => format!("&{}", arg(0)),
        Kind::RefMut => format!("&mut {}", arg(0)),
        Kind::ConstPtr => format!("*const {}", arg(0)),
        Kind::MutPtr => format!("*mut {}", arg(0)),
        Kind::Slice => format!("[{}]", arg(0)),
        Kind::Array => {
            let element = t.args.first().map(|d| d().size).unwrap_or(0);
            let len = t
                .size
                .checked_div(element)
                .map_or_else(|| "_".to_owned(), |n| n.to_string());
            format!("[{}; {len}]", arg(0))
        }
        Kind::Tuple => {
            let all = args(0, t.args.len());
            if all.len() == 1 {
                format!("({},)", all[0])
            } else {
                format!("({})", all.join(", "))
            }
        }
        Kind::FnPtr => {
            let n = t.args.len().saturating_sub(1);
            format!("{}({}) -> {}", t.name, args(0, n).join(", "), arg(n))
        }
        Kind::Trait if t.name.starts_with("Fn") => {
            let n = t.args.len().saturating_sub(1);
            format!("dyn {}({}) -> {}", t.name, args(0, n).join(", "), arg(n))
        }
        Kind::Trait => format!("dyn {short}"),
        _ if t.args.is_empty() => short.to_owned(),
        _ => format!("{short}<{}>", args(0, t.args.len()).join(", ")),
    }
}

/// A struct, enum, trait or opaque type's own description, for a refusal:
/// `struct (32 bytes, align 8) { text: String @0, count: u32 @24 }`.
fn summary(t: &TypeDesc) -> String {
    let repr = if t.repr.is_empty() {
        String::new()
    } else {
        format!("#[repr({})] ", t.repr)
    };
    let fields = |fields: &[Field]| -> String {
        fields
            .iter()
            .map(|f| {
                let ty = render((f.ty)(), 1);
                if f.offset == Field::UNKNOWN_OFFSET {
                    format!("{}: {ty}", f.name)
                } else {
                    format!("{}: {ty} @{}", f.name, f.offset)
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    let size = format!("{} bytes, align {}", t.size, t.align);
    match t.kind {
        Kind::Struct => format!("{repr}struct ({size}) {{ {} }}", fields(t.fields)),
        Kind::Enum => {
            let variants: Vec<String> = t
                .variants
                .iter()
                .map(|v| {
                    if v.fields.is_empty() {
                        format!("{} = {}", v.name, v.discriminant)
                    } else {
                        format!("{} {{ {} }} = {}", v.name, fields(v.fields), v.discriminant)
                    }
                })
                .collect();
            format!("{repr}enum ({size}) {{ {} }}", variants.join(", "))
        }
        Kind::Trait => {
            let supertraits: Vec<String> = t.args.iter().map(|d| render(d(), 1)).collect();
            let methods: Vec<String> = t
                .methods
                .iter()
                .map(|m| {
                    let mut params = vec![m.receiver.to_owned()];
                    params.extend(m.params.iter().map(|d| render(d(), 1)));
                    format!(
                        "fn {}({}) -> {};",
                        m.name,
                        params.join(", "),
                        render((m.ret)(), 1)
                    )
                })
                .collect();
            let bounds = if supertraits.is_empty() {
                String::new()
            } else {
                format!(": {}", supertraits.join(" + ").replace("dyn ", ""))
            };
            format!("trait{bounds} {{ {} }}", methods.join(" "))
        }
        Kind::Opaque => format!("opaque ({size})"),
        _ => render(t, 0),
    }
}
