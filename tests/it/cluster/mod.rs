//! Several nodes on Redis: sharing, failures, partitions, returning users (resume tickets, the grace period for leaving), a rolling restart, behind nginx, Redis Sentinel.

mod anywhere;
mod failure;
mod nginx;
mod nodes;
mod partition;
mod returning;
mod rolling;
mod sentinel;
