//! `ssl.principal.mapping.rules`: from a client certificate's subject DN
//! (RFC 2253, `CN=alice,OU=eng,O=acme`) to the principal name, as Kafka's
//! `SslPrincipalMapper` does.
//!
//! The rules are a comma-separated list, tried in order; the first that
//! applies gives the name:
//!
//! - `DEFAULT`: the DN unchanged.
//! - `RULE:pattern/replacement/` (optionally `/L` or `/U` to lower- or
//!   upper-case the result): applies when `pattern` matches the whole DN;
//!   the result is the DN with every match of `pattern` replaced by
//!   `replacement` (`$1` names a group). Commas inside the pattern are part
//!   of it; `\/` is a literal slash.
//!
//! No rule applying refuses the connection, as in Kafka. Patterns are Rust
//! regexes: Java's syntax for the usual rules (groups, classes, lazy
//! quantifiers, anchors), without back-references or look-around.

use regex::Regex;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MappingError {
    #[error("invalid ssl.principal.mapping.rules '{rules}': {reason}")]
    Invalid { rules: String, reason: String },
    #[error("no ssl.principal.mapping.rules rule applies to '{dn}' (rules: {rules})")]
    NoMatchingRule { dn: String, rules: String },
}

#[derive(Debug, Clone)]
enum Rule {
    Default,
    Replace {
        whole: Regex,
        pattern: Regex,
        /// In the `regex` crate's replacement syntax (`${1}`).
        replacement: String,
        case: Case,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Case {
    Keep,
    Lower,
    Upper,
}

/// Parsed `ssl.principal.mapping.rules`.
#[derive(Debug, Clone)]
pub struct PrincipalMapper {
    text: String,
    rules: Vec<Rule>,
}

impl PrincipalMapper {
    pub fn parse(text: &str) -> Result<Self, MappingError> {
        let bad = |reason: String| MappingError::Invalid {
            rules: text.to_string(),
            reason,
        };
        let mut rules = Vec::new();
        let mut rest = text.trim_start();
        while !rest.is_empty() {
            let after = if let Some(after) = rest.strip_prefix("DEFAULT") {
                rules.push(Rule::Default);
                after
            } else if let Some(after) = rest.strip_prefix("RULE:") {
                let needs = || bad("a RULE is RULE:pattern/replacement/[LU]".into());
                let (pattern, after) = split_at_slash(after).ok_or_else(needs)?;
                let (replacement, after) = split_at_slash(after).ok_or_else(needs)?;
                let (case, after) = match after.chars().next() {
                    Some('L') => (Case::Lower, &after[1..]),
                    Some('U') => (Case::Upper, &after[1..]),
                    _ => (Case::Keep, after),
                };
                let pattern = pattern.replace("\\/", "/");
                let compile =
                    |p: &str| Regex::new(p).map_err(|e| bad(format!("pattern '{pattern}': {e}")));
                rules.push(Rule::Replace {
                    // Kafka applies a rule when it matches the whole DN (Matcher.matches()).
                    whole: compile(&format!("^(?:{pattern})$"))?,
                    pattern: compile(&pattern)?,
                    replacement: java_replacement(replacement),
                    case,
                });
                // Kafka's splitter ignores what follows a RULE up to the next comma.
                after.find(',').map_or("", |i| &after[i..])
            } else {
                return Err(invalid_rule(rest, &bad));
            };
            let after = after.trim_start();
            rest = match after.strip_prefix(',') {
                Some(next) => next.trim_start(),
                None if after.is_empty() => "",
                None => return Err(invalid_rule(rest, &bad)),
            };
        }
        if rules.is_empty() {
            rules.push(Rule::Default);
        }
        Ok(Self {
            text: text.to_string(),
            rules,
        })
    }

    /// The principal name for `dn`.
    pub fn name_for(&self, dn: &str) -> Result<String, MappingError> {
        for rule in &self.rules {
            match rule {
                Rule::Default => return Ok(dn.to_string()),
                Rule::Replace {
                    whole,
                    pattern,
                    replacement,
                    case,
                } => {
                    if !whole.is_match(dn) {
                        continue;
                    }
                    let out = pattern.replace_all(dn, replacement.as_str()).into_owned();
                    return Ok(match case {
                        Case::Keep => out,
                        Case::Lower => out.to_lowercase(),
                        Case::Upper => out.to_uppercase(),
                    });
                }
            }
        }
        Err(MappingError::NoMatchingRule {
            dn: dn.to_string(),
            rules: self.text.clone(),
        })
    }
}

impl Default for PrincipalMapper {
    fn default() -> Self {
        Self {
            text: "DEFAULT".into(),
            rules: vec![Rule::Default],
        }
    }
}

/// The error for the rule at the start of `rest`.
fn invalid_rule(rest: &str, bad: &dyn Fn(String) -> MappingError) -> MappingError {
    let rule = rest.split(',').next().unwrap_or(rest).trim();
    bad(format!("invalid rule '{rule}'"))
}

/// Splits at the first `/` not escaped by a backslash.
fn split_at_slash(s: &str) -> Option<(&str, &str)> {
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'/' => return Some((&s[..i], &s[i + 1..])),
            _ => i += 1,
        }
    }
    None
}

/// Java's `Matcher.replaceAll` replacement syntax (`$1`, `\$`) in the
/// `regex` crate's (`${1}`, `$$`).
fn java_replacement(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 4);
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('$') => out.push_str("$$"),
                Some(other) => out.push(other),
                None => {}
            },
            '$' if chars.peek().is_some_and(|d| d.is_ascii_digit()) => {
                out.push_str("${");
                while let Some(d) = chars.peek().copied().filter(char::is_ascii_digit) {
                    out.push(d);
                    chars.next();
                }
                out.push('}');
            }
            '$' => out.push_str("$$"),
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_keeps_the_dn() {
        let m = PrincipalMapper::parse("DEFAULT").unwrap();
        assert_eq!(
            m.name_for("CN=alice,OU=eng,O=acme").unwrap(),
            "CN=alice,OU=eng,O=acme"
        );
    }

    /// The examples of Kafka's documentation and SslPrincipalMapperTest.
    #[test]
    fn kafka_rules() {
        let m = PrincipalMapper::parse(
            "RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/,RULE:^CN=(.*?),OU=(.*?),O=(.*?),L=(.*?),ST=(.*?),C=(.*?)$/$1@$2/L,RULE:^.*[Cc][Nn]=([a-zA-Z0-9.]*).*$/$1/U,DEFAULT",
        )
        .unwrap();
        assert_eq!(
            m.name_for("CN=kafka-server1,OU=ServiceUsers,O=Org,L=City,ST=State,C=US")
                .unwrap(),
            "kafka-server1"
        );
        assert_eq!(
            m.name_for("CN=Duke,OU=JavaSoft,O=Sun Microsystems,L=Cupertino,ST=CA,C=US")
                .unwrap(),
            "duke@javasoft"
        );
        assert_eq!(m.name_for("OU=x,cn=Bob.B,O=y").unwrap(), "BOB.B");
        assert_eq!(m.name_for("O=nothing").unwrap(), "O=nothing");
        let strict = PrincipalMapper::parse("RULE:^CN=([^,]*),O=acme$/$1/").unwrap();
        assert_eq!(strict.name_for("CN=alice,O=acme").unwrap(), "alice");
        assert!(matches!(
            strict.name_for("CN=alice,O=other"),
            Err(MappingError::NoMatchingRule { .. })
        ));
        // Spaces around rules, an escaped slash.
        let m = PrincipalMapper::parse(" RULE:^CN=(.*)\\/x$/$1/ , DEFAULT ").unwrap();
        assert_eq!(m.name_for("CN=a/x").unwrap(), "a");
        assert_eq!(m.name_for("CN=b").unwrap(), "CN=b");
    }

    #[test]
    fn invalid_rules_are_refused() {
        for bad in [
            "DEFAUL",
            "RULE:abc",
            "RULE:a/b",
            "DEFAULT,junk",
            "RULE:(/x/",
        ] {
            assert!(PrincipalMapper::parse(bad).is_err(), "{bad} accepted");
        }
    }
}
