//! The local stack and the command-line tool's building blocks: the sample data set, the
//! three embedded endpoints, the in-process Lambda service that runs the workflow's
//! functions, and the run that drives them.

pub mod console;
pub mod control;
pub mod failed_items;
pub mod lambda;
pub mod migrate;
pub mod output;
pub mod recovery;
pub mod run;
pub mod run_args;
pub mod sample;
pub mod stack;
pub mod summary;
