//! The local index, fed by hand-made events as any broker would feed it.

use super::{Event, Followup, Kind, LocalIndex, Snapshot, UserEvent};
use crate::engine::frames;
use crate::engine::history::History;
use crate::engine::{Conn, User};
use crate::net::Transport;
use crate::outbox::Outbox;
use crate::protocol::{OutFrame, Position};
use serde_json::Value;
use std::sync::Arc;

fn conn(id: &str) -> Arc<Conn> {
    Arc::new(Conn {
        id: Arc::from(id),
        cookie: String::new(),
        remote_addr: String::new(),
        outbox: Arc::new(Outbox::new(1 << 20)),
        transport: Transport::WebSocket,
        since_ms: 0,
    })
}

/// Hands `index` a publication of `payload` at `offset` in `epoch` of "room", as a broker
/// would.
fn publish(index: &LocalIndex, epoch: &str, offset: u64, payload: u64) -> Option<Followup> {
    let frame = OutFrame::new("PUBLISH", &serde_json::json!({"payload": payload}));
    let kind = Kind::Publish {
        skip_conn: String::new(),
        to: "*".into(),
    };
    event_in(index, epoch, offset, kind, &frame)
}

/// The frame names and payloads in `conn`'s outbox.
fn drained(conn: &Conn) -> Vec<(String, Value)> {
    let data = conn.outbox.drain().data;
    String::from_utf8(data)
        .unwrap()
        .split_terminator("\r\n")
        .map(|line| {
            let v: Value = serde_json::from_str(line).unwrap();
            (v[1].as_str().unwrap().to_owned(), v[2]["payload"].clone())
        })
        .collect()
}

fn snapshot(epoch: &str, offset: u64) -> Snapshot {
    Snapshot {
        epoch: epoch.into(),
        offset,
        floor: 0,
        settings: Default::default(),
        history: History::default(),
        state: Default::default(),
        members: vec!["ann".into()],
    }
}

#[test]
fn a_joining_connection_gets_its_subscribe_then_only_newer_events_once_and_gaps_are_seen() {
    let index = LocalIndex::new(Arc::from("node"));
    let ann = Arc::new(User::new(Arc::from("ann")));
    let c = conn("c1");
    ann.state.lock().conns.push(c.clone());
    let (added, new) = index.begin_catch_up("room", &ann, std::slice::from_ref(&c));
    assert!(new);
    // Events arriving before the snapshot is known wait in the slot.
    assert!(publish(&index, "e1", 5, 5).is_none());
    assert!(publish(&index, "e1", 6, 6).is_none());
    assert!(drained(&c).is_empty());
    // The snapshot is at 5: its own SUBSCRIBE, then only 6.
    index.finish_catch_up("room", &ann, &added, &snapshot("e1", 5).view(), None);
    let got = drained(&c);
    assert_eq!(got[0].0, "SUBSCRIBE");
    assert_eq!(got[1..], [("PUBLISH".into(), Value::from(6))]);
    // A repeated offset is not delivered again.
    assert!(publish(&index, "e1", 6, 6).is_none());
    assert!(drained(&c).is_empty());
    // A gap: the event is delivered and the channel is to be checked.
    let followup = publish(&index, "e1", 9, 9);
    assert!(matches!(followup, Some(Followup::Lost(ch)) if ch == "room"));
    assert_eq!(drained(&c), [("PUBLISH".into(), Value::from(9))]);
    assert_eq!(index.position("room"), Some((Some("e1".into()), 9)));
    // Another epoch: the channel was destroyed and created again unseen. Its members here
    // are members no more: their UNSUBSCRIBE, and the channel is dropped here.
    let followup = publish(&index, "e2", 1, 1);
    assert!(matches!(followup, Some(Followup::Unsubscribe(ch)) if ch == "room"));
    assert_eq!(drained(&c)[0].0, "UNSUBSCRIBE");
    assert!(!index.has_channel("room"));
}

#[test]
fn a_master_that_is_behind_rewinds_the_channel_so_new_events_are_delivered() {
    let index = LocalIndex::new(Arc::from("node"));
    let ann = Arc::new(User::new(Arc::from("ann")));
    let c = conn("c3");
    let (added, _) = index.begin_catch_up("room", &ann, std::slice::from_ref(&c));
    index.finish_catch_up("room", &ann, &added, &snapshot("e1", 3).view(), None);
    publish(&index, "e1", 4, 4);
    publish(&index, "e1", 5, 5);
    drained(&c);
    // The new master has the channel at 4 (5 was not replicated): 5 is given again.
    assert!(!index.rewind("room", &snapshot("e1", 5)));
    assert!(index.rewind("room", &snapshot("e1", 4)));
    publish(&index, "e1", 5, 50);
    assert_eq!(drained(&c), [("PUBLISH".into(), Value::from(50))]);
    // Another epoch is a replaced channel, not a rewind.
    assert!(!index.rewind("room", &snapshot("e2", 1)));
}

#[test]
fn a_reconcile_drops_members_the_snapshot_lacks() {
    let index = LocalIndex::new(Arc::from("node"));
    let bob = Arc::new(User::new(Arc::from("bob")));
    let c = conn("c2");
    bob.state.lock().conns.push(c.clone());
    let (added, _) = index.begin_catch_up("room", &bob, std::slice::from_ref(&c));
    index.finish_catch_up("room", &bob, &added, &snapshot("e1", 3).view(), None);
    drained(&c);
    // bob's leave was among lost events: the snapshot has only ann.
    assert!(index.reconcile("room", Some(&snapshot("e1", 4))));
    assert_eq!(drained(&c)[0].0, "UNSUBSCRIBE");
    assert!(!index.has_channel("room"));
}

/// A user with connections `ids`, known to `index`, its connections in "room" from
/// offset 3 of epoch "e1".
fn member_of_room(index: &LocalIndex, name: &str, ids: &[&str]) -> (Arc<User>, Vec<Arc<Conn>>) {
    let user = Arc::new(User::new(Arc::from(name)));
    let conns: Vec<Arc<Conn>> = ids.iter().map(|id| conn(id)).collect();
    {
        let mut st = user.state.lock();
        st.conns.extend(conns.iter().cloned());
        st.record(&Arc::from("room"), None);
    }
    index.users.lock().insert(user.name.clone(), user.clone());
    let (added, _) = index.begin_catch_up("room", &user, &conns);
    index.finish_catch_up("room", &user, &added, &snapshot("e1", 3).view(), None);
    for c in &conns {
        assert_eq!(drained(c)[0].0, "SUBSCRIBE");
    }
    (user, conns)
}

/// Hands `index` an event of "room" at `offset` of epoch "e1" with `frame`.
fn event(index: &LocalIndex, offset: u64, kind: Kind, frame: &OutFrame) -> Option<Followup> {
    event_in(index, "e1", offset, kind, frame)
}

/// Hands `index` an event of "room" at `offset` of `epoch` with `frame`, as a broker would.
fn event_in(
    index: &LocalIndex,
    epoch: &str,
    offset: u64,
    kind: Kind,
    frame: &OutFrame,
) -> Option<Followup> {
    let ev = Event {
        epoch: epoch.into(),
        offset,
        kind,
        frame: Some(frame.clone()),
    };
    index.on_channel_event("room", ev)
}

#[test]
fn a_recovery_keeps_what_arrives_until_its_answer_or_its_cancellation() {
    let index = LocalIndex::new(Arc::from("node"));
    let (ann, conns) = member_of_room(&index, "ann", &["c1"]);
    let c = &conns[0];
    let pos = Position {
        epoch: "e1".into(),
        offset: 3,
    };
    assert_eq!(index.request_recovery("room", "ann", c, &pos), Some(true));
    // A second request while the first waits: its answer will carry it.
    assert_eq!(index.request_recovery("room", "ann", c, &pos), Some(false));
    publish(&index, "e1", 4, 4);
    assert!(drained(c).is_empty(), "kept until the recovery's answer");
    index.finish_catch_up(
        "room",
        &ann,
        std::slice::from_ref(c),
        &snapshot("e1", 3).view(),
        None,
    );
    let got = drained(c);
    assert_eq!(got[0].0, "SUBSCRIBE");
    assert_eq!(got[1..], [("PUBLISH".into(), Value::from(4))]);
    // Cancelled: what was kept meanwhile is delivered, and delivery goes on.
    assert_eq!(index.request_recovery("room", "ann", c, &pos), Some(true));
    publish(&index, "e1", 5, 5);
    index.cancel_recovery("room", "ann", c);
    publish(&index, "e1", 6, 6);
    let got = drained(c);
    assert_eq!(
        got,
        [
            ("PUBLISH".into(), Value::from(5)),
            ("PUBLISH".into(), Value::from(6))
        ]
    );
    // No slot, no recovery.
    assert_eq!(index.request_recovery("room", "bob", c, &pos), None);
}

#[test]
fn per_connection_subscriptions_deliver_only_to_the_recorded_connections() {
    let index = LocalIndex::new(Arc::from("node"));
    let (ann, conns) = member_of_room(&index, "ann", &["c1", "c2"]);
    {
        let mut st = ann.state.lock();
        st.options.per_connection_subscriptions = true;
        st.channels.clear();
        st.record(&Arc::from("room"), Some(&conns[0].id));
    }
    publish(&index, "e1", 4, 4);
    assert_eq!(drained(&conns[0]), [("PUBLISH".into(), Value::from(4))]);
    assert!(drained(&conns[1]).is_empty());
    // A skipped connection (a non-reflective channel's publisher) gets nothing either.
    let frame = OutFrame::new("PUBLISH", &serde_json::json!({"payload": 5}));
    let kind = Kind::Publish {
        skip_conn: "c1".into(),
        to: "*".into(),
    };
    event(&index, 5, kind, &frame);
    assert!(drained(&conns[0]).is_empty());
}

#[test]
fn a_leave_and_a_destroy_unsubscribe_the_members_and_drop_the_channel() {
    let index = LocalIndex::new(Arc::from("node"));
    let (_ann, ann_conns) = member_of_room(&index, "ann", &["c1"]);
    let (bob, bob_conns) = member_of_room(&index, "bob", &["c2"]);
    // bob leaves a presence channel: ann sees it, bob gets his own UNSUBSCRIBE.
    let frame = frames::membership("UNSUBSCRIBE", "room", "bob", "t");
    let kind = Kind::Leave {
        user: "bob".into(),
        presence: true,
    };
    assert!(event(&index, 4, kind, &frame).is_none());
    assert_eq!(drained(&ann_conns[0])[0].0, "UNSUBSCRIBE");
    assert_eq!(drained(&bob_conns[0])[0].0, "UNSUBSCRIBE");
    assert!(!bob.state.lock().channels.contains_key("room"));
    // The channel is destroyed: ann's UNSUBSCRIBE, and nothing is left here.
    let followup = event(
        &index,
        5,
        Kind::Destroy { stamp: "t".into() },
        &OutFrame::new("UNUSED", &serde_json::json!({})),
    );
    assert!(matches!(followup, Some(Followup::Unsubscribe(ch)) if ch == "room"));
    assert_eq!(drained(&ann_conns[0])[0].0, "UNSUBSCRIBE");
    assert!(!index.has_channel("room"));
}

#[test]
fn a_closed_connection_gives_up_its_slots() {
    let index = LocalIndex::new(Arc::from("node"));
    let (ann, conns) = member_of_room(&index, "ann", &["c1", "c2"]);
    assert!(index.drop_connection(&ann, &conns[0]).is_empty());
    publish(&index, "e1", 4, 4);
    assert!(drained(&conns[0]).is_empty());
    assert_eq!(drained(&conns[1]), [("PUBLISH".into(), Value::from(4))]);
    assert_eq!(index.drop_connection(&ann, &conns[1]), ["room"]);
    assert!(!index.has_channel("room"));
}

#[test]
fn user_events_reach_the_users_connections_here() {
    let index = LocalIndex::new(Arc::from("node"));
    let (ann, conns) = member_of_room(&index, "ann", &["c1"]);
    let message = OutFrame::new("MESSAGE", &serde_json::json!({"payload": 1}));
    assert!(index
        .on_user_event("ann", UserEvent::Frame(message))
        .is_none());
    assert_eq!(drained(&conns[0]), [("MESSAGE".into(), Value::from(1))]);
    // A join this node made needs nothing; one made elsewhere is caught up with.
    let joined = |node: &str| UserEvent::Joined {
        channel: "lobby".into(),
        node: node.into(),
    };
    assert!(index.on_user_event("ann", joined("node")).is_none());
    assert!(matches!(
        index.on_user_event("ann", joined("other")),
        Some(Followup::CatchUp { channel, .. }) if channel == "lobby"
    ));
    // An only_to_sender publication of a channel the user joined since it was made: a slot
    // still catching up keeps it, one whose own SUBSCRIBE showed it skips it, other
    // connections get it, the skipped one does not.
    let c3 = conn("c3");
    ann.state.lock().conns.push(c3.clone());
    let publication = |offset: u64, skip: Option<&str>| UserEvent::Publication {
        channel: "room".into(),
        frame: OutFrame::new("PUBLISH", &serde_json::json!({"payload": offset})).at_offset(offset),
        skip_conn: skip.map(str::to_owned),
    };
    index.on_user_event("ann", publication(3, Some("c3")));
    assert!(
        drained(&conns[0]).is_empty(),
        "in its own SUBSCRIBE already"
    );
    assert!(drained(&c3).is_empty(), "the publishing connection");
    index.on_user_event("ann", publication(4, None));
    assert_eq!(drained(&conns[0]), [("PUBLISH".into(), Value::from(4))]);
    assert_eq!(drained(&c3), [("PUBLISH".into(), Value::from(4))]);
    let c4 = conn("c4");
    ann.state.lock().conns.push(c4.clone());
    let (added, _) = index.begin_catch_up("room", &ann, std::slice::from_ref(&c4));
    index.on_user_event("ann", publication(5, Some("c3")));
    index.on_user_event("ann", publication(6, Some("c3")));
    assert!(drained(&c4).is_empty(), "kept while catching up");
    index.finish_catch_up("room", &ann, &added, &snapshot("e1", 5).view(), None);
    let got = drained(&c4);
    assert_eq!(got[0].0, "SUBSCRIBE");
    assert_eq!(got[1..], [("PUBLISH".into(), Value::from(6))]);
    let live = [5, 6].map(|n| ("PUBLISH".to_owned(), Value::from(n)));
    assert_eq!(drained(&conns[0]), live);
    // Unknown users are nobody's business here.
    assert!(index.on_user_event("zed", joined("other")).is_none());
    index.on_user_event("ann", UserEvent::Kick);
    assert!(conns[0].outbox.is_closed());
}
