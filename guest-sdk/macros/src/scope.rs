//! What a `stash!(name(..))` marker's callee is bound to where the marker stands: a closure
//! written in the same function (whose code then keys the call), or something else.
//!
//! The compiler tells the macro nothing about names, so the marker's source file is parsed again
//! (once per file and compiler process) and walked with the scoping rules that matter here:
//! `let` bindings last to the end of their block and shadow earlier ones, and closure parameters,
//! `match` arms, `for` loops and `if let`/`while let` bind names too. A name bound by anything
//! but `let name = |..| ..;` is "something else", and so is a name the walk is unsure of: the
//! runner then runs a closure callee uncached rather than guess at its code.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use quote::ToTokens;
use syn::punctuated::Punctuated;
use syn::visit::Visit;

/// What a name is bound to at a marker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Binding {
    /// `let name = <closure>;`: the code of the whole function the marker is in (as tokens),
    /// since the closure may call other closures of it, or use what it captured from it.
    Closure(String),
    /// A local binding of another kind (a parameter, a pattern, a `let` of another value).
    Other,
}

/// One `stash!` marker of a file: where it starts, and what its callee name is bound to (`None`
/// when it is not a local name: a function or an import).
#[derive(Debug, Clone)]
struct Marker {
    line: usize,
    column: usize,
    binding: Option<Binding>,
}

thread_local! {
    static FILES: RefCell<HashMap<PathBuf, Rc<Vec<Marker>>>> = RefCell::new(HashMap::new());
}

/// What the callee `name` of the marker at `line`/`column` (1-based, as the compiler reports
/// them) of `file` is bound to. `None` when the marker cannot be found, or the name is not a
/// local binding.
pub fn binding_at(file: &Path, line: usize, column: usize) -> Option<Binding> {
    let markers = FILES.with(|files| {
        files
            .borrow_mut()
            .entry(file.to_path_buf())
            .or_insert_with(|| Rc::new(markers_of(file)))
            .clone()
    });
    // The compiler counts columns from 1, proc-macro2's parser from 0. A marker the walk could
    // not see (inside a macro whose arguments are not expressions) matches none.
    markers
        .iter()
        .find(|m| m.line == line && m.column + 1 == column)?
        .binding
        .clone()
}

/// Finds every `stash!` marker of the file. The file is parsed with proc-macro2's own parser,
/// which keeps line and column numbers (the compiler's does not hand them out on stable).
fn markers_of(file: &Path) -> Vec<Marker> {
    let Ok(text) = std::fs::read_to_string(file) else {
        return Vec::new();
    };
    proc_macro2::fallback::force();
    let markers = syn::parse_file(&text).ok().map(|parsed| {
        let mut walk = Walk::default();
        walk.visit_file(&parsed);
        walk.markers
    });
    proc_macro2::fallback::unforce();
    markers.unwrap_or_default()
}

/// The walk: scopes of local names, innermost last, and the function being walked.
#[derive(Default)]
struct Walk {
    scopes: Vec<Vec<(String, Binding)>>,
    markers: Vec<Marker>,
    /// The code of the function being walked (innermost last).
    functions: Vec<String>,
}

impl Walk {
    fn bind(&mut self, name: String, binding: Binding) {
        if let Some(scope) = self.scopes.last_mut() {
            scope.push((name, binding));
        }
    }

    /// Binds every name a pattern introduces as [`Binding::Other`].
    fn bind_pattern(&mut self, pat: &syn::Pat) {
        struct Names(Vec<String>);
        impl<'ast> Visit<'ast> for Names {
            fn visit_pat_ident(&mut self, p: &'ast syn::PatIdent) {
                self.0.push(p.ident.to_string());
                syn::visit::visit_pat_ident(self, p);
            }
        }
        let mut names = Names(Vec::new());
        names.visit_pat(pat);
        for n in names.0 {
            self.bind(n, Binding::Other);
        }
    }

    fn lookup(&self, name: &str) -> Option<Binding> {
        self.scopes
            .iter()
            .rev()
            .flat_map(|s| s.iter().rev())
            .find(|(n, _)| n == name)
            .map(|(_, b)| b.clone())
    }

    fn scoped(&mut self, f: impl FnOnce(&mut Self)) {
        self.scopes.push(Vec::new());
        f(self);
        self.scopes.pop();
    }

    /// A function body (`code` is the whole function): the names of the enclosing function are
    /// out of scope.
    fn function(
        &mut self,
        code: String,
        inputs: &Punctuated<syn::FnArg, syn::token::Comma>,
        block: &syn::Block,
    ) {
        let outer = std::mem::take(&mut self.scopes);
        self.functions.push(code);
        self.scoped(|w| {
            for input in inputs {
                if let syn::FnArg::Typed(t) = input {
                    w.bind_pattern(&t.pat);
                }
            }
            w.visit_block(block);
        });
        self.functions.pop();
        self.scopes = outer;
    }

    /// A marker: the name its callee is bound to; then its arguments are walked like code.
    fn marker(&mut self, mac: &syn::Macro) {
        let start = mac
            .path
            .segments
            .first()
            .map(|s| s.ident.span().start())
            .unwrap_or_else(|| mac.bang_token.span.start());
        let exprs = mac
            .parse_body_with(Punctuated::<syn::Expr, syn::Token![,]>::parse_terminated)
            .ok();
        let call = exprs
            .as_ref()
            .and_then(|e| e.iter().find(|e| !matches!(e, syn::Expr::Assign(_))));
        let binding = match call {
            Some(syn::Expr::Call(c)) => match &*c.func {
                syn::Expr::Path(p) if p.qself.is_none() && p.path.get_ident().is_some() => {
                    self.lookup(&p.path.segments[0].ident.to_string())
                }
                _ => None,
            },
            _ => None,
        };
        self.markers.push(Marker {
            line: start.line,
            column: start.column,
            binding,
        });
        if let Some(exprs) = exprs {
            for e in &exprs {
                self.visit_expr(e);
            }
        }
    }
}

impl<'ast> Visit<'ast> for Walk {
    fn visit_item_fn(&mut self, f: &'ast syn::ItemFn) {
        self.function(f.to_token_stream().to_string(), &f.sig.inputs, &f.block);
    }

    fn visit_impl_item_fn(&mut self, f: &'ast syn::ImplItemFn) {
        self.function(f.to_token_stream().to_string(), &f.sig.inputs, &f.block);
    }

    fn visit_trait_item_fn(&mut self, f: &'ast syn::TraitItemFn) {
        if let Some(block) = &f.default {
            self.function(f.to_token_stream().to_string(), &f.sig.inputs, block);
        }
    }

    fn visit_block(&mut self, b: &'ast syn::Block) {
        self.scoped(|w| {
            for stmt in &b.stmts {
                w.visit_stmt(stmt);
            }
        });
    }

    fn visit_local(&mut self, local: &'ast syn::Local) {
        // The initializer runs before the new name exists.
        if let Some(init) = &local.init {
            self.visit_expr(&init.expr);
            if let Some((_, diverge)) = &init.diverge {
                self.visit_expr(diverge);
            }
        }
        let simple = match &local.pat {
            syn::Pat::Ident(p) if p.subpat.is_none() => Some(p.ident.to_string()),
            _ => None,
        };
        match (simple, local.init.as_ref().map(|i| &*i.expr)) {
            (Some(name), Some(syn::Expr::Closure(_))) => {
                let code = self.functions.last().cloned().unwrap_or_default();
                self.bind(name, Binding::Closure(code));
            }
            _ => self.bind_pattern(&local.pat),
        }
    }

    fn visit_expr_closure(&mut self, c: &'ast syn::ExprClosure) {
        self.scoped(|w| {
            for input in &c.inputs {
                w.bind_pattern(input);
            }
            w.visit_expr(&c.body);
        });
    }

    fn visit_arm(&mut self, arm: &'ast syn::Arm) {
        self.scoped(|w| {
            w.bind_pattern(&arm.pat);
            if let Some((_, guard)) = &arm.guard {
                w.visit_expr(guard);
            }
            w.visit_expr(&arm.body);
        });
    }

    fn visit_expr_for_loop(&mut self, f: &'ast syn::ExprForLoop) {
        self.visit_expr(&f.expr);
        self.scoped(|w| {
            w.bind_pattern(&f.pat);
            w.visit_block(&f.body);
        });
    }

    fn visit_expr_if(&mut self, e: &'ast syn::ExprIf) {
        // `if let` names reach the first branch; binding them around both is the safe side.
        self.scoped(|w| {
            w.visit_expr(&e.cond);
            w.visit_block(&e.then_branch);
            if let Some((_, els)) = &e.else_branch {
                w.visit_expr(els);
            }
        });
    }

    fn visit_expr_while(&mut self, e: &'ast syn::ExprWhile) {
        self.scoped(|w| {
            w.visit_expr(&e.cond);
            w.visit_block(&e.body);
        });
    }

    fn visit_expr_let(&mut self, e: &'ast syn::ExprLet) {
        self.visit_expr(&e.expr);
        self.bind_pattern(&e.pat);
    }

    fn visit_macro(&mut self, mac: &'ast syn::Macro) {
        let is_marker = mac.path.segments.last().is_some_and(|s| s.ident == "stash");
        if is_marker {
            self.marker(mac);
            return;
        }
        // The arguments of other macros (`println!`, `vec!`, `assert_eq!`…) are usually
        // expressions, and markers hide in them.
        if let Ok(exprs) =
            mac.parse_body_with(Punctuated::<syn::Expr, syn::Token![,]>::parse_terminated)
        {
            for e in &exprs {
                self.visit_expr(e);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn markers(src: &str) -> Vec<(usize, Option<Binding>)> {
        let dir = std::env::temp_dir().join(format!("devstash-scope-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join(format!("{}.rs", src.len()));
        std::fs::write(&file, src).unwrap();
        markers_of(&file)
            .into_iter()
            .map(|m| (m.line, m.binding))
            .collect()
    }

    fn closure(b: &Option<Binding>) -> Option<&str> {
        match b {
            Some(Binding::Closure(t)) => Some(t),
            _ => None,
        }
    }

    #[test]
    fn closures_bound_at_the_marker_are_found_with_their_code() {
        let src = "\
fn triple(x: u64) -> u64 {
    let score = |x: u64| x * 3;
    devstash::stash!(score(x))
}
fn offset(x: u64) -> u64 {
    let score = |x: u64| x + 1000;
    println!(\"{}\", devstash::stash!(score(x)));
    0
}
fn shadowed(score: u64) -> u64 {
    { let score = |x: u64| x; }
    stash!(score(1))
}
fn param<F: Fn(u64) -> u64>(score: F) -> u64 { stash!(score(1)) }
fn item() -> u64 { stash!(load(1)) }
fn arm(v: Option<u64>) -> u64 {
    let score = |x: u64| x;
    match v { Some(score) => stash!(score(1)), None => stash!(score(2)) }
}
";
        let m = markers(src);
        assert_eq!(m.len(), 7, "{m:?}");
        assert_eq!(m[0].0, 3);
        // The closure's code is that of its whole function.
        let triple = closure(&m[0].1).unwrap();
        assert!(
            triple.contains("x * 3") && triple.contains("fn triple"),
            "{triple}"
        );
        assert_eq!(m[1].0, 7);
        assert!(closure(&m[1].1).unwrap().contains("x + 1000"));
        // A closure in a block that ended does not reach the marker: the parameter does.
        assert_eq!(m[2].1, Some(Binding::Other));
        assert_eq!(m[3].1, Some(Binding::Other));
        assert_eq!(m[4].1, None);
        // A match arm's binding shadows the closure; the other arm sees the closure.
        assert_eq!(m[5].1, Some(Binding::Other));
        assert!(closure(&m[6].1).is_some());
    }
}
