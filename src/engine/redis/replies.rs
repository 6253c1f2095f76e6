//! The scripts' answers, typed: each script's reply shape is read here, once, instead of as
//! magic numbers where it is called. A reply of another shape is an error (a script and the
//! node that runs it disagree), reported as the engine being unavailable.

use crate::engine::delivery::Snapshot;
use redis::{FromRedisValue, ParsingError, Value as RValue};

fn int(v: &RValue) -> Option<i64> {
    match v {
        RValue::Int(n) => Some(*n),
        _ => None,
    }
}

fn unexpected(script: &str, v: &RValue) -> ParsingError {
    format!("unexpected {script} reply: {v:?}").into()
}

/// A channel read in one go (`SNAPSHOT`, or `JOIN` when it joined): the raw items, read with
/// this node's history bound by [`SnapshotItems::read`].
pub(super) struct SnapshotItems(Vec<RValue>);

impl SnapshotItems {
    /// `None` if the items are not a snapshot's.
    pub fn read(&self, history_max_bytes: usize) -> Option<Snapshot> {
        super::wire::parse_snapshot(&self.0, history_max_bytes)
    }
}

/// `SNAPSHOT`: `{}` without such a channel.
pub(super) struct SnapshotReply(pub Option<SnapshotItems>);

impl FromRedisValue for SnapshotReply {
    fn from_redis_value(v: RValue) -> Result<Self, ParsingError> {
        let items: Vec<RValue> = FromRedisValue::from_redis_value(v)?;
        Ok(SnapshotReply(
            (!items.is_empty()).then_some(SnapshotItems(items)),
        ))
    }
}

/// `JOIN`.
pub(super) enum JoinReply {
    NoChannel,
    AlreadyMember,
    /// Joined: the channel as it was before the join, with the join's offset.
    Joined(SnapshotItems),
}

impl FromRedisValue for JoinReply {
    fn from_redis_value(v: RValue) -> Result<Self, ParsingError> {
        let items: Vec<RValue> = FromRedisValue::from_redis_value(v)?;
        match items.first().and_then(int) {
            Some(0) => Ok(JoinReply::NoChannel),
            Some(1) => Ok(JoinReply::AlreadyMember),
            Some(2) => Ok(JoinReply::Joined(SnapshotItems(items))),
            _ => Err(format!("unexpected JOIN reply: {items:?}").into()),
        }
    }
}

/// A number, or -1 for "no such thing": `LEAVE` (the members left; -1: not a member),
/// `PUBLISH` (the offset; -1: no channel), `USER_EVENT` (the user's connections; -1: no user).
pub(super) struct OrMissing(pub Option<u64>);

impl FromRedisValue for OrMissing {
    fn from_redis_value(v: RValue) -> Result<Self, ParsingError> {
        match int(&v) {
            Some(-1) => Ok(OrMissing(None)),
            Some(n) if n >= 0 => Ok(OrMissing(Some(n as u64))),
            _ => Err(unexpected("LEAVE or USER_EVENT", &v)),
        }
    }
}

/// `PUBLISH`.
pub(super) enum PublishReply {
    NoChannel,
    Published {
        offset: u64,
        /// An `only_to_sender` publisher that is not a member, for its own events to reach, and
        /// the connection to skip (`""`: none).
        to_sender: Option<(String, String)>,
    },
}

impl FromRedisValue for PublishReply {
    fn from_redis_value(v: RValue) -> Result<Self, ParsingError> {
        let items: Vec<RValue> = FromRedisValue::from_redis_value(v.clone())?;
        let text = |i: usize| match items.get(i) {
            Some(RValue::BulkString(b)) => Some(String::from_utf8_lossy(b).into_owned()),
            _ => None,
        };
        match items.first().and_then(int) {
            Some(-1) => Ok(PublishReply::NoChannel),
            Some(offset) if offset > 0 => {
                let (Some(sender), Some(skip)) = (text(1), text(2)) else {
                    return Err(unexpected("PUBLISH", &v));
                };
                Ok(PublishReply::Published {
                    offset: offset as u64,
                    to_sender: (!sender.is_empty()).then_some((sender, skip)),
                })
            }
            _ => Err(unexpected("PUBLISH", &v)),
        }
    }
}

/// `STATE`.
pub(super) enum StateReply {
    NoChannel,
    Unchanged,
    Changed,
}

impl FromRedisValue for StateReply {
    fn from_redis_value(v: RValue) -> Result<Self, ParsingError> {
        match int(&v) {
            Some(-1) => Ok(StateReply::NoChannel),
            Some(0) => Ok(StateReply::Unchanged),
            Some(1) => Ok(StateReply::Changed),
            _ => Err(unexpected("STATE", &v)),
        }
    }
}

/// `DESTROY`.
pub(super) enum DestroyReply {
    /// Missing, or (when only an empty channel may go) not empty.
    Kept,
    Destroyed {
        members: Vec<String>,
    },
}

impl FromRedisValue for DestroyReply {
    fn from_redis_value(v: RValue) -> Result<Self, ParsingError> {
        match v {
            RValue::Int(-1) => Ok(DestroyReply::Kept),
            other => Ok(DestroyReply::Destroyed {
                members: FromRedisValue::from_redis_value(other)?,
            }),
        }
    }
}

/// A flag, then names: `ATTACH` (created?, the user's channels) and `DETACH` (last
/// connection?, the channels it emptied).
pub(super) struct FlagAndNames {
    pub flag: bool,
    pub names: Vec<String>,
}

impl FromRedisValue for FlagAndNames {
    fn from_redis_value(v: RValue) -> Result<Self, ParsingError> {
        let mut items: Vec<RValue> = FromRedisValue::from_redis_value(v)?;
        if items.is_empty() {
            return Err("unexpected empty reply".into());
        }
        let flag = match items.remove(0) {
            RValue::Int(n @ (0 | 1)) => n == 1,
            other => return Err(unexpected("ATTACH or DETACH", &other)),
        };
        Ok(FlagAndNames {
            flag,
            names: FromRedisValue::from_redis_values(items)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read<T: FromRedisValue>(v: RValue) -> Result<T, ParsingError> {
        T::from_redis_value(v)
    }

    #[test]
    fn each_shape_is_read_and_others_are_refused() {
        assert!(matches!(
            read::<JoinReply>(RValue::Array(vec![RValue::Int(1)])),
            Ok(JoinReply::AlreadyMember)
        ));
        assert!(matches!(
            read::<JoinReply>(RValue::Array(vec![RValue::Int(0)])),
            Ok(JoinReply::NoChannel)
        ));
        assert!(read::<JoinReply>(RValue::Array(vec![RValue::Int(7)])).is_err());
        assert!(matches!(
            read::<OrMissing>(RValue::Int(-1)),
            Ok(OrMissing(None))
        ));
        assert!(matches!(
            read::<OrMissing>(RValue::Int(3)),
            Ok(OrMissing(Some(3)))
        ));
        assert!(read::<OrMissing>(RValue::Int(-2)).is_err());
        assert!(matches!(
            read::<StateReply>(RValue::Int(0)),
            Ok(StateReply::Unchanged)
        ));
        assert!(read::<StateReply>(RValue::Int(2)).is_err());
        assert!(matches!(
            read::<DestroyReply>(RValue::Int(-1)),
            Ok(DestroyReply::Kept)
        ));
        let gone = read::<DestroyReply>(RValue::Array(vec![RValue::BulkString(b"ann".to_vec())]));
        assert!(matches!(gone, Ok(DestroyReply::Destroyed { members }) if members == ["ann"]));
        let detached = read::<FlagAndNames>(RValue::Array(vec![
            RValue::Int(1),
            RValue::BulkString(b"lobby".to_vec()),
        ]))
        .unwrap();
        assert!(detached.flag);
        assert_eq!(detached.names, ["lobby"]);
        assert!(read::<FlagAndNames>(RValue::Array(vec![RValue::Int(2)])).is_err());
        assert!(read::<SnapshotReply>(RValue::Array(vec![]))
            .unwrap()
            .0
            .is_none());
    }
}
