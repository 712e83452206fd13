use super::*;

fn mk_allowlist(entries: &[&str]) -> HostAllowlist {
    HostAllowlist::parse(entries).unwrap_or_else(|err| panic!("{entries:?}: {err}"))
}

/// Checks that `url` is a valid URL and that `entries` allow it or not.
#[track_caller]
fn check(entries: &[&str], url: &str, allowed: bool) {
    let parsed = validate_url(url).unwrap_or_else(|err| panic!("{url}: {err}"));
    let verdict = mk_allowlist(entries).check(&parsed);
    assert_eq!(
        verdict.is_ok(),
        allowed,
        "{entries:?} for {url}: {verdict:?}"
    );
}

#[test]
fn urls_must_be_http_with_a_host_and_nothing_secret_or_unsent() {
    assert!(validate_url("https://hooks.example.com/brokkr?x=1").is_ok());
    assert!(validate_url("http://127.0.0.1:9000/").is_ok());
    let refused = |url: &str| validate_url(url).unwrap_err();
    assert_eq!(
        refused("ftp://example.com/"),
        UrlError::Scheme("ftp".into())
    );
    assert_eq!(
        refused("file:///etc/passwd"),
        UrlError::Scheme("file".into())
    );
    assert_eq!(refused("https://user:pw@example.com/"), UrlError::UserInfo);
    assert_eq!(refused("https://token@example.com/"), UrlError::UserInfo);
    assert_eq!(refused("https://example.com/#top"), UrlError::Fragment);
    assert!(matches!(
        refused("example.com/hook"),
        UrlError::Unparsable(_)
    ));
    assert!(matches!(refused("https://"), UrlError::Unparsable(_)));
    assert_eq!(
        refused(&format!("https://example.com/{}", "a".repeat(MAX_URL_LEN))),
        UrlError::TooLong
    );
}

#[test]
fn an_empty_allowlist_allows_nothing() {
    assert!(HostAllowlist::default().is_empty());
    check(&[], "https://example.com/", false);
    check(&[], "http://127.0.0.1/", false);
}

#[test]
fn an_exact_host_matches_itself_only_whatever_its_case_or_trailing_dot() {
    let entries = ["hooks.example.com"];
    check(&entries, "https://hooks.example.com/a", true);
    check(&entries, "https://HOOKS.Example.com./a", true);
    check(&entries, "http://hooks.example.com:8080/a", true);
    check(&entries, "https://example.com/", false);
    check(&entries, "https://a.hooks.example.com/", false);
    check(&entries, "https://hooks.example.com.evil.net/", false);
    check(&entries, "https://evilhooks.example.com/", false);
}

#[test]
fn a_suffix_matches_every_name_under_it_but_not_itself() {
    let entries = ["*.example.com"];
    check(&entries, "https://a.example.com/", true);
    check(&entries, "https://a.b.example.com/", true);
    check(&entries, "https://example.com/", false);
    check(&entries, "https://badexample.com/", false);
    check(&entries, "https://a.example.com.evil.net/", false);
}

#[test]
fn a_port_restricts_the_entry_with_the_schemes_default_counted() {
    check(
        &["hooks.example.com:8443"],
        "https://hooks.example.com:8443/",
        true,
    );
    check(
        &["hooks.example.com:8443"],
        "https://hooks.example.com/",
        false,
    );
    check(
        &["hooks.example.com:443"],
        "https://hooks.example.com/",
        true,
    );
    check(
        &["hooks.example.com:443"],
        "http://hooks.example.com/",
        false,
    );
    check(&["*.example.com:80"], "http://a.example.com/", true);
    check(&["*.example.com:80"], "http://a.example.com:81/", false);
}

#[test]
fn loopback_is_reached_only_when_named_exactly() {
    check(&["*.example.com"], "http://127.0.0.1/", false);
    check(&["127.0.0.1"], "http://127.0.0.1:9000/", true);
    // The URL parser's spellings of the same address are the same address.
    check(&["127.0.0.1:9000"], "http://127.1:9000/", true);
    check(&["127.0.0.1:9000"], "http://0x7f.0.0.1:9000/", true);
    check(&["127.0.0.1:9000"], "http://127.0.0.2:9000/", false);
    check(&["[::1]"], "http://[::1]:8080/", true);
    check(&["[::1]:8080"], "http://[0:0:0:0:0:0:0:1]:8080/", true);
    check(&["localhost"], "http://localhost:3000/", true);
    check(&["localhost"], "http://a.localhost/", false);
    // A wildcard never reaches a loopback name, even one under its suffix.
    check(&["*.localhost"], "http://a.localhost/", false);
}

#[test]
fn internal_addresses_are_permitted_only_when_an_entry_names_one() {
    let public = mk_allowlist(&["hooks.example.com", "*.example.org"]);
    for address in [
        "127.0.0.1",
        "::1",
        "0.0.0.0",
        "169.254.169.254",
        "fe80::1",
        "::ffff:127.0.0.1",
    ] {
        assert!(
            !public.permits_address(address.parse().unwrap()),
            "{address}"
        );
    }
    assert!(public.permits_address("93.184.216.34".parse().unwrap()));
    assert!(public.permits_address("10.0.0.8".parse().unwrap()));
    for entries in [&["127.0.0.1:9000"][..], &["[::1]"], &["localhost"]] {
        assert!(
            mk_allowlist(entries).permits_address("127.0.0.1".parse().unwrap()),
            "{entries:?}"
        );
    }
}

#[test]
fn bad_entries_are_refused_with_their_reason() {
    for entry in [
        "",
        "*",
        "*.",
        "a.*.com",
        "*.127.0.0.1",
        "host:0",
        "host:65536",
        "host:http",
        "[::1]x",
        "exa mple.com",
    ] {
        let err = HostAllowlist::parse([entry]).unwrap_err();
        assert!(
            matches!(&err, UrlError::BadPattern { entry: named, .. } if named == entry),
            "{entry:?}: {err:?}"
        );
    }
}

#[test]
fn entries_display_in_canonical_form() {
    let allowlist = mk_allowlist(&["Hooks.Example.com", "*.EXAMPLE.org:8443", "[0::1]:9000"]);
    let shown: Vec<String> = allowlist
        .patterns()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        shown,
        ["hooks.example.com", "*.example.org:8443", "[::1]:9000"]
    );
}

#[test]
fn a_refusal_names_the_host_and_port() {
    let url = validate_url("https://Other.Example.net/x").unwrap();
    assert_eq!(
        mk_allowlist(&["hooks.example.com"]).check(&url),
        Err(UrlError::NotAllowed("other.example.net:443".into()))
    );
}
