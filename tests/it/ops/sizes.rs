//! The per-connection state's sizes. Every idle connection carries these (5.8 KB per idle
//! WebSocket in all, docs/BENCHMARKS.md workload A), so a field added here is memory times the
//! number of connections. The bounds are today's sizes: raise one only with a measurement.

#[test]
fn per_connection_state_stays_small() {
    let sizes = [
        (
            "Session",
            std::mem::size_of::<hookbox::session::Session>(),
            144,
        ),
        (
            "Outbox",
            std::mem::size_of::<hookbox::outbox::Outbox>(),
            // +8 for the recovery positions flag (0.1 % of an idle connection's 6.2 KB); +24
            // for its close signal held inline, which saved its own allocation (workload A:
            // 5.94 -> 5.76 KB per idle WebSocket with the writer's end awaited on its handle);
            // +40 for the first pending frame held inline, which saved the 192 bytes of queue
            // room every connection kept (workload A: 4.67 -> 4.47 KB).
            200,
        ),
        (
            "Conn",
            std::mem::size_of::<hookbox::engine::local::Conn>(),
            88,
        ),
    ];
    for (name, size, bound) in sizes {
        assert!(size <= bound, "{name} is {size} bytes (bound {bound})");
    }
}
