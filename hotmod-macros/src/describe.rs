//! `#[derive(Describe)]`, and the `dyn Trait` descriptions `#[hot_module]` adds for its traits.
//!
//! Like serde_derive, this only names things: every size, offset and discriminant is an
//! expression the compiler evaluates (`size_of`, `offset_of!`, the discriminant expression as
//! written, cast), and every field's type is described by its own `Describe`, resolved by the
//! compiler through aliases, modules and crates.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::visit_mut::VisitMut;
use syn::{Data, DeriveInput, Fields, Path, Type};

/// What `#[hotmod(..)]` on the deriving type says.
struct Options {
    krate: Path,
    opaque: bool,
}

fn options(input: &DeriveInput) -> syn::Result<Options> {
    let mut options = Options {
        krate: syn::parse_quote!(::hotmod),
        opaque: false,
    };
    for attr in input.attrs.iter().filter(|a| a.path().is_ident("hotmod")) {
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("crate") {
                let text: syn::LitStr = meta.value()?.parse()?;
                options.krate = text.parse()?;
                Ok(())
            } else if meta.path.is_ident("opaque") {
                options.opaque = true;
                Ok(())
            } else {
                Err(meta.error(
                    "unknown hotmod argument: `#[hotmod(opaque)]` (a newtype around another crate's type, compared by size, alignment and the wrapped type's `TypeId`) or `#[hotmod(crate = \"path::to::hotmod\")]`",
                ))
            }
        })?;
    }
    Ok(options)
}

pub fn derive(input: &DeriveInput) -> syn::Result<TokenStream> {
    let options = options(input)?;
    let krate = &options.krate;
    let d = quote!(#krate::describe);
    let ident = &input.ident;
    let name = ident.to_string();
    let repr = repr(&input.attrs);

    // Every type parameter must describe itself (and be `Owned` for the `Owned` impl).
    let mut described = input.generics.clone();
    let mut owned = input.generics.clone();
    for param in described.type_params_mut() {
        param.bounds.push(syn::parse_quote!(#krate::Describe));
    }
    for param in owned.type_params_mut() {
        param.bounds.push(syn::parse_quote!(#krate::Owned));
    }
    let (impl_described, ty_generics, where_clause) = described.split_for_impl();
    let (impl_owned, _, _) = owned.split_for_impl();
    let args = input.generics.type_params().map(|p| {
        let p = &p.ident;
        quote!(#d::describer::<#p> as #d::Describer)
    });

    let body = if options.opaque {
        let inner = opaque_inner(input)?;
        if !input.generics.params.is_empty() {
            return Err(syn::Error::new_spanned(
                &input.generics,
                "an opaque type cannot be generic: it is compared by the wrapped type's `TypeId`",
            ));
        }
        quote! {
            #d::TypeDesc {
                identity: ::core::option::Option::Some(|| ::core::any::TypeId::of::<#inner>()),
                ..#d::TypeDesc::new(#d::Kind::Opaque, ::core::concat!(::core::module_path!(), "::", #name))
                    .sized::<Self>()
            }
        }
    } else {
        match &input.data {
            Data::Struct(s) => {
                let fields = fields(&d, &s.fields, true);
                quote! {
                    #d::TypeDesc {
                        repr: #repr,
                        fields: &[#(#fields),*],
                        ..#d::TypeDesc::new(#d::Kind::Struct, ::core::concat!(::core::module_path!(), "::", #name))
                            .sized::<Self>()
                            .with_args(&[#(#args),*])
                    }
                }
            }
            Data::Enum(e) => {
                let mut previous: Option<TokenStream> = None;
                let variants = e.variants.iter().map(|v| {
                    let discriminant = match (&v.discriminant, &previous) {
                        (Some((_, expr)), _) => quote!((#expr) as i128),
                        (None, Some(prev)) => quote!(#prev + 1),
                        (None, None) => quote!(0i128),
                    };
                    previous = Some(discriminant.clone());
                    let vname = v.ident.to_string();
                    let fields = fields(&d, &v.fields, false);
                    quote! {
                        #d::Variant {
                            name: #vname,
                            discriminant: #discriminant,
                            fields: &[#(#fields),*],
                        }
                    }
                });
                let variants: Vec<TokenStream> = variants.collect();
                quote! {
                    #d::TypeDesc {
                        repr: #repr,
                        variants: &[#(#variants),*],
                        ..#d::TypeDesc::new(#d::Kind::Enum, ::core::concat!(::core::module_path!(), "::", #name))
                            .sized::<Self>()
                            .with_args(&[#(#args),*])
                    }
                }
            }
            Data::Union(u) => {
                return Err(syn::Error::new_spanned(
                    u.union_token,
                    "a union cannot describe its layout to hotmod: which field is live is not known; wrap it in a struct with `#[hotmod(opaque)]` if it must cross",
                ))
            }
        }
    };

    // `Owned`: for a type without lifetime parameters, checked field by field (each check
    // points at the field's type). A type with one borrows, so it is not `Owned`.
    let owned_impl = if options.opaque || input.generics.lifetimes().next().is_some() {
        TokenStream::new()
    } else {
        let this: Type = syn::parse_quote!(#ident #ty_generics);
        let checks = field_types(&input.data).map(|ty| {
            let ty = replace_self(ty, &this);
            quote_spanned!(ty.span()=> #d::__assert_owned::<#ty>();)
        });
        quote! {
            // SAFETY: every field's type is `Owned` (checked below, at compile time), so no value
            // of this type can point into a library.
            unsafe impl #impl_owned #krate::Owned for #ident #ty_generics #where_clause {}
            #[allow(dead_code)]
            fn __hotmod_fields_are_owned #impl_owned () #where_clause {
                #(#checks)*
            }
        }
    };

    Ok(quote! {
        #[doc(hidden)]
        #[allow(non_upper_case_globals, clippy::identity_op)]
        const _: () = {
            // SAFETY: every size, alignment and offset is the compiler's (`size_of`,
            // `offset_of!`), every discriminant the compiler's evaluation of the variant's own
            // expression, every field's type its own `Describe`.
            unsafe impl #impl_described #krate::Describe for #ident #ty_generics #where_clause {
                const DESC: &'static #d::TypeDesc = &#body;
            }
            #owned_impl
        };
    })
}

/// `ty` with `Self` replaced by the deriving type, for a check outside its impl.
fn replace_self(ty: &Type, this: &Type) -> Type {
    struct Replace<'a>(&'a Type);
    impl VisitMut for Replace<'_> {
        fn visit_type_mut(&mut self, ty: &mut Type) {
            match ty {
                Type::Path(tp) if tp.qself.is_none() && tp.path.is_ident("Self") => {
                    *ty = self.0.clone();
                }
                _ => syn::visit_mut::visit_type_mut(self, ty),
            }
        }
    }
    let mut ty = ty.clone();
    Replace(this).visit_type_mut(&mut ty);
    ty
}

const OPAQUE_SHAPE: &str = "`#[hotmod(opaque)]` is for a newtype around one type of another crate: `struct MyId(other_crate::Id);`";

/// The single field an opaque newtype wraps.
fn opaque_inner(input: &DeriveInput) -> syn::Result<&Type> {
    match &input.data {
        Data::Struct(s) if s.fields.len() == 1 => {
            if let Some(field) = s.fields.iter().next() {
                return Ok(&field.ty);
            }
            Err(syn::Error::new_spanned(&input.ident, OPAQUE_SHAPE))
        }
        _ => Err(syn::Error::new_spanned(&input.ident, OPAQUE_SHAPE)),
    }
}

fn field_types(data: &Data) -> Box<dyn Iterator<Item = &Type> + '_> {
    match data {
        Data::Struct(s) => Box::new(s.fields.iter().map(|f| &f.ty)),
        Data::Enum(e) => Box::new(
            e.variants
                .iter()
                .flat_map(|v| v.fields.iter().map(|f| &f.ty)),
        ),
        Data::Union(_) => Box::new(std::iter::empty()),
    }
}

/// `Field { name, offset, ty }` for each field; offsets only for a struct's (std's `offset_of!`
/// does not reach into enum variants).
fn fields(d: &TokenStream, fields: &Fields, offsets: bool) -> Vec<TokenStream> {
    fields
        .iter()
        .enumerate()
        .map(|(i, field)| {
            let (name, member) = match &field.ident {
                Some(id) => (id.to_string(), quote!(#id)),
                None => {
                    let index = syn::Index::from(i);
                    (i.to_string(), quote!(#index))
                }
            };
            let ty = &field.ty;
            let offset = if offsets {
                quote!(::core::mem::offset_of!(Self, #member))
            } else {
                quote!(#d::Field::UNKNOWN_OFFSET)
            };
            quote_spanned! {ty.span()=>
                #d::Field {
                    name: #name,
                    offset: #offset,
                    ty: #d::describer::<#ty>,
                }
            }
        })
        .collect()
}

/// `C`, `u8`, `C, packed`: the `#[repr]` as written (its meaning is the compiler's; the text
/// tells a `repr(C)` from a default one of the same size).
fn repr(attrs: &[syn::Attribute]) -> String {
    attrs
        .iter()
        .filter(|a| a.path().is_ident("repr"))
        .filter_map(|a| match &a.meta {
            syn::Meta::List(list) => Some(list.tokens.to_string()),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// `Describe` for `dyn Trait` and its `+ Send`, `+ Sync`, `+ Send + Sync` forms, for a trait
/// of a hot module: its supertraits (each a `dyn` of its own description) and its methods in
/// declaration order, which is the vtable's order after the supertraits'. Also the check that
/// what a method returns cannot point into the library unless it borrows from `self`.
pub fn trait_descriptions(krate: &TokenStream, t: &syn::ItemTrait) -> TokenStream {
    let d = quote!(#krate::describe);
    let ident = &t.ident;
    let name = ident.to_string();
    if !t.generics.params.is_empty() {
        // A generic trait's objects are described where it is used with concrete arguments,
        // which the attribute cannot see: they are refused by the missing `Describe`.
        return TokenStream::new();
    }
    let supertraits = t.supertraits.iter().filter_map(|bound| match bound {
        syn::TypeParamBound::Trait(tb) if !is_marker(&tb.path) && tb.lifetimes.is_none() => {
            let path = &tb.path;
            Some(quote!(#d::describer::<dyn #path> as #d::Describer))
        }
        _ => None,
    });
    let supertraits: Vec<TokenStream> = supertraits.collect();
    let mut methods = Vec::new();
    let mut checks = Vec::new();
    for item in &t.items {
        let syn::TraitItem::Fn(f) = item else {
            continue;
        };
        let sig = &f.sig;
        // The attribute sees the trait before `#[cfg]` is evaluated: each method's entry and
        // check carries its method's.
        let cfgs = crate::ast::cfgs(&f.attrs);
        if !sig.generics.params.is_empty() || requires_sized(sig) {
            continue; // not in the vtable
        }
        let receiver = match sig.receiver() {
            Some(r) => crate::text::tokens(r),
            None => continue, // an associated function without `self`: not in the vtable
        };
        let params = sig.inputs.iter().filter_map(|arg| match arg {
            syn::FnArg::Typed(pt) => {
                let ty = erase_lifetimes(&pt.ty);
                Some(quote_spanned!(pt.ty.span()=> #d::describer::<#ty> as #d::Describer))
            }
            syn::FnArg::Receiver(_) => None,
        });
        let params: Vec<TokenStream> = params.collect();
        let ret = match &sig.output {
            syn::ReturnType::Default => quote!(()),
            syn::ReturnType::Type(_, ty) => {
                let erased = erase_lifetimes(ty);
                // A reference with an elided lifetime borrows from `self` (what the caller
                // holds keeps the generation); anything else must be owned.
                let checked = match &**ty {
                    Type::Reference(r) if r.lifetime.is_none() => erase_lifetimes(&r.elem),
                    _ => erased.clone(),
                };
                checks
                    .push(quote_spanned!(ty.span()=> #(#cfgs)* #d::__assert_owned::<#checked>();));
                quote!(#erased)
            }
        };
        let mname = sig.ident.to_string();
        methods.push(quote! {
            #(#cfgs)*
            #d::Method {
                name: #mname,
                receiver: #receiver,
                params: &[#(#params),*],
                ret: #d::describer::<#ret>,
            }
        });
    }
    let forms = [
        (quote!(dyn #ident), String::new()),
        (
            quote!(dyn #ident + ::core::marker::Send),
            " + Send".to_owned(),
        ),
        (
            quote!(dyn #ident + ::core::marker::Sync),
            " + Sync".to_owned(),
        ),
        (
            quote!(dyn #ident + ::core::marker::Send + ::core::marker::Sync),
            " + Send + Sync".to_owned(),
        ),
    ];
    let impls = forms.iter().map(|(object, suffix)| {
        let full = format!("{name}{suffix}");
        quote! {
            // SAFETY: the trait's supertraits and methods in declaration (vtable) order, each
            // type described by its own `Describe`.
            unsafe impl #krate::Describe for #object {
                const DESC: &'static #d::TypeDesc = &#d::TypeDesc {
                    methods: &[#(#methods),*],
                    ..#d::TypeDesc::new(#d::Kind::Trait, ::core::concat!(::core::module_path!(), "::", #full))
                        .with_args(&[#(#supertraits),*])
                };
            }
        }
    });
    quote! {
        #[doc(hidden)]
        const _: () = {
            #(#impls)*
            #[allow(dead_code)]
            fn __hotmod_results_are_owned() {
                #(#checks)*
            }
        };
    }
}

/// `Send`, `Sync`, `Sized`, `Unpin`, `Copy`, `Clone`: bounds that add nothing to a vtable.
fn is_marker(path: &Path) -> bool {
    path.segments.last().is_some_and(|s| {
        matches!(
            s.ident.to_string().as_str(),
            "Send" | "Sync" | "Sized" | "Unpin" | "Copy" | "Clone"
        )
    })
}

/// `where Self: Sized`: the method is not in the vtable.
fn requires_sized(sig: &syn::Signature) -> bool {
    sig.generics.where_clause.as_ref().is_some_and(|w| {
        w.predicates.iter().any(|p| match p {
            syn::WherePredicate::Type(pt) => {
                matches!(&pt.bounded_ty, Type::Path(tp) if tp.path.is_ident("Self"))
                    && pt.bounds.iter().any(|b| match b {
                        syn::TypeParamBound::Trait(tb) => is_marker(&tb.path),
                        _ => false,
                    })
            }
            _ => false,
        })
    })
}

/// The type with every named lifetime replaced by `'_`, to name it where those lifetimes are
/// not in scope (the description is the same for every lifetime).
pub fn erase_lifetimes(ty: &Type) -> Type {
    struct Erase;
    impl VisitMut for Erase {
        fn visit_lifetime_mut(&mut self, lifetime: &mut syn::Lifetime) {
            if lifetime.ident != "static" {
                *lifetime = syn::Lifetime::new("'_", lifetime.span());
            }
        }
    }
    let mut ty = ty.clone();
    Erase.visit_type_mut(&mut ty);
    ty
}
