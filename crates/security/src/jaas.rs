//! Kafka's JAAS configuration text, as given in `sasl.jaas.config` (and its
//! per-listener, per-mechanism forms):
//!
//! ```text
//! org.apache.kafka.common.security.plain.PlainLoginModule required
//!     username="admin" password="admin-secret"
//!     user_admin="admin-secret" user_alice="alice-secret";
//! ```
//!
//! One or more login modules, each `class flag (name=value)* ;`. As in Java's
//! `ConfigFile` parser (which Kafka's `JaasConfig` uses): values are quoted
//! strings (with `\` escapes) or bare words, the flag is `required`,
//! `requisite`, `sufficient` or `optional` (any case), `//` and `/* */`
//! comments are skipped. A JAAS file's `Name { ... };` sections are accepted
//! too, their modules taken in order. Every malformed input is an error,
//! never a panic.

use std::fmt;

/// A parsed JAAS configuration: its login modules in order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct JaasConfig {
    pub modules: Vec<LoginModule>,
}

/// One `class flag options;` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginModule {
    /// The login module's class name.
    pub class: String,
    pub flag: ControlFlag,
    /// The options in the order given (a repeated name keeps both; the
    /// lookups below take the last, as Java's `HashMap` would).
    pub options: Vec<(String, String)>,
}

impl LoginModule {
    /// The value of option `name` (the last one given).
    pub fn option(&self, name: &str) -> Option<&str> {
        self.options
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControlFlag {
    Required,
    Requisite,
    Sufficient,
    Optional,
}

impl fmt::Display for ControlFlag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ControlFlag::Required => "required",
            ControlFlag::Requisite => "requisite",
            ControlFlag::Sufficient => "sufficient",
            ControlFlag::Optional => "optional",
        })
    }
}

/// Why a JAAS text could not be parsed; `position` is a byte offset.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JaasError {
    #[error("JAAS config is empty: it names no login module")]
    Empty,
    #[error("JAAS config at byte {position}: expected {expected}, found {found}")]
    Unexpected {
        position: usize,
        expected: &'static str,
        found: String,
    },
    #[error("JAAS config at byte {position}: unterminated {what}")]
    Unterminated { position: usize, what: &'static str },
    #[error("JAAS config at byte {position}: invalid control flag {flag:?} (expected required, requisite, sufficient or optional)")]
    InvalidFlag { position: usize, flag: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Word(String),
    Quoted(String),
    Eq,
    Semi,
    Open,
    Close,
}

impl Token {
    fn describe(&self) -> String {
        match self {
            Token::Word(w) => format!("{w:?}"),
            Token::Quoted(q) => format!("quoted {q:?}"),
            Token::Eq => "'='".into(),
            Token::Semi => "';'".into(),
            Token::Open => "'{'".into(),
            Token::Close => "'}'".into(),
        }
    }
}

fn tokenize(text: &str) -> Result<Vec<(usize, Token)>, JaasError> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        // `i` is always at a character boundary: every branch below moves
        // it past whole characters.
        let ch = text[i..].chars().next().unwrap_or(' ');
        match c {
            _ if ch.is_whitespace() => i += ch.len_utf8(),
            b'/' if bytes.get(i + 1) == Some(&b'/') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                let start = i;
                match text[i + 2..].find("*/") {
                    Some(end) => i = i + 2 + end + 2,
                    None => {
                        return Err(JaasError::Unterminated {
                            position: start,
                            what: "comment",
                        })
                    }
                }
            }
            b'=' | b';' | b'{' | b'}' => {
                out.push((
                    i,
                    match c {
                        b'=' => Token::Eq,
                        b';' => Token::Semi,
                        b'{' => Token::Open,
                        _ => Token::Close,
                    },
                ));
                i += 1;
            }
            b'"' | b'\'' => {
                let start = i;
                let mut value = String::new();
                let mut chars = text[i + 1..].char_indices();
                let mut closed = false;
                while let Some((off, ch)) = chars.next() {
                    if ch == c as char {
                        i = i + 1 + off + 1;
                        closed = true;
                        break;
                    }
                    if ch == '\\' {
                        match chars.next() {
                            Some((_, 'n')) => value.push('\n'),
                            Some((_, 't')) => value.push('\t'),
                            Some((_, 'r')) => value.push('\r'),
                            Some((_, other)) => value.push(other),
                            None => break,
                        }
                    } else {
                        value.push(ch);
                    }
                }
                if !closed {
                    return Err(JaasError::Unterminated {
                        position: start,
                        what: "quoted string",
                    });
                }
                out.push((start, Token::Quoted(value)));
            }
            _ => {
                let start = i;
                // A bare word: up to whitespace or a delimiter. Work on chars
                // so a multi-byte character is never split.
                let end = text[i..]
                    .char_indices()
                    .find(|&(_, ch)| {
                        ch.is_whitespace() || matches!(ch, '=' | ';' | '{' | '}' | '"' | '\'')
                    })
                    .map(|(off, _)| i + off)
                    .unwrap_or(text.len());
                out.push((start, Token::Word(text[start..end].to_string())));
                i = end;
            }
        }
    }
    Ok(out)
}

struct Parser {
    tokens: Vec<(usize, Token)>,
    pos: usize,
    end: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos).map(|(_, t)| t)
    }

    fn position(&self) -> usize {
        self.tokens.get(self.pos).map_or(self.end, |(p, _)| *p)
    }

    fn unexpected(&self, expected: &'static str) -> JaasError {
        JaasError::Unexpected {
            position: self.position(),
            expected,
            found: self
                .peek()
                .map_or_else(|| "the end of the text".into(), Token::describe),
        }
    }

    fn word(&mut self, expected: &'static str) -> Result<String, JaasError> {
        match self.peek() {
            Some(Token::Word(w)) => {
                let w = w.clone();
                self.pos += 1;
                Ok(w)
            }
            _ => Err(self.unexpected(expected)),
        }
    }

    fn module(&mut self, class: String) -> Result<LoginModule, JaasError> {
        let flag_at = self.position();
        let flag = self.word("a control flag")?;
        let flag = match flag.to_ascii_lowercase().as_str() {
            "required" => ControlFlag::Required,
            "requisite" => ControlFlag::Requisite,
            "sufficient" => ControlFlag::Sufficient,
            "optional" => ControlFlag::Optional,
            _ => {
                return Err(JaasError::InvalidFlag {
                    position: flag_at,
                    flag,
                })
            }
        };
        let mut options = Vec::new();
        loop {
            match self.peek() {
                Some(Token::Semi) => {
                    self.pos += 1;
                    return Ok(LoginModule {
                        class,
                        flag,
                        options,
                    });
                }
                Some(Token::Word(_)) => {
                    let name = self.word("an option name")?;
                    if self.peek() != Some(&Token::Eq) {
                        return Err(self.unexpected("'=' after an option name"));
                    }
                    self.pos += 1;
                    let value = match self.peek() {
                        Some(Token::Quoted(v)) | Some(Token::Word(v)) => v.clone(),
                        _ => return Err(self.unexpected("an option value")),
                    };
                    self.pos += 1;
                    options.push((name, value));
                }
                _ => return Err(self.unexpected("an option or ';'")),
            }
        }
    }
}

impl JaasConfig {
    /// Parses JAAS text (see the module docs).
    pub fn parse(text: &str) -> Result<JaasConfig, JaasError> {
        let mut p = Parser {
            tokens: tokenize(text)?,
            pos: 0,
            end: text.len(),
        };
        let mut modules = Vec::new();
        while p.peek().is_some() {
            let name = p.word("a login module class or section name")?;
            if p.peek() == Some(&Token::Open) {
                // A JAAS file section: `Name { module; module; };`
                p.pos += 1;
                loop {
                    match p.peek() {
                        Some(Token::Close) => {
                            p.pos += 1;
                            break;
                        }
                        Some(Token::Word(_)) => {
                            let class = p.word("a login module class")?;
                            modules.push(p.module(class)?);
                        }
                        _ => return Err(p.unexpected("a login module class or '}'")),
                    }
                }
                if p.peek() != Some(&Token::Semi) {
                    return Err(p.unexpected("';' after '}'"));
                }
                p.pos += 1;
            } else {
                modules.push(p.module(name)?);
            }
        }
        if modules.is_empty() {
            return Err(JaasError::Empty);
        }
        Ok(JaasConfig { modules })
    }

    /// The first module whose class is `class` (or ends with `.class`).
    pub fn module(&self, class: &str) -> Option<&LoginModule> {
        self.modules.iter().find(|m| {
            m.class == class
                || m.class
                    .strip_suffix(class)
                    .is_some_and(|rest| rest.ends_with('.'))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_plain_example() {
        let c = JaasConfig::parse(
            r#"org.apache.kafka.common.security.plain.PlainLoginModule required username="admin" password="admin-secret" user_admin="admin-secret" user_alice="alice-secret";"#,
        )
        .unwrap();
        assert_eq!(c.modules.len(), 1);
        let m = &c.modules[0];
        assert_eq!(
            m.class,
            "org.apache.kafka.common.security.plain.PlainLoginModule"
        );
        assert_eq!(m.flag, ControlFlag::Required);
        assert_eq!(m.option("username"), Some("admin"));
        assert_eq!(m.option("user_alice"), Some("alice-secret"));
        assert_eq!(m.options.len(), 4);
        assert!(c.module("PlainLoginModule").is_some());
        assert!(c.module("LoginModule").is_none());
    }

    #[test]
    fn quoting_escapes_comments_sections() {
        let c = JaasConfig::parse(
            "// a comment\nKafkaServer {\n  a.B Optional x=\"q\\\"uo;te\" y='s p' z=bare /* c */ ;\n  c.D sufficient;\n};\n e.F requisite w=\"é\";",
        )
        .unwrap();
        assert_eq!(c.modules.len(), 3);
        assert_eq!(c.modules[0].flag, ControlFlag::Optional);
        assert_eq!(c.modules[0].option("x"), Some("q\"uo;te"));
        assert_eq!(c.modules[0].option("y"), Some("s p"));
        assert_eq!(c.modules[0].option("z"), Some("bare"));
        assert!(c.modules[1].options.is_empty());
        assert_eq!(c.modules[2].option("w"), Some("é"));
    }

    #[test]
    fn errors() {
        for (text, want) in [
            ("", "empty"),
            ("   // only a comment", "empty"),
            ("a.B required x=\"y\"", "option or ';'"),
            ("a.B required x=\"y", "unterminated"),
            ("a.B mandatory;", "control flag"),
            ("a.B required x;", "'='"),
            ("a.B required x=;", "option value"),
            ("a.B;", "control flag"),
            ("= required;", "login module"),
            ("S { a.B required; }", "';' after"),
            ("S { a.B required;", "login module class or '}'"),
            ("/* open", "unterminated comment"),
            ("a\u{a0}", "control flag"),
        ] {
            let err = JaasConfig::parse(text).unwrap_err().to_string();
            assert!(err.contains(want), "{text:?}: {err}");
        }
    }
}
