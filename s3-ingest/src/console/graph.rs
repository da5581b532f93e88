//! A state machine drawn as a graph: the states of one machine (the top level, or a Map's
//! item processor) in layers from `StartAt` down, transitions as arrows (loops drawn as dashed
//! arcs on the right), and the states visited, the current one and the failed ones marked.
//! The layout is computed here and rendered as server-side SVG; no script draws it.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt::Write;

use serde_json::Value;

use super::html::escape;

const NODE_WIDTH: f64 = 180.0;
const NODE_HEIGHT: f64 = 34.0;
const GAP_X: f64 = 28.0;
const GAP_Y: f64 = 44.0;
const MARGIN: f64 = 20.0;
/// Room on the right for the arcs of loops.
const LOOP_ROOM: f64 = 60.0;

/// One state placed in the drawing.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// The state's name.
    pub name: String,
    /// Its `Type` (Task, Choice, Map...).
    pub kind: String,
    /// Its row, 0 for `StartAt`.
    pub layer: usize,
    /// Its position within the row.
    pub slot: usize,
}

/// One transition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edge {
    /// Index of the state it leaves.
    pub from: usize,
    /// Index of the state it enters.
    pub to: usize,
    /// Whether it goes back up (a loop), drawn as an arc.
    pub back: bool,
    /// Whether it is a Catch (an error transition).
    pub catch: bool,
}

/// The layered layout of one machine.
#[derive(Debug, Clone, Default)]
pub struct Graph {
    /// The states, in the definition's order.
    pub nodes: Vec<Node>,
    /// The transitions.
    pub edges: Vec<Edge>,
}

/// What one execution did, for marking the drawing.
#[derive(Debug, Clone, Default)]
pub struct Marks {
    /// States entered at least once.
    pub visited: HashSet<String>,
    /// The state the execution is in (entered, not exited), while it runs.
    pub current: Option<String>,
    /// States where the execution, or a task, failed.
    pub failed: HashSet<String>,
    /// Transitions taken, as (from, to).
    pub taken: HashSet<(String, String)>,
}

/// The transitions out of one state: `Next`, `Default`, each Choice rule's `Next` and each
/// Catch's `Next` (flagged).
fn transitions(state: &Value) -> Vec<(String, bool)> {
    let mut out = Vec::new();
    let mut push = |value: Option<&Value>, catch: bool| {
        if let Some(name) = value.and_then(Value::as_str) {
            out.push((name.to_owned(), catch));
        }
    };
    push(state.get("Next"), false);
    for rule in state
        .get("Choices")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        push(rule.get("Next"), false);
    }
    push(state.get("Default"), false);
    for catcher in state
        .get("Catch")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        push(catcher.get("Next"), true);
    }
    out
}

/// Lays out `machine` (an object with `StartAt` and `States`): each state's row is the
/// longest forward path from `StartAt` to it, so the flow reads top to bottom; edges that
/// close a loop (found by a depth-first walk) are marked `back` and do not count.
pub fn layout(machine: &Value) -> Graph {
    let Some(states) = machine.get("States").and_then(Value::as_object) else {
        return Graph::default();
    };
    let index: HashMap<&str, usize> = states
        .keys()
        .enumerate()
        .map(|(i, k)| (k.as_str(), i))
        .collect();
    let mut nodes: Vec<Node> = states
        .iter()
        .map(|(name, state)| Node {
            name: name.clone(),
            kind: state
                .get("Type")
                .and_then(Value::as_str)
                .unwrap_or("?")
                .to_owned(),
            layer: 0,
            slot: 0,
        })
        .collect();
    let mut edges: Vec<Edge> = Vec::new();
    for (i, state) in states.values().enumerate() {
        for (target, catch) in transitions(state) {
            if let Some(&to) = index.get(target.as_str()) {
                edges.push(Edge {
                    from: i,
                    to,
                    back: false,
                    catch,
                });
            }
        }
    }
    let start = machine
        .get("StartAt")
        .and_then(Value::as_str)
        .and_then(|s| index.get(s).copied())
        .unwrap_or(0);
    // Depth-first from the start: an edge to a state still on the stack closes a loop.
    let n = nodes.len();
    let mut on_stack = vec![false; n];
    let mut seen = vec![false; n];
    let mut finish_order = Vec::with_capacity(n);
    let mut roots = vec![start];
    roots.extend((0..n).filter(|&i| i != start));
    for root in roots {
        if seen[root] {
            continue;
        }
        // (node, next outgoing edge to look at)
        let mut stack = vec![(root, 0usize)];
        seen[root] = true;
        on_stack[root] = true;
        while let Some(&mut (node, ref mut cursor)) = stack.last_mut() {
            let outgoing: Vec<usize> = (0..edges.len())
                .filter(|&e| edges[e].from == node)
                .collect();
            if let Some(&e) = outgoing.get(*cursor) {
                *cursor += 1;
                let to = edges[e].to;
                if on_stack[to] {
                    edges[e].back = true;
                } else if !seen[to] {
                    seen[to] = true;
                    on_stack[to] = true;
                    stack.push((to, 0));
                }
            } else {
                on_stack[node] = false;
                finish_order.push(node);
                stack.pop();
            }
        }
    }
    // Longest path over the forward edges, in topological order (reverse finish order).
    let mut layer = vec![0usize; n];
    for &node in finish_order.iter().rev() {
        for edge in edges.iter().filter(|e| e.from == node && !e.back) {
            layer[edge.to] = layer[edge.to].max(layer[node] + 1);
        }
    }
    // Within a row, states sit in the order of their predecessors' positions, so arrows
    // cross less; ties keep the definition's order.
    let rows = layer.iter().max().map_or(0, |m| m + 1);
    let mut slot = vec![0usize; n];
    for row in 0..rows {
        let mut members: Vec<(f64, usize)> = (0..n)
            .filter(|&i| layer[i] == row)
            .map(|i| {
                let preds: Vec<f64> = edges
                    .iter()
                    .filter(|e| e.to == i && !e.back && layer[e.from] < row)
                    .map(|e| slot[e.from] as f64)
                    .collect();
                let key = if preds.is_empty() {
                    i as f64
                } else {
                    preds.iter().sum::<f64>() / preds.len() as f64
                };
                (key, i)
            })
            .collect();
        members.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        for (position, (_, i)) in members.into_iter().enumerate() {
            slot[i] = position;
        }
    }
    for (i, node) in nodes.iter_mut().enumerate() {
        node.layer = layer[i];
        node.slot = slot[i];
    }
    Graph { nodes, edges }
}

/// The machine in `definition` whose states include `state`: the top level, or a Map's item
/// processor (`ItemProcessor` or `Iterator`) or a Parallel branch, searched depth first.
pub fn machine_containing<'a>(definition: &'a Value, state: &str) -> Option<&'a Value> {
    let states = definition.get("States")?.as_object()?;
    if states.contains_key(state) {
        return Some(definition);
    }
    states.values().find_map(|s| {
        let mut inner: Vec<&Value> = ["ItemProcessor", "Iterator"]
            .iter()
            .filter_map(|k| s.get(*k))
            .collect();
        inner.extend(
            s.get("Branches")
                .and_then(Value::as_array)
                .into_iter()
                .flatten(),
        );
        inner.into_iter().find_map(|m| machine_containing(m, state))
    })
}

fn label(name: &str) -> String {
    let chars: Vec<char> = name.chars().collect();
    if chars.len() <= 24 {
        name.to_owned()
    } else {
        let mut short: String = chars[..23].iter().collect();
        short.push('…');
        short
    }
}

impl Graph {
    fn positions(&self) -> (Vec<(f64, f64)>, f64, f64) {
        let rows = self.nodes.iter().map(|n| n.layer + 1).max().unwrap_or(0);
        let mut widths = vec![0usize; rows];
        for node in &self.nodes {
            widths[node.layer] += 1;
        }
        let widest = widths.iter().copied().max().unwrap_or(0) as f64;
        let inner = widest * NODE_WIDTH + (widest - 1.0).max(0.0) * GAP_X;
        let positions = self
            .nodes
            .iter()
            .map(|node| {
                let count = widths[node.layer] as f64;
                let row_width = count * NODE_WIDTH + (count - 1.0) * GAP_X;
                let x =
                    MARGIN + (inner - row_width) / 2.0 + node.slot as f64 * (NODE_WIDTH + GAP_X);
                let y = MARGIN + node.layer as f64 * (NODE_HEIGHT + GAP_Y);
                (x, y)
            })
            .collect();
        let width = inner + 2.0 * MARGIN + LOOP_ROOM;
        let height = rows as f64 * (NODE_HEIGHT + GAP_Y) - GAP_Y + 2.0 * MARGIN;
        (positions, width, height.max(0.0))
    }

    /// The drawing as an SVG element; every name is escaped.
    pub fn svg(&self, marks: &Marks) -> String {
        let (pos, width, height) = self.positions();
        let mut out = format!(
            "<svg class=\"graph\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{width:.0}\" \
             height=\"{height:.0}\" viewBox=\"0 0 {width:.0} {height:.0}\" role=\"img\">\
             <defs><marker id=\"arrow\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" \
             markerUnits=\"userSpaceOnUse\" markerWidth=\"9\" markerHeight=\"9\" orient=\"auto-start-reverse\">\
             <path d=\"M 0 0 L 10 5 L 0 10 z\"/></marker></defs>"
        );
        for edge in &self.edges {
            let (from, to) = (&self.nodes[edge.from], &self.nodes[edge.to]);
            let taken = marks.taken.contains(&(from.name.clone(), to.name.clone()));
            let mut class = String::from("edge");
            for (flag, name) in [
                (taken, " taken"),
                (edge.back, " back"),
                (edge.catch, " catch"),
            ] {
                if flag {
                    class.push_str(name);
                }
            }
            let (fx, fy) = pos[edge.from];
            let (tx, ty) = pos[edge.to];
            let d = if edge.back || to.layer <= from.layer {
                // Out of the right side and back into the target's right side.
                let (x1, y1) = (fx + NODE_WIDTH, fy + NODE_HEIGHT / 2.0);
                let (x2, y2) = (tx + NODE_WIDTH, ty + NODE_HEIGHT / 2.0);
                let bulge = x1.max(x2) + LOOP_ROOM * 0.8;
                format!(
                    "M {x1:.1} {y1:.1} C {bulge:.1} {y1:.1}, {bulge:.1} {y2:.1}, {x2:.1} {y2:.1}"
                )
            } else {
                let (x1, y1) = (fx + NODE_WIDTH / 2.0, fy + NODE_HEIGHT);
                let (x2, y2) = (tx + NODE_WIDTH / 2.0, ty);
                let mid = (y1 + y2) / 2.0;
                format!("M {x1:.1} {y1:.1} C {x1:.1} {mid:.1}, {x2:.1} {mid:.1}, {x2:.1} {y2:.1}")
            };
            let _ = write!(
                out,
                "<path class=\"{class}\" data-from=\"{}\" data-to=\"{}\" d=\"{d}\" marker-end=\"url(#arrow)\"/>",
                escape(&from.name),
                escape(&to.name)
            );
        }
        for (i, node) in self.nodes.iter().enumerate() {
            let (x, y) = pos[i];
            let mut class = format!("node {}", node.kind.to_ascii_lowercase());
            if marks.visited.contains(&node.name) {
                class.push_str(" visited");
            }
            if marks.current.as_deref() == Some(node.name.as_str()) {
                class.push_str(" current");
            }
            if marks.failed.contains(&node.name) {
                class.push_str(" failed");
            }
            let radius = if node.kind == "Choice" { 17 } else { 6 };
            let _ = write!(
                out,
                "<g class=\"{class}\" data-state=\"{name}\"><title>{name} ({kind})</title>\
                 <rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{NODE_WIDTH}\" height=\"{NODE_HEIGHT}\" rx=\"{radius}\"/>\
                 <text x=\"{tx:.1}\" y=\"{ty:.1}\">{label}</text></g>",
                name = escape(&node.name),
                kind = escape(&node.kind),
                tx = x + NODE_WIDTH / 2.0,
                ty = y + NODE_HEIGHT / 2.0 + 4.0,
                label = escape(&label(&node.name)),
            );
        }
        out.push_str("</svg>");
        out
    }
}

/// The states named in a layout, for tests and legends.
pub fn names(graph: &Graph) -> BTreeSet<&str> {
    graph.nodes.iter().map(|n| n.name.as_str()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node<'a>(graph: &'a Graph, name: &str) -> &'a Node {
        graph.nodes.iter().find(|n| n.name == name).unwrap()
    }

    fn machine() -> Value {
        json!({"StartAt": "Start", "States": {
            "Start": {"Type": "Pass", "Next": "Work"},
            "Work": {"Type": "Task", "Next": "Done?", "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Failed"}]},
            "Done?": {"Type": "Choice", "Choices": [{"Variable": "$.done", "BooleanEquals": false, "Next": "Work"}], "Default": "Finish"},
            "Finish": {"Type": "Succeed"},
            "Failed": {"Type": "Fail"}
        }})
    }

    #[test]
    fn states_sit_in_rows_by_their_longest_forward_path_from_the_start() {
        let graph = layout(&machine());
        assert_eq!(node(&graph, "Start").layer, 0);
        assert_eq!(node(&graph, "Work").layer, 1);
        assert_eq!(node(&graph, "Done?").layer, 2);
        assert_eq!(node(&graph, "Finish").layer, 3);
        // Failed is reached from Work only: the row below it, beside Done?.
        assert_eq!(node(&graph, "Failed").layer, 2);
        assert_ne!(node(&graph, "Failed").slot, node(&graph, "Done?").slot);
    }

    #[test]
    fn the_edge_that_closes_a_loop_is_drawn_back_and_catches_are_flagged() {
        let graph = layout(&machine());
        let index = |name: &str| graph.nodes.iter().position(|n| n.name == name).unwrap();
        let back: Vec<&Edge> = graph.edges.iter().filter(|e| e.back).collect();
        assert_eq!(back.len(), 1);
        assert_eq!((back[0].from, back[0].to), (index("Done?"), index("Work")));
        let catches: Vec<&Edge> = graph.edges.iter().filter(|e| e.catch).collect();
        assert_eq!(catches.len(), 1);
        assert_eq!(catches[0].to, index("Failed"));
    }

    #[test]
    fn the_svg_marks_visited_current_and_failed_states_and_escapes_names() {
        let mut definition = machine();
        definition["States"]["Work"]["Next"] = json!("<b>&");
        definition["States"]["<b>&"] = json!({"Type": "Pass", "Next": "Done?"});
        let graph = layout(&definition);
        let marks = Marks {
            visited: ["Start", "Work"].map(str::to_owned).into(),
            current: Some("Work".to_owned()),
            failed: ["Work".to_owned()].into(),
            taken: [("Start".to_owned(), "Work".to_owned())].into(),
        };
        let svg = graph.svg(&marks);
        assert!(
            svg.contains("class=\"node task visited current failed\" data-state=\"Work\""),
            "{svg}"
        );
        assert!(
            svg.contains("class=\"edge taken\" data-from=\"Start\" data-to=\"Work\""),
            "{svg}"
        );
        assert!(svg.contains("data-state=\"&lt;b&gt;&amp;\""), "{svg}");
        assert!(!svg.contains("<b>&"), "{svg}");
    }

    #[test]
    fn a_state_inside_a_map_is_found_in_its_item_processor() {
        let definition = json!({"StartAt": "Map", "States": {"Map": {"Type": "Map",
            "ItemProcessor": {"StartAt": "Inner", "States": {"Inner": {"Type": "Succeed"}}}, "End": true}}});
        let inner = machine_containing(&definition, "Inner").unwrap();
        assert_eq!(names(&layout(inner)), BTreeSet::from(["Inner"]));
        assert!(machine_containing(&definition, "Nowhere").is_none());
    }
}
