//! Channels and users through the client protocol: subscribing, publishing, history, lifecycle, users and their connections, limits, recovery after a reconnect, resume tickets, the grace period for leaving, races, polling.

mod grace;
mod history;
mod lifecycle;
mod polling;
mod publish;
mod races;
mod recovery;
mod resume;
mod subscribe;
mod user_limits;
mod users;
