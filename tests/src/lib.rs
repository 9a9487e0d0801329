//! Support for tally's end-to-end tests: fake workers live in `src/bin/`.
