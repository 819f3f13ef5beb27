//! UserDb against real passwd-files in temporary directories: known-answer
//! hashes from real tools, reloads after outside edits, and the editing
//! commands.

use std::fs;
use std::path::Path;
use std::time::Duration;

use roost_auth::{AuthError, Secret, UserDb, UserDbOptions};

/// Options that check the file on every lookup, so reload tests need no
/// sleeping.
fn checking_every_lookup() -> UserDbOptions {
    UserDbOptions {
        reload_interval: Duration::ZERO,
        ..UserDbOptions::default()
    }
}

fn write_users(data_dir: &Path, text: &str) {
    fs::write(data_dir.join("users"), text).unwrap();
}

/// Hashes of the password `secret`, each made by the command in its comment
/// with Dovecot 2.3's `doveadm pw` or Python 3.11's `crypt` module (glibc
/// libxcrypt).
const KNOWN_ANSWERS: &[(&str, &str)] = &[
    // doveadm pw -s SHA512-CRYPT -p secret
    (
        "sha512crypt",
        "{SHA512-CRYPT}$6$i4RxgobiSn.vUzwI$OX8DwwYm73oUofu80wU7qEhCQTf7jr.aSUtMYPdjWlNyYEAS5rn0ccAvx2nX7hy/0oF8EQdCpn6867zF2/pbV.",
    ),
    // doveadm pw -s SHA512-CRYPT -r 10000 -p secret
    (
        "sha512crypt_rounds",
        "{SHA512-CRYPT}$6$rounds=10000$Lug4DvR3zCfWmlsH$uQO4p8BAXHP2ocOh33UJ.QrfYna0KTyQSi5L1arFZccxBOhvWf.OoWvQILM7BRghoCg22p/5ZzwGJTt5Qx3YJ0",
    ),
    // doveadm pw -s SHA256-CRYPT -p secret
    (
        "sha256crypt",
        "{SHA256-CRYPT}$5$8ryIc8v9LTPaCkHi$.LWnGPkY.TVFuoOhO4aykWFRFtIddJyZ9Jbx1kX1mCC",
    ),
    // doveadm pw -s BLF-CRYPT -p secret
    (
        "bcrypt_2y",
        "{BLF-CRYPT}$2y$05$aIvWex47M0Up9Hujygecteki7YOu94aeEyuts4zvGmW.8Ht3pRrFy",
    ),
    // python3 -c "import crypt; print(crypt.crypt('secret', '\$2b\$05\$abcdefghijklmnopqrstuv'))"
    (
        "bcrypt_2b",
        "{BLF-CRYPT}$2b$05$abcdefghijklmnopqrstuuOQiyCxlgf/oeuTqixKmWdcYUh4Hjl0a",
    ),
    // python3 -c "import crypt; print(crypt.crypt('secret', '\$2a\$05\$abcdefghijklmnopqrstuv'))"
    (
        "bcrypt_2a",
        "{BLF-CRYPT}$2a$05$abcdefghijklmnopqrstuuOQiyCxlgf/oeuTqixKmWdcYUh4Hjl0a",
    ),
    // doveadm pw -s ARGON2ID -p secret
    (
        "argon2id",
        "{ARGON2ID}$argon2id$v=19$m=65536,t=3,p=1$2n4gfwqRt2Qj5u+YmXwg7A$D83WyRVsFjp7ZixZRyqoLJR1GKLTil1h+Lv93dKIQaQ",
    ),
    // doveadm pw -s ARGON2I -p secret
    (
        "argon2i",
        "{ARGON2I}$argon2i$v=19$m=32768,t=4,p=1$gDe9CwS/IWp1/lSx2YXDow$+WPcNCVLlz7RLllFAPwTqXx+CeLxtHe5CxMsepeJWh0",
    ),
    // doveadm pw -s SSHA -p secret
    ("ssha", "{SSHA}ZxUBfVpmpB4ji/bYx82KgybuiB+vzO+Q"),
    // doveadm pw -s SSHA256 -p secret
    (
        "ssha256",
        "{SSHA256}NUmpo7GPYc/tYML0CKRDOdwQpzy0eIZ1QiQm+3jaJSPz9xOp",
    ),
    // doveadm pw -s SSHA512 -p secret
    (
        "ssha512",
        "{SSHA512}CpzDzYL2NsS7SimRDJeNPJSJMc01Bll63KJsdBmelP5/aaAJ0XnjtxIR7HqX5OdOOgo8FnFfqhE9wW0/XETwQnO4T4I=",
    ),
    // doveadm pw -s SHA -p secret
    ("sha", "{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ="),
    // doveadm pw -s SHA1 -p secret
    ("sha1", "{SHA1}5en6G6MezRroT3XKqkdPOmY/BfQ="),
    // doveadm pw -s SHA256 -p secret
    (
        "sha256",
        "{SHA256}K7gNU3sdo+OL0wNhqoVWhr3g6s1xYv72ol/pe/Unols=",
    ),
    // doveadm pw -s SHA512 -p secret
    (
        "sha512",
        "{SHA512}vSsar3708Jvp9Szi2NWZZ02Bqp1qRCFpbcTZPdBhnWgs5WtNZKnvCXdhztmeD2cmW192CF5bDufKRpayrW/isg==",
    ),
    // doveadm pw -s SHA256.HEX -p secret
    (
        "sha256_hex",
        "{SHA256.HEX}2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b",
    ),
    // doveadm pw -s SSHA.HEX -p secret
    (
        "ssha_hex",
        "{SSHA.HEX}4c875b4c394a2fd5c515165930ca5d8f4d97740a6100980f",
    ),
    // doveadm pw -s PLAIN -p secret
    ("plain", "{PLAIN}secret"),
    // doveadm pw -s CLEARTEXT -p secret
    ("cleartext", "{CLEARTEXT}secret"),
    // doveadm pw -s CRYPT -p secret (Dovecot picks bcrypt)
    (
        "crypt_bcrypt",
        "{CRYPT}$2y$05$QIWlPQP5zt/UtuZBm6EDwupcmUEh6SgYsPKFc3cHkYRuTFzgKpXTu",
    ),
    // python3 -c "import crypt; print(crypt.crypt('secret', '\$6\$saltsalt'))"
    (
        "crypt_sha512",
        "{CRYPT}$6$saltsalt$TVLlQcbpFVof5W3Yz4DTP6gRstiNuHwwTt6GLc1E5n0U0aDehy0S5knV8wiOQSpT0Y77vwPZN.Pq.H91p5hVO1",
    ),
    // doveadm pw -s SHA256-CRYPT -p secret, stored without a scheme prefix
    (
        "bare_sha256crypt",
        "$5$8ryIc8v9LTPaCkHi$.LWnGPkY.TVFuoOhO4aykWFRFtIddJyZ9Jbx1kX1mCC",
    ),
    // Lower-case scheme names are accepted, as in Dovecot.
    (
        "lowercase_scheme",
        "{ssha256}NUmpo7GPYc/tYML0CKRDOdwQpzy0eIZ1QiQm+3jaJSPz9xOp",
    ),
];

#[test]
fn known_answer_hashes_verify() {
    let data_dir = tempfile::tempdir().unwrap();
    let mut text = String::new();
    for (user, field) in KNOWN_ANSWERS {
        text.push_str(&format!("{user}:{field}:1000:1000::/home/{user}::\n"));
    }
    write_users(data_dir.path(), &text);
    let db = UserDb::open(data_dir.path()).unwrap();

    for (user, _) in KNOWN_ANSWERS {
        let right = db.verify(user, &Secret::from("secret"));
        assert!(right.is_ok(), "{user}: right password failed: {right:?}");

        let wrong = db.verify(user, &Secret::from("Secret"));
        assert!(
            matches!(wrong, Err(AuthError::PasswordMismatch(ref name)) if name == user),
            "{user}: wrong password gave {wrong:?}"
        );

        let empty = db.verify(user, &Secret::from(""));
        assert!(empty.is_err(), "{user}: empty password accepted");
    }
}

#[test]
fn unsupported_scheme_fails_login() {
    let data_dir = tempfile::tempdir().unwrap();
    // doveadm pw -s MD5-CRYPT -p secret
    write_users(
        data_dir.path(),
        "md5:{MD5-CRYPT}$1$js4H2kxl$HuTaQCq7CMEIfrDGWqb981\nbare_md5:$1$js4H2kxl$HuTaQCq7CMEIfrDGWqb981\nrot:{ROT13}frperg\n",
    );
    let db = UserDb::open(data_dir.path()).unwrap();

    let cases = [
        ("md5", "MD5-CRYPT"),
        ("bare_md5", "MD5-CRYPT"),
        ("rot", "ROT13"),
    ];
    for (user, expected_scheme) in cases {
        match db.verify(user, &Secret::from("secret")) {
            Err(AuthError::UnsupportedScheme { scheme, .. }) => {
                assert_eq!(scheme, expected_scheme, "{user}")
            }
            other => panic!("{user}: expected an unsupported scheme error, got {other:?}"),
        }
    }
}

#[test]
fn malformed_hash_fails_login() {
    let data_dir = tempfile::tempdir().unwrap();
    write_users(
        data_dir.path(),
        "a:{SHA256}not*base64\nb:{SHA256}c2hvcnQ=\nc:{SHA512-CRYPT}$5$salt$x\nd:{ARGON2ID}$argon2i$v=19$m=32768,t=4,p=1$gDe9CwS/IWp1/lSx2YXDow$+WPcNCVLlz7RLllFAPwTqXx+CeLxtHe5CxMsepeJWh0\ne:{SSHA}5en6G6MezRroT3XKqkdPOmY/BfQ=\n",
    );
    let db = UserDb::open(data_dir.path()).unwrap();

    for user in ["a", "b", "c", "d", "e"] {
        let result = db.verify(user, &Secret::from("secret"));
        assert!(
            matches!(result, Err(AuthError::MalformedHash { .. })),
            "{user}: {result:?}"
        );
    }
}

#[test]
fn unknown_user_fails_login() {
    let data_dir = tempfile::tempdir().unwrap();
    write_users(data_dir.path(), "alice:{PLAIN}secret\n");
    let db = UserDb::open(data_dir.path()).unwrap();

    let result = db.verify("bob", &Secret::from("secret"));

    assert!(
        matches!(result, Err(AuthError::UserNotFound(ref name)) if name == "bob"),
        "{result:?}"
    );
    assert!(result.unwrap_err().is_rejected_login());
}

#[test]
fn password_length_limit() {
    let data_dir = tempfile::tempdir().unwrap();
    let options = UserDbOptions {
        password_bytes_max: 16,
        ..checking_every_lookup()
    };
    let at_limit = "p".repeat(16);
    let past_limit = "p".repeat(17);
    write_users(
        data_dir.path(),
        &format!("alice:{{PLAIN}}{at_limit}\nbob:{{PLAIN}}{past_limit}\n"),
    );
    let db = UserDb::open_with_options(data_dir.path(), options).unwrap();

    assert!(db.verify("alice", &Secret::from(at_limit.as_str())).is_ok());
    let result = db.verify("bob", &Secret::from(past_limit.as_str()));
    assert!(
        matches!(
            result,
            Err(AuthError::PasswordTooLong {
                len: 17,
                max: 16,
                ..
            })
        ),
        "{result:?}"
    );

    assert!(db.add("carol", &Secret::from(at_limit.as_str())).is_ok());
    let result = db.add("dave", &Secret::from(past_limit.as_str()));
    assert!(
        matches!(result, Err(AuthError::PasswordTooLong { .. })),
        "{result:?}"
    );
    assert!(!db.exists("dave"));
}

#[test]
fn missing_file_is_empty_database() {
    let data_dir = tempfile::tempdir().unwrap();
    let db = UserDb::open(&data_dir.path().join("not-yet-created")).unwrap();

    assert!(db.is_empty());
    assert!(db.list().is_empty());
    assert!(!db.exists("alice"));
}

#[test]
fn outside_edits_are_reloaded() {
    let data_dir = tempfile::tempdir().unwrap();
    write_users(data_dir.path(), "alice:{PLAIN}one\n");
    let db = UserDb::open_with_options(data_dir.path(), checking_every_lookup()).unwrap();
    assert!(db.verify("alice", &Secret::from("one")).is_ok());

    // Same inode, same size: only the modification time and content change.
    write_users(data_dir.path(), "alice:{PLAIN}two\n");
    let later = std::time::SystemTime::now() + Duration::from_secs(5);
    fs::File::options()
        .write(true)
        .open(data_dir.path().join("users"))
        .unwrap()
        .set_modified(later)
        .unwrap();
    assert!(
        db.verify("alice", &Secret::from("two")).is_ok(),
        "changed password not seen"
    );

    // A new file renamed over the old one, as editors and our own edits do.
    let replacement = data_dir.path().join("users.new");
    fs::write(&replacement, "bob:{PLAIN}three\n").unwrap();
    fs::rename(&replacement, data_dir.path().join("users")).unwrap();
    assert!(db.exists("bob"), "added user not seen");
    assert!(!db.exists("alice"), "deleted user still seen");

    fs::remove_file(data_dir.path().join("users")).unwrap();
    assert!(db.is_empty(), "removed file still has users");
}

#[test]
fn reload_waits_for_interval() {
    let data_dir = tempfile::tempdir().unwrap();
    write_users(data_dir.path(), "alice:{PLAIN}one\n");
    let options = UserDbOptions {
        reload_interval: Duration::from_secs(3600),
        ..UserDbOptions::default()
    };
    let db = UserDb::open_with_options(data_dir.path(), options).unwrap();

    write_users(data_dir.path(), "bob:{PLAIN}two\n");

    // Within the interval the loaded users stay; the check is not due.
    assert!(db.exists("alice"));
    assert!(!db.exists("bob"));
}

#[test]
fn broken_lines_skipped_on_load() {
    let data_dir = tempfile::tempdir().unwrap();
    write_users(
        data_dir.path(),
        "# comment\n\nalice:{PLAIN}a\nno separator\n:{PLAIN}nameless\nbob:\nalice:{PLAIN}again\ncarol:{PLAIN}c\n",
    );
    let db = UserDb::open(data_dir.path()).unwrap();

    assert_eq!(db.list(), vec!["alice".to_owned(), "carol".to_owned()]);
    assert!(
        db.verify("alice", &Secret::from("a")).is_ok(),
        "first line must win"
    );
}

#[test]
fn add_passwd_delete_cycle() {
    let data_dir = tempfile::tempdir().unwrap();
    let db = UserDb::open(data_dir.path()).unwrap();

    db.add("alice", &Secret::from("first")).unwrap();
    assert!(db.exists("alice"));
    assert!(db.verify("alice", &Secret::from("first")).is_ok());
    let text = fs::read_to_string(data_dir.path().join("users")).unwrap();
    assert!(
        text.starts_with("alice:{ARGON2ID}$argon2id$v=19$"),
        "{text}"
    );
    assert!(!text.contains("first"));

    let again = db.add("alice", &Secret::from("other"));
    assert!(matches!(again, Err(AuthError::UserExists(_))), "{again:?}");

    db.set_password("alice", &Secret::from("second")).unwrap();
    assert!(db.verify("alice", &Secret::from("first")).is_err());
    assert!(db.verify("alice", &Secret::from("second")).is_ok());

    db.delete("alice").unwrap();
    assert!(!db.exists("alice"));
    assert!(matches!(
        db.delete("alice"),
        Err(AuthError::UserNotFound(_))
    ));
    assert!(matches!(
        db.set_password("alice", &Secret::from("x")),
        Err(AuthError::UserNotFound(_))
    ));
}

#[test]
fn edits_reject_bad_input() {
    let data_dir = tempfile::tempdir().unwrap();
    let db = UserDb::open(data_dir.path()).unwrap();

    assert!(matches!(
        db.add("alice", &Secret::from("")),
        Err(AuthError::EmptyPassword)
    ));
    for name in ["", "a:b", "a b", "a\nb", "#a"] {
        let result = db.add(name, &Secret::from("pw"));
        assert!(
            matches!(result, Err(AuthError::InvalidUserName { .. })),
            "{name:?}: {result:?}"
        );
    }
    assert!(
        !data_dir.path().join("users").exists(),
        "a rejected edit wrote the file"
    );
}

#[test]
fn edits_keep_comments_and_fields() {
    let data_dir = tempfile::tempdir().unwrap();
    let original = "# Staff\nalice:{PLAIN}a:1000:1000:Alice:/home/alice::userdb_quota_rule=*:storage=1G\n\nbob:{PLAIN}b\n";
    write_users(data_dir.path(), original);
    let db = UserDb::open(data_dir.path()).unwrap();

    db.set_password("alice", &Secret::from("new")).unwrap();
    db.delete("bob").unwrap();

    let text = fs::read_to_string(data_dir.path().join("users")).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "# Staff");
    assert!(
        lines[1].starts_with("alice:{ARGON2ID}$argon2id$"),
        "{}",
        lines[1]
    );
    assert!(
        lines[1].ends_with(":1000:1000:Alice:/home/alice::userdb_quota_rule=*:storage=1G"),
        "{}",
        lines[1]
    );
    assert_eq!(lines[2], "");
    assert_eq!(lines.len(), 3);
}

#[test]
fn new_file_is_owner_only() {
    use std::os::unix::fs::PermissionsExt;

    let data_dir = tempfile::tempdir().unwrap();
    let db = UserDb::open(data_dir.path()).unwrap();
    db.add("alice", &Secret::from("pw")).unwrap();

    let mode = fs::metadata(data_dir.path().join("users"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn import_mixed_lines() {
    let data_dir = tempfile::tempdir().unwrap();
    write_users(
        data_dir.path(),
        "# kept\nexisting:{PLAIN}old:500:500::/home/existing\n",
    );
    let db = UserDb::open(data_dir.path()).unwrap();

    let input = concat!(
        "# migrated from the old server\n",
        "plain:{PLAIN}secret\n",
        "sha:{SHA512-CRYPT}$6$i4RxgobiSn.vUzwI$OX8DwwYm73oUofu80wU7qEhCQTf7jr.aSUtMYPdjWlNyYEAS5rn0ccAvx2nX7hy/0oF8EQdCpn6867zF2/pbV.:1000:1000\n",
        "barecrypt:$6$saltsalt$TVLlQcbpFVof5W3Yz4DTP6gRstiNuHwwTt6GLc1E5n0U0aDehy0S5knV8wiOQSpT0Y77vwPZN.Pq.H91p5hVO1\r\n",
        "cleartext:secret\n",
        "existing:{PLAIN}secret\n",
    );
    let summary = db.import(input).unwrap();

    assert_eq!(summary.added, 4);
    assert_eq!(summary.updated, 1);
    assert_eq!(summary.names, ["plain", "sha", "barecrypt", "cleartext", "existing"]);
    for user in ["plain", "sha", "barecrypt", "cleartext", "existing"] {
        assert!(db.verify(user, &Secret::from("secret")).is_ok(), "{user}");
    }
    let text = fs::read_to_string(data_dir.path().join("users")).unwrap();
    assert!(
        text.starts_with("# kept\nexisting:{PLAIN}secret:500:500::/home/existing\n"),
        "{text}"
    );
    assert!(text.contains("\ncleartext:{ARGON2ID}$argon2id$"), "{text}");
    assert!(!text.contains("cleartext:secret"), "{text}");
}

#[test]
fn import_rejects_whole_input() {
    let data_dir = tempfile::tempdir().unwrap();
    let db = UserDb::open(data_dir.path()).unwrap();

    let cases = [
        (
            "good:{PLAIN}x\nmd5:{MD5-CRYPT}$1$js4H2kxl$HuTaQCq7CMEIfrDGWqb981\n",
            2,
            "unsupported password scheme MD5-CRYPT",
        ),
        (
            "good:{PLAIN}x\ngood:{PLAIN}y\n",
            2,
            "already given on line 1",
        ),
        (
            "good:{PLAIN}x\n\nbad name:{PLAIN}y\n",
            3,
            "invalid user name",
        ),
        (
            // doveadm pw -s MD5-CRYPT -p secret, without its {MD5-CRYPT} prefix
            "good:{PLAIN}x\nmd5:$1$js4H2kxl$HuTaQCq7CMEIfrDGWqb981\n",
            2,
            "has the shape of a MD5-CRYPT hash",
        ),
        (
            "good:{PLAIN}x\ndes:abDEs8Xk1QZ.k\n",
            2,
            "has the shape of a DES-CRYPT hash, an unsupported password scheme; supported: ARGON2ID,",
        ),
        ("yes:$y$j9T$F5Jx5fExrKuJp1bYl.Uv..$abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMN\n", 1, "write it as {PLAIN}<password>"),
        ("nocolon\n", 1, "missing ':'"),
        ("empty:\n", 1, "empty password field"),
    ];
    for (input, expected_line, expected_message) in cases {
        match db.import(input) {
            Err(AuthError::ImportLine { line, message }) => {
                assert_eq!(line, expected_line, "{input:?}");
                assert!(message.contains(expected_message), "{input:?}: {message}");
            }
            other => panic!("{input:?}: expected a line error, got {other:?}"),
        }
    }
    assert!(db.is_empty());
    assert!(!data_dir.path().join("users").exists());
}

#[test]
fn import_keeps_plaintext_near_crypt_shapes() {
    let data_dir = tempfile::tempdir().unwrap();
    let db = UserDb::open(data_dir.path()).unwrap();
    // Twelve and fourteen characters of the crypt alphabet, a 13-character
    // password with a character outside it, and a DES-shaped password
    // written with {PLAIN}.
    let input = "twelve:abDEs8Xk1QZ.\nfourteen:abDEs8Xk1QZ.kk\npunct:abDEs8Xk1QZ!k\nplain:{PLAIN}abDEs8Xk1QZ.k\n";
    let summary = db.import(input).unwrap();
    assert_eq!(summary.added, 4);
    assert!(db.verify("twelve", &Secret::from("abDEs8Xk1QZ.")).is_ok());
    assert!(db.verify("punct", &Secret::from("abDEs8Xk1QZ!k")).is_ok());
    assert!(db.verify("plain", &Secret::from("abDEs8Xk1QZ.k")).is_ok());
}

#[test]
fn concurrent_edits_all_land() {
    let data_dir = tempfile::tempdir().unwrap();
    let writers = 4;
    let users_per_writer = 5;

    std::thread::scope(|scope| {
        for writer in 0..writers {
            let path = data_dir.path();
            scope.spawn(move || {
                // Each thread opens its own UserDb, like separate CLI runs.
                let db = UserDb::open(path).unwrap();
                for user in 0..users_per_writer {
                    db.import(&format!("w{writer}u{user}:{{PLAIN}}pw\n"))
                        .unwrap();
                }
            });
        }
    });

    let db = UserDb::open(data_dir.path()).unwrap();
    assert_eq!(db.list().len(), writers * users_per_writer);
}

#[test]
fn import_of_many_plain_lines() {
    let data_dir = tempfile::tempdir().unwrap();
    let db = UserDb::open(data_dir.path()).unwrap();
    let count = 200_000;
    let mut input = String::with_capacity(count * 32);
    for index in 0..count {
        input.push_str(&format!("user{index}@example.org:{{PLAIN}}pw{index}\n"));
    }

    let summary = db.import(&input).unwrap();

    assert_eq!(summary.added, count);
    assert_eq!(db.len(), count);
    assert!(
        db.verify("user199999@example.org", &Secret::from("pw199999"))
            .is_ok()
    );
}
