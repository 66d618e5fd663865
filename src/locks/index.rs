//! An index of held locks by the literal segments of their patterns, so a conflict check or
//! a path check looks only at the locks that could possibly apply.
//!
//! Each lock sits at the trie node of its pattern's literal prefix (`src/api/**` at
//! `src → api`, `**/*.rs` at the root). A literal segment takes exactly one path segment,
//! so:
//! - a path can only match patterns stored on the nodes along its own segments;
//! - two patterns can only overlap when one literal prefix is a prefix of the other: the
//!   candidates of a pattern are the locks on the nodes along its prefix and every lock
//!   below the node where its prefix ends.
//!
//! Within a node, a pattern with a literal segment after its prefix (its anchor: `m7` in
//! `**/m7/*.rs`) is filed under that segment: a path below the node can only match it when
//! one of its remaining segments equals the anchor. Only patterns without any literal
//! segment after the prefix (`**/*.rs`) are candidates for every path below their node.
//!
//! The candidates are then decided exactly by [`Pattern::matches`] / [`Pattern::overlaps`].

use std::collections::{BTreeSet, HashMap};

use super::glob::{LockPath, Pattern};

#[derive(Debug, Default)]
struct Node {
    /// Locks whose pattern has no literal segment after this node.
    free: BTreeSet<String>,
    /// Locks by the first literal segment after this node.
    anchored: HashMap<String, BTreeSet<String>>,
    children: HashMap<String, Node>,
}

impl Node {
    fn is_empty(&self) -> bool {
        self.free.is_empty() && self.anchored.is_empty() && self.children.is_empty()
    }

    fn each_here<'a>(&'a self, f: &mut impl FnMut(&'a str)) {
        self.free.iter().for_each(|id| f(id));
        self.anchored.values().flatten().for_each(|id| f(id));
    }

    fn each_below<'a>(&'a self, f: &mut impl FnMut(&'a str)) {
        for child in self.children.values() {
            child.each_here(f);
            child.each_below(f);
        }
    }

    /// The locks here that a path whose segments below this node are `rest` could match.
    fn each_for<'a>(&'a self, rest: &[&str], f: &mut impl FnMut(&'a str)) {
        self.free.iter().for_each(|id| f(id));
        if self.anchored.is_empty() {
            return;
        }
        for (i, seg) in rest.iter().enumerate() {
            // Each distinct segment once, so no lock is named twice.
            if rest[..i].contains(seg) {
                continue;
            }
            if let Some(ids) = self.anchored.get(*seg) {
                ids.iter().for_each(|id| f(id));
            }
        }
    }
}

/// Lock ids by the literal prefix (and anchor) of their pattern.
#[derive(Debug, Default)]
pub struct PrefixIndex {
    root: Node,
}

impl PrefixIndex {
    /// Adds lock `id` with `pattern`.
    pub fn insert(&mut self, id: &str, pattern: &Pattern) {
        let mut node = &mut self.root;
        for seg in pattern.literal_prefix() {
            node = node.children.entry(seg.to_string()).or_default();
        }
        match pattern.anchor() {
            Some(anchor) => node
                .anchored
                .entry(anchor.to_string())
                .or_default()
                .insert(id.to_string()),
            None => node.free.insert(id.to_string()),
        };
    }

    /// Removes lock `id` stored with `pattern` (and the nodes it leaves empty).
    pub fn remove(&mut self, id: &str, pattern: &Pattern) {
        let prefix: Vec<&str> = pattern.literal_prefix().collect();
        remove_at(&mut self.root, &prefix, pattern.anchor(), id);
    }

    /// True when no lock is indexed.
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.root.is_empty()
    }

    /// Calls `f` with every lock whose pattern could match `path`.
    pub fn for_path<'a>(&'a self, path: &LockPath, mut f: impl FnMut(&'a str)) {
        let segs: Vec<&str> = path.segments().collect();
        let mut node = &self.root;
        node.each_for(&segs, &mut f);
        for (i, seg) in segs.iter().enumerate() {
            match node.children.get(*seg) {
                Some(next) => node = next,
                None => return,
            }
            node.each_for(&segs[i + 1..], &mut f);
        }
    }

    /// Calls `f` with every lock whose pattern could overlap `pattern`.
    pub fn overlapping<'a>(&'a self, pattern: &Pattern, mut f: impl FnMut(&'a str)) {
        let mut node = &self.root;
        node.each_here(&mut f);
        for seg in pattern.literal_prefix() {
            match node.children.get(seg) {
                Some(next) => node = next,
                None => return,
            }
            node.each_here(&mut f);
        }
        node.each_below(&mut f);
    }
}

/// Removes `id` from the node at `prefix` below `node`.
fn remove_at(node: &mut Node, prefix: &[&str], anchor: Option<&str>, id: &str) {
    let Some((first, rest)) = prefix.split_first() else {
        match anchor {
            Some(anchor) => {
                if let Some(ids) = node.anchored.get_mut(anchor) {
                    ids.remove(id);
                    if ids.is_empty() {
                        node.anchored.remove(anchor);
                    }
                }
            }
            None => {
                node.free.remove(id);
            }
        }
        return;
    };
    let Some(child) = node.children.get_mut(*first) else {
        return;
    };
    remove_at(child, rest, anchor, id);
    if child.is_empty() {
        node.children.remove(*first);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index(patterns: &[(&str, &str)]) -> PrefixIndex {
        let mut index = PrefixIndex::default();
        for (id, p) in patterns {
            index.insert(id, &Pattern::parse(p).unwrap());
        }
        index
    }

    const LOCKS: [(&str, &str); 9] = [
        ("all", "**"),
        ("rs", "**/*.rs"),
        ("src", "src/**"),
        ("api", "src/api/**"),
        ("handler", "src/api/handler.rs"),
        ("docs", "docs/*.md"),
        ("star", "*/x"),
        ("cargo", "**/Cargo.toml"),
        ("tests", "src/**/tests/*.rs"),
    ];

    fn for_path(index: &PrefixIndex, path: &str) -> Vec<String> {
        let mut seen: Vec<String> = Vec::new();
        index.for_path(&LockPath::parse(path).unwrap(), |id| {
            seen.push(id.to_string())
        });
        seen.sort_unstable();
        seen
    }

    fn overlapping(index: &PrefixIndex, pattern: &str) -> Vec<String> {
        let mut seen: Vec<String> = Vec::new();
        index.overlapping(&Pattern::parse(pattern).unwrap(), |id| {
            seen.push(id.to_string())
        });
        seen.sort_unstable();
        seen
    }

    #[test]
    fn a_path_sees_the_locks_along_its_segments_and_its_anchors() {
        let index = index(&LOCKS);
        assert_eq!(
            for_path(&index, "src/api/handler.rs"),
            ["all", "api", "handler", "rs", "src"]
        );
        assert_eq!(for_path(&index, "docs/guide.md"), ["all", "docs", "rs"]);
        assert_eq!(
            for_path(&index, "a/x"),
            ["all", "rs", "star"],
            "no anchor: always"
        );
        assert_eq!(
            for_path(&index, "crates/a/Cargo.toml"),
            ["all", "cargo", "rs"]
        );
        assert_eq!(
            for_path(&index, "src/a/tests/tests/t.rs"),
            ["all", "rs", "src", "tests"],
            "a repeated segment names its locks once"
        );
    }

    /// Every lock whose pattern matches a path is among its candidates.
    #[test]
    fn no_matching_lock_is_left_out() {
        let index = index(&LOCKS);
        for path in [
            "src/api/handler.rs",
            "src/tests/a.rs",
            "Cargo.toml",
            "a/x",
            "docs/a.md",
            "src",
        ] {
            let lp = LockPath::parse(path).unwrap();
            let seen = for_path(&index, path);
            for (id, p) in LOCKS {
                if Pattern::parse(p).unwrap().matches(&lp) {
                    assert!(seen.contains(&id.to_string()), "{id} for {path}");
                }
            }
        }
    }

    #[test]
    fn a_pattern_sees_prefixes_and_everything_below_its_prefix() {
        let index = index(&LOCKS);
        assert_eq!(
            overlapping(&index, "src/**"),
            [
                "all", "api", "cargo", "handler", "rs", "src", "star", "tests"
            ]
        );
        assert_eq!(
            overlapping(&index, "docs/a/b"),
            ["all", "cargo", "docs", "rs", "star"]
        );
        assert_eq!(overlapping(&index, "**").len(), LOCKS.len());
    }

    #[test]
    fn removal_prunes_empty_nodes() {
        let mut index = index(&LOCKS);
        assert!(!index.is_empty());
        for (id, p) in LOCKS {
            index.remove(id, &Pattern::parse(p).unwrap());
        }
        index.remove("gone", &Pattern::parse("src/x").unwrap());
        assert!(index.is_empty());
    }
}
