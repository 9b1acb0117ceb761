//! Support code shared by this workspace's integration tests, examples and benches. Not published.

pub mod alloc_count;
pub mod attempt_log;
pub mod drive;
pub mod fake_provider;
pub mod provider_error;

/// The README's Rust examples, compiled and run as doctests so that what a user pastes works.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
