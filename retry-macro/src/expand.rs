//! Code generation: the only file that writes `quote!`. Everything here has been validated.
//!
//! Each optional piece (a classification list, a gate, a hook) is generated only when its key is
//! given, so that a fn with defaults expands to the bare loop.

use proc_macro2::{Literal, Punct, Spacing, Span, TokenStream};
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

/// `::retry_runtime`, pushed as three tokens. Interpolating a `TokenStream` (`quote!(::retry_runtime)`)
/// costs several calls across the proc-macro bridge each time; pushing tokens costs none, and the
/// expansion names the crate a few dozen times per fn.
#[derive(Clone, Copy)]
struct Rt;

impl ToTokens for Rt {
    fn to_tokens(&self, tokens: &mut TokenStream) {
        RtAt(Span::call_site()).to_tokens(tokens);
    }
}

/// `::retry_runtime` with every token at `span`: in a call whose tokens all carry one user span,
/// rustc points its type errors at that span instead of at the whole attribute.
struct RtAt(Span);

impl ToTokens for RtAt {
    fn to_tokens(&self, tokens: &mut TokenStream) {
        let punct = |spacing| {
            let mut p = Punct::new(':', spacing);
            p.set_span(self.0);
            proc_macro2::TokenTree::Punct(p)
        };
        tokens.extend([
            punct(Spacing::Joint),
            punct(Spacing::Alone),
            proc_macro2::TokenTree::Ident(Ident::new("retry_runtime", self.0)),
        ]);
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
    /// `__private::<name>(args)`, awaited for an async fn, `__private::<name>_blocking(args)` for
    /// a blocking one.
    fn call(self, name: &str, args: TokenStream) -> TokenStream {
        match self {
            Flavor::Async(_) => {
                let f = Ident::new(name, Span::call_site());
                quote!(::retry_runtime::__private::#f(#args).await)
            }
            Flavor::Blocking => {
                let f = Ident::new(&format!("{name}_blocking"), Span::call_site());
                quote!(::retry_runtime::__private::#f(#args))
            }
        }
    }
}

/// The hygienic names of the expansion's locals.
struct Locals {
    call: Ident,
    result: Ident,
    err: Ident,
    policy: Ident,
    out: Ident,
    flow: Ident,
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
            // Call-site hygiene so that uses of it can be located at user tokens (see
            // `classify`); it names a closure parameter the user's body never sees.
            err: Ident::new("__retry_err", Span::call_site()),
            policy: local("__retry_policy"),
            out: local("__retry_out"),
            flow: local("__retry_flow"),
        }
    }
}

// Input:
//     the validated config, the fn body `{ body }` and the type each attempt returns, `R`
// Output (without the optional pieces, each generated only when its key is given):
//     {
//         let mut __retry_call = CallState::<()>::new();
//         let __retry_stats = __retry_stats!(name);    // these three are zero-sized no-ops
//         let __retry_metrics = __retry_metrics!(name);  // unless the runtime's `stats`,
//         let __retry_trace = __retry_trace!(R, name);   // `metrics`, `tracing` features are on
//         let __retry_out: R = loop {
//             let __retry_result: R = { let a = async { body }; __retry_instrument!(__retry_trace, a) }.await;
//             let __retry_flow = __retry_call.step(<&RetryPolicy::DEFAULT or &__RETRY_POLICY>, name,
//                 __retry_result, <classify>, <retry_if_ok or never>, no_gate, &(<observers>));
//             match __retry_flow {
//                 Break(done) => break done,
//                 Continue(delay) => __retry_stats.watch(sleep(delay)).await,
//             }
//         };
//         __retry_stats.finish();  // `stats = true`: forgets the recorder (its `Drop` counts
//                                  // calls dropped before they return)
//         __retry_out            // or recover(__retry_out, <fallback>)
//     }
fn retry_loop(
    config: &Config,
    flavor: Flavor,
    name: &TokenStream,
    ret: &Type,
    body: &dyn ToTokens,
) -> TokenStream {
    let rt = Rt;
    let l = Locals::new(ret);
    let Locals {
        call,
        result,
        err,
        policy,
        out,
        flow,
    } = &l;

    let mut anchor = ret.clone();
    ImplTraitToInfer.visit_type_mut(&mut anchor);
    let (policy_decl, policy) = policy_decl(config, policy);
    let new_call = new_call(config, &policy);
    let observers = observers(config, name, call, &anchor);
    let gate = gate(config, flavor, call, &observers, &anchor);
    let (gate_decl, admit, settle) = match &gate {
        Some(g) => (&g.decl, &g.admit, &g.settle),
        None => (
            &TokenStream::new(),
            &TokenStream::new(),
            &quote!(#rt::__private::no_gate),
        ),
    };
    let (context_decl, context_bind) = context(config, call);
    let attempt = attempt(config, flavor, body, &anchor, &observers);
    let classify = classify(config, err, &anchor);
    let retry_ok = match &config.classify.retry_if_ok {
        Some(pred) => quote!(#pred),
        None => quote!(#rt::__private::never),
    };
    let next = match flavor {
        Flavor::Async(_) => quote!(#rt::__retry_next!(async #flow)),
        Flavor::Blocking => quote!(#rt::__retry_next!(blocking #flow)),
    };
    let observer_decl = &observers.decl;
    let observer = &observers.tuple;
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
    let loop_token = quote_spanned!(Span::call_site()=> loop);
    // A blocking attempt is a closure called at once.
    let allow = match flavor {
        Flavor::Async(_) => TokenStream::new(),
        Flavor::Blocking => quote!(#[allow(clippy::redundant_closure_call)]),
    };
    // The loop is the block's value: the fn's return type (or async_trait's `__ret`) anchors it;
    // with a fallback, a typed `let` does.
    let retry_loop = quote! {
        #loop_token {
            #admit
            #context_bind
            #allow
            let #result: #anchor = #attempt;
            // A `let`, not a `match` on the call: the temporaries of a match scrutinee (the
            // observer tuple) would live across the sleep's await and grow the future.
            let #flow = #step;
            #next
        }
    };
    // A call dropped before it returns is counted by the statistics recorder's `Drop`; one that
    // returns (however it leaves the loop) hands the recorder to `finish`, which forgets it.
    // (Only with `stats = true`: the `stats` feature's recorder notes the end itself, so that
    // fns without the key get no extra tokens.)
    let finish_stats = (config.stats == Some(true)).then(|| {
        let stats = &observers.stats;
        quote!(#stats.finish();)
    });
    let finish = match (&config.fallback, finish_stats) {
        (Some(fallback), finish_stats) => quote! {
            let #out: #anchor = #retry_loop;
            #finish_stats
            #rt::__private::recover(#out, #fallback)
        },
        (None, Some(finish_stats)) => quote! {
            let #out: #anchor = #retry_loop;
            #finish_stats
            #out
        },
        (None, None) => retry_loop,
    };
    quote! {
        {
            #policy_decl
            let mut #call = #new_call;
            #gate_decl
            #observer_decl
            #context_decl
            #finish
        }
    }
}

// Output: the per-call state. A literal policy picks its clock at compile time (none at all
// without `max_time`); a policy known only at run time reads the clock only when it has a
// `max_time`; hooks and the attempt context always need the start time.
//     CallState::<()>::new()  |  CallState::<Instant>::new()  |  DynCallState::new(policy)
fn new_call(config: &Config, policy: &TokenStream) -> TokenStream {
    let rt = Rt;
    let needs_clock = config.on_retry.is_some()
        || config.on_give_up.is_some()
        || config.on_success.is_some()
        || config.context.is_some();
    match &config.policy {
        PolicySource::Literals(t) if t.max_time.is_none() && !needs_clock => {
            quote!(#rt::__private::CallState::<()>::new())
        }
        PolicySource::Env { .. } | PolicySource::Expr(_) if !needs_clock => {
            quote!(#rt::__private::DynCallState::new(#policy))
        }
        _ => quote!(#rt::__private::CallState::<#rt::__private::Instant>::new()),
    }
}

/// The observers of a call: their declarations, the value `step` sees, and the one whose span
/// each attempt's future runs in.
struct Observers {
    decl: TokenStream,
    /// The observers as one value, built where it is used so that it is not stored in the
    /// future.
    tuple: TokenStream,
    trace: Ident,
    /// The statistics recorder's name (declared unless `stats = false`).
    stats: Ident,
}

// Output, in the order the observers see each retry: a vetoing budget first, so that nobody counts
// a retry it vetoes; then the hooks, statistics, metrics and tracing:
//     let __retry_budget = budget(&B);
//     let __retry_on_retry = on_retry::<R, _>(F);
//     let __retry_on_give_up = give_up_hook::<R, _>(G);
//     let __retry_on_give_up = OnGiveUp::new(name, __retry_call.clock(), __retry_on_give_up);
//     let __retry_on_success = success_hook(S);
//     let __retry_on_success = OnSuccess::new(name, __retry_call.clock(), __retry_on_success);
//     let __retry_stats = __retry_fn_stats!(finished, name);   // `stats = true`
//                                                              // (none with `stats = false`)
//     let __retry_stats = __retry_stats!(name);                // (without `stats = ..`)
//     let __retry_metrics = __retry_metrics!(name);
//     let __retry_trace = __retry_trace!(R, name);
// and the value
//     __retry_with_trace!(__retry_trace, __retry_with_metrics!(__retry_metrics,
//         __retry_with_stats!(__retry_stats, (&__retry_budget, &__retry_on_retry, ..))))
// where each `__retry_with_*!(x, inner)` is `(inner, &x)` with its runtime feature on and `inner`
// with it off: observers of features that are off are not there at all, which spares every fn
// the type checking of a wider tuple of no-ops (`(&__retry_stats, ..)` with `stats = true`).
fn observers(config: &Config, name: &TokenStream, call: &Ident, anchor: &Type) -> Observers {
    let rt = Rt;
    let local = |n: &str| Ident::new(n, Span::mixed_site());
    let (stats, metrics, trace) = (
        local("__retry_stats"),
        local("__retry_metrics"),
        local("__retry_trace"),
    );
    let mut decl = TokenStream::new();
    let mut refs = Vec::new();
    if let Some(b) = &config.budget {
        let budget = local("__retry_budget");
        decl.extend(quote_spanned!(b.span()=> let #budget = #rt::__private::budget(&#b);));
        refs.push(budget);
    }
    // Each hook's closure gets its argument types in a call made of its own tokens and the
    // return type's (`RtAt`), so that a closure of the wrong shape is reported at the closure
    // rather than at the whole attribute.
    if let Some(f) = &config.on_retry {
        let hook = local("__retry_on_retry");
        let rt_f = RtAt(f.span());
        decl.extend(
            quote_spanned!(f.span()=> let #hook = #rt_f::__private::on_retry::<#anchor, _>(#f);),
        );
        refs.push(hook);
    }
    if let Some(f) = &config.on_give_up {
        let hook = local("__retry_on_give_up");
        let rt_f = RtAt(f.span());
        decl.extend(quote_spanned! {f.span()=>
            let #hook = #rt_f::__private::give_up_hook::<#anchor, _>(#f);
        });
        decl.extend(quote! {
            let #hook = #rt::OnGiveUp::new(#name, #call.clock(), #hook);
        });
        refs.push(hook);
    }
    if let Some(f) = &config.on_success {
        let hook = local("__retry_on_success");
        let rt_f = RtAt(f.span());
        decl.extend(quote_spanned! {f.span()=>
            let #hook = #rt_f::__private::success_hook(#f);
        });
        decl.extend(quote!(let #hook = #rt::OnSuccess::new(#name, #call.clock(), #hook);));
        refs.push(hook);
    }
    if config.stats == Some(true) {
        decl.extend(quote!(let #stats = #rt::__retry_fn_stats!(finished, #name);));
        refs.push(stats.clone());
    }
    // `default` leaves statistics to the runtime's `stats` feature. With an `impl Trait` in the
    // return type (`_` in the anchor), the error type cannot be named before the first attempt:
    // tracing then shows errors by type name.
    let mode = Ident::new(
        if config.stats.is_none() {
            "default"
        } else {
            "given"
        },
        Span::call_site(),
    );
    let ret = if has_infer(anchor) {
        quote!(@by_type_name)
    } else {
        quote!(#anchor)
    };
    decl.extend(quote!(#rt::__retry_features!(#mode, #stats, #metrics, #trace, #name, #ret);));
    let tuple = quote!(#rt::__retry_observers!(#mode, #stats, #metrics, #trace; #(#refs),*));
    Observers {
        decl,
        tuple,
        trace,
        stats,
    }
}

// Output, with `context = ctx`:
//     let __retry_context = ContextState::new();                   // once per call
//     let ctx: &AttemptContext = &__retry_context.attempt(&__retry_call);   // before each attempt
fn context(config: &Config, call: &Ident) -> (TokenStream, TokenStream) {
    let Some(ctx) = &config.context else {
        return (TokenStream::new(), TokenStream::new());
    };
    let rt = Rt;
    let state = Ident::new("__retry_context", Span::mixed_site());
    (
        quote!(let #state = #rt::__private::ContextState::new();),
        quote! {
            #[allow(unused_variables)]
            let #ctx: &#rt::AttemptContext = &#state.attempt(&#call);
        },
    )
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
//         Admission::Proceed(p) => Ok(p),
//         Admission::Wait(d, p) => wait_admitted(&__retry_gate, d, p).await, // sleeps, confirms
//         Admission::Reject(open) => Err(open),
//     };
//     let __retry_permit = match __retry_permit {
//         Ok(p) => p,
//         Err(open) => break call.reject(circuit_open::<R>(open), CircuitOpen, &obs),
//     };
//     // settle: |outcome| { Gate::settle(&__retry_gate, __retry_permit, outcome);
//     //                     Gate::outlook(&__retry_gate) }   // give up now if it just opened,
//     //                                                      // or its wait crosses max_time
// With only `throttle = T`, which never rejects:
//     let __retry_gate = throttle(&T);
//     let (wait, __retry_permit) = pace(__retry_gate);
//     let __retry_permit = match wait { Some(d) => wait_paced(__retry_gate, d, __retry_permit).await,
//                                       None => __retry_permit };
fn gate(
    config: &Config,
    flavor: Flavor,
    call: &Ident,
    observers: &Observers,
    anchor: &Type,
) -> Option<GateCode> {
    if config.circuit_breaker.is_none() && config.throttle.is_none() {
        return None;
    }
    let rt = Rt;
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
    let observer = &observers.tuple;
    let admit = match &config.circuit_breaker {
        Some(b) => {
            let rejected =
                quote_spanned!(b.span()=> #rt::__private::circuit_open::<#anchor>(#open));
            // A breaker alone never asks to wait: no pacing code (and no room in the future
            // for it) unless a throttle shares the gate.
            let waited = match config.throttle {
                Some(_) => flavor.call("wait_admitted", quote!(&#gate, #wait, #permit)),
                None => quote!({
                    let _ = #wait;
                    ::core::result::Result::Ok(#permit)
                }),
            };
            quote! {
                let #permit = match #rt::Gate::admit(&#gate) {
                    #rt::Admission::Proceed(#permit) => ::core::result::Result::Ok(#permit),
                    #rt::Admission::Wait(#wait, #permit) => #waited,
                    #rt::Admission::Reject(#open) => ::core::result::Result::Err(#open),
                };
                let #permit = match #permit {
                    ::core::result::Result::Ok(#permit) => #permit,
                    ::core::result::Result::Err(#open) => {
                        break #call.reject::<#anchor, _>(
                            #rejected,
                            #rt::GiveUpReason::CircuitOpen,
                            &#observer,
                        )
                    }
                };
            }
        }
        None => {
            let waited = flavor.call("wait_paced", quote!(#gate, #wait, #permit));
            quote! {
                let (#wait, #permit) = #rt::__private::pace(#gate);
                let #permit = match #wait {
                    ::core::option::Option::Some(#wait) => #waited,
                    ::core::option::Option::None => #permit,
                };
            }
        }
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
        settle: quote!(|#outcome| {
            #rt::Gate::settle(&#gate, #permit, #outcome);
            #rt::Gate::outlook(&#gate)
        }),
    })
}

// Input:
//     `{ body }`
// Output (async):
//     { let __retry_attempt = async { body }; __retry_instrument!(__retry_trace, __retry_attempt) }.await
// where `__retry_instrument!` is the attempt itself unless the runtime's `tracing` feature is on
// (a method call on a no-op wrapper costs type checking in every annotated fn). The body is not
// passed through the `macro_rules!`, so that diagnostics inside it do not mention the macro.
// with `attempt_timeout`, `async { body }` becomes `with_timeout(d, async { body }, ..)`; with
// `clone = [a]`, the whole is preceded by `let mut a = ::core::clone::Clone::clone(&a);` in a block.
// Output (blocking):
//     (|| -> R { body })()
//
// The block is not `move`: it borrows the arguments, so `&mut self` is re-borrowed on each attempt
// and `?`/`return` end the attempt. A body that moves an argument gets rustc's "value moved here,
// in previous iteration of loop", pointing at the argument.
fn attempt(
    config: &Config,
    flavor: Flavor,
    body: &dyn ToTokens,
    anchor: &Type,
    observers: &Observers,
) -> TokenStream {
    let run = match flavor {
        Flavor::Async(span) => {
            let async_token = quote_spanned!(span=> async);
            let fut = with_timeout(config, anchor, quote!(#async_token #body));
            let trace = &observers.trace;
            let attempt = Ident::new("__retry_attempt", Span::mixed_site());
            quote! {
                {
                    let #attempt = #fut;
                    ::retry_runtime::__retry_instrument!(#trace, #attempt)
                }
                .await
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
//     the attempt's future
// Output, with `attempt_timeout = 30`:
//     with_timeout(Duration::new(30, 0), <attempt>, timeout_error::<R>())
// `timeout_error()` is spanned at the value, so that an error type without `From<AttemptTimedOut>`
// is reported there.
fn with_timeout(config: &Config, anchor: &Type, attempt: TokenStream) -> TokenStream {
    let Some((secs, span)) = &config.attempt_timeout else {
        return attempt;
    };
    let (whole, nanos) = duration_parts(*secs);
    let rt = Rt;
    let on_timeout = quote_spanned!(*span=> #rt::__private::timeout_error::<#anchor>());
    quote! {
        #rt::__private::with_timeout(
            ::core::time::Duration::new(#whole, #nanos),
            #attempt,
            #on_timeout,
        )
    }
}

// Output: the declaration of the policy and a `&RetryPolicy` expression for it:
//     (nothing)                                  and `&RetryPolicy::DEFAULT`
//     (nothing)                                  and `&LiteralPolicy::<A, B, C>::POLICY`
//     static __RETRY_ENV: EnvPolicy = EnvPolicy::new("LLM", literal_policy(..));
//     let policy = __RETRY_ENV.get();            and `policy`
// let policy: RetryPolicy = *config(&(<config expr>));  and `&policy`
// A constant is referenced directly rather than through a local, which would be stored in the
// future across every await; a policy built at the call (`&literal_policy(..)`) would be written
// to the stack on every call, since the out-of-line retry path takes its address. Literals are
// the generic arguments of a constant rather than a `const` item per fn: rustc evaluates the
// constant once per distinct set of literals, where each item was evaluated (a tenth of the
// attribute's compile cost over a hand-written loop). The defaults need neither.
fn policy_decl(config: &Config, policy: &Ident) -> (TokenStream, TokenStream) {
    match &config.policy {
        PolicySource::Literals(timing) if is_default(timing) => (
            TokenStream::new(),
            quote!(&::retry_runtime::RetryPolicy::DEFAULT),
        ),
        PolicySource::Literals(timing) => (TokenStream::new(), policy_type(timing)),
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

/// Whether the literals are `RetryPolicy::DEFAULT`'s values (which `__private` asserts at compile
/// time), so that the expansion can name that constant instead of building a policy.
fn is_default(t: &Timing) -> bool {
    t.max_attempts == 3
        && t.initial_delay == 1.0
        && t.max_delay == 10.0
        && t.backoff_factor == 2.0
        && t.backoff == "Exponential"
        && t.jitter == "Full"
        && t.max_time.is_none()
        && t.max_retry_after.is_none_or(|s| s == 120.0)
}

/// `&LiteralPolicy::<SHAPE_FACTOR, DELAYS, LIMITS>::POLICY`: see the runtime's
/// `__private::LiteralPolicy` for the encoding.
fn policy_type(t: &Timing) -> TokenStream {
    let index = |names: &[&str], name: &str| -> u128 {
        names
            .iter()
            .position(|n| *n == name)
            .expect("a validated name") as u128
    };
    let backoff = index(
        &["Exponential", "Constant", "Linear", "Fibonacci"],
        t.backoff,
    );
    let jitter = index(&["Full", "Equal", "Decorrelated", "None"], t.jitter);
    let nanos = |secs: Option<f64>| u128::from(secs.map_or(0, duration_nanos));
    let shape_factor = u128::from(t.max_attempts) << 96
        | u128::from(t.max_time.is_some()) << 81
        | u128::from(t.max_retry_after.is_some()) << 80
        | backoff << 72
        | jitter << 64
        | u128::from(t.backoff_factor.to_bits());
    let delays = nanos(Some(t.initial_delay)) << 64 | nanos(Some(t.max_delay));
    let limits = nanos(t.max_time) << 64 | nanos(t.max_retry_after);
    let [shape_factor, delays, limits] = [shape_factor, delays, limits].map(Literal::u128_suffixed);
    quote! {
        &::retry_runtime::__private::LiteralPolicy::<#shape_factor, #delays, #limits>::POLICY
    }
}

fn policy_literals(t: &Timing) -> TokenStream {
    let max_attempts = t.max_attempts;
    let initial = duration(t.initial_delay);
    let max = duration(t.max_delay);
    let factor = Literal::f64_suffixed(t.backoff_factor);
    let backoff = Ident::new(t.backoff, Span::call_site());
    let jitter = Ident::new(t.jitter, Span::call_site());
    let max_time = optional_duration(t.max_time);
    let max_retry_after = optional_duration(t.max_retry_after);
    quote! {
        ::retry_runtime::__private::literal_policy(
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

// Output: the classifier passed to `step`, without lists:
//     (&ClassifierOf::<<R as IsResult>::Err>::NEW).__retry_classifier()  // a `fn` pointer: the
//                                                  // Retryable trait's, or "retry"
//     |err| (&Probe(err)).__retry_classify()        // the same, when `R` has an `impl Trait`
// with `retry_if`:
//     |err| (&Probe(err)).__retry_classify().with_retryable(test(<retry_if>, err))
// with `retry_on`/`give_up_on` (precedence: give_up_on > retry_on/retry_if > trait > retry):
//     |err| {
//         let d: &dyn Error = (&&&&Inspector(err)).__retry_inspect();
//         decide(chain_has::<G>(d) || .., Some(chain_has::<R>(d) || .. || test(<retry_if>, err)),
//                || (&Probe(err)).__retry_classify())
//     }
fn classify(config: &Config, err: &Ident, anchor: &Type) -> TokenStream {
    let rt = Rt;
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
        return match retry_if {
            Some(test) => quote!(|#err| { #uses #own.with_retryable(#test) }),
            // A `fn` pointer picked by the error type where the type can be named (no `impl
            // Trait` in it): one function per error type for rustc to generate, not a closure
            // per fn. Only for a type spelled `..Result<..>`: naming the error type of anything
            // else (`u32`) would repeat the "not a `Result`" error at the attribute.
            None if !has_infer(anchor) && named_result(anchor) => {
                quote!(#rt::__retry_classify!(#anchor))
            }
            None => quote!(#rt::__retry_classify!()),
        };
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

fn optional_duration(secs: Option<f64>) -> TokenStream {
    match secs {
        Some(secs) => {
            let d = duration(secs);
            quote!(::core::option::Option::Some(#d))
        }
        None => quote!(::core::option::Option::None),
    }
}

/// Validated seconds as a `(whole seconds, nanoseconds)` literal, rounded to the nanosecond and
/// saturating at `u64::MAX` ns (584 years): what `__private::literal_policy` builds each `Duration` from,
/// split here so that the const evaluation in every annotated fn has no division to do.
fn duration(secs: f64) -> TokenStream {
    let (whole, nanos) = duration_parts(secs);
    quote!((#whole, #nanos))
}

/// Validated seconds in nanoseconds, rounded, saturating at `u64::MAX` (584 years).
fn duration_nanos(secs: f64) -> u64 {
    let n = (secs * 1e9).round();
    if n >= u64::MAX as f64 {
        u64::MAX
    } else {
        n as u64
    }
}

fn duration_parts(secs: f64) -> (Literal, Literal) {
    let n = duration_nanos(secs);
    (
        Literal::u64_suffixed(n / 1_000_000_000),
        Literal::u32_suffixed((n % 1_000_000_000) as u32),
    )
}

/// Whether a type is spelled `Result<..>` or `path::Result<..>` (`anyhow::Result<T>`,
/// `io::Result<T>`): almost surely a `Result`.
fn named_result(ty: &Type) -> bool {
    matches!(ty, Type::Path(p) if p.qself.is_none()
        && p.path.segments.last().is_some_and(|s| s.ident == "Result"))
}

/// Whether a type has a `_` in it (an `impl Trait` replaced by `ImplTraitToInfer`).
fn has_infer(ty: &Type) -> bool {
    struct Finder(bool);
    impl<'a> syn::visit::Visit<'a> for Finder {
        fn visit_type_infer(&mut self, _: &'a syn::TypeInfer) {
            self.0 = true;
        }
    }
    let mut finder = Finder(false);
    syn::visit::Visit::visit_type(&mut finder, ty);
    finder.0
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
