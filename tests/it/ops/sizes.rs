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
            // 5.94 -> 5.76 KB per idle WebSocket with the writer's end awaited on its handle).
            160,
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
