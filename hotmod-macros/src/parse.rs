//! Parsing: the attribute's arguments into [`Args`], the annotated item into a [`HotModule`]
//! that borrows its items. Only what cannot be represented stops here (an item that is not an
//! inline module, arguments that do not parse); every other mistake is left to
//! [`crate::validate`], so that one compile reports all of them.

use std::borrow::Cow;

use proc_macro2::{Span, TokenStream};
use syn::spanned::Spanned;
use syn::{FnArg, Ident, Item, ItemFn, LitStr, Pat, ReturnType};

use crate::ast::{
    is_pinned, item_ident, Args, HotFn, HotImpl, HotModule, ModItem, OnLoad, Param, StateStatic,
};
use crate::ctxt::Ctxt;
use crate::methods::ImplPlan;

/// `#[hot_module(…)]`'s arguments; on a mistake, the error and the defaults.
pub fn args(cx: &Ctxt, tokens: TokenStream) -> Args {
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
    if let Err(e) = syn::parse::Parser::parse2(parser, tokens) {
        cx.syn_error(e);
    }
    args
}

/// The module and its items in source order; `None` (with the error in `cx`) when the item is
/// not an inline module.
pub fn module<'a>(cx: &Ctxt, item: &'a Item, plans: &'a [ImplPlan]) -> Option<HotModule<'a>> {
    let Item::Mod(module) = item else {
        cx.syn_error(syn::Error::new(
            item_span(item),
            "#[hot_module] goes on an inline module: `#[hotmod::hot_module] pub mod name { pub fn ... }`",
        ));
        return None;
    };
    let Some((_, items)) = &module.content else {
        cx.syn_error(syn::Error::new(
            module.span(),
            "#[hot_module] needs the module's body inline (`mod name { ... }`), not `mod name;`: the attribute must see the functions",
        ));
        return None;
    };
    let items = items
        .iter()
        .enumerate()
        .map(
            |(position, item)| match (item, plans.iter().find(|p| p.position == position)) {
                (Item::Impl(imp), Some(plan)) => ModItem::Impl(HotImpl {
                    item: imp,
                    plan,
                    functions: plan
                        .methods
                        .iter()
                        .map(|method| HotFn {
                            method: Some(method),
                            ..hot_fn(&method.function)
                        })
                        .collect(),
                }),
                _ => mod_item(cx, item),
            },
        )
        .collect();
    Some(HotModule { module, items })
}

fn mod_item<'a>(cx: &Ctxt, item: &'a Item) -> ModItem<'a> {
    match item {
        Item::Static(st) => match st.attrs.iter().find(|a| last_segment_is(a, "state")) {
            Some(attr) => ModItem::State(state(cx, st, attr)),
            None => ModItem::Other(item),
        },
        Item::Fn(f) => match f.attrs.iter().find(|a| last_segment_is(a, "on_load")) {
            Some(attr) => ModItem::OnLoad(OnLoad { item: f, attr }),
            None if matches!(f.vis, syn::Visibility::Public(_)) => ModItem::Hot(hot_fn(f)),
            None => ModItem::Other(item),
        },
        other => ModItem::Other(other),
    }
}

/// `#[on_load]`, `#[hotmod::state(…)]`, … (any path ending in `name`).
fn last_segment_is(attr: &syn::Attribute, name: &str) -> bool {
    attr.path()
        .segments
        .last()
        .is_some_and(|segment| segment.ident == name)
}

fn hot_fn(item: &ItemFn) -> HotFn<'_> {
    let params = item
        .sig
        .inputs
        .iter()
        .enumerate()
        .filter_map(|(index, input)| match input {
            FnArg::Receiver(_) => None,
            FnArg::Typed(typed) => {
                let ident = match &*typed.pat {
                    Pat::Ident(p) if p.by_ref.is_none() && p.subpat.is_none() => p.ident.clone(),
                    _ => Ident::new(&format!("__hotmod_arg{index}"), typed.pat.span()),
                };
                Some(Param {
                    ident,
                    ty: &typed.ty,
                })
            }
        })
        .collect();
    let output = match &item.sig.output {
        ReturnType::Default => Cow::Owned(syn::parse_quote!(())),
        ReturnType::Type(_, ty) => Cow::Borrowed(&**ty),
    };
    HotFn {
        item,
        method: None,
        params,
        pinned: is_pinned(&output),
        output,
    }
}

/// `#[hotmod::state(version = N, migrate = function)]`'s arguments (both optional).
fn state<'a>(cx: &Ctxt, item: &'a syn::ItemStatic, attr: &'a syn::Attribute) -> StateStatic<'a> {
    let mut state = StateStatic {
        item,
        attr,
        version: 1,
        migrate: None,
    };
    if matches!(attr.meta, syn::Meta::List(_)) {
        let parsed = attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("version") {
                state.version = meta.value()?.parse::<syn::LitInt>()?.base10_parse()?;
                Ok(())
            } else if meta.path.is_ident("migrate") {
                state.migrate = Some(meta.value()?.parse()?);
                Ok(())
            } else {
                Err(meta.error("#[hotmod::state] takes `version = N` and `migrate = function`"))
            }
        });
        if let Err(e) = parsed {
            cx.syn_error(e);
        }
    }
    state
}

/// The span of an item's introducing keyword and name, so the error points at the item.
fn item_span(item: &Item) -> Span {
    match item {
        Item::Fn(f) => f.sig.span(),
        other => item_ident(other).map_or_else(|| other.span(), Ident::span),
    }
}
