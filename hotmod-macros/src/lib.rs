//! The `#[hot_module]`, `#[on_load]` and `#[state]` attributes of the `hotmod` crate. Use them
//! through `hotmod` (`#[hotmod::hot_module]`), which re-exports them: everything they generate
//! calls hotmod's runtime, and hotmod's `reload` feature decides which form they generate.

// `#[hot_module]` runs in three passes, each in files of its own: `parse` borrows the input into
// an `ast::HotModule` that keeps every item in source order, `validate` checks every rule and
// collects every mistake in a `ctxt::Ctxt`, and only a module without mistakes reaches `expand`
// (or `expand_static`), which generate code and check nothing.

mod ast;
mod boundary;
mod ctxt;
mod describe;
mod expand;
mod expand_static;
mod kept;
mod methods;
mod parse;
mod text;
mod validate;

use proc_macro::TokenStream;

/// Makes an inline module reloadable: `#[hotmod::hot_module] pub mod name { … }`.
///
/// ```text
/// #[hotmod::hot_module]
/// pub mod hello {
///     pub fn greet(name: &str) -> String {
///         format!("hello {name}")
///     }
/// }
/// ```
///
/// The module's crate is built as both `rlib` (linked into the host: *generation 0*, the code
/// compiled into the binary) and `cdylib` (the file loaded as generation 1, 2, 3 … while the
/// host runs):
///
/// ```text
/// [lib]
/// crate-type = ["rlib", "cdylib"]
/// ```
///
/// # What it generates
///
/// Inside the module:
///
/// - every `pub fn` (*hot function*) keeps its name and signature; a call runs the generation
///   that is current when the call starts, and that generation stays loaded until it returns.
///   Items that are not `pub fn` (private functions, types, constants, statics, `pub(crate)`
///   functions) stay as written: each generation has its own copy.
/// - the methods of the module's public types, written in `impl` blocks at the module's top
///   level (`pub` inherent methods, every method of a trait impl) are hot too (*hot methods*):
///   each keeps its signature, and a call runs the current generation's body. The descriptor
///   names one `Type::method` (`<Type as Trait>::method`). `#[hotmod::not_hot]` on a method or an
///   impl keeps it an ordinary method compiled into the host; what cannot be hot (a generic
///   method or impl, a method returning a reference or taking a `Formatter`, an impl in a
///   submodule) is a compile error that says so. Code the attribute never sees, such as
///   `#[derive]` output and a trait's default methods, is compiled into the host.
/// - `Handle`: `Clone + Send + Sync + 'static`. `Handle::current()` pins the current generation
///   until the handle and its clones are dropped; `h.generation()` (0 is the built-in code),
///   `h.is_current()`, and one method per hot function with the same parameters after `&self`
///   (`h.greet("x")`), which runs the pinned generation however many reloads happen; a hot
///   method is `h.type_method(receiver, …)` (`h.visitor_welcome(&visitor)`), a trait impl's
///   `h.type_trait_method(…)`.
/// - `module() -> &'static hotmod::Module`: the control surface (`load(path)`, `reload()`,
///   `path()`, `watch()`, `rebuild_on_save()`, `subscribe()`, `live_generations()`,
///   `set_staged(..)`, `apply_staged()`, …).
///
/// A new build is verified before any of its code runs: a library whose hot functions'
/// signatures, or whose types that cross the boundary (as the compiler describes them: size,
/// alignment, fields with offsets, discriminants, trait methods), differ from the host's is
/// refused with an error that names the file and the difference, and the current generation
/// keeps serving.
///
/// Two attributes work inside the module: `#[hotmod::on_load]` on a `fn name() -> Result<(), E>`
/// that a new generation must pass before it goes live, and `#[hotmod::state(version = N,
/// migrate = f)]` on a `static NAME: hotmod::State<T> = hotmod::State::new();` that is handed
/// from generation to generation (hotmod's `state` feature).
///
/// # Arguments
///
/// All are optional and may be combined: `#[hotmod::hot_module(rebuild, path = "…")]`.
///
/// - `crate = "path::to::hotmod"`: where the generated code finds hotmod, when the module's
///   crate reaches it through a re-export rather than a `hotmod` dependency (default `::hotmod`).
/// - `path = "path/to/libname.so"`: the library `module().reload()` loads and `watch()` watches,
///   relative to the host's working directory. `module().set_path(..)` and the environment
///   variable `HOTMOD_<CRATE>_PATH` (crate name in capitals) take precedence; without any of
///   them the path is cargo's location of the crate's cdylib next to the running executable,
///   `target/<profile>/lib<crate>.so`, which `cargo build -p <crate>` writes.
/// - `watch`: at the module's first use in the host (its first call or `Handle::current()`),
///   start `module().watch()`: every new build that lands at the path is verified and loaded.
///   `HOTMOD_WATCH=1` in the environment does the same for every hot module.
/// - `rebuild`: at the module's first use, start `module().rebuild_on_save()`: when a source
///   file of the module's crate is saved, run `cargo build --lib -p <crate>` (the host's profile
///   and target directory) and load the result; a failed build is reported and the current
///   generation keeps serving. `HOTMOD_REBUILD=1` does the same for every hot module.
///
/// Anything else is a compile error that lists these four.
///
/// # Refused at compile time
///
/// Each of these is a compile error on the offending token that says what to write instead, and
/// a module with several mistakes gets all of them in one compile:
///
/// - the attribute on anything but a module, or on a module whose body is in another file
///   (`mod name;`): the attribute must see the functions;
/// - an item named `Handle` or `module`, or starting with `__hotmod`, and a hot function named
///   `current`, `generation`, `is_current` or `clone`: the generated code takes these names;
/// - a generic hot function (type, const or explicit lifetime parameters, a `where` clause):
///   the library is compiled on its own and has no code for the types a host would pick; use
///   concrete types and elided lifetimes;
/// - `async fn`: the future would run code of a generation that may be unloaded meanwhile;
/// - `const fn`: const calls are evaluated at compile time and cannot be reloaded;
/// - `unsafe fn`: not supported yet; keep the `unsafe` block inside a safe function;
/// - `extern "…" fn`: the attribute generates the `extern "C"` trampoline itself;
/// - a `self` receiver on a free function: write the method in an `impl` block (hot methods
///   above), or take the value as a parameter (`fn update(state: &mut State)`);
/// - a hot method that cannot be hot (a generic method or impl, `const`/`async`/`unsafe`, a
///   reference returned, a `Formatter` taken, an impl of a public type in a submodule), unless
///   marked `#[hotmod::not_hot]`; each error names the method;
/// - `impl Trait` in a parameter (it is a generic) or in the return type: take a concrete type
///   or `&dyn Trait`; return a concrete type;
/// - a return type that holds a reference (`&'static str`, or a reference borrowed from an
///   argument: the attribute cannot tell it from one into the library's static data), a trait
///   object (`Box<dyn Trait>`: its vtable lives in the library) or a function pointer (its code
///   lives in the library), outside `hotmod::Pinned<…>`; and a struct or enum of the module that
///   a hot function returns and that holds one of these in a field. Such a value would dangle
///   once its generation is unloaded after a reload. Return an owned value (`String`, `Vec`, a
///   struct), or wrap it in `hotmod::Pinned<…>`, which keeps its generation loaded while the
///   value lives;
/// - a `hotmod::Pinned` anywhere but as the whole return type (`Option<Pinned<…>>`, a field of
///   a returned struct): only there does the call tie it to its generation;
/// - `hotmod::Pinned<T>` with `T` other than `Box<dyn Trait>`, `Arc<dyn Trait>`,
///   `&'static dyn Trait`, `&'static str` or `&'static [u8]`: a `Pinned` lends only what these
///   point to, which cannot be copied out of it; a sized value (`Box<Config>`) could be, by a
///   copy, a clone or a `&'static` field. Also refused in a `Pinned`: `dyn Any` and `dyn Error`
///   (`downcast_ref` lends the sized value), and a trait object whose type arguments would hand
///   out what the rule above refuses (`dyn Fn() -> &'static str`,
///   `dyn Iterator<Item = Box<dyn Trait>>`);
/// - a `hotmod::Pinned` or a `Handle` anywhere in a parameter's type (`Option<Pinned<…>>`,
///   `&[Handle]`): module code could drop it, and its drop would release a pin inside module
///   code, in a generation that may be unloaded; pass what the `Pinned` lends (`&*p` as a
///   `&dyn Trait` or `&str`), or call through the handle in the host. The attribute reads types
///   as written: a type alias or a renamed import hides one.
///
/// The compiler checks the rest, through any type alias, submodule or crate, and points at the
/// type as written: every parameter and result type must implement `hotmod::Describe` (what the
/// loader compares; the module's structs, enums and traits that its signatures name get it
/// without asking), a result that is not a whole `hotmod::Pinned` must be `hotmod::Owned` (no
/// reference, `Cow<'static, _>`, `dyn Trait`, fn pointer, raw pointer or `io::Error` in it,
/// however deep), and so must what a `&mut` parameter points to; a method of a trait whose
/// objects cross returns an owned value or a reference borrowed from `self`.
///
/// Also refused: a variadic hot function; a `#[hotmod::state]` static that is `mut` or whose
/// arguments are other than `version = N` and `migrate = function`; a second
/// `#[hotmod::on_load]` function, or one whose signature is not `fn name() -> Result<(), E>`.
///
/// # Static builds
///
/// Built without hotmod's `reload` feature (`default-features = false`), the attribute leaves
/// the module's items as written (plain direct calls, no descriptor, no loader) and adds a
/// zero-sized `Handle` and a `module()` whose `load`, `reload` and `watch` return
/// `Error::ReloadDisabled`. The same refusals apply, so a module that compiles in one mode
/// compiles in the other.
#[proc_macro_attribute]
pub fn hot_module(args: TokenStream, item: TokenStream) -> TokenStream {
    let item = proc_macro2::TokenStream::from(item);
    match hot_module_tokens(args.into(), &item) {
        Ok(expanded) => expanded.into(),
        Err(errors) => fallback(errors, item),
    }
}

/// Parse, validate, expand.
fn hot_module_tokens(
    args: proc_macro2::TokenStream,
    item: &proc_macro2::TokenStream,
) -> syn::Result<proc_macro2::TokenStream> {
    let item: syn::Item = syn::parse2(item.clone())?;
    let cx = ctxt::Ctxt::new();
    let args = parse::args(&cx, args);
    let plans = methods::plan(&item);
    let Some(module) = parse::module(&cx, &item, &plans) else {
        return Err(cx
            .check()
            .expect_err("parse::module reports why it has no module"));
    };
    validate::check(&cx, &module);
    cx.check()?;
    // hotmod's `reload` feature turns this crate's `reload` on (see hotmod's crate docs).
    Ok(if cfg!(feature = "reload") {
        expand::expand(&args, &module)
    } else {
        expand_static::expand(&args, &module)
    })
}

/// The errors plus the untouched input, so the user sees our message and not a cascade of
/// unresolved names.
fn fallback(errors: syn::Error, item: proc_macro2::TokenStream) -> TokenStream {
    let errors = errors.into_compile_error();
    quote::quote!(#errors #item).into()
}

/// `#[derive(hotmod::Describe)]`: describes a struct's or enum's layout to hotmod (and marks it
/// `hotmod::Owned` when every field is and it has no lifetime parameter), so it can cross a hot
/// module's boundary from any crate. See `hotmod::Describe`.
///
/// `#[hotmod(opaque)]` on a newtype around another crate's type describes it by size, alignment
/// and the wrapped type's `TypeId`; `#[hotmod(crate = "path::to::hotmod")]` names hotmod when it
/// is reached through a re-export.
#[proc_macro_derive(Describe, attributes(hotmod))]
pub fn derive_describe(input: TokenStream) -> TokenStream {
    let input = syn::parse_macro_input!(input as syn::DeriveInput);
    describe::derive(&input)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// `#[hotmod::describe_trait]`: describes the objects of a trait defined outside a hot module
/// (`dyn Trait` and its `+ Send`/`+ Sync` forms: supertraits and methods in vtable order), so a
/// hot function can return `hotmod::Pinned<Box<dyn other_crate::Trait>>`. A hot module's own
/// traits get this without asking. Each method must return an owned value (`hotmod::Owned`) or a
/// reference borrowed from `self`; its supertraits other than `Send`/`Sync` need descriptions too.
///
/// `#[hotmod::describe_trait(crate = "path::to::hotmod")]` names hotmod when it is reached
/// through a re-export.
#[proc_macro_attribute]
pub fn describe_trait(args: TokenStream, item: TokenStream) -> TokenStream {
    let item = proc_macro2::TokenStream::from(item);
    let result = (|| -> syn::Result<proc_macro2::TokenStream> {
        let t: syn::ItemTrait = syn::parse2(item.clone())?;
        let mut krate: syn::Path = syn::parse_quote!(::hotmod);
        let parser = syn::meta::parser(|meta| {
            if meta.path.is_ident("crate") {
                let text: syn::LitStr = meta.value()?.parse()?;
                krate = text.parse()?;
                Ok(())
            } else {
                Err(meta.error("the only argument is `crate = \"path::to::hotmod\"`"))
            }
        });
        syn::parse::Parser::parse2(parser, args.into())?;
        let descriptions = describe::trait_descriptions(&quote::quote!(#krate), &t);
        Ok(quote::quote!(#t #descriptions))
    })();
    match result {
        Ok(tokens) => tokens.into(),
        Err(errors) => fallback(errors, item),
    }
}

/// Keeps a method of a hot module's public type (or every method of an `impl` block) out of
/// reloading: `#[hotmod::not_hot] pub fn len(&self) -> usize { self.items.len() }`.
///
/// The methods of a hot module's public types, written in the module's own `impl` blocks, are
/// hot: a call runs the current generation. A method marked `not_hot` is an ordinary method
/// instead, compiled into the host and inlined like any other: what a small getter wants, and
/// what a method that cannot be hot needs (a generic one, one returning a reference, a
/// `Display` impl). Calls of it from the host run the host's copy; a load whose library changed
/// it is accepted and reported (`Event::StaleItems`). Anywhere else the attribute does nothing.
#[proc_macro_attribute]
pub fn not_hot(args: TokenStream, item: TokenStream) -> TokenStream {
    if args.is_empty() {
        item
    } else {
        let error = syn::Error::new(
            proc_macro2::TokenStream::from(args)
                .into_iter()
                .next()
                .map_or_else(proc_macro2::Span::call_site, |t| t.span()),
            "#[hotmod::not_hot] takes no arguments",
        );
        fallback(error, item.into())
    }
}

/// Marks the function a new generation runs before it may become current:
/// `#[hotmod::on_load] fn init() -> Result<(), E>` with `E: Display`, inside a
/// `#[hot_module]` module. `Ok` lets the generation go live; `Err` (or a panic) rejects it and
/// the previous generation keeps serving.
///
/// `#[hot_module]` consumes this attribute; used anywhere else it is an error.
#[proc_macro_attribute]
pub fn on_load(_args: TokenStream, item: TokenStream) -> TokenStream {
    outside_hot_module("#[hotmod::on_load] works only on a function", item)
}

/// Marks a static of a `#[hot_module]` module as state that survives reloads:
/// `#[hotmod::state(version = 2, migrate = upgrade)] static WORLD: hotmod::State<World> = hotmod::State::new();`
/// (needs hotmod's `state` feature; `World: Default + Serialize + Deserialize`). See
/// `hotmod::State`.
///
/// `#[hot_module]` consumes this attribute; used anywhere else it is an error.
#[proc_macro_attribute]
pub fn state(_args: TokenStream, item: TokenStream) -> TokenStream {
    outside_hot_module("#[hotmod::state] works only on a static", item)
}

/// An attribute that `#[hot_module]` consumes, found outside one.
fn outside_hot_module(what: &str, item: TokenStream) -> TokenStream {
    let message = format!("{what} inside a #[hotmod::hot_module] module");
    let error = syn::Error::new(proc_macro2::Span::call_site(), message);
    fallback(error, item.into())
}
