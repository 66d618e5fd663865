//! Lock resources (API §24): normalisation, matching a literal path against a pattern, and
//! whether two patterns can match a common path.
//!
//! A resource is a sequence of `/`-separated segments. A segment is `**` (zero or more
//! whole segments), or a glob over the characters of one segment: `*` any run, `?` one
//! character, `[abc]`, `[a-z]`, `[!x]`/`[^x]` classes, `\c` a literal `c`; anything else is
//! literal. A `]` right after `[` (or after `[!`/`[^`) is literal, a `-` first or last in a
//! class is literal, and `\` escapes inside a class too. `**` is special only as a whole
//! segment (`a**b` is `a*b`).
//!
//! **Overlap** ("could some path match both?") is decided on two levels, each an
//! emptiness test of an intersection of automata, run as a dynamic programme over pairs of
//! positions:
//! - segments: position (i, j) in the two segment lists is reachable from (0, 0) when the
//!   first i segments of one and the first j of the other can match one common run of path
//!   segments. From a reachable (i, j): a `**` may end (i+1 or j+1), may take one more
//!   path segment that a single segment of the other side also takes (staying on `**`
//!   while the other side advances), and two single segments advance together when some
//!   one segment matches both. The patterns overlap when the two ends are reachable.
//! - characters, for two single segments: the same programme over their tokens, where
//!   `*` may end or take one character the other side's token takes, and two one-character
//!   tokens (`?`, a class, a literal) advance together when their character sets share a
//!   character. The alphabet is every character except `/`.
//!
//! Both levels are exact: for literal paths the answer is plain equality, and a glob pair
//! is reported only when some string of path segments matches both. The one over-report:
//! a path segment is never `.` or `..` after normalisation, but a segment glob that can
//! only match such a name (`[.]`, `.?`, `\.\.`) is treated as if those were names, so
//! `a/[.]` and `a/?` are reported as overlapping although no normalised path matches
//! both. Cost: O(n·m) segment pairs, each O(p·q) over the pair's tokens (n, m segments;
//! p, q tokens; literal segments compare as strings).

use std::cmp::Ordering;

/// Longest resource or path accepted, in bytes.
pub const MAX_RESOURCE_BYTES: usize = 1024;

/// Why a resource or path was refused (API §24: each is a `400`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum GlobError {
    #[error("is empty once normalised")]
    Empty,
    #[error("has a '..' segment")]
    DotDot,
    #[error("is longer than {MAX_RESOURCE_BYTES} bytes")]
    TooLong,
    #[error("has an unclosed or reversed character class in segment {0:?}")]
    BadClass(String),
    #[error("ends a segment with an unfinished escape in {0:?}")]
    BadEscape(String),
}

/// The segments of `raw` once normalised: a leading `/` or `./`, `.` segments, empty
/// segments and a trailing `/` are dropped; `..` or nothing left is an error.
fn segments(raw: &str) -> Result<Vec<&str>, GlobError> {
    if raw.len() > MAX_RESOURCE_BYTES {
        return Err(GlobError::TooLong);
    }
    let mut out = Vec::new();
    for seg in raw.split('/') {
        match seg {
            "" | "." => {}
            ".." => return Err(GlobError::DotDot),
            s => out.push(s),
        }
    }
    if out.is_empty() {
        return Err(GlobError::Empty);
    }
    Ok(out)
}

/// A literal path (what `POST /api/locks/check` takes), normalised; no character in it is
/// special.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LockPath {
    text: String,
    segs: Vec<String>,
}

impl LockPath {
    /// Normalises `raw`.
    pub fn parse(raw: &str) -> Result<LockPath, GlobError> {
        let segs: Vec<String> = segments(raw)?.into_iter().map(str::to_string).collect();
        Ok(LockPath {
            text: segs.join("/"),
            segs,
        })
    }

    /// The normalised path.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Its segments.
    pub fn segments(&self) -> impl Iterator<Item = &str> {
        self.segs.iter().map(String::as_str)
    }
}

/// One character class: `negated` when it started with `!` or `^`.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Class {
    negated: bool,
    ranges: Vec<(char, char)>,
}

impl Class {
    fn contains(&self, c: char) -> bool {
        self.ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi) != self.negated
    }
}

/// A token of a segment glob.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Tok {
    Char(char),
    /// `?`
    One,
    /// `*` (a run of them is one).
    Star,
    Class(Class),
}

/// One segment of a pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Seg {
    /// `**`: zero or more whole segments.
    Many,
    /// A segment without wildcards (escapes removed).
    Lit(String),
    /// A segment with at least one wildcard.
    Glob(Vec<Tok>),
}

/// A lock's resource pattern, normalised and compiled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pattern {
    text: String,
    segs: Vec<Seg>,
}

impl Pattern {
    /// Normalises and compiles `raw`.
    pub fn parse(raw: &str) -> Result<Pattern, GlobError> {
        let parts = segments(raw)?;
        let segs = parts
            .iter()
            .map(|s| compile_segment(s))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Pattern {
            text: parts.join("/"),
            segs,
        })
    }

    /// The normalised text (what the lock shows as its `resource`).
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The leading literal segments (those before the first wildcard segment).
    pub fn literal_prefix(&self) -> impl Iterator<Item = &str> {
        self.segs.iter().map_while(|s| match s {
            Seg::Lit(l) => Some(l.as_str()),
            _ => None,
        })
    }

    /// The first literal segment after the literal prefix (`m7` in `**/m7/*.rs`), if any:
    /// every path the pattern matches has a segment equal to it.
    pub fn anchor(&self) -> Option<&str> {
        self.segs
            .iter()
            .skip_while(|s| matches!(s, Seg::Lit(_)))
            .find_map(|s| match s {
                Seg::Lit(l) => Some(l.as_str()),
                _ => None,
            })
    }

    /// True when the literal `path` matches this pattern.
    pub fn matches(&self, path: &LockPath) -> bool {
        match_segments(&self.segs, &path.segs)
    }

    /// True when some path could match both patterns (see the module documentation).
    pub fn overlaps(&self, other: &Pattern) -> bool {
        overlap_segments(&self.segs, &other.segs)
    }
}

fn compile_segment(seg: &str) -> Result<Seg, GlobError> {
    if seg == "**" {
        return Ok(Seg::Many);
    }
    let mut toks = Vec::new();
    let mut chars = seg.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '*' => {
                if toks.last() != Some(&Tok::Star) {
                    toks.push(Tok::Star);
                }
            }
            '?' => toks.push(Tok::One),
            '\\' => match chars.next() {
                Some(e) => toks.push(Tok::Char(e)),
                None => return Err(GlobError::BadEscape(seg.to_string())),
            },
            '[' => {
                let bad = || GlobError::BadClass(seg.to_string());
                let negated = matches!(chars.peek(), Some('!' | '^'));
                if negated {
                    chars.next();
                }
                let mut ranges = Vec::new();
                let mut first = true;
                loop {
                    let Some(c) = chars.next() else {
                        return Err(bad());
                    };
                    if c == ']' && !first {
                        break;
                    }
                    first = false;
                    let lo = if c == '\\' {
                        chars.next().ok_or_else(bad)?
                    } else {
                        c
                    };
                    // `a-z` is a range unless the `-` is the class's last character.
                    let mut ahead = chars.clone();
                    if ahead.next() == Some('-') && !matches!(ahead.peek(), Some(']') | None) {
                        chars.next();
                        let h = chars.next().ok_or_else(bad)?;
                        let hi = if h == '\\' {
                            chars.next().ok_or_else(bad)?
                        } else {
                            h
                        };
                        if hi < lo {
                            return Err(bad());
                        }
                        ranges.push((lo, hi));
                    } else {
                        ranges.push((lo, lo));
                    }
                }
                toks.push(Tok::Class(Class { negated, ranges }));
            }
            c => toks.push(Tok::Char(c)),
        }
    }
    if toks.iter().all(|t| matches!(t, Tok::Char(_))) {
        let lit = toks
            .into_iter()
            .filter_map(|t| match t {
                Tok::Char(c) => Some(c),
                _ => None,
            })
            .collect();
        return Ok(Seg::Lit(lit));
    }
    Ok(Seg::Glob(toks))
}

/// Wildcard matching with backtracking to the last `**` (linear in practice): `**` takes
/// any run of segments, every other segment exactly one.
fn match_segments(pat: &[Seg], path: &[String]) -> bool {
    let (mut p, mut s) = (0, 0);
    let mut resume: Option<(usize, usize)> = None;
    while s < path.len() {
        match pat.get(p) {
            Some(Seg::Many) => {
                resume = Some((p, s));
                p += 1;
                continue;
            }
            Some(seg) if segment_matches(seg, &path[s]) => {
                p += 1;
                s += 1;
                continue;
            }
            _ => {}
        }
        match resume {
            Some((rp, rs)) => {
                p = rp + 1;
                s = rs + 1;
                resume = Some((rp, rs + 1));
            }
            None => return false,
        }
    }
    pat[p..].iter().all(|seg| *seg == Seg::Many)
}

fn segment_matches(seg: &Seg, name: &str) -> bool {
    match seg {
        Seg::Many => true,
        Seg::Lit(l) => l == name,
        Seg::Glob(toks) => glob_matches(toks, name),
    }
}

/// The same algorithm over the characters of one segment.
fn glob_matches(toks: &[Tok], name: &str) -> bool {
    let (mut t, mut s) = (0, 0);
    let mut resume: Option<(usize, usize)> = None;
    while s < name.len() {
        let Some(c) = name[s..].chars().next() else {
            break;
        };
        let step = c.len_utf8();
        match toks.get(t) {
            Some(Tok::Star) => {
                resume = Some((t, s));
                t += 1;
                continue;
            }
            Some(Tok::One) => {
                t += 1;
                s += step;
                continue;
            }
            Some(Tok::Char(x)) if *x == c => {
                t += 1;
                s += step;
                continue;
            }
            Some(Tok::Class(class)) if class.contains(c) => {
                t += 1;
                s += step;
                continue;
            }
            _ => {}
        }
        match resume {
            Some((rt, rs)) => {
                let skipped = name[rs..].chars().next().map_or(1, char::len_utf8);
                t = rt + 1;
                s = rs + skipped;
                resume = Some((rt, s));
            }
            None => return false,
        }
    }
    toks[t..].iter().all(|tok| *tok == Tok::Star)
}

/// A reachability table over pairs of positions, filled in increasing (i, j) order; every
/// move goes to a larger i or j, so one pass suffices.
struct Grid {
    width: usize,
    cells: Vec<bool>,
}

impl Grid {
    fn new(n: usize, m: usize) -> Grid {
        let mut cells = vec![false; (n + 1) * (m + 1)];
        cells[0] = true;
        Grid {
            width: m + 1,
            cells,
        }
    }

    fn get(&self, i: usize, j: usize) -> bool {
        self.cells[i * self.width + j]
    }

    fn set(&mut self, i: usize, j: usize) {
        self.cells[i * self.width + j] = true;
    }
}

fn overlap_segments(a: &[Seg], b: &[Seg]) -> bool {
    // Literal leading segments must agree; checking them first answers most pairs at once.
    for (x, y) in a.iter().zip(b) {
        match (x, y) {
            (Seg::Lit(x), Seg::Lit(y)) if x != y => return false,
            (Seg::Lit(_), Seg::Lit(_)) => {}
            _ => break,
        }
    }
    let (n, m) = (a.len(), b.len());
    let mut grid = Grid::new(n, m);
    for i in 0..=n {
        for j in 0..=m {
            if !grid.get(i, j) {
                continue;
            }
            let (x, y) = (a.get(i), b.get(j));
            if let Some(Seg::Many) = x {
                grid.set(i + 1, j);
                if let Some(y) = y
                    && *y != Seg::Many
                    && segment_can_match(y)
                {
                    grid.set(i, j + 1);
                }
            }
            if let Some(Seg::Many) = y {
                grid.set(i, j + 1);
                if let Some(x) = x
                    && *x != Seg::Many
                    && segment_can_match(x)
                {
                    grid.set(i + 1, j);
                }
            }
            if let (Some(x), Some(y)) = (x, y)
                && *x != Seg::Many
                && *y != Seg::Many
                && segments_overlap(x, y)
            {
                grid.set(i + 1, j + 1);
            }
        }
    }
    grid.get(n, m)
}

/// True when some segment name matches `seg`.
fn segment_can_match(seg: &Seg) -> bool {
    match seg {
        Seg::Many | Seg::Lit(_) => true,
        Seg::Glob(toks) => toks.iter().all(|t| match t {
            Tok::Star => true,
            t => tokens_share(t, &Tok::One),
        }),
    }
}

/// True when some segment name matches both single segments.
fn segments_overlap(x: &Seg, y: &Seg) -> bool {
    match (x, y) {
        (Seg::Lit(x), Seg::Lit(y)) => x == y,
        (Seg::Lit(l), Seg::Glob(g)) | (Seg::Glob(g), Seg::Lit(l)) => glob_matches(g, l),
        (Seg::Glob(x), Seg::Glob(y)) => globs_overlap(x, y),
        (Seg::Many, _) | (_, Seg::Many) => true,
    }
}

fn globs_overlap(x: &[Tok], y: &[Tok]) -> bool {
    let (p, q) = (x.len(), y.len());
    let mut grid = Grid::new(p, q);
    for i in 0..=p {
        for j in 0..=q {
            if !grid.get(i, j) {
                continue;
            }
            let (s, t) = (x.get(i), y.get(j));
            if let Some(Tok::Star) = s {
                grid.set(i + 1, j);
                if let Some(t) = t
                    && *t != Tok::Star
                    && tokens_share(t, &Tok::One)
                {
                    grid.set(i, j + 1);
                }
            }
            if let Some(Tok::Star) = t {
                grid.set(i, j + 1);
                if let Some(s) = s
                    && *s != Tok::Star
                    && tokens_share(s, &Tok::One)
                {
                    grid.set(i + 1, j);
                }
            }
            if let (Some(s), Some(t)) = (s, t)
                && *s != Tok::Star
                && *t != Tok::Star
                && tokens_share(s, t)
            {
                grid.set(i + 1, j + 1);
            }
        }
    }
    grid.get(p, q)
}

/// The characters a path segment may contain: everything but `/` (surrogates are not
/// characters), as sorted, disjoint, inclusive code point ranges.
const UNIVERSE: [(u32, u32); 3] = [(0, 0x2E), (0x30, 0xD7FF), (0xE000, 0x10FFFF)];

/// A set of characters as sorted, disjoint, inclusive code point ranges within
/// [`UNIVERSE`].
type CharSet = Vec<(u32, u32)>;

/// The characters one one-character token takes (`*` is not one).
fn char_set(tok: &Tok) -> CharSet {
    match tok {
        Tok::Char(c) => intersect(&[(*c as u32, *c as u32)], &UNIVERSE),
        Tok::One | Tok::Star => UNIVERSE.to_vec(),
        Tok::Class(class) => {
            let mut ranges: CharSet = class
                .ranges
                .iter()
                .map(|&(lo, hi)| (lo as u32, hi as u32))
                .collect();
            ranges.sort_unstable();
            let mut merged: CharSet = Vec::with_capacity(ranges.len());
            for (lo, hi) in ranges {
                match merged.last_mut() {
                    Some(last) if lo <= last.1.saturating_add(1) => last.1 = last.1.max(hi),
                    _ => merged.push((lo, hi)),
                }
            }
            if class.negated {
                complement(&merged)
            } else {
                intersect(&merged, &UNIVERSE)
            }
        }
    }
}

/// [`UNIVERSE`] minus `set` (sorted, disjoint).
fn complement(set: &[(u32, u32)]) -> CharSet {
    let mut out = Vec::new();
    for &(ulo, uhi) in &UNIVERSE {
        let mut next = ulo;
        for &(lo, hi) in set {
            if hi < next || lo > uhi {
                continue;
            }
            if lo > next {
                out.push((next, lo - 1));
            }
            next = hi.saturating_add(1);
            if next > uhi {
                break;
            }
        }
        if next <= uhi {
            out.push((next, uhi));
        }
    }
    out
}

/// The intersection of two sorted, disjoint range lists.
fn intersect(a: &[(u32, u32)], b: &[(u32, u32)]) -> CharSet {
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::new();
    while i < a.len() && j < b.len() {
        let lo = a[i].0.max(b[j].0);
        let hi = a[i].1.min(b[j].1);
        if lo <= hi {
            out.push((lo, hi));
        }
        match a[i].1.cmp(&b[j].1) {
            Ordering::Less => i += 1,
            Ordering::Greater => j += 1,
            Ordering::Equal => {
                i += 1;
                j += 1;
            }
        }
    }
    out
}

/// True when some character is taken by both one-character tokens.
fn tokens_share(s: &Tok, t: &Tok) -> bool {
    match (s, t) {
        (Tok::Char(a), Tok::Char(b)) => a == b && *a != '/',
        (Tok::Char(c), Tok::One) | (Tok::One, Tok::Char(c)) => *c != '/',
        (Tok::Char(c), Tok::Class(k)) | (Tok::Class(k), Tok::Char(c)) => {
            *c != '/' && k.contains(*c)
        }
        _ => !intersect(&char_set(s), &char_set(t)).is_empty(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pat(s: &str) -> Pattern {
        Pattern::parse(s).unwrap_or_else(|e| panic!("{s:?}: {e}"))
    }

    fn path(s: &str) -> LockPath {
        LockPath::parse(s).unwrap_or_else(|e| panic!("{s:?}: {e}"))
    }

    #[test]
    fn normalisation_drops_dots_empty_segments_and_slashes() {
        let cases = [
            ("src/a.rs", "src/a.rs"),
            ("/src/a.rs", "src/a.rs"),
            ("./src/a.rs", "src/a.rs"),
            ("src//a.rs", "src/a.rs"),
            ("src/./a.rs", "src/a.rs"),
            ("src/", "src"),
            ("./././src///", "src"),
            ("//src/**/", "src/**"),
            (".hidden/x", ".hidden/x"),
            ("a/.../b", "a/.../b"),
        ];
        for (raw, want) in cases {
            assert_eq!(pat(raw).as_str(), want, "{raw:?}");
            assert_eq!(path(raw).as_str(), want, "{raw:?}");
        }
    }

    #[test]
    fn bad_resources_are_refused() {
        let cases = [
            ("", GlobError::Empty),
            ("/", GlobError::Empty),
            ("./", GlobError::Empty),
            (".", GlobError::Empty),
            ("//.//", GlobError::Empty),
            ("..", GlobError::DotDot),
            ("a/../b", GlobError::DotDot),
            ("a/..", GlobError::DotDot),
            ("src/[ab", GlobError::BadClass("[ab".into())),
            ("src/[]", GlobError::BadClass("[]".into())),
            ("src/[!]", GlobError::BadClass("[!]".into())),
            ("src/[z-a]", GlobError::BadClass("[z-a]".into())),
            ("src/[a\\", GlobError::BadClass("[a\\".into())),
            ("src/x\\", GlobError::BadEscape("x\\".into())),
        ];
        for (raw, want) in cases {
            assert_eq!(Pattern::parse(raw), Err(want), "{raw:?}");
        }
        assert_eq!(Pattern::parse(&"a".repeat(1025)), Err(GlobError::TooLong));
        assert!(Pattern::parse(&"a".repeat(1024)).is_ok());
        // A literal path has no classes: only `..`, emptiness and length are errors.
        assert_eq!(LockPath::parse("a/../b"), Err(GlobError::DotDot));
        assert_eq!(LockPath::parse("//"), Err(GlobError::Empty));
        assert_eq!(path("src/[ab").as_str(), "src/[ab");
    }

    #[test]
    fn matching_follows_api_24() {
        let cases: &[(&str, &str, bool)] = &[
            ("src/a.rs", "src/a.rs", true),
            ("src/a.rs", "src/b.rs", false),
            ("src/*.rs", "src/a.rs", true),
            ("src/*.rs", "src/.rs", true),
            ("src/*.rs", "src/a/b.rs", false),
            ("src/**", "src", true),
            ("src/**", "src/a", true),
            ("src/**", "src/a/b", true),
            ("src/**", "srcx/a", false),
            ("a/**/z.rs", "a/z.rs", true),
            ("a/**/z.rs", "a/b/c/z.rs", true),
            ("a/**/z.rs", "a/b/c/y.rs", false),
            ("a/**/z.rs", "z.rs", false),
            ("**", "anything/at/all", true),
            ("**/*.rs", "a.rs", true),
            ("**/*.rs", "x/y/a.rs", true),
            ("**/*.rs", "x/y/a.go", false),
            ("docs/*.md", "docs/guide.md", true),
            ("docs/*.md", "docs/guide.mdx", false),
            ("migrations/**/*.sql", "migrations/001.sql", true),
            ("migrations/**/*.sql", "migrations/v2/001.sql", true),
            ("a/?.rs", "a/b.rs", true),
            ("a/?.rs", "a/bc.rs", false),
            ("a/?.rs", "a/é.rs", true),
            ("a/[abc].rs", "a/b.rs", true),
            ("a/[abc].rs", "a/d.rs", false),
            ("a/[a-c].rs", "a/c.rs", true),
            ("a/[!a].rs", "a/a.rs", false),
            ("a/[!a].rs", "a/b.rs", true),
            ("a/[^a].rs", "a/b.rs", true),
            ("a/[^a].rs", "a/a.rs", false),
            ("a/[]x]", "a/]", true),
            ("a/[!]x]", "a/]", false),
            ("a/[a-]", "a/-", true),
            ("a/[-a]", "a/-", true),
            ("a/[\\]]", "a/]", true),
            ("a/\\*", "a/*", true),
            ("a/\\*", "a/b", false),
            ("a/\\[x]", "a/[x]", true),
            ("a/x**y", "a/xQQy", true),
            ("a/x**y", "a/x/y", false),
            ("a/*b*c*", "a/xxbyyczz", true),
            ("a/*b*c*", "a/xxcyybzz", false),
            ("a/b", "a/b/c", false),
            ("a/b/c", "a/b", false),
            ("src/**/tests/**", "src/tests", true),
            ("src/**/tests/**", "src/x/tests/y/z", true),
            ("src/**/tests/**", "src/x/test/y", false),
        ];
        for (p, s, want) in cases {
            assert_eq!(pat(p).matches(&path(s)), *want, "{p:?} vs {s:?}");
        }
    }

    /// Conflict table: the examples API §24 says must hold, and more. Overlap is symmetric,
    /// so each pair is checked both ways.
    #[test]
    fn overlap_table() {
        let cases: &[(&str, &str, bool)] = &[
            // API §24.
            ("src/**", "src/a/b.rs", true),
            ("src/*.rs", "src/a/b.rs", false),
            ("*.rs", "*.go", false),
            ("docs/**", "docs/*.md", true),
            ("a/b", "a/b/c", false),
            // Literal paths: equality.
            ("src/a.rs", "src/a.rs", true),
            ("src/a.rs", "src/b.rs", false),
            ("src/a.rs", "/src//./a.rs/", true),
            // `**` matches zero segments.
            ("src/**", "src", true),
            ("a/**/z.rs", "a/z.rs", true),
            ("a/**/z.rs", "a/b/c/z.rs", true),
            ("a/**/z.rs", "a/b/c/y.rs", false),
            ("a/**", "b/**", false),
            // `**` on both sides.
            ("a/**/x", "**/b/**", true),
            ("a/**/x", "**/b", false),
            ("**/a/**", "**/b/**", true),
            ("**/*.rs", "src/**", true),
            ("**/*.rs", "**/*.go", false),
            ("**/*.rs", "**/x.*", true),
            ("**", "anything/at/all", true),
            ("**/a", "b/**/c", false),
            ("**/a", "b/**/a", true),
            ("x/**/y/**/z", "x/y/z", true),
            ("x/**/y/**/z", "x/q/z", false),
            ("x/**/y/**/z", "x/**/z", true),
            ("a/**/b", "a/*/*/b", true),
            ("a/*/b", "a/**/c/b", true),
            ("a/*/b", "a/**/c/d", false),
            ("a/*/b", "a/*/*/**/b", false),
            ("a/*/b", "a/**/b", true),
            ("a/*/*/b", "a/*/b", false),
            // Single-segment globs.
            ("src/*", "src/a/b", false),
            ("src/*", "src/*/b", false),
            ("src/*.rs", "src/main.*", true),
            ("src/a*", "src/*b", true),
            ("src/a*c", "src/*b*", true),
            ("src/a?", "src/?b", true),
            ("src/a?", "src/???", false),
            ("src/*a*a*", "src/b*", true),
            ("src/x*", "src/y*", false),
            ("src/*x", "src/*y", false),
            ("src/*x*", "src/*y*", true),
            // Classes.
            ("a/[abc].rs", "a/[cde].rs", true),
            ("a/[ab].rs", "a/[cd].rs", false),
            ("a/[a-m]", "a/[n-z]", false),
            ("a/[a-m]", "a/[m-z]", true),
            ("a/[!a]", "a/a", false),
            ("a/[!a]", "a/b", true),
            ("a/[!a]", "a/[a]", false),
            ("a/[!ab]", "a/[ab]", false),
            ("a/[!ab]", "a/[abc]", true),
            ("a/[!a]", "a/[!b]", true),
            ("a/[^a-z]", "a/[a-z]", false),
            ("a/[a-z]x", "a/?y", false),
            ("a/[a-z]x", "a/?x", true),
            ("a/[0-9]*", "a/v*", false),
            ("a/[]]", "a/]", true),
            // Escapes.
            ("a/\\*", "a/*", true),
            ("a/\\*", "a/x", false),
            ("a/\\*", "a/\\*", true),
            ("a/\\?", "a/?", true),
            ("a/\\[ab]", "a/a", false),
            ("a/\\[ab]", "a/[ab]", false),
            ("a/\\[ab]", "a/\\[ab\\]", true),
            ("a/\\[ab]", "a/\\[*", true),
        ];
        for (x, y, want) in cases {
            let (px, py) = (pat(x), pat(y));
            assert_eq!(px.overlaps(&py), *want, "{x:?} x {y:?}");
            assert_eq!(py.overlaps(&px), *want, "{y:?} x {x:?}");
        }
    }

    /// The documented over-report: a segment glob that only matches `.` or `..`.
    #[test]
    fn dot_only_segments_are_the_documented_over_report() {
        assert!(pat("a/[.]").overlaps(&pat("a/?")));
        assert!(!pat("a/?").matches(&path("a/.")));
    }

    /// Overlap agrees with matching: whenever a path matches both patterns, they overlap;
    /// and for a literal pattern, overlap is exactly "the pattern's path matches".
    #[test]
    fn overlap_never_misses_a_common_path() {
        let patterns = [
            "**", "a", "a/b", "a/*", "a/**", "*/b", "**/b", "a/*/c", "a/**/c", "*", "?", "a/[bc]",
            "a/[!b]", "*.rs", "**/*.rs", "a/b*", "a/*c", "[a-b]/**",
        ];
        let paths = [
            "a", "b", "a/b", "a/c", "a/b/c", "a/x/y/c", "b/b", "x.rs", "a/x.rs", "a/bc",
        ];
        for x in patterns {
            for y in patterns {
                let (px, py) = (pat(x), pat(y));
                for p in paths {
                    let lp = path(p);
                    if px.matches(&lp) && py.matches(&lp) {
                        assert!(px.overlaps(&py), "{x:?} x {y:?} share {p:?}");
                    }
                }
            }
            for p in paths {
                let (px, lit) = (pat(x), pat(p));
                assert_eq!(px.overlaps(&lit), px.matches(&path(p)), "{x:?} x {p:?}");
            }
        }
    }

    /// Overlap against brute force: random patterns of at most two segments and two
    /// tokens per segment have a common path, if any, of at most two segments of at most
    /// four characters over `a`, `b`, `c`; every such path is tried.
    #[test]
    fn overlap_agrees_with_brute_force_on_small_patterns() {
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = |n: u64| {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (seed >> 33) % n
        };
        const TOKENS: [&str; 6] = ["a", "b", "?", "*", "[ab]", "[!a]"];
        let mut patterns: Vec<String> = Vec::new();
        while patterns.len() < 160 {
            let segs = 1 + next(2);
            let text: Vec<String> = (0..segs)
                .map(|_| {
                    if next(5) == 0 {
                        "**".to_string()
                    } else {
                        (0..1 + next(2)).map(|_| TOKENS[next(6) as usize]).collect()
                    }
                })
                .collect();
            let text = text.join("/");
            if !patterns.contains(&text) {
                patterns.push(text);
            }
        }
        let mut names = Vec::new();
        for len in 1..=4u32 {
            for mut n in 0..3usize.pow(len) {
                let mut name = String::new();
                for _ in 0..len {
                    name.push(['a', 'b', 'c'][n % 3]);
                    n /= 3;
                }
                names.push(name);
            }
        }
        let mut paths: Vec<LockPath> = names.iter().map(|n| path(n)).collect();
        for x in &names {
            for y in &names {
                paths.push(path(&format!("{x}/{y}")));
            }
        }
        let compiled: Vec<Pattern> = patterns.iter().map(|p| pat(p)).collect();
        let matched: Vec<Vec<bool>> = compiled
            .iter()
            .map(|p| paths.iter().map(|lp| p.matches(lp)).collect())
            .collect();
        for (i, x) in compiled.iter().enumerate() {
            for (j, y) in compiled.iter().enumerate() {
                let common = matched[i].iter().zip(&matched[j]).any(|(a, b)| *a && *b);
                assert_eq!(x.overlaps(y), common, "{} x {}", x.as_str(), y.as_str());
            }
        }
    }

    #[test]
    fn literal_prefix_stops_at_the_first_wildcard_segment() {
        let prefix = |s: &str| pat(s).literal_prefix().collect::<Vec<_>>().join("/");
        assert_eq!(prefix("src/api/handler.rs"), "src/api/handler.rs");
        assert_eq!(prefix("src/**/x.rs"), "src");
        assert_eq!(prefix("src/*.rs"), "src");
        assert_eq!(prefix("**/x"), "");
        assert_eq!(prefix("a/\\*/b"), "a/*/b");
        assert_eq!(pat("**/m7/*.rs").anchor(), Some("m7"));
        assert_eq!(pat("src/*/x/**/y").anchor(), Some("x"));
        assert_eq!(pat("src/**/*.rs").anchor(), None);
        assert_eq!(pat("src/a.rs").anchor(), None);
    }

    #[test]
    fn class_sets_complement_within_the_universe() {
        assert_eq!(
            complement(&[(0, 0x2E)]),
            vec![(0x30, 0xD7FF), (0xE000, 0x10FFFF)]
        );
        assert!(complement(&UNIVERSE).is_empty());
        assert_eq!(
            intersect(&[(0, 10), (20, 30)], &[(5, 25)]),
            vec![(5, 10), (20, 25)]
        );
        // A negated class of every character takes none.
        let all = Pattern::parse("a/[!\u{0}-\u{10FFFF}]").unwrap();
        assert!(!all.overlaps(&pat("a/*")));
        assert!(!all.overlaps(&pat("a/**")));
    }
}
