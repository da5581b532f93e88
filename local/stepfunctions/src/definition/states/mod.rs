//! Each state type's own fields, one module per type that has more than a line of them (Pass,
//! Succeed and Fail are parsed with the common fields in `state`).

pub(super) mod choice;
pub(super) mod distributed;
pub(super) mod map;
pub(super) mod parallel;
pub(super) mod task;
pub(super) mod wait;
