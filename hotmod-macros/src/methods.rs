//! Hot methods: the methods of the module's public types, written in the module's own `impl`
//! blocks (inherent and trait impls), reload like its `pub fn`s.
//!
//! Each such method becomes a hot function the rest of the macro treats like any other (a
//! wrapper, a trampoline, a descriptor entry named `Type::method`, a `Handle` method named
//! `type_method`). The method the user wrote stays where it was, with its signature, but its body
//! calls that function's wrapper; the body as written moves into an impl of a private trait of the
//! module (`__hotmod_methods_<n>`), so `self`, `Self`, private fields and the other methods mean
//! there exactly what they meant in the user's impl. The function every generation runs
//! (`__hotmod_impl::<name>`) calls that trait's method.
//!
//! What stays compiled into the host: methods of private types (only module code of the same
//! generation can call them), private inherent methods, and what `#[hotmod::not_hot]` marks (an
//! impl or one method). A load whose library changed one of those is reported (`kept.rs`).

use std::collections::BTreeSet;

use proc_macro2::TokenStream;
use quote::{format_ident, quote};
use syn::spanned::Spanned;
use syn::visit_mut::VisitMut;
use syn::{
    FnArg, Ident, ImplItem, ImplItemFn, Item, ItemFn, ItemImpl, Pat, Path, QSelf, ReturnType,
    Signature, Type, TypePath, Visibility,
};

use crate::ast::cfgs;
use crate::text;

/// One `impl` block of the module with hot methods.
pub struct ImplPlan {
    /// Its position among the module's items.
    pub position: usize,
    /// The private trait whose impl holds the bodies as written.
    pub helper: Ident,
    pub self_ty: Type,
    /// The hot methods, in source order.
    pub methods: Vec<MethodPlan>,
}

/// One hot method.
pub struct MethodPlan {
    /// The method's position among the impl's items.
    pub member: usize,
    /// The hot function standing for it, as every generation runs it: `pub(super) fn
    /// __hotmod_m<impl>_<method>(self_: &Type, …) -> … { <Type as Helper>::method(self_, …) }`,
    /// `Self` replaced by the type.
    pub function: ItemFn,
    /// What the descriptor and messages call it: `Reply::label`, `<Reply as Greeter>::greet`.
    pub name: String,
    /// Its method on `Handle`: `reply_label`, `reply_greeter_greet`.
    pub handle_name: Ident,
    /// The method as the user's impl defines it: `<Reply>::label`, `<Reply as Greeter>::greet`
    /// (what a build with reloading compiled out calls).
    pub direct: TokenStream,
}

/// `#[hotmod::not_hot]` (any path ending in `not_hot`).
pub fn is_not_hot(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|a| {
        a.path()
            .segments
            .last()
            .is_some_and(|segment| segment.ident == "not_hot")
    })
}

/// The names of the module's public structs, enums and unions, submodules' included: only their
/// methods can a host call directly.
pub fn public_types(items: &[Item]) -> BTreeSet<String> {
    fn walk(items: &[Item], names: &mut BTreeSet<String>) {
        for item in items {
            match item {
                Item::Struct(s) if is_pub(&s.vis) => {
                    names.insert(s.ident.to_string());
                }
                Item::Enum(e) if is_pub(&e.vis) => {
                    names.insert(e.ident.to_string());
                }
                Item::Union(u) if is_pub(&u.vis) => {
                    names.insert(u.ident.to_string());
                }
                Item::Mod(m) => {
                    if let Some((_, inner)) = &m.content {
                        walk(inner, names);
                    }
                }
                _ => {}
            }
        }
    }
    let mut names = BTreeSet::new();
    walk(items, &mut names);
    names
}

pub fn is_pub(vis: &Visibility) -> bool {
    matches!(vis, Visibility::Public(_))
}

/// The impl is of one of the module's public types (`Type`, `shapes::Type`, `Type<u32>`).
pub fn of_public_type(imp: &ItemImpl, public: &BTreeSet<String>) -> bool {
    match &*imp.self_ty {
        Type::Path(tp) if tp.qself.is_none() => tp
            .path
            .segments
            .last()
            .is_some_and(|s| public.contains(&s.ident.to_string())),
        _ => false,
    }
}

/// Whether `method` of `imp` (an impl of a public type at the module's top level, neither
/// generic nor `not_hot`) is hot: every method of a trait impl (the trait makes it reachable),
/// the `pub` ones of an inherent impl, but none marked `#[hotmod::not_hot]`.
pub fn is_hot_member(imp: &ItemImpl, method: &ImplItemFn) -> bool {
    (imp.trait_.is_some() || is_pub(&method.vis)) && !is_not_hot(&method.attrs)
}

/// Whether the impl's methods can be hot at all: a top-level impl of a public type, not marked
/// `not_hot`, not generic (validation reports a generic one).
pub fn impl_is_hot(imp: &ItemImpl, public: &BTreeSet<String>) -> bool {
    of_public_type(imp, public)
        && !is_not_hot(&imp.attrs)
        && imp.generics.params.is_empty()
        && imp.generics.where_clause.is_none()
}

/// The plans for the module's top-level impls that have hot methods.
pub fn plan(item: &Item) -> Vec<ImplPlan> {
    let Item::Mod(module) = item else {
        return Vec::new();
    };
    let Some((_, items)) = &module.content else {
        return Vec::new();
    };
    let public = public_types(items);
    let mut plans = Vec::new();
    for (position, item) in items.iter().enumerate() {
        let Item::Impl(imp) = item else {
            continue;
        };
        if !impl_is_hot(imp, &public) {
            continue;
        }
        let helper = format_ident!("__hotmod_methods_{}", position);
        let methods: Vec<MethodPlan> = imp
            .items
            .iter()
            .enumerate()
            .filter_map(|(member, m)| match m {
                ImplItem::Fn(f) if is_hot_member(imp, f) => {
                    Some(method_plan(imp, f, member, position, &helper))
                }
                _ => None,
            })
            .collect();
        if !methods.is_empty() {
            plans.push(ImplPlan {
                position,
                helper,
                self_ty: (*imp.self_ty).clone(),
                methods,
            });
        }
    }
    plans
}

fn method_plan(
    imp: &ItemImpl,
    method: &ImplItemFn,
    member: usize,
    position: usize,
    helper: &Ident,
) -> MethodPlan {
    let self_ty = &*imp.self_ty;
    let trait_path = imp.trait_.as_ref().map(|(_, path, _)| path);
    let sig = &method.sig;
    let ident = format_ident!("__hotmod_m{}_{}", position, sig.ident);
    let mut inputs: Vec<FnArg> = Vec::new();
    let mut args: Vec<Ident> = Vec::new();
    for (index, input) in sig.inputs.iter().enumerate() {
        let (name, ty) = match input {
            FnArg::Receiver(receiver) => (
                Ident::new("self_", receiver.self_token.span),
                concrete(&receiver.ty, self_ty, trait_path),
            ),
            FnArg::Typed(typed) => (
                param_ident(&typed.pat, index),
                concrete(&typed.ty, self_ty, trait_path),
            ),
        };
        inputs.push(syn::parse_quote_spanned!(input.span()=> #name: #ty));
        args.push(name);
    }
    let output = match &sig.output {
        ReturnType::Default => ReturnType::Default,
        ReturnType::Type(arrow, ty) => {
            ReturnType::Type(*arrow, Box::new(concrete(ty, self_ty, trait_path)))
        }
    };
    let method_ident = &sig.ident;
    let function_sig = Signature {
        ident: ident.clone(),
        inputs: inputs.into_iter().collect(),
        output,
        ..sig.clone()
    };
    let mut attrs: Vec<syn::Attribute> = cfgs(&imp.attrs).into_iter().cloned().collect();
    attrs.extend(
        method
            .attrs
            .iter()
            .filter(|a| a.path().is_ident("cfg") || a.path().is_ident("doc"))
            .cloned(),
    );
    let function = ItemFn {
        attrs,
        vis: syn::parse_quote!(pub(super)),
        sig: function_sig,
        block: Box::new(syn::parse_quote!({
            <#self_ty as #helper>::#method_ident(#(#args),*)
        })),
    };
    let type_name =
        type_ident(self_ty).map_or_else(|| "value".to_owned(), |i| snake(&i.to_string()));
    let (name, handle_name) = match trait_path {
        Some(path) => {
            let trait_name = path
                .segments
                .last()
                .map_or_else(|| "trait".to_owned(), |s| snake(&s.ident.to_string()));
            (
                format!(
                    "<{} as {}>::{}",
                    text::tokens(self_ty),
                    text::tokens(path),
                    method_ident
                ),
                format_ident!("{}_{}_{}", type_name, trait_name, method_ident),
            )
        }
        None => (
            format!("{}::{}", text::tokens(self_ty), method_ident),
            format_ident!("{}_{}", type_name, method_ident),
        ),
    };
    let direct = match trait_path {
        Some(path) => quote!(<#self_ty as #path>::#method_ident),
        None => quote!(<#self_ty>::#method_ident),
    };
    MethodPlan {
        member,
        function,
        name,
        handle_name,
        direct,
    }
}

/// The user's name for a parameter when it is a plain identifier (without `mut`), else
/// `__hotmod_arg<index>`.
fn param_ident(pat: &Pat, index: usize) -> Ident {
    match pat {
        Pat::Ident(p) if p.by_ref.is_none() && p.subpat.is_none() => {
            Ident::new(&p.ident.to_string(), p.ident.span())
        }
        _ => Ident::new(&format!("__hotmod_arg{index}"), pat.span()),
    }
}

/// The doc line a hot method's `Handle` method gets after the method's own (a trait impl's
/// method usually has none, and `missing_docs` asks for one on a public method).
pub fn handle_doc(method: &MethodPlan) -> TokenStream {
    let doc = format!(
        "`{}` in the pinned generation; the receiver is the first argument.",
        method.name
    );
    quote!(#[doc = ""] #[doc = #doc])
}

/// `mut self` → `self` (a declaration takes no binding mode; a delegating method would leave
/// it unused). `&mut self`'s `mut` is the reference's, and stays.
fn unbind_mut(receiver: &mut syn::Receiver) {
    if receiver.reference.is_none() {
        receiver.mutability = None;
    }
}

/// `ty` with `Self` replaced by the impl's type, and `Self::Assoc` by `<Type as Trait>::Assoc`.
fn concrete(ty: &Type, self_ty: &Type, trait_path: Option<&Path>) -> Type {
    struct Replace<'a> {
        self_ty: &'a Type,
        trait_path: Option<&'a Path>,
    }
    impl VisitMut for Replace<'_> {
        fn visit_type_mut(&mut self, ty: &mut Type) {
            if let Type::Path(tp) = ty {
                if tp.qself.is_none()
                    && tp.path.leading_colon.is_none()
                    && tp.path.segments.first().is_some_and(|s| s.ident == "Self")
                {
                    let rest: Vec<_> = tp.path.segments.iter().skip(1).cloned().collect();
                    if rest.is_empty() {
                        *ty = self.self_ty.clone();
                        return;
                    }
                    let mut path = match self.trait_path {
                        Some(path) => path.clone(),
                        None => Path {
                            leading_colon: None,
                            segments: Default::default(),
                        },
                    };
                    let position = path.segments.len();
                    path.segments.extend(rest);
                    *ty = Type::Path(TypePath {
                        qself: Some(QSelf {
                            lt_token: Default::default(),
                            ty: Box::new(self.self_ty.clone()),
                            position,
                            as_token: self.trait_path.map(|_| Default::default()),
                            gt_token: Default::default(),
                        }),
                        path,
                    });
                    syn::visit_mut::visit_type_mut(self, ty);
                    return;
                }
            }
            syn::visit_mut::visit_type_mut(self, ty);
        }
    }
    let mut ty = ty.clone();
    Replace {
        self_ty,
        trait_path,
    }
    .visit_type_mut(&mut ty);
    ty
}

fn type_ident(ty: &Type) -> Option<&Ident> {
    match ty {
        Type::Path(tp) => tp.path.segments.last().map(|s| &s.ident),
        _ => None,
    }
}

/// `HttpReply` → `http_reply`.
fn snake(name: &str) -> String {
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.extend(c.to_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// What replaces the user's impl in a reloadable build: the impl with each hot method's body a
/// call of its wrapper, and the private trait and impl that keep the bodies as written.
pub fn expand(imp: &ItemImpl, plan: &ImplPlan) -> TokenStream {
    let self_ty = &plan.self_ty;
    let trait_path = imp.trait_.as_ref().map(|(_, path, _)| path);
    let helper = &plan.helper;
    let impl_cfgs = cfgs(&imp.attrs);
    let mut delegating = imp.clone();
    let mut declarations = Vec::new();
    let mut bodies = Vec::new();
    for method in &plan.methods {
        let ImplItem::Fn(original) = &imp.items[method.member] else {
            continue;
        };
        let sig = &original.sig;
        let wrapper = &method.function.sig.ident;
        // The trait's declaration: the concrete signature, no patterns (a declaration takes none).
        let mut declared = sig.clone();
        for input in declared.inputs.iter_mut() {
            match input {
                // `self: Box<Self>` stays: in a trait, `Self` is the implementing type.
                FnArg::Receiver(receiver) => unbind_mut(receiver),
                FnArg::Typed(typed) => {
                    *typed.pat = Pat::Verbatim(quote!(_));
                    *typed.ty = concrete(&typed.ty, self_ty, trait_path);
                }
            }
        }
        declared.output = method.function.sig.output.clone();
        let method_cfgs = cfgs(&original.attrs);
        declarations.push(quote!(#(#method_cfgs)* #declared;));
        // The trait's impl: the method as written, with the declaration's concrete types.
        let mut body = original.clone();
        body.vis = Visibility::Inherited;
        body.defaultness = None;
        body.attrs.retain(|a| {
            !(a.path().is_ident("doc")
                || a.path().is_ident("must_use")
                || a.path().is_ident("deprecated"))
        });
        for input in body.sig.inputs.iter_mut() {
            if let FnArg::Typed(typed) = input {
                *typed.ty = concrete(&typed.ty, self_ty, trait_path);
            }
        }
        body.sig.output = method.function.sig.output.clone();
        bodies.push(body);
        // The user's method: same signature, its body a call of the wrapper.
        let ImplItem::Fn(delegate) = &mut delegating.items[method.member] else {
            continue;
        };
        let mut args = Vec::new();
        for (index, input) in delegate.sig.inputs.iter_mut().enumerate() {
            match input {
                FnArg::Receiver(receiver) => {
                    unbind_mut(receiver);
                    args.push(quote!(self));
                }
                FnArg::Typed(typed) => {
                    let name = param_ident(&typed.pat, index);
                    *typed.pat = Pat::Verbatim(quote!(#name));
                    args.push(quote!(#name));
                }
            }
        }
        delegate.attrs.retain(|a| !a.path().is_ident("inline"));
        delegate.attrs.push(syn::parse_quote!(#[inline]));
        delegate.block = syn::parse_quote!({ #wrapper(#(#args),*) });
    }
    let helper_doc = format!(
        "The hot methods of `{}` as written: what every generation runs.",
        text::tokens(self_ty)
    );
    quote! {
        #delegating

        #[doc = #helper_doc]
        #[doc(hidden)]
        #[allow(non_camel_case_types)]
        #(#impl_cfgs)*
        trait #helper {
            #(#declarations)*
        }

        #(#impl_cfgs)*
        impl #helper for #self_ty {
            #(#bodies)*
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{concrete, snake};
    use quote::quote;
    use syn::parse_quote;

    #[test]
    fn self_becomes_the_type_and_its_associated_types_a_qualified_path() {
        let self_ty: syn::Type = parse_quote!(Counter);
        let iterator: syn::Path = parse_quote!(Iterator);
        let ty = concrete(&parse_quote!(Option<Self::Item>), &self_ty, Some(&iterator));
        assert_eq!(
            quote!(#ty).to_string().replace(' ', ""),
            "Option<<CounterasIterator>::Item>"
        );
        let ty = concrete(&parse_quote!(&mut Vec<Self>), &self_ty, None);
        assert_eq!(
            quote!(#ty).to_string(),
            quote!(&mut Vec<Counter>).to_string()
        );
    }

    #[test]
    fn type_names_become_snake_case() {
        assert_eq!(snake("Reply"), "reply");
        assert_eq!(snake("HttpReply"), "http_reply");
    }
}
