//! The merge-field language newsletter content is written in: text, merge fields, literals,
//! `if`/`elif`/`else` with comparisons and tests, and a few filters whose output is a small
//! multiple of their input. The parsed template is walked and everything else is refused, so a
//! template has no loops, no variables and no way to repeat or join text: its work and memory
//! per message follow from its own size and the size of one person's merge values, and both
//! are checked against a limit here, when it is saved.

use minijinja::machinery::ast::{self, BinOpKind, CallArg, CallType, Expr, Stmt};
use minijinja::machinery::{parse, Span, WhitespaceConfig};
use minijinja::value::Value;

/// The longest one person's merge value can be, in bytes: an attribute's 500 characters of up
/// to four bytes each; names, addresses and links are shorter.
pub const MERGE_VALUE_BYTES: u64 = 2 * 1024;
/// The largest value one expression may make (a filter's result held in memory at once).
pub const MAX_VALUE_BYTES: u64 = super::MAX_RENDERED_BYTES as u64;
/// Text a template may handle in one message, all expressions together: what keeps a render's
/// time bounded (fuel counts steps, not how much each step handles).
pub const MAX_WORK_BYTES: u64 = 16 * 1024 * 1024;

/// Filters allowed, and how many times larger than its input each one's output can be.
const FILTERS: &[(&str, Growth)] = &[
    ("default", Growth::Either),
    ("d", Growth::Either),
    ("upper", Growth::Times(3)),
    ("lower", Growth::Times(3)),
    ("title", Growth::Times(3)),
    ("capitalize", Growth::Times(3)),
    ("escape", Growth::Times(6)),
    ("e", Growth::Times(6)),
    ("safe", Growth::Times(1)),
    ("trim", Growth::Times(1)),
    ("first", Growth::Times(1)),
    ("last", Growth::Times(1)),
    ("length", Growth::Number),
    ("count", Growth::Number),
    ("int", Growth::Number),
    ("abs", Growth::Number),
    ("round", Growth::Number),
];

/// Tests allowed after `is` (each answers true or false).
const TESTS: &[&str] = &[
    "defined",
    "undefined",
    "none",
    "true",
    "false",
    "boolean",
    "string",
    "number",
    "integer",
    "float",
    "mapping",
    "sequence",
    "odd",
    "even",
    "divisibleby",
    "eq",
    "equalto",
    "ne",
    "lt",
    "lessthan",
    "le",
    "gt",
    "greaterthan",
    "ge",
    "in",
    "startingwith",
    "endingwith",
    "lower",
    "upper",
    "safe",
    "escaped",
];

#[derive(Clone, Copy)]
enum Growth {
    /// Output at most this many times the input (case mapping, HTML escaping).
    Times(u64),
    /// The input or its argument (`default`).
    Either,
    /// A number or a count.
    Number,
}

/// Bytes a printed number, boolean or test result can take.
const SCALAR_BYTES: u64 = 400;

/// What the values a template can reach may weigh.
pub struct Limits {
    /// The whole `attributes` map, printed.
    pub attributes_bytes: u64,
    pub org_bytes: u64,
    pub postal_address_bytes: u64,
}

/// Every construct of `source` outside the merge-field language, and any expression or whole
/// template that could handle too much text, as messages naming the construct and its line.
/// A template that does not parse gives none: the compiler reports its syntax error.
pub fn check(source: &str, limits: &Limits) -> Vec<String> {
    let Ok(root) = parse(
        source,
        "content",
        // The environment's own syntax and whitespace settings: minijinja's defaults.
        Default::default(),
        WhitespaceConfig::default(),
    ) else {
        return Vec::new();
    };
    let mut walk = Walk {
        source,
        limits,
        problems: Vec::new(),
        work: 0,
        peak: 0,
    };
    walk.stmt(&root);
    if walk.work > MAX_WORK_BYTES {
        walk.problems.push(format!(
            "the template could handle about {} MiB of text for one person (at most {} MiB): it uses merge fields or filters too many times",
            walk.work.div_ceil(1024 * 1024),
            MAX_WORK_BYTES / (1024 * 1024)
        ));
    }
    walk.problems
}

struct Walk<'s, 'l> {
    source: &'s str,
    limits: &'l Limits,
    problems: Vec<String>,
    /// Bytes handled by every expression so far (an upper bound).
    work: u64,
    /// The largest value of the current top-level expression.
    peak: u64,
}

impl Walk<'_, '_> {
    fn refuse(&mut self, span: Span, what: impl std::fmt::Display) {
        let problem = format!("{what} (line {})", span.start_line);
        if !self.problems.contains(&problem) {
            self.problems.push(problem);
        }
    }

    /// The source of a node, shortened for a message.
    fn snippet(&self, span: Span) -> String {
        let text = self
            .source
            .get(span.start_offset as usize..span.end_offset as usize)
            .unwrap_or("")
            .trim();
        let mut short: String = text.chars().take(40).collect();
        if short.len() < text.len() {
            short.push('…');
        }
        short
    }

    fn stmt(&mut self, stmt: &Stmt<'_>) {
        match stmt {
            Stmt::Template(t) => self.body(&t.children),
            Stmt::EmitRaw(raw) => self.work = self.work.saturating_add(raw.raw.len() as u64),
            Stmt::EmitExpr(emit) => self.top(&emit.expr),
            Stmt::IfCond(cond) => {
                self.top(&cond.expr);
                self.body(&cond.true_body);
                self.body(&cond.false_body);
            }
            // Refused, and walked all the same, so everything they hold is reported at once.
            Stmt::ForLoop(s) => {
                self.refuse(
                    s.span(),
                    "`for` loops are not allowed: newsletter content has merge fields and `if` blocks, not loops",
                );
                self.expr(&s.iter);
                self.body(&s.body);
                self.body(&s.else_body);
            }
            Stmt::Set(s) => {
                self.refuse(s.span(), "`set` is not allowed");
                self.expr(&s.expr);
            }
            Stmt::SetBlock(s) => {
                self.refuse(s.span(), "`set` is not allowed");
                self.body(&s.body);
            }
            Stmt::WithBlock(s) => {
                self.refuse(s.span(), "`with` blocks are not allowed");
                for (_, value) in &s.assignments {
                    self.expr(value);
                }
                self.body(&s.body);
            }
            Stmt::AutoEscape(s) => {
                self.refuse(
                    s.span(),
                    "`autoescape` blocks are not allowed (mark one value with `|safe` instead)",
                );
                self.body(&s.body);
            }
            Stmt::FilterBlock(s) => {
                self.refuse(s.span(), "`filter` blocks are not allowed");
                self.body(&s.body);
            }
            Stmt::Macro(s) => {
                self.refuse(s.span(), "macros are not allowed");
                self.body(&s.body);
            }
            Stmt::CallBlock(s) => self.refuse(s.span(), "`call` blocks are not allowed"),
            Stmt::Include(s) => self.refuse(s.span(), "`include` is not allowed"),
            Stmt::Import(s) => self.refuse(s.span(), "`import` is not allowed"),
            Stmt::FromImport(s) => self.refuse(s.span(), "`import` is not allowed"),
            Stmt::Extends(s) => self.refuse(s.span(), "`extends` is not allowed"),
            Stmt::Block(s) => {
                self.refuse(s.span(), "`block` is not allowed");
                self.body(&s.body);
            }
            Stmt::Do(s) => self.refuse(s.span(), "`do` is not allowed"),
            // Statements of features Enlace does not enable (loop controls): refused as well.
            #[allow(unreachable_patterns)]
            _ => self.problems.push("a statement that is not allowed".into()),
        }
    }

    fn body(&mut self, stmts: &[Stmt<'_>]) {
        for stmt in stmts {
            self.stmt(stmt);
        }
    }

    /// An expression that is printed or tested by itself: its largest value must fit.
    fn top(&mut self, expr: &Expr<'_>) {
        self.peak = 0;
        self.expr(expr);
        if self.peak > MAX_VALUE_BYTES {
            let span = expr.span();
            let what = format!(
                "`{}` could make a value of {} KiB for some people (at most {} KiB): use fewer filters that enlarge text (escape, upper, lower, title, capitalize)",
                self.snippet(span),
                self.peak.div_ceil(1024),
                MAX_VALUE_BYTES / 1024
            );
            self.refuse(span, what);
        }
    }

    /// Walks an expression and returns an upper bound of its value's size in bytes.
    fn expr(&mut self, expr: &Expr<'_>) -> u64 {
        let bytes = match expr {
            Expr::Var(var) => self.var(var.id),
            Expr::Const(c) => constant(&c.value),
            Expr::Slice(s) => {
                let bytes = self.expr(&s.expr);
                for part in [&s.start, &s.stop, &s.step].into_iter().flatten() {
                    self.expr(part);
                }
                bytes
            }
            Expr::UnaryOp(op) => {
                let bytes = self.expr(&op.expr);
                match op.op {
                    ast::UnaryOpKind::Not => SCALAR_BYTES,
                    ast::UnaryOpKind::Neg => bytes,
                }
            }
            Expr::BinOp(op) => self.binop(op.op, &op.left, &op.right, expr.span()),
            Expr::Compare(c) => {
                self.expr(&c.expr);
                for op in &c.ops {
                    self.expr(&op.expr);
                }
                SCALAR_BYTES
            }
            Expr::IfExpr(e) => {
                self.expr(&e.test_expr);
                let yes = self.expr(&e.true_expr);
                let no = e.false_expr.as_ref().map_or(0, |no| self.expr(no));
                yes.max(no)
            }
            Expr::Filter(f) => self.filter(f.name, f.expr.as_ref(), &f.args, expr.span()),
            Expr::Test(t) => {
                if !TESTS.contains(&t.name) {
                    self.refuse(expr.span(), format!("the `{}` test is not allowed", t.name));
                }
                self.expr(&t.expr);
                self.args(&t.args);
                SCALAR_BYTES
            }
            // `attributes.city`: one value, found without copying the map.
            Expr::GetAttr(get) if is_attributes(&get.expr) => MERGE_VALUE_BYTES,
            Expr::GetAttr(get) => self.expr(&get.expr),
            Expr::GetItem(get) => {
                let whole = if is_attributes(&get.expr) {
                    MERGE_VALUE_BYTES
                } else {
                    self.expr(&get.expr)
                };
                self.expr(&get.subscript_expr);
                whole
            }
            Expr::Call(call) => {
                let what = match call.identify_call() {
                    CallType::Function(name) => {
                        format!("function calls such as `{name}(…)` are not allowed")
                    }
                    CallType::Method(_, name) => {
                        format!("method calls such as `.{name}(…)` are not allowed")
                    }
                    #[allow(unreachable_patterns)]
                    _ => "calls are not allowed".to_owned(),
                };
                self.refuse(expr.span(), what);
                self.args(&call.args);
                0
            }
            Expr::List(list) => match list.as_const() {
                // A list of literals, for `in`: no bigger than the template.
                Some(value) => constant(&value),
                None => {
                    self.refuse(
                        expr.span(),
                        "lists may hold only literals, such as `['en', 'es']`",
                    );
                    0
                }
            },
            Expr::Map(_) => {
                self.refuse(expr.span(), "maps (`{…}`) are not allowed");
                0
            }
        };
        self.work = self.work.saturating_add(bytes);
        self.peak = self.peak.max(bytes);
        bytes
    }

    fn var(&self, name: &str) -> u64 {
        match name {
            "attributes" => self.limits.attributes_bytes,
            "org" => self.limits.org_bytes,
            "postal_address" => self.limits.postal_address_bytes,
            // Unknown names are reported by the merge-field check.
            _ => MERGE_VALUE_BYTES,
        }
    }

    fn binop(&mut self, op: BinOpKind, left: &Expr<'_>, right: &Expr<'_>, span: Span) -> u64 {
        let refused = match op {
            BinOpKind::Concat => Some(
                "joining text with `~` is not allowed (write the parts side by side: `{{ a }}{{ b }}`)",
            ),
            BinOpKind::Add => Some("`+` is not allowed (it joins text and lists)"),
            BinOpKind::Mul => Some("`*` is not allowed (it repeats text)"),
            BinOpKind::Pow => Some("`**` is not allowed"),
            BinOpKind::Sub | BinOpKind::Div | BinOpKind::FloorDiv | BinOpKind::Rem => {
                Some("arithmetic (`-`, `/`, `//`, `%`) is not allowed")
            }
            _ => None,
        };
        let l = self.expr(left);
        let r = self.expr(right);
        if let Some(what) = refused {
            self.refuse(span, what);
            return 0;
        }
        match op {
            // `a or b`, `a and b`: one of the two.
            BinOpKind::ScAnd | BinOpKind::ScOr => l.max(r),
            _ => SCALAR_BYTES,
        }
    }

    fn filter(
        &mut self,
        name: &str,
        input: Option<&Expr<'_>>,
        args: &[CallArg<'_>],
        span: Span,
    ) -> u64 {
        let input = input.map_or(0, |e| self.expr(e));
        let Some(&(_, growth)) = FILTERS.iter().find(|(n, _)| *n == name) else {
            let allowed: Vec<&str> = FILTERS.iter().map(|(n, _)| *n).collect();
            self.refuse(
                span,
                format!(
                    "the `{name}` filter is not allowed (allowed: {})",
                    allowed.join(", ")
                ),
            );
            self.args(args);
            return 0;
        };
        let most_args = match name {
            "default" | "d" => 2,
            "round" => 1,
            _ => 0,
        };
        if args.len() > most_args {
            self.refuse(
                span,
                if most_args == 0 {
                    format!("the `{name}` filter takes no arguments here")
                } else {
                    format!("the `{name}` filter takes at most {most_args} arguments here")
                },
            );
        }
        let args = self.args(args);
        match growth {
            Growth::Times(n) => input.saturating_mul(n),
            Growth::Either => input.max(args),
            Growth::Number => SCALAR_BYTES,
        }
    }

    /// Walks call arguments; returns the largest.
    fn args(&mut self, args: &[CallArg<'_>]) -> u64 {
        let mut largest = 0;
        for arg in args {
            match arg {
                CallArg::Pos(e) | CallArg::Kwarg(_, e) => largest = largest.max(self.expr(e)),
                CallArg::PosSplat(e) | CallArg::KwargSplat(e) => {
                    self.refuse(
                        e.span(),
                        "argument lists (`*args`, `**kwargs`) are not allowed",
                    );
                }
            }
        }
        largest
    }
}

fn is_attributes(expr: &Expr<'_>) -> bool {
    matches!(expr, Expr::Var(v) if v.id == "attributes")
}

/// The printed size of a literal.
fn constant(value: &Value) -> u64 {
    match value.as_str() {
        Some(s) => s.len() as u64,
        None => (value.to_string().len() as u64).max(SCALAR_BYTES),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        attributes_bytes: 8 * 1024,
        org_bytes: 10,
        postal_address_bytes: 30,
    };

    fn problems(source: &str) -> String {
        check(source, &LIMITS).join("\n")
    }

    #[test]
    fn merge_fields_conditions_and_allowed_filters_pass() {
        for ok in [
            "Hello {{ name }}",
            "{{ name or 'friend' }} {{ name|default('amiga')|title }}",
            "{% if attributes.city == 'Phoenix' and language in ['en', 'es'] %}a{% elif not name %}b{% else %}c{% endif %}",
            "{% if attributes.age is defined and attributes.age > 17 %}adult{% endif %}",
            "{{ name|e|upper }} {{ attributes['city']|lower }} {{ name[1:] }} {{ 'x' if name else 'y' }}",
            "{{ attributes }} {{ org }} {{ postal_address }} {{ unsubscribe_url }} {{ -1 }}",
            "{% raw %}{% for %}{% endraw %}{# {% set %} #}",
            "{{ attributes.amount|round(2) }} {{ name|length }} {{ name|trim|first }}",
        ] {
            assert_eq!(problems(ok), "", "{ok}");
        }
    }

    #[test]
    fn programming_constructs_are_refused_with_their_line() {
        for (source, expected) in [
            ("{% for c in name %}{% endfor %}", "`for` loops"),
            ("\n\n{% set a = 1 %}", "`set` is not allowed (line 3)"),
            ("{% set a %}x{% endset %}", "`set`"),
            ("{% with a = 1 %}{% endwith %}", "`with`"),
            ("{% macro m() %}{% endmacro %}", "macros"),
            ("{% call m() %}{% endcall %}", "`call`"),
            ("{% include 'x' %}", "`include`"),
            ("{% import 'x' as y %}", "`import`"),
            ("{% from 'x' import y %}", "`import`"),
            ("{% extends 'x' %}", "`extends`"),
            ("{% block b %}{% endblock %}", "`block`"),
            ("{% filter upper %}x{% endfilter %}", "`filter` blocks"),
            ("{% autoescape false %}x{% endautoescape %}", "`autoescape`"),
            ("{{ email * 3 }}", "`*`"),
            ("{{ name ~ email }}", "`~`"),
            ("{{ name + email }}", "`+`"),
            ("{{ 2 ** 8 }}", "`**`"),
            ("{{ 3 - 1 }}", "arithmetic"),
            ("{{ range(3) }}", "`range(…)`"),
            ("{{ lipsum() }}", "`lipsum(…)`"),
            ("{{ name.upper() }}", "`.upper(…)`"),
            ("{{ name|replace('a', 'b') }}", "`replace` filter"),
            ("{{ name|join(',') }}", "`join` filter"),
            ("{{ name|indent(9) }}", "`indent` filter"),
            ("{{ name|trim('ab') }}", "`trim` filter takes no arguments"),
            ("{{ [name, email] }}", "only literals"),
            ("{{ {'a': name} }}", "maps"),
            ("{% if name is callable %}{% endif %}", "`callable` test"),
            ("{% if name %}\n{{ name|upper(*x) }}{% endif %}", "(line 2)"),
        ] {
            let found = problems(source);
            assert!(found.contains(expected), "{source}: {found}");
        }
    }

    #[test]
    fn the_attack_hidden_behind_an_if_is_refused() {
        let source = "{% if email != 'ana@example.org' %}{% set a = email * 6000000 %}{% set b = a ~ a %}{% set c = b ~ b %}{{ c ~ c }}{% endif %}";
        let found = problems(source);
        assert!(
            found.contains("`set`") && found.contains("(line 1)"),
            "{found}"
        );
        assert!(problems("{{ (email * 6000000) ~ email }}").contains("`*`"));
    }

    #[test]
    fn values_and_work_that_could_grow_too_large_are_refused() {
        // Each escape can make a value six times larger: chained, the bound grows past the limit.
        let chained = format!("{{{{ attributes.city{} }}}}", "|e|upper".repeat(6));
        assert!(
            problems(&chained).contains("could make a value"),
            "{chained}"
        );
        assert_eq!(problems("{{ attributes.city|e|upper }}"), "");
        // Many merge fields, each small: the whole template handles too much.
        let many = "{{ attributes.city|upper }}".repeat(3000);
        assert!(
            problems(&many).contains("MiB of text"),
            "{}",
            problems(&many)
        );
        assert_eq!(problems(&"{{ attributes.city }}".repeat(3000)), "");
    }
}
