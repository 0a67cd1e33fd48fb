//! Tokens of TraceQL. Constructs strand does not evaluate still get their
//! own tokens, so the parser can name them in its error.

use super::ast::{Op, Value};
use super::unsupported;

#[derive(Clone, Debug, PartialEq)]
pub enum Tok {
    LBrace,
    RBrace,
    LParen,
    RParen,
    Comma,
    And,
    Or,
    Pipe,
    /// `!` on its own (negation).
    Not,
    Op(Op),
    /// Structural operators between spansets: `>>`, `<<`, `~`, `&>>`,
    /// `!>>` ... (`>`, `<` and `!~` lex as comparisons).
    Structural(&'static str),
    Str(String),
    Num(Value),
    Ident(String),
}

impl Tok {
    /// The token as the query wrote it, for errors.
    pub fn show(&self) -> String {
        match self {
            Tok::LBrace => "`{`".into(),
            Tok::RBrace => "`}`".into(),
            Tok::LParen => "`(`".into(),
            Tok::RParen => "`)`".into(),
            Tok::Comma => "`,`".into(),
            Tok::And => "`&&`".into(),
            Tok::Or => "`||`".into(),
            Tok::Pipe => "`|`".into(),
            Tok::Not => "`!`".into(),
            Tok::Op(op) => format!("`{}`", op_text(*op)),
            Tok::Structural(s) => format!("`{s}`"),
            Tok::Str(s) => format!("{s:?}"),
            Tok::Num(v) => format!("{v:?}"),
            Tok::Ident(s) => format!("`{s}`"),
        }
    }
}

pub fn op_text(op: Op) -> &'static str {
    match op {
        Op::Eq => "=",
        Op::Ne => "!=",
        Op::Gt => ">",
        Op::Ge => ">=",
        Op::Lt => "<",
        Op::Le => "<=",
        Op::Re => "=~",
        Op::NotRe => "!~",
    }
}

/// Reads a quoted string starting at `chars[*i]` (the quote); leaves `*i`
/// after the closing quote. Backquotes take everything literally.
fn quoted(chars: &[char], i: &mut usize) -> Result<String, String> {
    let q = chars[*i];
    let mut s = String::new();
    *i += 1;
    loop {
        match chars.get(*i) {
            None => return Err("unterminated string in TraceQL".into()),
            Some(&c) if c == q => break,
            Some('\\') if q == '"' => {
                *i += 1;
                match chars.get(*i) {
                    Some('n') => s.push('\n'),
                    Some('t') => s.push('\t'),
                    Some(&e) => s.push(e),
                    None => return Err("unterminated string in TraceQL".into()),
                }
            }
            Some(&c) => s.push(c),
        }
        *i += 1;
    }
    *i += 1;
    Ok(s)
}

fn number(chars: &[char], i: &mut usize) -> Result<Value, String> {
    let at = |i: usize| chars.get(i).copied().unwrap_or('\0');
    let start = *i;
    *i += 1;
    loop {
        if at(*i).is_ascii_digit() || at(*i) == '.' {
            *i += 1;
        } else if matches!(at(*i), 'e' | 'E') && (at(*i + 1).is_ascii_digit() || at(*i + 1) == '-')
        {
            *i += 2;
        } else {
            break;
        }
    }
    let num_end = *i;
    while at(*i).is_alphabetic() {
        *i += 1;
    }
    let text: String = chars[start..*i].iter().collect();
    let num: String = chars[start..num_end].iter().collect();
    if *i > num_end {
        return crate::query::params::go_duration_ns(&text)
            .map(Value::Duration)
            .ok_or_else(|| format!("bad duration {text:?} in TraceQL"));
    }
    if let Ok(n) = num.parse::<i64>() {
        return Ok(Value::Int(n));
    }
    num.parse::<f64>()
        .map(Value::Float)
        .map_err(|_| format!("bad number {num:?} in TraceQL"))
}

fn ident_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '_' | '.' | ':' | '/' | '-')
}

/// An identifier; after a `.`, a quoted segment (`span."a b"`) joins the
/// name, as Tempo allows for attribute names with special characters.
fn ident(chars: &[char], i: &mut usize) -> Result<String, String> {
    let mut s = String::new();
    while let Some(&c) = chars.get(*i) {
        if c == '"' && s.ends_with('.') {
            s.push_str(&quoted(chars, i)?);
        } else if ident_char(c) {
            s.push(c);
            *i += 1;
        } else {
            break;
        }
    }
    Ok(s)
}

pub fn lex(src: &str) -> Result<Vec<Tok>, String> {
    let chars: Vec<char> = src.chars().collect();
    let at = |i: usize| chars.get(i).copied().unwrap_or('\0');
    let mut toks = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let (c, n1, n2) = (chars[i], at(i + 1), at(i + 2));
        if c.is_whitespace() {
            i += 1;
        } else if c == '"' || c == '`' {
            toks.push(Tok::Str(quoted(&chars, &mut i)?));
        } else if c.is_ascii_digit()
            || (c == '-' && n1.is_ascii_digit())
            || (c == '.' && n1.is_ascii_digit())
        {
            toks.push(Tok::Num(number(&chars, &mut i)?));
        } else if c.is_alphabetic() || c == '_' || c == '.' {
            toks.push(Tok::Ident(ident(&chars, &mut i)?));
        } else {
            let three: String = [c, n1, n2].iter().collect();
            let two: String = [c, n1].iter().collect();
            let (tok, len) = match (three.as_str(), two.as_str(), c) {
                ("&>>", _, _) => (Tok::Structural("&>>"), 3),
                ("&<<", _, _) => (Tok::Structural("&<<"), 3),
                ("!>>", _, _) => (Tok::Structural("!>>"), 3),
                ("!<<", _, _) => (Tok::Structural("!<<"), 3),
                (_, "&&", _) => (Tok::And, 2),
                (_, "||", _) => (Tok::Or, 2),
                (_, ">>", _) => (Tok::Structural(">>"), 2),
                (_, "<<", _) => (Tok::Structural("<<"), 2),
                (_, "&>", _) => (Tok::Structural("&>"), 2),
                (_, "&<", _) => (Tok::Structural("&<"), 2),
                (_, "&~", _) => (Tok::Structural("&~"), 2),
                (_, "!>", _) => (Tok::Structural("!>"), 2),
                (_, "!<", _) => (Tok::Structural("!<"), 2),
                (_, "=~", _) => (Tok::Op(Op::Re), 2),
                (_, "!~", _) => (Tok::Op(Op::NotRe), 2),
                (_, "!=", _) => (Tok::Op(Op::Ne), 2),
                (_, ">=", _) => (Tok::Op(Op::Ge), 2),
                (_, "<=", _) => (Tok::Op(Op::Le), 2),
                (_, _, '=') => (Tok::Op(Op::Eq), 1),
                (_, _, '>') => (Tok::Op(Op::Gt), 1),
                (_, _, '<') => (Tok::Op(Op::Lt), 1),
                (_, _, '~') => (Tok::Structural("~"), 1),
                (_, _, '{') => (Tok::LBrace, 1),
                (_, _, '}') => (Tok::RBrace, 1),
                (_, _, '(') => (Tok::LParen, 1),
                (_, _, ')') => (Tok::RParen, 1),
                (_, _, ',') => (Tok::Comma, 1),
                (_, _, '|') => (Tok::Pipe, 1),
                (_, _, '!') => (Tok::Not, 1),
                (_, _, '+' | '-' | '*' | '/' | '%' | '^') => {
                    return Err(unsupported(&format!("arithmetic (`{c}`)")))
                }
                _ => return Err(format!("unexpected character {c:?} in TraceQL")),
            };
            toks.push(tok);
            i += len;
        }
    }
    Ok(toks)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lexes_operators_longest_first() {
        let t = lex("{a>=1} >> {b} &>> !~ =~ !> ~ || | && ( ) , !").unwrap();
        assert_eq!(t[2], Tok::Op(Op::Ge));
        assert_eq!(t[5], Tok::Structural(">>"));
        assert_eq!(t[9], Tok::Structural("&>>"));
        assert_eq!(t[10], Tok::Op(Op::NotRe));
        assert_eq!(t[11], Tok::Op(Op::Re));
        assert_eq!(t[12], Tok::Structural("!>"));
        assert_eq!(t[13], Tok::Structural("~"));
        assert_eq!(
            &t[14..],
            &[
                Tok::Or,
                Tok::Pipe,
                Tok::And,
                Tok::LParen,
                Tok::RParen,
                Tok::Comma,
                Tok::Not
            ]
        );
    }

    #[test]
    fn quoted_attribute_names_join_the_identifier() {
        assert_eq!(
            lex(r#"span."foo bar".baz resource."a\"b" ."x""#).unwrap(),
            vec![
                Tok::Ident("span.foo bar.baz".into()),
                Tok::Ident("resource.a\"b".into()),
                Tok::Ident(".x".into())
            ]
        );
        assert!(lex(r#"span."open"#).is_err());
    }
}
