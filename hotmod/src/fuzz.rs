//! What the fuzz targets in `fuzz/` call (feature `fuzz`, off by default): the ELF reader and
//! descriptor verification, which are crate-private. Not a public API: it changes without notice.
//!
//! Descriptors are built from owned data ([`Description`]) into real in-memory
//! [`ModuleDescriptor`]s whose strings and slices point into that data, so a fuzzer can offer any
//! shape (invalid UTF-8 included) without ever producing a wild pointer. A parameter's or
//! result's description is a [`Describer`], a fn pointer: the data names one by its index in the
//! fixed table [`DESCRIBERS`] of real describers (std's and a few written here), never an address.
//!
//! The table is built so that a fuzz target can predict `verify`'s answer: each entry has a
//! [`Entry::class`], and two entries describe equal types exactly when their classes are equal
//! (the same index, or a twin: the same description in other statics, as the host's and a
//! library's copies of one type are). Entries of different classes differ somewhere, at the top
//! or deep inside, and every named type (struct, enum, trait, opaque) is listed by
//! [`named_types`].

use std::any::TypeId;
use std::collections::HashSet;

use crate::abi::{FnEntry, ModuleDescriptor, RawTrampoline, SliceRef, StrRef};
use crate::describe::{describer, Describer, Field, Kind, Method, TypeDesc, Variant};
use crate::verify::Refusal;
use crate::Incompatibility;

/// What a well-formed descriptor holds, for a fuzz target building its host's [`Description`].
pub use crate::abi::{ABI_VERSION, CALL_MEMORY, CALL_REGISTERS, MAGIC, TOOLCHAIN};

/// The loader's whole-file check of a library's bytes (`NotALibrary` when it fails).
pub fn check_library(bytes: &[u8]) -> Result<(), String> {
    crate::os::check_library(bytes)
}

#[cfg(target_os = "linux")]
use crate::os::elf;

/// The symbols whose relocations the loader looks for (`os/linux_tls.rs`, `Redirect`).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn redirected() -> Vec<&'static str> {
    crate::os::Redirect::ALL
        .iter()
        .map(|redirect| redirect.name().to_str().unwrap_or_default())
        .collect()
}

/// One relocation the walker found, with what the loader derives from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slot {
    /// Index into the names asked for.
    pub symbol: usize,
    /// `r_offset`.
    pub offset: u64,
    /// `None` for `GLOB_DAT`, `JUMP_SLOT` and absolute words; `Some(type)` for the others.
    pub other_kind: Option<u32>,
    /// `r_addend`.
    pub addend: i64,
    /// Whether a loadable segment holds the slot's word (the loader writes only such slots).
    pub in_segment: bool,
}

/// What the program-header reader and the relocation walker make of `bytes`, the way the loader
/// reads a library it is about to redirect: the segments (and whether the file holds them), their
/// span, and the relocations against `names`.
#[cfg(target_os = "linux")]
pub fn relocations(bytes: &[u8], names: &[&str]) -> Result<Vec<Slot>, String> {
    let image = elf::Image::parse(bytes).map_err(|error| error.to_string())?;
    // Both only answer; neither may panic, whatever the headers say.
    let _ = image.check_segments(bytes.len() as u64);
    let _ = image.span();
    let symbols: Vec<(usize, &[u8])> = names.iter().map(|n| n.as_bytes()).enumerate().collect();
    let slots = image
        .symbol_slots(bytes, &symbols, elf::host_relocation_kind)
        .map_err(|error| error.to_string())?;
    Ok(slots
        .into_iter()
        .map(|slot| Slot {
            symbol: slot.symbol,
            offset: slot.offset,
            other_kind: match slot.kind {
                elf::SlotKind::Other(kind) => Some(kind),
                _ => None,
            },
            addend: slot.addend,
            in_segment: image.segment_at(slot.offset, 8).is_some(),
        })
        .collect())
}

/// Declares `static $s: TypeDesc = $desc` and its describer `fn $f`: hand-written descriptions in
/// statics of their own, so that twins (equal descriptions) have distinct addresses, as a host's
/// and a library's copies of one type do.
macro_rules! described {
    ($($f:ident: $s:ident = $desc:expr;)*) => {$(
        static $s: TypeDesc = $desc;
        fn $f() -> &'static TypeDesc {
            &$s
        }
    )*};
}

/// `Vec<T>` as std describes it, for a hand-written `T`.
const fn vec_of(args: &'static [Describer]) -> TypeDesc {
    TypeDesc::new(Kind::Std, "alloc::vec::Vec")
        .sized::<Vec<u8>>()
        .with_args(args)
}

/// `Option<T>` as std describes it, for a hand-written `T`. Sizes here need not be true: these
/// descriptions are only compared, never used to pass a value.
const fn option_of(args: &'static [Describer]) -> TypeDesc {
    TypeDesc::new(Kind::Std, "core::option::Option")
        .sized::<Option<String>>()
        .with_args(args)
}

/// `Box<T>` as std describes it, for a hand-written `dyn T`.
const fn box_of(args: &'static [Describer]) -> TypeDesc {
    TypeDesc::new(Kind::Std, "alloc::boxed::Box")
        .sized::<Box<dyn std::any::Any>>()
        .with_args(args)
}

/// A struct of this name and these fields, 32 bytes aligned to 8.
const fn structure(name: &'static str, fields: &'static [Field]) -> TypeDesc {
    TypeDesc {
        size: 32,
        align: 8,
        fields,
        ..TypeDesc::new(Kind::Struct, name)
    }
}

const fn field(name: &'static str, offset: usize, ty: Describer) -> Field {
    Field { name, offset, ty }
}

described! {
    // `u32` again, in a static of its own: equal to std's.
    u32_twin: U32_TWIN = TypeDesc::new(Kind::Std, "u32").sized::<u32>();
    option_u64: OPTION_U64 = option_of(&[describer::<u64>]);

    // `struct Reply { text: String, count: u32 }`, its twin, and two structs of the same name
    // that differ: in a field's type (found one level down) and in a field's name (found in
    // the struct's own description).
    reply: REPLY = structure(
        "fuzz::Reply",
        &[field("text", 0, describer::<String>), field("count", 24, describer::<u32>)],
    );
    reply_twin: REPLY_TWIN = structure(
        "fuzz::Reply",
        &[field("text", 0, describer::<String>), field("count", 24, u32_twin)],
    );
    reply_wide: REPLY_WIDE = structure(
        "fuzz::Reply",
        &[field("text", 0, describer::<String>), field("count", 24, describer::<u64>)],
    );
    reply_renamed: REPLY_RENAMED = structure(
        "fuzz::Reply",
        &[field("text", 0, describer::<String>), field("n", 24, describer::<u32>)],
    );
    option_reply: OPTION_REPLY = option_of(&[reply]);
    option_reply_wide: OPTION_REPLY_WIDE = option_of(&[reply_wide]);

    // `enum Mode { Fast, Slow(u16) }`, and the same with another discriminant.
    mode: MODE = TypeDesc {
        size: 4,
        align: 2,
        variants: &[
            Variant { name: "Fast", discriminant: 0, fields: &[] },
            Variant {
                name: "Slow",
                discriminant: 1,
                fields: &[field("0", Field::UNKNOWN_OFFSET, describer::<u16>)],
            },
        ],
        ..TypeDesc::new(Kind::Enum, "fuzz::Mode")
    };
    mode_renumbered: MODE_RENUMBERED = TypeDesc {
        size: 4,
        align: 2,
        variants: &[
            Variant { name: "Fast", discriminant: 0, fields: &[] },
            Variant {
                name: "Slow",
                discriminant: 2,
                fields: &[field("0", Field::UNKNOWN_OFFSET, describer::<u16>)],
            },
        ],
        ..TypeDesc::new(Kind::Enum, "fuzz::Mode")
    };

    // `struct Node { kids: Vec<Node>, value: u32 }`: a cycle through `Vec`'s argument. Its twin
    // is a cycle of its own; the wide one differs in `value`, found after the cycle was entered.
    node: NODE = structure(
        "fuzz::Node",
        &[field("kids", 0, vec_node), field("value", 24, describer::<u32>)],
    );
    vec_node: VEC_NODE = vec_of(&[node]);
    node_twin: NODE_TWIN = structure(
        "fuzz::Node",
        &[field("kids", 0, vec_node_twin), field("value", 24, describer::<u32>)],
    );
    vec_node_twin: VEC_NODE_TWIN = vec_of(&[node_twin]);
    node_wide: NODE_WIDE = structure(
        "fuzz::Node",
        &[field("kids", 0, vec_node_wide), field("value", 24, describer::<u64>)],
    );
    vec_node_wide: VEC_NODE_WIDE = vec_of(&[node_wide]);
    // `Node` again as a cycle of two: even and odd levels in statics of their own. It unfolds
    // to the same infinite tree, so it equals `Node`, although the walk pairs `Node` with each
    // of them in turn.
    node_even: NODE_EVEN = structure(
        "fuzz::Node",
        &[field("kids", 0, vec_node_odd), field("value", 24, describer::<u32>)],
    );
    vec_node_odd: VEC_NODE_ODD = vec_of(&[node_odd]);
    node_odd: NODE_ODD = structure(
        "fuzz::Node",
        &[field("kids", 0, vec_node_even), field("value", 24, u32_twin)],
    );
    vec_node_even: VEC_NODE_EVEN = vec_of(&[node_even]);

    // `trait Speaker { fn speak(&self, times: u32) -> String; }`, and with another result.
    speaker: SPEAKER = TypeDesc {
        methods: &[Method {
            name: "speak",
            receiver: "&self",
            params: &[describer::<u32>],
            ret: describer::<String>,
        }],
        ..TypeDesc::new(Kind::Trait, "fuzz::Speaker")
    };
    speaker_counting: SPEAKER_COUNTING = TypeDesc {
        methods: &[Method {
            name: "speak",
            receiver: "&self",
            params: &[describer::<u32>],
            ret: describer::<u32>,
        }],
        ..TypeDesc::new(Kind::Trait, "fuzz::Speaker")
    };
    box_speaker: BOX_SPEAKER = box_of(&[speaker]);
    box_speaker_counting: BOX_SPEAKER_COUNTING = box_of(&[speaker_counting]);

    // `#[hotmod(opaque)] struct Id(other::Id)`, and the same from another build of `other`
    // (equal size and alignment, another `TypeId`).
    id: ID = TypeDesc {
        size: 8,
        align: 8,
        identity: Some(TypeId::of::<u64>),
        ..TypeDesc::new(Kind::Opaque, "fuzz::Id")
    };
    id_rebuilt: ID_REBUILT = TypeDesc {
        size: 8,
        align: 8,
        identity: Some(TypeId::of::<i64>),
        ..TypeDesc::new(Kind::Opaque, "fuzz::Id")
    };
}

/// One describer a [`Function`] can name.
#[derive(Debug)]
pub struct Entry {
    /// The type, as a reader would write it (for messages).
    pub name: &'static str,
    /// Its describer.
    pub describer: Describer,
    /// Entries describe equal types exactly when their classes are equal.
    pub class: usize,
}

const fn entry(name: &'static str, describer: Describer, class: usize) -> Entry {
    Entry {
        name,
        describer,
        class,
    }
}

/// The describers a [`Function`]'s parameters and result are taken from (by index, modulo the
/// length).
pub static DESCRIBERS: [Entry; 31] = [
    entry("u32", describer::<u32>, 0),
    entry("u32 (twin)", u32_twin, 0),
    entry("u64", describer::<u64>, 1),
    entry("String", describer::<String>, 2),
    entry("Vec<u8>", describer::<Vec<u8>>, 3),
    entry("&str", describer::<&'static str>, 4),
    entry("Option<u32>", describer::<Option<u32>>, 5),
    entry("(u32, String)", describer::<(u32, String)>, 6),
    entry("()", describer::<()>, 7),
    entry("&mut u64", describer::<&'static mut u64>, 8),
    entry("Option<u64>", option_u64, 9),
    entry("Reply", reply, 10),
    entry("Reply (twin)", reply_twin, 10),
    entry("Reply { count: u64 }", reply_wide, 11),
    entry("Reply { n: u32 }", reply_renamed, 12),
    entry("Option<Reply>", option_reply, 13),
    entry("Option<Reply { count: u64 }>", option_reply_wide, 14),
    entry("Mode", mode, 15),
    entry("Mode (Slow = 2)", mode_renumbered, 16),
    entry("Node", node, 17),
    entry("Node (twin)", node_twin, 17),
    entry("Node { value: u64 }", node_wide, 18),
    entry("Vec<Node>", vec_node, 19),
    entry("Vec<Node> (twin)", vec_node_twin, 19),
    entry("Vec<Node { value: u64 }>", vec_node_wide, 20),
    entry("Box<dyn Speaker>", box_speaker, 21),
    entry("Box<dyn Speaker> (speak -> u32)", box_speaker_counting, 22),
    entry("Id", id, 23),
    entry("Id (another build)", id_rebuilt, 24),
    entry("Node (a cycle of two)", node_even, 17),
    entry("Vec<Node> (a cycle of two)", vec_node_even, 19),
];

/// The entry `index` names: [`DESCRIBERS`]`[index % len]`.
pub fn entry_at(index: usize) -> &'static Entry {
    &DESCRIBERS[index % DESCRIBERS.len()]
}

/// The paths of the structs, enums, traits and opaque types the entry `index` reaches, itself
/// included: where a difference inside it can be reported as a changed type.
pub fn named_types(index: usize) -> Vec<&'static str> {
    fn walk(
        t: &'static TypeDesc,
        seen: &mut HashSet<*const TypeDesc>,
        out: &mut Vec<&'static str>,
    ) {
        if !seen.insert(t) {
            return;
        }
        if matches!(
            t.kind,
            Kind::Struct | Kind::Enum | Kind::Trait | Kind::Opaque
        ) && !out.contains(&t.name)
        {
            out.push(t.name);
        }
        let fields = t
            .fields
            .iter()
            .chain(t.variants.iter().flat_map(|v| v.fields));
        let nested = t.args.iter().chain(fields.map(|f| &f.ty)).chain(
            t.methods
                .iter()
                .flat_map(|m| m.params.iter().chain([&m.ret])),
        );
        for d in nested {
            walk(d(), seen, out);
        }
    }
    let mut out = Vec::new();
    walk((entry_at(index).describer)(), &mut HashSet::new(), &mut out);
    out
}

/// A descriptor as plain data. Strings are bytes: a library may hold anything there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Description {
    /// [`MAGIC`] in a real descriptor.
    pub magic: [u8; 8],
    /// [`ABI_VERSION`] in a real descriptor.
    pub abi_version: u32,
    /// The module path.
    pub module_path: Vec<u8>,
    /// The toolchain identity.
    pub toolchain: Vec<u8>,
    /// The functions.
    pub functions: Vec<Function>,
}

/// A [`FnEntry`] as plain data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Function {
    /// The name.
    pub name: Vec<u8>,
    /// The signature text.
    pub signature: Vec<u8>,
    /// The parameters' descriptions: indices into [`DESCRIBERS`] (see [`entry_at`]).
    pub params: Vec<usize>,
    /// The result's description, likewise.
    pub ret: usize,
    /// The trampoline's kind (`FnEntry::kind`).
    pub kind: u32,
    /// Which of the [`TRAMPOLINES`] dummy trampolines the entry holds (taken modulo their
    /// number); [`Outcome::Accepted`] says which ones `verify` returned.
    pub trampoline: usize,
}

/// What `verify` said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Accepted: for each of the host's functions, in order, the index (into [`TRAMPOLINES`]) of
    /// the trampoline `verify` returned.
    Accepted(Vec<usize>),
    /// The magic differs.
    NotADescriptor,
    /// The ABI version differs.
    AbiVersion(u32),
    /// Another module's descriptor.
    OtherModule(String),
    /// Another toolchain.
    Toolchain {
        /// The host's identity.
        expected: String,
        /// The library's.
        found: String,
    },
    /// Incompatible changes.
    Incompatible(Vec<Incompatibility>),
}

/// How many distinct dummy trampolines a [`Function`] can point to.
pub const TRAMPOLINES: usize = 8;

/// A trampoline that is never called; each `N` is a distinct function (distinct bodies, so no
/// merging of identical functions gives two of them one address).
unsafe extern "C" fn dummy<const N: usize>() {
    std::hint::black_box(N);
}

const DUMMIES: [RawTrampoline; TRAMPOLINES] = [
    dummy::<0>, dummy::<1>, dummy::<2>, dummy::<3>, dummy::<4>, dummy::<5>, dummy::<6>, dummy::<7>,
];

unsafe extern "C" fn no_enter(_links: *const crate::abi::HostLinks) {}
unsafe extern "C" fn no_handle(
    _handle: *const (),
    _args: *mut u8,
    _ret: *mut u8,
) -> crate::abi::PanicMessage {
    std::ptr::null_mut()
}

/// The layout `StrRef` and `SliceRef` share (`#[repr(C)]` pointer and length, see `abi.rs`).
#[repr(C)]
struct RawRef<T> {
    ptr: *const T,
    len: usize,
}

fn slice_ref<T>(items: &[T]) -> SliceRef<T> {
    let raw = RawRef {
        ptr: items.as_ptr(),
        len: items.len(),
    };
    // SAFETY: `SliceRef<T>` is `#[repr(C)] { ptr: *const T, len: usize }`, the layout of
    // `RawRef<T>` (checked by `check_layouts`). The result is only used while `items` lives
    // (`with_descriptor` keeps every buffer until its closure returns).
    unsafe { std::mem::transmute_copy(&raw) }
}

fn str_ref(bytes: &[u8]) -> StrRef {
    let raw = RawRef {
        ptr: bytes.as_ptr(),
        len: bytes.len(),
    };
    // SAFETY: as in `slice_ref`: `StrRef` is `#[repr(C)] { ptr: *const u8, len: usize }`.
    unsafe { std::mem::transmute_copy(&raw) }
}

/// Checks that `StrRef` and `SliceRef` still have the layout `RawRef` assumes.
fn check_layouts() {
    const S: &str = "layout";
    static L: [u32; 3] = [1, 2, 3];
    assert_eq!(
        std::mem::size_of::<StrRef>(),
        std::mem::size_of::<RawRef<u8>>()
    );
    assert_eq!(
        std::mem::size_of::<SliceRef<u32>>(),
        std::mem::size_of::<RawRef<u32>>()
    );
    // SAFETY: the sizes match (checked above); reading the pair back is what we check.
    let (s, l): (RawRef<u8>, RawRef<u32>) = unsafe {
        (
            std::mem::transmute_copy(&StrRef::new(S)),
            std::mem::transmute_copy(&SliceRef::new(&L)),
        )
    };
    assert!(
        s.ptr == S.as_ptr() && s.len == S.len(),
        "StrRef layout changed"
    );
    assert!(
        l.ptr == L.as_ptr() && l.len == L.len(),
        "SliceRef layout changed"
    );
}

/// Builds the in-memory descriptor of `d` and hands it to `f`; its strings and slices point into
/// `d` and into buffers that live until `f` returns. Describers come from [`DESCRIBERS`].
fn with_descriptor<R>(d: &Description, f: impl FnOnce(&ModuleDescriptor) -> R) -> R {
    let params: Vec<Vec<Describer>> = d
        .functions
        .iter()
        .map(|f| f.params.iter().map(|&i| entry_at(i).describer).collect())
        .collect();
    let functions: Vec<FnEntry> = d
        .functions
        .iter()
        .zip(&params)
        .map(|(f, params)| FnEntry {
            name: str_ref(&f.name),
            signature: str_ref(&f.signature),
            params: slice_ref(params),
            ret: entry_at(f.ret).describer,
            kind: f.kind,
            trampoline: DUMMIES[f.trampoline % TRAMPOLINES],
            forward: None,
            handle: no_handle,
        })
        .collect();
    let descriptor = ModuleDescriptor {
        magic: d.magic,
        abi_version: d.abi_version,
        module_path: str_ref(&d.module_path),
        toolchain: str_ref(&d.toolchain),
        functions: slice_ref(&functions),
        on_load: None,
        enter: no_enter,
        handles: &crate::pin::HOST_HANDLES,
        states: SliceRef::new(&[]),
        kept: SliceRef::new(&[]),
    };
    f(&descriptor)
}

/// Just the header, as a library whose descriptor is of another ABI version may hold: `verify`
/// must read nothing past it (under AddressSanitizer a read past it is reported).
#[repr(C, align(8))]
#[allow(dead_code)] // read by `verify` through a pointer
struct Header {
    magic: [u8; 8],
    abi_version: u32,
}

/// Runs the loader's `verify(host, lib)` on in-memory descriptors built from `host` and `lib`.
/// When the library's magic or ABI version differ, `verify` gets only a header-sized allocation
/// for it. The host's magic and ABI version are not looked at (the loader's host descriptor is
/// its own).
pub fn verify(host: &Description, lib: &Description) -> Outcome {
    check_layouts();
    let result = with_descriptor(host, |host| {
        if lib.magic != MAGIC || lib.abi_version != ABI_VERSION {
            let header = Box::new(Header {
                magic: lib.magic,
                abi_version: lib.abi_version,
            });
            let lib = (&*header as *const Header).cast::<ModuleDescriptor>();
            // SAFETY: `lib` points to a readable header, and the header does not match, so
            // verify must read nothing else; `host` is a whole descriptor whose strings and
            // slices live until `with_descriptor` returns.
            unsafe { crate::verify::verify(host, lib) }
        } else {
            with_descriptor(lib, |lib| {
                // SAFETY: two whole descriptors of this ABI version whose strings and slices
                // point into `host`, `lib` and `with_descriptor`'s buffers, all alive until
                // `verify` returns; their describers are functions of this binary
                // (`DESCRIBERS`).
                unsafe { crate::verify::verify(host, lib) }
            })
        }
    });
    match result {
        Ok(table) => Outcome::Accepted(
            table
                .iter()
                .map(|t| {
                    DUMMIES
                        .iter()
                        .position(|d| *d as usize == *t as usize)
                        .expect("verify returned a trampoline the library does not hold")
                })
                .collect(),
        ),
        Err(Refusal::NotADescriptor) => Outcome::NotADescriptor,
        Err(Refusal::AbiVersion { found }) => Outcome::AbiVersion(found),
        Err(Refusal::OtherModule { found }) => Outcome::OtherModule(found),
        Err(Refusal::Toolchain { expected, found }) => Outcome::Toolchain { expected, found },
        Err(Refusal::Incompatible(changes)) => Outcome::Incompatible(changes),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn module(param: usize, ret: usize) -> Description {
        Description {
            magic: MAGIC,
            abi_version: ABI_VERSION,
            module_path: b"fuzz::table".to_vec(),
            toolchain: TOOLCHAIN.as_bytes().to_vec(),
            functions: vec![Function {
                name: b"f".to_vec(),
                signature: b"fn(T) -> T".to_vec(),
                params: vec![param],
                ret,
                kind: CALL_MEMORY,
                trampoline: 3,
            }],
        }
    }

    /// The table's promise, entry against entry, as a parameter and as the result: equal
    /// classes are accepted, different ones refused, naming the function or a named type the
    /// host's entry reaches.
    #[test]
    fn classes_decide() {
        for (a, ea) in DESCRIBERS.iter().enumerate() {
            for (b, eb) in DESCRIBERS.iter().enumerate() {
                for (host, lib) in [(module(a, 8), module(b, 8)), (module(8, a), module(8, b))] {
                    let outcome = verify(&host, &lib);
                    if ea.class == eb.class {
                        assert_eq!(outcome, Outcome::Accepted(vec![3]), "{ea:?} / {eb:?}");
                        continue;
                    }
                    let Outcome::Incompatible(changes) = outcome else {
                        panic!("{ea:?} / {eb:?}: {outcome:?}");
                    };
                    let named = named_types(a);
                    assert!(
                        changes.len() == 1
                            && match &changes[0] {
                                Incompatibility::FunctionChanged { name, .. } => name == "f",
                                Incompatibility::TypeChanged { name, .. } => {
                                    named.contains(&name.as_str())
                                }
                                _ => false,
                            },
                        "{ea:?} / {eb:?}: {changes:?}"
                    );
                }
            }
        }
    }
}
