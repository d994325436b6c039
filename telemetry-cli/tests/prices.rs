//! `--prices` reads TOML price files: the CLI enables telemetry-wrap's `toml` feature, without
//! which a `.toml` file is refused as needing it.
#![cfg(feature = "proxy")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{on_db, temp_db};

#[test]
fn a_toml_price_file_is_parsed() {
    let (dir, db) = temp_db();
    let prices = dir.path().join("prices.toml");
    // A typo on line 3: the TOML parser, not a missing feature, must be what refuses it.
    std::fs::write(&prices, "[models.m]\ninput = 1.0\noutptu = 2.0\n").unwrap();
    let out = on_db(dir.path(), &db)
        .args(["proxy", "--listen", "127.0.0.1:0"])
        .args([
            "--gpu",
            "off",
            "--upstream",
            "http://127.0.0.1:1",
            "--prices",
        ])
        .arg(&prices)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("price table TOML, line 3"), "{err}");
}
