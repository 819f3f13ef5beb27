//! Sequence sets that repeat one range many times, sent over a real
//! socket: the server must answer once per message, not once per range.

mod common;

use common::{TestServer, lines, message};

#[test]
fn repeated_ranges_fetch_each_message_once() {
    let server = TestServer::start();
    let mut client = server.login();
    for subject in ["one", "two", "three"] {
        assert!(client.append("INBOX", &message(subject, subject)).unwrap().is_ok());
    }
    assert!(client.command("SELECT INBOX").unwrap().is_ok());

    // About 60 KiB of `1:*,`, just under the default line_bytes_max.
    let set = vec!["1:*"; 15_000].join(",");
    let reply = client.command(&format!("FETCH {set} (UID)")).unwrap();
    assert!(reply.is_ok(), "{}", reply.tagged);
    assert_eq!(lines(&reply), vec!["* 1 FETCH (UID 1)", "* 2 FETCH (UID 2)", "* 3 FETCH (UID 3)"]);

    let reply = client.command(&format!("UID SEARCH UID {set}")).unwrap();
    assert!(reply.is_ok(), "{}", reply.tagged);
    assert_eq!(lines(&reply), vec!["* SEARCH 1 2 3"]);
}
