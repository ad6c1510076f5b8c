//! Parsing and validation: turns the annotated module into a [`HotModule`], or a list of spanned
//! errors that say what to write instead.

use proc_macro2::{Span, TokenStream};
use quote::ToTokens;
use syn::spanned::Spanned;
use syn::{FnArg, Ident, Item, ItemFn, ItemMod, LitStr, Pat, ReturnType, Type};

/// Names the generated code defines in the module; user items must not take them.
const RESERVED_ITEMS: &[&str] = &["Handle", "module"];
/// Names of `Handle`'s own methods; hot functions must not take them.
const RESERVED_METHODS: &[&str] = &["current", "generation", "is_current", "clone"];

/// `#[hot_module(crate = "...", path = "...")]`.
pub struct Args {
    /// Path to the hotmod crate, for users who re-export it.
    pub krate: syn::Path,
    /// Default artifact path.
    pub path: Option<LitStr>,
    /// `watch`: start watching the artifact at first use.
    pub watch: bool,
    /// `rebuild`: at first use, start rebuilding the crate (and loading each build) when its
    /// sources change.
    pub rebuild: bool,
}

impl Args {
    pub fn parse(tokens: TokenStream) -> syn::Result<Args> {
        let mut args = Args {
            krate: syn::parse_quote!(::hotmod),
            path: None,
            watch: false,
            rebuild: false,
        };
        let parser = syn::meta::parser(|meta| {
            if meta.path.is_ident("crate") {
                args.krate = meta.value()?.parse::<LitStr>()?.parse()?;
                Ok(())
            } else if meta.path.is_ident("path") {
                args.path = Some(meta.value()?.parse()?);
                Ok(())
            } else if meta.path.is_ident("watch") {
                args.watch = true;
                Ok(())
            } else if meta.path.is_ident("rebuild") {
                args.rebuild = true;
                Ok(())
            } else {
                Err(meta.error("unknown argument; #[hot_module] takes `crate = \"path::to::hotmod\"`, `path = \"path/to/lib.so\"`, `watch` and `rebuild`"))
            }
        });
        syn::parse::Parser::parse2(parser, tokens)?;
        Ok(args)
    }
}

/// The annotated module, split into hot functions and everything else.
pub struct HotModule {
    pub module: ItemMod,
    pub functions: Vec<HotFn>,
    /// Items other than hot functions, unchanged (the on_load function without its attribute).
    pub others: Vec<Item>,
    /// The `#[hotmod::on_load]` function, if any.
    pub on_load: Option<Ident>,
    /// The `#[hotmod::state]` statics.
    pub states: Vec<StateStatic>,
}

/// `#[hotmod::state(version = 2, migrate = upgrade)] static WORLD: hotmod::State<World> = …;`
pub struct StateStatic {
    pub ident: Ident,
    pub version: u32,
    pub migrate: Option<syn::Path>,
    /// The static's `#[cfg]`s.
    pub cfgs: Vec<syn::Attribute>,
}

/// One `pub fn` of the module.
pub struct HotFn {
    pub item: ItemFn,
    pub params: Vec<Param>,
    /// The return type; `()` when none is written.
    pub output: Type,
    /// The return type is `hotmod::Pinned<…>`: the value keeps its generation loaded.
    pub pinned: bool,
}

pub struct Param {
    /// The name the wrapper uses (the user's when it is a plain identifier).
    pub ident: Ident,
    pub ty: Type,
}

impl HotModule {
    pub fn parse(item: TokenStream) -> Result<HotModule, Vec<syn::Error>> {
        let module: ItemMod = match syn::parse2::<Item>(item) {
            Ok(Item::Mod(module)) => module,
            Ok(other) => {
                return Err(vec![syn::Error::new(
                    item_span(&other),
                    "#[hot_module] goes on an inline module: `#[hotmod::hot_module] pub mod name { pub fn ... }`",
                )])
            }
            Err(e) => return Err(vec![e]),
        };
        let Some((_, items)) = &module.content else {
            return Err(vec![syn::Error::new(
                module.span(),
                "#[hot_module] needs the module's body inline (`mod name { ... }`), not `mod name;`: the attribute must see the functions",
            )]);
        };

        let mut errors = Vec::new();
        let mut functions = Vec::new();
        let mut others = Vec::new();
        let mut on_load: Option<Ident> = None;
        let mut states = Vec::new();
        for item in items {
            if let Item::Static(st) = item {
                if let Some(position) = st.attrs.iter().position(is_state) {
                    match StateStatic::parse(st, &st.attrs[position]) {
                        Ok(state) => states.push(state),
                        Err(e) => errors.push(e),
                    }
                    let mut st = st.clone();
                    st.attrs.remove(position);
                    others.push(Item::Static(st));
                    continue;
                }
            }
            if let Item::Fn(f) = item {
                if let Some(position) = f.attrs.iter().position(is_on_load) {
                    match check_on_load(f, on_load.as_ref()) {
                        Ok(()) => on_load = Some(f.sig.ident.clone()),
                        Err(e) => errors.push(e),
                    }
                    let mut f = f.clone();
                    f.attrs.remove(position);
                    others.push(Item::Fn(f));
                    continue;
                }
            }
            if let Some(ident) = item_ident(item) {
                let name = ident.to_string();
                if RESERVED_ITEMS.contains(&name.as_str()) || name.starts_with("__hotmod") {
                    errors.push(syn::Error::new(
                        ident.span(),
                        format!(
                            "`{name}` is defined by #[hot_module] in this module; rename this item"
                        ),
                    ));
                }
            }
            match item {
                Item::Fn(f) if matches!(f.vis, syn::Visibility::Public(_)) => match HotFn::parse(f)
                {
                    Ok(f) => functions.push(f),
                    Err(mut e) => errors.append(&mut e),
                },
                other => others.push(other.clone()),
            }
        }
        errors.extend(returned_types_pointing_into_library(&functions, &others));
        if errors.is_empty() {
            Ok(HotModule {
                module,
                functions,
                others,
                on_load,
                states,
            })
        } else {
            Err(errors)
        }
    }
}

impl HotFn {
    fn parse(item: &ItemFn) -> Result<HotFn, Vec<syn::Error>> {
        let sig = &item.sig;
        let mut errors = Vec::new();
        let mut fail = |tokens: &dyn ToTokens, message: &str| {
            errors.push(syn::Error::new_spanned(tokens.to_token_stream(), message))
        };
        let name = sig.ident.to_string();
        if RESERVED_METHODS.contains(&name.as_str()) {
            fail(
                &sig.ident,
                "this name is taken by a method of the generated `Handle`; rename the function",
            );
        }
        if let Some(token) = &sig.asyncness {
            fail(token, "a hot function cannot be `async` yet: the future would run code of a generation that may be unloaded; make it a plain `fn` and call it from async code");
        }
        if let Some(token) = &sig.constness {
            fail(token, "a hot function cannot be `const`: const calls are evaluated at compile time and cannot be reloaded; remove `const` or move the function out of the hot module");
        }
        if let Some(token) = &sig.unsafety {
            fail(token, "a hot function cannot be `unsafe` yet; make it safe and keep the unsafe block inside");
        }
        if let Some(abi) = &sig.abi {
            fail(abi, "a hot function cannot declare an ABI: #[hot_module] generates the stable `extern \"C\"` trampoline itself; remove `extern`");
        }
        if let Some(variadic) = &sig.variadic {
            fail(variadic, "a hot function cannot be variadic");
        }
        if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
            fail(&sig.generics, "a hot function cannot be generic: the library is compiled on its own, so it has no code for the types a host would pick; use concrete types (an enum or a Box<dyn Trait> where you need variety) and elided lifetimes");
        }

        let mut params = Vec::new();
        for (index, input) in sig.inputs.iter().enumerate() {
            match input {
                FnArg::Receiver(receiver) => fail(
                    receiver,
                    "a hot function cannot take `self`: hot modules hold free functions; take the value as an ordinary parameter (`fn update(state: &mut State)`)",
                ),
                FnArg::Typed(typed) => {
                    if contains_impl_trait(&typed.ty) {
                        fail(&typed.ty, "`impl Trait` in a hot function's parameters is generic; take a concrete type or `&dyn Trait`");
                    }
                    let ident = match &*typed.pat {
                        Pat::Ident(p) if p.by_ref.is_none() && p.subpat.is_none() => p.ident.clone(),
                        _ => Ident::new(&format!("__hotmod_arg{index}"), typed.pat.span()),
                    };
                    params.push(Param { ident, ty: (*typed.ty).clone() });
                }
            }
        }
        let output = match &sig.output {
            ReturnType::Default => syn::parse_quote!(()),
            ReturnType::Type(_, ty) => {
                if contains_impl_trait(ty) {
                    fail(ty, "a hot function cannot return `impl Trait`: return a concrete type, or `hotmod::Pinned<Box<dyn Trait>>`");
                }
                if let Some(what) = points_into_library(ty) {
                    fail(ty, &format!("a hot function cannot return {what}: it may point into the generation's code or static data, which is unloaded after a reload while the value may still live; return an owned value (String, Vec, a struct), or wrap it in `hotmod::Pinned<…>` to keep its generation loaded while it lives"));
                }
                (**ty).clone()
            }
        };
        if errors.is_empty() {
            let pinned = is_pinned(&output);
            Ok(HotFn {
                item: item.clone(),
                params,
                output,
                pinned,
            })
        } else {
            Err(errors)
        }
    }
}

/// `#[state]` or `#[hotmod::state(...)]`.
fn is_state(attr: &syn::Attribute) -> bool {
    attr.path()
        .segments
        .last()
        .is_some_and(|segment| segment.ident == "state")
}

impl StateStatic {
    fn parse(item: &syn::ItemStatic, attr: &syn::Attribute) -> syn::Result<StateStatic> {
        let mut state = StateStatic {
            ident: item.ident.clone(),
            version: 1,
            migrate: None,
            cfgs: item
                .attrs
                .iter()
                .filter(|a| a.path().is_ident("cfg"))
                .cloned()
                .collect(),
        };
        if let syn::StaticMutability::Mut(token) = &item.mutability {
            return Err(syn::Error::new_spanned(
                token,
                "a #[hotmod::state] static is not `mut`: `static NAME: hotmod::State<T> = hotmod::State::new();`",
            ));
        }
        if matches!(attr.meta, syn::Meta::List(_)) {
            attr.parse_nested_meta(|meta| {
                if meta.path.is_ident("version") {
                    state.version = meta.value()?.parse::<syn::LitInt>()?.base10_parse()?;
                    Ok(())
                } else if meta.path.is_ident("migrate") {
                    state.migrate = Some(meta.value()?.parse()?);
                    Ok(())
                } else {
                    Err(meta.error("#[hotmod::state] takes `version = N` and `migrate = function`"))
                }
            })?;
        }
        Ok(state)
    }
}

/// `#[on_load]` or `#[hotmod::on_load]` (any path ending in `on_load`).
fn is_on_load(attr: &syn::Attribute) -> bool {
    attr.path()
        .segments
        .last()
        .is_some_and(|segment| segment.ident == "on_load")
}

/// The on_load function takes nothing and returns a `Result`; there is at most one.
fn check_on_load(f: &ItemFn, previous: Option<&Ident>) -> syn::Result<()> {
    if let Some(previous) = previous {
        return Err(syn::Error::new_spanned(
            &f.sig.ident,
            format!("this module already has an on_load function, `{previous}`; keep one"),
        ));
    }
    let returns_result = match &f.sig.output {
        ReturnType::Type(_, ty) => match &**ty {
            Type::Path(path) => path
                .path
                .segments
                .last()
                .is_some_and(|segment| segment.ident == "Result"),
            _ => false,
        },
        ReturnType::Default => false,
    };
    if !f.sig.inputs.is_empty()
        || !returns_result
        || f.sig.asyncness.is_some()
        || !f.sig.generics.params.is_empty()
    {
        return Err(syn::Error::new_spanned(
            &f.sig,
            "an on_load function is `fn name() -> Result<(), E>` with `E: Display`; a new generation becomes current only if it returns Ok",
        ));
    }
    Ok(())
}

/// Structs and enums of the module that hot functions return (directly, or inside another such
/// type, outside `Pinned<…>`) must not hold references, trait objects or function pointers.
fn returned_types_pointing_into_library(functions: &[HotFn], others: &[Item]) -> Vec<syn::Error> {
    let mut names = std::collections::BTreeSet::new();
    for f in functions.iter().filter(|f| !f.pinned) {
        crate::expand::collect_idents(&f.output, &mut names);
    }
    let mut errors = Vec::new();
    let mut checked = std::collections::BTreeSet::new();
    loop {
        let before = names.len();
        for item in others {
            let (ident, fields): (&Ident, Vec<&syn::Field>) = match item {
                Item::Struct(s) => (&s.ident, s.fields.iter().collect()),
                Item::Enum(e) => (
                    &e.ident,
                    e.variants.iter().flat_map(|v| v.fields.iter()).collect(),
                ),
                _ => continue,
            };
            let name = ident.to_string();
            if !names.contains(&name) || !checked.insert(name.clone()) {
                continue;
            }
            for field in fields {
                if let Some(what) = points_into_library(&field.ty) {
                    errors.push(syn::Error::new_spanned(
                        &field.ty,
                        format!("`{name}` is returned by a hot function, so it cannot hold {what}: the value may outlive the generation that made it; hold an owned value, or return `hotmod::Pinned<{name}>`"),
                    ));
                }
                if !is_pinned(&field.ty) {
                    crate::expand::collect_idents(&field.ty, &mut names);
                }
            }
        }
        if names.len() == before {
            return errors;
        }
    }
}

/// `hotmod::Pinned<…>` (any path ending in `Pinned`).
fn is_pinned(ty: &Type) -> bool {
    match ty {
        Type::Path(path) => path
            .path
            .segments
            .last()
            .is_some_and(|segment| segment.ident == "Pinned"),
        Type::Paren(inner) => is_pinned(&inner.elem),
        Type::Group(inner) => is_pinned(&inner.elem),
        _ => false,
    }
}

/// What in a return type points into the library that made it (outside `Pinned<…>`):
/// a reference, a trait object, a function pointer.
fn points_into_library(ty: &Type) -> Option<&'static str> {
    struct Finder(Option<&'static str>);
    impl<'ast> syn::visit::Visit<'ast> for Finder {
        fn visit_type(&mut self, ty: &'ast Type) {
            if self.0.is_some() || is_pinned(ty) {
                return;
            }
            match ty {
                Type::Reference(_) => {
                    self.0 = Some(
                        "a reference (even one borrowed from an argument: the attribute cannot \
                         tell it from one into the library's static data)",
                    )
                }
                Type::TraitObject(_) => {
                    self.0 = Some("a trait object (its vtable lives in the library)")
                }
                Type::BareFn(_) => {
                    self.0 = Some("a function pointer (its code lives in the library)")
                }
                _ => syn::visit::visit_type(self, ty),
            }
        }
    }
    let mut finder = Finder(None);
    syn::visit::Visit::visit_type(&mut finder, ty);
    finder.0
}

fn contains_impl_trait(ty: &Type) -> bool {
    struct Finder(bool);
    impl<'ast> syn::visit::Visit<'ast> for Finder {
        fn visit_type_impl_trait(&mut self, _: &'ast syn::TypeImplTrait) {
            self.0 = true;
        }
    }
    let mut finder = Finder(false);
    syn::visit::Visit::visit_type(&mut finder, ty);
    finder.0
}

fn item_ident(item: &Item) -> Option<&Ident> {
    match item {
        Item::Const(i) => Some(&i.ident),
        Item::Enum(i) => Some(&i.ident),
        Item::Fn(i) => Some(&i.sig.ident),
        Item::Mod(i) => Some(&i.ident),
        Item::Static(i) => Some(&i.ident),
        Item::Struct(i) => Some(&i.ident),
        Item::Trait(i) => Some(&i.ident),
        Item::Type(i) => Some(&i.ident),
        Item::Union(i) => Some(&i.ident),
        _ => None,
    }
}

/// The span of an item's introducing keyword and name, so the error points at the item.
fn item_span(item: &Item) -> Span {
    match item {
        Item::Fn(f) => f.sig.span(),
        other => item_ident(other).map_or_else(|| other.span(), Ident::span),
    }
}
