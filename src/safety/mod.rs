//! What makes input safe to show: one escaping function for every string that came from an
//! input (values, keys, file names) and one rule for which values are secrets and how they show.

pub mod escape;
pub mod secret;
pub mod sink;

pub use escape::{escape, shown_path};
pub use secret::{REDACTED, is_secret_key, mask_url_passwords, note, note_yaml, scrub, shown};
