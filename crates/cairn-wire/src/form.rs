//! `application/x-www-form-urlencoded` pairs: query strings, and the bodies of query and ec2
//! protocol calls.

/// `key=value&…` pairs decoded (`+` and `%20` both a space), in order, repeats kept.
pub fn decode_pairs(encoded: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(encoded.as_bytes())
        .map(|(key, value)| (key.into_owned(), value.into_owned()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_decode_in_order_with_repeats_and_spaces() {
        assert_eq!(
            decode_pairs("b=2&a=x+y%20z&b=3&flag&&c=%E2%9C%93"),
            [
                ("b".to_owned(), "2".to_owned()),
                ("a".to_owned(), "x y z".to_owned()),
                ("b".to_owned(), "3".to_owned()),
                ("flag".to_owned(), String::new()),
                ("c".to_owned(), "✓".to_owned()),
            ]
        );
    }
}
