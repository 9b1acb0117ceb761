//! The annotated item: which shape of fn it is, and where its body is.
//!
//! Only the attributes and the signature are parsed with syn; the body of an `async fn` stays an
//! opaque token tree, since the expansion only wraps it. Parsing every body would dominate the
//! macro's cost (as tokio-macros found), and even handing it to syn unparsed would not do: syn's
//! token buffer copies every nested token, so the body is split off before syn sees the rest. A
//! non-async body is parsed, to recognise the body `#[async_trait]` generates.

use proc_macro2::{Delimiter, Group, TokenStream};
use syn::parse::{Parse, ParseStream};
use syn::spanned::Spanned;
use syn::{Attribute, Block, Expr, Pat, ReturnType, Signature, Stmt, Type, Visibility};

/// The annotated fn and the shape that decides how its body is rewritten.
pub(crate) struct FnItem {
    pub attrs: Vec<Attribute>,
    pub vis: Visibility,
    pub sig: Signature,
    pub shape: Shape,
}

pub(crate) enum Shape {
    /// `async fn`: the body, unparsed, is the attempt.
    Async(Group),
    /// A method already rewritten by `#[async_trait]`: `Box::pin(async move { ...; let __ret: R =
    /// { body }; __ret })`. The statements before `let __ret` (re-bindings of the arguments) run
    /// once; `{ body }` is the attempt.
    AsyncTrait {
        block: Box<Block>,
        ret_ty: Box<Type>,
    },
    /// A plain `fn`: the body, unparsed, is the attempt.
    Blocking(Group),
}

/// `#[attrs] vis sig { body }` with the body kept as tokens.
struct RawFn {
    attrs: Vec<Attribute>,
    vis: Visibility,
    sig: Signature,
    body: Group,
}

/// `#[attrs] vis sig`, the part of a fn syn parses.
struct Head {
    attrs: Vec<Attribute>,
    vis: Visibility,
    sig: Signature,
}

impl Parse for Head {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        Ok(Head {
            attrs: input.call(Attribute::parse_outer)?,
            vis: input.parse()?,
            sig: input.parse()?,
        })
    }
}

impl RawFn {
    /// Splits off the body (the last token tree, a brace group) without walking it, then parses
    /// the rest.
    fn parse(tokens: TokenStream) -> Option<RawFn> {
        let mut trees: Vec<proc_macro2::TokenTree> = tokens.into_iter().collect();
        let body = match trees.pop()? {
            proc_macro2::TokenTree::Group(g) if g.delimiter() == Delimiter::Brace => g,
            _ => return None,
        };
        let Head { attrs, vis, sig } = syn::parse2(trees.into_iter().collect()).ok()?;
        Some(RawFn {
            attrs,
            vis,
            sig,
            body,
        })
    }
}

impl FnItem {
    /// Parses the item, or explains why the attribute cannot go there.
    pub(crate) fn parse(tokens: TokenStream) -> syn::Result<FnItem> {
        let Some(raw) = RawFn::parse(tokens.clone()) else {
            return Err(not_a_fn(tokens));
        };
        let RawFn {
            attrs,
            vis,
            sig,
            body,
        } = raw;
        let shape = if sig.asyncness.is_some() {
            Shape::Async(body)
        } else {
            let tokens = proc_macro2::TokenTree::Group(body.clone()).into();
            let mut block: Block = syn::parse2(tokens)?;
            match async_trait_ret(&mut block).map(|(ty, _)| Box::new(ty.clone())) {
                Some(ret_ty) => Shape::AsyncTrait {
                    block: Box::new(block),
                    ret_ty,
                },
                None => Shape::Blocking(body),
            }
        };
        Ok(FnItem {
            attrs,
            vis,
            sig,
            shape,
        })
    }

    /// The type each attempt produces: the declared return type, or the `__ret` type of an
    /// `#[async_trait]` method. `None` when the fn returns `()`.
    pub(crate) fn output_type(&self) -> Option<&Type> {
        match (&self.shape, &self.sig.output) {
            (Shape::AsyncTrait { ret_ty, .. }, _) => Some(ret_ty),
            (_, ReturnType::Type(_, ty)) => Some(ty),
            (_, ReturnType::Default) => None,
        }
    }
}

/// Finds `let __ret: R = init;` inside `Box::pin(async move { .. })`, the body `#[async_trait]`
/// generates, and returns `R` and `init`.
pub(crate) fn async_trait_ret(block: &mut Block) -> Option<(&Type, &mut Expr)> {
    let [Stmt::Expr(Expr::Call(call), None)] = &mut block.stmts[..] else {
        return None;
    };
    let Expr::Path(func) = &*call.func else {
        return None;
    };
    if func.path.segments.last().is_none_or(|s| s.ident != "pin") || call.args.len() != 1 {
        return None;
    }
    let Some(Expr::Async(inner)) = call.args.first_mut() else {
        return None;
    };
    inner.block.stmts.iter_mut().find_map(|stmt| match stmt {
        Stmt::Local(syn::Local {
            pat: Pat::Type(pt),
            init: Some(init),
            ..
        }) if matches!(&*pt.pat, Pat::Ident(id) if id.ident == "__ret") => {
            Some((&*pt.ty, &mut *init.expr))
        }
        _ => None,
    })
}

/// The error for an attribute on something that is not a fn with a body.
fn not_a_fn(tokens: TokenStream) -> syn::Error {
    const HELP: &str = "`#[retry_on_failure]` goes on a fn with a body that returns a `Result`, \
                        such as `async fn complete(&self) -> Result<String, Error> { .. }`";
    if let Ok(decl) = syn::parse2::<syn::TraitItemFn>(tokens.clone()) {
        if decl.default.is_none() {
            return syn::Error::new(
                decl.semi_token
                    .map_or_else(|| decl.sig.span(), |s| s.span()),
                format!("{HELP}; this method has no body: put the attribute on the impl's method"),
            );
        }
    }
    let Ok(item) = syn::parse2::<syn::Item>(tokens.clone()) else {
        return syn::Error::new_spanned(tokens, HELP);
    };
    let what = match &item {
        syn::Item::Struct(s) => Some((s.struct_token.span(), "a struct")),
        syn::Item::Enum(e) => Some((e.enum_token.span(), "an enum")),
        syn::Item::Impl(i) => Some((
            i.impl_token.span(),
            "an impl block; put it on a method inside",
        )),
        syn::Item::Trait(t) => Some((
            t.trait_token.span(),
            "a trait; put it on a method with a body",
        )),
        syn::Item::Mod(m) => Some((m.mod_token.span(), "a module")),
        syn::Item::Const(c) => Some((c.const_token.span(), "a const")),
        syn::Item::Static(s) => Some((s.static_token.span(), "a static")),
        syn::Item::Type(t) => Some((t.type_token.span(), "a type alias")),
        syn::Item::Use(u) => Some((u.use_token.span(), "a use declaration")),
        _ => None,
    };
    match what {
        Some((span, what)) => syn::Error::new(span, format!("{HELP}; this is {what}")),
        None => syn::Error::new_spanned(item, HELP),
    }
}
