//! Descriptor verification (`verify.rs`) against a fixed host descriptor.
//!
//! Both descriptors are plain data (`hotmod::__fuzz::Description`) that `__fuzz::verify` turns
//! into real in-memory descriptors whose strings and slices point into that data (no wild
//! pointers; a header-only allocation when the library's magic or ABI version differ, so a read
//! past the header is an AddressSanitizer report). A parameter's or result's description is an
//! index into `__fuzz::DESCRIBERS`, a fixed table of real describers: std's, and hand-written
//! structs, an enum, a recursive struct, a trait and an opaque type, with twins (equal
//! descriptions in other statics) and look-alikes (same path, other fields, discriminants,
//! method result or identity).
//!
//! The input is a list of edits applied to the host's own description (so most inputs are near
//! misses, the hard case): change a byte of the magic, the ABI version, any string (to bytes of
//! any kind, invalid UTF-8 included, or to another string of the host), the trampoline kind or
//! dummy, any parameter's or the result's description; add, remove, duplicate or swap functions
//! and parameters.
//!
//! Checked: `verify` never panics, and its answer is the one a model predicts from the table's
//! classes (entries of one class describe equal types, of different classes different ones):
//! accepted exactly when every function of the host is in the library with the same signature
//! text, kind, parameter count and classes (with the library's trampolines in the host's order);
//! otherwise the first refusal in the loader's order, and for an incompatibility: every removed
//! function, changed signature, kind or parameter count exactly; every slot (parameter or result)
//! whose descriptions differ reported once, either by its function (`FunctionChanged` naming that
//! slot) or by a struct, enum, trait or opaque type the host's description reaches
//! (`TypeChanged`, listed once for every function and slot that reaches it, so also when an
//! earlier function met the same pair of descriptions); the functions' own changes in the host's
//! order; nothing else.
#![no_main]

use std::sync::LazyLock;

use hotmod::__fuzz::{self, Description, Function, Outcome};
use hotmod::Incompatibility;
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;

/// `DESCRIBERS` indices the host uses, by name.
mod ty {
    pub const U32: usize = 0;
    pub const U64: usize = 2;
    pub const STRING: usize = 3;
    pub const VEC_U8: usize = 4;
    pub const STR: usize = 5;
    pub const OPTION_U32: usize = 6;
    pub const U32_STRING: usize = 7;
    pub const UNIT: usize = 8;
    pub const MUT_U64: usize = 9;
    pub const REPLY: usize = 11;
    pub const REPLY_TWIN: usize = 12;
    pub const OPTION_REPLY: usize = 15;
    pub const MODE: usize = 17;
    pub const NODE: usize = 19;
    pub const VEC_NODE: usize = 22;
    pub const BOX_SPEAKER: usize = 25;
    pub const ID: usize = 27;
}

fn function(name: &str, signature: &str, params: &[usize], ret: usize, kind: u32) -> Function {
    Function {
        name: name.as_bytes().to_vec(),
        signature: signature.as_bytes().to_vec(),
        params: params.to_vec(),
        ret,
        kind,
        trampoline: 0,
    }
}

/// The host: a hot module with the usual kinds of signature and boundary types.
static HOST: LazyLock<Description> = LazyLock::new(|| {
    use __fuzz::{CALL_MEMORY as MEMORY, CALL_REGISTERS as REGISTERS};
    use ty::*;
    let mut functions = vec![
        function("greet", "fn(&str) -> String", &[STR], STRING, MEMORY),
        function(
            "reply",
            "fn(&str, u32) -> Reply",
            &[STR, U32],
            REPLY,
            MEMORY,
        ),
        function("bump", "fn(&mut u64)", &[MUT_U64], UNIT, REGISTERS),
        function(
            "pair",
            "fn(Reply, Mode) -> Option<Reply>",
            &[REPLY_TWIN, MODE],
            OPTION_REPLY,
            MEMORY,
        ),
        function("tree", "fn(Node) -> Vec<Node>", &[NODE], VEC_NODE, MEMORY),
        function(
            "speak",
            "fn(Id, Box<dyn Speaker>) -> (u32, String)",
            &[ID, BOX_SPEAKER],
            U32_STRING,
            MEMORY,
        ),
        function(
            "sum",
            "fn(Vec<u8>, Option<u32>) -> u64",
            &[VEC_U8, OPTION_U32],
            U64,
            MEMORY,
        ),
        function("nothing", "fn()", &[], UNIT, REGISTERS),
    ];
    for (k, f) in functions.iter_mut().enumerate() {
        f.trampoline = k % __fuzz::TRAMPOLINES;
    }
    Description {
        magic: __fuzz::MAGIC,
        abi_version: __fuzz::ABI_VERSION,
        module_path: b"fuzz::host".to_vec(),
        toolchain: __fuzz::TOOLCHAIN.as_bytes().to_vec(),
        functions,
    }
});

/// Every string of the host descriptor, for edits that swap one for another.
static HOST_STRINGS: LazyLock<Vec<Vec<u8>>> = LazyLock::new(|| {
    let h = &*HOST;
    let mut all = vec![h.module_path.clone(), h.toolchain.clone()];
    for f in &h.functions {
        all.extend([f.name.clone(), f.signature.clone()]);
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

/// A change to one description (a parameter's or the result's).
#[derive(Arbitrary, Debug)]
enum Describe {
    /// Any entry of the table.
    Set(u8),
    /// Another entry of the same class (a twin), if there is one: must change nothing.
    Twin,
}

impl Describe {
    fn apply(&self, d: &mut usize) {
        match self {
            Describe::Set(i) => *d = usize::from(*i) % __fuzz::DESCRIBERS.len(),
            Describe::Twin => {
                let class = __fuzz::entry_at(*d).class;
                let twin = (1..__fuzz::DESCRIBERS.len())
                    .map(|k| (*d + k) % __fuzz::DESCRIBERS.len())
                    .find(|&k| __fuzz::DESCRIBERS[k].class == class);
                if let Some(twin) = twin {
                    *d = twin;
                }
            }
        }
    }
}

#[derive(Arbitrary, Debug)]
enum FnEdit {
    Name(Text),
    Signature(Text),
    Kind(u32),
    Ret(Describe),
    Param(u8, Describe),
    AddParam(u8, u8),
    RemoveParam(u8),
    SwapParams(u8, u8),
    Trampoline(u8),
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
            FnEdit::Kind(k) => f.kind = *k,
            FnEdit::Ret(e) => e.apply(&mut f.ret),
            FnEdit::Param(i, e) => {
                if let Some(p) = pick_mut(&mut f.params, *i) {
                    e.apply(p)
                }
            }
            FnEdit::AddParam(at, d) => insert(
                &mut f.params,
                *at,
                usize::from(*d) % __fuzz::DESCRIBERS.len(),
            ),
            FnEdit::RemoveParam(i) => remove(&mut f.params, *i),
            FnEdit::SwapParams(a, b) => swap(&mut f.params, *a, *b),
            FnEdit::Trampoline(t) => f.trampoline = usize::from(*t) % __fuzz::TRAMPOLINES,
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
        }
    }
}

/// How `StrRef::as_str` shows bytes: the text, or a fixed marker for invalid UTF-8 (so `verify`
/// compares strings as shown).
fn shown(bytes: &[u8]) -> String {
    std::str::from_utf8(bytes)
        .unwrap_or("<invalid utf-8>")
        .to_owned()
}

/// How `verify` names a trampoline kind.
fn kind_name(kind: u32) -> String {
    match kind {
        __fuzz::CALL_MEMORY => "memory".to_owned(),
        __fuzz::CALL_REGISTERS => "registers".to_owned(),
        other => format!("unknown ({other})"),
    }
}

/// One slot of a function whose descriptions differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Slot {
    /// 1-based, as `verify` numbers parameters.
    Parameter(usize),
    Result,
}

/// What the model expects of one host function that `verify` must refuse.
#[derive(Debug)]
enum Change {
    /// Exactly this `FunctionRemoved`.
    Removed { name: String, expected: String },
    /// Exactly this `FunctionChanged`: another signature text; or the same text and another
    /// kind, then both texts say the kind; or the same text and kind and another parameter
    /// count, then both texts say the count.
    Changed {
        name: String,
        expected: String,
        found: String,
    },
    /// Same text, kind and parameter count, other descriptions. Each slot of `slots` (in
    /// order) is reported once: by a `FunctionChanged` of this function naming it, or by a
    /// `TypeChanged` of one of the slot's named types (the structs, enums, traits and opaque
    /// types the host's description reaches), which `verify` lists once for all functions and
    /// slots that reach it (so it may come from an earlier one).
    Described {
        name: String,
        signature: String,
        slots: Vec<(Slot, Vec<&'static str>)>,
    },
}

#[derive(Debug)]
enum Expected {
    NotADescriptor,
    AbiVersion(u32),
    OtherModule(String),
    Toolchain { expected: String, found: String },
    Incompatible(Vec<Change>),
}

fn class(index: usize) -> usize {
    __fuzz::entry_at(index).class
}

/// The model: what `verify` must answer, from the documented order of checks and the classes.
fn model(host: &Description, lib: &Description) -> Result<Vec<usize>, Expected> {
    if lib.magic != __fuzz::MAGIC {
        return Err(Expected::NotADescriptor);
    }
    if lib.abi_version != __fuzz::ABI_VERSION {
        return Err(Expected::AbiVersion(lib.abi_version));
    }
    if shown(&lib.module_path) != shown(&host.module_path) {
        return Err(Expected::OtherModule(shown(&lib.module_path)));
    }
    if shown(&lib.toolchain) != shown(&host.toolchain) {
        return Err(Expected::Toolchain {
            expected: shown(&host.toolchain),
            found: shown(&lib.toolchain),
        });
    }
    let mut table = Vec::new();
    let mut changes = Vec::new();
    for want in &host.functions {
        let name = shown(&want.name);
        let signature = shown(&want.signature);
        let Some(have) = lib.functions.iter().find(|have| shown(&have.name) == name) else {
            changes.push(Change::Removed {
                name,
                expected: signature,
            });
            continue;
        };
        let found = shown(&have.signature);
        if found != signature {
            changes.push(Change::Changed {
                name,
                expected: signature,
                found,
            });
            continue;
        }
        if want.kind != have.kind {
            changes.push(Change::Changed {
                name,
                expected: format!("{signature} ({} trampoline)", kind_name(want.kind)),
                found: format!("{found} ({} trampoline)", kind_name(have.kind)),
            });
            continue;
        }
        if want.params.len() != have.params.len() {
            changes.push(Change::Changed {
                name,
                expected: format!("{signature} ({} parameters)", want.params.len()),
                found: format!("{found} ({} parameters)", have.params.len()),
            });
            continue;
        }
        let mut slots: Vec<(Slot, usize)> = want
            .params
            .iter()
            .zip(&have.params)
            .enumerate()
            .filter(|(_, (a, b))| class(**a) != class(**b))
            .map(|(k, (a, _))| (Slot::Parameter(k + 1), *a))
            .collect();
        if class(want.ret) != class(have.ret) {
            slots.push((Slot::Result, want.ret));
        }
        if slots.is_empty() {
            table.push(have.trampoline % __fuzz::TRAMPOLINES);
            continue;
        }
        changes.push(Change::Described {
            name,
            signature,
            slots: slots
                .into_iter()
                .map(|(slot, d)| (slot, __fuzz::named_types(d)))
                .collect(),
        });
    }
    if changes.is_empty() {
        Ok(table)
    } else {
        Err(Expected::Incompatible(changes))
    }
}

/// The slot a `FunctionChanged` about descriptions names: `<signature> (parameter K is <type>)`
/// or `<signature> (result is <type>)`.
fn slot_of(text: &str, signature: &str) -> Option<Slot> {
    let rest = text
        .strip_prefix(signature)?
        .strip_prefix(" (")?
        .strip_suffix(')')?;
    if rest
        .strip_prefix("result is ")
        .is_some_and(|t| !t.is_empty())
    {
        return Some(Slot::Result);
    }
    let rest = rest.strip_prefix("parameter ")?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    rest[digits.len()..]
        .strip_prefix(" is ")
        .filter(|t| !t.is_empty())?;
    digits.parse().ok().filter(|&k| k > 0).map(Slot::Parameter)
}

/// Checks `verify`'s list of incompatibilities against the model's expectations.
fn check_incompatible(want: &[Change], found: &[Incompatibility], lib: &Description) {
    let fail = |why: String| -> ! {
        panic!("{why}\nexpected: {want:#?}\nverify: {found:#?}\nlib: {lib:?}")
    };
    // A `FunctionChanged` that names a slot of a `Described` change, and which.
    let slot_named = |change: &Incompatibility| -> Option<(usize, Slot)> {
        let Incompatibility::FunctionChanged {
            name,
            expected,
            found,
        } = change
        else {
            return None;
        };
        want.iter().enumerate().find_map(|(at, w)| match w {
            Change::Described {
                name: n,
                signature,
                slots,
            } if n == name && expected != found => slot_of(expected, signature)
                .filter(|s| slot_of(found, signature) == Some(*s))
                .filter(|s| slots.iter().any(|(slot, _)| slot == s))
                .map(|s| (at, s)),
            _ => None,
        })
    };
    // Every change found is one the model allows, and the functions' own changes come in the
    // host's order (a function's slots in order), each once.
    let mut last: Option<(usize, Option<Slot>)> = None;
    for change in found {
        let at = match change {
            Incompatibility::FunctionRemoved { name, expected } => want
                .iter()
                .position(|w| {
                    matches!(w, Change::Removed { name: n, expected: e } if n == name && e == expected)
                })
                .map(|at| Some((at, None))),
            Incompatibility::FunctionChanged {
                name,
                expected,
                found,
            } => want
                .iter()
                .position(|w| {
                    matches!(w, Change::Changed { name: n, expected: e, found: f }
                        if n == name && e == expected && f == found)
                })
                .map(|at| (at, None))
                .or_else(|| slot_named(change).map(|(at, s)| (at, Some(s))))
                .map(Some),
            Incompatibility::TypeChanged {
                name,
                expected,
                found,
            } => (expected != found
                && want.iter().any(|w| match w {
                    Change::Described { slots, .. } => slots
                        .iter()
                        .any(|(_, types)| types.contains(&name.as_str())),
                    _ => false,
                }))
            .then_some(None),
            other => fail(format!("an incompatibility this target does not know: {other:?}")),
        };
        match at {
            None => fail(format!(
                "verify reported {change:?}, which the model does not expect"
            )),
            Some(Some(key)) => {
                if last.is_some_and(|last| last >= key) {
                    fail(format!("{change:?} is out of order or repeated"));
                }
                last = Some(key);
            }
            Some(None) => {
                if found.iter().filter(|c| *c == change).count() != 1 {
                    fail(format!("{change:?} is reported more than once"));
                }
            }
        }
    }
    // Every change the model expects is reported: removals and changed texts exactly once (the
    // order check above makes "at least once" "exactly once"), every differing slot by its
    // function or by a named type it reaches.
    for w in want {
        let reported = match w {
            Change::Removed { name, expected } => found.iter().any(|c| {
                matches!(c, Incompatibility::FunctionRemoved { name: n, expected: e }
                    if n == name && e == expected)
            }),
            Change::Changed {
                name,
                expected,
                found: f,
            } => found.iter().any(|c| {
                matches!(c, Incompatibility::FunctionChanged { name: n, expected: e, found: g }
                    if n == name && e == expected && g == f)
            }),
            Change::Described { name, slots, .. } => slots.iter().all(|(slot, types)| {
                found.iter().any(|c| match c {
                    Incompatibility::FunctionChanged { name: n, .. } => {
                        n == name && slot_named(c).is_some_and(|(_, s)| s == *slot)
                    }
                    Incompatibility::TypeChanged { name, .. } => types.contains(&name.as_str()),
                    _ => false,
                })
            }),
        };
        if !reported {
            fail(format!("{w:?} is not reported"));
        }
    }
}

fuzz_target!(|edits: Vec<Edit>| {
    let host = &*HOST;
    let mut lib = host.clone();
    for edit in &edits {
        edit.apply(&mut lib);
    }
    let outcome = __fuzz::verify(host, &lib);
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
            check_incompatible(&want, &found, &lib)
        }
        (expected, outcome) => {
            panic!("verify answered {outcome:?}, the model expects {expected:?}\nlib: {lib:?}")
        }
    }
});
