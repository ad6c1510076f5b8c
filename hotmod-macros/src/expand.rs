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
//! - `__HOTMOD_DESCRIPTOR`, the exported descriptor the loader verifies (and its unexported
//!   twin `__HOTMOD_OWN_DESCRIPTOR`, the host's side of that check).
//!
//! All logic lives in the runtime; the expansion only names things and calls `__private`. The
//! module reaching it has been validated: nothing here checks or reports anything.

use proc_macro2::{Ident, TokenStream};
use quote::{format_ident, quote};
use syn::Type;

use crate::ast::{cfgs, Args, HotFn, HotModule, ModItem, StateStatic};
use crate::boundary::{described_result, Boundary};
use crate::describe::erase_lifetimes;
use crate::text;

pub fn expand(args: &Args, hot: &HotModule) -> TokenStream {
    let krate = &args.krate;
    let private = quote!(#krate::__private);
    let module = hot.module;
    let (outer_attrs, inner_attrs) = (hot.outer_attrs(), hot.inner_attrs());
    let vis = &module.vis;
    let ident = &module.ident;
    let functions: Vec<&HotFn> = hot.functions().collect();

    // The user's items in their order, each hot function's wrapper where the function was, and
    // the types that cross the boundary described.
    let boundary = Boundary::new(krate, hot);
    let items = hot.items.iter().map(|item| match item {
        ModItem::Hot(f) => wrapper(&private, f),
        ModItem::Impl(imp) => {
            let expanded = crate::methods::expand(imp.item, imp.plan);
            let wrappers = imp.functions.iter().map(|f| wrapper(&private, f));
            quote!(#expanded #(#wrappers)*)
        }
        ModItem::Other(item) => boundary.item(item),
        other => quote!(#other),
    });
    let checks = boundary.checks(&functions);
    let impl_fns = functions.iter().map(|f| f.item);
    let indices = indices(&functions);
    let methods = functions.iter().map(|f| method(&private, f));
    let trampolines = functions.iter().map(|f| trampoline(&private, f));
    let forwards = functions.iter().map(|f| forward_trampoline(&private, f));
    let throughs = functions.iter().map(|f| handle_trampoline(&private, f));
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

            #checks

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
            #[repr(transparent)]
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
                #private::module(&__HOTMOD_MODULE)
            }

            static __HOTMOD_MODULE: #krate::Module = #krate::Module::__new(
                &__HOTMOD_MODULE,
                &__HOTMOD_OWN_DESCRIPTOR,
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

            // Enrols the module before `main` (a static constructor), so that a library which
            // embeds a copy of it can be linked to this one (see hotmod's `abi::HostLinks`).
            #[used]
            #[cfg_attr(any(target_os = "linux", target_os = "android", target_os = "freebsd"), link_section = ".init_array")]
            #[cfg_attr(target_vendor = "apple", link_section = "__DATA,__mod_init_func")]
            #[cfg_attr(windows, link_section = ".CRT$XCU")]
            static __HOTMOD_REGISTER: extern "C" fn() = {
                extern "C" fn register() {
                    #private::register(&__HOTMOD_MODULE);
                }
                register
            };

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
                #(#forwards)*
                #(#throughs)*
                #on_load
                #(#state_trampolines)*
            }

            const __HOTMOD_DESCRIPTION: #private::ModuleDescriptor = #descriptor;

            // What this crate's module refers to: the exported descriptor's twin, which no symbol
            // names. Code of a library that reaches `__HOTMOD_MODULE` (a hot method calling
            // another) then needs no relocation against the library's own exported name, which
            // a host exporting the same name would interpose.
            static __HOTMOD_OWN_DESCRIPTOR: #private::ModuleDescriptor = __HOTMOD_DESCRIPTION;

            #[doc(hidden)]
            #[export_name = #symbol]
            pub static __HOTMOD_DESCRIPTOR: #private::ModuleDescriptor = __HOTMOD_DESCRIPTION;
        }
    }
}

/// `hotmod::__private::SYMBOL_PREFIX`, `__hotmod_v<ABI_VERSION>__` (this crate cannot read
/// hotmod's constant; a load of any fixture fails if the two differ, see `tests/refused_loads.rs`).
const SYMBOL_PREFIX: &str = "__hotmod_v9__";

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
/// (for a hot method, a private function its method calls).
fn wrapper(private: &TokenStream, f: &HotFn) -> TokenStream {
    let attrs = carried_attrs(f);
    let vis = match f.method {
        Some(_) => TokenStream::new(),
        None => quote!(pub),
    };
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
        #vis fn #name(#(#params),*) #output {
            #private::#call(&__HOTMOD_MODULE, __hotmod_index::#name, #args, |#args| __hotmod_impl::#name #args)
        }
    }
}

/// `pub fn greet(&self, name: &str) -> String`: runs the pinned generation (for a hot method
/// `Reply::label`, `pub fn reply_label(&self, self_: &Reply) -> String`).
fn method(private: &TokenStream, f: &HotFn) -> TokenStream {
    let attrs = carried_attrs(f);
    let name = &f.item.sig.ident;
    let handle_name = f.handle_name();
    let params = params(f);
    let output = &f.item.sig.output;
    let (tys, ret, args) = (arg_types(f), &f.output, arg_names(f));
    let call = if f.pinned {
        quote!(#private::call_pinned_on::<#tys, _, _>(&self.0, __hotmod_index::#name, #args, |#args| __hotmod_impl::#name #args))
    } else {
        let invoke = invoke_type(private, f);
        quote!(self.0.call::<#tys, #ret, #invoke, _>(__hotmod_index::#name, #args, |#args| __hotmod_impl::#name #args))
    };
    let method_doc = f.method.map(crate::methods::handle_doc);
    quote! {
        #(#attrs)*
        #method_doc
        #[inline]
        pub fn #handle_name(&self, #(#params),*) #output {
            #call
        }
    }
}

fn trampoline(private: &TokenStream, f: &HotFn) -> TokenStream {
    let name = &f.item.sig.ident;
    let callee = quote!(super::__hotmod_impl::#name);
    trampoline_to(private, f, name, callee)
}

/// The trampoline a library's embedded copy of this module calls in the host (`FnEntry::forward`):
/// the same kind as `trampoline`. In a view that sees a loaded generation of the module it hands
/// the call on to that generation's trampoline, in tail position (`__private::forward`); else
/// it makes a plain call through the module's wrapper, so it runs the generation the caller's
/// view sees, or the current one of the build it is in. A function returning `Pinned` always
/// makes the plain call (a memory trampoline calling the wrapper): the wrapper pins the
/// generation in the value, which the library's code then holds.
fn forward_trampoline(private: &TokenStream, f: &HotFn) -> TokenStream {
    let name = &f.item.sig.ident;
    let forward = format_ident!("__hotmod_forward_{}", name);
    if f.pinned {
        return trampoline_to(private, f, &forward, quote!(super::#name));
    }
    let cfgs = cfgs(&f.item.attrs);
    let (tys, ret, args) = (arg_types(f), &f.output, arg_names(f));
    if call_kind(f) == CallKind::Registers {
        let params = params(f);
        let invoke = invoke_type(private, f);
        return quote! {
            #(#cfgs)*
            #[allow(improper_ctypes_definitions)]
            #[allow(non_snake_case)]
            pub(super) extern "C" fn #forward(#(#params),*) -> #private::Returned<#ret> {
                #private::forward::<#tys, #ret, super::#invoke, _>(
                    &super::__HOTMOD_MODULE,
                    super::__hotmod_index::#name,
                    #args,
                    |#args| super::#name #args,
                )
            }
        };
    }
    // The caller's contract (`abi::trampoline`): reached only through a descriptor the host
    // verified against its own, so `args` owns this argument tuple and `ret` has room for `R`.
    quote! {
        #(#cfgs)*
        #[allow(non_snake_case)]
        pub(super) unsafe extern "C" fn #forward(args: *mut u8, ret: *mut u8) -> #private::PanicMessage {
            unsafe {
                #private::forward_memory::<#tys, #ret, _>(
                    &super::__HOTMOD_MODULE,
                    super::__hotmod_index::#name,
                    args,
                    ret,
                    |#args| super::#name #args,
                )
            }
        }
    }
}

/// The trampoline a library's code calls through a handle of this module that it took in the
/// host (`FnEntry::handle`, `abi::HandleOps`): the handle's method, on one of this build's
/// handles. A memory trampoline with the handle in front, whatever the function's kind.
fn handle_trampoline(private: &TokenStream, f: &HotFn) -> TokenStream {
    let cfgs = cfgs(&f.item.attrs);
    let through = format_ident!("__hotmod_handle_{}", f.item.sig.ident);
    let handle_name = f.handle_name();
    let (tys, ret, args) = (arg_types(f), &f.output, arg_names(f));
    quote! {
        #(#cfgs)*
        #[allow(non_snake_case)]
        pub(super) unsafe extern "C" fn #through(
            handle: *const (),
            args: *mut u8,
            ret: *mut u8,
        ) -> #private::PanicMessage {
            // SAFETY: reached only through the host's links (`HostLink::handle`): `handle` is
            // one of this build's `Handle`s of this module (boxed, `repr(transparent)` over
            // the pinned generation), alive for the call, and `args`/`ret` are as for the
            // function's memory trampoline (`abi::trampoline`).
            unsafe {
                let handle = &*handle.cast::<super::Handle>();
                #private::trampoline::<#tys, #ret>(args, ret, |#args| handle.#handle_name #args)
            }
        }
    }
}

/// An `extern "C"` trampoline named `name` of the kind `call_kind` picks, calling `callee`.
fn trampoline_to(
    private: &TokenStream,
    f: &HotFn,
    name: &Ident,
    callee: TokenStream,
) -> TokenStream {
    let cfgs = cfgs(&f.item.attrs);
    let (tys, ret, args) = (arg_types(f), &f.output, arg_names(f));
    if call_kind(f) == CallKind::Registers {
        let params = params(f);
        let names = f.params.iter().map(|p| &p.ident);
        // Arguments in registers, the result and the panic message back in two.
        return quote! {
            #(#cfgs)*
            #[allow(improper_ctypes_definitions)]
            #[allow(non_snake_case)]
            pub(super) extern "C" fn #name(#(#params),*) -> #private::Returned<#ret> {
                #private::register_trampoline(move || #callee(#(#names),*))
            }
        };
    }
    // The caller's contract (`abi::trampoline`): reached only through a descriptor the host
    // verified against its own, so `args` owns this argument tuple and `ret` has room for `R`.
    quote! {
        #(#cfgs)*
        #[allow(non_snake_case)]
        pub(super) unsafe extern "C" fn #name(args: *mut u8, ret: *mut u8) -> #private::PanicMessage {
            unsafe { #private::trampoline::<#tys, #ret>(args, ret, |#args| #callee #args) }
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
    let kept = crate::kept::entries(private, hot);
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
        let name = f.display_name();
        let params_static = format_ident!("PARAMS_{}", index);
        let describers: Vec<_> = f
            .params
            .iter()
            .map(|p| {
                let ty = erase_lifetimes(p.ty);
                quote!(#private::describer::<#ty>)
            })
            .collect();
        let count = describers.len();
        let ret = described_result(f);
        let tramp = &f.item.sig.ident;
        let forward_fn = format_ident!("__hotmod_forward_{}", tramp);
        let through_fn = format_ident!("__hotmod_handle_{}", tramp);
        let erase = |path: TokenStream| match call_kind(f) {
            CallKind::Memory => {
                quote!(#private::transmute::<#private::Trampoline, #private::RawTrampoline>(#path))
            }
            CallKind::Registers => {
                let (tys, output) = (f.params.iter().map(|p| p.ty), &f.output);
                quote!(#private::transmute::<extern "C" fn(#(#tys),*) -> #private::Returned<#output>, #private::RawTrampoline>(#path))
            }
        };
        let kind = match call_kind(f) {
            CallKind::Memory => quote!(#private::CALL_MEMORY),
            CallKind::Registers => quote!(#private::CALL_REGISTERS),
        };
        let erased = erase(quote!(__hotmod_trampolines::#tramp));
        let forward = {
            let erased = erase(quote!(__hotmod_trampolines::#forward_fn));
            // SAFETY: as for `trampoline`.
            quote!(#private::Some(unsafe { #erased }))
        };
        let signature = signature_text(f);
        statics.push(quote! {
            #(#cfgs)*
            static #params_static: [#private::Describer; #count] = [#(#describers),*];
        });
        entries.push(quote! {
            #(#cfgs)*
            #private::FnEntry {
                name: #private::StrRef::new(#name),
                signature: #private::StrRef::new(#signature),
                params: #private::SliceRef::new(&#params_static),
                ret: #private::describer::<#ret>,
                kind: #kind,
                // SAFETY: function pointers have one size; the host casts it back to the type
                // `kind` names (`Invoke`), which is this one.
                trampoline: unsafe { #erased },
                forward: #forward,
                handle: __hotmod_trampolines::#through_fn,
            }
        });
    }

    quote! {{
        #(#statics)*
        const FUNCTIONS: &[#private::FnEntry] = &[#(#entries),*];
        const STATES: &[#private::StateEntry] = &[#(#states),*];
        const KEPT: &[#private::KeptItem] = &[#(#kept),*];
        #private::ModuleDescriptor {
            magic: #private::MAGIC,
            abi_version: #private::ABI_VERSION,
            module_path: #private::StrRef::new(module_path!()),
            toolchain: #private::StrRef::new(#private::TOOLCHAIN),
            functions: #private::SliceRef::new(FUNCTIONS),
            on_load: #on_load_entry,
            enter: #private::enter_library,
            handles: &#private::HOST_HANDLES,
            states: #private::SliceRef::new(STATES),
            kept: #private::SliceRef::new(KEPT),
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
