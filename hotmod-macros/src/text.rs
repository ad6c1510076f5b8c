//! Tokens as the text users read in error messages: `fn(&str, u32) -> String`.

use quote::ToTokens;

/// Prints tokens the way rustfmt would for types and short definitions.
pub fn tokens(t: &impl ToTokens) -> String {
    let raw = t.to_token_stream().to_string();
    let mut s = raw;
    for (from, to) in [
        (" :: ", "::"),
        (":: ", "::"),
        (" ::", "::"),
        ("& ", "&"),
        (" <", "<"),
        ("< ", "<"),
        (" >", ">"),
        (" ,", ","),
        (" ;", ";"),
        ("( ", "("),
        (" )", ")"),
        ("[ ", "["),
        (" ]", "]"),
        (" :", ":"),
        ("# [", "#["),
    ] {
        s = s.replace(from, to);
    }
    // `Fn (u32)` → `Fn(u32)`, but keep `-> (u32, u32)`.
    let mut out = String::with_capacity(s.len());
    let chars: Vec<char> = s.chars().collect();
    for (i, c) in chars.iter().enumerate() {
        let next_is_paren = chars.get(i + 1) == Some(&'(');
        let prev_is_word = i > 0 && (chars[i - 1].is_alphanumeric() || chars[i - 1] == '_');
        if *c == ' ' && next_is_paren && prev_is_word {
            continue;
        }
        out.push(*c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::tokens;

    fn ty(s: &str) -> String {
        tokens(&syn::parse_str::<syn::Type>(s).unwrap())
    }

    #[test]
    fn types_read_like_source() {
        assert_eq!(ty("&str"), "&str");
        assert_eq!(ty("&mut Vec<u64>"), "&mut Vec<u64>");
        assert_eq!(ty("Option<(u32, String)>"), "Option<(u32, String)>");
        assert_eq!(
            ty("Result<std::string::String, Error>"),
            "Result<std::string::String, Error>"
        );
        assert_eq!(
            ty("Box<dyn Fn(u32) -> (u32, u32)>"),
            "Box<dyn Fn(u32) -> (u32, u32)>"
        );
        assert_eq!(ty("&'a [u8]"), "&'a [u8]");
    }
}
