//! Support code shared by this workspace's integration tests, examples and benches. Not published.

pub mod drive;
pub mod fake_provider;
