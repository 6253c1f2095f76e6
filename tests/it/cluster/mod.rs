//! Several nodes on Redis: sharing, failures, partitions, resume tickets, behind nginx.

mod failure;
mod nginx;
mod nodes;
mod partition;
mod resume;
