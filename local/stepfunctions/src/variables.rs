//! Workflow variables (`Assign`): the scope a state reads them from, and the size limits AWS
//! sets on what one Assign stores and on what an execution holds.
//!
//! A state reads every variable as it was when the state was entered, and its assignments take
//! effect after it. Paths (`$name.field`), intrinsic functions and JSONata expressions are
//! evaluated deep inside many call sites, so the variables a state sees are set for the
//! duration of the state as a task-local scope rather than passed to each of them; concurrent
//! Parallel branches and Map iterations are separate futures, each with its own scope.

use crate::error::StatesError;
use serde_json::{Map, Value};
use std::future::Future;
use std::sync::Arc;

/// The largest value one variable may hold, and the most one Assign may store (256 KiB).
pub(crate) const MAX_ASSIGN_BYTES: usize = 256 * 1024;
/// The most all the variables of an execution may hold together (10 MiB).
pub(crate) const MAX_TOTAL_BYTES: usize = 10 * 1024 * 1024;

tokio::task_local! {
    static SCOPE: Arc<Map<String, Value>>;
}

/// Runs `future` with `vars` as the variables it reads.
pub(crate) async fn scoped<F: Future>(vars: Arc<Map<String, Value>>, future: F) -> F::Output {
    SCOPE.scope(vars, future).await
}

/// The variables of the current scope (none outside of a state).
pub(crate) fn current() -> Arc<Map<String, Value>> {
    SCOPE.try_with(Arc::clone).unwrap_or_default()
}

/// The value of variable `name` in the current scope.
pub(crate) fn lookup(name: &str) -> Option<Value> {
    SCOPE
        .try_with(|vars| vars.get(name).cloned())
        .ok()
        .flatten()
}

/// The size of a value as Step Functions counts it: its JSON text.
fn size(value: &Value) -> usize {
    value.to_string().len()
}

/// Checks what one Assign stores against the per-variable and per-Assign limit.
pub(crate) fn check_assignment(assigned: &Map<String, Value>) -> Result<(), StatesError> {
    let mut total = 0;
    for (name, value) in assigned {
        let bytes = size(value);
        if bytes > MAX_ASSIGN_BYTES {
            return Err(StatesError::runtime(format!(
                "The variable '{name}' is {bytes} bytes, over the limit of {MAX_ASSIGN_BYTES} bytes for one variable"
            )));
        }
        total += bytes;
    }
    if total > MAX_ASSIGN_BYTES {
        return Err(StatesError::runtime(format!(
            "The Assign field stores {total} bytes, over the limit of {MAX_ASSIGN_BYTES} bytes for one Assign"
        )));
    }
    Ok(())
}

/// Applies `assigned` to `vars`, failing if the variables would then hold more than the
/// execution limit.
pub(crate) fn apply(
    vars: &mut Map<String, Value>,
    assigned: Map<String, Value>,
) -> Result<(), StatesError> {
    let mut next = vars.clone();
    next.extend(assigned);
    let total: usize = next.values().map(size).sum();
    if total > MAX_TOTAL_BYTES {
        return Err(StatesError::runtime(format!(
            "The variables of this execution would hold {total} bytes, over the limit of {MAX_TOTAL_BYTES} bytes"
        )));
    }
    *vars = next;
    Ok(())
}

/// Whether `name` can be a variable: a letter or `_`, then letters, digits or `_`, and not the
/// reserved `states`.
pub(crate) fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name != "states"
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn one_variable_over_256_kib_is_refused() {
        let mut assigned = Map::new();
        assigned.insert("big".into(), json!("x".repeat(MAX_ASSIGN_BYTES)));
        let error = check_assignment(&assigned).unwrap_err();
        assert_eq!(error.error, "States.Runtime");
        assert!(error.cause.contains("'big'"), "{}", error.cause);
    }

    #[test]
    fn two_variables_of_200_kib_in_one_assign_are_refused() {
        let mut assigned = Map::new();
        assigned.insert("a".into(), json!("x".repeat(200 * 1024)));
        assigned.insert("b".into(), json!("x".repeat(200 * 1024)));
        assert!(check_assignment(&assigned).is_err());
    }

    #[test]
    fn the_execution_holds_at_most_10_mib_of_variables() {
        let mut vars = Map::new();
        for i in 0..40 {
            let mut assigned = Map::new();
            assigned.insert(format!("v{i}"), json!("x".repeat(250 * 1024)));
            check_assignment(&assigned).unwrap();
            apply(&mut vars, assigned).unwrap();
        }
        let mut assigned = Map::new();
        assigned.insert("v40".into(), json!("x".repeat(250 * 1024)));
        assert!(apply(&mut vars, assigned).is_err());
        assert_eq!(vars.len(), 40);
    }

    #[tokio::test]
    async fn a_scope_gives_its_variables_to_the_future_it_runs() {
        let mut vars = Map::new();
        vars.insert("x".into(), json!(1));
        let seen = scoped(Arc::new(vars), async { lookup("x") }).await;
        assert_eq!(seen, Some(json!(1)));
        assert_eq!(lookup("x"), None);
    }
}
