//! What a hot module's boundary needs from its items, in both builds.
//!
//! The structs and enums its signatures name (directly, through fields, type aliases, trait
//! methods, in submodules too) get `#[derive(hotmod::Describe)]`, and its traits so named get
//! descriptions of their trait objects. Which types those are is read from names, but nothing
//! rests on that reading: the compiler requires `Describe` of every parameter and result type,
//! so a type the reading misses (one from another crate, one reached through a generic) is a
//! compile error that says to derive it, never an unchecked type.
//!
//! And every hot function's result must be `Owned` unless it is a `hotmod::Pinned`; every
//! parameter must be `Describe` (a `&mut T` needs `T: Owned`, see hotmod's `describe.rs`). The
//! compiler checks both, through any alias, and points at the type as written.

use std::collections::BTreeSet;

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Item, Path, Type};

use crate::ast::{cfgs, collect_idents, single_type_argument, HotFn, HotModule};
use crate::describe::{erase_lifetimes, trait_descriptions};

pub struct Boundary {
    krate: Path,
    names: BTreeSet<String>,
}

impl Boundary {
    pub fn new(krate: &Path, hot: &HotModule) -> Boundary {
        let mut all = Vec::new();
        flatten(hot.others(), &mut all);
        let mut names = BTreeSet::new();
        for f in hot.functions() {
            for p in &f.params {
                collect_idents(p.ty, &mut names);
            }
            collect_idents(&f.output, &mut names);
        }
        // Follow fields, aliases and trait methods until nothing new appears.
        loop {
            let before = names.len();
            for item in &all {
                let Some(ident) = defined_name(item) else {
                    continue;
                };
                if !names.contains(&ident) {
                    continue;
                }
                for ty in named_types(item) {
                    collect_idents(ty, &mut names);
                }
                if let Item::Trait(t) = item {
                    for bound in &t.supertraits {
                        if let syn::TypeParamBound::Trait(tb) = bound {
                            if let Some(last) = tb.path.segments.last() {
                                names.insert(last.ident.to_string());
                            }
                        }
                    }
                }
            }
            if names.len() == before {
                break;
            }
        }
        Boundary {
            krate: krate.clone(),
            names,
        }
    }

    /// The item as written, with what crossing the boundary needs if it does.
    pub fn item(&self, item: &Item) -> TokenStream {
        let krate = &self.krate;
        match item {
            Item::Struct(s) if self.crosses(&s.ident) && !derives_describe(&s.attrs) => {
                let mut s = s.clone();
                s.attrs.extend(self.derive_attrs());
                quote!(#s)
            }
            Item::Enum(e) if self.crosses(&e.ident) && !derives_describe(&e.attrs) => {
                let mut e = e.clone();
                e.attrs.extend(self.derive_attrs());
                quote!(#e)
            }
            Item::Trait(t) if self.crosses(&t.ident) && !describes_itself(&t.attrs) => {
                let descriptions = trait_descriptions(&quote!(#krate), t);
                let cfgs = cfgs(&t.attrs);
                quote!(#t #(#cfgs)* #descriptions)
            }
            Item::Mod(m) if m.content.is_some() => {
                let mut m = m.clone();
                if let Some((_, items)) = &mut m.content {
                    for inner in items.iter_mut() {
                        *inner = Item::Verbatim(self.item(inner));
                    }
                }
                quote!(#m)
            }
            other => quote!(#other),
        }
    }

    /// Compile-time checks of every hot function's types: parameters and result describe
    /// themselves, and a result that is not a `hotmod::Pinned` is `Owned`.
    pub fn checks(&self, functions: &[&HotFn]) -> TokenStream {
        let krate = &self.krate;
        let d = quote!(#krate::describe);
        let checks = functions.iter().map(|f| {
            let cfgs = cfgs(&f.item.attrs);
            let params = f.params.iter().map(|p| {
                let ty = erase_lifetimes(p.ty);
                quote_spanned!(p.ty.span()=> #d::__assert_described::<#ty>();)
            });
            let output = &f.output;
            let ret = described_result(f);
            let owned = if f.pinned {
                TokenStream::new()
            } else {
                quote_spanned!(output.span()=> #d::__assert_owned::<#ret>();)
            };
            quote! {
                #(#cfgs)*
                {
                    #(#params)*
                    #d::__assert_described::<#ret>();
                    #owned
                }
            }
        });
        quote! {
            #[doc(hidden)]
            const _: () = {
                #[allow(dead_code)]
                fn __hotmod_boundary_types() {
                    #(#checks)*
                }
            };
        }
    }

    fn crosses(&self, ident: &syn::Ident) -> bool {
        self.names.contains(&ident.to_string())
    }

    fn derive_attrs(&self) -> Vec<syn::Attribute> {
        let krate = &self.krate;
        let path = quote!(#krate).to_string().replace(' ', "");
        let mut attrs: Vec<syn::Attribute> = vec![syn::parse_quote!(#[derive(#krate::Describe)])];
        if path != "::hotmod" {
            attrs.push(syn::parse_quote!(#[hotmod(crate = #path)]));
        }
        attrs
    }
}

/// What the descriptor describes of a hot function's result: the result itself, or for a
/// `hotmod::Pinned<P>` the pointer `P` it carries. `Pinned` itself has no description, so a
/// `Pinned` anywhere else in a signature (a parameter, `Option<Pinned<…>>`, behind an alias) is
/// a compile error: only a whole `Pinned` result is tied to its generation by the call.
pub fn described_result(f: &HotFn) -> Type {
    let pointer = if f.pinned {
        single_type_argument(&f.output)
    } else {
        None
    };
    erase_lifetimes(pointer.unwrap_or(&f.output))
}

/// `#[derive(.., Describe, ..)]` already written by the user.
fn derives_describe(attrs: &[syn::Attribute]) -> bool {
    attrs
        .iter()
        .filter(|a| a.path().is_ident("derive"))
        .any(|a| {
            let mut found = false;
            let _ = a.parse_nested_meta(|meta| {
                if meta
                    .path
                    .segments
                    .last()
                    .is_some_and(|s| s.ident == "Describe")
                {
                    found = true;
                }
                Ok(())
            });
            found
        })
}

/// `#[hotmod::describe_trait]` already written by the user.
fn describes_itself(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|a| {
        a.path()
            .segments
            .last()
            .is_some_and(|s| s.ident == "describe_trait")
    })
}

/// Every item of the module and its inline submodules.
fn flatten<'a>(items: impl Iterator<Item = &'a Item>, out: &mut Vec<&'a Item>) {
    for item in items {
        out.push(item);
        if let Item::Mod(m) = item {
            if let Some((_, inner)) = &m.content {
                flatten(inner.iter(), out);
            }
        }
    }
}

fn defined_name(item: &Item) -> Option<String> {
    match item {
        Item::Struct(s) => Some(s.ident.to_string()),
        Item::Enum(e) => Some(e.ident.to_string()),
        Item::Trait(t) => Some(t.ident.to_string()),
        Item::Type(t) => Some(t.ident.to_string()),
        _ => None,
    }
}

/// The types an item's definition names: fields, an alias's target, a trait's methods.
fn named_types(item: &Item) -> Vec<&Type> {
    match item {
        Item::Struct(s) => s.fields.iter().map(|f| &f.ty).collect(),
        Item::Enum(e) => e
            .variants
            .iter()
            .flat_map(|v| v.fields.iter().map(|f| &f.ty))
            .collect(),
        Item::Type(t) => vec![&*t.ty],
        Item::Trait(t) => t
            .items
            .iter()
            .filter_map(|item| match item {
                syn::TraitItem::Fn(f) => Some(&f.sig),
                _ => None,
            })
            .flat_map(|sig| {
                let inputs = sig.inputs.iter().filter_map(|arg| match arg {
                    syn::FnArg::Typed(pt) => Some(&*pt.ty),
                    syn::FnArg::Receiver(_) => None,
                });
                let output = match &sig.output {
                    syn::ReturnType::Type(_, ty) => Some(&**ty),
                    syn::ReturnType::Default => None,
                };
                inputs.chain(output)
            })
            .collect(),
        _ => Vec::new(),
    }
}
