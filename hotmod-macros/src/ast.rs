//! What `#[hot_module]` sees in its input: the attribute's arguments and the module's items in
//! the order they were written, each borrowed from the parsed `syn::ItemMod` and classified.
//! [`crate::parse`] builds these, [`crate::validate`] checks them, the expansions read them.

use std::borrow::Cow;
use std::collections::BTreeSet;

use proc_macro2::TokenStream;
use quote::{ToTokens, TokenStreamExt};
use syn::{
    AttrStyle, Attribute, GenericArgument, Ident, Item, ItemFn, ItemImpl, ItemMod, ItemStatic,
    LitStr, PathArguments, Type,
};

use crate::methods::{ImplPlan, MethodPlan};

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

/// The annotated module.
pub struct HotModule<'a> {
    pub module: &'a ItemMod,
    /// Every item of the module, in source order: the expansions emit them in that order
    /// (`macro_rules!` definitions are textually scoped).
    pub items: Vec<ModItem<'a>>,
}

/// One item of the module.
pub enum ModItem<'a> {
    /// A `pub fn`: a hot function.
    Hot(HotFn<'a>),
    /// A function with `#[hotmod::on_load]`.
    OnLoad(OnLoad<'a>),
    /// A static with `#[hotmod::state]`.
    State(StateStatic<'a>),
    /// An `impl` block of a public type of the module with hot methods.
    Impl(HotImpl<'a>),
    /// Anything else (private functions, types, constants, …): each generation has its own
    /// copy, as written.
    Other(&'a Item),
}

/// One `pub fn` of the module, or the function standing for a hot method.
pub struct HotFn<'a> {
    pub item: &'a ItemFn,
    /// For a hot method: its names (the function's is generated).
    pub method: Option<&'a MethodPlan>,
    /// The typed parameters (a `self` receiver has none; validation refuses it).
    pub params: Vec<Param<'a>>,
    /// The return type; `()` when none is written.
    pub output: Cow<'a, Type>,
    /// The return type is `hotmod::Pinned<…>`: the value keeps its generation loaded.
    pub pinned: bool,
}

/// `impl Type { pub fn method(&self) … }` (or a trait impl) with hot methods.
pub struct HotImpl<'a> {
    pub item: &'a ItemImpl,
    pub plan: &'a ImplPlan,
    /// One per hot method, in source order.
    pub functions: Vec<HotFn<'a>>,
}

impl HotFn<'_> {
    /// Its method on `Handle`: the function's name, or for a hot method `type_method`.
    pub fn handle_name(&self) -> &Ident {
        self.method
            .map_or(&self.item.sig.ident, |method| &method.handle_name)
    }

    /// What the descriptor and messages call it: `greet`, `Reply::label`.
    pub fn display_name(&self) -> String {
        self.method.map_or_else(
            || self.item.sig.ident.to_string(),
            |method| method.name.clone(),
        )
    }
}

pub struct Param<'a> {
    /// The name the wrapper uses (the user's when it is a plain identifier).
    pub ident: Ident,
    pub ty: &'a Type,
}

/// `#[hotmod::on_load] fn init() -> Result<(), E>`.
pub struct OnLoad<'a> {
    pub item: &'a ItemFn,
    /// The `#[on_load]` attribute, which the expansion consumes.
    pub attr: &'a Attribute,
}

/// `#[hotmod::state(version = 2, migrate = upgrade)] static WORLD: hotmod::State<World> = …;`
pub struct StateStatic<'a> {
    pub item: &'a ItemStatic,
    /// The `#[state]` attribute, which the expansion consumes.
    pub attr: &'a Attribute,
    pub version: u32,
    pub migrate: Option<syn::Path>,
}

impl<'a> HotModule<'a> {
    /// The module's outer attributes (`#[doc]`, `#[cfg]`, …), for the generated `mod`.
    pub fn outer_attrs(&self) -> impl Iterator<Item = &'a Attribute> {
        self.module
            .attrs
            .iter()
            .filter(|a| matches!(a.style, AttrStyle::Outer))
    }

    /// The module's inner attributes (`#![allow(…)]`), which go inside the generated `mod`.
    pub fn inner_attrs(&self) -> impl Iterator<Item = &'a Attribute> {
        self.module
            .attrs
            .iter()
            .filter(|a| matches!(a.style, AttrStyle::Inner(_)))
    }

    /// The hot functions, hot methods' included, in source order.
    pub fn functions(&self) -> impl Iterator<Item = &HotFn<'a>> {
        self.items.iter().flat_map(|item| match item {
            ModItem::Hot(f) => std::slice::from_ref(f),
            ModItem::Impl(imp) => &imp.functions[..],
            _ => &[],
        })
    }

    /// The `#[hotmod::state]` statics, in source order.
    pub fn states(&self) -> impl Iterator<Item = &StateStatic<'a>> {
        self.items.iter().filter_map(|item| match item {
            ModItem::State(st) => Some(st),
            _ => None,
        })
    }

    /// The `#[hotmod::on_load]` functions, in source order (validation allows one).
    pub fn on_loads(&self) -> impl Iterator<Item = &OnLoad<'a>> {
        self.items.iter().filter_map(|item| match item {
            ModItem::OnLoad(f) => Some(f),
            _ => None,
        })
    }

    /// The on_load function's name, if the module has one.
    pub fn on_load(&self) -> Option<&'a Ident> {
        self.on_loads().next().map(|f| &f.item.sig.ident)
    }

    /// The items that are neither hot functions nor carry one of hotmod's attributes.
    pub fn others(&self) -> impl Iterator<Item = &'a Item> + '_ {
        self.items.iter().filter_map(|item| match item {
            ModItem::Other(item) => Some(*item),
            _ => None,
        })
    }
}

impl ModItem<'_> {
    /// The name the item defines in the module, if it defines one.
    pub fn ident(&self) -> Option<&Ident> {
        match self {
            ModItem::Hot(f) => Some(&f.item.sig.ident),
            ModItem::OnLoad(f) => Some(&f.item.sig.ident),
            ModItem::State(st) => Some(&st.item.ident),
            ModItem::Impl(_) => None,
            ModItem::Other(item) => item_ident(item),
        }
    }
}

/// The item as the user wrote it, without the attribute `#[hot_module]` consumed (`#[on_load]`,
/// `#[state]`), which would mean nothing left in place.
impl ToTokens for ModItem<'_> {
    fn to_tokens(&self, tokens: &mut TokenStream) {
        match self {
            ModItem::Hot(f) => f.item.to_tokens(tokens),
            ModItem::Impl(imp) => imp.item.to_tokens(tokens),
            ModItem::Other(item) => item.to_tokens(tokens),
            // As syn prints an `ItemFn`, minus one attribute.
            ModItem::OnLoad(OnLoad { item, attr }) => {
                tokens.append_all(outer_attrs_but(&item.attrs, attr));
                item.vis.to_tokens(tokens);
                item.sig.to_tokens(tokens);
                item.block.brace_token.surround(tokens, |tokens| {
                    tokens.append_all(
                        item.attrs
                            .iter()
                            .filter(|a| matches!(a.style, AttrStyle::Inner(_))),
                    );
                    tokens.append_all(&item.block.stmts);
                });
            }
            // As syn prints an `ItemStatic`, minus one attribute.
            ModItem::State(StateStatic { item, attr, .. }) => {
                tokens.append_all(outer_attrs_but(&item.attrs, attr));
                item.vis.to_tokens(tokens);
                item.static_token.to_tokens(tokens);
                item.mutability.to_tokens(tokens);
                item.ident.to_tokens(tokens);
                item.colon_token.to_tokens(tokens);
                item.ty.to_tokens(tokens);
                item.eq_token.to_tokens(tokens);
                item.expr.to_tokens(tokens);
                item.semi_token.to_tokens(tokens);
            }
        }
    }
}

/// The outer attributes of `attrs` except `consumed` (one of them, by address).
fn outer_attrs_but<'a>(
    attrs: &'a [Attribute],
    consumed: &'a Attribute,
) -> impl Iterator<Item = &'a Attribute> {
    attrs
        .iter()
        .filter(move |a| matches!(a.style, AttrStyle::Outer) && !std::ptr::eq(*a, consumed))
}

pub fn item_ident(item: &Item) -> Option<&Ident> {
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

/// The `T` of `hotmod::Pinned<T>` (or of `Box<T>`, `Arc<T>`): a path with one type argument.
pub fn single_type_argument(ty: &Type) -> Option<&Type> {
    match ty {
        Type::Paren(inner) => single_type_argument(&inner.elem),
        Type::Group(inner) => single_type_argument(&inner.elem),
        Type::Path(path) => {
            let PathArguments::AngleBracketed(args) = &path.path.segments.last()?.arguments else {
                return None;
            };
            match args.args.iter().collect::<Vec<_>>()[..] {
                [GenericArgument::Type(inner)] => Some(inner),
                _ => None,
            }
        }
        _ => None,
    }
}

/// The `#[cfg]` attributes of an item, field or variant: everything generated for it carries
/// them, because an attribute macro sees its input before `#[cfg]` is evaluated.
pub fn cfgs(attrs: &[syn::Attribute]) -> Vec<&syn::Attribute> {
    attrs.iter().filter(|a| a.path().is_ident("cfg")).collect()
}

/// `hotmod::Pinned<…>` (any path ending in `Pinned`).
pub fn is_pinned(ty: &Type) -> bool {
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

/// Every path segment a type mentions: the candidates for the module's own types in it.
pub fn collect_idents(ty: &Type, names: &mut BTreeSet<String>) {
    struct Collector<'a>(&'a mut BTreeSet<String>);
    impl<'ast> syn::visit::Visit<'ast> for Collector<'_> {
        fn visit_path_segment(&mut self, segment: &'ast syn::PathSegment) {
            self.0.insert(segment.ident.to_string());
            syn::visit::visit_path_segment(self, segment);
        }
    }
    syn::visit::Visit::visit_type(&mut Collector(names), ty);
}
