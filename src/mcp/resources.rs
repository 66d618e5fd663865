//! The resources: views an agent reads only when it asks, each bounded in size
//! (documented in docs/mcp.md): the roster, one instance, the topology, recent events.

use actix::Addr;
use rmcp::model::{Resource, ResourceTemplate};
use serde_json::{Value, json};

use crate::events::{EventBus, History, HistoryFilter};
use crate::instances::{GetInstance, InstanceRegistry, ListInstances};
use crate::topology::{GetTopology, TopologyWatcher};

/// Largest text of any resource, in bytes: lines past it are left out and a last line
/// says so.
pub const MAX_RESOURCE_BYTES: usize = 32 * 1024;
/// Longest intent in a roster line, in characters.
pub const MAX_INTENT_CHARS: usize = 80;
/// Events in `koor://events/recent`.
pub const RECENT_EVENTS: u64 = 20;
/// Longest `data` of one event in `koor://events/recent`, in bytes of JSON text.
pub const MAX_EVENT_DATA_BYTES: usize = 512;

pub const INSTANCES: &str = "koor://instances";
pub const TOPOLOGY: &str = "koor://topology";
pub const RECENT: &str = "koor://events/recent";
pub const INSTANCE_TEMPLATE: &str = "koor://instances/{id}";
const INSTANCE_PREFIX: &str = "koor://instances/";

/// The fixed resources `resources/list` answers with.
pub fn list() -> Vec<Resource> {
    let r = |uri: &str, name: &str, description: &str, mime: &str| {
        Resource::new(uri, name)
            .with_description(description)
            .with_mime_type(mime)
    };
    vec![
        r(
            INSTANCES,
            "instances",
            "Registered agents, one line each: id, name, status, intent.",
            "text/plain",
        ),
        r(
            TOPOLOGY,
            "topology",
            "Who started whom and who works with whom: nodes, then edges with how each was derived.",
            "text/plain",
        ),
        r(
            RECENT,
            "recent events",
            "The 20 most recent events, newest first, one JSON object per line.",
            "text/plain",
        ),
    ]
}

/// The templates `resources/templates/list` answers with.
pub fn templates() -> Vec<ResourceTemplate> {
    vec![
        ResourceTemplate::new(INSTANCE_TEMPLATE, "instance")
            .with_description("One agent as JSON: the REST instance object.")
            .with_mime_type("application/json"),
    ]
}

/// No control characters (a line stays one line); at most `max` characters.
fn one_line(s: &str, max: usize) -> String {
    let mut out: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(max)
        .collect();
    if s.chars().count() > max {
        out.push('…');
    }
    out
}

/// `header` then `lines`, cut at [`MAX_RESOURCE_BYTES`] with a last line saying how many
/// were left out.
pub fn bounded_lines(header: &str, lines: &[String]) -> String {
    let mut out = format!("{header}\n");
    for (n, line) in lines.iter().enumerate() {
        // Room for the note that closes a cut text.
        if out.len() + line.len() + 1 > MAX_RESOURCE_BYTES - 64 {
            out.push_str(&format!("# … {} more left out\n", lines.len() - n));
            break;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// The text and MIME type of resource `uri`; `None` when there is no such resource.
pub async fn read(
    uri: &str,
    instances: &Addr<InstanceRegistry>,
    topology: Option<&Addr<TopologyWatcher>>,
    events: Option<&Addr<EventBus>>,
) -> Result<Option<(String, &'static str)>, String> {
    let unavailable = |e: actix::MailboxError| format!("koor is shutting down: {e}");
    match uri {
        INSTANCES => {
            let all = instances
                .send(ListInstances::default())
                .await
                .map_err(unavailable)?;
            let lines: Vec<String> = all
                .iter()
                .map(|i| {
                    format!(
                        "{}\t{}\t{}\t{}",
                        i.id,
                        one_line(&i.name, 64),
                        i.status.as_str(),
                        one_line(&i.intent, MAX_INTENT_CHARS)
                    )
                })
                .collect();
            let header = format!("# {} instances: id, name, status, intent", all.len());
            Ok(Some((bounded_lines(&header, &lines), "text/plain")))
        }
        TOPOLOGY => {
            let Some(topology) = topology else {
                return Ok(None);
            };
            let g = topology
                .send(GetTopology)
                .await
                .map_err(unavailable)?
                .map_err(|e| e.to_string())?;
            let mut lines: Vec<String> = g
                .nodes
                .iter()
                .map(|n| {
                    format!(
                        "node\t{}\t{}\t{}\t{}",
                        n.id,
                        one_line(&n.name, 64),
                        n.status,
                        n.health.unwrap_or("-")
                    )
                })
                .collect();
            lines.extend(g.edges.iter().map(|e| {
                format!(
                    "edge\t{}\t{}\t{}\t{}\tx{}",
                    e.from,
                    e.to,
                    e.kind,
                    one_line(&e.via, 200),
                    e.count
                )
            }));
            let header = format!(
                "# {} nodes (node, id, name, status, health), {} edges (edge, from, to, kind, via, count){}",
                g.nodes.len(),
                g.edges.len(),
                if g.truncated { ", truncated" } else { "" }
            );
            Ok(Some((bounded_lines(&header, &lines), "text/plain")))
        }
        RECENT => {
            let Some(events) = events else {
                return Ok(None);
            };
            let recent = events
                .send(History {
                    filter: HistoryFilter::default(),
                    last: RECENT_EVENTS,
                })
                .await
                .map_err(unavailable)?
                .map_err(|e| e.to_string())?;
            let lines: Vec<String> = recent
                .iter()
                .map(|e| {
                    let data = e.data.to_string();
                    let data = if data.len() > MAX_EVENT_DATA_BYTES {
                        json!(format!("… {} bytes; GET /api/events/history", data.len()))
                    } else {
                        e.data.clone()
                    };
                    let mut out = serde_json::to_value(e.out()).unwrap_or(Value::Null);
                    out["data"] = data;
                    out.to_string()
                })
                .collect();
            let header = format!("# {} most recent events, newest first", recent.len());
            Ok(Some((bounded_lines(&header, &lines), "text/plain")))
        }
        _ => {
            let Some(id) = uri.strip_prefix(INSTANCE_PREFIX) else {
                return Ok(None);
            };
            let found = instances
                .send(GetInstance { id: id.to_string() })
                .await
                .map_err(unavailable)?;
            match found {
                Ok(i) => Ok(Some((
                    serde_json::to_string(&i.out()).unwrap_or_default(),
                    "application/json",
                ))),
                Err(_) => Ok(None),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_stay_lines_and_texts_stay_bounded() {
        assert_eq!(one_line("a\nb\tc", 10), "a b c");
        assert_eq!(one_line("abcdef", 3), "abc…");
        let long: Vec<String> = (0..10_000).map(|n| format!("line {n}")).collect();
        let text = bounded_lines("# h", &long);
        assert!(text.len() <= MAX_RESOURCE_BYTES, "{}", text.len());
        assert!(text.ends_with("more left out\n"), "{text}");
        assert_eq!(bounded_lines("# h", &["x".into()]), "# h\nx\n");
    }
}
