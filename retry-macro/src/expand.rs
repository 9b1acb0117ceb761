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
            // Call-site hygiene so that uses of it can be located at user tokens (see
            // `classify`); it names a closure parameter the user's body never sees.
            err: Ident::new("__retry_err", Span::call_site()),
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
    // A literal policy picks its clock at compile time (none at all without `max_time`); a policy
    // known only at run time reads the clock only when it has a `max_time`.
    let new_call = match &config.policy {
        PolicySource::Literals(t) if t.max_time.is_none() => {
            quote!(#rt::__private::CallState::<()>::new())
        }
        PolicySource::Literals(_) => {
            quote!(#rt::__private::CallState::<#rt::__private::Instant>::new())
        }
        PolicySource::Env { .. } | PolicySource::Expr(_) => {
            quote!(#rt::__private::DynCallState::new(#policy))
        }
    };
    let mut anchor = ret.clone();
    ImplTraitToInfer.visit_type_mut(&mut anchor);
    let attempt = attempt(config, flavor, body, &anchor);
    let attempt = with_timeout(config, flavor, &anchor, attempt);
    let classify = classify(config, err);
    let retry_ok = match &config.classify.retry_if_ok {
        Some(pred) => quote!(#pred),
        None => quote!(#rt::__private::never),
    };
    let sleep = flavor.sleep(delay);
    let observer = Ident::new("__retry_observer", Span::mixed_site());
    let (observer_decl, observer_start) = observers(config, &observer, &anchor);
    let gate = gate(config, flavor, call, &observer, &anchor);
    let (gate_decl, admit, settle) = match &gate {
        Some(g) => (&g.decl, &g.admit, &g.settle),
        None => (
            &TokenStream::new(),
            &TokenStream::new(),
            &quote!(#rt::__private::no_gate),
        ),
    };
    // Errors about the return type (not a `Result`) point at the return type.
    let step = quote_spanned! {ret.span()=>
        #call.step(
            #policy,
            #name,
            #result,
            #classify,
            #retry_ok,
            #settle,
            &#observer,
        )
    };
    let finish = match &config.fallback {
        Some(fallback) => quote!(#rt::__private::recover(#out, #fallback)),
        None => quote!(#out),
    };
    let loop_token = quote_spanned!(Span::call_site()=> loop);
    quote! {
        {
            #policy_decl
            #gate_decl
            #observer_decl
            #observer_start
            let mut #call = #new_call;
            #[allow(clippy::never_loop, clippy::redundant_closure_call)]
            let #out: #anchor = #loop_token {
                #admit
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

/// What a fn with a breaker or a throttle runs around each attempt.
struct GateCode {
    /// `let __retry_gate = ..;`, once per call.
    decl: TokenStream,
    /// Binds `__retry_permit` before each attempt, after any pacing sleep; ends the call if the
    /// breaker is open.
    admit: TokenStream,
    /// The `settle` closure handed to `step`.
    settle: TokenStream,
}

// Output, with `circuit_breaker = B` (and `throttle = T`):
//     let __retry_gate = breaker(&B);                  // or (breaker(&B), throttle(&T))
//     // before each attempt:
//     let __retry_permit = match Gate::admit(&__retry_gate) {
//         Admission::Proceed(p) => p,
//         Admission::Wait(d, p) => { sleep(d).await; p }
//         Admission::Reject(open) => break call.reject(circuit_open::<R>(open), CircuitOpen, &obs),
//     };
//     // settle: |outcome| Gate::settle(&__retry_gate, __retry_permit, outcome)
// With only `throttle = T`, which never rejects:
//     let __retry_gate = throttle(&T);
//     let (wait, __retry_permit) = pace(__retry_gate); if let Some(d) = wait { sleep(d).await }
fn gate(
    config: &Config,
    flavor: Flavor,
    call: &Ident,
    observer: &Ident,
    anchor: &Type,
) -> Option<GateCode> {
    let rt = quote!(::retry_runtime);
    let gate = Ident::new("__retry_gate", Span::mixed_site());
    let permit = Ident::new("__retry_permit", Span::mixed_site());
    let wait = Ident::new("__retry_wait", Span::mixed_site());
    let open = Ident::new("__retry_open", Span::mixed_site());
    let outcome = Ident::new("__retry_outcome", Span::mixed_site());
    let breaker = config
        .circuit_breaker
        .as_ref()
        .map(|b| quote_spanned!(b.span()=> #rt::__private::breaker(&#b)));
    let throttle = config
        .throttle
        .as_ref()
        .map(|t| quote_spanned!(t.span()=> #rt::__private::throttle(&#t)));
    let sleep = flavor.sleep(&wait);
    let admit = match (&breaker, &config.circuit_breaker) {
        (Some(_), Some(b)) => {
            let rejected =
                quote_spanned!(b.span()=> #rt::__private::circuit_open::<#anchor>(#open));
            quote! {
                let #permit = match #rt::Gate::admit(&#gate) {
                    #rt::Admission::Proceed(#permit) => #permit,
                    #rt::Admission::Wait(#wait, #permit) => {
                        #sleep;
                        #permit
                    }
                    #rt::Admission::Reject(#open) => {
                        break #call.reject::<#anchor, _>(
                            #rejected,
                            #rt::GiveUpReason::CircuitOpen,
                            &#observer,
                        )
                    }
                };
            }
        }
        _ => quote! {
            let (#wait, #permit) = #rt::__private::pace(#gate);
            if let ::core::option::Option::Some(#wait) = #wait {
                #sleep;
            }
        },
    };
    let decl = match (breaker, throttle) {
        (None, None) => return None,
        (Some(b), None) => quote!(let #gate = #b;),
        (None, Some(t)) => quote!(let #gate = #t;),
        (Some(b), Some(t)) => quote!(let #gate = (#b, #t);),
    };
    Some(GateCode {
        decl,
        admit,
        settle: quote!(|#outcome| #rt::Gate::settle(&#gate, #permit, #outcome)),
    })
}

// Output: the observers every call reports to, as one tuple, and the call-start notification:
//     let __retry_observer = (<stats>, <hooks>, budget(&B));    // the budget last: nothing
//     start::<R, _>(&__retry_observer);                          // vetoes after it spent a token
// or `let __retry_observer = ();` and nothing.
fn observers(config: &Config, observer: &Ident, anchor: &Type) -> (TokenStream, TokenStream) {
    let rt = quote!(::retry_runtime);
    let mut parts: Vec<TokenStream> = Vec::new();
    if let Some(b) = &config.budget {
        parts.push(quote_spanned!(b.span()=> #rt::__private::budget(&#b)));
    }
    if parts.is_empty() {
        return (quote!(let #observer = ();), TokenStream::new());
    }
    (
        quote!(let #observer = (#(#parts,)*);),
        quote!(#rt::__private::start::<#anchor, _>(&#observer);),
    )
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
            let run = quote!(#async_token #body);
            if config.attempt_timeout.is_some() {
                run
            } else {
                quote!(#run.await)
            }
        }
        Flavor::Blocking => quote! {
            (|| -> #anchor #body)()
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

// Input:
//     `<attempt>.await` (async flavor)
// Output, with `attempt_timeout = 30`:
//     with_timeout(Duration::from_nanos(30_000_000_000), <attempt>, timeout_error::<R>()).await
// `timeout_error()` is spanned at the value, so that an error type without `From<AttemptTimedOut>`
// is reported there.
fn with_timeout(
    config: &Config,
    flavor: Flavor,
    anchor: &Type,
    attempt: TokenStream,
) -> TokenStream {
    let (Some((secs, span)), Flavor::Async(_)) = (&config.attempt_timeout, flavor) else {
        return attempt;
    };
    let nanos = nanos(*secs);
    let rt = quote!(::retry_runtime);
    let on_timeout = quote_spanned!(*span=> #rt::__private::timeout_error::<#anchor>());
    quote! {
        #rt::__private::with_timeout(
            ::core::time::Duration::from_nanos(#nanos),
            #attempt,
            #on_timeout,
        )
        .await
    }
}

// Output: the declaration of the policy and a `&RetryPolicy` expression for it:
//     const __RETRY_POLICY: RetryPolicy = policy(..);          and `&__RETRY_POLICY`
//     static __RETRY_ENV: EnvPolicy = EnvPolicy::new("LLM", policy(..));
//     let policy = __RETRY_ENV.get();                          and `policy`
//     let policy: RetryPolicy = *config(&(<config expr>));     and `&policy`
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
        PolicySource::Env { prefix, base } => {
            let literals = policy_literals(base);
            let decl = quote! {
                static __RETRY_ENV: ::retry_runtime::__private::EnvPolicy =
                    ::retry_runtime::__private::EnvPolicy::new(#prefix, #literals);
                let #policy: &::retry_runtime::RetryPolicy = __RETRY_ENV.get();
            };
            (decl, quote!(#policy))
        }
        PolicySource::Expr(expr) => {
            // Copied out, so that `config = self.retry_settings` does not hold a borrow of `self`
            // across a `&mut self` body.
            let decl = quote_spanned! {expr.span()=>
                let #policy: ::retry_runtime::RetryPolicy =
                    *::retry_runtime::__private::config(&(#expr));
            };
            (decl, quote!(&#policy))
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

// Output: the classifying closure passed to `step`, without lists:
//     |err| (&Probe(err)).__retry_classify()        // the Retryable trait, or "retry"
// with `retry_if`:
//     |err| (&Probe(err)).__retry_classify().with_retryable(test(<retry_if>, err))
// with `retry_on`/`give_up_on` (precedence: give_up_on > retry_on/retry_if > trait > retry):
//     |err| {
//         let d: &dyn Error = (&&&&Inspector(err)).__retry_inspect();
//         decide(chain_has::<G>(d) || .., Some(chain_has::<R>(d) || .. || test(<retry_if>, err)),
//                || (&Probe(err)).__retry_classify())
//     }
fn classify(config: &Config, err: &Ident) -> TokenStream {
    let rt = quote!(::retry_runtime);
    let lists = &config.classify;
    let own = quote!((&#rt::__private::Probe(#err)).__retry_classify());
    let uses = quote! {
        #[allow(unused_imports)]
        use #rt::__private::{ViaDefault as _, ViaRetryable as _};
    };
    let retry_if = lists
        .retry_if
        .as_ref()
        .map(|pred| quote!(#rt::__private::test(#pred, #err)));
    if lists.retry_on.is_empty() && lists.give_up_on.is_empty() {
        let decided = match retry_if {
            Some(test) => quote!(#own.with_retryable(#test)),
            None => own,
        };
        return quote!(|#err| { #uses #decided });
    }
    let dyn_err = format_ident!("__retry_dyn", span = Span::mixed_site());
    let matches = |types: &[Type]| -> Vec<TokenStream> {
        types
            .iter()
            .map(|ty| quote_spanned!(ty.span()=> #rt::chain_has::<#ty>(#dyn_err)))
            .collect()
    };
    let give_up = matches(&lists.give_up_on);
    let give_up = if give_up.is_empty() {
        quote!(false)
    } else {
        quote!(#(#give_up)||*)
    };
    let mut accept = matches(&lists.retry_on);
    accept.extend(retry_if);
    let retry = if accept.is_empty() {
        quote!(::core::option::Option::None)
    } else {
        quote!(::core::option::Option::Some(#(#accept)||*))
    };
    // Located at the first list, so that "cannot be inspected" points there; a mixed-site ident
    // would be reported at the attribute. `err` has call-site hygiene, see `Locals::new`.
    let err_at_list = Ident::new(&err.to_string(), lists.inspect_span);
    let inspect = quote_spanned! {lists.inspect_span=>
        (&&&&#rt::__private::Inspector(#err_at_list)).__retry_inspect()
    };
    quote! {
        |#err| {
            #uses
            #[allow(unused_imports)]
            use #rt::__private::{
                InspectRequired as _, InspectViaAsRef as _, InspectViaError as _,
                InspectViaTrait as _,
            };
            let #dyn_err: &(dyn ::std::error::Error + 'static) = #inspect;
            #rt::__private::decide(#give_up, #retry, || #own)
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
