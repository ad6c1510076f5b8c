//! The `#[hot_module]` attribute of [hotmod](https://docs.rs/hotmod). Use it through
//! `hotmod::hot_module`; everything it generates calls hotmod's runtime.

mod ast;
mod expand;
mod expand_static;
mod text;

use proc_macro::TokenStream;

/// Makes a module reloadable.
///
/// ```text
/// #[hotmod::hot_module]
/// pub mod hello {
///     pub fn greet(name: &str) -> String { format!("hello {name}") }
/// }
/// ```
///
/// Every `pub fn` keeps its name and signature and runs the current generation; the module
/// gains `Handle` (a pinned generation) and `module()` (the control surface). Arguments:
/// `crate = "path::to::hotmod"` when hotmod is re-exported, `path = "…"` for the library file
/// `reload()` loads.
///
/// Built without hotmod's `reload` feature, the attribute leaves the module's items as written
/// (plain direct calls) and adds a zero-sized `Handle` and a `module()` that cannot load.
#[proc_macro_attribute]
pub fn hot_module(args: TokenStream, item: TokenStream) -> TokenStream {
    let item = proc_macro2::TokenStream::from(item);
    let args = match ast::Args::parse(args.into()) {
        Ok(args) => args,
        Err(e) => return fallback(vec![e], item),
    };
    match ast::HotModule::parse(item.clone()) {
        // hotmod's `reload` feature turns this crate's `reload` on (see hotmod's crate docs).
        Ok(module) if cfg!(feature = "reload") => expand::expand(&args, &module).into(),
        Ok(module) => expand_static::expand(&args, &module).into(),
        Err(errors) => fallback(errors, item),
    }
}

/// The errors plus the untouched input, so the user sees our message and not a cascade of
/// unresolved names.
fn fallback(errors: Vec<syn::Error>, item: proc_macro2::TokenStream) -> TokenStream {
    let errors = errors.into_iter().map(syn::Error::into_compile_error);
    quote::quote!(#(#errors)* #item).into()
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
    fallback(vec![error], item.into())
}
