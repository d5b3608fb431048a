//! Procedural macros of the devstash guest SDK. Use them through the `devstash` crate:
//! `devstash::stash!` and `#[devstash::stashed]`.
//!
//! Both expand to a small block that calls into `devstash::__rt`; all parsing and validation
//! happens here so that mistakes are compile errors pointing at the marker.

use devstash_protocol::ABI_VERSION;
use proc_macro::TokenStream;
use proc_macro2::{Span, TokenStream as TokenStream2};
use quote::{ToTokens, format_ident, quote, quote_spanned};
use syn::parse::{Parse, ParseStream};
use syn::spanned::Spanned;
use syn::{Expr, FnArg, Ident, ItemFn, LitStr, Pat, ReturnType, Token};

mod fingerprint;
mod scope;

/// Marks one call so that its result is stored and returned on later runs.
///
/// ```ignore
/// let v = devstash::stash!(slow_function(10));
/// let r = devstash::stash!(ttl = "24h", client.fetch(&url));
/// ```
///
/// The marked expression must be a function call (`path(args)`) or a method call
/// (`receiver.method(args)`). The arguments (and the receiver) must implement
/// `serde::Serialize`; the value must implement `Serialize + DeserializeOwned`. For a
/// `Result`, only `Ok` values are stored. Options: `ttl = "30m"` (units s, m, h, d, w).
#[proc_macro]
pub fn stash(input: TokenStream) -> TokenStream {
    let here = proc_macro::Span::call_site();
    let at = Position {
        file: here.local_file(),
        line: here.line(),
        column: here.column(),
    };
    match syn::parse::<StashInput>(input).and_then(|i| expand_call(i, at)) {
        Ok(ts) => ts.into(),
        Err(e) => e.to_compile_error().into(),
    }
}

/// Marks a function so that every call's result is stored and returned on later runs.
///
/// ```ignore
/// #[devstash::stashed(ttl = "1d")]
/// fn fetch_repo(name: &str) -> Result<Repo, Error> { /* ... */ }
/// ```
///
/// Parameters must be plain identifiers whose types implement `serde::Serialize` (a `self`
/// receiver too); the return type must implement `Serialize + DeserializeOwned` (for a
/// `Result`, its `Ok` type). Options: `ttl = "1d"`.
#[proc_macro_attribute]
pub fn stashed(attr: TokenStream, item: TokenStream) -> TokenStream {
    let call_site_file = proc_macro::Span::call_site().local_file();
    let result = syn::parse::<Options>(attr).and_then(|opts| {
        let func = syn::parse::<ItemFn>(item)?;
        expand_fn(opts, func, call_site_file)
    });
    match result {
        Ok(ts) => ts.into(),
        Err(e) => e.to_compile_error().into(),
    }
}

/// Marker options (`ttl = "1d"`), validated here.
#[derive(Default)]
struct Options {
    ttl: Option<(u64, LitStr)>,
}

impl Options {
    /// Parses `name = "value"` pairs separated by commas. With `trailing_expr`, stops at the
    /// first thing that is not such a pair (the marked expression follows).
    fn parse_pairs(input: ParseStream, trailing_expr: bool) -> syn::Result<Options> {
        let mut opts = Options::default();
        while input.peek(Ident) && input.peek2(Token![=]) && !input.peek2(Token![==]) {
            let name: Ident = input.parse()?;
            input.parse::<Token![=]>()?;
            match name.to_string().as_str() {
                "ttl" => {
                    let lit: LitStr = input.parse()?;
                    let secs = parse_ttl(&lit)?;
                    if opts.ttl.replace((secs, lit)).is_some() {
                        return Err(syn::Error::new(name.span(), "`ttl` is given twice"));
                    }
                }
                other => {
                    return Err(syn::Error::new(
                        name.span(),
                        format!(
                            "unknown devstash option `{other}`: the only option is `ttl = \"1d\"`"
                        ),
                    ));
                }
            }
            if input.is_empty() {
                break;
            }
            input.parse::<Token![,]>()?;
            if !trailing_expr && input.is_empty() {
                break;
            }
        }
        if !trailing_expr && !input.is_empty() {
            return Err(input.error("expected `ttl = \"1d\"`"));
        }
        Ok(opts)
    }
}

impl Parse for Options {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        Options::parse_pairs(input, false)
    }
}

/// Parses a TTL literal (`30s`, `10m`, `2h`, `1d`, `1w`, or combinations like `1h 30m`).
fn parse_ttl(lit: &LitStr) -> syn::Result<u64> {
    let text = lit.value();
    let bad = || {
        syn::Error::new(
            lit.span(),
            format!(
                "invalid ttl {text:?}: write a number and a unit, e.g. \"30s\", \"10m\", \"2h\", \"1d\" or \"1w\""
            ),
        )
    };
    let dur = humantime::parse_duration(text.trim()).map_err(|_| bad())?;
    if dur.as_secs() == 0 {
        return Err(syn::Error::new(
            lit.span(),
            "ttl must be at least one second",
        ));
    }
    if dur.subsec_nanos() != 0 {
        return Err(syn::Error::new(
            lit.span(),
            "ttl is counted in whole seconds",
        ));
    }
    Ok(dur.as_secs())
}

/// `stash!([options,] call)`.
struct StashInput {
    opts: Options,
    expr: Expr,
}

impl Parse for StashInput {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let opts = Options::parse_pairs(input, true)?;
        if input.is_empty() {
            return Err(input.error(
                "stash! needs a call to mark: `stash!(slow_function(10))` or `stash!(ttl = \"1d\", client.fetch(&url))`",
            ));
        }
        let expr: Expr = input.parse()?;
        if !input.is_empty() {
            return Err(input.error("unexpected tokens after the marked call"));
        }
        Ok(StashInput { opts, expr })
    }
}

/// Where a `stash!` marker is.
struct Position {
    file: Option<std::path::PathBuf>,
    line: usize,
    column: usize,
}

/// What every expansion shares: the site static, its custom-section record, and the dispatch.
struct SiteParts {
    callee: String,
    ttl: Option<(u64, LitStr)>,
    fingerprint: String,
    kind: &'static str,
    /// For a callee bound to a closure at the marker: the binding and the closure's fingerprint.
    closure: Option<(String, String)>,
}

impl SiteParts {
    /// The `static __DEVSTASH_SITE` and its record in the `devstash.sites` custom section.
    fn statics(&self, span: Span) -> TokenStream2 {
        let callee = &self.callee;
        let fingerprint = &self.fingerprint;
        let ttl = match &self.ttl {
            Some((secs, _)) => quote!(::core::option::Option::Some(#secs)),
            None => quote!(::core::option::Option::None),
        };
        let kind = format_ident!("{}", if self.kind == "fn" { "Fn" } else { "Call" });
        let closure = match &self.closure {
            Some((name, fp)) => quote!(::core::option::Option::Some((#name, #fp))),
            None => quote!(::core::option::Option::None),
        };
        // The record is JSON built with `concat!` because `module_path!()` and `file!()` are
        // only known after expansion. Callees are Rust paths, which need no escaping; a TTL is
        // written as whole seconds.
        let ttl_json = match &self.ttl {
            Some((secs, _)) => format!("\"{secs}s\""),
            None => "null".to_string(),
        };
        let head = format!("{{\"abi\":{ABI_VERSION},\"module\":\"");
        let mid = format!("\",\"callee\":\"{callee}\",\"file\":\"");
        let tail = format!(
            ",\"ttl\":{ttl_json},\"kind\":\"{}\",\"fingerprint\":\"{fingerprint}\"}}\n",
            self.kind
        );
        quote_spanned! {span=>
            static __DEVSTASH_SITE: ::devstash::__rt::Site = ::devstash::__rt::site(
                ::core::module_path!(),
                #callee,
                ::core::file!(),
                ::core::line!(),
                #ttl,
                #fingerprint,
                ::devstash::__rt::SiteKind::#kind,
                #closure,
            );
            const __DEVSTASH_RECORD: &str = ::core::concat!(
                #head, ::core::module_path!(), #mid, ::core::file!(), "\",\"line\":", ::core::line!(), #tail
            );
            #[cfg_attr(target_arch = "wasm32", unsafe(link_section = "devstash.sites"))]
            #[used]
            static __DEVSTASH_RECORD_BYTES: [u8; __DEVSTASH_RECORD.len()] =
                ::devstash::__rt::record_bytes(__DEVSTASH_RECORD);
        }
    }
}

/// The dispatch shared by both markers: `callee` binds what the compiler resolved the callee to
/// (before the arguments are evaluated), `argv` is the owned argument tuple, `key` evaluates to
/// the key bytes and the resolved callee, `call` is a closure taking the tuple.
///
/// `value_span` is where an error about the value type points: the marked call, or the
/// function's return type.
fn dispatch(
    span: Span,
    value_span: Span,
    statics: TokenStream2,
    callee: TokenStream2,
    argv: TokenStream2,
    key: TokenStream2,
    call: TokenStream2,
) -> TokenStream2 {
    // The method is looked up on `&&&Probed` so that the fallbacks, which only fail with a
    // readable error, come last (see `devstash::__rt`).
    let run = Ident::new("__devstash_run", value_span);
    quote_spanned! {span=>
        {
            #[allow(unused_imports)]
            use ::devstash::__rt::{
                PreviewDebug as _, PreviewNone as _, StashBytes as _, StashOk as _,
                StashOkRaw as _, StashOkUnstorable as _, StashUnstorable as _, StashValue as _,
            };
            #statics
            #callee
            let __devstash_argv = #argv;
            let (__devstash_key, __devstash_who) = #key;
            let __devstash_preview =
                (&::devstash::__rt::PreviewProbe::of(&__devstash_argv)).previewer();
            let __devstash_probed = ::devstash::__rt::Probed::new(&__devstash_argv, #call);
            (&&&__devstash_probed).#run(
                ::devstash::__rt::Marker {
                    site: &__DEVSTASH_SITE,
                    callee: __devstash_who,
                    key: __devstash_key,
                },
                __devstash_preview,
                __devstash_argv,
            )
        }
    }
}

fn expand_call(input: StashInput, at: Position) -> syn::Result<TokenStream2> {
    let span = input.expr.span();
    let (callee_text, callee_name, args) = match &input.expr {
        Expr::Call(call) => {
            let Expr::Path(path) = &*call.func else {
                return Err(syn::Error::new_spanned(
                    &call.func,
                    "stash! marks a call of a named function: `stash!(slow_function(10))`",
                ));
            };
            let text = path_text(&path.path);
            let last = path
                .path
                .segments
                .last()
                .map(|s| s.ident.to_string())
                .unwrap_or_default();
            (text, last, &call.args)
        }
        Expr::MethodCall(call) => {
            let name = call.method.to_string();
            (name.clone(), name, &call.args)
        }
        other => {
            return Err(syn::Error::new_spanned(
                other,
                "stash! marks a call: `stash!(slow_function(10))` or `stash!(client.fetch(&url))`",
            ));
        }
    };
    // A `&mut` argument: a stored value would skip what the call does to it.
    for arg in args {
        if let Expr::Reference(r) = arg
            && r.mutability.is_some()
        {
            return Err(syn::Error::new_spanned(
                arg,
                "stash! cannot mark a call that takes a `&mut` argument: a stored value would \
                 skip what the call does to it; mark a call that returns what it computes",
            ));
        }
    }

    let fingerprint = fingerprint::for_callee(at.file.as_deref(), &callee_text, &callee_name);
    // A callee that is a plain name may be a closure bound right there: its code keys the call.
    let closure = match (&input.expr, at.file.as_deref()) {
        (Expr::Call(call), Some(file)) if matches!(&*call.func, Expr::Path(p) if p.path.get_ident().is_some()) => {
            match scope::binding_at(file, at.line, at.column) {
                Some(scope::Binding::Closure(code)) => Some((
                    callee_name.clone(),
                    fingerprint::for_closure(Some(file), &callee_name, &code),
                )),
                _ => None,
            }
        }
        _ => None,
    };
    let parts = SiteParts {
        callee: callee_text,
        ttl: input.opts.ttl,
        fingerprint,
        kind: "call",
        closure,
    };

    let names: Vec<Ident> = (0..args.len())
        .map(|i| format_ident!("__devstash_a{}", i))
        .collect();
    let arg_exprs = args.iter();
    let argv = quote!((#(#arg_exprs,)*));
    let (callee, key, call) = match &input.expr {
        Expr::Call(call) => {
            let func = &call.func;
            (
                // Bound once, so that the generic arguments the call infers are the ones named.
                quote!(let __devstash_callee = &#func;),
                quote!((
                    ::devstash::__rt::encode_key(&__devstash_argv),
                    ::devstash::__rt::Callee::path(__devstash_callee),
                )),
                quote!(|(#(#names,)*)| __devstash_callee(#(#names),*)),
            )
        }
        Expr::MethodCall(call) => {
            let recv = &call.receiver;
            let method = &call.method;
            let method_name = method.to_string();
            let turbofish = &call.turbofish;
            let turbofish_text = turbofish
                .as_ref()
                .map(|t| t.to_token_stream().to_string().replace(' ', ""))
                .unwrap_or_default();
            (
                quote!(),
                quote!(::devstash::__rt::method_key(
                    &#recv,
                    &__devstash_argv,
                    #method_name,
                    #turbofish_text,
                )),
                quote!(|(#(#names,)*)| #recv.#method #turbofish(#(#names),*)),
            )
        }
        _ => unreachable!("checked above"),
    };
    Ok(dispatch(
        span,
        span,
        parts.statics(span),
        callee,
        argv,
        key,
        call,
    ))
}

fn expand_fn(
    opts: Options,
    mut func: ItemFn,
    file: Option<std::path::PathBuf>,
) -> syn::Result<TokenStream2> {
    let sig = &func.sig;
    if let Some(a) = &sig.asyncness {
        return Err(syn::Error::new_spanned(
            a,
            "#[stashed] does not support async functions",
        ));
    }
    let ret_ty = match &sig.output {
        ReturnType::Default => {
            return Err(syn::Error::new_spanned(
                sig,
                "#[stashed] needs a function that returns a value to store",
            ));
        }
        ReturnType::Type(_, ty) => {
            if let syn::Type::ImplTrait(_) = &**ty {
                return Err(syn::Error::new_spanned(
                    ty,
                    "#[stashed] cannot store an `impl Trait` value: return a concrete type",
                ));
            }
            ty.clone()
        }
    };

    // The fingerprint covers the function as written, before the rewrite below.
    let fingerprint = fingerprint::for_fn(file.as_deref(), &func);

    let mut has_self = false;
    let mut pats = Vec::new();
    for input in func.sig.inputs.iter_mut() {
        match input {
            FnArg::Receiver(r) => {
                if r.reference.is_some() && r.mutability.is_some() {
                    return Err(syn::Error::new_spanned(
                        &*r,
                        "#[stashed] cannot mark a method that takes `&mut self`: a stored value \
                         would skip the change to `self`; take `&self` and return what changes",
                    ));
                }
                has_self = true;
            }
            FnArg::Typed(pt) if has_mut_ref(&pt.ty) => {
                return Err(syn::Error::new_spanned(
                    &*pt,
                    "#[stashed] cannot mark a function with a `&mut` parameter: a stored value \
                     would skip what the call does to it; return what it computes instead",
                ));
            }
            FnArg::Typed(pt) => match &mut *pt.pat {
                Pat::Ident(pi) if pi.subpat.is_none() => {
                    // The closure rebinds the parameter with its own `mut`; the outer binding
                    // only moves it, so it must not be `mut` (unused_mut).
                    let mut inner = pi.clone();
                    inner.by_ref = None;
                    pats.push(inner.clone());
                    pi.mutability = None;
                }
                other => {
                    return Err(syn::Error::new_spanned(
                        other,
                        "#[stashed] needs plain parameter names (destructure inside the body)",
                    ));
                }
            },
        }
    }
    let names: Vec<Ident> = pats.iter().map(|p| p.ident.clone()).collect();
    let span = func.sig.ident.span();
    let parts = SiteParts {
        callee: func.sig.ident.to_string(),
        ttl: opts.ttl,
        fingerprint,
        kind: "fn",
        closure: None,
    };
    let argv = quote!((#(#names,)*));
    let key = if has_self {
        quote!((
            ::devstash::__rt::encode_key(&(&self, &__devstash_argv)),
            ::devstash::__rt::Callee::Fn,
        ))
    } else {
        quote!((
            ::devstash::__rt::encode_key(&__devstash_argv),
            ::devstash::__rt::Callee::Fn,
        ))
    };
    let body = &func.block;
    let call = quote!(|(#(#pats,)*)| -> #ret_ty #body);
    let block = dispatch(
        span,
        value_span(&ret_ty),
        parts.statics(span),
        quote!(),
        argv,
        key,
        call,
    );
    *func.block = syn::parse2(quote!({ #block }))?;
    Ok(quote!(#func))
}

/// Where an error about a function's value type points: at `T` in a return type spelled
/// `Result<T, ..>` (or `io::Result<T>`, `anyhow::Result<T>`: only `T` is stored), else at the
/// whole type.
fn value_span(ty: &syn::Type) -> Span {
    if let syn::Type::Path(p) = ty
        && p.qself.is_none()
        && let Some(last) = p.path.segments.last()
        && last.ident == "Result"
        && let syn::PathArguments::AngleBracketed(args) = &last.arguments
        && let Some(syn::GenericArgument::Type(ok)) = args.args.first()
    {
        return ok.span();
    }
    ty.span()
}

/// Whether a type holds a `&mut` reference anywhere (`&mut T`, `Option<&mut T>`, …).
fn has_mut_ref(ty: &syn::Type) -> bool {
    struct Finder(bool);
    impl<'ast> syn::visit::Visit<'ast> for Finder {
        fn visit_type_reference(&mut self, r: &'ast syn::TypeReference) {
            self.0 |= r.mutability.is_some();
            syn::visit::visit_type_reference(self, r);
        }
    }
    let mut f = Finder(false);
    syn::visit::Visit::visit_type(&mut f, ty);
    f.0
}

/// A path as written, without spaces: `Client::new`, `crate::io::load`.
fn path_text(path: &syn::Path) -> String {
    let mut s = String::new();
    if path.leading_colon.is_some() {
        s.push_str("::");
    }
    for (i, seg) in path.segments.iter().enumerate() {
        if i > 0 {
            s.push_str("::");
        }
        s.push_str(&seg.ident.to_string());
    }
    s
}
