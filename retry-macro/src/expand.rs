//! Code generation: the only file that writes `quote!`. Everything here has been validated.
//!
//! Each optional piece (a classification list, a gate, a hook) is generated only when its key is
//! given, so that a fn with defaults expands to the bare loop.

use proc_macro2::{Literal, Span, TokenStream};
use quote::{format_ident, quote, quote_spanned, ToTokens};
use syn::spanned::Spanned;
use syn::visit_mut::VisitMut;
use syn::{Expr, Ident, Type};

use crate::item::{async_trait_ret, FnItem, Shape};
use crate::validate::{Config, PolicySource, Timing};

/// Rewrites the fn. The signature, attributes and visibility are kept as written.
pub(crate) fn expand(config: &Config, item: FnItem) -> TokenStream {
    let ret = item
        .output_type()
        .cloned()
        .expect("validate.rs checked that the fn returns a value");
    let name = call_name(config, &item.sig.ident);
    let FnItem {
        attrs,
        vis,
        sig,
        shape,
    } = item;
    let body = match shape {
        Shape::Async(body) => {
            let span = sig.asyncness.map_or_else(Span::call_site, |a| a.span);
            let retry_loop = retry_loop(config, Flavor::Async(span), &name, &ret, &body);
            quote!({ #retry_loop })
        }
        Shape::Blocking(body) => {
            let retry_loop = retry_loop(config, Flavor::Blocking, &name, &ret, &body);
            quote!({ #retry_loop })
        }
        Shape::AsyncTrait { mut block, .. } => {
            let (_, init) =
                async_trait_ret(&mut block).expect("item.rs found the async_trait body");
            let span = init.span();
            let body = match &*init {
                Expr::Block(b) => quote!(#b),
                other => quote!({ #other }),
            };
            let retry_loop = retry_loop(config, Flavor::Async(span), &name, &ret, &body);
            *init = syn::parse_quote!(#retry_loop);
            quote!(#block)
        }
    };
    quote! {
        #(#attrs)*
        #vis #sig #body
    }
}

/// How attempts run and sleeps happen.
#[derive(Clone, Copy)]
enum Flavor {
    /// `async` block per attempt, `.await`ed sleeps; the span is that of the fn's `async`.
    Async(Span),
    /// A closure per attempt, blocking sleeps.
    Blocking,
}

impl Flavor {
    fn sleep(self, delay: &Ident) -> TokenStream {
        match self {
            Flavor::Async(_) => quote!(::retry_runtime::__private::sleep(#delay).await),
            Flavor::Blocking => quote!(::retry_runtime::__private::sleep_blocking(#delay)),
        }
    }
}

/// The hygienic names of the expansion's locals.
struct Locals {
    call: Ident,
    result: Ident,
    done: Ident,
    delay: Ident,
    err: Ident,
    policy: Ident,
    out: Ident,
}

impl Locals {
    fn new(ret: &Type) -> Self {
        let local = |name: &str| Ident::new(name, Span::mixed_site());
        Locals {
            call: local("__retry_call"),
            // Call-site hygiene, located at the return type, so that "not a `Result`" points at
            // the return type (rustc reports mixed-site idents at the attribute). The user's body
            // cannot see it: the body runs before this `let` in every iteration.
            result: Ident::new("__retry_result", ret.span()),
            done: local("__retry_done"),
            delay: local("__retry_delay"),
            err: local("__retry_err"),
            policy: local("__retry_policy"),
            out: local("__retry_out"),
        }
    }
}

// Input:
//     the validated config, the fn body `{ body }` and the type each attempt returns, `R`
// Output:
//     {
//         let __retry_policy: &RetryPolicy = &<const, env or config policy>;
//         let mut __retry_call = CallState::<()>::new();
//         let __retry_out: R = loop {
//             let __retry_result: R = async { body }.await;
//             match __retry_call.step(__retry_policy, name, __retry_result, <classify>,
//                                     <retry_if_ok or never>, no_gate, &()) {
//                 Break(done) => break done,
//                 Continue(delay) => sleep(delay).await,
//             }
//         };
//         __retry_out            // or fallback(__retry_out, <fallback>)
//     }
fn retry_loop(
    config: &Config,
    flavor: Flavor,
    name: &TokenStream,
    ret: &Type,
    body: &dyn ToTokens,
) -> TokenStream {
    let rt = quote!(::retry_runtime);
    let l = Locals::new(ret);
    let Locals {
        call,
        result,
        done,
        delay,
        err,
        policy,
        out,
    } = &l;

    let (policy_decl, policy) = policy_decl(config, policy);
    let clock = match &config.policy {
        PolicySource::Literals(t) if t.max_time.is_none() => quote!(()),
        _ => quote!(#rt::__private::Instant),
    };
    let mut anchor = ret.clone();
    ImplTraitToInfer.visit_type_mut(&mut anchor);
    let attempt = attempt(config, flavor, body, &anchor);
    let classify = classify(config, err);
    let retry_ok = match &config.classify.retry_if_ok {
        Some(pred) => quote!(#pred),
        None => quote!(#rt::__private::never),
    };
    let sleep = flavor.sleep(delay);
    // Errors about the return type (not a `Result`) point at the return type.
    let step = quote_spanned! {ret.span()=>
        #call.step(
            #policy,
            #name,
            #result,
            #classify,
            #retry_ok,
            #rt::__private::no_gate,
            &(),
        )
    };
    let finish = match &config.fallback {
        Some(fallback) => quote!(#rt::__private::fallback(#out, #fallback)),
        None => quote!(#out),
    };
    let loop_token = quote_spanned!(Span::call_site()=> loop);
    quote! {
        {
            #policy_decl
            let mut #call = #rt::__private::CallState::<#clock>::new();
            #[allow(clippy::never_loop)]
            let #out: #anchor = #loop_token {
                let #result: #anchor = #attempt;
                match #step {
                    ::core::ops::ControlFlow::Break(#done) => break #done,
                    ::core::ops::ControlFlow::Continue(#delay) => #sleep,
                }
            };
            #finish
        }
    }
}

// Input:
//     `{ body }`
// Output (async):
//     async { body }.await
// or, with `clone = [a]`:
//     { let mut a = ::core::clone::Clone::clone(&a); async { body }.await }
// Output (blocking):
//     (|| -> R { body })()
//
// The block is not `move`: it borrows the arguments, so `&mut self` is re-borrowed on each attempt
// and `?`/`return` end the attempt. A body that moves an argument gets rustc's "value moved here,
// in previous iteration of loop", pointing at the argument.
fn attempt(config: &Config, flavor: Flavor, body: &dyn ToTokens, anchor: &Type) -> TokenStream {
    let run = match flavor {
        Flavor::Async(span) => {
            let async_token = quote_spanned!(span=> async);
            quote!(#async_token #body.await)
        }
        Flavor::Blocking => quote! {
            (#[allow(clippy::redundant_closure_call)] || -> #anchor #body)()
        },
    };
    if config.clone.is_empty() {
        return run;
    }
    let clones = config.clone.iter().map(|name| {
        quote! {
            #[allow(unused_mut)]
            let mut #name = ::core::clone::Clone::clone(&#name);
        }
    });
    quote!({ #(#clones)* #run })
}

// Output: the declaration of the policy and a `&RetryPolicy` expression for it:
//     const __RETRY_POLICY: RetryPolicy = policy(..);          and `&__RETRY_POLICY`
//     let policy: &RetryPolicy = &(<config expr>);             and `policy`
// A const is referenced directly rather than through a local, which would be stored in the
// future across every await.
fn policy_decl(config: &Config, policy: &Ident) -> (TokenStream, TokenStream) {
    match &config.policy {
        PolicySource::Literals(timing) => {
            let literals = policy_literals(timing);
            let decl = quote! {
                const __RETRY_POLICY: ::retry_runtime::RetryPolicy = #literals;
            };
            (decl, quote!(&__RETRY_POLICY))
        }
        PolicySource::Env { .. } => {
            unreachable!("env_prefix is rejected by validate.rs until the env loader lands")
        }
        PolicySource::Expr(expr) => {
            let decl = quote_spanned! {expr.span()=>
                let #policy: &::retry_runtime::RetryPolicy = &(#expr);
            };
            (decl, quote!(#policy))
        }
    }
}

fn policy_literals(t: &Timing) -> TokenStream {
    let max_attempts = t.max_attempts;
    let initial = nanos(t.initial_delay);
    let max = nanos(t.max_delay);
    let factor = Literal::f64_suffixed(t.backoff_factor);
    let backoff = Ident::new(t.backoff, Span::call_site());
    let jitter = Ident::new(t.jitter, Span::call_site());
    let max_time = optional_nanos(t.max_time);
    let max_retry_after = optional_nanos(t.max_retry_after);
    quote! {
        ::retry_runtime::__private::policy(
            #max_attempts,
            #initial,
            #max,
            #factor,
            ::retry_runtime::Backoff::#backoff,
            ::retry_runtime::Jitter::#jitter,
            #max_time,
            #max_retry_after,
        )
    }
}

// Output: the classifying closure passed to `step`:
//     |err| {
//         let base = (&Probe(err)).__retry_classify();   // the Retryable trait, or "retry"
//         base                                            // or, with retry_if:
//         base.with_retryable(test(<retry_if>, err))
//     }
fn classify(config: &Config, err: &Ident) -> TokenStream {
    let rt = quote!(::retry_runtime);
    let base = format_ident!("__retry_base", span = Span::mixed_site());
    let decided = match &config.classify.retry_if {
        Some(pred) => quote!(#base.with_retryable(#rt::__private::test(#pred, #err))),
        None => quote!(#base),
    };
    quote! {
        |#err| {
            #[allow(unused_imports)]
            use #rt::__private::{ViaDefault as _, ViaRetryable as _};
            let #base = (&#rt::__private::Probe(#err)).__retry_classify();
            #decided
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

fn optional_nanos(secs: Option<f64>) -> TokenStream {
    match secs {
        Some(secs) => {
            let n = nanos(secs);
            quote!(::core::option::Option::Some(#n))
        }
        None => quote!(::core::option::Option::None),
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
