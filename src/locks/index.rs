//! An index of held locks by the literal segments their patterns start with, so a conflict
//! check or a path check looks only at the locks that could possibly apply.
//!
//! Each lock sits at the trie node of its pattern's literal prefix (`src/api/**` at
//! `src → api`, `**/*.rs` at the root). A literal segment takes exactly one path segment,
//! so:
//! - a path can only match patterns stored on the nodes along its own segments;
//! - two patterns can only overlap when one literal prefix is a prefix of the other: the
//!   candidates of a pattern are the locks on the nodes along its prefix and every lock
//!   below the node where its prefix ends.
//!
//! The candidates are then decided exactly by [`Pattern::matches`] / [`Pattern::overlaps`].

use std::collections::{BTreeSet, HashMap};

use super::glob::{LockPath, Pattern};

#[derive(Debug, Default)]
struct Node {
    here: BTreeSet<String>,
    children: HashMap<String, Node>,
}

impl Node {
    fn is_empty(&self) -> bool {
        self.here.is_empty() && self.children.is_empty()
    }

    fn each_below<'a>(&'a self, f: &mut impl FnMut(&'a str)) {
        for child in self.children.values() {
            child.here.iter().for_each(|id| f(id));
            child.each_below(f);
        }
    }
}

/// Lock ids by the literal prefix of their pattern.
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
        node.here.insert(id.to_string());
    }

    /// Removes lock `id` stored with `pattern` (and the nodes it leaves empty).
    pub fn remove(&mut self, id: &str, pattern: &Pattern) {
        let prefix: Vec<&str> = pattern.literal_prefix().collect();
        remove_at(&mut self.root, &prefix, id);
    }

    /// True when no lock is indexed.
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.root.is_empty()
    }

    /// Calls `f` with every lock whose pattern could match `path`.
    pub fn for_path<'a>(&'a self, path: &LockPath, mut f: impl FnMut(&'a str)) {
        let mut node = &self.root;
        node.here.iter().for_each(|id| f(id));
        for seg in path.segments() {
            match node.children.get(seg) {
                Some(next) => node = next,
                None => return,
            }
            node.here.iter().for_each(|id| f(id));
        }
    }

    /// Calls `f` with every lock whose pattern could overlap `pattern`.
    pub fn overlapping<'a>(&'a self, pattern: &Pattern, mut f: impl FnMut(&'a str)) {
        let mut node = &self.root;
        node.here.iter().for_each(|id| f(id));
        for seg in pattern.literal_prefix() {
            match node.children.get(seg) {
                Some(next) => node = next,
                None => return,
            }
            node.here.iter().for_each(|id| f(id));
        }
        node.each_below(&mut f);
    }
}

/// Removes `id` from the node at `prefix` below `node`.
fn remove_at(node: &mut Node, prefix: &[&str], id: &str) {
    let Some((first, rest)) = prefix.split_first() else {
        node.here.remove(id);
        return;
    };
    let Some(child) = node.children.get_mut(*first) else {
        return;
    };
    remove_at(child, rest, id);
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

    const LOCKS: [(&str, &str); 7] = [
        ("all", "**"),
        ("rs", "**/*.rs"),
        ("src", "src/**"),
        ("api", "src/api/**"),
        ("handler", "src/api/handler.rs"),
        ("docs", "docs/*.md"),
        ("star", "*/x"),
    ];

    fn sorted(mut v: Vec<&str>) -> Vec<&str> {
        v.sort_unstable();
        v
    }

    #[test]
    fn a_path_sees_the_locks_along_its_segments() {
        let index = index(&LOCKS);
        let mut seen = Vec::new();
        index.for_path(&LockPath::parse("src/api/handler.rs").unwrap(), |id| {
            seen.push(id)
        });
        assert_eq!(sorted(seen), ["all", "api", "handler", "rs", "src", "star"]);
        let mut seen = Vec::new();
        index.for_path(&LockPath::parse("docs/guide.md").unwrap(), |id| {
            seen.push(id)
        });
        assert_eq!(sorted(seen), ["all", "docs", "rs", "star"]);
    }

    #[test]
    fn a_pattern_sees_prefixes_and_everything_below_its_prefix() {
        let index = index(&LOCKS);
        let mut seen = Vec::new();
        index.overlapping(&Pattern::parse("src/**").unwrap(), |id| seen.push(id));
        assert_eq!(sorted(seen), ["all", "api", "handler", "rs", "src", "star"]);
        let mut seen = Vec::new();
        index.overlapping(&Pattern::parse("docs/a/b").unwrap(), |id| seen.push(id));
        assert_eq!(sorted(seen), ["all", "docs", "rs", "star"]);
        let mut seen = Vec::new();
        index.overlapping(&Pattern::parse("**").unwrap(), |id| seen.push(id));
        assert_eq!(seen.len(), LOCKS.len());
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
        assert!(index.root.is_empty());
    }
}
