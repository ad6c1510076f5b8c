//! What the fuzz targets in `fuzz/` call (feature `fuzz`, off by default): the ELF reader and
//! descriptor verification, which are crate-private. Not a public API: it changes without notice.
//!
//! Descriptors are built from owned data ([`Description`]) into real in-memory
//! [`ModuleDescriptor`]s whose strings and slices point into that data, so a fuzzer can offer any
//! shape (invalid UTF-8 included) without ever producing a wild pointer.

use crate::abi::{
    FieldLayout, FnEntry, ModuleDescriptor, RawTrampoline, SliceRef, StrRef, TypeLayout,
    ValueLayout, ABI_VERSION, MAGIC,
};
use crate::verify::Refusal;
use crate::Incompatibility;

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
    /// The module's types.
    pub types: Vec<Type>,
}

/// A [`FnEntry`] as plain data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Function {
    /// The name.
    pub name: Vec<u8>,
    /// The signature text.
    pub signature: Vec<u8>,
    /// The parameters' layouts.
    pub params: Vec<Value>,
    /// The return type's layout.
    pub ret: Value,
    /// The trampoline's kind (`FnEntry::kind`).
    pub kind: u32,
    /// Which of the [`TRAMPOLINES`] dummy trampolines the entry holds (taken modulo their
    /// number); [`Outcome::Accepted`] says which ones `verify` returned.
    pub trampoline: usize,
}

/// A [`ValueLayout`] as plain data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Value {
    /// The type as written.
    pub name: Vec<u8>,
    /// `size_of`.
    pub size: usize,
    /// `align_of`.
    pub align: usize,
}

/// A [`TypeLayout`] as plain data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Type {
    /// The name.
    pub name: Vec<u8>,
    /// `size_of`.
    pub size: usize,
    /// `align_of`.
    pub align: usize,
    /// The fields.
    pub fields: Vec<Field>,
    /// The definition's pieces.
    pub definition: Vec<Vec<u8>>,
}

/// A [`FieldLayout`] as plain data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    /// The name.
    pub name: Vec<u8>,
    /// The type as written.
    pub ty: Vec<u8>,
    /// `offset_of!`.
    pub offset: usize,
    /// `size_of` of the type.
    pub size: usize,
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

unsafe extern "C" fn no_enter() {}

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
    // (`verify` below keeps every buffer until `verify` returns).
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

/// # Safety
/// `s` must be readable.
unsafe fn text(s: &StrRef) -> Vec<u8> {
    // SAFETY: forwarded from the caller.
    unsafe { s.as_str() }.as_bytes().to_vec()
}

/// # Safety
/// `v`'s name must be readable.
unsafe fn value(v: &ValueLayout) -> Value {
    Value {
        // SAFETY: forwarded from the caller.
        name: unsafe { text(&v.name) },
        size: v.size,
        align: v.align,
    }
}

/// The plain-data form of a descriptor.
///
/// # Safety
/// Every string and slice of `d` must be readable (a descriptor built by `#[hot_module]` in this
/// process is).
pub unsafe fn describe(d: &ModuleDescriptor) -> Description {
    // SAFETY: the caller's contract, for every `as_slice` below.
    unsafe {
        Description {
            magic: d.magic,
            abi_version: d.abi_version,
            module_path: text(&d.module_path),
            toolchain: text(&d.toolchain),
            functions: d
                .functions
                .as_slice()
                .iter()
                .map(|f| Function {
                    name: text(&f.name),
                    signature: text(&f.signature),
                    params: f.params.as_slice().iter().map(|v| value(v)).collect(),
                    ret: value(&f.ret),
                    kind: f.kind,
                    trampoline: DUMMIES
                        .iter()
                        .position(|t| *t as usize == f.trampoline as usize)
                        .unwrap_or(0),
                })
                .collect(),
            types: d
                .types
                .as_slice()
                .iter()
                .map(|t| Type {
                    name: text(&t.name),
                    size: t.size,
                    align: t.align,
                    fields: t
                        .fields
                        .as_slice()
                        .iter()
                        .map(|f| Field {
                            name: text(&f.name),
                            ty: text(&f.ty),
                            offset: f.offset,
                            size: f.size,
                        })
                        .collect(),
                    definition: t.definition.as_slice().iter().map(|p| text(p)).collect(),
                })
                .collect(),
        }
    }
}

/// Just the header, as a library whose descriptor is of another ABI version may hold: `verify`
/// must read nothing past it (under AddressSanitizer a read past it is reported).
#[repr(C, align(8))]
#[allow(dead_code)] // read by `verify` through a pointer
struct Header {
    magic: [u8; 8],
    abi_version: u32,
}

/// Runs the loader's `verify(host, lib)` on an in-memory descriptor built from `lib`. When the
/// magic or ABI version differ, `verify` gets only a header-sized allocation.
///
/// # Safety
/// As [`describe`] for `host`.
pub unsafe fn verify(host: &ModuleDescriptor, lib: &Description) -> Outcome {
    check_layouts();
    let result = if lib.magic != MAGIC || lib.abi_version != ABI_VERSION {
        let header = Box::new(Header {
            magic: lib.magic,
            abi_version: lib.abi_version,
        });
        let lib = (&*header as *const Header).cast::<ModuleDescriptor>();
        // SAFETY: `lib` points to a readable header, and the header does not match, so verify
        // must read nothing else; `host` is the caller's.
        unsafe { crate::verify::verify(host, lib) }
    } else {
        let params: Vec<Vec<ValueLayout>> = lib
            .functions
            .iter()
            .map(|f| f.params.iter().map(value_layout).collect())
            .collect();
        let functions: Vec<FnEntry> = lib
            .functions
            .iter()
            .zip(&params)
            .map(|(f, params)| FnEntry {
                name: str_ref(&f.name),
                signature: str_ref(&f.signature),
                params: slice_ref(params),
                ret: value_layout(&f.ret),
                kind: f.kind,
                trampoline: DUMMIES[f.trampoline % TRAMPOLINES],
            })
            .collect();
        let fields: Vec<Vec<FieldLayout>> = lib
            .types
            .iter()
            .map(|t| {
                t.fields
                    .iter()
                    .map(|f| FieldLayout {
                        name: str_ref(&f.name),
                        ty: str_ref(&f.ty),
                        offset: f.offset,
                        size: f.size,
                    })
                    .collect()
            })
            .collect();
        let definitions: Vec<Vec<StrRef>> = lib
            .types
            .iter()
            .map(|t| t.definition.iter().map(|piece| str_ref(piece)).collect())
            .collect();
        let types: Vec<TypeLayout> = lib
            .types
            .iter()
            .zip(fields.iter().zip(&definitions))
            .map(|(t, (fields, definition))| TypeLayout {
                name: str_ref(&t.name),
                size: t.size,
                align: t.align,
                fields: slice_ref(fields),
                definition: slice_ref(definition),
            })
            .collect();
        let descriptor = Box::new(ModuleDescriptor {
            magic: lib.magic,
            abi_version: lib.abi_version,
            module_path: str_ref(&lib.module_path),
            toolchain: str_ref(&lib.toolchain),
            functions: slice_ref(&functions),
            types: slice_ref(&types),
            on_load: None,
            enter: no_enter,
            states: SliceRef::new(&[]),
        });
        // SAFETY: a whole descriptor of this ABI version whose strings and slices point into
        // `lib` and the vectors above, all alive until `verify` returns; `host` is the caller's.
        unsafe { crate::verify::verify(host, &*descriptor) }
    };
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

fn value_layout(v: &Value) -> ValueLayout {
    ValueLayout {
        name: str_ref(&v.name),
        size: v.size,
        align: v.align,
    }
}
