//! Starting and stopping the server as the window does (`deskmate_server::start`): it answers on
//! a loopback port until stopped, refuses any other address, and a port in use is an error the
//! caller gets back (the Settings page shows it).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;

use deskmate_core::app::App;
use deskmate_core::paths::Paths;

fn get(addr: SocketAddr, path: &str) -> std::io::Result<String> {
    let mut stream = TcpStream::connect(addr)?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    Ok(response)
}

#[test]
fn a_started_server_answers_until_stopped_and_only_on_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let app = Arc::new(App::open(Paths::in_dir(dir.path())).unwrap());
    let server =
        deskmate_server::start(Arc::clone(&app), "127.0.0.1:0".parse().unwrap(), Vec::new())
            .unwrap();
    let addr = server.addr();
    let health = get(addr, "/health").unwrap();
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    assert!(health.contains("\"status\":\"ok\""), "{health}");
    let models = get(addr, "/v1/models").unwrap();
    assert!(models.starts_with("HTTP/1.1 401"), "no key: {models}");

    let taken = deskmate_server::start(Arc::clone(&app), addr, Vec::new());
    assert_eq!(
        taken.err().map(|e| e.kind()),
        Some(std::io::ErrorKind::AddrInUse)
    );
    let everywhere =
        deskmate_server::start(Arc::clone(&app), "0.0.0.0:0".parse().unwrap(), Vec::new());
    assert_eq!(
        everywhere.err().map(|e| e.kind()),
        Some(std::io::ErrorKind::PermissionDenied)
    );

    server.stop();
    assert!(get(addr, "/health").is_err(), "nothing listens after stop");
}
