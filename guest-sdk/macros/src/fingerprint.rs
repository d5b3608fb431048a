//! Code fingerprints: blake3 over the marked code, so that editing it invalidates its entries.
//!
//! What is tracked:
//! - `#[stashed]`: the function's own tokens (signature and body; comments and formatting do not
//!   count), plus every function defined in the same source file that it calls, directly or
//!   through other same-file functions.
//! - `stash!(f(x))` / `stash!(obj.f(x))`: the callee as written, every function named `f`
//!   defined in the marker's source file (free functions, methods, nested modules), and the
//!   same-file functions they call, transitively. The arguments are keyed by value, not by text.
//!
//! - `stash!(name(x))` where `name` is bound, at the marker, to a closure written in the same
//!   function (`let name = |x| ..;`): that function's code, and the same-file functions it calls.
//!
//! What is not tracked: code in other files or crates, constants and statics, types' definitions,
//! dependency versions. When the callee is not defined in the marker's file, only its name is
//! fingerprinted; `devstash run --refresh=PATTERN` recomputes such entries.

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use quote::ToTokens;
use syn::visit::Visit;

thread_local! {
    // One compiler process expands every marker of a crate: parse each source file once.
    static FILES: RefCell<HashMap<PathBuf, Option<Rc<Functions>>>> = RefCell::new(HashMap::new());
}

/// The functions defined in one source file: name -> token text of each definition.
#[derive(Default)]
struct Functions {
    by_name: HashMap<String, Vec<String>>,
}

impl<'ast> Visit<'ast> for Functions {
    fn visit_item_fn(&mut self, f: &'ast syn::ItemFn) {
        self.add(&f.sig.ident, f.to_token_stream().to_string());
        syn::visit::visit_item_fn(self, f);
    }
    fn visit_impl_item_fn(&mut self, f: &'ast syn::ImplItemFn) {
        self.add(&f.sig.ident, f.to_token_stream().to_string());
        syn::visit::visit_impl_item_fn(self, f);
    }
    fn visit_trait_item_fn(&mut self, f: &'ast syn::TraitItemFn) {
        if f.default.is_some() {
            self.add(&f.sig.ident, f.to_token_stream().to_string());
        }
        syn::visit::visit_trait_item_fn(self, f);
    }
}

impl Functions {
    fn add(&mut self, name: &syn::Ident, text: String) {
        self.by_name.entry(name.to_string()).or_default().push(text);
    }
}

fn functions_of(file: &Path) -> Option<Rc<Functions>> {
    FILES.with(|files| {
        files
            .borrow_mut()
            .entry(file.to_path_buf())
            .or_insert_with(|| {
                let text = std::fs::read_to_string(file).ok()?;
                let parsed = syn::parse_file(&text).ok()?;
                let mut fns = Functions::default();
                fns.visit_file(&parsed);
                Some(Rc::new(fns))
            })
            .clone()
    })
}

/// Names of the functions and methods a piece of code calls.
#[derive(Default)]
struct Callees(BTreeSet<String>);

impl<'ast> Visit<'ast> for Callees {
    fn visit_expr_call(&mut self, c: &'ast syn::ExprCall) {
        if let syn::Expr::Path(p) = &*c.func
            && let Some(seg) = p.path.segments.last()
        {
            self.0.insert(seg.ident.to_string());
        }
        syn::visit::visit_expr_call(self, c);
    }
    fn visit_expr_method_call(&mut self, c: &'ast syn::ExprMethodCall) {
        self.0.insert(c.method.to_string());
        syn::visit::visit_expr_method_call(self, c);
    }
    fn visit_expr_path(&mut self, p: &'ast syn::ExprPath) {
        // A function passed by name (`iter.map(parse_row)`) is called too.
        if let Some(seg) = p.path.segments.last() {
            self.0.insert(seg.ident.to_string());
        }
        syn::visit::visit_expr_path(self, p);
    }
}

fn callees_of(text: &str) -> BTreeSet<String> {
    let mut c = Callees::default();
    if let Ok(file) = syn::parse_str::<syn::File>(text) {
        c.visit_file(&file);
    } else if let Ok(item) = syn::parse_str::<syn::ImplItemFn>(text) {
        c.visit_impl_item_fn(&item);
    } else if let Ok(expr) = syn::parse_str::<syn::Expr>(text) {
        c.visit_expr(&expr);
    }
    c.0
}

/// Hashes `roots` and the same-file functions reachable from them.
fn hash_closure(file: Option<&Path>, roots: Vec<String>, seed: &str) -> String {
    let mut hasher = blake3::Hasher::new();
    hasher.update(seed.as_bytes());
    let fns = file.and_then(functions_of);
    let mut seen = BTreeSet::new();
    let mut queue: Vec<String> = Vec::new();
    for text in roots {
        hasher.update(&(text.len() as u64).to_le_bytes());
        hasher.update(text.as_bytes());
        queue.extend(callees_of(&text));
    }
    if let Some(fns) = fns {
        while let Some(name) = queue.pop() {
            if !seen.insert(name.clone()) {
                continue;
            }
            if let Some(defs) = fns.by_name.get(&name) {
                for text in defs {
                    hasher.update(name.as_bytes());
                    hasher.update(&(text.len() as u64).to_le_bytes());
                    hasher.update(text.as_bytes());
                    queue.extend(callees_of(text));
                }
            }
        }
    }
    hasher.finalize().to_hex().to_string()
}

/// Fingerprint of an inline marker `stash!(callee(..))`: the callee's same-file definitions and
/// what they call. The arguments are not part of it: they are keyed by value.
pub fn for_callee(file: Option<&Path>, callee_path: &str, callee: &str) -> String {
    let roots = file
        .and_then(functions_of)
        .and_then(|fns| fns.by_name.get(callee).cloned())
        .unwrap_or_default();
    hash_closure(file, roots, &format!("devstash-call:{callee_path}"))
}

/// Fingerprint of a `#[stashed]` function.
pub fn for_fn(file: Option<&Path>, func: &syn::ItemFn) -> String {
    hash_closure(
        file,
        vec![func.to_token_stream().to_string()],
        "devstash-fn",
    )
}

/// Fingerprint of a closure bound to `name` where a `stash!(name(..))` marker calls it: its own
/// code and the same-file functions it calls.
pub fn for_closure(file: Option<&Path>, name: &str, code: &str) -> String {
    hash_closure(
        file,
        vec![code.to_string()],
        &format!("devstash-closure:{name}"),
    )
}
