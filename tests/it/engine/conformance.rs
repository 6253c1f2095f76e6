//! The behaviour every engine must have, each test run on every engine of the run.

use super::{attach, create, engines, redis_engine, Sink};
use hookbox::engine::frames::{self, PublishBody};
use hookbox::engine::{
    Engine, Entry, Join, Joined, LeaseKind, Membership, Publication, Recipients,
};
use serde_json::{json, value::RawValue, Value};
use std::time::Duration;

/// Publishes `payload` (JSON text) to `ch` as the hub does: one frame, a history entry.
async fn publish(
    e: &Engine,
    ch: &str,
    payload: &str,
    skip: Option<&str>,
    to: Recipients<'_>,
) -> bool {
    let payload = RawValue::from_string(payload.to_owned()).unwrap();
    let body = PublishBody {
        payload: &payload,
        datetime: "2026-12-05T12:00:00",
        user: None,
    };
    let p = Publication {
        frame: frames::publish(ch, &body),
        entry: Some(Entry::new("PUBLISH", &body, "2026-12-05T12:00:00")),
        skip_conn: skip,
        to,
    };
    e.publish(ch, p).await.unwrap()
}

async fn join(e: &Engine, ch: &str, user: &str, sink: &Sink) -> Joined {
    let how = Join {
        conn: Some(&sink.conn.id),
        ..Join::default()
    };
    e.join(ch, user, how).await.unwrap()
}

#[tokio::test]
async fn every_subscriber_gets_every_publication_once_in_one_order() {
    for u in engines().await {
        let e = &u.engine;
        let (mut a, mut b) = (Sink::new("conn-a"), Sink::new("conn-b"));
        attach(e, &mut a, "alice").await;
        attach(e, &mut b, "bob").await;
        assert!(
            create(e, "room", json!({"reflective": false})).await,
            "{}",
            u.name
        );
        for (sink, user) in [(&mut a, "alice"), (&mut b, "bob")] {
            assert_eq!(
                join(e, "room", user, sink).await,
                Joined::Joined,
                "{}",
                u.name
            );
            assert_eq!(sink.expect("SUBSCRIBE").await["user"], user);
        }
        for n in 1..=3 {
            assert!(publish(e, "room", &n.to_string(), None, Recipients::Subscribers).await);
        }
        // A non-reflective channel's publisher's connection is skipped.
        assert!(publish(e, "room", "4", Some("conn-a"), Recipients::Subscribers).await);
        // only_to_sender: the user's connections only.
        assert!(publish(e, "room", "5", None, Recipients::User("bob")).await);
        assert!(publish(e, "room", "6", None, Recipients::Subscribers).await);
        for (sink, want) in [(&mut a, vec![1, 2, 3, 6]), (&mut b, vec![1, 2, 3, 4, 5, 6])] {
            for n in want {
                let got = sink.expect("PUBLISH").await;
                assert_eq!(got["payload"], n, "{}: {got}", u.name);
                assert_eq!(got["channel_name"], "room");
            }
        }
        // No channel, no publication.
        assert!(!publish(e, "nowhere", "7", None, Recipients::Subscribers).await);
    }
}

/// `only_to_sender` by a publisher that is not in the channel: every connection of the
/// publisher gets it but the one that published (the channel is not reflective), on every node,
/// whether the node receives the channel or not; nobody else does.
#[tokio::test]
async fn only_to_sender_reaches_a_publisher_outside_the_channel_on_every_node() {
    // (engine, the other node's engine: the same one without Redis).
    let mut runs: Vec<(super::Under, Option<super::Under>)> = Vec::new();
    for u in engines().await {
        if u.name == "memory" {
            runs.push((u, None));
        }
    }
    if std::env::var("HOOKBOX_TEST_REDIS_URL").is_ok() {
        let prefix = format!("sender{:016x}", rand::random::<u64>());
        runs.push((
            redis_engine(&prefix).await,
            Some(redis_engine(&prefix).await),
        ));
    }
    for (one, two) in &runs {
        let (e1, name) = (&one.engine, one.name);
        let e2 = two.as_ref().map_or(e1, |t| &t.engine);
        let mut bob = Sink::new("bob-1");
        let (mut carol_1, mut carol_2) = (Sink::new("carol-1"), Sink::new("carol-2"));
        attach(e1, &mut bob, "bob").await;
        attach(e1, &mut carol_1, "carol").await;
        // Node two has no member of the channel: it does not even listen to its events.
        attach(e2, &mut carol_2, "carol").await;
        assert!(create(e1, "room", json!({"reflective": false})).await);
        assert_eq!(join(e1, "room", "bob", &bob).await, Joined::Joined);
        bob.expect("SUBSCRIBE").await;
        let to_carol = Recipients::User("carol");
        assert!(publish(e1, "room", "1", Some("carol-1"), to_carol).await);
        assert!(publish(e2, "room", "2", None, Recipients::Subscribers).await);
        let got = carol_2.expect("PUBLISH").await;
        assert_eq!(
            (&got["payload"], &got["channel_name"]),
            (&json!(1), &json!("room")),
            "{name}"
        );
        assert_eq!(bob.expect("PUBLISH").await["payload"], 2, "{name}");
        // The publishing connection got nothing before a message sent after.
        let message = hookbox::protocol::OutFrame::new("MESSAGE", &json!({"payload": 3}));
        assert!(e1.send_to_user("carol", &message).await.unwrap());
        assert_eq!(carol_1.expect("MESSAGE").await["payload"], 3, "{name}");
        assert_eq!(carol_2.expect("MESSAGE").await["payload"], 3, "{name}");
    }
}

#[tokio::test]
async fn each_decision_is_made_once() {
    for u in engines().await {
        let e = &u.engine;
        let mut a = Sink::new("conn-a");
        attach(e, &mut a, "alice").await;
        assert!(create(e, "room", json!({})).await);
        assert!(
            !create(e, "room", json!({})).await,
            "{}: created twice",
            u.name
        );
        assert!(matches!(
            e.membership("room", "alice", None).await.unwrap(),
            Membership::NotMember(_)
        ));
        assert_eq!(join(e, "room", "alice", &a).await, Joined::Joined);
        a.expect("SUBSCRIBE").await;
        assert_eq!(
            join(e, "room", "alice", &a).await,
            Joined::AlreadyMember,
            "{}",
            u.name
        );
        assert_eq!(
            e.membership("room", "alice", None).await.unwrap(),
            Membership::Member
        );
        assert_eq!(join(e, "gone", "alice", &a).await, Joined::NoChannel);
        // Not empty: kept.
        assert!(!e.destroy_if_empty("room").await.unwrap(), "{}", u.name);
        let left = e.leave("room", "alice").await.unwrap();
        assert_eq!(
            left.map(|l| l.0),
            Some(true),
            "{}: the last member left",
            u.name
        );
        assert_eq!(a.expect("UNSUBSCRIBE").await["user"], "alice");
        assert_eq!(e.leave("room", "alice").await.unwrap().map(|l| l.0), None);
        assert!(e.destroy_if_empty("room").await.unwrap());
        assert!(
            !e.destroy_if_empty("room").await.unwrap(),
            "{}: destroyed twice",
            u.name
        );
        // The user's last connection, once; then the user goes, once.
        let detached = e.detach("alice", &a.conn).await.unwrap();
        assert!(detached.last, "{}", u.name);
        assert!(e.remove_user("alice").await.unwrap());
        assert!(
            !e.remove_user("alice").await.unwrap(),
            "{}: removed twice",
            u.name
        );
        assert!(!e.user_exists("alice").await.unwrap());
    }
}

#[tokio::test]
async fn presence_and_state_reach_the_members() {
    for u in engines().await {
        let e = &u.engine;
        let (mut a, mut b) = (Sink::new("conn-a"), Sink::new("conn-b"));
        attach(e, &mut a, "alice").await;
        attach(e, &mut b, "bob").await;
        create(
            e,
            "room",
            json!({"presenceful": true, "state": {"topic": "hi"}}),
        )
        .await;
        join(e, "room", "alice", &a).await;
        let own = a.expect("SUBSCRIBE").await;
        assert_eq!(own["presence"], json!(["alice"]), "{}: {own}", u.name);
        assert_eq!(own["state"], json!({"topic": "hi"}));
        join(e, "room", "bob", &b).await;
        assert_eq!(
            b.expect("SUBSCRIBE").await["presence"],
            json!(["alice", "bob"])
        );
        // The others see the join.
        assert_eq!(a.expect("SUBSCRIBE").await["user"], "bob", "{}", u.name);

        assert!(e.set_state("room", "topic", json!("news")).await.unwrap());
        // The same value again changes nothing and sends nothing: the next frame is the
        // next change.
        assert!(e.set_state("room", "topic", json!("news")).await.unwrap());
        assert!(e.delete_state("room", "topic").await.unwrap());
        for sink in [&mut a, &mut b] {
            let set = sink.expect("STATE_UPDATE").await;
            assert_eq!(
                set["updates"],
                json!({"topic": "news"}),
                "{}: {set}",
                u.name
            );
            let deleted = sink.expect("STATE_UPDATE").await;
            assert_eq!(
                deleted["deletes"],
                json!(["topic"]),
                "{}: {deleted}",
                u.name
            );
        }
        assert!(!e.set_state("nowhere", "k", json!(1)).await.unwrap());

        e.leave("room", "bob").await.unwrap();
        assert_eq!(b.expect("UNSUBSCRIBE").await["user"], "bob");
        assert_eq!(a.expect("UNSUBSCRIBE").await["user"], "bob", "{}", u.name);
        let members = e.members("room").await.unwrap().unwrap();
        assert_eq!(members.iter().map(|m| &**m).collect::<Vec<_>>(), ["alice"]);
    }
}

#[tokio::test]
async fn history_keeps_the_newest_within_its_size() {
    for u in engines().await {
        let e = &u.engine;
        create(e, "room", json!({"history_size": 2})).await;
        for n in 1..=3 {
            publish(e, "room", &n.to_string(), None, Recipients::Subscribers).await;
        }
        let mut a = Sink::new("conn-a");
        attach(e, &mut a, "alice").await;
        join(e, "room", "alice", &a).await;
        let own = a.expect("SUBSCRIBE").await;
        let payloads: Vec<&Value> = own["history"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| &h[1]["payload"])
            .collect();
        assert_eq!(payloads, [&json!(2), &json!(3)], "{}: {own}", u.name);
    }
}

#[tokio::test]
async fn destroying_a_channel_unsubscribes_its_members_and_a_new_one_starts_afresh() {
    for u in engines().await {
        let e = &u.engine;
        let (mut a, mut b) = (Sink::new("conn-a"), Sink::new("conn-b"));
        attach(e, &mut a, "alice").await;
        attach(e, &mut b, "bob").await;
        create(e, "room", json!({"history_size": 5})).await;
        for (sink, user) in [(&a, "alice"), (&b, "bob")] {
            join(e, "room", user, sink).await;
        }
        a.expect("SUBSCRIBE").await;
        b.expect("SUBSCRIBE").await;
        publish(e, "room", "1", None, Recipients::Subscribers).await;
        assert!(e.destroy_channel("room").await.unwrap());
        for (sink, user) in [(&mut a, "alice"), (&mut b, "bob")] {
            assert_eq!(sink.expect("PUBLISH").await["payload"], 1);
            let gone = sink.expect("UNSUBSCRIBE").await;
            assert_eq!(gone["user"], user, "{}: {gone}", u.name);
            assert_eq!(gone["channel_name"], "room");
        }
        assert!(!e.channel_exists("room").await.unwrap());
        assert!(!e.destroy_channel("room").await.unwrap(), "{}", u.name);
        // Created again: no history, no members, and it delivers again.
        assert!(create(e, "room", json!({"history_size": 5})).await);
        join(e, "room", "bob", &b).await;
        let own = b.expect("SUBSCRIBE").await;
        assert_eq!(own["history"], json!([]), "{}: {own}", u.name);
        assert_eq!(own["presence"], json!([]));
        publish(e, "room", "2", None, Recipients::Subscribers).await;
        assert_eq!(b.expect("PUBLISH").await["payload"], 2, "{}", u.name);
    }
}

/// Leases: one holder at a time per name; given back, taken by another. The memory engine is
/// one node, which holds every lease.
#[tokio::test]
async fn a_lease_has_one_holder_at_a_time() {
    for u in engines().await {
        let e = &u.engine;
        let ttl = Duration::from_secs(30);
        assert!(e.lease(LeaseKind::Poll, "room", ttl).await.unwrap());
        // Renewed by its holder.
        assert!(e.lease(LeaseKind::Poll, "room", ttl).await.unwrap());
        e.release(LeaseKind::Poll, "room").await.unwrap();
    }
    // Two Redis nodes sharing one key prefix.
    if std::env::var("HOOKBOX_TEST_REDIS_URL").is_err() {
        return;
    }
    let prefix = format!("lease{:016x}", rand::random::<u64>());
    let (one, two) = (redis_engine(&prefix).await, redis_engine(&prefix).await);
    let ttl = Duration::from_secs(30);
    assert!(one
        .engine
        .lease(LeaseKind::Create, "room", ttl)
        .await
        .unwrap());
    assert!(!two
        .engine
        .lease(LeaseKind::Create, "room", ttl)
        .await
        .unwrap());
    // Another kind or another name is another lease.
    assert!(two
        .engine
        .lease(LeaseKind::Poll, "room", ttl)
        .await
        .unwrap());
    assert!(two
        .engine
        .lease(LeaseKind::Create, "hall", ttl)
        .await
        .unwrap());
    one.engine.release(LeaseKind::Create, "room").await.unwrap();
    assert!(two
        .engine
        .lease(LeaseKind::Create, "room", ttl)
        .await
        .unwrap());
    assert!(!one
        .engine
        .lease(LeaseKind::Create, "room", ttl)
        .await
        .unwrap());
}

/// Several nodes (the Redis engine): a publication through one reaches the subscribers of the
/// other; a node that dies has its connections reaped by a survivor.
#[tokio::test]
async fn nodes_share_publications_and_a_dead_nodes_connections_are_reaped() {
    if std::env::var("HOOKBOX_TEST_REDIS_URL").is_err() {
        return;
    }
    let prefix = format!("nodes{:016x}", rand::random::<u64>());
    let one = redis_engine(&prefix).await;
    let two = redis_engine(&prefix).await;
    let mut reaped = two.engine.take_reaped().expect("a node's reaper");
    let (mut a, mut b) = (Sink::new("conn-a"), Sink::new("conn-b"));
    attach(&one.engine, &mut a, "alice").await;
    attach(&two.engine, &mut b, "bob").await;
    create(&one.engine, "room", json!({})).await;
    join(&one.engine, "room", "alice", &a).await;
    join(&two.engine, "room", "bob", &b).await;
    a.expect("SUBSCRIBE").await;
    b.expect("SUBSCRIBE").await;
    publish(&two.engine, "room", "1", None, Recipients::Subscribers).await;
    publish(&one.engine, "room", "2", None, Recipients::Subscribers).await;
    for sink in [&mut a, &mut b] {
        assert_eq!(sink.expect("PUBLISH").await["payload"], 1);
        assert_eq!(sink.expect("PUBLISH").await["payload"], 2);
    }
    // Node one dies (its heartbeat stops); node two's reaper finds alice's connection.
    drop(one);
    let found = tokio::time::timeout(crate::common::GUARD * 3, reaped.recv())
        .await
        .expect("the dead node's connection was never reaped")
        .unwrap();
    match found {
        hookbox::engine::Reaped::Connection(conn, user) => {
            assert_eq!(&*conn.id, "conn-a");
            assert_eq!(&*user, "alice");
        }
        other => panic!("reaped {other:?}"),
    }
}
