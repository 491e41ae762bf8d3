//! HTTP handlers, one module per audience.

pub mod admin;
pub mod backend;
pub mod collect;
pub mod graph;
pub mod health;
