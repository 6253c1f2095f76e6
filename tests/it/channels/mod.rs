//! Channels and users through the client protocol: subscribing, publishing, history, lifecycle, users and their connections, limits, recovery after a reconnect, races, polling.

mod history;
mod lifecycle;
mod polling;
mod publish;
mod races;
mod recovery;
mod subscribe;
mod user_limits;
mod users;
