//! Topic patterns (API §1.9, also used for file-name globs): dot-separated segments, each glob-matched on its own.
//! `*` and the empty pattern match everything; otherwise the segment counts must be equal.
//! Within a segment: `*` any run, `?` one character, `[abc]`, `[a-z]`, `[^x]` classes and
//! `\c` a literal `c`. A malformed pattern matches nothing.

/// A compiled topic pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TopicPattern {
    /// Matches every topic.
    All,
    /// Matches nothing (the pattern was malformed).
    Nothing,
    /// One glob per segment, segments separated by `sep`.
    Segments { sep: char, globs: Vec<Vec<Token>> },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Token {
    Literal(char),
    AnyOne,
    AnyRun,
    Class {
        negated: bool,
        items: Vec<(char, char)>,
    },
}

impl TopicPattern {
    /// Compiles `pattern`.
    pub fn new(pattern: &str) -> TopicPattern {
        if pattern.is_empty() || pattern == "*" {
            return TopicPattern::All;
        }
        Self::segmented(pattern, '.')
    }

    /// Compiles `pattern` as globs over `sep`-separated segments, with no shortcut for `*`
    /// (so `*` matches exactly one segment). With `/` this is a file-name glob where `*`
    /// never crosses a directory.
    pub fn segmented(pattern: &str, sep: char) -> TopicPattern {
        let mut globs = Vec::new();
        for segment in pattern.split(sep) {
            match compile_segment(segment) {
                Some(tokens) => globs.push(tokens),
                None => return TopicPattern::Nothing,
            }
        }
        TopicPattern::Segments { sep, globs }
    }

    /// True when `topic` matches.
    pub fn matches(&self, topic: &str) -> bool {
        match self {
            TopicPattern::All => true,
            TopicPattern::Nothing => false,
            TopicPattern::Segments { sep, globs } => {
                let parts: Vec<&str> = topic.split(*sep).collect();
                parts.len() == globs.len()
                    && globs.iter().zip(parts).all(|(glob, part)| {
                        let chars: Vec<char> = part.chars().collect();
                        glob_match(glob, &chars)
                    })
            }
        }
    }
}

fn compile_segment(segment: &str) -> Option<Vec<Token>> {
    let mut out = Vec::new();
    let mut chars = segment.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '*' => out.push(Token::AnyRun),
            '?' => out.push(Token::AnyOne),
            '\\' => out.push(Token::Literal(chars.next()?)),
            '[' => {
                let negated = chars.peek() == Some(&'^');
                if negated {
                    chars.next();
                }
                let mut items = Vec::new();
                let mut closed = false;
                let mut first = true;
                while let Some(c) = chars.next() {
                    if c == ']' && !first {
                        closed = true;
                        break;
                    }
                    first = false;
                    let lo = if c == '\\' { chars.next()? } else { c };
                    if chars.peek() == Some(&'-') {
                        chars.next();
                        match chars.next()? {
                            ']' => {
                                items.push((lo, lo));
                                items.push(('-', '-'));
                                closed = true;
                                break;
                            }
                            hi => {
                                let hi = if hi == '\\' { chars.next()? } else { hi };
                                if hi < lo {
                                    return None;
                                }
                                items.push((lo, hi));
                            }
                        }
                    } else {
                        items.push((lo, lo));
                    }
                }
                if !closed {
                    return None;
                }
                out.push(Token::Class { negated, items });
            }
            c => out.push(Token::Literal(c)),
        }
    }
    Some(out)
}

fn glob_match(tokens: &[Token], text: &[char]) -> bool {
    // Iterative matcher with single-star backtracking (linear in practice).
    let (mut t, mut s) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while s < text.len() {
        if t < tokens.len() {
            match &tokens[t] {
                Token::AnyRun => {
                    star = Some((t, s));
                    t += 1;
                    continue;
                }
                Token::AnyOne => {
                    t += 1;
                    s += 1;
                    continue;
                }
                Token::Literal(c) if *c == text[s] => {
                    t += 1;
                    s += 1;
                    continue;
                }
                Token::Class { negated, items }
                    if items.iter().any(|(lo, hi)| (*lo..=*hi).contains(&text[s])) != *negated =>
                {
                    t += 1;
                    s += 1;
                    continue;
                }
                _ => {}
            }
        }
        match star {
            Some((st, ss)) => {
                t = st + 1;
                s = ss + 1;
                star = Some((st, ss + 1));
            }
            None => return false,
        }
    }
    tokens[t..].iter().all(|tok| *tok == Token::AnyRun)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contract_table() {
        let cases: &[(&str, &str, bool)] = &[
            ("api.*", "api.change", true),
            ("api.*", "api.deploy", true),
            ("api.*", "api", false),
            ("api.*", "api.change.contract", false),
            ("api.change.*", "api.change.contract", true),
            ("api.change.*", "api.deploy", false),
            ("api.change.*", "api.change.a.b", false),
            ("test.*.failed", "test.frontend.failed", true),
            ("test.*.failed", "test.failed", false),
            ("*", "anything.at.all", true),
            ("", "x.y", true),
            ("a?c", "abc", true),
            ("a?c", "ac", false),
            ("[ab]x", "bx", true),
            ("[ab]x", "cx", false),
            ("[a-c]x", "bx", true),
            ("[^a]x", "ax", false),
            ("[^a]x", "bx", true),
            ("a\\*", "a*", true),
            ("a\\*", "ab", false),
            ("a*b", "aXXb", true),
            ("a*b", "aXXc", false),
            ("*.*", "a.b", true),
            ("*.*", "a", false),
            ("[ab", "a", false),
            ("x\\", "x", false),
            ("a.b", "a.b", true),
            ("a.b", "a.c", false),
            ("*x*", "xx.y", false),
            ("deploy", "deploy", true),
        ];
        for (pattern, topic, want) in cases {
            assert_eq!(
                TopicPattern::new(pattern).matches(topic),
                *want,
                "{pattern:?} vs {topic:?}"
            );
        }
    }

    #[test]
    fn malformed_patterns_match_nothing() {
        for p in ["[", "a.[b", "x\\", "[z-a]"] {
            assert_eq!(TopicPattern::new(p), TopicPattern::Nothing, "{p}");
        }
    }
}
