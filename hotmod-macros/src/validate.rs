//! Validation: every rule a hot module must follow, checked over the whole module. Each broken
//! rule is an error in the [`Ctxt`] on the offending tokens that says what to write instead;
//! nothing stops at the first, so one compile reports every mistake.

use std::collections::BTreeSet;

use syn::{FnArg, GenericArgument, Ident, Item, PathArguments, ReturnType, Type, TypeParamBound};

use crate::ast::{
    collect_idents, is_pinned, single_type_argument, HotFn, HotModule, ModItem, OnLoad, StateStatic,
};
use crate::ctxt::Ctxt;
use crate::methods;
use crate::text;

/// Names the generated code defines in the module; user items must not take them.
const RESERVED_ITEMS: &[&str] = &["Handle", "module"];
/// Names of `Handle`'s own methods; hot functions must not take them.
const RESERVED_METHODS: &[&str] = &["current", "generation", "is_current", "clone"];

pub fn check(cx: &Ctxt, hot: &HotModule) {
    for item in &hot.items {
        reserved_item_name(cx, item);
        match item {
            ModItem::Hot(f) => hot_fn(cx, f),
            ModItem::OnLoad(f) => on_load_fn(cx, f, hot.on_load()),
            ModItem::State(st) => state(cx, st),
            ModItem::Impl(imp) => imp.functions.iter().for_each(|f| hot_fn(cx, f)),
            ModItem::Other(_) => {}
        }
    }
    impls_that_cannot_be_hot(cx, hot);
    handle_names_taken_twice(cx, hot);
    returned_types_pointing_into_library(cx, hot);
}

/// A hot method's `Handle` method (`type_method`) named like a hot function or another's.
fn handle_names_taken_twice(cx: &Ctxt, hot: &HotModule) {
    let mut seen: Vec<(String, String)> = Vec::new();
    for f in hot.functions() {
        // Definitions under `#[cfg]`s may be alternatives; rustc reports a real clash.
        if !crate::ast::cfgs(&f.item.attrs).is_empty() {
            continue;
        }
        let name = f.handle_name().to_string();
        if let Some((_, earlier)) = seen.iter().find(|(n, _)| *n == name) {
            cx.error_spanned_by(
                f.handle_name(),
                format!("`Handle::{name}` would stand for both `{earlier}` and `{}`; rename one (a hot method's is `type_method`)", f.display_name()),
            );
        }
        seen.push((name, f.display_name()));
    }
}

/// How to keep a method out of reloading, said after every error on a hot method.
const NOT_HOT: &str = "mark it `#[hotmod::not_hot]` to keep it compiled into the host instead (calls then run the host's copy, and a load whose library changed it says so)";

/// The errors of a hot method say which method, and how to opt it out.
struct Hinted<'a> {
    cx: &'a Ctxt,
    method: Option<&'a str>,
}

impl Hinted<'_> {
    fn error_spanned_by(&self, object: impl quote::ToTokens, message: impl std::fmt::Display) {
        match self.method {
            Some(name) => self.cx.error_spanned_by(
                object,
                format!("{message}\n(`{name}` is a hot method: the methods of the module's public types reload like its `pub fn`s; {NOT_HOT})"),
            ),
            None => self.cx.error_spanned_by(object, message),
        }
    }
}

/// Impls of the module's public types whose methods cannot be hot and are not marked
/// `#[hotmod::not_hot]`: generic impls, and impls in a submodule.
fn impls_that_cannot_be_hot(cx: &Ctxt, hot: &HotModule) {
    let Some((_, items)) = &hot.module.content else {
        return;
    };
    let public = methods::public_types(items);
    for item in hot.others() {
        match item {
            Item::Impl(imp)
                if methods::of_public_type(imp, &public)
                    && !methods::is_not_hot(&imp.attrs)
                    && (!imp.generics.params.is_empty() || imp.generics.where_clause.is_some()) =>
            {
                cx.error_spanned_by(
                    &imp.generics,
                    format!("the methods of a generic impl cannot be hot: the library is compiled on its own, so it has no code for the parameters a host would pick; {}", NOT_HOT.replacen("mark it", "mark the impl", 1)),
                );
            }
            Item::Mod(m) => in_submodule(cx, m, &public),
            _ => {}
        }
    }
}

fn in_submodule(cx: &Ctxt, module: &syn::ItemMod, public: &BTreeSet<String>) {
    for item in module.content.iter().flat_map(|(_, items)| items) {
        match item {
            Item::Impl(imp)
                if methods::of_public_type(imp, public)
                    && !methods::is_not_hot(&imp.attrs)
                    && imp.items.iter().any(|m| matches!(m, syn::ImplItem::Fn(_))) =>
            {
                cx.error_spanned_by(
                    &imp.self_ty,
                    format!("the methods of `{}` are written in a submodule, where they cannot be hot yet: move the impl to the hot module's top level, or {}", text::tokens(&imp.self_ty), NOT_HOT.replacen("mark it", "mark the impl", 1)),
                );
            }
            Item::Mod(m) => in_submodule(cx, m, public),
            _ => {}
        }
    }
}

fn reserved_item_name(cx: &Ctxt, item: &ModItem) {
    let Some(ident) = item.ident() else {
        return;
    };
    let name = ident.to_string();
    if RESERVED_ITEMS.contains(&name.as_str()) || name.starts_with("__hotmod") {
        cx.error_spanned_by(
            ident,
            format!("`{name}` is defined by #[hot_module] in this module; rename this item"),
        );
    }
}

fn hot_fn(cx: &Ctxt, f: &HotFn) {
    let display = f.display_name();
    let cx = &Hinted {
        cx,
        method: f.method.map(|_| display.as_str()),
    };
    let sig = &f.item.sig;
    let name = f.handle_name().to_string();
    if f.method.is_some() {
        for p in &f.params {
            if mentions(p.ty, "Formatter") {
                cx.error_spanned_by(p.ty, "a `Formatter` cannot be handed to another generation's code: it borrows the host's output through a trait object; formatting stays compiled into the host");
            }
        }
    }
    if RESERVED_METHODS.contains(&name.as_str()) {
        cx.error_spanned_by(
            &sig.ident,
            "this name is taken by a method of the generated `Handle`; rename the function",
        );
    }
    if let Some(token) = &sig.asyncness {
        cx.error_spanned_by(token, "a hot function cannot be `async` yet: the future would run code of a generation that may be unloaded; make it a plain `fn` and call it from async code");
    }
    if let Some(token) = &sig.constness {
        cx.error_spanned_by(token, "a hot function cannot be `const`: const calls are evaluated at compile time and cannot be reloaded; remove `const` or move the function out of the hot module");
    }
    if let Some(token) = &sig.unsafety {
        cx.error_spanned_by(
            token,
            "a hot function cannot be `unsafe` yet; make it safe and keep the unsafe block inside",
        );
    }
    if let Some(abi) = &sig.abi {
        cx.error_spanned_by(abi, "a hot function cannot declare an ABI: #[hot_module] generates the stable `extern \"C\"` trampoline itself; remove `extern`");
    }
    if let Some(variadic) = &sig.variadic {
        cx.error_spanned_by(variadic, "a hot function cannot be variadic");
    }
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        cx.error_spanned_by(&sig.generics, "a hot function cannot be generic: the library is compiled on its own, so it has no code for the types a host would pick; use concrete types (an enum or a Box<dyn Trait> where you need variety) and elided lifetimes");
    }
    for input in &sig.inputs {
        match input {
            FnArg::Receiver(receiver) => cx.error_spanned_by(
                receiver,
                "a hot function cannot take `self`: a free function has no receiver; write the method in an `impl` block of the module's type (the methods of its public types are hot too), or take the value as an ordinary parameter (`fn update(state: &mut State)`)",
            ),
            FnArg::Typed(typed) => {
                if contains_impl_trait(&typed.ty) {
                    cx.error_spanned_by(&typed.ty, "`impl Trait` in a hot function's parameters is generic; take a concrete type or `&dyn Trait`");
                }
                if let Some((ty, what)) = pin_in_parameter(&typed.ty) {
                    cx.error_spanned_by(ty, what);
                }
            }
        }
    }
    if let ReturnType::Type(_, ty) = &sig.output {
        if contains_impl_trait(ty) {
            cx.error_spanned_by(ty, "a hot function cannot return `impl Trait`: return a concrete type, or `hotmod::Pinned<Box<dyn Trait>>`");
        }
        if f.pinned {
            pinned_return(cx, ty);
        } else if let Some(nested) = nested_pinned(ty) {
            cx.error_spanned_by(nested, format!("a hot function returns a `hotmod::Pinned` only as its whole return type: {NESTED_PINNED_WHY}"));
        } else if let Some(what) = points_into_library(ty) {
            cx.error_spanned_by(ty, format!("a hot function cannot return {what}: it may point into the generation's code or static data, which is unloaded after a reload while the value may still live; return an owned value (String, Vec, a struct), or {PINNED_FORMS} to keep its generation loaded while it lives"));
        }
    }
}

/// The on_load function takes nothing and returns a `Result`; there is at most one (`first`
/// names the first, which the module keeps).
fn on_load_fn(cx: &Ctxt, f: &OnLoad, first: Option<&Ident>) {
    let sig = &f.item.sig;
    if let Some(first) = first.filter(|first| !std::ptr::eq(*first, &sig.ident)) {
        cx.error_spanned_by(
            &sig.ident,
            format!("this module already has an on_load function, `{first}`; keep one"),
        );
        return;
    }
    let returns_result = match &sig.output {
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
    if !sig.inputs.is_empty()
        || !returns_result
        || sig.asyncness.is_some()
        || !sig.generics.params.is_empty()
    {
        cx.error_spanned_by(
            sig,
            "an on_load function is `fn name() -> Result<(), E>` with `E: Display`; a new generation becomes current only if it returns Ok",
        );
    }
}

fn state(cx: &Ctxt, st: &StateStatic) {
    if let syn::StaticMutability::Mut(token) = &st.item.mutability {
        cx.error_spanned_by(
            token,
            "a #[hotmod::state] static is not `mut`: `static NAME: hotmod::State<T> = hotmod::State::new();`",
        );
    }
}

/// Structs and enums of the module that hot functions return (directly, or inside another such
/// type, outside `Pinned<…>`) must not hold references, trait objects or function pointers.
fn returned_types_pointing_into_library(cx: &Ctxt, hot: &HotModule) {
    let mut names = BTreeSet::new();
    for f in hot.functions().filter(|f| !f.pinned) {
        collect_idents(&f.output, &mut names);
    }
    let mut checked = BTreeSet::new();
    loop {
        let before = names.len();
        for item in hot.others() {
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
                if let Some(nested) = nested_pinned(&field.ty) {
                    cx.error_spanned_by(
                        nested,
                        format!("`{name}` is returned by a hot function, so it cannot hold a `hotmod::Pinned`: {NESTED_PINNED_WHY}"),
                    );
                } else if let Some(what) = points_into_library(&field.ty) {
                    cx.error_spanned_by(
                        &field.ty,
                        format!("`{name}` is returned by a hot function, so it cannot hold {what}: the value may outlive the generation that made it; hold an owned value (a `String` for a `&'static str`), or have the function return `hotmod::Pinned<Box<dyn Trait>>` with a trait for what the host needs of `{name}`"),
                    );
                }
                collect_idents(&field.ty, &mut names);
            }
        }
        if names.len() == before {
            return;
        }
    }
}

/// What in a return type points into the library that made it: a reference, a trait object, a
/// function pointer. (A `Pinned` is checked before: only the whole return type may be one.)
fn points_into_library(ty: &Type) -> Option<&'static str> {
    struct Finder(Option<&'static str>);
    impl<'ast> syn::visit::Visit<'ast> for Finder {
        fn visit_type(&mut self, ty: &'ast Type) {
            if self.0.is_some() {
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

/// Whether a path segment of `ty` is `name`.
fn mentions(ty: &Type, name: &str) -> bool {
    let mut names = BTreeSet::new();
    collect_idents(ty, &mut names);
    names.contains(name)
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

/// Why a `Pinned` nested in a return type (or in a returned type's field) is refused.
const NESTED_PINNED_WHY: &str = "nested in an `Option`, a `Result`, a tuple, a collection or a struct it carries no pin (the call ties a `Pinned` to the generation that made it only when it is the whole return type) and would dangle after a reload. Return `hotmod::Pinned<…>` itself, and report absence or failure another way (a separate function, or a method of the trait object)";

/// What to return instead of a value that points into the library.
const PINNED_FORMS: &str = "return `hotmod::Pinned<Box<dyn Trait>>` (a closure: `Box<dyn Fn(…)>`), `hotmod::Pinned<Arc<dyn Trait>>` or `hotmod::Pinned<&'static str>`";

/// What a hot function may return in a `Pinned`: what `hotmod::Pinnable` is implemented for,
/// with an unsized pointee, which is all a `Pinned` lends.
const PINNABLE: &str = "a hot function returns `hotmod::Pinned<T>` with `T` one of `Box<dyn Trait>`, `Arc<dyn Trait>`, `&'static dyn Trait`, `&'static str` or `&'static [u8]`: a `Pinned` lends only what these point to (a trait object, a `str`, bytes), which cannot be copied or cloned out of it and outlive the generation; a sized value could be (a `&'static` field, a `Copy` or a `Clone`). For a value of the module's own type, return `hotmod::Pinned<Box<dyn Trait>>` with a trait for what the host needs";

/// A hot function's return type `hotmod::Pinned<T>`: `T` must be a pointer a `Pinned` can lend
/// without letting anything of the library outlive it.
fn pinned_return(cx: &Hinted, ty: &Type) {
    let Some(inner) = single_type_argument(ty) else {
        cx.error_spanned_by(
            ty,
            "`hotmod::Pinned` takes one type argument: `hotmod::Pinned<Box<dyn Trait>>`",
        );
        return;
    };
    if let Some(nested) = nested_pinned(inner) {
        cx.error_spanned_by(
            nested,
            format!("a hot function returns a `hotmod::Pinned` only as its whole return type: {NESTED_PINNED_WHY}"),
        );
        return;
    }
    match unpinnable(inner) {
        Some(Unpinnable::Shape) => cx.error_spanned_by(
            inner,
            format!(
                "`hotmod::Pinned<{}>` is not accepted: {PINNABLE}",
                text::tokens(inner)
            ),
        ),
        Some(Unpinnable::Because(spanned, why)) => cx.error_spanned_by(spanned, why),
        None => {}
    }
}

/// Why a `Pinned` cannot hold `T`.
enum Unpinnable<'a> {
    /// Not one of the accepted pointers.
    Shape,
    /// An accepted pointer to a trait object that would hand out what outlives the `Pinned`.
    Because(&'a dyn quote::ToTokens, String),
}

fn unpinnable(ty: &Type) -> Option<Unpinnable<'_>> {
    match ty {
        Type::Paren(inner) => unpinnable(&inner.elem),
        Type::Group(inner) => unpinnable(&inner.elem),
        Type::Reference(reference) => {
            let is_static = reference
                .lifetime
                .as_ref()
                .is_some_and(|lifetime| lifetime.ident == "static");
            if !is_static || reference.mutability.is_some() {
                return Some(Unpinnable::Shape);
            }
            match strip(&reference.elem) {
                Type::Path(path) if path.qself.is_none() && path.path.is_ident("str") => None,
                Type::Slice(slice) => match strip(&slice.elem) {
                    Type::Path(path) if path.qself.is_none() && path.path.is_ident("u8") => None,
                    _ => Some(Unpinnable::Shape),
                },
                Type::TraitObject(object) => trait_object(object),
                _ => Some(Unpinnable::Shape),
            }
        }
        Type::Path(path) => {
            let segment = path.path.segments.last()?;
            if path.qself.is_some() || !(segment.ident == "Box" || segment.ident == "Arc") {
                return Some(Unpinnable::Shape);
            }
            match single_type_argument(ty).map(strip) {
                Some(Type::TraitObject(object)) => trait_object(object),
                _ => Some(Unpinnable::Shape),
            }
        }
        _ => Some(Unpinnable::Shape),
    }
}

fn strip(ty: &Type) -> &Type {
    match ty {
        Type::Paren(inner) => strip(&inner.elem),
        Type::Group(inner) => strip(&inner.elem),
        other => other,
    }
}

/// A trait object in a `Pinned` is lent as `&dyn Trait`; what its methods return must not
/// outlive the `Pinned` either. The attribute sees only the object's own type: `dyn Any` and
/// `dyn Error` (whose `downcast_ref` lends a sized value), and type arguments that are returned
/// (`Iterator<Item = &'static str>`, `Fn() -> Box<dyn Trait>`). The methods of the module's own
/// traits are the boundary checks' business.
fn trait_object(object: &syn::TypeTraitObject) -> Option<Unpinnable<'_>> {
    for bound in &object.bounds {
        let TypeParamBound::Trait(bound) = bound else {
            continue;
        };
        let Some(segment) = bound.path.segments.last() else {
            continue;
        };
        if segment.ident == "Any" || segment.ident == "Error" {
            return Some(Unpinnable::Because(
                bound,
                format!("a `hotmod::Pinned` cannot hold a `dyn {}`: its `downcast_ref` lends the value as its concrete, sized type, whose fields, copies and clones could outlive the generation; use a trait of the module that says what the host needs", segment.ident),
            ));
        }
        let returned: Vec<&Type> = match &segment.arguments {
            PathArguments::None => Vec::new(),
            PathArguments::AngleBracketed(args) => args
                .args
                .iter()
                .filter_map(|arg| match arg {
                    GenericArgument::Type(ty) => Some(ty),
                    GenericArgument::AssocType(assoc) => Some(&assoc.ty),
                    _ => None,
                })
                .collect(),
            // `Fn(&str) -> u32`: the inputs come from the caller, the output from the library.
            PathArguments::Parenthesized(args) => match &args.output {
                ReturnType::Type(_, ty) => vec![&**ty],
                ReturnType::Default => Vec::new(),
            },
        };
        for ty in returned {
            let what = match nested_pinned(ty) {
                Some(_) => Some("a `hotmod::Pinned` (which would carry no pin)"),
                None => points_into_library(ty),
            };
            if let Some(what) = what {
                return Some(Unpinnable::Because(
                    ty,
                    format!("the trait object in this `hotmod::Pinned` would hand out {what}, which could outlive the `Pinned` and its generation; make the type an owned one (String, Vec, a struct)"),
                ));
            }
        }
    }
    None
}

/// The first `Pinned<…>` anywhere in `ty`, itself included.
fn nested_pinned(ty: &Type) -> Option<&Type> {
    struct Finder<'ast>(Option<&'ast Type>);
    impl<'ast> syn::visit::Visit<'ast> for Finder<'ast> {
        fn visit_type(&mut self, ty: &'ast Type) {
            if self.0.is_some() {
                return;
            }
            if is_pinned(ty) {
                self.0 = Some(ty);
                return;
            }
            syn::visit::visit_type(self, ty);
        }
    }
    let mut finder = Finder(None);
    syn::visit::Visit::visit_type(&mut finder, ty);
    finder.0
}

/// A `Pinned` or a `Handle` anywhere in a parameter's type (inside an `Option`, a tuple, behind
/// a reference…), with the error to report on it. The attribute reads types as written: a type
/// alias or a renamed import hides one.
fn pin_in_parameter(ty: &Type) -> Option<(&Type, &'static str)> {
    struct Finder<'ast>(Option<(&'ast Type, &'static str)>);
    impl<'ast> syn::visit::Visit<'ast> for Finder<'ast> {
        fn visit_type(&mut self, ty: &'ast Type) {
            if self.0.is_some() {
                return;
            }
            if let Type::Path(path) = ty {
                let last = path.path.segments.last().map(|segment| &segment.ident);
                if last.is_some_and(|ident| ident == "Pinned") {
                    self.0 = Some((ty, PINNED_PARAMETER));
                    return;
                }
                if last.is_some_and(|ident| ident == "Handle") {
                    self.0 = Some((ty, HANDLE_PARAMETER));
                    return;
                }
            }
            syn::visit::visit_type(self, ty);
        }
    }
    let mut finder = Finder(None);
    syn::visit::Visit::visit_type(&mut finder, ty);
    finder.0
}

const PINNED_PARAMETER: &str = "a hot function cannot take a `hotmod::Pinned`, even nested or behind a reference: module code could drop it (or take it out of an `Option` and drop it), and its drop releases a pin inside module code, a generation that may itself be unloaded while it runs; keep the `Pinned` in the host and pass what it lends (`&*pinned` as a `&dyn Trait` or `&str` parameter)";

const HANDLE_PARAMETER: &str = "a hot function cannot take a `Handle`, even nested or behind a reference: module code could drop it, and its drop releases a pin inside module code, a generation that may itself be unloaded while it runs; call through the handle in the host and pass the function the results (if this is another crate's type named `Handle`, import it under another name)";
