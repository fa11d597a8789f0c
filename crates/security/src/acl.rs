//! ACLs as Kafka models them (`AclBinding`: a resource pattern and an access
//! control entry), the filters DescribeAcls and DeleteAcls use, and the
//! decision of Kafka's `StandardAuthorizer`.
//!
//! The rules of [`Authorizer::authorize`], in order:
//!
//! 1. a principal in `super.users` is allowed everything;
//! 2. the ACLs that apply to a resource are those of its type whose pattern
//!    is the literal name, the literal wildcard `*`, or a prefix of the name;
//! 3. of those, an entry matches when its principal is the caller's or
//!    `User:*`, its host is the caller's or `*`, and its operation is the
//!    one asked, `ALL`, or (ALLOW entries only) one that implies it: READ,
//!    WRITE, DELETE and ALTER imply DESCRIBE; ALTER_CONFIGS implies
//!    DESCRIBE_CONFIGS;
//! 4. a matching DENY wins over any ALLOW; a matching ALLOW allows;
//! 5. when no ACL at all applies to the resource (whoever it names),
//!    `allow.everyone.if.no.acl.found` decides; otherwise the caller is
//!    denied.
//!
//! The enums carry Kafka's wire codes (`code`/`from_code`) and names
//! (`name`, as `toString` prints them); unknown codes decode to `Unknown`,
//! as Kafka's `fromCode` does, so a request can be refused with a message
//! rather than dropped.

use std::collections::HashSet;
use std::fmt;

macro_rules! kafka_enum {
    ($(#[$doc:meta])* $name:ident { $( $variant:ident = $code:expr, $text:expr; )* }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name { $( $variant, )* }

        impl $name {
            /// Every value, `Unknown` and `Any` included.
            pub const ALL_VALUES: &'static [$name] = &[ $( $name::$variant, )* ];

            /// Kafka's wire code.
            pub fn code(self) -> i8 {
                match self { $( $name::$variant => $code, )* }
            }

            /// The value for a wire code; `Unknown` for a code Kafka does not define.
            pub fn from_code(code: i8) -> Self {
                match code {
                    $( $code => $name::$variant, )*
                    _ => $name::Unknown,
                }
            }

            /// Kafka's name for it (`TOPIC`, `PREFIXED`, `DESCRIBE_CONFIGS`, ...).
            pub fn name(self) -> &'static str {
                match self { $( $name::$variant => $text, )* }
            }

            /// Parses Kafka's name, ignoring case and `-` for `_`
            /// (`transactional-id`, `describe_configs`).
            pub fn parse(text: &str) -> Option<Self> {
                let norm = text.trim().to_ascii_uppercase().replace('-', "_");
                Self::ALL_VALUES.iter().copied().find(|v| v.name() == norm)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.name())
            }
        }
    };
}

kafka_enum!(
    /// Kafka's `ResourceType`.
    ResourceType {
        Unknown = 0, "UNKNOWN";
        Any = 1, "ANY";
        Topic = 2, "TOPIC";
        Group = 3, "GROUP";
        Cluster = 4, "CLUSTER";
        TransactionalId = 5, "TRANSACTIONAL_ID";
        DelegationToken = 6, "DELEGATION_TOKEN";
        User = 7, "USER";
    }
);

kafka_enum!(
    /// Kafka's `PatternType`. `Match` and `Any` exist only in filters.
    PatternType {
        Unknown = 0, "UNKNOWN";
        Any = 1, "ANY";
        Match = 2, "MATCH";
        Literal = 3, "LITERAL";
        Prefixed = 4, "PREFIXED";
    }
);

kafka_enum!(
    /// Kafka's `AclOperation`.
    AclOperation {
        Unknown = 0, "UNKNOWN";
        Any = 1, "ANY";
        All = 2, "ALL";
        Read = 3, "READ";
        Write = 4, "WRITE";
        Create = 5, "CREATE";
        Delete = 6, "DELETE";
        Alter = 7, "ALTER";
        Describe = 8, "DESCRIBE";
        ClusterAction = 9, "CLUSTER_ACTION";
        DescribeConfigs = 10, "DESCRIBE_CONFIGS";
        AlterConfigs = 11, "ALTER_CONFIGS";
        IdempotentWrite = 12, "IDEMPOTENT_WRITE";
        CreateTokens = 13, "CREATE_TOKENS";
        DescribeTokens = 14, "DESCRIBE_TOKENS";
    }
);

kafka_enum!(
    /// Kafka's `AclPermissionType`.
    PermissionType {
        Unknown = 0, "UNKNOWN";
        Any = 1, "ANY";
        Deny = 2, "DENY";
        Allow = 3, "ALLOW";
    }
);

/// The literal resource name that stands for every resource of a type.
pub const WILDCARD_RESOURCE: &str = "*";
/// The principal that stands for every user.
pub const WILDCARD_PRINCIPAL: &str = "User:*";
/// The host that stands for every host.
pub const WILDCARD_HOST: &str = "*";
/// The only name a CLUSTER resource may have.
pub const CLUSTER_RESOURCE_NAME: &str = "kafka-cluster";

/// What an ACL applies to (Kafka's `ResourcePattern`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ResourcePattern {
    pub resource_type: ResourceType,
    pub name: String,
    pub pattern_type: PatternType,
}

impl fmt::Display for ResourcePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ResourcePattern(resourceType={}, name={}, patternType={})",
            self.resource_type, self.name, self.pattern_type
        )
    }
}

/// Who may (or may not) do what from where (Kafka's `AccessControlEntry`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AccessControlEntry {
    /// `Type:name`, e.g. `User:alice`, or `User:*`.
    pub principal: String,
    /// An IP address or `*`.
    pub host: String,
    pub operation: AclOperation,
    pub permission: PermissionType,
}

impl fmt::Display for AccessControlEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "(principal={}, host={}, operation={}, permissionType={})",
            self.principal, self.host, self.operation, self.permission
        )
    }
}

/// One ACL (Kafka's `AclBinding`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AclBinding {
    pub pattern: ResourcePattern,
    pub entry: AccessControlEntry,
}

/// Why a binding cannot be created. Messages are Kafka's
/// (`AclControlManager.validateNewAcl`); all are INVALID_REQUEST.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AclError {
    #[error("Invalid resourceType {0}")]
    ResourceType(ResourceType),
    #[error("Invalid patternType {0}")]
    PatternType(PatternType),
    #[error("Invalid operation {0}")]
    Operation(AclOperation),
    #[error("Invalid permissionType {0}")]
    Permission(PermissionType),
    #[error("Resource name should not be empty")]
    EmptyName,
    #[error("The only valid name for the CLUSTER resource is kafka-cluster")]
    ClusterName,
    #[error("Could not parse principal from `{0}` (no colon is present separating the principal type from the principal name)")]
    Principal(String),
    #[error("Unknown patternFilter.")]
    UnknownPatternFilter,
    #[error("Unknown entryFilter.")]
    UnknownEntryFilter,
}

impl AclBinding {
    /// Checks a binding a client asks to create, as Kafka does.
    pub fn validate_new(&self) -> Result<(), AclError> {
        match self.pattern.resource_type {
            ResourceType::Unknown | ResourceType::Any => {
                return Err(AclError::ResourceType(self.pattern.resource_type))
            }
            _ => {}
        }
        match self.pattern.pattern_type {
            PatternType::Literal | PatternType::Prefixed => {}
            other => return Err(AclError::PatternType(other)),
        }
        match self.entry.operation {
            AclOperation::Unknown | AclOperation::Any => {
                return Err(AclError::Operation(self.entry.operation))
            }
            _ => {}
        }
        match self.entry.permission {
            PermissionType::Allow | PermissionType::Deny => {}
            other => return Err(AclError::Permission(other)),
        }
        if self.pattern.name.is_empty() {
            return Err(AclError::EmptyName);
        }
        if self.pattern.resource_type == ResourceType::Cluster
            && self.pattern.name != CLUSTER_RESOURCE_NAME
        {
            return Err(AclError::ClusterName);
        }
        if !self.entry.principal.contains(':') {
            return Err(AclError::Principal(self.entry.principal.clone()));
        }
        Ok(())
    }
}

/// Selects resource patterns (Kafka's `ResourcePatternFilter`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourcePatternFilter {
    /// `Any` for every type.
    pub resource_type: ResourceType,
    /// `None` for every name.
    pub name: Option<String>,
    /// `Any`: any pattern type, names compared exactly. `Match`: the
    /// patterns that would apply to a resource called `name` (literal
    /// `name`, literal `*`, prefixes of `name`). Otherwise: that pattern
    /// type, names compared exactly.
    pub pattern_type: PatternType,
}

impl ResourcePatternFilter {
    pub fn matches(&self, p: &ResourcePattern) -> bool {
        if self.resource_type != ResourceType::Any && self.resource_type != p.resource_type {
            return false;
        }
        if !matches!(self.pattern_type, PatternType::Any | PatternType::Match)
            && self.pattern_type != p.pattern_type
        {
            return false;
        }
        let Some(name) = &self.name else {
            return true;
        };
        if self.pattern_type == PatternType::Any || self.pattern_type == p.pattern_type {
            return *name == p.name;
        }
        match p.pattern_type {
            PatternType::Literal => *name == p.name || p.name == WILDCARD_RESOURCE,
            PatternType::Prefixed => name.starts_with(&p.name),
            _ => false,
        }
    }

    fn is_unknown(&self) -> bool {
        self.resource_type == ResourceType::Unknown || self.pattern_type == PatternType::Unknown
    }
}

/// Selects entries (Kafka's `AccessControlEntryFilter`): `None` and `Any`
/// match everything, anything else exactly (`User:*` only matches `User:*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessControlEntryFilter {
    pub principal: Option<String>,
    pub host: Option<String>,
    pub operation: AclOperation,
    pub permission: PermissionType,
}

impl AccessControlEntryFilter {
    pub fn matches(&self, e: &AccessControlEntry) -> bool {
        self.principal.as_ref().is_none_or(|p| *p == e.principal)
            && self.host.as_ref().is_none_or(|h| *h == e.host)
            && (self.operation == AclOperation::Any || self.operation == e.operation)
            && (self.permission == PermissionType::Any || self.permission == e.permission)
    }

    fn is_unknown(&self) -> bool {
        self.operation == AclOperation::Unknown || self.permission == PermissionType::Unknown
    }
}

/// Selects ACLs for DescribeAcls and DeleteAcls (Kafka's `AclBindingFilter`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AclBindingFilter {
    pub pattern: ResourcePatternFilter,
    pub entry: AccessControlEntryFilter,
}

impl AclBindingFilter {
    /// The filter that selects every ACL.
    pub fn any() -> Self {
        AclBindingFilter {
            pattern: ResourcePatternFilter {
                resource_type: ResourceType::Any,
                name: None,
                pattern_type: PatternType::Any,
            },
            entry: AccessControlEntryFilter {
                principal: None,
                host: None,
                operation: AclOperation::Any,
                permission: PermissionType::Any,
            },
        }
    }

    pub fn matches(&self, b: &AclBinding) -> bool {
        self.pattern.matches(&b.pattern) && self.entry.matches(&b.entry)
    }

    /// Refuses a filter with an unknown part, as Kafka's
    /// `AclControlManager.validateFilter` does (INVALID_REQUEST).
    pub fn validate(&self) -> Result<(), AclError> {
        if self.pattern.is_unknown() {
            return Err(AclError::UnknownPatternFilter);
        }
        if self.entry.is_unknown() {
            return Err(AclError::UnknownEntryFilter);
        }
        Ok(())
    }
}

/// The answer to one authorization question.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allowed,
    Denied,
}

/// Kafka's `StandardAuthorizer` decision, over ACLs held elsewhere (the
/// metadata image). Settings: `super.users`, `allow.everyone.if.no.acl.found`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Authorizer {
    super_users: HashSet<String>,
    allow_if_no_acl: bool,
}

impl Authorizer {
    /// `super_users` is Kafka's `super.users`: principals separated by `;`.
    pub fn new(super_users: &str, allow_everyone_if_no_acl_found: bool) -> Self {
        Authorizer {
            super_users: super_users
                .split(';')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect(),
            allow_if_no_acl: allow_everyone_if_no_acl_found,
        }
    }

    /// Adds a super user (the inter-broker listener's principal, say).
    pub fn add_super_user(&mut self, principal: impl Into<String>) {
        self.super_users.insert(principal.into());
    }

    pub fn is_super_user(&self, principal: &str) -> bool {
        self.super_users.contains(principal)
    }

    /// May `principal` (`User:alice`) from `host` (an IP address) do `op`
    /// on the resource of `resource_type` called `name`? `acls` are all the
    /// cluster's ACLs; a linear scan, fine for the hundreds of ACLs a
    /// cluster usually has (Kafka keeps them sorted to seek instead).
    pub fn authorize<'a>(
        &self,
        acls: impl IntoIterator<Item = &'a AclBinding>,
        principal: &str,
        host: &str,
        op: AclOperation,
        resource_type: ResourceType,
        name: &str,
    ) -> Decision {
        if self.is_super_user(principal) {
            return Decision::Allowed;
        }
        let mut resource_has_acls = false;
        let mut allowed = false;
        for acl in acls {
            if !applies_to(&acl.pattern, resource_type, name) {
                continue;
            }
            resource_has_acls = true;
            match entry_decision(&acl.entry, principal, host, op) {
                Some(Decision::Denied) => return Decision::Denied,
                Some(Decision::Allowed) => allowed = true,
                None => {}
            }
        }
        if allowed || (!resource_has_acls && self.allow_if_no_acl) {
            Decision::Allowed
        } else {
            Decision::Denied
        }
    }
}

impl Authorizer {
    /// May `principal` do `op` on *some* resource of `resource_type`?
    /// Kafka's `authorizeByResourceType` (KIP-679: an idempotent producer
    /// needs WRITE on any topic): a super user, or an answer of yes for a
    /// resource nobody has ACLs on, may; otherwise an ALLOW (its operation
    /// exactly `op` or ALL) on a literal name or prefix that no DENY takes
    /// back: a DENY on the same literal name, a DENY on a prefix of it, and
    /// a DENY on `*` takes back everything.
    pub fn authorize_by_resource_type<'a>(
        &self,
        acls: impl IntoIterator<Item = &'a AclBinding> + Clone,
        principal: &str,
        host: &str,
        op: AclOperation,
        resource_type: ResourceType,
    ) -> Decision {
        // Kafka asks about an arbitrary name first: super users and
        // `allow.everyone.if.no.acl.found` answer there.
        if self.authorize(acls.clone(), principal, host, op, resource_type, "hardcode")
            == Decision::Allowed
        {
            return Decision::Allowed;
        }
        let mut deny_literal = HashSet::new();
        let mut deny_prefix = HashSet::new();
        let mut allow = Vec::new();
        for acl in acls {
            let e = &acl.entry;
            let speaks = acl.pattern.resource_type == resource_type
                && (e.host == WILDCARD_HOST || e.host == host)
                && (e.principal == principal || e.principal == WILDCARD_PRINCIPAL)
                && (e.operation == op || e.operation == AclOperation::All);
            if !speaks {
                continue;
            }
            let name = acl.pattern.name.as_str();
            match (e.permission, acl.pattern.pattern_type) {
                (PermissionType::Deny, PatternType::Literal) if name == WILDCARD_RESOURCE => {
                    return Decision::Denied
                }
                (PermissionType::Deny, PatternType::Literal) => {
                    deny_literal.insert(name);
                }
                (PermissionType::Deny, PatternType::Prefixed) => {
                    deny_prefix.insert(name);
                }
                (PermissionType::Allow, PatternType::Literal) if name == WILDCARD_RESOURCE => {
                    return Decision::Allowed
                }
                (PermissionType::Allow, pt @ (PatternType::Literal | PatternType::Prefixed)) => {
                    allow.push((pt, name));
                }
                _ => {}
            }
        }
        let survives = |(pt, name): &(PatternType, &str)| {
            let denied_literal = *pt == PatternType::Literal && deny_literal.contains(name);
            let denied_prefix = (1..=name.len())
                .filter(|&n| name.is_char_boundary(n))
                .any(|n| deny_prefix.contains(&name[..n]));
            !denied_literal && !denied_prefix
        };
        if allow.iter().any(survives) {
            Decision::Allowed
        } else {
            Decision::Denied
        }
    }
}

/// Whether an ACL's pattern covers the resource `(resource_type, name)`.
fn applies_to(p: &ResourcePattern, resource_type: ResourceType, name: &str) -> bool {
    p.resource_type == resource_type
        && match p.pattern_type {
            PatternType::Literal => p.name == name || p.name == WILDCARD_RESOURCE,
            PatternType::Prefixed => name.starts_with(&p.name),
            _ => false,
        }
}

/// The entry's verdict for this caller and operation, or `None` when it
/// does not speak to them (Kafka's `StandardAuthorizerData.findResult`).
fn entry_decision(
    e: &AccessControlEntry,
    principal: &str,
    host: &str,
    op: AclOperation,
) -> Option<Decision> {
    if e.principal != principal && e.principal != WILDCARD_PRINCIPAL {
        return None;
    }
    if e.host != WILDCARD_HOST && e.host != host {
        return None;
    }
    if e.operation != AclOperation::All {
        let covers = match (e.permission, op) {
            // Implications widen what an ALLOW grants; a DENY denies only
            // what it names (a DENY READ leaves DESCRIBE alone).
            (PermissionType::Allow, AclOperation::Describe) => matches!(
                e.operation,
                AclOperation::Describe
                    | AclOperation::Read
                    | AclOperation::Write
                    | AclOperation::Delete
                    | AclOperation::Alter
            ),
            (PermissionType::Allow, AclOperation::DescribeConfigs) => matches!(
                e.operation,
                AclOperation::DescribeConfigs | AclOperation::AlterConfigs
            ),
            _ => e.operation == op,
        };
        if !covers {
            return None;
        }
    }
    match e.permission {
        PermissionType::Allow => Some(Decision::Allowed),
        PermissionType::Deny => Some(Decision::Denied),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use AclOperation as Op;

    fn acl(
        rt: ResourceType,
        name: &str,
        pt: PatternType,
        principal: &str,
        host: &str,
        op: Op,
        perm: PermissionType,
    ) -> AclBinding {
        AclBinding {
            pattern: ResourcePattern {
                resource_type: rt,
                name: name.into(),
                pattern_type: pt,
            },
            entry: AccessControlEntry {
                principal: principal.into(),
                host: host.into(),
                operation: op,
                permission: perm,
            },
        }
    }

    #[test]
    fn authorize_by_resource_type_is_kafkas() {
        let a = Authorizer::new("User:admin", false);
        let rt = ResourceType::Topic;
        let by_type = |acls: &[AclBinding], who: &str| {
            a.authorize_by_resource_type(acls.iter(), who, "10.0.0.1", Op::Write, rt)
        };
        assert_eq!(by_type(&[], "User:admin"), Decision::Allowed);
        assert_eq!(by_type(&[], "User:alice"), Decision::Denied);
        let some = allow("orders", PatternType::Literal, "User:alice", Op::Write);
        assert_eq!(
            by_type(std::slice::from_ref(&some), "User:alice"),
            Decision::Allowed
        );
        assert_eq!(
            by_type(std::slice::from_ref(&some), "User:bob"),
            Decision::Denied
        );
        // READ does not imply WRITE; ALL does.
        let read = allow("orders", PatternType::Literal, "User:alice", Op::Read);
        assert_eq!(by_type(&[read], "User:alice"), Decision::Denied);
        let all = allow("o", PatternType::Prefixed, "User:*", Op::All);
        assert_eq!(
            by_type(std::slice::from_ref(&all), "User:bob"),
            Decision::Allowed
        );
        // A DENY on the same literal, on a prefix of it, or on `*`, takes it back.
        let deny = |name: &str, pt: PatternType| {
            acl(
                rt,
                name,
                pt,
                "User:alice",
                "*",
                Op::Write,
                PermissionType::Deny,
            )
        };
        let lit = deny("orders", PatternType::Literal);
        assert_eq!(
            by_type(&[some.clone(), lit], "User:alice"),
            Decision::Denied
        );
        let pre = deny("ord", PatternType::Prefixed);
        assert_eq!(
            by_type(&[some.clone(), pre], "User:alice"),
            Decision::Denied
        );
        let star = deny("*", PatternType::Literal);
        assert_eq!(
            by_type(&[some.clone(), star], "User:alice"),
            Decision::Denied
        );
        // A DENY on another name leaves the ALLOW standing.
        let other = deny("payments", PatternType::Literal);
        assert_eq!(by_type(&[some, other], "User:alice"), Decision::Allowed);
        // Resources without ACLs, with allow.everyone.if.no.acl.found.
        let open = Authorizer::new("", true);
        let by_type_open = open.authorize_by_resource_type([].iter(), "User:x", "h", Op::Write, rt);
        assert_eq!(by_type_open, Decision::Allowed);
    }

    fn allow(name: &str, pt: PatternType, principal: &str, op: Op) -> AclBinding {
        acl(
            ResourceType::Topic,
            name,
            pt,
            principal,
            "*",
            op,
            PermissionType::Allow,
        )
    }

    fn deny(name: &str, pt: PatternType, principal: &str, op: Op) -> AclBinding {
        acl(
            ResourceType::Topic,
            name,
            pt,
            principal,
            "*",
            op,
            PermissionType::Deny,
        )
    }

    fn topic(a: &Authorizer, acls: &[AclBinding], who: &str, op: Op, name: &str) -> Decision {
        a.authorize(acls, who, "10.0.0.1", op, ResourceType::Topic, name)
    }

    const ALICE: &str = "User:alice";
    use Decision::*;
    use PatternType::{Literal, Prefixed};

    #[test]
    fn wire_codes_and_names_are_kafkas() {
        assert_eq!(ResourceType::Topic.code(), 2);
        assert_eq!(ResourceType::User.code(), 7);
        assert_eq!(PatternType::Prefixed.code(), 4);
        assert_eq!(PatternType::Match.code(), 2);
        assert_eq!(Op::DescribeTokens.code(), 14);
        assert_eq!(Op::IdempotentWrite.code(), 12);
        assert_eq!(PermissionType::Allow.code(), 3);
        assert_eq!(PermissionType::Deny.code(), 2);
        for v in Op::ALL_VALUES {
            assert_eq!(Op::from_code(v.code()), *v);
            assert_eq!(Op::parse(v.name()), Some(*v));
        }
        assert_eq!(Op::from_code(99), Op::Unknown);
        assert_eq!(
            ResourceType::parse("transactional-id"),
            Some(ResourceType::TransactionalId)
        );
        assert_eq!(Op::parse("Describe_Configs"), Some(Op::DescribeConfigs));
    }

    #[test]
    fn display_is_kafkas_to_string() {
        let b = allow("t", Literal, ALICE, Op::Read);
        assert_eq!(
            b.pattern.to_string(),
            "ResourcePattern(resourceType=TOPIC, name=t, patternType=LITERAL)"
        );
        assert_eq!(
            b.entry.to_string(),
            "(principal=User:alice, host=*, operation=READ, permissionType=ALLOW)"
        );
    }

    #[test]
    fn super_users_are_always_allowed() {
        let a = Authorizer::new(" User:admin ; User:CN=broker ", false);
        let acls = [deny("t", Literal, "User:admin", Op::All)];
        assert_eq!(topic(&a, &acls, "User:admin", Op::Write, "t"), Allowed);
        assert_eq!(topic(&a, &acls, "User:CN=broker", Op::Write, "t"), Allowed);
        assert_eq!(topic(&a, &acls, ALICE, Op::Write, "t"), Denied);
    }

    #[test]
    fn no_acl_for_the_resource_uses_the_default() {
        let strict = Authorizer::new("", false);
        let open = Authorizer::new("", true);
        assert_eq!(topic(&strict, &[], ALICE, Op::Read, "t"), Denied);
        assert_eq!(topic(&open, &[], ALICE, Op::Read, "t"), Allowed);
        // An ACL on another resource, or another type, does not count.
        let other = [
            allow("u", Literal, "User:bob", Op::Read),
            acl(
                ResourceType::Group,
                "t",
                Literal,
                "User:bob",
                "*",
                Op::Read,
                PermissionType::Allow,
            ),
        ];
        assert_eq!(topic(&open, &other, ALICE, Op::Read, "t"), Allowed);
        // An ACL on this resource for someone else does: alice is denied.
        let bobs = [allow("t", Literal, "User:bob", Op::Read)];
        assert_eq!(topic(&open, &bobs, ALICE, Op::Read, "t"), Denied);
        assert_eq!(topic(&open, &bobs, "User:bob", Op::Read, "t"), Allowed);
    }

    #[test]
    fn deny_wins_over_allow() {
        let a = Authorizer::new("", false);
        let acls = [
            allow("*", Literal, ALICE, Op::All),
            deny("secret", Prefixed, ALICE, Op::Read),
        ];
        assert_eq!(topic(&a, &acls, ALICE, Op::Read, "secret-1"), Denied);
        assert_eq!(topic(&a, &acls, ALICE, Op::Write, "secret-1"), Allowed);
        assert_eq!(topic(&a, &acls, ALICE, Op::Read, "public"), Allowed);
    }

    #[test]
    fn all_matches_every_operation_for_allow_and_deny() {
        let a = Authorizer::new("", false);
        let allows = [allow("t", Literal, ALICE, Op::All)];
        for op in [Op::Read, Op::Write, Op::Describe, Op::AlterConfigs] {
            assert_eq!(topic(&a, &allows, ALICE, op, "t"), Allowed);
        }
        let denies = [
            allow("t", Literal, ALICE, Op::Read),
            deny("t", Literal, ALICE, Op::All),
        ];
        assert_eq!(topic(&a, &denies, ALICE, Op::Read, "t"), Denied);
    }

    #[test]
    fn allow_implies_describe_and_describe_configs() {
        let a = Authorizer::new("", false);
        for op in [Op::Read, Op::Write, Op::Delete, Op::Alter, Op::Describe] {
            let acls = [allow("t", Literal, ALICE, op)];
            assert_eq!(topic(&a, &acls, ALICE, Op::Describe, "t"), Allowed, "{op}");
        }
        for op in [Op::Create, Op::AlterConfigs, Op::DescribeConfigs] {
            let acls = [allow("t", Literal, ALICE, op)];
            let want = if op == Op::Create { Denied } else { Allowed };
            assert_eq!(topic(&a, &acls, ALICE, Op::DescribeConfigs, "t"), want);
        }
        let acls = [allow("t", Literal, ALICE, Op::Create)];
        assert_eq!(topic(&a, &acls, ALICE, Op::Describe, "t"), Denied);
        // Nothing implies READ.
        let acls = [allow("t", Literal, ALICE, Op::Write)];
        assert_eq!(topic(&a, &acls, ALICE, Op::Read, "t"), Denied);
    }

    #[test]
    fn deny_implies_nothing() {
        let a = Authorizer::new("", false);
        let acls = [
            allow("t", Literal, ALICE, Op::Describe),
            deny("t", Literal, ALICE, Op::Read),
        ];
        assert_eq!(topic(&a, &acls, ALICE, Op::Describe, "t"), Allowed);
        assert_eq!(topic(&a, &acls, ALICE, Op::Read, "t"), Denied);
    }

    #[test]
    fn resource_patterns_literal_wildcard_prefixed() {
        let a = Authorizer::new("", false);
        let acls = [
            allow("*", Literal, ALICE, Op::Read),
            allow("logs-", Prefixed, "User:bob", Op::Read),
            allow("exact", Literal, "User:carol", Op::Read),
        ];
        assert_eq!(topic(&a, &acls, ALICE, Op::Read, "anything"), Allowed);
        assert_eq!(topic(&a, &acls, "User:bob", Op::Read, "logs-1"), Allowed);
        assert_eq!(topic(&a, &acls, "User:bob", Op::Read, "log"), Denied);
        assert_eq!(topic(&a, &acls, "User:carol", Op::Read, "exact"), Allowed);
        assert_eq!(topic(&a, &acls, "User:carol", Op::Read, "exact2"), Denied);
        // A literal `*` is the wildcard only as a literal; a prefixed `*`
        // matches names starting with `*`.
        let star_prefix = [allow("*", Prefixed, "User:dan", Op::Read)];
        assert_eq!(topic(&a, &star_prefix, "User:dan", Op::Read, "x"), Denied);
    }

    #[test]
    fn principal_and_host_matching() {
        let a = Authorizer::new("", false);
        let acls = [
            allow("t", Literal, "User:*", Op::Read),
            acl(
                ResourceType::Topic,
                "t",
                Literal,
                ALICE,
                "10.0.0.9",
                Op::Write,
                PermissionType::Allow,
            ),
        ];
        assert_eq!(topic(&a, &acls, "User:anyone", Op::Read, "t"), Allowed);
        // The entry's host is not alice's (10.0.0.1).
        assert_eq!(topic(&a, &acls, ALICE, Op::Write, "t"), Denied);
        assert_eq!(
            a.authorize(
                &acls,
                ALICE,
                "10.0.0.9",
                Op::Write,
                ResourceType::Topic,
                "t"
            ),
            Allowed
        );
    }

    #[test]
    fn create_validation_follows_kafka() {
        let good = allow("t", Literal, ALICE, Op::Read);
        assert_eq!(good.validate_new(), Ok(()));
        let mut b = good.clone();
        b.pattern.pattern_type = PatternType::Match;
        assert_eq!(
            b.validate_new(),
            Err(AclError::PatternType(PatternType::Match))
        );
        b = good.clone();
        b.pattern.pattern_type = PatternType::Any;
        assert!(b.validate_new().is_err());
        b = good.clone();
        b.entry.operation = Op::Any;
        assert_eq!(b.validate_new(), Err(AclError::Operation(Op::Any)));
        b = good.clone();
        b.entry.permission = PermissionType::Unknown;
        assert!(b.validate_new().is_err());
        b = good.clone();
        b.pattern.resource_type = ResourceType::Unknown;
        assert!(b.validate_new().is_err());
        b = good.clone();
        b.pattern.name.clear();
        assert_eq!(b.validate_new(), Err(AclError::EmptyName));
        b = good.clone();
        b.entry.principal = "alice".into();
        assert!(matches!(b.validate_new(), Err(AclError::Principal(_))));
        b = good.clone();
        b.pattern.resource_type = ResourceType::Cluster;
        assert_eq!(b.validate_new(), Err(AclError::ClusterName));
        b.pattern.name = CLUSTER_RESOURCE_NAME.into();
        assert_eq!(b.validate_new(), Ok(()));
    }

    fn filter(rt: ResourceType, name: Option<&str>, pt: PatternType) -> AclBindingFilter {
        let mut f = AclBindingFilter::any();
        f.pattern = ResourcePatternFilter {
            resource_type: rt,
            name: name.map(String::from),
            pattern_type: pt,
        };
        f
    }

    #[test]
    fn pattern_filters_any_match_and_exact() {
        let lit = allow("logs-1", Literal, ALICE, Op::Read);
        let star = allow("*", Literal, ALICE, Op::Read);
        let pre = allow("logs-", Prefixed, ALICE, Op::Read);
        let other_pre = allow("metrics-", Prefixed, ALICE, Op::Read);
        let all = [&lit, &star, &pre, &other_pre];
        let picked = |f: &AclBindingFilter| {
            all.iter()
                .filter(|b| f.matches(b))
                .map(|b| b.pattern.name.as_str())
                .collect::<Vec<_>>()
        };
        use ResourceType::{Any as AnyType, Group, Topic};
        assert_eq!(picked(&AclBindingFilter::any()).len(), 4);
        assert_eq!(
            picked(&filter(Topic, Some("logs-1"), PatternType::Match)),
            ["logs-1", "*", "logs-"]
        );
        assert_eq!(
            picked(&filter(AnyType, Some("logs-"), PatternType::Any)),
            ["logs-"]
        );
        assert_eq!(
            picked(&filter(Topic, Some("logs-"), PatternType::Literal)),
            Vec::<&str>::new()
        );
        assert_eq!(
            picked(&filter(Topic, None, Prefixed)),
            ["logs-", "metrics-"]
        );
        assert_eq!(picked(&filter(Topic, None, Literal)), ["logs-1", "*"]);
        assert!(picked(&filter(Group, None, PatternType::Any)).is_empty());
    }

    #[test]
    fn entry_filters_are_exact() {
        let b = allow("t", Literal, "User:*", Op::Read);
        let mut f = AclBindingFilter::any();
        f.entry.principal = Some(ALICE.into());
        assert!(!f.matches(&b));
        f.entry.principal = Some("User:*".into());
        assert!(f.matches(&b));
        f.entry.operation = Op::Write;
        assert!(!f.matches(&b));
        f.entry.operation = Op::Read;
        f.entry.permission = PermissionType::Deny;
        assert!(!f.matches(&b));
        f.entry.permission = PermissionType::Allow;
        f.entry.host = Some("1.2.3.4".into());
        assert!(!f.matches(&b));
    }

    #[test]
    fn unknown_filters_are_refused() {
        let mut f = AclBindingFilter::any();
        assert_eq!(f.validate(), Ok(()));
        f.pattern.pattern_type = PatternType::Unknown;
        assert_eq!(f.validate(), Err(AclError::UnknownPatternFilter));
        f = AclBindingFilter::any();
        f.entry.operation = Op::Unknown;
        assert_eq!(f.validate(), Err(AclError::UnknownEntryFilter));
    }
}
