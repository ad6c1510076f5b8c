//! Code generation. The expansion keeps the user's module, its items in their order, with each
//! `pub fn` replaced by a wrapper of the same name and signature that calls the current
//! generation through `__private::call`; after them it adds:
//!
//! - `__hotmod_impl`: the `pub fn`s as written (what every generation runs);
//! - `Handle` (a pinned generation with one method per `pub fn`) and `module()`;
//! - `__hotmod_trampolines`: one `extern "C"` trampoline per function, of the kind `call_kind`
//!   picks (registers or memory, see hotmod's `abi.rs`);
//! - `__hotmod_invoke`: for each function with a register trampoline, the host's `Invoke`
//!   implementation that calls it;
//! - `__HOTMOD_DESCRIPTOR`, the exported descriptor the loader verifies.
//!
//! All logic lives in the runtime; the expansion only names things and calls `__private`. The
//! module reaching it has been validated: nothing here checks or reports anything.

use std::collections::BTreeSet;

use proc_macro2::{Ident, TokenStream};
use quote::{format_ident, quote};
use syn::{Fields, Item, Type};

use crate::ast::{collect_idents, Args, HotFn, HotModule, ModItem, StateStatic};
use crate::text;

pub fn expand(args: &Args, hot: &HotModule) -> TokenStream {
    let krate = &args.krate;
    let private = quote!(#krate::__private);
    let module = hot.module;
    let (outer_attrs, inner_attrs) = (hot.outer_attrs(), hot.inner_attrs());
    let vis = &module.vis;
    let ident = &module.ident;
    let functions: Vec<&HotFn> = hot.functions().collect();

    // The user's items in their order, each hot function's wrapper where the function was.
    let items = hot.items.iter().map(|item| match item {
        ModItem::Hot(f) => wrapper(&private, f),
        other => quote!(#other),
    });
    let impl_fns = functions.iter().map(|f| f.item);
    let indices = indices(&functions);
    let methods = functions.iter().map(|f| method(&private, f));
    let trampolines = functions.iter().map(|f| trampoline(&private, f));
    let invokers = functions.iter().map(|f| invoker(&private, f));
    let descriptor = descriptor(&private, hot, &functions);
    let symbol = symbol_name(ident);
    let default_path = match &args.path {
        Some(path) => quote!(#private::Some(#path)),
        None => quote!(#private::None),
    };
    let (watch, rebuild) = (args.watch, args.rebuild);
    let on_load = on_load(&private, hot);
    let state_trampolines = hot.states().map(|st| state_trampolines(&private, st));
    let handle_doc = format!(
        "A pinned generation of `{ident}`: every call through it runs the generation it captured, \
         however many reloads happen, until the handle and its clones are dropped."
    );

    quote! {
        #(#outer_attrs)*
        #vis mod #ident {
            #(#inner_attrs)*
            #(#items)*

            /// The functions as written; every generation runs its own copy of these.
            #[doc(hidden)]
            pub mod __hotmod_impl {
                #![allow(unused_imports)]
                use super::*;
                #(#impl_fns)*
            }

            #indices

            #[doc = #handle_doc]
            #[derive(Clone)]
            pub struct Handle(#private::PinnedGeneration);

            /// `Handle { module: "…", generation: N, is_current: … }`.
            impl ::core::fmt::Debug for Handle {
                fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                    ::core::fmt::Debug::fmt(&self.0, f)
                }
            }

            impl Handle {
                /// Pins the current generation.
                #[inline]
                pub fn current() -> Self {
                    Handle(#private::PinnedGeneration::current(&__HOTMOD_MODULE))
                }

                /// The pinned generation's number (0 is the code compiled into the binary).
                #[inline]
                pub fn generation(&self) -> u64 {
                    self.0.generation()
                }

                /// Whether the pinned generation is still the current one.
                #[inline]
                pub fn is_current(&self) -> bool {
                    self.0.is_current()
                }

                #(#methods)*
            }

            /// The control surface of this hot module: load, reload, watch, generations.
            pub fn module() -> &'static #krate::Module {
                &__HOTMOD_MODULE
            }

            static __HOTMOD_MODULE: #krate::Module = #krate::Module::__new(
                &__HOTMOD_MODULE,
                &__HOTMOD_DESCRIPTOR,
                #private::ModuleInfo {
                    name: ::core::module_path!(),
                    symbol: #symbol,
                    package: ::core::env!("CARGO_PKG_NAME"),
                    manifest_dir: ::core::env!("CARGO_MANIFEST_DIR"),
                    default_path: #default_path,
                    watch: #watch,
                    rebuild: #rebuild,
                },
            );

            #[doc(hidden)]
            #[allow(non_camel_case_types, unused_imports)]
            mod __hotmod_invoke {
                use super::*;
                #(#invokers)*
            }

            #[doc(hidden)]
            mod __hotmod_trampolines {
                #![allow(unused_imports)]
                use super::*;
                #(#trampolines)*
                #on_load
                #(#state_trampolines)*
            }

            #[doc(hidden)]
            #[export_name = #symbol]
            pub static __HOTMOD_DESCRIPTOR: #private::ModuleDescriptor = #descriptor;
        }
    }
}

/// `hotmod::__private::SYMBOL_PREFIX`, `__hotmod_v<ABI_VERSION>__` (this crate cannot read
/// hotmod's constant; a load of any fixture fails if the two differ, see `tests/refused_loads.rs`).
const SYMBOL_PREFIX: &str = "__hotmod_v5__";

/// `__hotmod_v<ABI>__<crate>__<module>`: the exported descriptor's symbol.
fn symbol_name(module: &Ident) -> String {
    let krate = std::env::var("CARGO_CRATE_NAME").unwrap_or_else(|_| "crate".into());
    format!("{SYMBOL_PREFIX}{krate}__{module}")
}

fn arg_types(f: &HotFn) -> TokenStream {
    let tys = f.params.iter().map(|p| &p.ty);
    quote!((#(#tys,)*))
}

fn arg_names(f: &HotFn) -> TokenStream {
    let names = f.params.iter().map(|p| &p.ident);
    quote!((#(#names,)*))
}

/// `name: &str, times: u32`: the parameters with the names the generated code uses.
fn params<'f>(f: &'f HotFn) -> impl Iterator<Item = TokenStream> + 'f {
    f.params.iter().map(|p| {
        let (ident, ty) = (&p.ident, &p.ty);
        quote!(#ident: #ty)
    })
}

/// Attributes that must follow the function onto everything generated for it.
fn carried_attrs<'a>(f: &HotFn<'a>) -> impl Iterator<Item = &'a syn::Attribute> {
    f.item
        .attrs
        .iter()
        .filter(|a| a.path().is_ident("cfg") || a.path().is_ident("doc"))
}

/// `pub fn greet(name: &str) -> String { call(&MODULE, 0, (name,), |(name,)| impl::greet(name)) }`
fn wrapper(private: &TokenStream, f: &HotFn) -> TokenStream {
    let attrs = carried_attrs(f);
    let name = &f.item.sig.ident;
    let params = params(f);
    let output = &f.item.sig.output;
    let (tys, args) = (arg_types(f), arg_names(f));
    let call = if f.pinned {
        quote!(call_pinned::<#tys, _, _>)
    } else {
        let invoke = invoke_type(private, f);
        quote!(call::<#tys, _, #invoke, _>)
    };
    quote! {
        #(#attrs)*
        #[inline]
        pub fn #name(#(#params),*) #output {
            #private::#call(&__HOTMOD_MODULE, __hotmod_index::#name, #args, |#args| __hotmod_impl::#name #args)
        }
    }
}

/// `pub fn greet(&self, name: &str) -> String`: runs the pinned generation.
fn method(private: &TokenStream, f: &HotFn) -> TokenStream {
    let attrs = carried_attrs(f);
    let name = &f.item.sig.ident;
    let params = params(f);
    let output = &f.item.sig.output;
    let (tys, ret, args) = (arg_types(f), &f.output, arg_names(f));
    let call = if f.pinned {
        quote!(#private::call_pinned_on::<#tys, _, _>(&self.0, __hotmod_index::#name, #args, |#args| __hotmod_impl::#name #args))
    } else {
        let invoke = invoke_type(private, f);
        quote!(self.0.call::<#tys, #ret, #invoke, _>(__hotmod_index::#name, #args, |#args| __hotmod_impl::#name #args))
    };
    quote! {
        #(#attrs)*
        #[inline]
        pub fn #name(&self, #(#params),*) #output {
            #call
        }
    }
}

fn trampoline(private: &TokenStream, f: &HotFn) -> TokenStream {
    let cfgs = f.item.attrs.iter().filter(|a| a.path().is_ident("cfg"));
    let name = &f.item.sig.ident;
    let (tys, ret, args) = (arg_types(f), &f.output, arg_names(f));
    if call_kind(f) == CallKind::Registers {
        let params = params(f);
        let names = f.params.iter().map(|p| &p.ident);
        // Arguments in registers, the result and the panic message back in two.
        return quote! {
            #(#cfgs)*
            #[allow(improper_ctypes_definitions)]
            pub(super) extern "C" fn #name(#(#params),*) -> #private::Returned<#ret> {
                #private::register_trampoline(move || super::__hotmod_impl::#name(#(#names),*))
            }
        };
    }
    // The caller's contract (`abi::trampoline`): reached only through a descriptor the host
    // verified against its own, so `args` owns this argument tuple and `ret` has room for `R`.
    quote! {
        #(#cfgs)*
        pub(super) unsafe extern "C" fn #name(args: *mut u8, ret: *mut u8) -> #private::PanicMessage {
            unsafe { #private::trampoline::<#tys, #ret>(args, ret, |#args| super::__hotmod_impl::#name #args) }
        }
    }
}

/// Which trampoline a function gets: registers when every parameter is a primitive, a
/// reference or a raw pointer (to a type without lifetimes) and the result is `()` or a
/// primitive of at most one register; memory otherwise. Host and library run this same
/// function on the same signature, and the descriptor carries the result, which the loader
/// compares too.
///
/// `HOTMOD_MACROS_MEMORY_TRAMPOLINES` set at expansion time gives every function a memory
/// trampoline: the tests' fixture variant whose kinds differ from the host's.
#[derive(PartialEq, Eq, Clone, Copy)]
enum CallKind {
    Memory,
    Registers,
}

fn call_kind(f: &HotFn) -> CallKind {
    if f.pinned || std::env::var_os("HOTMOD_MACROS_MEMORY_TRAMPOLINES").is_some() {
        return CallKind::Memory;
    }
    let registers = f.params.iter().all(|p| register_param(p.ty)) && register_result(&f.output);
    if registers {
        CallKind::Registers
    } else {
        CallKind::Memory
    }
}

/// `u64`, `bool`, `f64`, … (not `u128`: two registers).
fn scalar(ty: &Type) -> bool {
    const SCALARS: &[&str] = &[
        "u8", "u16", "u32", "u64", "usize", "i8", "i16", "i32", "i64", "isize", "f32", "f64",
        "bool", "char",
    ];
    match ty {
        Type::Path(p) if p.qself.is_none() => p
            .path
            .get_ident()
            .is_some_and(|id| SCALARS.iter().any(|s| id == s)),
        Type::Paren(p) => scalar(&p.elem),
        Type::Group(g) => scalar(&g.elem),
        _ => false,
    }
}

fn register_result(ty: &Type) -> bool {
    matches!(ty, Type::Tuple(t) if t.elems.is_empty()) || scalar(ty)
}

/// A scalar, or a reference or raw pointer (one or two registers) to a type that names no
/// lifetime, so that the host's `Invoke` can name all of them with one lifetime.
fn register_param(ty: &Type) -> bool {
    match ty {
        Type::Reference(r) => {
            r.lifetime.as_ref().is_none_or(|l| l.ident == "static") && lifetime_free(&r.elem)
        }
        Type::Ptr(p) => lifetime_free(&p.elem),
        Type::Paren(p) => register_param(&p.elem),
        Type::Group(g) => register_param(&g.elem),
        _ => scalar(ty),
    }
}

/// No reference, lifetime, trait object, `impl` or fn pointer anywhere in `ty`.
fn lifetime_free(ty: &Type) -> bool {
    struct Finder(bool);
    impl<'ast> syn::visit::Visit<'ast> for Finder {
        fn visit_type_reference(&mut self, _: &'ast syn::TypeReference) {
            self.0 = true;
        }
        fn visit_lifetime(&mut self, _: &'ast syn::Lifetime) {
            self.0 = true;
        }
        fn visit_type_trait_object(&mut self, _: &'ast syn::TypeTraitObject) {
            self.0 = true;
        }
        fn visit_type_impl_trait(&mut self, _: &'ast syn::TypeImplTrait) {
            self.0 = true;
        }
        fn visit_type_bare_fn(&mut self, _: &'ast syn::TypeBareFn) {
            self.0 = true;
        }
        fn visit_macro(&mut self, _: &'ast syn::Macro) {
            self.0 = true;
        }
    }
    let mut finder = Finder(false);
    syn::visit::Visit::visit_type(&mut finder, ty);
    !finder.0 && !matches!(ty, Type::Verbatim(_) | Type::Infer(_) | Type::Never(_))
}

/// The type whose `Invoke` implementation the host's wrapper and method call through.
fn invoke_type(private: &TokenStream, f: &HotFn) -> TokenStream {
    match call_kind(f) {
        CallKind::Memory => quote!(#private::Memory),
        CallKind::Registers => {
            let name = &f.item.sig.ident;
            quote!(__hotmod_invoke::#name)
        }
    }
}

/// The parameter types with every elided reference lifetime named `'__hotmod`.
fn named_lifetimes(f: &HotFn) -> Vec<Type> {
    struct Namer;
    impl syn::visit_mut::VisitMut for Namer {
        fn visit_type_reference_mut(&mut self, r: &mut syn::TypeReference) {
            if r.lifetime.is_none() {
                r.lifetime = Some(syn::Lifetime::new(
                    "'__hotmod",
                    proc_macro2::Span::call_site(),
                ));
            }
            syn::visit_mut::visit_type_reference_mut(self, r);
        }
    }
    f.params
        .iter()
        .map(|p| {
            let mut ty = p.ty.clone();
            syn::visit_mut::VisitMut::visit_type_mut(&mut Namer, &mut ty);
            ty
        })
        .collect()
}

/// For a function with a register trampoline: a type named after it whose `Invoke` spreads the
/// argument tuple into the trampoline's parameters.
fn invoker(private: &TokenStream, f: &HotFn) -> TokenStream {
    if call_kind(f) != CallKind::Registers {
        return TokenStream::new();
    }
    let cfgs = cfgs(&f.item.attrs);
    let name = &f.item.sig.ident;
    let ret = &f.output;
    let tys = named_lifetimes(f);
    let names: Vec<&Ident> = f.params.iter().map(|p| &p.ident).collect();
    quote! {
        #(#cfgs)*
        pub(super) struct #name;

        // SAFETY: `KIND` is `CALL_REGISTERS`, and `invoke` calls the trampoline as the one this
        // macro generated for the same function: `extern "C" fn(<parameters>) -> Returned<R>`.
        #(#cfgs)*
        #[allow(improper_ctypes_definitions, improper_ctypes)]
        unsafe impl<'__hotmod> #private::Invoke<(#(#tys,)*), #ret> for #name {
            const KIND: u32 = #private::CALL_REGISTERS;

            #[inline(always)]
            unsafe fn invoke(
                trampoline: #private::RawTrampoline,
                (#(#names,)*): (#(#tys,)*),
            ) -> #private::Returned<#ret> {
                // SAFETY: the caller's contract: a verified trampoline of this kind, so its real
                // type is this one (the loader compared signature, layouts and kind).
                let trampoline = unsafe {
                    #private::transmute::<#private::RawTrampoline, extern "C" fn(#(#tys),*) -> #private::Returned<#ret>>(trampoline)
                };
                trampoline(#(#names),*)
            }
        }
    }
}

fn value_layout(private: &TokenStream, ty: &Type) -> TokenStream {
    let name = text::tokens(ty);
    quote! {
        #private::ValueLayout {
            name: #private::StrRef::new(#name),
            size: #private::size_of::<#ty>(),
            align: #private::align_of::<#ty>(),
        }
    }
}

/// The `#[cfg]` attributes of an item, field or variant: everything generated for it carries
/// them, because the attribute sees its input before `#[cfg]` is evaluated.
fn cfgs(attrs: &[syn::Attribute]) -> Vec<&syn::Attribute> {
    attrs.iter().filter(|a| a.path().is_ident("cfg")).collect()
}

/// `mod __hotmod_index`: each function's position in the descriptor's table, counting only
/// the functions whose `#[cfg]` holds.
fn indices(functions: &[&HotFn]) -> TokenStream {
    let consts = functions.iter().enumerate().map(|(k, f)| {
        let name = &f.item.sig.ident;
        let earlier = functions[..k].iter().map(|g| {
            let cfgs = cfgs(&g.item.attrs);
            quote!(#(#cfgs)* let n = n + 1;)
        });
        let cfgs = cfgs(&f.item.attrs);
        quote! {
            #(#cfgs)*
            pub(super) const #name: usize = {
                let n = 0usize;
                #(#earlier)*
                n
            };
        }
    });
    quote! {
        #[doc(hidden)]
        #[allow(non_upper_case_globals)]
        mod __hotmod_index {
            #(#consts)*
        }
    }
}

fn descriptor(private: &TokenStream, hot: &HotModule, functions: &[&HotFn]) -> TokenStream {
    let states = hot.states().map(|st| {
        let StateNames {
            export,
            import,
            take,
            mark,
        } = state_names(st);
        let (name, version, cfgs) = (st.item.ident.to_string(), st.version, cfgs(&st.item.attrs));
        quote! {
            #(#cfgs)*
            #private::StateEntry {
                name: #private::StrRef::new(#name),
                version: #version,
                export: __hotmod_trampolines::#export,
                import: __hotmod_trampolines::#import,
                take: __hotmod_trampolines::#take,
                mark: __hotmod_trampolines::#mark,
            }
        }
    });
    let on_load_entry = match hot.on_load() {
        Some(_) => quote!(#private::Some(__hotmod_trampolines::__hotmod_on_load)),
        None => quote!(#private::None),
    };
    let mut statics = Vec::new();
    let mut entries = Vec::new();
    for (index, f) in functions.iter().enumerate() {
        let cfgs = cfgs(&f.item.attrs);
        let name = f.item.sig.ident.to_string();
        let params_static = format_ident!("PARAMS_{}", index);
        let layouts: Vec<_> = f
            .params
            .iter()
            .map(|p| value_layout(private, p.ty))
            .collect();
        let count = layouts.len();
        let ret = value_layout(private, &f.output);
        let tramp = &f.item.sig.ident;
        let (kind, erased) = match call_kind(f) {
            CallKind::Memory => (
                quote!(#private::CALL_MEMORY),
                quote!(#private::transmute::<#private::Trampoline, #private::RawTrampoline>(__hotmod_trampolines::#tramp)),
            ),
            CallKind::Registers => {
                let (tys, output) = (f.params.iter().map(|p| p.ty), &f.output);
                (
                    quote!(#private::CALL_REGISTERS),
                    quote!(#private::transmute::<extern "C" fn(#(#tys),*) -> #private::Returned<#output>, #private::RawTrampoline>(__hotmod_trampolines::#tramp)),
                )
            }
        };
        let signature = signature_text(f);
        statics.push(quote! {
            #(#cfgs)*
            static #params_static: [#private::ValueLayout; #count] = [#(#layouts),*];
        });
        entries.push(quote! {
            #(#cfgs)*
            #private::FnEntry {
                name: #private::StrRef::new(#name),
                signature: #private::StrRef::new(#signature),
                params: #private::SliceRef::new(&#params_static),
                ret: #ret,
                kind: #kind,
                // SAFETY: function pointers have one size; the host casts it back to the type
                // `kind` names (`Invoke`), which is this one.
                trampoline: unsafe { #erased },
            }
        });
    }

    let mut types = Vec::new();
    for (index, item) in boundary_types(hot).into_iter().enumerate() {
        let (ident, attrs, fields, generic) = match item {
            Item::Struct(s) => (
                &s.ident,
                &s.attrs,
                Some(&s.fields),
                !s.generics.params.is_empty(),
            ),
            Item::Enum(e) => (&e.ident, &e.attrs, None, !e.generics.params.is_empty()),
            // A trait has no size: its definition text is what is compared.
            Item::Trait(t) => (&t.ident, &t.attrs, None, true),
            _ => continue,
        };
        let item_cfgs = cfgs(attrs);
        let name = ident.to_string();
        let fields_static = format_ident!("FIELDS_{}", index);
        let definition_static = format_ident!("DEFINITION_{}", index);
        let field_layouts: Vec<TokenStream> = match fields {
            Some(fields) if !generic => fields
                .iter()
                .enumerate()
                .map(|(i, field)| {
                    let member = match &field.ident {
                        Some(id) => quote!(#id),
                        None => {
                            let index = syn::Index::from(i);
                            quote!(#index)
                        }
                    };
                    let fname = field
                        .ident
                        .as_ref()
                        .map_or_else(|| i.to_string(), ToString::to_string);
                    let fty = &field.ty;
                    let fty_text = text::tokens(fty);
                    let field_cfgs = cfgs(&field.attrs);
                    quote! {
                        #(#field_cfgs)*
                        #private::FieldLayout {
                            name: #private::StrRef::new(#fname),
                            ty: #private::StrRef::new(#fty_text),
                            offset: ::core::mem::offset_of!(#ident, #member),
                            size: #private::size_of::<#fty>(),
                        }
                    }
                })
                .collect(),
            _ => Vec::new(),
        };
        let pieces = definition_pieces(item)
            .into_iter()
            .map(|(cfgs, piece)| quote!(#(#cfgs)* #private::StrRef::new(#piece)));
        let (size, align) = if generic {
            (quote!(0), quote!(0))
        } else {
            (
                quote!(#private::size_of::<#ident>()),
                quote!(#private::align_of::<#ident>()),
            )
        };
        statics.push(quote! {
            #(#item_cfgs)*
            const #fields_static: &[#private::FieldLayout] = &[#(#field_layouts),*];
            #(#item_cfgs)*
            const #definition_static: &[#private::StrRef] = &[#(#pieces),*];
        });
        types.push(quote! {
            #(#item_cfgs)*
            #private::TypeLayout {
                name: #private::StrRef::new(#name),
                size: #size,
                align: #align,
                fields: #private::SliceRef::new(#fields_static),
                definition: #private::SliceRef::new(#definition_static),
            }
        });
    }

    quote! {{
        #(#statics)*
        const FUNCTIONS: &[#private::FnEntry] = &[#(#entries),*];
        const TYPES: &[#private::TypeLayout] = &[#(#types),*];
        const STATES: &[#private::StateEntry] = &[#(#states),*];
        #private::ModuleDescriptor {
            magic: #private::MAGIC,
            abi_version: #private::ABI_VERSION,
            module_path: #private::StrRef::new(module_path!()),
            toolchain: #private::StrRef::new(#private::TOOLCHAIN),
            functions: #private::SliceRef::new(FUNCTIONS),
            types: #private::SliceRef::new(TYPES),
            on_load: #on_load_entry,
            enter: #private::enter_library,
            states: #private::SliceRef::new(STATES),
        }
    }}
}

/// The trampolines of one `#[hotmod::state]` static (the fields of its `StateEntry`).
struct StateNames {
    export: Ident,
    import: Ident,
    take: Ident,
    mark: Ident,
}

fn state_names(st: &StateStatic) -> StateNames {
    StateNames {
        export: format_ident!("__hotmod_state_export_{}", st.item.ident),
        import: format_ident!("__hotmod_state_import_{}", st.item.ident),
        take: format_ident!("__hotmod_state_take_{}", st.item.ident),
        mark: format_ident!("__hotmod_state_mark_{}", st.item.ident),
    }
}

/// The export, import, take and mark trampolines of one `#[hotmod::state]` static: each calls
/// the `__private::state_glue` function of the same name.
fn state_trampolines(private: &TokenStream, st: &StateStatic) -> TokenStream {
    let StateNames {
        export,
        import,
        take,
        mark,
    } = state_names(st);
    let (ident, version, cfgs) = (&st.item.ident, st.version, cfgs(&st.item.attrs));
    let name = ident.to_string();
    let migrate = match &st.migrate {
        Some(path) => quote!(#private::Some(super::#path as #private::state_glue::Migrate<_>)),
        None => quote!(#private::None),
    };
    quote! {
        #(#cfgs)*
        #[allow(non_snake_case)]
        pub(super) unsafe extern "C" fn #export(args: *mut u8, ret: *mut u8) -> #private::PanicMessage {
            unsafe {
                #private::trampoline::<(), #private::StateExport>(args, ret, |()| {
                    #private::state_glue::export(&super::#ident, #name)
                })
            }
        }
        #(#cfgs)*
        #[allow(non_snake_case)]
        pub(super) unsafe extern "C" fn #take(args: *mut u8, ret: *mut u8) -> #private::PanicMessage {
            unsafe {
                #private::trampoline::<#private::StateTake, #private::StateExport>(args, ret, |to| {
                    #private::state_glue::take(&super::#ident, #name, to)
                })
            }
        }
        #(#cfgs)*
        #[allow(non_snake_case)]
        pub(super) unsafe extern "C" fn #mark(args: *mut u8, ret: *mut u8) -> #private::PanicMessage {
            unsafe {
                #private::trampoline::<#private::StateMark, ()>(args, ret, |mark| {
                    #private::state_glue::mark(&super::#ident, #name, mark)
                })
            }
        }
        #(#cfgs)*
        #[allow(non_snake_case)]
        pub(super) unsafe extern "C" fn #import(args: *mut u8, ret: *mut u8) -> #private::PanicMessage {
            unsafe {
                #private::trampoline::<#private::StateImport, ::core::result::Result<(), ::std::string::String>>(
                    args, ret,
                    |(from, data)| #private::state_glue::import(&super::#ident, #name, #version, from, &data, #migrate),
                )
            }
        }
    }
}

/// The trampoline of the `#[on_load]` function: `()` in, `Result<(), String>` out.
fn on_load(private: &TokenStream, hot: &HotModule) -> TokenStream {
    let Some(name) = hot.on_load() else {
        return TokenStream::new();
    };
    quote! {
        pub(super) unsafe extern "C" fn __hotmod_on_load(args: *mut u8, ret: *mut u8) -> #private::PanicMessage {
            unsafe {
                #private::trampoline::<(), #private::OnLoadResult>(args, ret, |()| {
                    #private::on_load_result(super::#name())
                })
            }
        }
    }
}

/// `fn(&str, u32) -> String`.
fn signature_text(f: &HotFn) -> String {
    let params: Vec<String> = f.params.iter().map(|p| text::tokens(&p.ty)).collect();
    match &f.item.sig.output {
        syn::ReturnType::Default => format!("fn({})", params.join(", ")),
        syn::ReturnType::Type(_, ty) => {
            format!("fn({}) -> {}", params.join(", "), text::tokens(&**ty))
        }
    }
}

/// `#[repr(C)] struct Reply { text: String, count: u32 }` in pieces, each with the `#[cfg]`s it
/// depends on: what decides the layout, without docs, derives or visibility.
fn definition_pieces(item: &Item) -> Vec<(Vec<&syn::Attribute>, String)> {
    fn repr(attrs: &[syn::Attribute]) -> String {
        attrs
            .iter()
            .filter(|a| a.path().is_ident("repr"))
            .map(|a| text::tokens(a) + " ")
            .collect()
    }
    fn fields<'a>(fields: &'a Fields, pieces: &mut Vec<(Vec<&'a syn::Attribute>, String)>) {
        let (open, close) = match fields {
            Fields::Named(_) => (" { ", "}"),
            Fields::Unnamed(_) => ("(", ")"),
            Fields::Unit => return,
        };
        pieces.push((Vec::new(), open.to_owned()));
        for f in fields {
            let text = match &f.ident {
                Some(id) => format!("{id}: {}, ", text::tokens(&f.ty)),
                None => format!("{}, ", text::tokens(&f.ty)),
            };
            pieces.push((cfgs(&f.attrs), text));
        }
        pieces.push((Vec::new(), close.to_owned()));
    }
    let mut pieces = Vec::new();
    match item {
        Item::Struct(s) => {
            pieces.push((
                Vec::new(),
                format!(
                    "{}struct {}{}",
                    repr(&s.attrs),
                    s.ident,
                    text::tokens(&s.generics)
                ),
            ));
            fields(&s.fields, &mut pieces);
        }
        Item::Enum(e) => {
            pieces.push((
                Vec::new(),
                format!(
                    "{}enum {}{} {{ ",
                    repr(&e.attrs),
                    e.ident,
                    text::tokens(&e.generics)
                ),
            ));
            for v in &e.variants {
                let start = pieces.len();
                pieces.push((Vec::new(), v.ident.to_string()));
                fields(&v.fields, &mut pieces);
                if let Some((_, d)) = &v.discriminant {
                    pieces.push((Vec::new(), format!(" = {}", text::tokens(d))));
                }
                pieces.push((Vec::new(), ", ".to_owned()));
                // Every piece of a cfg'd variant carries the variant's cfgs too.
                let variant_cfgs = cfgs(&v.attrs);
                for piece in &mut pieces[start..] {
                    piece.0.extend(variant_cfgs.iter().copied());
                }
            }
            pieces.push((Vec::new(), "}".to_owned()));
        }
        Item::Trait(t) => {
            pieces.push((
                Vec::new(),
                format!(
                    "trait {}{}: {} {{ ",
                    t.ident,
                    text::tokens(&t.generics),
                    text::tokens(&t.supertraits)
                ),
            ));
            for item in &t.items {
                let (attrs, text) = match item {
                    syn::TraitItem::Fn(f) => (&f.attrs, format!("{}; ", text::tokens(&f.sig))),
                    syn::TraitItem::Type(ty) => (&ty.attrs, format!("type {}; ", ty.ident)),
                    syn::TraitItem::Const(c) => (
                        &c.attrs,
                        format!("const {}: {}; ", c.ident, text::tokens(&c.ty)),
                    ),
                    _ => continue,
                };
                pieces.push((cfgs(attrs), text));
            }
            pieces.push((Vec::new(), "}".to_owned()));
        }
        _ => {}
    }
    pieces
}

/// Structs and enums of the module that appear in a hot function's signature, directly or
/// through the fields of another such type.
fn boundary_types<'a>(hot: &HotModule<'a>) -> Vec<&'a Item> {
    let defined: Vec<(&Ident, &Item)> = hot
        .others()
        .filter_map(|item| match item {
            Item::Struct(s) => Some((&s.ident, item)),
            Item::Enum(e) => Some((&e.ident, item)),
            // Traits behind `dyn` in a signature: their methods decide the vtable.
            Item::Trait(t) => Some((&t.ident, item)),
            _ => None,
        })
        .collect();
    let mut names = BTreeSet::new();
    for f in hot.functions() {
        for p in &f.params {
            collect_idents(p.ty, &mut names);
        }
        collect_idents(&f.output, &mut names);
    }
    // Follow fields until nothing new appears.
    loop {
        let before = names.len();
        for (ident, item) in &defined {
            if names.contains(&ident.to_string()) {
                match item {
                    Item::Struct(s) => s
                        .fields
                        .iter()
                        .for_each(|f| collect_idents(&f.ty, &mut names)),
                    Item::Enum(e) => e
                        .variants
                        .iter()
                        .flat_map(|v| v.fields.iter())
                        .for_each(|f| collect_idents(&f.ty, &mut names)),
                    Item::Trait(t) => {
                        for method in trait_methods(t) {
                            for input in &method.inputs {
                                if let syn::FnArg::Typed(typed) = input {
                                    collect_idents(&typed.ty, &mut names);
                                }
                            }
                            if let syn::ReturnType::Type(_, ty) = &method.output {
                                collect_idents(ty, &mut names);
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
        if names.len() == before {
            break;
        }
    }
    defined
        .into_iter()
        .filter(|(ident, _)| names.contains(&ident.to_string()))
        .map(|(_, item)| item)
        .collect()
}

fn trait_methods(t: &syn::ItemTrait) -> impl Iterator<Item = &syn::Signature> {
    t.items.iter().filter_map(|item| match item {
        syn::TraitItem::Fn(f) => Some(&f.sig),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::{register_param, register_result};
    use syn::{parse_quote, Type};

    #[test]
    fn register_parameters_are_primitives_references_and_raw_pointers() {
        let yes: Vec<Type> = vec![
            parse_quote!(u64),
            parse_quote!(f32),
            parse_quote!(bool),
            parse_quote!(char),
            parse_quote!(&str),
            parse_quote!(&'static str),
            parse_quote!(&mut u64),
            parse_quote!(&[String]),
            parse_quote!(&Vec<u8>),
            parse_quote!(*const u8),
            parse_quote!((usize)),
        ];
        let no: Vec<Type> = vec![
            parse_quote!(u128),
            parse_quote!(String),
            parse_quote!(Option<u32>),
            parse_quote!((u32, u32)),
            parse_quote!(&&str),
            parse_quote!(&dyn Fn() -> u32),
            parse_quote!(&Cow<'static, str>),
            parse_quote!(&'a str),
            parse_quote!(*const &str),
            parse_quote!(std::primitive::u64),
        ];
        for ty in &yes {
            assert!(register_param(ty), "{}", quote::quote!(#ty));
        }
        for ty in &no {
            assert!(!register_param(ty), "{}", quote::quote!(#ty));
        }
    }

    #[test]
    fn register_results_fit_one_register() {
        let yes: Vec<Type> = vec![
            parse_quote!(()),
            parse_quote!(u64),
            parse_quote!(f64),
            parse_quote!(bool),
        ];
        let no: Vec<Type> = vec![
            parse_quote!(u128),
            parse_quote!(&str),
            parse_quote!(String),
            parse_quote!(Option<u8>),
            parse_quote!((u32,)),
        ];
        for ty in &yes {
            assert!(register_result(ty), "{}", quote::quote!(#ty));
        }
        for ty in &no {
            assert!(!register_result(ty), "{}", quote::quote!(#ty));
        }
    }
}
