//! Local fake speech providers for integration tests. Each speaks its provider's documented
//! wire format on 127.0.0.1 and records what it received, so tests can assert on both sides.
//!
//! Use from an integration test with `#[path = "fakes/mod.rs"] mod fakes;`.
#![allow(dead_code)] // each test binary uses a subset

pub mod deepgram;
pub mod elevenlabs;
pub mod openai;
pub mod openai_chat;

use std::net::SocketAddr;

/// Serves `router` on an ephemeral loopback port until the test's runtime ends.
pub async fn serve(router: axum::Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind loopback");
    let addr = listener.local_addr().expect("bound socket has an address");
    tokio::spawn(async move {
        axum::serve(listener, router).await.expect("fake server runs");
    });
    addr
}

/// A loopback address nothing listens on (bound, then released).
pub async fn dead_addr() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind loopback");
    listener.local_addr().expect("bound socket has an address")
}
