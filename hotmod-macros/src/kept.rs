//! The items of a hot module that a host runs its own copy of, with a digest of each one's
//! source: public constants and statics (their values are compiled into the host), and the
//! methods of the module's public types that are not hot (marked `#[hotmod::not_hot]`, or in an
//! impl so marked; see `methods.rs`): a call of one is an ordinary call into the host's copy of
//! the module, generation 0. A private type's methods run only in module code. A load
//! whose library has other digests is accepted, and reported (`Event::StaleItems`), so that
//! nobody is left wondering why an edit did not show.

use std::collections::BTreeSet;

use proc_macro2::TokenStream;
use quote::quote;
use syn::{ImplItem, Item};

use crate::ast::{self, HotModule, ModItem};
use crate::methods;
use crate::text;

/// One `KeptItem { name, digest }` per such item, each behind the `#[cfg]`s it depends on.
pub fn entries(private: &TokenStream, hot: &HotModule) -> Vec<TokenStream> {
    let public = match &hot.module.content {
        Some((_, items)) => methods::public_types(items),
        None => Default::default(),
    };
    let mut out = Vec::new();
    for item in &hot.items {
        match item {
            ModItem::Other(item) => collect(private, &public, item, "", &[], &mut out),
            // What is left of a hot impl: its methods marked `not_hot`, its private methods.
            ModItem::Impl(imp) => {
                let item = Item::Impl(imp.item.clone());
                collect(private, &public, &item, "", &[], &mut out);
            }
            _ => {}
        }
    }
    out
}

fn collect(
    private: &TokenStream,
    public: &BTreeSet<String>,
    item: &Item,
    prefix: &str,
    outer_cfgs: &[&syn::Attribute],
    out: &mut Vec<TokenStream>,
) {
    let mut cfgs: Vec<&syn::Attribute> = outer_cfgs.to_vec();
    let mut entry = |cfgs: &[&syn::Attribute], name: String, source: String| {
        let digest = fnv1a(source.as_bytes());
        out.push(quote! {
            #(#cfgs)*
            #private::KeptItem {
                name: #private::StrRef::new(#name),
                digest: #digest,
            }
        });
    };
    match item {
        Item::Const(c) if methods::is_pub(&c.vis) => {
            cfgs.extend(ast::cfgs(&c.attrs));
            entry(&cfgs, format!("const {prefix}{}", c.ident), source(item));
        }
        Item::Static(s) if methods::is_pub(&s.vis) => {
            cfgs.extend(ast::cfgs(&s.attrs));
            entry(&cfgs, format!("static {prefix}{}", s.ident), source(item));
        }
        Item::Impl(imp) if methods::of_public_type(imp, public) => {
            cfgs.extend(ast::cfgs(&imp.attrs));
            let self_ty = text::tokens(&imp.self_ty);
            let owner = match &imp.trait_ {
                Some((_, path, _)) => format!("<{prefix}{self_ty} as {}>", text::tokens(path)),
                None => format!("{prefix}{self_ty}"),
            };
            // The impl's header (generics, bounds) is part of every method's source.
            let header = text::tokens(&imp.generics) + &self_ty;
            for member in &imp.items {
                let (ident, vis, attrs) = match member {
                    ImplItem::Fn(f) => (&f.sig.ident, &f.vis, &f.attrs),
                    ImplItem::Const(c) => (&c.ident, &c.vis, &c.attrs),
                    _ => continue,
                };
                // Every method of a trait impl is reachable through the trait; of an inherent
                // impl, the public ones.
                if imp.trait_.is_none() && !methods::is_pub(vis) {
                    continue;
                }
                // A hot method runs the current generation: nothing of it is kept.
                if let ImplItem::Fn(f) = member {
                    if prefix.is_empty()
                        && methods::impl_is_hot(imp, public)
                        && methods::is_hot_member(imp, f)
                    {
                        continue;
                    }
                }
                let mut member_cfgs = cfgs.clone();
                member_cfgs.extend(ast::cfgs(attrs));
                let mut member = member.clone();
                strip_docs_impl_item(&mut member);
                entry(
                    &member_cfgs,
                    format!("{owner}::{ident}"),
                    header.clone() + &text::tokens(&member),
                );
            }
        }
        Item::Mod(m) => {
            if let Some((_, items)) = &m.content {
                cfgs.extend(ast::cfgs(&m.attrs));
                let prefix = format!("{prefix}{}::", m.ident);
                for inner in items {
                    collect(private, public, inner, &prefix, &cfgs, out);
                }
            }
        }
        _ => {}
    }
}

/// The item's tokens without doc comments: a changed comment changes no code.
fn source(item: &Item) -> String {
    let mut item = item.clone();
    match &mut item {
        Item::Const(c) => c.attrs.retain(|a| !a.path().is_ident("doc")),
        Item::Static(s) => s.attrs.retain(|a| !a.path().is_ident("doc")),
        _ => {}
    }
    text::tokens(&item)
}

fn strip_docs_impl_item(item: &mut ImplItem) {
    match item {
        ImplItem::Fn(f) => f.attrs.retain(|a| !a.path().is_ident("doc")),
        ImplItem::Const(c) => c.attrs.retain(|a| !a.path().is_ident("doc")),
        _ => {}
    }
}

/// FNV-1a, 64 bits: stable across compilers and runs (the host's and the library's digests are
/// computed by two compilations of this macro).
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}
