//! Support code shared by this workspace's integration tests, examples and benches. Not published.

pub mod fake_provider;
pub mod drive;
