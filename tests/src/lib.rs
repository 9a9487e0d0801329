//! Test support: fake workers.
