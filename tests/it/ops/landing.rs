//! `GET /` on hookbox: a small page saying what this server is and where its parts are (the demo,
//! the console, the client, health and metrics), rather than an empty 404.

use crate::common;
use common::*;

async fn landing(s: &Server) -> (u16, String, String) {
    let resp = http_client()
        .get(format!("http://{}/", s.addr))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let kind = resp.headers()["content-type"].to_str().unwrap().to_owned();
    (status, kind, resp.text().await.unwrap())
}

#[tokio::test]
async fn the_root_says_what_this_is_and_where_its_parts_are() {
    let s = Server::start().await;
    let (status, kind, page) = landing(&s).await;
    assert_eq!(status, 200);
    assert!(kind.starts_with("text/html"), "{kind}");
    for part in [
        "<h1>hookbox ",
        "href=\"/admin/\"",
        "href=\"/static/hookbox.js\"",
        "href=\"/healthz\"",
        "href=\"/metrics\"",
        "start hookbox with <code>--demo</code>",
        &format!("hookbox.connect('http://127.0.0.1:{}')", s.addr.port()),
    ] {
        assert!(page.contains(part), "{part} missing from {page}");
    }
    // With the demo, the page links to it.
    let s = Server::start_with(|c| c.demo_port = Some(0)).await;
    let (_, _, page) = landing(&s).await;
    assert!(
        page.contains("Demo chat: <a href=\"http://127.0.0.1:"),
        "{page}"
    );
}
