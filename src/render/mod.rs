//! Rendering plans into the files operators deploy.

pub mod write;
