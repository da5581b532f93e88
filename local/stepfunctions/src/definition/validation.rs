//! The checks that span a whole machine: every transition (Next, Catch, Choices, Default) lands
//! on a state of the same machine, and every state is reachable from StartAt.

use super::fields::{Res, err};
use super::state::{Kind, State};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// Follows every transition from `start_at`; rejects the first that names no state of this
/// machine, then the first (by name) state that was never reached.
pub(super) fn check_transitions(start_at: &str, states: &HashMap<String, Arc<State>>) -> Res<()> {
    let mut reachable = HashSet::new();
    let mut stack = vec![start_at.to_string()];
    while let Some(name) = stack.pop() {
        if !reachable.insert(name.clone()) {
            continue;
        }
        let state = &states[&name];
        let mut targets: Vec<(&str, &String)> = Vec::new();
        if let Some(next) = &state.next {
            targets.push(("Next", next));
        }
        for catcher in &state.catch {
            targets.push(("Catch.Next", &catcher.next));
        }
        if let Kind::Choice { choices, default } = &state.kind {
            for choice in choices {
                targets.push(("Choices.Next", &choice.next));
            }
            if let Some(default) = default {
                targets.push(("Default", default));
            }
        }
        for (field, target) in targets {
            if !states.contains_key(target) {
                return err(
                    Some(&name),
                    field,
                    format!("names {target:?}, which is not a state of this machine"),
                );
            }
            stack.push(target.clone());
        }
    }
    let mut unreachable: Vec<&String> = states.keys().filter(|n| !reachable.contains(*n)).collect();
    unreachable.sort();
    if let Some(name) = unreachable.first() {
        return err(Some(name), "(state)", "is not reachable from StartAt");
    }
    Ok(())
}
