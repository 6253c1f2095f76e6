//! Running hookbox: the command line, the admin console, metrics, shutdown, the landing page, sizes, fuzz corpora, property tests.

mod admin;
mod cli;
mod docs;
mod fuzz_corpus;
mod landing;
mod metrics;
mod protocol_props;
mod shutdown;
mod sizes;
