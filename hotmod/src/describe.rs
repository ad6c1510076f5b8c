//! What crosses a hot module's boundary, described by the compiler.
//!
//! Every parameter and return type of a hot function implements [`Describe`]: a constant
//! [`TypeDesc`] built from what the compiler knows (`size_of`, `align_of`, `offset_of!`, each
//! field's own `Describe`, each enum variant's discriminant as the compiler evaluated it, each
//! trait object's methods and supertraits), not from the text the macro read. A type alias, a
//! type in a submodule or in another crate, a constant in a discriminant: the description is of
//! the type the alias names. The loader compares the host's descriptions with the library's, all
//! the way down, before any other code of the library runs (`verify.rs`).
//!
//! Descriptions reach nested types through [`Describer`] function pointers rather than nested
//! constants, as abi_stable's `StableAbi` does: a constant that contains itself
//! (`struct Node { kids: Vec<Node> }`) is a cycle the compiler refuses (E0391). So reading a
//! library's descriptions runs code of that library: only these describer functions, each of
//! which returns a reference to a constant and does nothing else (docs/guarantees.md).
//!
//! [`Owned`] marks the types that cannot hold a pointer into the library: what a hot function
//! may return (outside [`Pinned`](crate::Pinned)) and what it may write through a `&mut`
//! parameter. `&'static T`, `Cow<'static, _>`, `dyn Trait`, fn pointers, raw pointers and
//! `io::Error` are not `Owned`, and neither is anything that contains one, through any alias.
//!
//! Both traits are `unsafe`: a wrong description or a wrong `Owned` lets a library whose types
//! differ be called, or a value outlive its library. `#[derive(hotmod::Describe)]` writes both
//! (the types of a hot module get it without asking); std's types have theirs here.

use std::any::TypeId;

/// Returns the description of one type. Calling one of a library's describers runs only that:
/// a function returning a reference to a constant.
pub type Describer = fn() -> &'static TypeDesc;

/// What kind of type a [`TypeDesc`] describes; decides how it is compared and printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
#[non_exhaustive]
pub enum Kind {
    /// A type compared by name, size and alignment (primitives, `String`), or by name and its
    /// type arguments (`Vec<T>`): std's types, whose private fields are the toolchain's, and the
    /// toolchain is compared first.
    Std,
    /// A struct: fields by name, offset and type.
    Struct,
    /// An enum: variants by name and discriminant, their fields by name and type.
    Enum,
    /// A trait object, `dyn Trait`: methods in vtable order, supertraits first.
    Trait,
    /// A type described only by size, alignment and identity ([`TypeDesc::identity`]): a type of
    /// another crate wrapped in a `#[hotmod(opaque)]` newtype.
    Opaque,
    /// `&T`.
    Ref,
    /// `&mut T`.
    RefMut,
    /// `*const T`.
    ConstPtr,
    /// `*mut T`.
    MutPtr,
    /// `[T]`.
    Slice,
    /// `[T; N]`.
    Array,
    /// `(A, B, …)`.
    Tuple,
    /// `fn(A, …) -> R`: arguments, then the result.
    FnPtr,
}

/// A type's description, as the compiler sees it.
#[repr(C)]
#[derive(Debug)]
pub struct TypeDesc {
    /// How to read the rest.
    pub kind: Kind,
    /// The type's path (`greeter::hello::Reply`, `alloc::string::String`, `u32`), its trait's path
    /// for a trait object; empty for built-in type constructors (`&T`, tuples, arrays).
    pub name: &'static str,
    /// `size_of`; 0 for unsized types (`str`, `[T]`, `dyn Trait`).
    pub size: usize,
    /// `align_of`; 0 for unsized types.
    pub align: usize,
    /// The `#[repr(..)]` of a struct or enum, as written (`C`, `u8`, `C, packed`).
    pub repr: &'static str,
    /// Type arguments, pointee or element; a trait object's supertraits; a fn pointer's
    /// parameters and result.
    pub args: &'static [Describer],
    /// A struct's fields in declaration order.
    pub fields: &'static [Field],
    /// An enum's variants in declaration order.
    pub variants: &'static [Variant],
    /// A trait's own methods in declaration order (its vtable order after the supertraits').
    pub methods: &'static [Method],
    /// An opaque type's identity: the `TypeId` of the foreign type, which changes with the
    /// crate's build (its features and profile go into the crate's `-C metadata`).
    pub identity: Option<fn() -> TypeId>,
}

/// One field of a struct or an enum variant.
#[repr(C)]
#[derive(Debug)]
pub struct Field {
    /// `name`, or `0`, `1` … for tuple fields.
    pub name: &'static str,
    /// `offset_of!`; [`Field::UNKNOWN_OFFSET`] for an enum variant's fields (std's
    /// `offset_of!` does not reach into enums; same toolchain, variants and field types give
    /// the same layout).
    pub offset: usize,
    /// The field's type.
    pub ty: Describer,
}

impl Field {
    /// The offset of a field of an enum variant.
    pub const UNKNOWN_OFFSET: usize = usize::MAX;
}

/// One variant of an enum.
#[repr(C)]
#[derive(Debug)]
pub struct Variant {
    /// The variant's name.
    pub name: &'static str,
    /// Its discriminant as the compiler evaluated it (explicit or implicit).
    pub discriminant: i128,
    /// Its fields.
    pub fields: &'static [Field],
}

/// One method of a trait (a trait object's vtable entry).
#[repr(C)]
#[derive(Debug)]
pub struct Method {
    /// The method's name.
    pub name: &'static str,
    /// Its receiver as written (`&self`, `&mut self`, `self: Box<Self>`).
    pub receiver: &'static str,
    /// Its parameters after the receiver.
    pub params: &'static [Describer],
    /// Its result (`()` for none).
    pub ret: Describer,
}

impl TypeDesc {
    /// A description with only a kind and a name; the rest empty, for `..` in constants.
    pub const fn new(kind: Kind, name: &'static str) -> TypeDesc {
        TypeDesc {
            kind,
            name,
            size: 0,
            align: 0,
            repr: "",
            args: &[],
            fields: &[],
            variants: &[],
            methods: &[],
            identity: None,
        }
    }

    /// The same with `T`'s size and alignment.
    pub const fn sized<T>(self) -> TypeDesc {
        TypeDesc {
            size: std::mem::size_of::<T>(),
            align: std::mem::align_of::<T>(),
            ..self
        }
    }

    /// The same with these type arguments.
    pub const fn with_args(self, args: &'static [Describer]) -> TypeDesc {
        TypeDesc { args, ..self }
    }
}

/// A type that describes its layout to hotmod: what every parameter and return type of a hot
/// function must be.
///
/// Derive it: `#[derive(hotmod::Describe)]` (the structs, enums and traits of a
/// `#[hotmod::hot_module]` that its signatures name get it without asking). A type of another
/// crate that does not derive it can cross inside a newtype of your own,
/// `#[derive(hotmod::Describe)] #[hotmod(opaque)] struct Id(uuid::Uuid);`, compared by size,
/// alignment and the `TypeId` of the wrapped type.
///
/// # Safety
/// [`DESC`](Describe::DESC) describes `Self` truthfully: kind, size and alignment, every field
/// with its true offset and type, every variant with its true discriminant, every method of a
/// trait object in vtable order. The loader calls a library only when its descriptions equal the
/// host's; a false one lets a library with other layouts be called.
#[diagnostic::on_unimplemented(
    message = "`{Self}` does not describe its layout to hotmod, so it cannot cross a hot module's boundary",
    label = "no `hotmod::Describe` for this type",
    note = "derive it where the type is defined: `#[derive(hotmod::Describe)]` (types defined in the `#[hotmod::hot_module]` and named in its signatures get it without asking); for a type of another crate, wrap it: `#[derive(hotmod::Describe)] #[hotmod(opaque)] struct MyId(other_crate::Id);`; if this is a hot method's receiver or parameter, `#[hotmod::not_hot]` on the method or its impl keeps it compiled into the host instead"
)]
pub unsafe trait Describe {
    /// The description the loader compares.
    const DESC: &'static TypeDesc;
}

/// The [`Describer`] of `T`.
pub fn describer<T: Describe + ?Sized>() -> &'static TypeDesc {
    T::DESC
}

/// A type whose values hold no pointer into a library: no reference, fn pointer, trait object,
/// raw pointer or `io::Error`, in any field, however deeply nested. What a hot function may
/// return (anything else goes inside [`Pinned`](crate::Pinned)) and what it may write through a
/// `&mut` parameter.
///
/// `#[derive(hotmod::Describe)]` implements it for a type without lifetime parameters, and
/// checks every field; a type with a lifetime parameter borrows, so it is not `Owned`.
///
/// # Safety
/// No value of the type, built by a library, may point into that library's code or static data
/// (a vtable, a function, a `'static` literal).
#[diagnostic::on_unimplemented(
    message = "`{Self}` can point into the hot module's library (a reference, `dyn Trait`, fn pointer, raw pointer, `Cow<'static, _>` or `io::Error`, maybe inside it), so it cannot leave a hot function",
    label = "may point into the library, which is unloaded after a reload while the value lives",
    note = "return an owned value instead (String for &'static str and Cow, Vec<u8>, a struct of owned fields, `Result<T, String>` for io::Result), or return the whole value as `hotmod::Pinned<…>` (Box/Arc/&'static of dyn Trait, str or [u8]) to keep its generation loaded while it lives; for a hot method, `#[hotmod::not_hot]` keeps it compiled into the host instead"
)]
pub unsafe trait Owned {}

/// `Std` types compared by name, size and alignment, all `Owned`.
macro_rules! std_leaf {
    ($($ty:ty),* $(,)?) => {$(
        // SAFETY: std types with no pointer into a library; the toolchain (and with it their
        // private layout) is compared before any description.
        unsafe impl Describe for $ty {
            const DESC: &'static TypeDesc = &TypeDesc::new(Kind::Std, stringify!($ty)).sized::<$ty>();
        }
        // SAFETY: owned data only (see above).
        unsafe impl Owned for $ty {}
    )*};
}

std_leaf!(
    (),
    bool,
    char,
    u8,
    u16,
    u32,
    u64,
    u128,
    usize,
    i8,
    i16,
    i32,
    i64,
    i128,
    isize,
    f32,
    f64,
    String,
    std::path::PathBuf,
    std::ffi::OsString,
    std::ffi::CString,
    std::time::Duration,
    std::time::Instant,
    std::time::SystemTime,
    std::num::NonZeroU8,
    std::num::NonZeroU16,
    std::num::NonZeroU32,
    std::num::NonZeroU64,
    std::num::NonZeroUsize,
    std::num::NonZeroI32,
    std::num::NonZeroI64,
    std::net::IpAddr,
    std::net::Ipv4Addr,
    std::net::Ipv6Addr,
    std::net::SocketAddr,
    std::sync::atomic::AtomicBool,
    std::sync::atomic::AtomicU32,
    std::sync::atomic::AtomicU64,
    std::sync::atomic::AtomicUsize,
    std::sync::atomic::AtomicI32,
    std::sync::atomic::AtomicI64,
    std::cmp::Ordering,
    std::sync::Barrier,
    std::sync::Condvar,
    std::sync::Once,
    std::fs::File,
    std::net::TcpStream,
    std::net::TcpListener,
    std::net::UdpSocket,
    std::thread::Thread,
    std::thread::ThreadId,
);

/// Unsized `Std` types: `str` (owned data behind whatever points to it).
// SAFETY: `str` is bytes; no pointers.
unsafe impl Describe for str {
    const DESC: &'static TypeDesc = &TypeDesc::new(Kind::Std, "str");
}
// SAFETY: bytes only.
unsafe impl Owned for str {}
// SAFETY: `std::ffi::CStr`/`OsStr`/`Path` are bytes; no pointers.
unsafe impl Describe for std::path::Path {
    const DESC: &'static TypeDesc = &TypeDesc::new(Kind::Std, "std::path::Path");
}
// SAFETY: bytes only.
unsafe impl Owned for std::path::Path {}
// SAFETY: as for `Path`.
unsafe impl Describe for std::ffi::OsStr {
    const DESC: &'static TypeDesc = &TypeDesc::new(Kind::Std, "std::ffi::OsStr");
}
// SAFETY: bytes only.
unsafe impl Owned for std::ffi::OsStr {}

/// Generic std types compared by name and type arguments; `Owned` when their arguments are.
macro_rules! std_generic {
    ($($name:literal $ty:ident<$($p:ident),+> $(where $($owned:ident),*)?;)*) => {$(
        // SAFETY: described by the type arguments (compared recursively); the toolchain, and
        // with it the container's own layout, is compared first.
        unsafe impl<$($p: Describe),+> Describe for $ty<$($p),+> {
            const DESC: &'static TypeDesc = &TypeDesc::new(Kind::Std, $name)
                .sized::<Self>()
                .with_args(&[$(describer::<$p> as Describer),+]);
        }
        // SAFETY: the container owns its elements; it is `Owned` when they are.
        unsafe impl<$($p: Owned),+> Owned for $ty<$($p),+> {}
    )*};
}

use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap, HashSet, LinkedList, VecDeque};
use std::rc::Rc;
use std::sync::Arc;

std_generic! {
    "alloc::vec::Vec" Vec<T>;
    "core::option::Option" Option<T>;
    "core::result::Result" Result<T, E>;
    "alloc::collections::VecDeque" VecDeque<T>;
    "alloc::collections::LinkedList" LinkedList<T>;
    "alloc::collections::BinaryHeap" BinaryHeap<T>;
    "alloc::collections::BTreeMap" BTreeMap<K, V>;
    "alloc::collections::BTreeSet" BTreeSet<T>;
    "std::collections::HashMap" HashMap<K, V>;
    "std::collections::HashSet" HashSet<T>;
    "core::num::Wrapping" Wrapping<T>;
    "core::cmp::Reverse" Reverse<T>;
    "std::sync::mpsc::Sender" Sender<T>;
    "std::sync::mpsc::SyncSender" SyncSender<T>;
    "std::sync::mpsc::Receiver" Receiver<T>;
    "std::thread::JoinHandle" JoinHandle<T>;
}

use std::sync::mpsc::{Receiver, Sender, SyncSender};
use std::thread::JoinHandle;

use std::cmp::Reverse;
use std::num::Wrapping;

/// Smart pointers: described by their pointee, which may be unsized (`Box<str>`,
/// `Box<dyn Trait>`); `Owned` when the pointee is.
macro_rules! std_pointer {
    ($($name:literal $ty:ident;)*) => {$(
        // SAFETY: described by the pointee (compared recursively); the pointer's own layout is
        // the toolchain's, compared first.
        unsafe impl<T: Describe + ?Sized> Describe for $ty<T> {
            const DESC: &'static TypeDesc = &TypeDesc::new(Kind::Std, $name)
                .sized::<Self>()
                .with_args(&[describer::<T> as Describer]);
        }
        // SAFETY: owns its pointee; `Owned` when the pointee is (`Box<dyn Trait>` is not).
        unsafe impl<T: Owned + ?Sized> Owned for $ty<T> {}
    )*};
}

std_pointer! {
    "alloc::boxed::Box" Box;
    "alloc::sync::Arc" Arc;
    "alloc::rc::Rc" Rc;
}

/// Interior mutability: something a `&` parameter could be written through, so only of `Owned`
/// contents (else a library could store its own pointer into host memory behind a `&`).
macro_rules! std_cell {
    ($($name:literal $ty:ident;)*) => {$(
        // SAFETY: described by the contents (compared recursively); only `Owned` contents, so
        // nothing written into it can point into a library.
        unsafe impl<T: Describe + Owned> Describe for $ty<T> {
            const DESC: &'static TypeDesc = &TypeDesc::new(Kind::Std, $name)
                .sized::<Self>()
                .with_args(&[describer::<T> as Describer]);
        }
        // SAFETY: owns its contents, which are `Owned`.
        unsafe impl<T: Owned> Owned for $ty<T> {}
    )*};
}

use std::cell::{Cell, OnceCell, RefCell, UnsafeCell};
use std::sync::{Mutex, OnceLock, RwLock};

std_cell! {
    "core::cell::Cell" Cell;
    "core::cell::RefCell" RefCell;
    "core::cell::UnsafeCell" UnsafeCell;
    "std::sync::Mutex" Mutex;
    "std::sync::RwLock" RwLock;
    "std::sync::OnceLock" OnceLock;
    "core::cell::OnceCell" OnceCell;
}

// SAFETY: `PhantomData` holds nothing; described by its argument so that a change of it shows.
unsafe impl<T: Describe + ?Sized> Describe for std::marker::PhantomData<T> {
    const DESC: &'static TypeDesc = &TypeDesc::new(Kind::Std, "core::marker::PhantomData")
        .sized::<Self>()
        .with_args(&[describer::<T> as Describer]);
}
// SAFETY: zero-sized, holds no value.
unsafe impl<T: ?Sized> Owned for std::marker::PhantomData<T> {}

// SAFETY: a shared reference, described by its pointee. Never `Owned`: a library's `&'static`
// points into its static data.
unsafe impl<T: Describe + ?Sized> Describe for &T {
    const DESC: &'static TypeDesc = &TypeDesc::new(Kind::Ref, "")
        .sized::<Self>()
        .with_args(&[describer::<T> as Describer]);
}
// SAFETY: a `&mut` can be written through: only to `Owned` pointees, so a library cannot store
// its own pointer into the host's memory through a parameter. Never `Owned` itself.
unsafe impl<T: Describe + Owned + ?Sized> Describe for &mut T {
    const DESC: &'static TypeDesc = &TypeDesc::new(Kind::RefMut, "")
        .sized::<Self>()
        .with_args(&[describer::<T> as Describer]);
}
// SAFETY: described by the pointee. Never `Owned`: it may point anywhere.
unsafe impl<T: Describe + ?Sized> Describe for *const T {
    const DESC: &'static TypeDesc = &TypeDesc::new(Kind::ConstPtr, "")
        .sized::<Self>()
        .with_args(&[describer::<T> as Describer]);
}
// SAFETY: as for `*const T`.
unsafe impl<T: Describe + ?Sized> Describe for *mut T {
    const DESC: &'static TypeDesc = &TypeDesc::new(Kind::MutPtr, "")
        .sized::<Self>()
        .with_args(&[describer::<T> as Describer]);
}
// SAFETY: described by the element.
unsafe impl<T: Describe> Describe for [T] {
    const DESC: &'static TypeDesc =
        &TypeDesc::new(Kind::Slice, "").with_args(&[describer::<T> as Describer]);
}
// SAFETY: the elements are the slice's own.
unsafe impl<T: Owned> Owned for [T] {}
// SAFETY: described by the element; the length follows from the size.
unsafe impl<T: Describe, const N: usize> Describe for [T; N] {
    const DESC: &'static TypeDesc = &TypeDesc::new(Kind::Array, "")
        .sized::<Self>()
        .with_args(&[describer::<T> as Describer]);
}
// SAFETY: the elements are the array's own.
unsafe impl<T: Owned, const N: usize> Owned for [T; N] {}

// SAFETY: a `Cow` may borrow (`Cow<'static, str>` from a library literal), so it is never
// `Owned`; its layout is described by its argument.
unsafe impl<B: Describe + ToOwned + ?Sized> Describe for std::borrow::Cow<'_, B>
where
    B::Owned: Describe,
{
    const DESC: &'static TypeDesc = &TypeDesc::new(Kind::Std, "alloc::borrow::Cow")
        .sized::<Self>()
        .with_args(&[describer::<B> as Describer]);
}

// SAFETY: described by name and size under the toolchain's identity. Never `Owned`: a custom
// error's payload has its vtable in the library that made it, and a `const_error!` message is
// a `&'static` into it.
unsafe impl Describe for std::io::Error {
    const DESC: &'static TypeDesc =
        &TypeDesc::new(Kind::Std, "std::io::Error").sized::<std::io::Error>();
}
// SAFETY: a fieldless enum of std's; no pointers.
unsafe impl Describe for std::io::ErrorKind {
    const DESC: &'static TypeDesc =
        &TypeDesc::new(Kind::Std, "std::io::ErrorKind").sized::<std::io::ErrorKind>();
}
// SAFETY: a fieldless enum.
unsafe impl Owned for std::io::ErrorKind {}

/// Tuples: described by their elements; `Owned` when all are.
macro_rules! tuple {
    ($($p:ident)+) => {
        // SAFETY: described by the elements (compared recursively) and the tuple's own size.
        unsafe impl<$($p: Describe),+> Describe for ($($p,)+) {
            const DESC: &'static TypeDesc = &TypeDesc::new(Kind::Tuple, "")
                .sized::<Self>()
                .with_args(&[$(describer::<$p> as Describer),+]);
        }
        // SAFETY: the elements are the tuple's own.
        unsafe impl<$($p: Owned),+> Owned for ($($p,)+) {}
    };
}

tuple!(A);
tuple!(A B);
tuple!(A B C);
tuple!(A B C D);
tuple!(A B C D E);
tuple!(A B C D E F);
tuple!(A B C D E F G);
tuple!(A B C D E F G H);

/// Fn pointers (never `Owned`: a library's function is in its code).
macro_rules! fn_pointer {
    ($($p:ident)*) => {
        // SAFETY: described by parameters and result; a fn pointer is one word.
        unsafe impl<$($p: Describe,)* R: Describe> Describe for fn($($p),*) -> R {
            const DESC: &'static TypeDesc = &TypeDesc::new(Kind::FnPtr, "fn")
                .sized::<Self>()
                .with_args(&[$(describer::<$p> as Describer,)* describer::<R> as Describer]);
        }
        // SAFETY: as above, for the C calling convention.
        unsafe impl<$($p: Describe,)* R: Describe> Describe for extern "C" fn($($p),*) -> R {
            const DESC: &'static TypeDesc = &TypeDesc::new(Kind::FnPtr, "extern \"C\" fn")
                .sized::<Self>()
                .with_args(&[$(describer::<$p> as Describer,)* describer::<R> as Describer]);
        }
    };
}

fn_pointer!();
fn_pointer!(A);
fn_pointer!(A B);
fn_pointer!(A B C);
fn_pointer!(A B C D);

/// Trait objects of std's traits, alone and with `+ Send`, `+ Send + Sync`: compared by name
/// (their vtables are the toolchain's). Never `Owned`: the vtable is in the library that made
/// the object.
macro_rules! std_dyn {
    ($($name:literal $trait:path;)*) => {$(
        std_dyn!(@one $name, dyn $trait);
        std_dyn!(@one concat!($name, " + Send"), dyn $trait + Send);
        std_dyn!(@one concat!($name, " + Send + Sync"), dyn $trait + Send + Sync);
    )*};
    (@one $name:expr, $($object:tt)+) => {
        // SAFETY: std's trait, compared by name under the toolchain's identity.
        unsafe impl Describe for $($object)+ {
            const DESC: &'static TypeDesc = &TypeDesc::new(Kind::Trait, $name);
        }
    };
}

std_dyn! {
    "core::any::Any" std::any::Any;
    "core::error::Error" std::error::Error;
    "core::fmt::Debug" std::fmt::Debug;
    "core::fmt::Display" std::fmt::Display;
}

/// `dyn Fn(A, …) -> R` and its `FnMut`/`FnOnce` and `+ Send`/`+ Send + Sync` forms.
macro_rules! closure {
    ($($p:ident)*) => {
        closure!(@one "Fn", [$($p)*], dyn Fn($($p),*) -> R);
        closure!(@one "Fn + Send", [$($p)*], dyn Fn($($p),*) -> R + Send);
        closure!(@one "Fn + Send + Sync", [$($p)*], dyn Fn($($p),*) -> R + Send + Sync);
        closure!(@one "FnMut", [$($p)*], dyn FnMut($($p),*) -> R);
        closure!(@one "FnMut + Send", [$($p)*], dyn FnMut($($p),*) -> R + Send);
        closure!(@one "FnMut + Send + Sync", [$($p)*], dyn FnMut($($p),*) -> R + Send + Sync);
        closure!(@one "FnOnce", [$($p)*], dyn FnOnce($($p),*) -> R);
        closure!(@one "FnOnce + Send", [$($p)*], dyn FnOnce($($p),*) -> R + Send);
        closure!(@one "FnOnce + Send + Sync", [$($p)*], dyn FnOnce($($p),*) -> R + Send + Sync);
    };
    (@one $name:literal, [$($p:ident)*], $($object:tt)+) => {
        // SAFETY: std's closure traits, compared by name, parameters and result.
        unsafe impl<$($p: Describe,)* R: Describe> Describe for $($object)+ {
            const DESC: &'static TypeDesc = &TypeDesc::new(Kind::Trait, $name)
                .with_args(&[$(describer::<$p> as Describer,)* describer::<R> as Describer]);
        }
    };
}

closure!();
closure!(A);
closure!(A B);
closure!(A B C);

/// What `#[hot_module]` calls to require `T: Owned` where a type leaves a hot function (the
/// compiler's error then points at the type as written).
#[doc(hidden)]
pub fn __assert_owned<T: Owned + ?Sized>() {}

/// What `#[hot_module]` calls to require `T: Describe` of every parameter and result, in both
/// builds.
#[doc(hidden)]
pub fn __assert_described<T: Describe + ?Sized>() {}
