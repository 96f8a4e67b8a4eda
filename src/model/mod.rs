//! The sizing model: profiles, queueing maths, the connection budget and the plan. It knows
//! nothing about files or terminals; it returns plain data.

pub mod assumptions;
pub mod budget;
pub mod capacity;
mod components;
pub mod derivation;
pub mod input;
pub mod load;
pub mod mysql;
pub mod pg_memory;
pub mod pgtune;
pub mod plan;
pub mod pooler;
pub mod profile;
pub mod queueing;
pub mod settings;
pub mod simulation;
pub mod solve;
pub mod storage;
pub mod units;
