//! The topology graph as a pure function of the registry and what was observed: nodes are
//! instances; edges are parents and interactions, each saying how it was derived.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde::Serialize;

use crate::events::pattern::TopicPattern;
use crate::instances::Instance;

/// Most nodes in one graph (the most recently seen instances are kept).
pub const MAX_NODES: usize = 500;
/// Most edges in one graph (parents first, then interactions by count).
pub const MAX_EDGES: usize = 2000;

/// An agent published on a topic (`count` times).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Publication {
    pub agent: String,
    pub topic: String,
    pub count: u64,
}

/// An agent subscribed to a topic pattern (WebSocket or long-poll).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subscription {
    pub agent: String,
    pub pattern: String,
}

/// A webhook: where it delivers and what it matches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hook {
    pub id: String,
    pub url: String,
    pub patterns: Vec<String>,
}

/// Work passed from one agent to another: `from` created tasks that `to` completed, or
/// `from` waited on locks `to` held.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Handoff {
    pub from: String,
    pub to: String,
    /// The queue (tasks) or resource (locks).
    pub via: String,
    pub count: u64,
}

/// Everything the graph is computed from.
#[derive(Clone, Debug, Default)]
pub struct Inputs {
    pub instances: Vec<Arc<Instance>>,
    pub publications: Vec<Publication>,
    pub subscriptions: Vec<Subscription>,
    pub hooks: Vec<Hook>,
    pub tasks: Vec<Handoff>,
    pub locks: Vec<Handoff>,
}

/// A node: one instance.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Node {
    pub id: String,
    pub name: String,
    pub workspace: String,
    pub status: &'static str,
    /// The last reported health status, or null.
    pub health: Option<&'static str>,
    pub parent_id: Option<String>,
}

/// An edge and how it was derived.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Edge {
    pub from: String,
    pub to: String,
    /// `parent`, `events`, `tasks` or `locks`.
    pub kind: &'static str,
    /// The derivation: `parent_id`; `topic T → subscription P` or `topic T → webhook W`;
    /// `queue Q`; `resource R`.
    pub via: String,
    /// How many observations support the edge (1 for a parent).
    pub count: u64,
}

/// The graph `GET /api/topology` answers with.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Graph {
    pub nodes: Vec<Node>,
    pub edges: Vec<Edge>,
    /// True when nodes or edges were left out to stay within the bounds.
    pub truncated: bool,
}

/// `scheme://host:port` of a URL (the part a webhook and an endpoint must share).
fn origin(url: &str) -> Option<String> {
    let u = reqwest::Url::parse(url).ok()?;
    Some(u.origin().ascii_serialization())
}

/// Builds the graph; only edges between two listed nodes are kept.
pub fn build(inputs: &Inputs) -> Graph {
    let mut instances = inputs.instances.clone();
    // Most recently seen first, so a cut keeps the live part of the fleet.
    instances.sort_by(|a, b| b.last_seen.cmp(&a.last_seen).then_with(|| a.id.cmp(&b.id)));
    let mut truncated = instances.len() > MAX_NODES;
    instances.truncate(MAX_NODES);
    let known: HashMap<&str, &Instance> = instances
        .iter()
        .map(|i| (i.id.as_str(), i.as_ref()))
        .collect();

    let mut edges: Vec<Edge> = Vec::new();
    for i in &instances {
        if let Some(parent) = i.profile.parent_id.as_deref()
            && known.contains_key(parent)
        {
            edges.push(Edge {
                from: parent.to_string(),
                to: i.id.clone(),
                kind: "parent",
                via: "parent_id".into(),
                count: 1,
            });
        }
    }

    edges.sort_by(|a, b| (&a.from, &a.to).cmp(&(&b.from, &b.to)));

    // (from, to, kind, via) -> count, ordered for a stable answer.
    let mut interactions: BTreeMap<(String, String, &'static str, String), u64> = BTreeMap::new();
    let subs: Vec<(&Subscription, TopicPattern)> = inputs
        .subscriptions
        .iter()
        .filter(|s| known.contains_key(s.agent.as_str()))
        .map(|s| (s, TopicPattern::new(&s.pattern)))
        .collect();
    // A webhook consumed by an instance that declares an endpoint on the webhook's origin.
    let mut hooks: Vec<(&Hook, Vec<TopicPattern>, Vec<&str>)> = Vec::new();
    for h in &inputs.hooks {
        let Some(o) = origin(&h.url) else { continue };
        let owners: Vec<&str> = instances
            .iter()
            .filter(|i| {
                i.profile
                    .endpoints
                    .values()
                    .any(|e| origin(e).as_deref() == Some(o.as_str()))
            })
            .map(|i| i.id.as_str())
            .collect();
        if !owners.is_empty() {
            let patterns = h.patterns.iter().map(|p| TopicPattern::new(p)).collect();
            hooks.push((h, patterns, owners));
        }
    }
    for p in &inputs.publications {
        if !known.contains_key(p.agent.as_str()) {
            continue;
        }
        for (s, pattern) in &subs {
            if s.agent != p.agent && pattern.matches(&p.topic) {
                *interactions
                    .entry((
                        p.agent.clone(),
                        s.agent.clone(),
                        "events",
                        format!("topic {} → subscription {}", p.topic, s.pattern),
                    ))
                    .or_default() += p.count;
            }
        }
        for (h, patterns, owners) in &hooks {
            if !patterns.iter().any(|pat| pat.matches(&p.topic)) {
                continue;
            }
            for owner in owners.iter().filter(|o| **o != p.agent) {
                *interactions
                    .entry((
                        p.agent.clone(),
                        (*owner).to_string(),
                        "events",
                        format!("topic {} → webhook {}", p.topic, h.id),
                    ))
                    .or_default() += p.count;
            }
        }
    }
    for (kind, list, label) in [
        ("tasks", &inputs.tasks, "queue"),
        ("locks", &inputs.locks, "resource"),
    ] {
        for h in list {
            if h.from != h.to
                && known.contains_key(h.from.as_str())
                && known.contains_key(h.to.as_str())
            {
                *interactions
                    .entry((
                        h.from.clone(),
                        h.to.clone(),
                        kind,
                        format!("{label} {}", h.via),
                    ))
                    .or_default() += h.count;
            }
        }
    }
    let mut rest: Vec<Edge> = interactions
        .into_iter()
        .map(|((from, to, kind, via), count)| Edge {
            from,
            to,
            kind,
            via,
            count,
        })
        .collect();
    // The strongest interactions survive a cut; ties keep their stable order.
    rest.sort_by_key(|e| std::cmp::Reverse(e.count));
    edges.extend(rest);
    if edges.len() > MAX_EDGES {
        edges.truncate(MAX_EDGES);
        truncated = true;
    }

    let nodes = instances
        .iter()
        .map(|i| Node {
            id: i.id.clone(),
            name: i.name.clone(),
            workspace: i.workspace.clone(),
            status: i.status.as_str(),
            health: i.profile.health.as_ref().map(|h| h.status.as_str()),
            parent_id: i.profile.parent_id.clone(),
        })
        .collect();
    Graph {
        nodes,
        edges,
        truncated,
    }
}

/// Quotes a DOT identifier or label.
fn quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' | '\r' => out.push(' '),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The graph as Graphviz DOT text: parents solid, events dashed, tasks bold, locks dotted.
pub fn to_dot(g: &Graph) -> String {
    let mut out = String::from("digraph koor {\n  rankdir=LR;\n  node [shape=box];\n");
    for n in &g.nodes {
        let color = match (n.status, n.health) {
            (_, Some("failing")) => "red",
            (_, Some("degraded")) => "orange",
            ("stale", _) => "gray",
            ("pending", _) => "blue",
            _ => "black",
        };
        let label = format!("{} ({})", n.name, n.status);
        out.push_str(&format!(
            "  {} [label={}, color={color}];\n",
            quoted(&n.id),
            quoted(&label)
        ));
    }
    for e in &g.edges {
        let style = match e.kind {
            "parent" => "solid",
            "events" => "dashed",
            "tasks" => "bold",
            _ => "dotted",
        };
        let label = if e.kind == "parent" {
            String::new()
        } else {
            format!(", label={}", quoted(&e.via))
        };
        out.push_str(&format!(
            "  {} -> {} [style={style}{label}];\n",
            quoted(&e.from),
            quoted(&e.to)
        ));
    }
    out.push_str("}\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::instances::{Profile, Status};

    fn inst(id: &str, parent: Option<&str>, seen: i64) -> Arc<Instance> {
        Arc::new(Instance {
            id: id.into(),
            name: format!("n-{id}"),
            workspace: String::new(),
            intent: String::new(),
            stack: String::new(),
            capabilities: vec![],
            status: Status::Active,
            token_hash: String::new(),
            registered_at: 0,
            last_seen: seen,
            profile: Profile {
                parent_id: parent.map(Into::into),
                ..Default::default()
            },
        })
    }

    fn edges(g: &Graph) -> Vec<String> {
        g.edges
            .iter()
            .map(|e| format!("{} {}->{} [{}] x{}", e.kind, e.from, e.to, e.via, e.count))
            .collect()
    }

    #[test]
    fn parents_and_interactions_each_say_how_they_were_derived() {
        let mut hooked = (*inst("d", None, 1)).clone();
        hooked
            .profile
            .endpoints
            .insert("hooks".into(), "http://127.0.0.1:9000/in".into());
        let inputs = Inputs {
            instances: vec![
                inst("a", None, 4),
                inst("b", Some("a"), 3),
                inst("c", Some("b"), 2),
                Arc::new(hooked),
            ],
            publications: vec![
                Publication {
                    agent: "b".into(),
                    topic: "api.change".into(),
                    count: 2,
                },
                Publication {
                    agent: "gone".into(),
                    topic: "api.change".into(),
                    count: 9,
                },
            ],
            subscriptions: vec![
                Subscription {
                    agent: "c".into(),
                    pattern: "api.*".into(),
                },
                Subscription {
                    agent: "b".into(),
                    pattern: "*".into(),
                },
                Subscription {
                    agent: "a".into(),
                    pattern: "test.*".into(),
                },
            ],
            hooks: vec![Hook {
                id: "w1".into(),
                url: "http://127.0.0.1:9000/other".into(),
                patterns: vec!["api.change".into()],
            }],
            tasks: vec![Handoff {
                from: "a".into(),
                to: "c".into(),
                via: "default".into(),
                count: 1,
            }],
            locks: vec![
                Handoff {
                    from: "c".into(),
                    to: "b".into(),
                    via: "src/**".into(),
                    count: 1,
                },
                Handoff {
                    from: "c".into(),
                    to: "c".into(),
                    via: "x".into(),
                    count: 1,
                },
            ],
        };
        let g = build(&inputs);
        assert_eq!(
            edges(&g),
            [
                "parent a->b [parent_id] x1",
                "parent b->c [parent_id] x1",
                "events b->c [topic api.change → subscription api.*] x2",
                "events b->d [topic api.change → webhook w1] x2",
                "tasks a->c [queue default] x1",
                "locks c->b [resource src/**] x1",
            ]
        );
        assert_eq!(g.nodes.len(), 4);
        assert!(!g.truncated);
        let dot = to_dot(&g);
        assert!(dot.starts_with("digraph koor {"), "{dot}");
        assert!(dot.contains("\"a\" -> \"b\" [style=solid];"), "{dot}");
        assert!(dot.contains("[style=dashed, label=\"topic api.change → subscription api.*\"]"));
    }

    #[test]
    fn a_dangling_parent_is_no_edge_and_the_graph_is_bounded() {
        let mut instances: Vec<_> = (0..MAX_NODES as i64 + 5)
            .map(|n| inst(&format!("i{n}"), Some("missing"), n))
            .collect();
        instances.push(inst("newest", None, i64::MAX));
        let g = build(&Inputs {
            instances,
            ..Default::default()
        });
        assert_eq!(g.nodes.len(), MAX_NODES);
        assert_eq!(g.nodes[0].id, "newest");
        assert!(g.edges.is_empty());
        assert!(g.truncated);
    }

    #[test]
    fn dot_quotes_what_it_prints() {
        assert_eq!(quoted("a\"b\\c\nd"), "\"a\\\"b\\\\c d\"");
    }
}
