//! The results of a Parallel state's branches or an inline Map's iterations as they arrive.
//! At the top level they are kept on the checkpoint, so that a redrive (or a resume after a
//! restart) runs again only the branches or iterations that did not succeed.

use super::StartMode;
use super::run::Run;
use crate::definition::State;
use crate::store::Iterations;
use serde_json::Value;

/// One slot per branch or iteration; `None` until it succeeded.
pub(super) struct IterationResults<'a> {
    run: &'a Run,
    state: &'a State,
    top: bool,
    results: Vec<Option<Value>>,
}

impl<'a> IterationResults<'a> {
    /// `len` empty slots, or, when this attempt redrives or resumes the top-level state at the
    /// checkpoint, the results its previous attempt kept.
    pub(super) fn new(
        run: &'a Run,
        state: &'a State,
        len: usize,
        top: bool,
        mode: Option<StartMode>,
    ) -> IterationResults<'a> {
        let kept = match mode {
            Some(StartMode::Redrive | StartMode::Resume) => run
                .entry
                .lock()
                .checkpoint
                .as_ref()
                .and_then(|c| c.iterations.clone())
                .filter(|it| it.state == state.name && it.results.len() == len)
                .map(|it| it.results),
            _ => None,
        };
        IterationResults {
            run,
            state,
            top,
            results: kept.unwrap_or_else(|| vec![None; len]),
        }
    }

    /// Whether slot `i` still needs a run.
    pub(super) fn is_pending(&self, i: usize) -> bool {
        self.results[i].is_none()
    }

    /// Fills slot `i` and, at the top level, keeps all results on the checkpoint.
    pub(super) fn fill(&mut self, i: usize, value: Value) {
        self.results[i] = Some(value);
        if !self.top {
            return;
        }
        let mut r = self.run.entry.lock();
        if let Some(c) = r.checkpoint.as_mut() {
            c.iterations = Some(Iterations {
                state: self.state.name.clone(),
                results: self.results.clone(),
            });
        }
        drop(r);
        self.run.entry.touch();
    }

    /// The state's result: an array with one entry per branch or iteration.
    pub(super) fn into_output(self) -> Value {
        Value::Array(
            self.results
                .into_iter()
                .map(|r| r.unwrap_or(Value::Null))
                .collect(),
        )
    }
}
