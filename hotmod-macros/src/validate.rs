//! Validation: every rule a hot module must follow, checked over the whole module. Each broken
//! rule is an error in the [`Ctxt`] on the offending tokens that says what to write instead;
//! nothing stops at the first, so one compile reports every mistake.

use std::collections::BTreeSet;

use syn::{FnArg, Ident, Item, ReturnType, Type};

use crate::ast::{collect_idents, is_pinned, HotFn, HotModule, ModItem, OnLoad, StateStatic};
use crate::ctxt::Ctxt;

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
            ModItem::Other(_) => {}
        }
    }
    returned_types_pointing_into_library(cx, hot);
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
    let sig = &f.item.sig;
    let name = sig.ident.to_string();
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
                "a hot function cannot take `self`: hot modules hold free functions; take the value as an ordinary parameter (`fn update(state: &mut State)`)",
            ),
            FnArg::Typed(typed) => {
                if contains_impl_trait(&typed.ty) {
                    cx.error_spanned_by(&typed.ty, "`impl Trait` in a hot function's parameters is generic; take a concrete type or `&dyn Trait`");
                }
            }
        }
    }
    if let ReturnType::Type(_, ty) = &sig.output {
        if contains_impl_trait(ty) {
            cx.error_spanned_by(ty, "a hot function cannot return `impl Trait`: return a concrete type, or `hotmod::Pinned<Box<dyn Trait>>`");
        }
        if let Some(what) = points_into_library(ty) {
            cx.error_spanned_by(ty, format!("a hot function cannot return {what}: it may point into the generation's code or static data, which is unloaded after a reload while the value may still live; return an owned value (String, Vec, a struct), or wrap it in `hotmod::Pinned<…>` to keep its generation loaded while it lives"));
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
                if let Some(what) = points_into_library(&field.ty) {
                    cx.error_spanned_by(
                        &field.ty,
                        format!("`{name}` is returned by a hot function, so it cannot hold {what}: the value may outlive the generation that made it; hold an owned value, or return `hotmod::Pinned<{name}>`"),
                    );
                }
                if !is_pinned(&field.ty) {
                    collect_idents(&field.ty, &mut names);
                }
            }
        }
        if names.len() == before {
            return;
        }
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
