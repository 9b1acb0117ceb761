//! Code generation: the only file that writes `quote!`. Everything here has been validated.

use proc_macro2::{Literal, Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::visit_mut::VisitMut;
use syn::{Block, Expr, Ident, Type};

use crate::item::{FnItem, Shape};
use crate::validate::Config;

/// Rewrites the fn. The signature, attributes and visibility are kept as written.
pub(crate) fn expand(config: &Config, mut item: FnItem) -> TokenStream {
    let ret = item
        .output_type()
        .cloned()
        .expect("validate.rs checked that the fn returns a value");
    let name = call_name(config, &item.func.sig.ident);
    let async_span = item
        .func
        .sig
        .asyncness
        .map_or_else(Span::call_site, |a| a.span);
    match item.shape {
        Shape::Async => {
            let body = &item.func.block;
            let attempt = attempt_future(config, async_span, body);
            let retry_loop = retry_loop(config, &name, &ret, &attempt);
            let attrs = &item.func.attrs;
            let vis = &item.func.vis;
            let sig = &item.func.sig;
            quote! {
                #(#attrs)*
                #vis #sig {
                    #retry_loop
                }
            }
        }
        Shape::AsyncTrait { .. } => {
            let init = item
                .async_trait_body_mut()
                .expect("item.rs found the async_trait body");
            let body: Block = match &*init {
                Expr::Block(b) => b.block.clone(),
                other => syn::parse_quote!({ #other }),
            };
            let attempt = attempt_future(config, init.span(), &body);
            let retry_loop = retry_loop(config, &name, &ret, &attempt);
            *init = syn::parse_quote!(#retry_loop);
            let func = &item.func;
            quote!(#func)
        }
        Shape::Blocking => unreachable!("validate.rs rejects non-async fns"),
    }
}

// Input:
//     { body }
// Output:
//     async { body }
// or, with `clone = [a]`:
//     { let a = ::core::clone::Clone::clone(&a); async { body } }
//
// The block is not `move`: it borrows the arguments, so `&mut self` is re-borrowed on each attempt
// and `?`/`return` end the attempt. A body that moves an argument gets rustc's "value moved here,
// in previous iteration of loop", pointing at the argument.
fn attempt_future(config: &Config, async_span: Span, body: &Block) -> TokenStream {
    let async_token = quote_spanned!(async_span=> async);
    if config.clone.is_empty() {
        return quote!(#async_token #body);
    }
    let clones = config.clone.iter().map(|name| {
        quote! {
            #[allow(unused_mut)]
            let mut #name = ::core::clone::Clone::clone(&#name);
        }
    });
    quote!({ #(#clones)* #async_token #body })
}

// Input:
//     the attempt future (above) and the type each attempt returns, `R`
// Output:
//     {
//         const __RETRY_POLICY: RetryPolicy = policy(<validated literals>);
//         let mut __retry_call = CallState::<()>::new();
//         loop {
//             let __retry_result: R = <attempt>.await;
//             match __retry_call.step(&__RETRY_POLICY, __retry_result, <classify>, never, &()) {
//                 Break(done) => break done,
//                 Continue(delay) => sleep(delay).await,
//             }
//         }
//     }
fn retry_loop(
    config: &Config,
    name: &TokenStream,
    ret: &Type,
    attempt: &TokenStream,
) -> TokenStream {
    let rt = quote!(::retry_runtime);
    let call = Ident::new("__retry_call", Span::mixed_site());
    // Call-site hygiene, located at the return type, so that "not a `Result`" points at the
    // return type (rustc reports mixed-site idents at the attribute). The user's body cannot see
    // it: the body runs before this `let` in every iteration.
    let result = Ident::new("__retry_result", ret.span());
    let done = Ident::new("__retry_done", Span::mixed_site());
    let delay = Ident::new("__retry_delay", Span::mixed_site());
    let err = Ident::new("__retry_err", Span::mixed_site());

    let policy = policy(config);
    let clock = if config.max_time.is_some() {
        quote!(#rt::__private::Instant)
    } else {
        quote!(())
    };
    let mut anchor = ret.clone();
    ImplTraitToInfer.visit_type_mut(&mut anchor);
    let step = quote_spanned! {ret.span()=>
        #call.step(
            &__RETRY_POLICY,
            #name,
            #result,
            |#err| {
                #[allow(unused_imports)]
                use #rt::__private::{ViaDefault as _, ViaRetryable as _};
                (&#rt::__private::Probe(#err)).__retry_classify()
            },
            #rt::__private::never,
            #rt::__private::no_gate,
            &(),
        )
    };
    let loop_token = quote_spanned!(Span::call_site()=> loop);
    quote! {
        {
            const __RETRY_POLICY: #rt::RetryPolicy = #policy;
            let mut #call = #rt::__private::CallState::<#clock>::new();
            #[allow(clippy::never_loop)]
            #loop_token {
                let #result: #anchor = #attempt.await;
                match #step {
                    ::core::ops::ControlFlow::Break(#done) => break #done,
                    ::core::ops::ControlFlow::Continue(#delay) => {
                        #rt::__private::sleep(#delay).await
                    }
                }
            }
        }
    }
}

/// The name events and statistics report: `name = ".."`, or the module path and fn name.
fn call_name(config: &Config, ident: &Ident) -> TokenStream {
    match &config.name {
        Some(name) => quote!(#name),
        None => {
            let ident = ident.to_string();
            quote!(::core::concat!(::core::module_path!(), "::", #ident))
        }
    }
}

fn policy(config: &Config) -> TokenStream {
    let max_attempts = config.max_attempts;
    let initial = nanos(config.initial_delay);
    let max = nanos(config.max_delay);
    let factor = Literal::f64_suffixed(config.backoff_factor);
    let backoff = Ident::new(config.backoff, Span::call_site());
    let jitter = Ident::new(config.jitter, Span::call_site());
    let max_time = match config.max_time {
        Some(secs) => {
            let n = nanos(secs);
            quote!(::core::option::Option::Some(#n))
        }
        None => quote!(::core::option::Option::None),
    };
    quote! {
        ::retry_runtime::__private::policy(
            #max_attempts,
            #initial,
            #max,
            #factor,
            ::retry_runtime::Backoff::#backoff,
            ::retry_runtime::Jitter::#jitter,
            #max_time,
        )
    }
}

/// Validated seconds to nanoseconds, saturating (a `Duration` of u64::MAX ns is 584 years).
fn nanos(secs: f64) -> Literal {
    let n = (secs * 1e9).round();
    let n = if n >= u64::MAX as f64 {
        u64::MAX
    } else {
        n as u64
    };
    Literal::u64_suffixed(n)
}

/// `let x: impl Trait` is not allowed; `_` lets inference fill it in.
struct ImplTraitToInfer;

impl VisitMut for ImplTraitToInfer {
    fn visit_type_mut(&mut self, ty: &mut Type) {
        if let Type::ImplTrait(it) = ty {
            *ty = Type::Infer(syn::TypeInfer {
                underscore_token: syn::Token![_](it.impl_token.span),
            });
            return;
        }
        syn::visit_mut::visit_type_mut(self, ty);
    }
}
