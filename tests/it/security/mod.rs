//! Attacks, each run against a real server and held to its bound (`scripts/attacks.sh` runs this area).

mod csp;
mod demo;
mod floods;
mod history;
mod http;
mod webhooks;
