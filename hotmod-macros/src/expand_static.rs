//! Code generation when reloading is compiled out (hotmod built without its `reload` feature).
//!
//! The user's module stays exactly as written, so every `pub fn` is the original function and a
//! call is an ordinary direct call. Added beside it, so host code compiles unchanged:
//!
//! - `Handle`: a zero-sized value whose methods call the functions directly, `generation()` 0;
//! - `module()`: a control surface whose `load`/`reload` return `Error::ReloadDisabled`.
//!
//! No trampolines, no descriptor, no exported symbol. An `#[on_load]` function loses its
//! attribute and never runs (nothing is ever loaded); a `#[hotmod::state]` static loses its
//! attribute and is an ordinary `hotmod::State` of the one and only generation.

use proc_macro2::TokenStream;
use quote::quote;

use crate::ast::{cfgs, Args, HotFn, HotModule, ModItem};
use crate::boundary::Boundary;

pub fn expand(args: &Args, hot: &HotModule) -> TokenStream {
    let krate = &args.krate;
    let private = quote!(#krate::__private);
    let module = hot.module;
    let (outer_attrs, inner_attrs) = (hot.outer_attrs(), hot.inner_attrs());
    let vis = &module.vis;
    let ident = &module.ident;
    // The module's items exactly as written, in their order (`macro_rules!` cares), but for
    // the `#[on_load]` and `#[state]` attributes, which mean nothing without reloading.
    let boundary = Boundary::new(krate, hot);
    let items = hot.items.iter().map(|item| match item {
        ModItem::Other(item) => boundary.item(item),
        other => quote!(#other),
    });
    let functions: Vec<&HotFn> = hot.functions().collect();
    let checks = boundary.checks(&functions);
    // Nothing calls the on_load function or the states' migrate functions in this build; keep
    // them from being dead code.
    let on_load = hot
        .on_load()
        .into_iter()
        .map(|name| quote!(const _: () = { let _ = #name; };));
    let migrate = hot.states().filter_map(|state| {
        let path = state.migrate.as_ref()?;
        let cfgs = cfgs(&state.item.attrs);
        Some(quote!(#(#cfgs)* const _: () = { let _ = #path; };))
    });
    let methods = hot.functions().map(method);
    let default_path = match &args.path {
        Some(path) => quote!(#private::Some(#path)),
        None => quote!(#private::None),
    };
    let handle_doc = format!(
        "A handle on `{ident}`. Reloading is compiled out of this build, so every handle is \
         generation 0 and its methods call the functions directly."
    );

    quote! {
        #(#outer_attrs)*
        #vis mod #ident {
            #(#inner_attrs)*
            #(#items)*

            #checks

            #(#on_load)*
            #(#migrate)*

            #[doc = #handle_doc]
            #[derive(Clone)]
            pub struct Handle(());

            /// `Handle { module: "…", generation: 0, is_current: true }`, as in reloadable builds.
            impl ::core::fmt::Debug for Handle {
                fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                    f.debug_struct("Handle")
                        .field("module", &::core::module_path!())
                        .field("generation", &0u64)
                        .field("is_current", &true)
                        .finish()
                }
            }

            impl Handle {
                /// The only generation there is in this build: 0, the compiled-in code.
                #[inline(always)]
                pub fn current() -> Self {
                    Handle(())
                }

                /// Always 0: reloading is compiled out.
                #[inline(always)]
                pub fn generation(&self) -> u64 {
                    0
                }

                /// Always true: generation 0 is the only one.
                #[inline(always)]
                pub fn is_current(&self) -> bool {
                    true
                }

                #(#methods)*
            }

            /// The control surface of this hot module; in this build it cannot load anything.
            pub fn module() -> &'static #krate::Module {
                static __HOTMOD_MODULE: #krate::Module =
                    #krate::Module::__compiled_out(module_path!(), #default_path);
                &__HOTMOD_MODULE
            }
        }
    }
}

/// `pub fn greet(&self, name: &str) -> String { self::greet(name) }` (for a hot method
/// `Reply::label`, `pub fn reply_label(&self, self_: &Reply) -> String { <Reply>::label(self_) }`)
fn method(f: &HotFn) -> TokenStream {
    let attrs = f
        .item
        .attrs
        .iter()
        .filter(|a| a.path().is_ident("cfg") || a.path().is_ident("doc"));
    let name = f.handle_name();
    let method_doc = f.method.map(crate::methods::handle_doc);
    let callee = match f.method {
        Some(method) => method.direct.clone(),
        None => quote!(self::#name),
    };
    let params = f.params.iter().map(|p| {
        let (ident, ty) = (&p.ident, &p.ty);
        quote!(#ident: #ty)
    });
    let args = f.params.iter().map(|p| &p.ident);
    let output = &f.item.sig.output;
    quote! {
        #(#attrs)*
        #method_doc
        #[inline(always)]
        pub fn #name(&self, #(#params),*) #output {
            #callee(#(#args),*)
        }
    }
}
