//! The bounds on what connected clients may make the server do ([`ActionLimits`]), from their
//! options: channels per user, the publish and subscribe token buckets, refused CONNECTs per
//! client address.

use super::{invalid, ConfigError, Options};
use crate::hub::limits::{ActionLimits, Rate};

/// The action limits, each option defaulting on its own to `d`'s.
pub(super) fn action_limits(o: &Options, d: ActionLimits) -> Result<ActionLimits, ConfigError> {
    let max_channels_per_user = match o.max_channels_per_user {
        None => d.max_channels_per_user,
        Some(0) => return Err(invalid("--max-channels-per-user", "must be at least 1")),
        Some(n) => n,
    };
    let failed_connects_per_address = match o.max_failed_connects_per_ip {
        None => d.failed_connects_per_address,
        Some(0) => {
            return Err(invalid(
                "--max-failed-connects-per-ip",
                "must be at least 1",
            ))
        }
        Some(n) => Rate::per_minute(n),
    };
    Ok(ActionLimits {
        max_channels_per_user,
        connection_publish: rate(
            (o.publish_rate, "--publish-rate"),
            (o.publish_burst, "--publish-burst"),
            d.connection_publish,
        )?,
        user_publish: rate(
            (o.user_publish_rate, "--user-publish-rate"),
            (o.user_publish_burst, "--user-publish-burst"),
            d.user_publish,
        )?,
        connection_subscribe: rate(
            (o.subscribe_rate, "--subscribe-rate"),
            (o.subscribe_burst, "--subscribe-burst"),
            d.connection_subscribe,
        )?,
        user_subscribe: rate(
            (o.user_subscribe_rate, "--user-subscribe-rate"),
            (o.user_subscribe_burst, "--user-subscribe-burst"),
            d.user_subscribe,
        )?,
        failed_connects_per_address,
    })
}

/// A token-bucket rate from its two options: a positive finite rate per second and a burst of
/// at least 1, each defaulting on its own.
fn rate(
    (per_second, rate_option): (Option<f64>, &'static str),
    (burst, burst_option): (Option<u32>, &'static str),
    default: Rate,
) -> Result<Rate, ConfigError> {
    let per_second = match per_second {
        None => default.per_second,
        Some(r) if r.is_finite() && r > 0.0 => r,
        Some(_) => return Err(invalid(rate_option, "must be a number above 0")),
    };
    let burst = match burst {
        None => default.burst,
        Some(0) => return Err(invalid(burst_option, "must be at least 1")),
        Some(n) => f64::from(n),
    };
    Ok(Rate { per_second, burst })
}

#[cfg(test)]
mod tests {
    use crate::config::Config;
    use crate::hub::limits::Rate;

    fn parse(args: &[&str]) -> Result<Config, crate::config::ConfigError> {
        Config::from_args(std::iter::once("hookbox").chain(args.iter().copied()))
    }

    #[test]
    fn subscribe_and_failed_connect_bounds() {
        let c = parse(&[]).unwrap().action_limits;
        // No looser than publishing.
        assert!(c.connection_subscribe.per_second <= c.connection_publish.per_second);
        assert!(c.connection_subscribe.burst <= c.connection_publish.burst);
        assert!(c.user_subscribe.per_second <= c.user_publish.per_second);
        assert!(c.user_subscribe.burst <= c.user_publish.burst);
        let c = parse(&[
            "--subscribe-rate=2",
            "--subscribe-burst=3",
            "--user-subscribe-rate=4",
            "--user-subscribe-burst=5",
            "--max-failed-connects-per-ip=6",
        ])
        .unwrap()
        .action_limits;
        let r = |per_second, burst| Rate { per_second, burst };
        assert_eq!(c.connection_subscribe, r(2.0, 3.0));
        assert_eq!(c.user_subscribe, r(4.0, 5.0));
        assert_eq!(c.failed_connects_per_address, r(0.1, 6.0));
        for bad in [
            "--subscribe-rate=0",
            "--user-subscribe-burst=0",
            "--max-failed-connects-per-ip=0",
        ] {
            assert!(parse(&[bad]).is_err(), "{bad}");
        }
    }
}
