//! The ground floor: plain facts about the network every layer above may name without
//! importing one another: how a connection reaches hookbox ([`Transport`]), address ranges and
//! host rules ([`IpRange`], [`HostRule`]).

mod addr;
mod transport;

pub use addr::{address_group, parse_hosts, parse_origins, parse_ranges, HostRule, IpRange};
pub use transport::Transport;
