//! Descriptor verification (`verify.rs`) against a fixed host descriptor, the one
//! `#[hot_module]` emits for the module `host` below.
//!
//! The input is a list of edits applied to the host's own description (so most inputs are near
//! misses, the hard case): change a byte of the magic, the ABI version, any string (to bytes of
//! any kind, invalid UTF-8 included, or to another string of the host), any size, alignment or
//! offset; add, remove, duplicate or swap functions, parameters, types, fields and definition
//! pieces. `hotmod::__fuzz::verify` turns the result into a real in-memory descriptor whose
//! strings and slices point into the edited data (no wild pointers; a header-only allocation
//! when the magic or ABI version differ, so a read past the header is an AddressSanitizer
//! report) and runs the loader's `verify` on it.
//!
//! Checked: `verify` never panics, and its answer is the one a structural model gives: accepted
//! exactly when everything the host relies on is unchanged (with the library's trampolines in
//! the host's order), otherwise the first refusal in the loader's order, and for an
//! incompatibility the exact list of changed and removed functions and types.
#![no_main]

use std::sync::LazyLock;

use hotmod::__fuzz::{self, Description, Field, Function, Outcome, Type, Value};
use hotmod::Incompatibility;
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;

/// The host: a hot module with the usual kinds of signature and module types.
#[hotmod::hot_module]
pub mod host {
    /// A struct with named fields.
    pub struct Reply {
        pub text: String,
        pub count: u32,
    }

    /// A tuple struct.
    pub struct Pair(pub u8, pub u64);

    /// An enum (no field layouts: compared by definition, size and alignment).
    pub enum Mode {
        Fast,
        Slow(u16),
    }

    pub fn greet(name: &str) -> String {
        format!("hello {name}")
    }

    pub fn reply(to: &str, times: u32) -> Reply {
        Reply {
            text: to.repeat(times as usize),
            count: times,
        }
    }

    pub fn bump(counter: &mut u64) {
        *counter += 1
    }

    pub fn pair(p: Pair, mode: Mode) -> Option<Pair> {
        match mode {
            Mode::Fast => Some(p),
            Mode::Slow(_) => None,
        }
    }

    pub fn sum(values: Vec<u32>, extra: [u16; 3]) -> u64 {
        values.iter().map(|v| u64::from(*v)).sum::<u64>() + u64::from(extra[0])
    }

    pub fn nothing() {}
}

static HOST: LazyLock<Description> = LazyLock::new(|| {
    // SAFETY: a descriptor `#[hot_module]` built in this binary: every string and slice is a
    // static of it.
    let host = unsafe { __fuzz::describe(&host::__HOTMOD_DESCRIPTOR) };
    assert_eq!((host.functions.len(), host.types.len()), (6, 3));
    host
});

/// Every string of the host descriptor, for edits that swap one for another.
static HOST_STRINGS: LazyLock<Vec<Vec<u8>>> = LazyLock::new(|| {
    let h = &*HOST;
    let mut all = vec![h.module_path.clone(), h.toolchain.clone()];
    for f in &h.functions {
        all.extend([f.name.clone(), f.signature.clone(), f.ret.name.clone()]);
        all.extend(f.params.iter().map(|p| p.name.clone()));
    }
    for t in &h.types {
        all.push(t.name.clone());
        all.extend(t.fields.iter().flat_map(|f| [f.name.clone(), f.ty.clone()]));
        all.extend(t.definition.iter().cloned());
    }
    all
});

#[derive(Arbitrary, Debug)]
enum Text {
    Replace(Vec<u8>),
    Host(u8),
    Truncate(u8),
    Push(u8),
    SetByte(u8, u8),
}

impl Text {
    fn apply(&self, s: &mut Vec<u8>) {
        match self {
            Text::Replace(bytes) => *s = bytes.clone(),
            Text::Host(i) => *s = pick(&HOST_STRINGS, *i).cloned().unwrap_or_default(),
            Text::Truncate(n) => s.truncate(*n as usize),
            Text::Push(b) => s.push(*b),
            Text::SetByte(i, b) => {
                if let Some(at) = index(s.len(), *i) {
                    s[at] = *b;
                }
            }
        }
    }
}

#[derive(Arbitrary, Debug)]
enum Num {
    Set(usize),
    Add(u8),
    Sub(u8),
    Flip(u8),
}

impl Num {
    fn apply(&self, n: &mut usize) {
        match self {
            Num::Set(v) => *n = *v,
            Num::Add(d) => *n = n.wrapping_add(usize::from(*d)),
            Num::Sub(d) => *n = n.wrapping_sub(usize::from(*d)),
            Num::Flip(bit) => *n ^= 1usize.rotate_left(u32::from(*bit)),
        }
    }
}

#[derive(Arbitrary, Debug)]
struct NewValue {
    name: Vec<u8>,
    size: usize,
    align: usize,
}

impl NewValue {
    fn value(&self) -> Value {
        Value {
            name: self.name.clone(),
            size: self.size,
            align: self.align,
        }
    }
}

#[derive(Arbitrary, Debug)]
enum ValueEdit {
    Name(Text),
    Size(Num),
    Align(Num),
}

impl ValueEdit {
    fn apply(&self, v: &mut Value) {
        match self {
            ValueEdit::Name(t) => t.apply(&mut v.name),
            ValueEdit::Size(n) => n.apply(&mut v.size),
            ValueEdit::Align(n) => n.apply(&mut v.align),
        }
    }
}

#[derive(Arbitrary, Debug)]
enum FnEdit {
    Name(Text),
    Signature(Text),
    Ret(ValueEdit),
    Param(u8, ValueEdit),
    AddParam(u8, NewValue),
    RemoveParam(u8),
    SwapParams(u8, u8),
    Trampoline(u8),
}

#[derive(Arbitrary, Debug)]
enum FieldEdit {
    Name(Text),
    Ty(Text),
    Offset(Num),
    Size(Num),
}

#[derive(Arbitrary, Debug)]
enum TypeEdit {
    Name(Text),
    Size(Num),
    Align(Num),
    Field(u8, FieldEdit),
    AddField(u8, Vec<u8>, Vec<u8>, usize, usize),
    RemoveField(u8),
    SwapFields(u8, u8),
    Piece(u8, Text),
    /// Splits a definition piece in two: the joined text stays the same.
    SplitPiece(u8, u16),
    /// Joins a piece with the next one: the joined text stays the same.
    JoinPieces(u8),
    AddPiece(u8, Vec<u8>),
    RemovePiece(u8),
}

#[derive(Arbitrary, Debug)]
enum Edit {
    Magic(u8, u8),
    AbiVersion(u32),
    ModulePath(Text),
    Toolchain(Text),
    Function(u8, FnEdit),
    /// A copy of one of the host's functions, renamed or not, at a position.
    AddFunction(u8, u8, Option<Text>),
    RemoveFunction(u8),
    SwapFunctions(u8, u8),
    Type(u8, TypeEdit),
    /// A copy of one of the host's types, renamed or not, at a position.
    AddType(u8, u8, Option<Text>),
    RemoveType(u8),
    SwapTypes(u8, u8),
}

/// `i` as an index into `len` items, `None` for none.
fn index(len: usize, i: u8) -> Option<usize> {
    (len > 0).then(|| usize::from(i) % len)
}

fn pick<T>(items: &[T], i: u8) -> Option<&T> {
    index(items.len(), i).map(|at| &items[at])
}

fn pick_mut<T>(items: &mut [T], i: u8) -> Option<&mut T> {
    index(items.len(), i).map(|at| &mut items[at])
}

fn insert<T>(items: &mut Vec<T>, at: u8, item: T) {
    let at = usize::from(at) % (items.len() + 1);
    items.insert(at, item);
}

fn remove<T>(items: &mut Vec<T>, i: u8) {
    if let Some(at) = index(items.len(), i) {
        items.remove(at);
    }
}

fn swap<T>(items: &mut [T], a: u8, b: u8) {
    if let (Some(a), Some(b)) = (index(items.len(), a), index(items.len(), b)) {
        items.swap(a, b);
    }
}

impl FnEdit {
    fn apply(&self, f: &mut Function) {
        match self {
            FnEdit::Name(t) => t.apply(&mut f.name),
            FnEdit::Signature(t) => t.apply(&mut f.signature),
            FnEdit::Ret(e) => e.apply(&mut f.ret),
            FnEdit::Param(i, e) => {
                if let Some(p) = pick_mut(&mut f.params, *i) {
                    e.apply(p)
                }
            }
            FnEdit::AddParam(at, v) => insert(&mut f.params, *at, v.value()),
            FnEdit::RemoveParam(i) => remove(&mut f.params, *i),
            FnEdit::SwapParams(a, b) => swap(&mut f.params, *a, *b),
            FnEdit::Trampoline(t) => f.trampoline = usize::from(*t) % __fuzz::TRAMPOLINES,
        }
    }
}

impl TypeEdit {
    fn apply(&self, t: &mut Type) {
        match self {
            TypeEdit::Name(e) => e.apply(&mut t.name),
            TypeEdit::Size(n) => n.apply(&mut t.size),
            TypeEdit::Align(n) => n.apply(&mut t.align),
            TypeEdit::Field(i, e) => {
                if let Some(f) = pick_mut(&mut t.fields, *i) {
                    match e {
                        FieldEdit::Name(x) => x.apply(&mut f.name),
                        FieldEdit::Ty(x) => x.apply(&mut f.ty),
                        FieldEdit::Offset(n) => n.apply(&mut f.offset),
                        FieldEdit::Size(n) => n.apply(&mut f.size),
                    }
                }
            }
            TypeEdit::AddField(at, name, ty, offset, size) => insert(
                &mut t.fields,
                *at,
                Field {
                    name: name.clone(),
                    ty: ty.clone(),
                    offset: *offset,
                    size: *size,
                },
            ),
            TypeEdit::RemoveField(i) => remove(&mut t.fields, *i),
            TypeEdit::SwapFields(a, b) => swap(&mut t.fields, *a, *b),
            TypeEdit::Piece(i, e) => {
                if let Some(p) = pick_mut(&mut t.definition, *i) {
                    e.apply(p)
                }
            }
            TypeEdit::SplitPiece(i, at) => {
                if let Some(i) = index(t.definition.len(), *i) {
                    let piece = &mut t.definition[i];
                    let tail = piece.split_off(usize::from(*at) % (piece.len() + 1));
                    t.definition.insert(i + 1, tail);
                }
            }
            TypeEdit::JoinPieces(i) => {
                if let Some(i) = index(t.definition.len().saturating_sub(1), *i) {
                    let next = t.definition.remove(i + 1);
                    t.definition[i].extend(next);
                }
            }
            TypeEdit::AddPiece(at, piece) => insert(&mut t.definition, *at, piece.clone()),
            TypeEdit::RemovePiece(i) => remove(&mut t.definition, *i),
        }
    }
}

impl Edit {
    fn apply(&self, d: &mut Description) {
        match self {
            Edit::Magic(i, b) => d.magic[usize::from(*i) % 8] = *b,
            Edit::AbiVersion(v) => d.abi_version = *v,
            Edit::ModulePath(t) => t.apply(&mut d.module_path),
            Edit::Toolchain(t) => t.apply(&mut d.toolchain),
            Edit::Function(i, e) => {
                if let Some(f) = pick_mut(&mut d.functions, *i) {
                    e.apply(f)
                }
            }
            Edit::AddFunction(from, at, rename) => {
                if let Some(f) = pick(&HOST.functions, *from) {
                    let mut f = f.clone();
                    if let Some(t) = rename {
                        t.apply(&mut f.name);
                    }
                    insert(&mut d.functions, *at, f);
                }
            }
            Edit::RemoveFunction(i) => remove(&mut d.functions, *i),
            Edit::SwapFunctions(a, b) => swap(&mut d.functions, *a, *b),
            Edit::Type(i, e) => {
                if let Some(t) = pick_mut(&mut d.types, *i) {
                    e.apply(t)
                }
            }
            Edit::AddType(from, at, rename) => {
                if let Some(t) = pick(&HOST.types, *from) {
                    let mut t = t.clone();
                    if let Some(e) = rename {
                        e.apply(&mut t.name);
                    }
                    insert(&mut d.types, *at, t);
                }
            }
            Edit::RemoveType(i) => remove(&mut d.types, *i),
            Edit::SwapTypes(a, b) => swap(&mut d.types, *a, *b),
        }
    }
}

/// How `StrRef::as_str` shows bytes: the text, or a fixed marker for invalid UTF-8.
fn shown(bytes: &[u8]) -> String {
    std::str::from_utf8(bytes)
        .unwrap_or("<invalid utf-8>")
        .to_owned()
}

/// What the model expects of one change: its kind and name, and the texts where they are plain
/// (a changed signature, a changed definition).
#[derive(Debug, PartialEq, Eq)]
enum Change {
    FunctionRemoved {
        name: String,
        expected: String,
    },
    FunctionSignature {
        name: String,
        expected: String,
        found: String,
    },
    FunctionLayouts {
        name: String,
    },
    TypeRemoved {
        name: String,
    },
    TypeDefinition {
        name: String,
        expected: String,
        found: String,
    },
    TypeLayout {
        name: String,
    },
}

fn same_value(a: &Value, b: &Value) -> bool {
    a.size == b.size && a.align == b.align
}

/// The structural model: every field `verify` is documented to compare, compared as data.
fn model(host: &Description, lib: &Description) -> Result<Vec<usize>, Expected> {
    if lib.magic != host.magic {
        return Err(Expected::NotADescriptor);
    }
    if lib.abi_version != host.abi_version {
        return Err(Expected::AbiVersion(lib.abi_version));
    }
    if lib.module_path != host.module_path {
        return Err(Expected::OtherModule(shown(&lib.module_path)));
    }
    if lib.toolchain != host.toolchain {
        return Err(Expected::Toolchain {
            expected: shown(&host.toolchain),
            found: shown(&lib.toolchain),
        });
    }
    let mut table = Vec::new();
    let mut changes = Vec::new();
    for want in &host.functions {
        let name = shown(&want.name);
        match lib.functions.iter().find(|have| have.name == want.name) {
            None => changes.push(Change::FunctionRemoved {
                name,
                expected: shown(&want.signature),
            }),
            Some(have) if have.signature != want.signature => {
                changes.push(Change::FunctionSignature {
                    name,
                    expected: shown(&want.signature),
                    found: shown(&have.signature),
                })
            }
            Some(have)
                if want.kind != have.kind
                    || !same_value(&want.ret, &have.ret)
                    || want.params.len() != have.params.len()
                    || !want
                        .params
                        .iter()
                        .zip(&have.params)
                        .all(|(a, b)| same_value(a, b)) =>
            {
                changes.push(Change::FunctionLayouts { name })
            }
            Some(have) => table.push(have.trampoline % __fuzz::TRAMPOLINES),
        }
    }
    for want in &host.types {
        let name = shown(&want.name);
        match lib.types.iter().find(|have| have.name == want.name) {
            None => changes.push(Change::TypeRemoved { name }),
            Some(have) => {
                let (want_def, have_def) = (definition(want), definition(have));
                if want_def != have_def {
                    changes.push(Change::TypeDefinition {
                        name,
                        expected: format!("`{want_def}`"),
                        found: format!("`{have_def}`"),
                    });
                } else if !same_layout(want, have) {
                    changes.push(Change::TypeLayout { name });
                }
            }
        }
    }
    if changes.is_empty() {
        Ok(table)
    } else {
        Err(Expected::Incompatible(changes))
    }
}

fn same_layout(a: &Type, b: &Type) -> bool {
    a.size == b.size && a.align == b.align && a.fields == b.fields
}

/// A definition's pieces joined, as `verify` compares them (the pieces are `#[cfg]`-dependent
/// parts of one text; how the text is cut does not matter).
fn definition(t: &Type) -> String {
    t.definition.iter().map(|p| shown(p)).collect()
}

#[derive(Debug)]
enum Expected {
    NotADescriptor,
    AbiVersion(u32),
    OtherModule(String),
    Toolchain { expected: String, found: String },
    Incompatible(Vec<Change>),
}

/// The change `verify` reported, in the model's terms.
fn change_of(found: &Incompatibility) -> Change {
    match found {
        Incompatibility::FunctionRemoved { name, expected } => Change::FunctionRemoved {
            name: name.clone(),
            expected: expected.clone(),
        },
        Incompatibility::FunctionChanged {
            name,
            expected,
            found,
        } => {
            let host = HOST
                .functions
                .iter()
                .find(|f| shown(&f.name) == *name)
                .expect("a change of a function the host has");
            if *expected == shown(&host.signature) {
                Change::FunctionSignature {
                    name: name.clone(),
                    expected: expected.clone(),
                    found: found.clone(),
                }
            } else {
                // Same text, other layouts: both sides are described with their layouts.
                assert!(
                    expected.starts_with(&shown(&host.signature)) && expected != found,
                    "{found:?}"
                );
                Change::FunctionLayouts { name: name.clone() }
            }
        }
        Incompatibility::TypeRemoved { name } => Change::TypeRemoved { name: name.clone() },
        Incompatibility::TypeChanged {
            name,
            expected,
            found,
        } => {
            assert_ne!(expected, found);
            if expected.starts_with('`') {
                Change::TypeDefinition {
                    name: name.clone(),
                    expected: expected.clone(),
                    found: found.clone(),
                }
            } else {
                Change::TypeLayout { name: name.clone() }
            }
        }
        other => panic!("an incompatibility this target does not know: {other:?}"),
    }
}

fuzz_target!(|edits: Vec<Edit>| {
    let host = &*HOST;
    let mut lib = host.clone();
    for edit in &edits {
        edit.apply(&mut lib);
    }
    // SAFETY: the host descriptor is a static of this binary (see `HOST`).
    let outcome = unsafe { __fuzz::verify(&host::__HOTMOD_DESCRIPTOR, &lib) };
    match (model(host, &lib), outcome) {
        (Ok(table), Outcome::Accepted(found)) => assert_eq!(table, found),
        (Err(Expected::NotADescriptor), Outcome::NotADescriptor) => {}
        (Err(Expected::AbiVersion(a)), Outcome::AbiVersion(b)) => assert_eq!(a, b),
        (Err(Expected::OtherModule(a)), Outcome::OtherModule(b)) => assert_eq!(a, b),
        (
            Err(Expected::Toolchain { expected, found }),
            Outcome::Toolchain {
                expected: e,
                found: f,
            },
        ) => assert_eq!((expected, found), (e, f)),
        (Err(Expected::Incompatible(want)), Outcome::Incompatible(found)) => {
            let found: Vec<Change> = found.iter().map(change_of).collect();
            assert_eq!(want, found);
        }
        (expected, outcome) => {
            panic!("verify answered {outcome:?}, the model expects {expected:?}\nlib: {lib:?}")
        }
    }
});
