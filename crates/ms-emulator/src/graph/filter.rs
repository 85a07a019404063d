//! A `$filter` subset for directory objects: `eq`/`ne` against a string, boolean or `null`,
//! `startswith`/`endswith`, `and`/`or`/`not`, parentheses and `prop/any(x:x eq '…')` on string
//! collections. Each resource type lists which operator works on which property; `ne`, `not` and
//! `endswith` need advanced query parameters, as in Graph. String comparisons ignore case.

use serde_json::Value;

/// A filter operator, as a resource type allows it on a property.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    StartsWith,
    EndsWith,
    Any,
}

impl Op {
    /// Graph's spelling in error messages.
    fn name(self) -> &'static str {
        match self {
            Op::Eq => "eq",
            Op::Ne => "ne",
            Op::StartsWith => "startsWith",
            Op::EndsWith => "endsWith",
            Op::Any => "any",
        }
    }
}

/// A literal on the right of a comparison.
#[derive(Clone, Debug, PartialEq)]
pub enum Literal {
    Str(String),
    Bool(bool),
    Null,
}

/// A parsed filter expression.
#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    /// `property op literal` (`eq`, `ne`), `startswith(property,'…')`, `endswith(…)` and
    /// `property/any(x:x eq literal)`.
    Clause {
        property: String,
        op: Op,
        value: Literal,
    },
}

/// Why a filter was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FilterError {
    /// Not a filter expression the emulator can read.
    Syntax(String),
    /// A property the resource does not filter on, or an operator it does not allow there.
    Clause(String),
    /// A function or operator no directory property supports (e.g. `contains`).
    Operator(String),
    /// An operator Graph allows only with `ConsistencyLevel: eventual` and `$count=true`.
    NeedsAdvanced(&'static str),
}

#[derive(Clone, Debug, PartialEq)]
enum Token {
    Word(String),
    Str(String),
    Open,
    Close,
    Comma,
    Colon,
}

fn tokenize(text: &str) -> Result<Vec<Token>, FilterError> {
    let mut tokens = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            '(' | ')' | ',' | ':' => {
                chars.next();
                tokens.push(match c {
                    '(' => Token::Open,
                    ')' => Token::Close,
                    ',' => Token::Comma,
                    _ => Token::Colon,
                });
            }
            '\'' => {
                chars.next();
                let mut s = String::new();
                loop {
                    match chars.next() {
                        Some('\'') if chars.peek() == Some(&'\'') => {
                            chars.next();
                            s.push('\'');
                        }
                        Some('\'') => break,
                        Some(ch) => s.push(ch),
                        None => {
                            return Err(FilterError::Syntax(
                                "unterminated string literal".to_owned(),
                            ));
                        }
                    }
                }
                tokens.push(Token::Str(s));
            }
            c if c.is_alphanumeric() || matches!(c, '_' | '/' | '.' | '-' | '@') => {
                let mut w = String::new();
                while let Some(&ch) = chars.peek() {
                    if ch.is_alphanumeric() || matches!(ch, '_' | '/' | '.' | '-' | '@') {
                        w.push(ch);
                        chars.next();
                    } else {
                        break;
                    }
                }
                tokens.push(Token::Word(w));
            }
            other => {
                return Err(FilterError::Syntax(format!(
                    "unexpected character '{other}'"
                )));
            }
        }
    }
    Ok(tokens)
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn next(&mut self) -> Option<Token> {
        let t = self.tokens.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn keyword(&self, word: &str) -> bool {
        matches!(self.peek(), Some(Token::Word(w)) if w.eq_ignore_ascii_case(word))
    }

    fn expect(&mut self, want: &Token, what: &str) -> Result<(), FilterError> {
        match self.next() {
            Some(t) if &t == want => Ok(()),
            _ => Err(FilterError::Syntax(format!("expected {what}"))),
        }
    }

    fn or(&mut self) -> Result<Expr, FilterError> {
        let mut left = self.and()?;
        while self.keyword("or") {
            self.pos += 1;
            left = Expr::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, FilterError> {
        let mut left = self.unary()?;
        while self.keyword("and") {
            self.pos += 1;
            left = Expr::And(Box::new(left), Box::new(self.unary()?));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Expr, FilterError> {
        if self.keyword("not") {
            self.pos += 1;
            return Ok(Expr::Not(Box::new(self.unary()?)));
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<Expr, FilterError> {
        match self.next() {
            Some(Token::Open) => {
                let inner = self.or()?;
                self.expect(&Token::Close, "')'")?;
                Ok(inner)
            }
            Some(Token::Word(word)) => {
                let split = word.len().saturating_sub(4);
                if word
                    .get(split..)
                    .is_some_and(|tail| tail.eq_ignore_ascii_case("/any"))
                {
                    return self.any(&word[..split]);
                }
                if self.peek() == Some(&Token::Open) {
                    return self.function(&word);
                }
                let op = match self.next() {
                    Some(Token::Word(op)) if op.eq_ignore_ascii_case("eq") => Op::Eq,
                    Some(Token::Word(op)) if op.eq_ignore_ascii_case("ne") => Op::Ne,
                    // Other operators (`ge`, `in`, `has`, …) are not supported on any property here.
                    Some(Token::Word(_)) => return Err(FilterError::Clause(word)),
                    _ => {
                        return Err(FilterError::Syntax(format!(
                            "expected an operator after '{word}'"
                        )));
                    }
                };
                let value = self.literal()?;
                Ok(Expr::Clause {
                    property: word,
                    op,
                    value,
                })
            }
            _ => Err(FilterError::Syntax("expected a clause".to_owned())),
        }
    }

    /// `startswith(prop,'x')` / `endswith(prop,'x')`; other functions are refused by name.
    fn function(&mut self, name: &str) -> Result<Expr, FilterError> {
        let op = if name.eq_ignore_ascii_case("startswith") {
            Op::StartsWith
        } else if name.eq_ignore_ascii_case("endswith") {
            Op::EndsWith
        } else {
            let mut capitalized = name.to_owned();
            if let Some(first) = capitalized.get_mut(0..1) {
                first.make_ascii_uppercase();
            }
            return Err(FilterError::Operator(capitalized));
        };
        self.expect(&Token::Open, "'('")?;
        let property = match self.next() {
            Some(Token::Word(p)) => p,
            _ => {
                return Err(FilterError::Syntax(format!(
                    "expected a property in {name}()"
                )));
            }
        };
        self.expect(&Token::Comma, "','")?;
        let value = match self.next() {
            Some(Token::Str(s)) => s,
            _ => {
                return Err(FilterError::Syntax(format!(
                    "expected a string in {name}()"
                )));
            }
        };
        self.expect(&Token::Close, "')'")?;
        Ok(Expr::Clause {
            property,
            op,
            value: Literal::Str(value),
        })
    }

    /// `prop/any(x:x eq literal)`.
    fn any(&mut self, property: &str) -> Result<Expr, FilterError> {
        self.expect(&Token::Open, "'(' after any")?;
        let var = match self.next() {
            Some(Token::Word(v)) => v,
            _ => return Err(FilterError::Syntax("expected a lambda variable".to_owned())),
        };
        self.expect(&Token::Colon, "':'")?;
        match self.next() {
            Some(Token::Word(v)) if v == var => {}
            _ => {
                return Err(FilterError::Syntax(format!(
                    "expected '{var}' in the lambda body"
                )));
            }
        }
        if !self.keyword("eq") {
            return Err(FilterError::Clause(property.to_owned()));
        }
        self.pos += 1;
        let value = self.literal()?;
        self.expect(&Token::Close, "')'")?;
        Ok(Expr::Clause {
            property: property.to_owned(),
            op: Op::Any,
            value,
        })
    }

    fn literal(&mut self) -> Result<Literal, FilterError> {
        match self.next() {
            Some(Token::Str(s)) => Ok(Literal::Str(s)),
            Some(Token::Word(w)) if w.eq_ignore_ascii_case("true") => Ok(Literal::Bool(true)),
            Some(Token::Word(w)) if w.eq_ignore_ascii_case("false") => Ok(Literal::Bool(false)),
            Some(Token::Word(w)) if w.eq_ignore_ascii_case("null") => Ok(Literal::Null),
            _ => Err(FilterError::Syntax(
                "expected a string, true, false or null".to_owned(),
            )),
        }
    }
}

/// Parses a `$filter` value.
pub fn parse(text: &str) -> Result<Expr, FilterError> {
    let mut parser = Parser {
        tokens: tokenize(text)?,
        pos: 0,
    };
    let expr = parser.or()?;
    if parser.pos < parser.tokens.len() {
        return Err(FilterError::Syntax(
            "unexpected text after the expression".to_owned(),
        ));
    }
    Ok(expr)
}

impl Expr {
    /// Checks every clause against what the resource allows (`allowed` maps a property to its
    /// operators) and rewrites property names to their canonical spelling. `advanced` says
    /// whether `ConsistencyLevel: eventual` and `$count=true` came with the request.
    pub fn check(
        &mut self,
        allowed: &[(&'static str, &'static [Op])],
        advanced: bool,
    ) -> Result<(), FilterError> {
        match self {
            Expr::And(a, b) | Expr::Or(a, b) => {
                a.check(allowed, advanced)?;
                b.check(allowed, advanced)
            }
            Expr::Not(inner) => {
                if !advanced {
                    return Err(FilterError::NeedsAdvanced("not"));
                }
                inner.check(allowed, advanced)
            }
            Expr::Clause { property, op, .. } => {
                let entry = allowed
                    .iter()
                    .find(|(name, _)| name.eq_ignore_ascii_case(property));
                let Some((name, ops)) = entry else {
                    return Err(FilterError::Clause(property.clone()));
                };
                // Properties that support `eq` support `ne` too (advanced queries only).
                let supported = ops.contains(op) || (*op == Op::Ne && ops.contains(&Op::Eq));
                if !supported {
                    return Err(FilterError::Clause((*name).to_owned()));
                }
                if matches!(op, Op::Ne | Op::EndsWith) && !advanced {
                    return Err(FilterError::NeedsAdvanced(op.name()));
                }
                *property = (*name).to_owned();
                Ok(())
            }
        }
    }

    /// Whether a resource (its full JSON) passes the filter.
    pub fn matches(&self, item: &Value) -> bool {
        match self {
            Expr::And(a, b) => a.matches(item) && b.matches(item),
            Expr::Or(a, b) => a.matches(item) || b.matches(item),
            Expr::Not(inner) => !inner.matches(item),
            Expr::Clause {
                property,
                op,
                value,
            } => {
                let actual = item.get(property.as_str()).unwrap_or(&Value::Null);
                match op {
                    Op::Eq => equals(actual, value),
                    Op::Ne => !equals(actual, value),
                    Op::StartsWith | Op::EndsWith => {
                        let (Some(actual), Literal::Str(want)) = (actual.as_str(), value) else {
                            return false;
                        };
                        let (actual, want) = (actual.to_lowercase(), want.to_lowercase());
                        if *op == Op::StartsWith {
                            actual.starts_with(&want)
                        } else {
                            actual.ends_with(&want)
                        }
                    }
                    Op::Any => actual
                        .as_array()
                        .is_some_and(|items| items.iter().any(|v| equals(v, value))),
                }
            }
        }
    }
}

/// UNCONFIRMED: string comparisons ignore case.
fn equals(actual: &Value, want: &Literal) -> bool {
    match (actual, want) {
        (Value::String(a), Literal::Str(w)) => a.to_lowercase() == w.to_lowercase(),
        (Value::Bool(a), Literal::Bool(w)) => a == w,
        (Value::Null, Literal::Null) => true,
        _ => false,
    }
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "tests fail loudly on unexpected errors")]
mod tests {
    use super::*;
    use serde_json::json;

    const ALLOWED: &[(&str, &[Op])] = &[
        ("displayName", &[Op::Eq, Op::StartsWith]),
        ("mail", &[Op::Eq, Op::StartsWith, Op::EndsWith]),
        ("accountEnabled", &[Op::Eq]),
        ("groupTypes", &[Op::Any]),
    ];

    fn checked(text: &str, advanced: bool) -> Result<Expr, FilterError> {
        let mut e = parse(text)?;
        e.check(ALLOWED, advanced)?;
        Ok(e)
    }

    #[test]
    fn clauses_combine_with_and_or_not_and_parentheses() {
        let item = json!({"displayName": "Alex Wilber", "mail": "alex@x.com", "accountEnabled": true, "groupTypes": ["Unified"]});
        for (text, want) in [
            ("displayname eq 'alex wilber'", true),
            (
                "startswith(displayName,'Al') and accountEnabled eq true",
                true,
            ),
            ("accountEnabled eq false or mail eq 'ALEX@x.com'", true),
            (
                "(accountEnabled eq false or mail eq 'y') and displayName eq 'Alex Wilber'",
                false,
            ),
            ("groupTypes/any(c:c eq 'unified')", true),
        ] {
            assert_eq!(checked(text, false).unwrap().matches(&item), want, "{text}");
        }
        assert!(
            checked("not (mail ne 'alex@x.com')", true)
                .unwrap()
                .matches(&item)
        );
        assert!(
            checked("endswith(mail,'@X.COM')", true)
                .unwrap()
                .matches(&item)
        );
    }

    #[test]
    fn quotes_are_escaped_by_doubling() {
        let e = checked("displayName eq 'O''Brien'", false).unwrap();
        assert!(e.matches(&json!({"displayName": "O'Brien"})));
    }

    #[test]
    fn refusals_name_what_is_wrong() {
        assert_eq!(
            checked("jobTitle eq 'x'", false),
            Err(FilterError::Clause("jobTitle".into()))
        );
        assert_eq!(
            checked("startswith(accountEnabled,'t')", false),
            Err(FilterError::Clause("accountEnabled".into()))
        );
        assert_eq!(
            checked("displayName ge 'a'", false),
            Err(FilterError::Clause("displayName".into()))
        );
        assert_eq!(
            checked("contains(displayName,'a')", false),
            Err(FilterError::Operator("Contains".into()))
        );
        assert_eq!(
            checked("endswith(mail,'x')", false),
            Err(FilterError::NeedsAdvanced("endsWith"))
        );
        assert_eq!(
            checked("mail ne 'x'", false),
            Err(FilterError::NeedsAdvanced("ne"))
        );
        assert_eq!(
            checked("not (mail eq 'x')", false),
            Err(FilterError::NeedsAdvanced("not"))
        );
        assert!(matches!(
            checked("displayName eq", false),
            Err(FilterError::Syntax(_))
        ));
        assert!(matches!(
            checked("displayName eq 'x' extra", false),
            Err(FilterError::Syntax(_))
        ));
        assert!(matches!(
            checked("displayName eq 'x", false),
            Err(FilterError::Syntax(_))
        ));
    }
}
