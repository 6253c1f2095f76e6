//! Several nodes on Redis: sharing, failures, partitions, behind nginx.

mod failure;
mod nginx;
mod nodes;
mod partition;
