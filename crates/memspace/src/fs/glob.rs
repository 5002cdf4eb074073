//! Shell-style matching of one path component, as Python's `fnmatch.fnmatchcase`: `*` (any
//! run of characters), `?` (one character), `[seq]`, `[!seq]` with ranges `a-z`; a `[` without
//! its `]` is a literal. `/` never occurs in a component, so it needs no special case.
//!
//! A whole pattern is split into components ([`pattern_components`]); a filesystem walks its
//! tree with them, `**` standing for any number of components.

#[derive(Debug)]
enum Token {
    Star,
    One,
    Lit(char),
    Class {
        negate: bool,
        items: Vec<(char, char)>,
    },
}

fn parse(pat: &str) -> Vec<Token> {
    let chars: Vec<char> = pat.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '*' => {
                if !matches!(out.last(), Some(Token::Star)) {
                    out.push(Token::Star);
                }
                i += 1;
            }
            '?' => {
                out.push(Token::One);
                i += 1;
            }
            '[' => {
                if let Some((tok, next)) = parse_class(&chars, i + 1) {
                    out.push(tok);
                    i = next;
                } else {
                    out.push(Token::Lit('['));
                    i += 1;
                }
            }
            c => {
                out.push(Token::Lit(c));
                i += 1;
            }
        }
    }
    out
}

/// Parses a class starting after `[`; returns the token and the index after `]`.
fn parse_class(chars: &[char], mut i: usize) -> Option<(Token, usize)> {
    let mut negate = false;
    if i < chars.len() && chars[i] == '!' {
        negate = true;
        i += 1;
    }
    let mut items = Vec::new();
    let mut first = true;
    while i < chars.len() {
        let c = chars[i];
        if c == ']' && !first {
            return Some((Token::Class { negate, items }, i + 1));
        }
        first = false;
        if i + 2 < chars.len() && chars[i + 1] == '-' && chars[i + 2] != ']' {
            items.push((c, chars[i + 2]));
            i += 3;
        } else {
            items.push((c, c));
            i += 1;
        }
    }
    None
}

fn token_matches(tok: &Token, c: char) -> bool {
    match tok {
        Token::Star | Token::One => true,
        Token::Lit(l) => *l == c,
        Token::Class { negate, items } => {
            items.iter().any(|&(lo, hi)| lo <= c && c <= hi) != *negate
        }
    }
}

/// One pattern component, parsed once (a walk matches it against many names).
#[derive(Debug)]
pub(crate) struct Pattern {
    toks: Vec<Token>,
}

impl Pattern {
    pub(crate) fn new(pat: &str) -> Self {
        Self { toks: parse(pat) }
    }

    /// Whether `name` matches (case-sensitive).
    pub(crate) fn matches(&self, name: &str) -> bool {
        let toks = &self.toks;
        let s: Vec<char> = name.chars().collect();
        // Classic wildcard matching with one backtrack point per `*` (linear in practice,
        // at worst the name's length times the pattern's).
        let (mut ti, mut si) = (0usize, 0usize);
        let mut star: Option<(usize, usize)> = None;
        while si < s.len() {
            if ti < toks.len() {
                if let Token::Star = toks[ti] {
                    star = Some((ti, si));
                    ti += 1;
                    continue;
                }
                if token_matches(&toks[ti], s[si]) {
                    ti += 1;
                    si += 1;
                    continue;
                }
            }
            match star {
                Some((st, ss)) => {
                    ti = st + 1;
                    si = ss + 1;
                    star = Some((st, ss + 1));
                }
                None => return false,
            }
        }
        toks[ti..].iter().all(|t| matches!(t, Token::Star))
    }
}

/// Whether `name` matches the shell pattern `pat` (case-sensitive).
#[cfg(test)]
pub(crate) fn fnmatch(name: &str, pat: &str) -> bool {
    Pattern::new(pat).matches(name)
}

/// The components of a glob pattern (slashes and backslashes separate them; empty ones vanish).
pub(crate) fn pattern_components(pattern: &str) -> Vec<String> {
    pattern
        .split(['/', '\\'])
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Whether a pattern component contains any wildcard.
pub(crate) fn is_literal(pat: &str) -> bool {
    !pat.contains(['*', '?', '['])
}

#[cfg(test)]
mod tests {
    use super::fnmatch;

    #[test]
    fn like_python_fnmatchcase() {
        let cases = [
            ("a.txt", "*.txt", true),
            (".hidden", "*", true),
            ("a.txt", "?.txt", true),
            ("ab.txt", "?.txt", false),
            ("b", "[abc]", true),
            ("d", "[abc]", false),
            ("d", "[!abc]", true),
            ("m", "[a-z]", true),
            ("M", "[a-z]", false),
            ("]", "[]]", true),
            ("[", "[", true),
            ("[x", "[x", true),
            ("abc", "a*c", true),
            ("abcbc", "a*bc", true),
            ("ab", "a*bc", false),
            ("", "*", true),
            ("x", "", false),
            ("-", "[a-]", true),
        ];
        for (name, pat, want) in cases {
            assert_eq!(fnmatch(name, pat), want, "{name:?} ~ {pat:?}");
        }
    }
}
