//! `logbook audit`, `logbook plan` and `kubectl logbook` as a user runs them, one binary: a module per command
//! (`logbook dev` and `logbook sandbox` have their own, with the processes they start).

mod audit;
mod plan;
mod plugin;
